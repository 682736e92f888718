//! What a guest may name: the one rule for container names (the same at every entry point and on
//! every backend), the limit on object names, and the optional allow-list of containers.

use std::collections::BTreeSet;

use tempo_runtime_core::OnceSet;

use crate::BlobError;
use tempo_runtime_core::names;

/// The longest object name, in bytes. NATS carries it base64-encoded in a subject, which must fit
/// the server's 4096-byte control line; the embedded backend has its own, lower, file-name limit.
pub(crate) const MAX_OBJECT_NAME: usize = 1024;

/// Checks a container name: the same rule on every backend, and for key-value buckets
/// ([`names::check_store_name`]). Nothing else reaches a backend.
pub fn check_container_name(name: &str) -> Result<(), String> {
    names::check_store_name("container", name)
}

/// Object names may be any text up to [`MAX_OBJECT_NAME`] bytes.
pub(crate) fn check_object_name(name: &str) -> Result<(), BlobError> {
    if name.len() > MAX_OBJECT_NAME {
        return Err(BlobError::Refused(format!(
            "an object name of {} bytes is longer than the limit of {MAX_OBJECT_NAME}",
            name.len()
        )));
    }
    Ok(())
}

/// The containers guests may use: all (with a valid name), or those `[blobstore] containers`
/// lists. A refusal is logged once per name, with the setting that would grant it.
pub(crate) struct Grants {
    declared: Option<BTreeSet<String>>,
    hinted: OnceSet,
}

impl Grants {
    /// Grants every container, or only `declared`.
    pub(crate) fn new(declared: Option<&[String]>) -> Self {
        Self {
            declared: declared.map(|names| names.iter().cloned().collect()),
            hinted: OnceSet::default(),
        }
    }

    /// Whether `[blobstore] containers` lists `name` (false when there is no list).
    pub(crate) fn declares(&self, name: &str) -> bool {
        self.declared
            .as_ref()
            .is_some_and(|declared| declared.contains(name))
    }

    /// What guests are granted, for the startup banner.
    pub(crate) fn describe(&self) -> String {
        match &self.declared {
            None => "guests may use any container".to_owned(),
            Some(declared) if declared.is_empty() => "guests may use no container".to_owned(),
            Some(declared) => {
                let names: Vec<&str> = declared.iter().map(String::as_str).collect();
                format!("guests may use the containers {}", names.join(", "))
            }
        }
    }

    /// Checks the name, then the allow-list.
    pub(crate) fn check(&self, name: &str) -> Result<(), BlobError> {
        check_container_name(name).map_err(BlobError::Refused)?;
        match &self.declared {
            Some(declared) if !declared.contains(name) => {
                self.hint(name, "is not granted");
                Err(BlobError::Refused(format!(
                    "the container `{name}` is not granted to guests (blobstore containers)"
                )))
            }
            _ => Ok(()),
        }
    }

    /// Logs, once per container, why a guest was refused it and how to grant it.
    pub(crate) fn hint(&self, name: &str, why: &str) {
        if self.hinted.first(name) {
            tracing::warn!(
                "a guest asked for the blobstore container `{name}`, which {why}; list it in {} \
                 to grant it",
                crate::settings::CONTAINERS.how_to_set()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn container_names_are_checked() {
        assert!(check_container_name("photos_2024-01").is_ok());
        let longest = "a".repeat(names::MAX_STORE_NAME);
        assert!(check_container_name(&longest).is_ok());
        let too_long = "a".repeat(names::MAX_STORE_NAME + 1);
        for bad in [
            "",
            "has space",
            "a/b",
            "é",
            "..",
            ".",
            "/etc",
            "/tmp/x/",
            "x/",
            &too_long,
        ] {
            assert!(check_container_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_allow_list_grants_only_what_it_lists() {
        let open = Grants::new(None);
        assert!(open.check("anything").is_ok());
        assert!(open.check("../x").is_err());
        let listed = Grants::new(Some(&["photos".to_owned()]));
        assert!(listed.check("photos").is_ok());
        assert!(listed.declares("photos"));
        let refused = listed.check("archive").unwrap_err().to_string();
        assert!(refused.contains("not granted"), "{refused}");
        assert!(!listed.declares("archive"));
    }

    proptest! {
        /// A name that passes the check is one plain path component: it cannot climb out of the
        /// state folder, name the folder itself, or be absolute.
        #[test]
        fn no_valid_container_name_is_a_path(name in "\\PC{0,20}|[./a-z_-]{0,6}") {
            if check_container_name(&name).is_ok() {
                let path = std::path::Path::new(&name);
                let components: Vec<_> = path.components().collect();
                prop_assert_eq!(components.len(), 1);
                prop_assert!(matches!(components[0], std::path::Component::Normal(_)));
                prop_assert!(!name.starts_with('.'));
            }
        }
    }
}
