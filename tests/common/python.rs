//! Python from the registries for tests: the interop venv (packages pinned in
//! `tests/interop/requirements.txt`, installed once per target dir; `.ci/run` installs them too),
//! and Python modules built into components with its componentize-py.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `tests/interop`.
pub fn interop() -> PathBuf {
    repo().join("tests/interop")
}

/// Runs `cmd`, panicking with its output if it fails; returns stdout and stderr.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

/// The venv's Python, with the pinned packages (installed once per target dir).
pub fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("interop-venv");
        let python = venv.join("bin/python");
        let requirements = interop().join("requirements.txt");
        let marker = venv.join("installed-requirements.txt");
        let wanted = std::fs::read(&requirements).unwrap();
        if std::fs::read(&marker).ok().as_deref() != Some(wanted.as_slice()) {
            run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
            run(Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "-r",
                ])
                .arg(&requirements));
            std::fs::write(&marker, wanted).unwrap();
        }
        python
    })
}

/// pytest from the venv in `dir`, quiet, with doctests, writing no cache or bytecode; add the
/// paths to test.
pub fn pytest(dir: &Path) -> Command {
    let mut cmd = Command::new(python());
    cmd.args([
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--doctest-modules",
    ])
    .current_dir(dir)
    .env("PYTHONDONTWRITEBYTECODE", "1");
    cmd
}

/// The Python module in `DIR` (a folder of the repository holding its `app.py`) built into a
/// component with the pinned componentize-py and `--stub-wasi`, so that it imports only
/// `oar:runtime/host`. Built once per content of the module, the SDK and the WIT (cached under
/// the target dir).
pub fn component(dir: &str) -> Vec<u8> {
    use std::hash::{Hash, Hasher};
    let module = repo().join(dir);
    let sdk = repo().join("guest-sdk/python");
    let mut sources = vec![
        module.join("app.py"),
        sdk.join("oar_guest_component.py"),
        repo().join("guest-sdk/wit/oar.wit"),
        interop().join("requirements.txt"),
    ];
    let mut package: Vec<PathBuf> = std::fs::read_dir(sdk.join("oar_guest"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "py"))
        .collect();
    package.sort();
    sources.extend(package);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for s in &sources {
        std::fs::read(s).unwrap().hash(&mut hasher);
    }
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-components");
    std::fs::create_dir_all(&out_dir).unwrap();
    let stem = dir.replace('/', "-");
    let out = out_dir.join(format!("{stem}-{:016x}.wasm", hasher.finish()));
    if !out.exists() {
        let partial = out.with_extension(format!("{}.partial", std::process::id()));
        let componentize = python().with_file_name("componentize-py");
        run(Command::new(componentize)
            .arg("-d")
            .arg(repo().join("guest-sdk/wit"))
            .args(["-w", "module", "componentize", "oar_guest_component", "-p"])
            .arg(&sdk)
            .arg("-p")
            .arg(&module)
            .arg("--stub-wasi")
            .arg("-o")
            .arg(&partial));
        std::fs::rename(&partial, &out).unwrap();
    }
    std::fs::read(&out).unwrap()
}
