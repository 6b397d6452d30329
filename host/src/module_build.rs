//! `oar build` and `oar test`: one command per step for a module folder in either language.
//!
//! - A folder with a `Cargo.toml` is a Rust module: `cargo build --target wasm32-wasip2
//!   --profile guest` (the workspace's small, stripped profile), `cargo test` for its tests.
//! - A folder with an `app.py` is a Python module: `componentize-py` (0.25.1, from PyPI) with
//!   `--stub-wasi`, so the component imports only `oar:runtime/host`; `python3 -m unittest` for
//!   its tests, with the `oar` binary in `OAR` for `oar_guest.local.Harness`.
//!
//! The Python SDK and the WIT world a Python module is built against are the ones compiled into
//! this binary, written to a private temporary folder per command: a module always builds
//! against the SDK of the host it will be tested with, and needs no OAR checkout.
//!
//! Every component is checked as the host will check it (it compiles, and imports nothing but
//! the host interface and the allowed WASI) before anyone signs it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The componentize-py version OAR is built and tested with (`tests/interop/requirements.txt`).
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";

/// The Python SDK's files, as (path under the SDK folder, text).
const PYTHON_SDK: &[(&str, &str)] = &[
    (
        "oar_guest_component.py",
        include_str!("../../guest-sdk/python/oar_guest_component.py"),
    ),
    (
        "oar_guest/__init__.py",
        include_str!("../../guest-sdk/python/oar_guest/__init__.py"),
    ),
    (
        "oar_guest/_facts.py",
        include_str!("../../guest-sdk/python/oar_guest/_facts.py"),
    ),
    (
        "oar_guest/_json.py",
        include_str!("../../guest-sdk/python/oar_guest/_json.py"),
    ),
    (
        "oar_guest/_validate.py",
        include_str!("../../guest-sdk/python/oar_guest/_validate.py"),
    ),
    (
        "oar_guest/component.py",
        include_str!("../../guest-sdk/python/oar_guest/component.py"),
    ),
    (
        "oar_guest/errors.py",
        include_str!("../../guest-sdk/python/oar_guest/errors.py"),
    ),
    (
        "oar_guest/expr.py",
        include_str!("../../guest-sdk/python/oar_guest/expr.py"),
    ),
    (
        "oar_guest/host.py",
        include_str!("../../guest-sdk/python/oar_guest/host.py"),
    ),
    (
        "oar_guest/local.py",
        include_str!("../../guest-sdk/python/oar_guest/local.py"),
    ),
    (
        "oar_guest/per_unit.py",
        include_str!("../../guest-sdk/python/oar_guest/per_unit.py"),
    ),
    (
        "oar_guest/table.py",
        include_str!("../../guest-sdk/python/oar_guest/table.py"),
    ),
    (
        "oar_guest/testing.py",
        include_str!("../../guest-sdk/python/oar_guest/testing.py"),
    ),
];

/// The WIT world every module is built against.
const WIT: &str = include_str!("../../guest-sdk/wit/oar.wit");

/// The language of a module folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// A crate (`Cargo.toml`) using the Rust SDK.
    Rust,
    /// An `app.py` defining `run(ctx, params)`, using the Python SDK.
    Python,
}

/// Why a module could not be built or tested.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The folder is neither kind of module.
    #[error("{0} holds neither a Cargo.toml (a Rust module) nor an app.py (a Python module); give the module's folder, as `oar new` made it")]
    NotAModule(PathBuf),
    /// A tool is missing.
    #[error("cannot run {tool}: {reason}. {fix}")]
    Tool {
        /// The tool.
        tool: String,
        /// What went wrong.
        reason: String,
        /// How to get it.
        fix: String,
    },
    /// The tool ran and failed (its own output was shown).
    #[error("{0} failed (its output is above); fix the module and run again")]
    Failed(String),
    /// The build produced no component where one was expected.
    #[error("cargo built no .wasm for {0}: is it a `cdylib` crate (crate-type = [\"cdylib\", \"rlib\"])?")]
    NoArtifact(PathBuf),
    /// The component would be refused by the host.
    #[error("the host would refuse {path}: {reason}")]
    Refused {
        /// The component.
        path: PathBuf,
        /// The host's reason.
        reason: String,
    },
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BuildError + '_ {
    move |source| BuildError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The language of the module in `dir`.
pub fn detect(dir: &Path) -> Result<Language, BuildError> {
    if dir.join("Cargo.toml").is_file() {
        Ok(Language::Rust)
    } else if dir.join("app.py").is_file() {
        Ok(Language::Python)
    } else {
        Err(BuildError::NotAModule(dir.to_path_buf()))
    }
}

/// The module's name: its manifest's `name`, else its folder's name.
fn module_name(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("manifest.toml"))
        .ok()
        .and_then(|t| toml::from_str::<toml::Table>(&t).ok())
        .and_then(|t| t.get("name")?.as_str().map(str::to_string))
        .unwrap_or_else(|| {
            dir.canonicalize()
                .ok()
                .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "module".into())
        })
}

/// The tools `build` and `test` call.
#[derive(Debug, Clone)]
pub struct Tools {
    /// `cargo`.
    pub cargo: PathBuf,
    /// `componentize-py`.
    pub componentize_py: PathBuf,
    /// The Python that runs a Python module's tests.
    pub python: PathBuf,
}

impl Default for Tools {
    fn default() -> Self {
        let env = |name: &str, default: &str| {
            std::env::var_os(name)
                .map(PathBuf::from)
                .unwrap_or_else(|| default.into())
        };
        Tools {
            cargo: env("CARGO", "cargo"),
            componentize_py: "componentize-py".into(),
            python: "python3".into(),
        }
    }
}

/// A private folder holding the Python SDK and the WIT compiled into this binary.
pub struct SdkFolder {
    dir: tempfile::TempDir,
}

impl SdkFolder {
    /// Writes the SDK (`python/`) and the WIT (`wit/oar.wit`).
    pub fn write() -> Result<SdkFolder, BuildError> {
        let dir = tempfile::Builder::new()
            .prefix("oar-sdk-")
            .tempdir()
            .map_err(io(&std::env::temp_dir()))?;
        for (path, text) in PYTHON_SDK
            .iter()
            .map(|(p, t)| (Path::new("python").join(p), *t))
            .chain([(Path::new("wit").join("oar.wit"), WIT)])
        {
            let file = dir.path().join(path);
            if let Some(p) = file.parent() {
                std::fs::create_dir_all(p).map_err(io(p))?;
            }
            std::fs::write(&file, text).map_err(io(&file))?;
        }
        Ok(SdkFolder { dir })
    }

    /// The folder to put on `PYTHONPATH`.
    pub fn python(&self) -> PathBuf {
        self.dir.path().join("python")
    }

    /// The WIT folder.
    pub fn wit(&self) -> PathBuf {
        self.dir.path().join("wit")
    }
}

/// What [`build`] made.
#[derive(Debug)]
pub struct Built {
    /// The module's language.
    pub language: Language,
    /// The module's name.
    pub name: String,
    /// The component.
    pub component: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its module hash (hex SHA-256), as `oar sign` and approvals will name it.
    pub module_hash: String,
}

/// Runs `cmd`, its output going to this process's; fails naming `fix` if it cannot start.
fn status(cmd: &mut Command, fix: &str) -> Result<(), BuildError> {
    let tool = cmd.get_program().to_string_lossy().into_owned();
    let status = cmd.status().map_err(|e| BuildError::Tool {
        tool: tool.clone(),
        reason: e.to_string(),
        fix: fix.into(),
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(BuildError::Failed(tool))
    }
}

fn componentize_fix() -> String {
    format!(
        "Install it with `python3 -m pip install componentize-py=={COMPONENTIZE_PY_VERSION}` (the version OAR is tested with), or pass --componentize-py PATH"
    )
}

/// Builds the module in `dir` into a component and checks it as the host will. `out` is where
/// the component goes (default: `DIR/build/NAME.wasm` for Python, cargo's own path for Rust).
pub fn build(dir: &Path, out: Option<&Path>, tools: &Tools) -> Result<Built, BuildError> {
    let language = detect(dir)?;
    let name = module_name(dir);
    let component = match language {
        Language::Python => build_python(dir, &name, out, tools)?,
        Language::Rust => {
            let built = build_rust(dir, tools)?;
            match out {
                Some(out) => {
                    copy(&built, out)?;
                    out.to_path_buf()
                }
                None => built,
            }
        }
    };
    let bytes = std::fs::read(&component).map_err(io(&component))?;
    crate::sandbox::check_component(&bytes).map_err(|e| BuildError::Refused {
        path: component.clone(),
        reason: e.to_string(),
    })?;
    Ok(Built {
        language,
        name,
        component,
        bytes: bytes.len() as u64,
        module_hash: hex::encode(crate::keys::sha256(&bytes)),
    })
}

fn copy(from: &Path, to: &Path) -> Result<(), BuildError> {
    if let Some(p) = to.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(p).map_err(io(p))?;
    }
    std::fs::copy(from, to).map_err(io(to))?;
    Ok(())
}

fn build_python(
    dir: &Path,
    name: &str,
    out: Option<&Path>,
    tools: &Tools,
) -> Result<PathBuf, BuildError> {
    let out = out
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.join("build").join(format!("{name}.wasm")));
    if let Some(p) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(p).map_err(io(p))?;
    }
    let sdk = SdkFolder::write()?;
    // componentize-py writes the file in place; a failed build must not leave half of one
    // where a signer would pick it up.
    let partial = out.with_extension("wasm.partial");
    let built = status(
        Command::new(&tools.componentize_py)
            .arg("-d")
            .arg(sdk.wit())
            .args(["-w", "module", "componentize", "oar_guest_component", "-p"])
            .arg(sdk.python())
            .arg("-p")
            .arg(dir)
            .arg("--stub-wasi")
            .arg("-o")
            .arg(&partial),
        &componentize_fix(),
    );
    if let Err(e) = built {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    std::fs::rename(&partial, &out).map_err(io(&out))?;
    Ok(out)
}

fn build_rust(dir: &Path, tools: &Tools) -> Result<PathBuf, BuildError> {
    let manifest = dir.join("Cargo.toml");
    let output = Command::new(&tools.cargo)
        .args(["build", "--manifest-path"])
        .arg(&manifest)
        .args([
            "--target",
            "wasm32-wasip2",
            "--profile",
            "guest",
            "--message-format",
            "json-render-diagnostics",
        ])
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| BuildError::Tool {
            tool: tools.cargo.display().to_string(),
            reason: e.to_string(),
            fix: "Install Rust with rustup (https://rustup.rs); the repository's rust-toolchain.toml adds the wasm32-wasip2 target".into(),
        })?;
    if !output.status.success() {
        return Err(BuildError::Failed("cargo build".into()));
    }
    let manifest = manifest.canonicalize().map_err(io(&manifest))?;
    wasm_artifact(&String::from_utf8_lossy(&output.stdout), &manifest)
        .ok_or(BuildError::NoArtifact(dir.to_path_buf()))
}

/// The `.wasm` cargo reported building for the package at `manifest`, from its JSON messages.
fn wasm_artifact(messages: &str, manifest: &Path) -> Option<PathBuf> {
    messages
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| m["manifest_path"].as_str().map(Path::new) == Some(manifest))
        .flat_map(|m| {
            m["filenames"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|f| f.as_str().map(PathBuf::from))
        })
        .find(|f| f.extension().is_some_and(|e| e == "wasm"))
}

/// Runs the module's tests: `cargo test` for Rust; for Python, `python -m unittest discover -s
/// tests` in the module folder with the module and the SDK importable and `OAR` set to `oar`
/// (this binary), which `oar_guest.local.Harness` runs as the local host.
pub fn test(dir: &Path, oar: &Path, tools: &Tools) -> Result<Language, BuildError> {
    let language = detect(dir)?;
    match language {
        Language::Rust => status(
            Command::new(&tools.cargo)
                .args(["test", "--manifest-path"])
                .arg(dir.join("Cargo.toml")),
            "Install Rust with rustup (https://rustup.rs)",
        )?,
        Language::Python => {
            let sdk = SdkFolder::write()?;
            let dir = dir.canonicalize().map_err(io(dir))?;
            let path = std::env::join_paths([dir.clone(), sdk.python()])
                .map_err(|e| io(&dir)(std::io::Error::other(e)))?;
            status(
                Command::new(&tools.python)
                    .args(["-m", "unittest", "discover", "-s", "tests", "-v"])
                    .current_dir(&dir)
                    .env("PYTHONPATH", path)
                    .env("PYTHONDONTWRITEBYTECODE", "1")
                    .env("OAR", oar),
                "Install Python 3.10 or later (python3), or pass --python PATH",
            )?
        }
    }
    Ok(language)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sdk_file_is_compiled_in_and_matches_the_checkout() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk/python");
        let mut on_disk: Vec<String> = std::fs::read_dir(root.join("oar_guest"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "py"))
            .map(|p| format!("oar_guest/{}", p.file_name().unwrap().to_string_lossy()))
            .chain(["oar_guest_component.py".to_string()])
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = PYTHON_SDK.iter().map(|(p, _)| p.to_string()).collect();
        embedded.sort();
        assert_eq!(embedded, on_disk, "PYTHON_SDK must list every SDK file");
        let sdk = SdkFolder::write().unwrap();
        for (p, _) in PYTHON_SDK {
            assert_eq!(
                std::fs::read(sdk.python().join(p)).unwrap(),
                std::fs::read(root.join(p)).unwrap()
            );
        }
    }

    #[test]
    fn the_language_is_read_from_the_folder() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(detect(d.path()), Err(BuildError::NotAModule(_))));
        std::fs::write(d.path().join("app.py"), "").unwrap();
        assert_eq!(detect(d.path()).unwrap(), Language::Python);
        std::fs::write(d.path().join("Cargo.toml"), "").unwrap();
        assert_eq!(detect(d.path()).unwrap(), Language::Rust);
    }

    #[test]
    fn the_component_is_found_in_cargos_messages() {
        let m = Path::new("/m/x/Cargo.toml");
        let messages = [
            r#"{"reason":"compiler-artifact","manifest_path":"/m/dep/Cargo.toml","filenames":["/t/libdep.rlib"]}"#,
            r#"{"reason":"compiler-artifact","manifest_path":"/m/x/Cargo.toml","filenames":["/t/x.wasm","/t/libx.rlib"]}"#,
            r#"{"reason":"build-finished","success":true}"#,
        ]
        .join("\n");
        assert_eq!(
            wasm_artifact(&messages, m),
            Some(PathBuf::from("/t/x.wasm"))
        );
        assert_eq!(wasm_artifact(&messages, Path::new("/other")), None);
    }

    #[test]
    fn a_missing_tool_names_the_fix() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("app.py"), "def run(ctx, params): pass\n").unwrap();
        let tools = Tools {
            componentize_py: d.path().join("no-such-componentize-py"),
            ..Tools::default()
        };
        let e = build(d.path(), None, &tools).unwrap_err().to_string();
        assert!(e.contains("pip install componentize-py==0.25.1"), "{e}");
        assert!(!d.path().join("build/module.wasm").exists());
    }
}
