//! Builds the guest components (example modules and the adversarial test modules) for
//! `wasm32-wasip2`, so that `cargo run -p oar-host -- demo` and `cargo test` need no manual step.
//!
//! The guests build with a nested `cargo build --profile guest` into their own target directory
//! (`<target>/guests`), which avoids the outer build's lock and keeps the small guest build apart
//! from the host's heavy dependencies. The resulting `.wasm` files are copied into `OUT_DIR`; the
//! host reads them through `OAR_GUEST_DIR` (see `src/artifacts.rs`).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Guest crates and the file names their components get.
const GUESTS: &[(&str, &str)] = &[
    ("population", "population"),
    ("rates-gap", "rates_gap"),
    ("od-flows", "od_flows"),
    ("load-profile", "load_profile"),
    ("event-traffic", "event_traffic"),
    ("module-template", "module_template"),
    ("oar-test-guest-spin", "oar_test_guest_spin"),
    ("oar-test-guest-hog", "oar_test_guest_hog"),
    ("oar-test-guest-greedy", "oar_test_guest_greedy"),
    ("oar-test-guest-sleepy", "oar_test_guest_sleepy"),
];

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_path_buf();
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    // Every file and folder of the guests' sources, not just the top folders: a folder's own
    // modification time changes only when an entry is added or removed, so an edited guest
    // source would otherwise leave a stale component behind.
    for dir in [
        "guest-sdk",
        "example-algorithms",
        "templates",
        "tests/guests",
    ] {
        watch(&root.join(dir));
    }
    println!(
        "cargo:rerun-if-changed={}",
        root.join("Cargo.lock").display()
    );

    ensure_wasm_target();

    // <target>/<profile>/build/<pkg>-<hash>/out -> <target>
    let target_dir = out_dir.ancestors().nth(4).unwrap().to_path_buf();
    let guest_target = target_dir.join("guests");

    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .arg("build")
        .arg("--profile")
        .arg("guest")
        .arg("--target")
        .arg(TARGET)
        .arg("--target-dir")
        .arg(&guest_target);
    if root.join("Cargo.lock").exists() {
        cmd.arg("--locked");
    }
    for (package, _) in GUESTS {
        cmd.arg("-p").arg(package);
    }
    // The outer build's flags, jobserver and profile overrides are not the guests' business.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    for (key, _) in env::vars() {
        if key.starts_with("CARGO_PROFILE_") || key.starts_with("CARGO_FEATURE_") {
            cmd.env_remove(key);
        }
    }
    let status = cmd
        .status()
        .expect("could not start cargo to build the guest components");
    if !status.success() {
        panic!(
            "building the guest components for {TARGET} failed (see the cargo output above); \
             try `cargo build --profile guest --target {TARGET} -p population` to see why"
        );
    }

    let built = guest_target.join(TARGET).join("guest");
    for (_, file) in GUESTS {
        let from = built.join(format!("{file}.wasm"));
        let to = out_dir.join(format!("{file}.wasm"));
        copy_if_changed(&from, &to);
    }
    println!("cargo:rustc-env=OAR_GUEST_DIR={}", out_dir.display());
}

/// Asks cargo to rerun this script when `path`, or anything below it, changes (build output
/// folders named `target` are skipped).
fn watch(path: &Path) {
    println!("cargo:rerun-if-changed={}", path.display());
    if let Ok(entries) = std::fs::read_dir(path) {
        for entry in entries.flatten() {
            let p = entry.path();
            if p.is_dir() {
                if entry.file_name() != "target" {
                    watch(&p);
                }
            } else {
                println!("cargo:rerun-if-changed={}", p.display());
            }
        }
    }
}

/// Installs the wasm target through rustup when the toolchain lacks it (rust-toolchain.toml lists
/// it, but machines with rustup auto-install switched off do not add it by themselves).
fn ensure_wasm_target() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim().to_string()));
    if libdir.as_deref().is_some_and(has_std) {
        return;
    }
    let mut cmd = Command::new("rustup");
    cmd.args(["target", "add", TARGET]);
    if let Ok(toolchain) = env::var("RUSTUP_TOOLCHAIN") {
        cmd.args(["--toolchain", &toolchain]);
    }
    match cmd.status() {
        Ok(s) if s.success() => {}
        _ => panic!(
            "the Rust target {TARGET} is missing and `rustup target add {TARGET}` failed; \
             install it by hand and build again"
        ),
    }
}

fn has_std(libdir: &Path) -> bool {
    std::fs::read_dir(libdir)
        .map(|entries| {
            entries.flatten().any(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.starts_with("libstd-") && name.ends_with(".rlib")
            })
        })
        .unwrap_or(false)
}

fn copy_if_changed(from: &Path, to: &Path) {
    let new = std::fs::read(from)
        .unwrap_or_else(|e| panic!("guest component {} missing: {e}", from.display()));
    if std::fs::read(to).ok().as_deref() != Some(&new[..]) {
        std::fs::write(to, &new).unwrap_or_else(|e| panic!("writing {}: {e}", to.display()));
    }
}
