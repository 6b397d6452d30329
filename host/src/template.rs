//! `oar new`: a new analysis module from the template in `templates/module` (a workspace member,
//! so CI builds, tests and signs exactly what authors get).
//!
//! With `--lang python` the module is `templates/python-module` instead: an `app.py`, its
//! manifest, README and tests, built and tested with `oar build` and `oar test`.
//!
//! Inside an OAR checkout the module goes to `example-algorithms/NAME` (or any folder in the
//! checkout) and joins the workspace, sharing its build. Elsewhere it becomes a standalone crate
//! whose dependencies point at the checkout this `oar` was built from.

use std::path::{Path, PathBuf};

/// The template's files: (path in the module, text).
const FILES: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../../templates/module/Cargo.toml"),
    ),
    (
        "manifest.toml",
        include_str!("../../templates/module/manifest.toml"),
    ),
    (
        "README.md",
        include_str!("../../templates/module/README.md"),
    ),
    (
        "src/lib.rs",
        include_str!("../../templates/module/src/lib.rs"),
    ),
    (
        "tests/native.rs",
        include_str!("../../templates/module/tests/native.rs"),
    ),
];

/// The Python template's files (`templates/python-module`): (path in the module, text).
const PYTHON_FILES: &[(&str, &str)] = &[
    (
        "app.py",
        include_str!("../../templates/python-module/app.py"),
    ),
    (
        "manifest.toml",
        include_str!("../../templates/python-module/manifest.toml"),
    ),
    (
        "README.md",
        include_str!("../../templates/python-module/README.md"),
    ),
    (
        "tests/test_app.py",
        include_str!("../../templates/python-module/tests/test_app.py"),
    ),
    (
        ".gitignore",
        include_str!("../../templates/python-module/.gitignore"),
    ),
];

/// The Python template's module name, replaced by the new module's.
const PYTHON_TEMPLATE_NAME: &str = "python-module-template";

/// The template's crate name, replaced by the new module's.
const TEMPLATE_NAME: &str = "module-template";

/// Why a module could not be created.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The name is not a usable crate name.
    #[error("'{0}' is not a module name: use lowercase letters, digits and hyphens, starting with a letter (for example 'night-population')")]
    BadName(String),
    /// The folder exists already; nothing was written.
    #[error("{0} already exists; choose another name or --dir (nothing was changed)")]
    Exists(PathBuf),
    /// The workspace's Cargo.toml has no `members = [` list to add the module to.
    #[error("{0} has no `members = [` list; add the module to the workspace by hand")]
    NoMembers(PathBuf),
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TemplateError + '_ {
    move |source| TemplateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What [`create`] made.
#[derive(Debug)]
pub struct Created {
    /// The module's folder.
    pub dir: PathBuf,
    /// The workspace it joined, if any.
    pub workspace: Option<PathBuf>,
    /// The files written, relative to `dir`.
    pub files: Vec<&'static str>,
}

/// The OAR checkout containing `start` (a folder with a workspace `Cargo.toml` and
/// `guest-sdk/`), if any.
pub fn find_checkout(start: &Path) -> Option<PathBuf> {
    start.ancestors().find_map(|d| {
        let manifest = std::fs::read_to_string(d.join("Cargo.toml")).ok()?;
        (manifest.contains("[workspace]") && d.join("guest-sdk").is_dir()).then(|| d.to_path_buf())
    })
}

/// Checks `name` is a crate name: lowercase ASCII letters, digits and single hyphens, starting
/// with a letter.
pub fn check_name(name: &str) -> Result<(), TemplateError> {
    let ok = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && !name.contains("--")
        && name.len() <= 64;
    if ok {
        Ok(())
    } else {
        Err(TemplateError::BadName(name.to_string()))
    }
}

/// The template's text with the new name in place of the template's.
fn rename(text: &str, name: &str) -> String {
    text.replace(TEMPLATE_NAME, name)
        .replace(&TEMPLATE_NAME.replace('-', "_"), &name.replace('-', "_"))
}

/// `../` repeated once per component of `rel`.
fn up(rel: &Path) -> String {
    "../".repeat(rel.components().count())
}

/// Creates module `name` in `dir`. If `dir` lies inside an OAR checkout, the module joins that
/// workspace (its `members` list gains the folder); otherwise it is a standalone crate whose
/// dependencies point at `checkout` (the OAR source this binary was built from). Refuses to
/// touch an existing folder.
pub fn create(name: &str, dir: &Path, checkout: &Path) -> Result<Created, TemplateError> {
    check_name(name)?;
    if dir.exists() {
        return Err(TemplateError::Exists(dir.to_path_buf()));
    }
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let parent = parent.canonicalize().map_err(io(parent))?;
    let dir = parent.join(dir.file_name().unwrap_or(dir.as_os_str()));
    let workspace = find_checkout(&parent);
    // Prepare everything before writing anything.
    let mut texts: Vec<(&'static str, String)> = FILES
        .iter()
        .map(|(path, text)| (*path, rename(text, name)))
        .collect();
    let members_update = match &workspace {
        Some(root) => {
            let rel = dir.strip_prefix(root).unwrap_or(&dir).to_path_buf();
            let host = format!("{}host", up(&rel));
            texts[0].1 = texts[0].1.replace("\"../../host\"", &format!("\"{host}\""));
            let path = root.join("Cargo.toml");
            let manifest = std::fs::read_to_string(&path).map_err(io(&path))?;
            Some((
                path.clone(),
                add_member(&manifest, &rel).ok_or(TemplateError::NoMembers(path))?,
            ))
        }
        None => {
            texts[0].1 = standalone_cargo_toml(name, checkout);
            None
        }
    };
    write_files(&dir, &texts)?;
    if let Some((path, text)) = members_update {
        std::fs::write(&path, text).map_err(io(&path))?;
    }
    Ok(Created {
        dir,
        workspace,
        files: FILES.iter().map(|(p, _)| *p).collect(),
    })
}

fn write_files(dir: &Path, texts: &[(&'static str, String)]) -> Result<(), TemplateError> {
    for (path, text) in texts {
        let file = dir.join(path);
        if let Some(p) = file.parent() {
            std::fs::create_dir_all(p).map_err(io(p))?;
        }
        std::fs::write(&file, text).map_err(io(&file))?;
    }
    Ok(())
}

/// Creates Python module `name` in `dir` from `templates/python-module`: `app.py`, its
/// manifest, README and tests. A Python module joins no workspace: `oar build` and `oar test`
/// take its folder. Refuses to touch an existing folder.
pub fn create_python(name: &str, dir: &Path) -> Result<Created, TemplateError> {
    check_name(name)?;
    if dir.exists() {
        return Err(TemplateError::Exists(dir.to_path_buf()));
    }
    let texts: Vec<(&'static str, String)> = PYTHON_FILES
        .iter()
        .map(|(path, text)| (*path, text.replace(PYTHON_TEMPLATE_NAME, name)))
        .collect();
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let dir = dir.canonicalize().map_err(io(dir))?;
    write_files(&dir, &texts)?;
    Ok(Created {
        dir,
        workspace: None,
        files: PYTHON_FILES.iter().map(|(p, _)| *p).collect(),
    })
}

/// `manifest` with `rel` added at the end of its workspace `members` list, or `None` if it has
/// no such list.
fn add_member(manifest: &str, rel: &Path) -> Option<String> {
    let start = manifest.find("members = [")?;
    let end = start + manifest[start..].find(']')?;
    let entry = rel.to_string_lossy().replace('\\', "/");
    let list = manifest[start..end].trim_end();
    let sep = if list.ends_with(',') || list.ends_with('[') {
        ""
    } else {
        ","
    };
    Some(format!(
        "{}{sep}\n    \"{entry}\",\n{}",
        &manifest[..start + list.len()],
        &manifest[end..]
    ))
}

/// The Cargo.toml of a module outside any OAR checkout: its own workspace, with the SDK and
/// the host (for native tests) from `checkout`, and the checkout's build profile.
fn standalone_cargo_toml(name: &str, checkout: &Path) -> String {
    let root = checkout.display().to_string().replace('\\', "/");
    format!(
        r#"[package]
name = "{name}"
description = "An OAR analysis module (made from the template by `oar new`)."
version = "0.1.0"
edition = "2021"
publish = false

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
oar-guest = {{ path = "{root}/guest-sdk" }}
serde = {{ version = "1", features = ["derive"] }}
serde_json = "1"

# Native tests through the real gate. The first `cargo test` compiles the host's dependencies
# (Polars, OpenDP, Wasmtime): about 20 minutes on two cores, then seconds.
[dev-dependencies]
oar-host = {{ path = "{root}/host" }}
tempfile = "3"

# A workspace of its own, optimised dependencies without debug info (as in the OAR checkout).
[workspace]

[profile.dev]
opt-level = 1

[profile.dev.package."*"]
opt-level = 1
debug = false

[profile.guest]
inherits = "release"
opt-level = "s"
strip = true
"#
    )
}

/// The files of the template, for checks that `oar new` writes exactly them.
pub fn template_files() -> &'static [(&'static str, &'static str)] {
    FILES
}

/// The files of the Python template, for checks that `oar new --lang python` writes exactly
/// them.
pub fn python_template_files() -> &'static [(&'static str, &'static str)] {
    PYTHON_FILES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_crate_names() {
        for ok in ["night-population", "od2", "a"] {
            check_name(ok).unwrap();
        }
        for bad in ["", "Night", "2od", "a_b", "a--b", "a-", "a b", "../x"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_member_is_added_to_the_list() {
        let m = "[workspace]\nmembers = [\n    \"host\",\n    \"guest-sdk\",\n]\ndefault-members = [\"host\"]\n";
        let out = add_member(m, Path::new("example-algorithms/x")).unwrap();
        assert_eq!(
            out,
            "[workspace]\nmembers = [\n    \"host\",\n    \"guest-sdk\",\n    \"example-algorithms/x\",\n]\ndefault-members = [\"host\"]\n"
        );
        let one_line = add_member("[workspace]\nmembers = [\"host\"]\n", Path::new("m")).unwrap();
        assert_eq!(
            one_line,
            "[workspace]\nmembers = [\"host\",\n    \"m\",\n]\n"
        );
        assert!(add_member("[package]\n", Path::new("m")).is_none());
    }

    #[test]
    fn renaming_touches_crate_and_library_names() {
        let text = "name = \"module-template\"\nuse module_template::run;";
        assert_eq!(
            rename(text, "night-pop"),
            "name = \"night-pop\"\nuse night_pop::run;"
        );
    }
}
