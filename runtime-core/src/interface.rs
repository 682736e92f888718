//! WIT interface names as components spell their imports and exports.

use std::fmt;

/// A WIT interface name such as `wasi:http/types@0.2.12`.
///
/// Components name their imports and exports this way. Two names *match* when namespace, package
/// and interface agree and the versions are semver-compatible, which is the rule wasmtime's linker
/// applies: a guest built against `wasi:http/types@0.2.0` links to a host implementing `@0.2.12`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct InterfaceName {
    namespace: String,
    package: String,
    interface: String,
    version: Option<semver::Version>,
}

impl InterfaceName {
    /// Parses `namespace:package/interface[@version]`; `None` for anything else (such as a plain
    /// function import).
    pub fn parse(name: &str) -> Option<Self> {
        let (path, version) = match name.split_once('@') {
            Some((path, version)) => (path, Some(semver::Version::parse(version).ok()?)),
            None => (name, None),
        };
        let (namespace, rest) = path.split_once(':')?;
        let (package, interface) = rest.split_once('/')?;
        let valid = |s: &str| !s.is_empty() && !s.contains([':', '/', '@']);
        if !(valid(namespace) && valid(package) && valid(interface)) {
            return None;
        }
        Some(Self {
            namespace: namespace.to_owned(),
            package: package.to_owned(),
            interface: interface.to_owned(),
            version,
        })
    }

    /// Like [`InterfaceName::parse`], for names written in the source; panics on a malformed one.
    pub fn known(name: &str) -> Self {
        Self::parse(name).unwrap_or_else(|| panic!("`{name}` is not a WIT interface name"))
    }

    /// The interfaces `names` of `package` at `version`, as a service declares what it provides:
    /// `all("wasi:config", "0.2.0-draft", &["store"])` is `wasi:config/store@0.2.0-draft`.
    pub fn all(package: &str, version: &str, names: &[&str]) -> Vec<Self> {
        names
            .iter()
            .map(|name| Self::known(&format!("{package}/{name}@{version}")))
            .collect()
    }

    /// `namespace:package/interface`, without the version.
    pub fn unversioned(&self) -> String {
        format!("{}:{}/{}", self.namespace, self.package, self.interface)
    }

    /// Whether a component's `import` or export named `other` is satisfied by this interface.
    pub fn matches(&self, other: &InterfaceName) -> bool {
        self.namespace == other.namespace
            && self.package == other.package
            && self.interface == other.interface
            && match (&self.version, &other.version) {
                (None, None) => true,
                (Some(a), Some(b)) => semver_compatible(a, b),
                _ => false,
            }
    }

    /// Whether the string `name` (as found in a component) names a matching interface.
    pub fn matches_str(&self, name: &str) -> bool {
        InterfaceName::parse(name).is_some_and(|other| self.matches(&other))
    }
}

/// The compatibility rule of the component model's semver-aware linking: same major version from
/// 1.0 on, same minor below it, an exact match for pre-releases or `0.0.x`.
fn semver_compatible(a: &semver::Version, b: &semver::Version) -> bool {
    if !a.pre.is_empty() || !b.pre.is_empty() {
        return a == b;
    }
    match (a.major, a.minor) {
        (0, 0) => a == b,
        (0, minor) => b.major == 0 && b.minor == minor,
        (major, _) => b.major == major,
    }
}

impl fmt::Display for InterfaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.unversioned())?;
        if let Some(version) = &self.version {
            write!(f, "@{version}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_package_s_interfaces_are_named_at_its_version() {
        let names = InterfaceName::all("wasi:keyvalue", "0.2.0-draft", &["store", "atomics"]);
        let names: Vec<String> = names.iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            [
                "wasi:keyvalue/store@0.2.0-draft",
                "wasi:keyvalue/atomics@0.2.0-draft"
            ]
        );
    }

    #[test]
    fn parses_and_prints() {
        let name = InterfaceName::parse("wasi:http/types@0.2.12").unwrap();
        assert_eq!(name.to_string(), "wasi:http/types@0.2.12");
        assert_eq!(name.unversioned(), "wasi:http/types");
        assert_eq!(
            InterfaceName::parse("my:pkg/iface").unwrap().to_string(),
            "my:pkg/iface"
        );
    }

    #[test]
    fn rejects_what_is_not_an_interface() {
        for bad in [
            "",
            "run",
            "wasi:http",
            "wasi/http",
            ":http/types",
            "wasi:/types",
            "wasi:http/",
            "wasi:http/types@",
            "wasi:http/types@zero",
            "wasi:http/a/b",
        ] {
            assert!(InterfaceName::parse(bad).is_none(), "{bad:?} parsed");
        }
    }

    #[test]
    fn versions_match_like_the_linker() {
        let host = InterfaceName::known("wasi:http/types@0.2.12");
        assert!(host.matches_str("wasi:http/types@0.2.0"));
        assert!(host.matches_str("wasi:http/types@0.2.13"));
        assert!(!host.matches_str("wasi:http/types@0.3.0"));
        assert!(!host.matches_str("wasi:http/types"));
        assert!(!host.matches_str("wasi:http/handler@0.2.12"));
        assert!(!host.matches_str("wasi:other/types@0.2.12"));

        let stable = InterfaceName::known("a:b/c@1.4.0");
        assert!(stable.matches_str("a:b/c@1.0.0"));
        assert!(!stable.matches_str("a:b/c@2.0.0"));

        let draft = InterfaceName::known("wasi:keyvalue/store@0.2.0-draft");
        assert!(draft.matches_str("wasi:keyvalue/store@0.2.0-draft"));
        assert!(!draft.matches_str("wasi:keyvalue/store@0.2.0-draft2"));
        assert!(!draft.matches_str("wasi:keyvalue/store@0.2.0"));

        let zero = InterfaceName::known("a:b/c@0.0.1");
        assert!(!zero.matches_str("a:b/c@0.0.2"));
    }
}
