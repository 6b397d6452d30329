//! Signatures made by code we did not write verify here: PyPI's and npm's
//! `http-message-signatures` sign a request offline (`tests/interop/*_sign* --offline`), and
//! OAR's verifier and policy accept it.
//!
//! Needs python3, node 20 and the package registries, so it runs only with `OAR_INTEROP=1`:
//! `OAR_INTEROP=1 cargo test -p oar-httpsig --test interop -- --nocapture`.
//! The package versions are the ones pinned in `tests/interop/requirements.txt` and
//! `tests/interop/package-lock.json`.

use oar_httpsig::oar::{self, verify_request, Verified};
use oar_httpsig::{verify, Request, SigningKey};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

const SEED_HEX: &str = "9f8362f87a484a954e6e740c5b4e0c84229139a20aa8ab56ff66586f6a7d29c5";
const BODY: &str = r#"{"module_hash": "1b4f0e9851971998e732078544c96b36c3d01cedf7caa332359d6f1d83567014", "params": {}}"#;
const URL: &str = "http://127.0.0.1:8420/v1/runs";

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/interop")
}

fn enabled() -> bool {
    if std::env::var("OAR_INTEROP").as_deref() == Ok("1") {
        return true;
    }
    println!("skipped: set OAR_INTEROP=1 to sign with the Python and npm libraries (needs python3, node and the registries)");
    false
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Verifies the JSON headers a script printed, with OAR's policy and the generic verifier.
fn verify_printed(who: &str, printed: &str) -> Verified {
    let headers: serde_json::Value = serde_json::from_str(printed.trim())
        .unwrap_or_else(|e| panic!("{who} printed no JSON ({e}): {printed}"));
    let header = |name: &str| {
        headers[name]
            .as_str()
            .unwrap_or_else(|| panic!("{who} printed no {name}: {printed}"))
            .to_string()
    };
    println!(
        "{who}:\n  Signature-Input: {}\n  Signature: {}\n  Content-Digest: {}",
        header("signature-input"),
        header("signature"),
        header("content-digest")
    );
    let req = Request::new("POST", URL)
        .unwrap()
        .with_header("Host", "127.0.0.1:8420")
        .with_header("Content-Type", "application/json")
        .with_header("Content-Digest", &header("content-digest"))
        .with_header("Signature-Input", &header("signature-input"))
        .with_header("Signature", &header("signature"));
    let seed: [u8; 32] = (0..32)
        .map(|i| u8::from_str_radix(&SEED_HEX[2 * i..2 * i + 2], 16).unwrap())
        .collect::<Vec<_>>()
        .try_into()
        .unwrap();
    let public = SigningKey::from_bytes(&seed).verifying_key();
    let keys = |keyid: &str| oar::key_from_keyid(keyid).filter(|k| k == public.as_bytes());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let verified = verify_request(&req, BODY.as_bytes(), now, 300, &keys)
        .unwrap_or_else(|e| panic!("{who}'s signature is refused: {e}"));
    assert_eq!(verified.keyid, oar::keyid_of(&public));
    let generic = verify(&req, &verified.label, &keys).unwrap();
    assert_eq!(generic.key, *public.as_bytes());
    // The body is bound: another body fails.
    assert!(verify_request(&req, b"{}", now, 300, &keys).is_err());
    verified
}

#[test]
fn python_http_message_signatures_is_accepted() {
    if !enabled() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let venv = tmp.path().join("venv");
    run(Command::new("python3").arg("-m").arg("venv").arg(&venv));
    let python = venv.join("bin/python");
    run(Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "-r"])
        .arg(interop_dir().join("requirements.txt")));
    let printed = run(Command::new(&python)
        .arg(interop_dir().join("python_sign.py"))
        .args(["--offline", SEED_HEX, BODY]));
    let verified = verify_printed("Python http-message-signatures", &printed);
    assert_eq!(verified.label, "pyhms");
}

#[test]
fn npm_http_message_signatures_is_accepted() {
    if !enabled() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for file in ["package.json", "package-lock.json", "node_sign.mjs"] {
        std::fs::copy(interop_dir().join(file), tmp.path().join(file)).unwrap();
    }
    run(Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--silent"])
        .current_dir(tmp.path()));
    let printed = run(Command::new("node")
        .arg(tmp.path().join("node_sign.mjs"))
        .args(["--offline", SEED_HEX, BODY]));
    let verified = verify_printed("npm http-message-signatures", &printed);
    assert_eq!(verified.label, "sig");
    assert!(verified.expires.is_some(), "the npm library sets expires");
}
