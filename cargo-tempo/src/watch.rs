//! The set of paths `dev` watches, and the debounced stream of relevant changes to them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use notify::event::{MetadataKind, ModifyKind};
use notify::{EventKind, PollWatcher, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{
    DebounceEventResult, FileIdCache, FileIdMap, NoCache, new_debouncer_opt,
};
use tokio::sync::mpsc::UnboundedSender;

/// Folders watched with all they hold, single files, and what never counts.
#[derive(Debug, Default)]
pub(crate) struct WatchSet {
    folders: Vec<PathBuf>,
    files: Vec<PathBuf>,
    excluded: Vec<PathBuf>,
    ignores: Vec<Gitignore>,
}

impl WatchSet {
    /// The whole folder of a package whose metadata cannot be read (a manifest being edited):
    /// everything in it but its target folder, `.git` and what `.gitignore` excludes.
    pub(crate) fn package_folder(folder: &Path, target_dir: Option<&Path>) -> Self {
        let mut set = Self::default();
        set.add_folder(folder.to_path_buf());
        set.add_ignore_file(&folder.join(".gitignore"));
        set.exclude(folder.join("target"));
        if let Some(dir) = target_dir {
            set.exclude(std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()));
        }
        set
    }

    /// A folder whose whole content counts (it need not exist yet).
    pub(crate) fn add_folder(&mut self, folder: PathBuf) {
        if !self.folders.contains(&folder) {
            self.folders.push(folder);
        }
    }

    /// A single file that counts (it need not exist yet).
    pub(crate) fn add_file(&mut self, file: PathBuf) {
        if !self.files.contains(&file) {
            self.files.push(file);
        }
    }

    /// A folder that never counts, such as cargo's target folder.
    pub(crate) fn exclude(&mut self, folder: PathBuf) {
        self.excluded.push(folder);
    }

    /// Applies a `.gitignore` to the watched folders, if the file exists.
    pub(crate) fn add_ignore_file(&mut self, file: &Path) {
        let Some(root) = file.parent() else { return };
        if !file.is_file() || self.ignores.iter().any(|ignore| ignore.path() == root) {
            return;
        }
        let mut builder = GitignoreBuilder::new(root);
        if builder.add(file).is_none()
            && let Ok(ignore) = builder.build()
        {
            self.ignores.push(ignore);
        }
    }

    /// Whether a change at `path` should rebuild the component.
    pub(crate) fn counts(&self, path: &Path) -> bool {
        if path.components().any(|c| c.as_os_str() == ".git")
            || self.excluded.iter().any(|dir| path.starts_with(dir))
        {
            return false;
        }
        if self.files.iter().any(|file| file == path) {
            return true;
        }
        self.folders.iter().any(|folder| path.starts_with(folder))
            && !editor_noise(path)
            && !self.ignored(path)
    }

    fn ignored(&self, path: &Path) -> bool {
        let is_dir = path.is_dir();
        self.ignores.iter().any(|ignore| {
            path.starts_with(ignore.path())
                && ignore.matched_path_or_any_parents(path, is_dir).is_ignore()
        })
    }

    /// What to register with the watcher: each existing folder with what is below it, and the
    /// folder of each file on its own (so an editor that saves by renaming is still seen).
    fn registrations(&self) -> Vec<(PathBuf, RecursiveMode)> {
        let mut registrations: Vec<(PathBuf, RecursiveMode)> = Vec::new();
        for folder in self.folders.iter().filter(|folder| folder.is_dir()) {
            registrations.push((folder.clone(), RecursiveMode::Recursive));
        }
        for parent in self.files.iter().filter_map(|file| file.parent()) {
            let covered = registrations.iter().any(|(path, mode)| {
                path == parent || (*mode == RecursiveMode::Recursive && parent.starts_with(path))
            });
            if !covered && parent.is_dir() {
                registrations.push((parent.to_path_buf(), RecursiveMode::NonRecursive));
            }
        }
        registrations
    }

    /// The watched folders and files, for `-v`.
    pub(crate) fn describe(&self) -> String {
        let mut names: Vec<String> = self
            .folders
            .iter()
            .filter(|f| f.is_dir())
            .map(|f| format!("{}/", f.display()))
            .collect();
        names.extend(
            self.files
                .iter()
                .filter(|f| f.exists())
                .map(|f| f.display().to_string()),
        );
        names.join(", ")
    }
}

/// Swap files, backups and the like that editors write beside a source while it is edited.
fn editor_noise(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
        return false;
    };
    name.starts_with('.') || name.ends_with('~') || name == "4913"
}

/// Whether an event of this kind is a change: a file created, written, renamed or removed.
/// Reads and attribute changes (cargo and editors open files all the time) are not.
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) => true,
        // The polling watcher reports writes as a new modification time.
        EventKind::Modify(ModifyKind::Metadata(metadata)) => *metadata == MetadataKind::WriteTime,
        EventKind::Modify(_) => true,
        EventKind::Access(_) | EventKind::Any | EventKind::Other => false,
    }
}

/// Keeps the watcher running; dropping it stops watching.
pub(crate) struct Watch {
    _debouncer: Box<dyn Send>,
}

impl Watch {
    /// Watches `set` and sends each debounced batch of relevant changed paths to `changes`.
    /// With `poll`, polls the file system instead of using OS notifications.
    pub(crate) fn start(
        set: WatchSet,
        debounce: Duration,
        poll: bool,
        changes: UnboundedSender<Vec<PathBuf>>,
    ) -> anyhow::Result<Self> {
        if poll {
            let config = notify::Config::default()
                .with_poll_interval(debounce.max(Duration::from_millis(50)));
            Self::start_with::<PollWatcher, _>(set, debounce, changes, NoCache, config)
        } else {
            Self::start_with::<RecommendedWatcher, _>(
                set,
                debounce,
                changes,
                FileIdMap::new(),
                notify::Config::default(),
            )
        }
    }

    fn start_with<W: notify::Watcher + Send + 'static, C: FileIdCache + Send + 'static>(
        set: WatchSet,
        debounce: Duration,
        changes: UnboundedSender<Vec<PathBuf>>,
        cache: C,
        config: notify::Config,
    ) -> anyhow::Result<Self> {
        let registrations = set.registrations();
        let handler = move |result: DebounceEventResult| match result {
            Ok(events) => {
                let mut paths: Vec<PathBuf> = events
                    .iter()
                    .filter(|event| is_change(&event.kind))
                    .flat_map(|event| event.paths.iter())
                    .filter(|path| set.counts(path))
                    .cloned()
                    .collect();
                paths.sort();
                paths.dedup();
                if !paths.is_empty() {
                    let _ = changes.send(paths);
                }
            }
            Err(errors) => {
                for error in errors {
                    tracing::warn!("file watcher: {error}");
                }
            }
        };
        // The debouncer checks for quiet every tick; a tenth of the debounce keeps a batch within
        // 10% of it (the default, a quarter, can add 25 ms between an edit and its build).
        let tick = (debounce / 10).max(Duration::from_millis(1));
        let mut debouncer =
            new_debouncer_opt::<_, W, C>(debounce, Some(tick), handler, cache, config)
                .context("cannot start the file watcher")?;
        for (path, mode) in registrations {
            debouncer
                .watch(&path, mode)
                .with_context(|| format!("cannot watch `{}`", path.display()))?;
        }
        Ok(Self {
            _debouncer: Box::new(debouncer),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project() -> (tempfile::TempDir, WatchSet) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("src/nested")).unwrap();
        std::fs::write(root.join(".gitignore"), "/src/generated.rs\n*.log\n").unwrap();
        let mut set = WatchSet::default();
        set.add_folder(root.join("src"));
        set.add_folder(root.join("wit"));
        set.add_file(root.join("Cargo.toml"));
        set.add_file(root.join("build.rs"));
        set.add_ignore_file(&root.join(".gitignore"));
        set.exclude(root.join("target"));
        (dir, set)
    }

    /// Asserts of each of `paths`, below the project, that a change to it `counts` or not.
    fn assert_counting(paths: &[&str], counts: bool) {
        let (dir, set) = project();
        for path in paths {
            assert_eq!(set.counts(&dir.path().join(path)), counts, "{path}");
        }
    }

    #[test]
    fn sources_manifests_and_wit_count() {
        assert_counting(
            &[
                "src/lib.rs",
                "src/nested/mod.rs",
                "Cargo.toml",
                "build.rs",
                "wit/world.wit",
                "wit",
            ],
            true,
        );
    }

    #[test]
    fn target_git_ignored_files_and_editor_noise_do_not() {
        assert_counting(
            &[
                "target/debug/x.wasm",
                "src/.git/index",
                "src/generated.rs",
                "src/debug.log",
                "src/.lib.rs.swp",
                "src/lib.rs~",
                "src/4913",
                "README.md",
                "tests/it.rs",
            ],
            false,
        );
    }

    #[test]
    fn files_are_watched_through_their_folder() {
        let (dir, set) = project();
        let root = dir.path();
        let registrations = set.registrations();
        assert!(registrations.contains(&(root.join("src"), RecursiveMode::Recursive)));
        assert!(registrations.contains(&(root.to_path_buf(), RecursiveMode::NonRecursive)));
        // `wit/` does not exist yet: its creation is seen through the root folder.
        assert_eq!(registrations.len(), 2);
    }

    #[test]
    fn only_changes_count_not_reads_or_attributes() {
        use notify::event::{AccessKind, CreateKind, DataChange, RemoveKind, RenameMode};
        assert!(is_change(&EventKind::Create(CreateKind::File)));
        assert!(is_change(&EventKind::Remove(RemoveKind::Any)));
        assert!(is_change(&EventKind::Modify(ModifyKind::Data(
            DataChange::Content
        ))));
        assert!(is_change(&EventKind::Modify(ModifyKind::Name(
            RenameMode::To
        ))));
        assert!(is_change(&EventKind::Modify(ModifyKind::Metadata(
            MetadataKind::WriteTime
        ))));
        assert!(!is_change(&EventKind::Modify(ModifyKind::Metadata(
            MetadataKind::Permissions
        ))));
        assert!(!is_change(&EventKind::Modify(ModifyKind::Metadata(
            MetadataKind::Any
        ))));
        assert!(!is_change(&EventKind::Access(AccessKind::Read)));
    }
}
