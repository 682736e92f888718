//! The templates `cargo tempo new` writes, embedded in the binary when it is built, so an installed
//! tempo needs no checkout. Each is a folder of `templates/`. A project on tempo-sdk also gets
//! `vendor/`: the SDK (`sdk/`, not yet published) and the WIT its bindings come from (`wit/`, what
//! the host implements), so it builds with only the crate registry reachable. (`http-p3` is
//! written on the `wasip3` crate instead.)

use std::io;
use std::path::{Path, PathBuf};

use include_dir::{Dir, DirEntry, include_dir};

static TEMPLATES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../templates");
static WIT: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../wit");
static SDK: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../sdk");

/// What `vendor/README.md` says.
const VENDOR_README: &str = "\
# vendor

- `tempo-sdk/`: the guest SDK, as the tempo that made this project ships it. It is not on
  crates.io yet; `Cargo.toml` uses this copy with `tempo-sdk = { path = \"vendor/tempo-sdk\" }`.
- `wit/`: the WIT its bindings are generated from: what tempo implements.

To use a published tempo-sdk instead, change that line of `Cargo.toml` to

```toml
tempo-sdk = \"0.1\"
```

and delete this folder.
";

/// Files named with a leading `_` in `templates/` get a leading `.` in the project (a real
/// `.gitignore` in `templates/` would apply to this repository).
const DOT_PREFIX: char = '_';

/// One template.
pub(crate) struct Template {
    dir: &'static Dir<'static>,
}

impl Template {
    /// Every template, by name.
    pub(crate) fn all() -> Vec<Template> {
        let mut all: Vec<Template> = TEMPLATES.dirs().map(|dir| Template { dir }).collect();
        all.sort_by(|a, b| a.name().cmp(b.name()));
        all
    }

    /// The template called `name`.
    pub(crate) fn find(name: &str) -> Option<Template> {
        Self::all()
            .into_iter()
            .find(|template| template.name() == name)
    }

    pub(crate) fn name(&self) -> &str {
        self.dir.path().to_str().unwrap_or_default()
    }

    /// The first paragraph of the template's README, after its title.
    pub(crate) fn description(&self) -> String {
        let readme = self
            .dir
            .get_file(self.dir.path().join("README.md"))
            .and_then(|file| file.contents_utf8())
            .unwrap_or_default();
        let paragraph: Vec<&str> = readme
            .lines()
            .skip_while(|line| line.starts_with('#') || line.trim().is_empty())
            .take_while(|line| !line.trim().is_empty())
            .collect();
        paragraph.join(" ")
    }

    /// Writes the template for a package called `name` into `into` (which must exist) and returns
    /// the files written, relative to it.
    pub(crate) fn render(&self, name: &str, into: &Path) -> io::Result<Vec<PathBuf>> {
        let mut written = Vec::new();
        write_tree(self.dir, self.dir.path(), into, Some(name), &mut written)?;
        if !self.uses_sdk() {
            return Ok(relative_to(into, written));
        }
        let vendor = into.join("vendor");
        write_tree(
            &SDK,
            SDK.path(),
            &vendor.join("tempo-sdk"),
            None,
            &mut written,
        )?;
        write_tree(&WIT, WIT.path(), &vendor.join("wit"), None, &mut written)?;
        std::fs::write(vendor.join("README.md"), VENDOR_README)?;
        written.push(vendor.join("README.md"));
        Ok(relative_to(into, written))
    }

    /// Whether the template's crate depends on tempo-sdk, which then goes into `vendor/`.
    fn uses_sdk(&self) -> bool {
        self.dir
            .get_file(self.dir.path().join("Cargo.toml"))
            .and_then(|file| file.contents_utf8())
            .is_some_and(|manifest| manifest.contains("vendor/tempo-sdk"))
    }
}

/// `paths`, relative to `root` where they are below it.
fn relative_to(root: &Path, paths: Vec<PathBuf>) -> Vec<PathBuf> {
    paths
        .into_iter()
        .map(|path| {
            path.strip_prefix(root)
                .map(Path::to_path_buf)
                .unwrap_or(path)
        })
        .collect()
}

/// Writes the files of `dir` below `into`, with the placeholders filled for a package called
/// `name` if one is given (the SDK and the WIT are copied as they are).
fn write_tree(
    dir: &Dir<'_>,
    root: &Path,
    into: &Path,
    name: Option<&str>,
    written: &mut Vec<PathBuf>,
) -> io::Result<()> {
    for entry in dir.entries() {
        match entry {
            DirEntry::Dir(dir) => write_tree(dir, root, into, name, written)?,
            DirEntry::File(file) => {
                let relative = file.path().strip_prefix(root).unwrap_or(file.path());
                let target = into.join(project_path(relative));
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                match (file.contents_utf8(), name) {
                    (Some(text), Some(name)) => std::fs::write(&target, fill(text, name))?,
                    _ => std::fs::write(&target, file.contents())?,
                }
                written.push(target);
            }
        }
    }
    Ok(())
}

/// `_gitignore` becomes `.gitignore`.
fn project_path(relative: &Path) -> PathBuf {
    let name = relative
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or_default();
    match name.strip_prefix(DOT_PREFIX) {
        Some(rest) => relative.with_file_name(format!(".{rest}")),
        None => relative.to_path_buf(),
    }
}

/// Fills the placeholders: `{{name}}` (the package name) and `{{crate_name}}` (its Rust name).
fn fill(text: &str, name: &str) -> String {
    text.replace("{{name}}", name)
        .replace("{{crate_name}}", &name.replace('-', "_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_http_template_renders_a_crate_with_the_sdk_and_its_wit() {
        let dir = tempfile::tempdir().unwrap();
        let template = Template::find("http").unwrap();
        let files = template.render("my-api", dir.path()).unwrap();
        for expected in [
            "Cargo.toml",
            "src/lib.rs",
            "README.md",
            ".gitignore",
            "vendor/README.md",
            "vendor/tempo-sdk/Cargo.toml",
            "vendor/tempo-sdk/src/lib.rs",
            "vendor/wit/world.wit",
            "vendor/wit/deps/http.wit",
        ] {
            assert!(
                files.contains(&PathBuf::from(expected)),
                "{expected} missing from {files:?}"
            );
        }
        let manifest = std::fs::read_to_string(dir.path().join("Cargo.toml")).unwrap();
        assert!(manifest.contains("name = \"my-api\""));
        assert!(!manifest.contains("{{"));
        // The one line the vendor README tells a user to change.
        assert!(manifest.contains("tempo-sdk = { path = \"vendor/tempo-sdk\" }"));
        assert!(VENDOR_README.contains("tempo-sdk = { path = \"vendor/tempo-sdk\" }"));
    }

    #[test]
    fn a_template_without_the_sdk_gets_no_vendor_folder() {
        let dir = tempfile::tempdir().unwrap();
        let template = Template::find("http-p3").unwrap();
        let files = template.render("my-p3", dir.path()).unwrap();
        assert!(files.contains(&PathBuf::from("src/lib.rs")), "{files:?}");
        assert!(
            files.iter().all(|file| !file.starts_with("vendor")),
            "{files:?}"
        );
    }

    #[test]
    fn descriptions_come_from_the_readme() {
        let template = Template::find("http").unwrap();
        assert_eq!(
            template.description(),
            "A wasi:http component with two routes answering JSON."
        );
    }

    #[test]
    fn placeholders_and_dot_files() {
        assert_eq!(fill("{{name}} {{crate_name}}", "my-api"), "my-api my_api");
        assert_eq!(
            project_path(Path::new("_gitignore")),
            Path::new(".gitignore")
        );
        assert_eq!(
            project_path(Path::new("src/lib.rs")),
            Path::new("src/lib.rs")
        );
    }
}
