//! `oar bench --peers`: the same population query in Python, timed on the same files: exact with
//! Python Polars (the floor any engine is measured against) and as OpenDP-Python's user-level DP
//! release (the closest peer). The Python side lives outside the Rust build: a pinned virtual
//! environment from PyPI runs `peers.py`.

use super::BenchError;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The script, written next to the environment it runs in.
const SCRIPT: &str = include_str!("peers.py");
/// Its pinned requirements.
pub const REQUIREMENTS: &str = include_str!("peers-requirements.txt");

/// Medians from the Python side.
#[derive(Debug, Clone)]
pub struct PeerTimes {
    /// Python Polars' version.
    pub polars_version: String,
    /// OpenDP's version.
    pub opendp_version: String,
    /// Python Polars, the faster of its two engines.
    pub python_polars: Duration,
    /// OpenDP-Python's user-level DP count.
    pub opendp: Duration,
}

#[derive(serde::Deserialize)]
struct Printed {
    polars_version: String,
    opendp_version: String,
    polars_in_memory: f64,
    polars_streaming: f64,
    opendp: f64,
}

/// A Python with the pinned packages: `python` if given, else a virtual environment under
/// `dir` made with `python3` (created, or refreshed when the pins changed).
pub fn python(
    python: Option<&Path>,
    dir: &Path,
    progress: &mut dyn FnMut(crate::progress::Progress<'_>),
) -> Result<PathBuf, BenchError> {
    if let Some(p) = python {
        return Ok(p.to_path_buf());
    }
    let venv = dir.join("peers-venv");
    let bin = venv.join("bin").join("python");
    let installed = venv.join("installed-requirements.txt");
    if bin.exists() && std::fs::read_to_string(&installed).ok().as_deref() == Some(REQUIREMENTS) {
        return Ok(bin);
    }
    progress(crate::progress::Progress::Step(&format!(
        "installing opendp[polars] and polars from PyPI into {} (once) ...",
        venv.display()
    )));
    let missing = |what: &str| {
        BenchError::Peers(format!(
            "--peers needs {what} to install OpenDP-Python and Python Polars from PyPI: install python3 with venv and pip (Debian: apt-get install python3-venv), pass --python PATH to a Python that has them, or run without --peers"
        ))
    };
    let ok = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .map_err(|_| missing("python3"))?;
    if !ok.success() {
        return Err(missing("python3's venv module"));
    }
    let requirements = venv.join("requirements.txt");
    std::fs::write(&requirements, REQUIREMENTS)?;
    let ok = Command::new(&bin)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(&requirements)
        .status()
        .map_err(|_| missing("pip"))?;
    if !ok.success() {
        return Err(BenchError::Peers(format!(
            "pip could not install {} (is PyPI reachable?)",
            requirements.display()
        )));
    }
    std::fs::write(&installed, REQUIREMENTS)?;
    Ok(bin)
}

/// Times the Python side on `files`, whose public keys are `regions` × `days` (YYYY-MM-DD).
pub fn run(
    python: &Path,
    dir: &Path,
    files: &[PathBuf],
    regions: &[String],
    days: &[String],
    repeat: usize,
) -> Result<PeerTimes, BenchError> {
    let script = dir.join("peers.py");
    std::fs::write(&script, SCRIPT)?;
    let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let (mut region, mut day) = (Vec::new(), Vec::new());
    for r in regions {
        for d in days {
            region.push(r.clone());
            day.push(d.clone());
        }
    }
    let keys = serde_json::json!({ "region": region, "day": day });
    let out = Command::new(python)
        .arg(&script)
        .arg(serde_json::to_string(&files).expect("strings serialize"))
        .arg(keys.to_string())
        .arg(repeat.max(1).to_string())
        .output()
        .map_err(|e| BenchError::Peers(format!("cannot run {}: {e}", python.display())))?;
    if !out.status.success() {
        return Err(BenchError::Peers(format!(
            "the Python peers failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or("");
    let p: Printed = serde_json::from_str(line)
        .map_err(|e| BenchError::Peers(format!("the Python peers printed no result ({e})")))?;
    Ok(PeerTimes {
        polars_version: p.polars_version,
        opendp_version: p.opendp_version,
        python_polars: Duration::from_secs_f64(p.polars_in_memory.min(p.polars_streaming)),
        opendp: Duration::from_secs_f64(p.opendp),
    })
}
