//! The project `dev` works on, read from `cargo metadata`: the packages it builds, their path
//! dependencies, and therefore what is worth watching.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use cargo_metadata::{Metadata, MetadataCommand, Package, PackageId};

use crate::cargo_build::PackageArgs;
use crate::watch::WatchSet;

/// Files that configure a package or a workspace, watched beside the sources.
const CONFIG_FILES: &[&str] = &["Cargo.toml", "Cargo.lock", "tempo.toml", ".env"];

/// The metadata of the workspace and the packages `dev` builds.
pub(crate) struct Project {
    metadata: Metadata,
    selected: Vec<PackageId>,
}

impl Project {
    /// Runs `cargo metadata` for the workspace `args` name and selects its `-p` packages, or
    /// its default members.
    pub(crate) fn load(args: &PackageArgs) -> anyhow::Result<Self> {
        let mut command = MetadataCommand::new();
        command.current_dir(args.work_dir());
        if let Some(cargo) = std::env::var_os("CARGO") {
            command.cargo_path(cargo);
        }
        if let Some(manifest) = &args.manifest_path {
            command.manifest_path(std::path::absolute(manifest)?);
        }
        let metadata = command.exec().context("`cargo metadata` failed")?;
        let selected = if args.packages.is_empty() {
            metadata.workspace_default_packages()
        } else {
            let chosen: Vec<&Package> = metadata
                .workspace_packages()
                .into_iter()
                .filter(|package| {
                    args.packages
                        .iter()
                        .any(|spec| package.name.as_str() == spec)
                })
                .collect();
            anyhow::ensure!(
                !chosen.is_empty(),
                "no workspace package is called {} (`-p`)",
                args.packages.join(" or ")
            );
            chosen
        };
        let selected = selected
            .into_iter()
            .map(|package| package.id.clone())
            .collect();
        Ok(Self { metadata, selected })
    }

    /// The name of the package with `id`.
    pub(crate) fn package_name(&self, id: &PackageId) -> Option<&str> {
        self.package(id).map(|package| package.name.as_str())
    }

    /// The metadata of the package with `id`.
    pub(crate) fn package(&self, id: &PackageId) -> Option<&Package> {
        self.metadata
            .packages
            .iter()
            .find(|package| &package.id == id)
    }

    /// The selected packages and every local (path) package they depend on, directly or not.
    fn local_packages(&self) -> Vec<&Package> {
        let nodes = self
            .metadata
            .resolve
            .as_ref()
            .map(|resolve| &resolve.nodes[..])
            .unwrap_or_default();
        let mut seen: BTreeSet<&PackageId> = BTreeSet::new();
        let mut queue: Vec<&PackageId> = self.selected.iter().collect();
        let mut local = Vec::new();
        while let Some(id) = queue.pop() {
            if !seen.insert(id) {
                continue;
            }
            let Some(package) = self.package(id) else {
                continue;
            };
            if package.source.is_some() {
                continue; // from a registry or git: it does not change under the user's hands
            }
            local.push(package);
            if let Some(node) = nodes.iter().find(|node| &node.id == id) {
                queue.extend(node.deps.iter().map(|dep| &dep.pkg));
            }
        }
        local
    }

    /// Everything whose change should rebuild the component: for each local package its source
    /// folders, build script, manifest and `wit/`, and the workspace's lock file and tempo
    /// configuration. Never the target folder (nor `extra_target_dir`).
    pub(crate) fn watch_set(&self, extra_target_dir: Option<&Path>) -> WatchSet {
        let mut set = WatchSet::default();
        let root = self.metadata.workspace_root.as_std_path();
        for package in self.local_packages() {
            let dir = package
                .manifest_path
                .parent()
                .map_or(root, |dir| dir.as_std_path());
            for target in &package.targets {
                let source = target.src_path.as_std_path();
                if target.is_custom_build() {
                    set.add_file(source.to_path_buf());
                } else if (target.is_lib() || target.is_cdylib() || target.is_bin())
                    && let Some(folder) = source.parent()
                {
                    set.add_folder(folder.to_path_buf());
                }
            }
            set.add_folder(dir.join("wit"));
            set.add_ignore_file(&dir.join(".gitignore"));
            for file in CONFIG_FILES {
                set.add_file(dir.join(file));
            }
        }
        set.add_folder(root.join("wit"));
        set.add_ignore_file(&root.join(".gitignore"));
        for file in CONFIG_FILES {
            set.add_file(root.join(file));
        }
        set.exclude(self.metadata.target_directory.clone().into_std_path_buf());
        if let Some(dir) = extra_target_dir {
            set.exclude(std::path::absolute(dir).unwrap_or_else(|_| PathBuf::from(dir)));
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, contents: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }

    /// `app` (with a build script) depends on `shared` by path.
    fn workspace() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            &root.join("app/Cargo.toml"),
            "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\nshared = { path = \"../shared\" }\n\n[workspace]\n",
        );
        write(&root.join("app/src/lib.rs"), "");
        write(&root.join("app/build.rs"), "fn main() {}\n");
        write(
            &root.join("shared/Cargo.toml"),
            "[package]\nname = \"shared\"\nversion = \"0.1.0\"\nedition = \"2024\"\n",
        );
        write(&root.join("shared/src/lib.rs"), "");
        dir
    }

    #[test]
    fn path_dependencies_build_scripts_and_config_are_watched() {
        let dir = workspace();
        let root = dir.path();
        let args = PackageArgs {
            release: false,
            packages: Vec::new(),
            manifest_path: Some(root.join("app/Cargo.toml")),
            target_dir: None,
        };
        let project = Project::load(&args).unwrap();
        let set = project.watch_set(None);
        for path in [
            "app/src/lib.rs",
            "app/build.rs",
            "app/Cargo.toml",
            "app/Cargo.lock",
            "app/tempo.toml",
            "app/.env",
            "app/wit/world.wit",
            "shared/src/lib.rs",
            "shared/Cargo.toml",
        ] {
            assert!(set.counts(&root.join(path)), "{path}");
        }
        for path in [
            "app/target/debug/app.wasm",
            "app/README.md",
            "shared/tests/it.rs",
        ] {
            assert!(!set.counts(&root.join(path)), "{path}");
        }
    }

    #[test]
    fn an_unknown_package_is_named() {
        let dir = workspace();
        let args = PackageArgs {
            release: false,
            packages: vec!["nope".into()],
            manifest_path: Some(dir.path().join("app/Cargo.toml")),
            target_dir: None,
        };
        let err = Project::load(&args).err().unwrap();
        assert_eq!(
            err.to_string(),
            "no workspace package is called nope (`-p`)"
        );
    }
}
