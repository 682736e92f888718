//! `cargo tempo new`: a guest crate from a template, that builds, serves and tests at once.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

use crate::shell::{Shell, display_path};
use crate::templates::Template;

/// Create a guest crate from a template.
///
/// The crate builds for wasm32-wasip2 at once, offline but for the crate registry: it has its own
/// empty `[workspace]`, a `wit/` folder with the WIT tempo implements, tests, a README and a
/// .gitignore.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The package name (and its folder's, unless --path)
    #[arg(required_unless_present = "list")]
    name: Option<String>,
    /// The template to start from (see --list)
    #[arg(short, long, default_value = "http")]
    template: String,
    /// Where to create it [default: ./NAME]
    #[arg(long, value_name = "DIR")]
    path: Option<PathBuf>,
    /// List the templates
    #[arg(long, conflicts_with_all = ["name", "path"])]
    list: bool,
}

pub(crate) fn exec(shell: &Shell, args: Args) -> anyhow::Result<()> {
    if args.list {
        list();
        return Ok(());
    }
    let Some(name) = args.name else {
        bail!("a name is needed: `cargo tempo new NAME`");
    };
    check_crate_name(&name)?;
    let Some(template) = Template::find(&args.template) else {
        let names: Vec<String> = Template::all()
            .iter()
            .map(|t| format!("`{}`", t.name()))
            .collect();
        bail!(
            "there is no template `{}` (`--template`); the templates are {}",
            args.template,
            names.join(", ")
        );
    };
    let folder = args.path.unwrap_or_else(|| PathBuf::from(&name));
    create(&template, &name, &folder)?;
    shell.status(
        "Created",
        format!(
            "`{name}` from the {} template in {}",
            template.name(),
            display_path(&folder)
        ),
    );
    shell.status(
        "Next",
        format!("cd {} && cargo tempo dev", display_path(&folder)),
    );
    Ok(())
}

#[allow(clippy::print_stdout, reason = "the list is the command's result")]
fn list() {
    for template in Template::all() {
        println!("{:<12} {}", template.name(), template.description());
    }
}

/// Renders `template` into `folder`, which must not exist or be empty. The files are written to
/// a temporary folder beside it first, so a failure leaves nothing half-written.
fn create(template: &Template, name: &str, folder: &Path) -> anyhow::Result<()> {
    let shown = display_path(folder);
    if folder.exists() {
        let empty = std::fs::read_dir(folder)
            .with_context(|| format!("`{shown}` exists and cannot be read"))?
            .next()
            .is_none();
        if !empty {
            bail!(
                "`{shown}` already exists and is not empty: choose another name or `--path`; nothing was written"
            );
        }
    }
    let parent = match folder.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent)
        .with_context(|| format!("cannot create `{}`", display_path(&parent)))?;
    let staging = tempfile::Builder::new()
        .prefix(".tempo-new-")
        .tempdir_in(&parent)
        .with_context(|| format!("cannot write in `{}`", display_path(&parent)))?;
    template
        .render(name, staging.path())
        .with_context(|| format!("cannot write the template into `{}`", display_path(&parent)))?;
    if folder.exists() {
        std::fs::remove_dir(folder)
            .with_context(|| format!("cannot replace the empty `{shown}`"))?;
    }
    let staged = staging.keep();
    std::fs::rename(&staged, folder).with_context(|| format!("cannot create `{shown}`"))?;
    Ok(())
}

/// Rust keywords and the standard library's crates, which cargo refuses or warns about as names.
const RESERVED: &[&str] = &[
    "as",
    "async",
    "await",
    "break",
    "const",
    "continue",
    "crate",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "fn",
    "for",
    "gen",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "match",
    "mod",
    "move",
    "mut",
    "pub",
    "ref",
    "return",
    "self",
    "Self",
    "static",
    "struct",
    "super",
    "trait",
    "true",
    "type",
    "unsafe",
    "use",
    "where",
    "while",
    "abstract",
    "become",
    "box",
    "do",
    "final",
    "macro",
    "override",
    "priv",
    "try",
    "typeof",
    "unsized",
    "virtual",
    "yield",
    "alloc",
    "core",
    "proc_macro",
    "std",
    "test",
];

/// Checks `name` as cargo checks a package name.
fn check_crate_name(name: &str) -> anyhow::Result<()> {
    let problem = if name.is_empty() {
        Some("it is empty".to_owned())
    } else if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        Some(format!(
            "`{c}` is not allowed (use letters, digits, `-` and `_`)"
        ))
    } else if name.starts_with(|c: char| c.is_ascii_digit()) {
        Some("it starts with a digit".to_owned())
    } else if RESERVED.contains(&name) || RESERVED.contains(&name.replace('-', "_").as_str()) {
        Some("it is a Rust keyword or a standard library crate".to_owned())
    } else {
        None
    };
    match problem {
        Some(problem) => bail!("`{name}` cannot be a package name: {problem}"),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::check_crate_name;

    #[test]
    fn package_names_are_checked_like_cargo() {
        for good in ["hello", "hello-http", "my_api2", "_private"] {
            assert!(check_crate_name(good).is_ok(), "{good}");
        }
        for (bad, says) in [
            ("", "empty"),
            ("my api", "` ` is not allowed"),
            ("héllo", "`é` is not allowed"),
            ("9lives", "starts with a digit"),
            ("fn", "keyword"),
            ("std", "standard library"),
            ("proc-macro", "standard library"),
        ] {
            let err = check_crate_name(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
