//! The command-line path a researcher, two committee members and a data holder take, one
//! command at a time: keygen, synth, sign, review, approve (k of n), verify, run, revoke.

use std::path::Path;
use std::process::{Command, Output};

#[allow(dead_code)]
#[path = "common/python.rs"]
mod python;

fn oar(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_oar"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("oar runs")
}

fn ok(out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn public_key(dir: &Path, name: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(format!("keys/{name}.pub"))).unwrap())
            .unwrap();
    v["public"].as_str().unwrap().to_string()
}

/// `oar sign` of the population component with its manifest, using `key`, into `out`.
fn sign(dir: &Path, key: &str, out: &str) -> Output {
    sign_module(dir, "population", "example-algorithms/population", key, out)
}

/// `oar sign` of `component` (built by build.rs) with the manifest in `crate_dir` (relative to
/// the repository), using `key`, into `out`.
fn sign_module(dir: &Path, component: &str, crate_dir: &str, key: &str, out: &str) -> Output {
    let component = oar_host::artifacts::component_path(component);
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(crate_dir)
        .join("manifest.toml");
    oar(
        &[
            "sign",
            "--component",
            component.to_str().unwrap(),
            "--manifest",
            manifest.to_str().unwrap(),
            "--key",
            key,
            "--out",
            out,
        ],
        dir,
    )
}

#[test]
fn sign_approve_verify_run_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    for who in [
        "author",
        "member-1",
        "member-2",
        "member-3",
        "stats-office",
        "holder",
    ] {
        ok(oar(&["keygen", who, "--out", "keys"], d));
    }
    ok(oar(
        &["synth", "cdr", "--out", "data", "--rows", "50000"],
        d,
    ));
    let policy = format!(
        "[[authors]]\nname = \"author\"\nkey = \"{}\"\ndatasets = [\"cdr\"]\n\n[committee]\nquorum = 2\n{}\n\
         [[requesters]]\nname = \"stats-office\"\nkey = \"{}\"\ndatasets = [\"cdr\"]\n",
        public_key(d, "author"),
        (1..=3)
            .map(|i| format!(
                "[[committee.members]]\nname = \"m{i}\"\nkey = \"{}\"\n",
                public_key(d, &format!("member-{i}"))
            ))
            .collect::<String>(),
        public_key(d, "stats-office"),
    );
    std::fs::write(d.join("policy.toml"), policy).unwrap();

    let signed = ok(sign(d, "keys/author.key", "population.oarb"));
    assert!(signed.contains("module hash"), "{signed}");

    // What a committee member reads before signing, as text and as JSON.
    let review = ok(oar(
        &["review", "population.oarb", "--policy", "policy.toml"],
        d,
    ));
    assert!(
        review.contains("PURPOSE") && review.contains("dataset 'cdr': columns timestamp, region"),
        "{review}"
    );
    assert!(
        review.contains("signed by trusted author 'author'"),
        "{review}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(oar(&["review", "population.oarb", "--json"], d))).unwrap();
    assert_eq!(json["max_epsilon_per_run"], 2.0);
    assert!(signed.contains(json["module_hash"].as_str().unwrap()));

    let approve = |member: &str| {
        ok(oar(
            &[
                "approve",
                "--bundle",
                "population.oarb",
                "--key",
                &format!("keys/{member}.key"),
                "--approval",
                "approval.json",
            ],
            d,
        ))
    };
    let verify = || {
        oar(
            &[
                "verify",
                "--bundle",
                "population.oarb",
                "--approval",
                "approval.json",
                "--policy",
                "policy.toml",
            ],
            d,
        )
    };

    approve("member-1");
    let one = verify();
    assert!(
        !one.status.success(),
        "one signature of a quorum of two must not verify"
    );
    assert!(String::from_utf8_lossy(&one.stderr).contains("quorum is 2"));
    // The same member signing again still counts once.
    approve("member-1");
    assert!(!verify().status.success());
    approve("member-3");
    assert!(ok(verify()).starts_with("OK:"));

    // `oar run` of the population module as `requester` into `out`, with `extra` arguments.
    let run_with = |requester: &str, out: &str, extra: &[&str]| {
        let mut args = vec![
            "run",
            "--bundle",
            "population.oarb",
            "--approval",
            "approval.json",
            "--policy",
            "policy.toml",
            "--dataset",
            "data/cdr.toml",
            "--requester",
            requester,
            "--out",
            out,
        ];
        args.extend_from_slice(extra);
        oar(&args, d)
    };
    let run_as = |requester: &str, out: &str| {
        run_with(
            requester,
            out,
            &[
                "--params",
                r#"{"epsilon": 0.5}"#,
                "--holder-key",
                "keys/holder.key",
                "--audit",
                "audit.log",
            ],
        )
    };
    // A dry run first: synthetic data shaped like the real set, nothing spent or written.
    let dry = ok(run_with(
        "stats-office",
        "dry-release",
        &[
            "--params",
            r#"{"epsilon": 0.5}"#,
            "--dry-run",
            "--dry-rows",
            "50000",
            "--dry-units",
            "5000",
        ],
    ));
    assert!(dry.contains("DRY RUN"), "{dry}");
    assert!(dry.contains("a real run would cost epsilon 0.5"), "{dry}");
    assert!(
        dry.contains("table population_by_region_day: 147 cells"),
        "{dry}"
    );
    assert!(dry.contains("expected error ±"), "{dry}");
    assert!(!d.join("dry-release").exists() && !d.join("oar-ledger.db").exists());

    let run = ok(run_as("stats-office", "release"));
    assert!(run.contains("released 1 table(s)"), "{run}");
    assert!(d.join("release/population_by_region_day.csv").exists());

    // The statistical office checks the release offline; the auditor checks the log.
    let holder = public_key(d, "holder");
    let checked = ok(oar(&["verify-release", "release", "--holder", &holder], d));
    assert!(checked.starts_with("OK: release of job"), "{checked}");
    // The `.pub` file `oar keygen` wrote works as well as the hex key; the secret key file is
    // refused with the fix.
    let by_file = ok(oar(
        &["verify-release", "release", "--holder", "keys/holder.pub"],
        d,
    ));
    assert!(by_file.starts_with("OK: release of job"), "{by_file}");
    let secret = oar(
        &["verify-release", "release", "--holder", "keys/holder.key"],
        d,
    );
    assert!(!secret.status.success());
    assert!(
        String::from_utf8_lossy(&secret.stderr)
            .contains("give the public one (the `.pub` beside it)"),
        "{}",
        String::from_utf8_lossy(&secret.stderr)
    );
    let csv = d.join("release/population_by_region_day.csv");
    let original = std::fs::read(&csv).unwrap();
    std::fs::write(
        &csv,
        [&original[..], b"R99,2026-03-02,1,released\n"].concat(),
    )
    .unwrap();
    let tampered = oar(&["verify-release", "release", "--holder", &holder], d);
    assert!(!tampered.status.success());
    assert!(
        String::from_utf8_lossy(&tampered.stderr).contains("altered after the holder signed it")
    );
    std::fs::write(&csv, original).unwrap();

    // A run a crash cut short (begun in the ledger, never finished) gets its closing audit
    // entry at the next start.
    {
        use oar_host::ledger::Ledger as _;
        let ledger = oar_host::ledger::SqliteLedger::open(&d.join("oar-ledger.db")).unwrap();
        ledger
            .begin_run("crashedclijob001", "stats-office", "ab")
            .unwrap();
    }
    // A requester the policy does not know gets nothing.
    let stranger = run_as("nobody", "release2");
    assert!(!stranger.status.success());
    assert!(String::from_utf8_lossy(&stranger.stderr).contains("not listed"));
    assert!(!d.join("release2").exists());
    let log = std::fs::read_to_string(d.join("audit.log")).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("crashedclijob001") && l.contains("\"kind\":\"run_failed\"")),
        "no closing entry for the interrupted run"
    );
    let audited = ok(oar(
        &["audit", "verify", "audit.log", "--holder", &holder],
        d,
    ));
    assert!(audited.contains("entries chain correctly"), "{audited}");
    let register = ok(oar(&["audit", "export", "audit.log"], d));
    assert!(
        register.starts_with("at,job_id,requester,module"),
        "{register}"
    );
    assert_eq!(register.lines().count(), 2, "one release: {register}");
    assert!(
        register.contains(",stats-office,population 0.1.0,"),
        "{register}"
    );

    // The holder picks the query engine: DataFusion in this process when the host is built
    // with it, and a clear way to build it when not.
    let on_datafusion = run_with(
        "stats-office",
        "release-datafusion",
        &["--params", r#"{"epsilon": 0.25}"#, "--engine", "datafusion"],
    );
    if cfg!(feature = "datafusion") {
        let run = ok(on_datafusion);
        assert!(run.contains("released 1 table(s)"), "{run}");
        assert!(d
            .join("release-datafusion/population_by_region_day.csv")
            .exists());
    } else {
        assert!(!on_datafusion.status.success());
        let stderr = String::from_utf8_lossy(&on_datafusion.stderr);
        assert!(stderr.contains("--features datafusion"), "{stderr}");
    }
    let unknown = oar(&["run", "--engine", "duckdb"], d);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("df://host:port"));

    // Revocation: one member's signature is not enough to install a list; two are.
    let module_hash = json["module_hash"].as_str().unwrap().to_string();
    ok(oar(
        &[
            "revoke",
            "add",
            "--list",
            "revoked.json",
            "--kind",
            "module",
            "--id",
            &module_hash,
            "--reason",
            "bounding bug found after approval",
        ],
        d,
    ));
    let verify_revoked = || {
        oar(
            &[
                "verify",
                "--bundle",
                "population.oarb",
                "--approval",
                "approval.json",
                "--policy",
                "policy.toml",
                "--revocations",
                "revoked.json",
            ],
            d,
        )
    };
    let sign_list = |member: &str| {
        ok(oar(
            &[
                "revoke",
                "sign",
                "--list",
                "revoked.json",
                "--key",
                &format!("keys/{member}.key"),
            ],
            d,
        ))
    };
    sign_list("member-1");
    let unsigned = verify_revoked();
    assert!(!unsigned.status.success());
    assert!(
        String::from_utf8_lossy(&unsigned.stderr).contains("not signed by the holder or by 2"),
        "{}",
        String::from_utf8_lossy(&unsigned.stderr)
    );
    sign_list("member-2");
    ok(oar(
        &[
            "revoke",
            "check",
            "--list",
            "revoked.json",
            "--policy",
            "policy.toml",
        ],
        d,
    ));
    let revoked = verify_revoked();
    assert!(!revoked.status.success());
    let stderr = String::from_utf8_lossy(&revoked.stderr);
    assert!(stderr.contains("was revoked: bounding bug"), "{stderr}");
    // Finding 12.9: `oar run` ignored revocations unless given `--revocations`. The holder's
    // list beside the policy now applies by default.
    std::fs::copy(d.join("revoked.json"), d.join("revocations.json")).unwrap();
    let stopped = run_as("stats-office", "release3");
    assert!(!stopped.status.success(), "a revoked module ran");
    let stderr = String::from_utf8_lossy(&stopped.stderr);
    assert!(stderr.contains("was revoked: bounding bug"), "{stderr}");
    assert!(!d.join("release3").exists());
}

#[test]
fn signing_with_a_public_key_file_is_refused_with_a_hint() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    ok(oar(&["keygen", "author", "--out", "keys"], d));
    let out = sign(d, "keys/author.pub", "x.oarb");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is this a .pub file?"));
}

/// A folder that looks like an OAR checkout: a workspace Cargo.toml and a guest-sdk folder.
fn fake_checkout(d: &Path) {
    std::fs::create_dir_all(d.join("guest-sdk")).unwrap();
    std::fs::write(
        d.join("Cargo.toml"),
        "[workspace]\nmembers = [\n    \"host\",\n    \"guest-sdk\",\n]\n",
    )
    .unwrap();
}

/// Checks that `oar new` wrote, under `d/folder`, the checked-in template files at `folder`.
fn same_as_checked_in(d: &Path, folder: &str, files: &[(&str, &str)]) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(folder);
    for (file, _) in files {
        assert_eq!(
            std::fs::read_to_string(d.join(folder).join(file)).unwrap(),
            std::fs::read_to_string(repo.join(file)).unwrap(),
            "{file}"
        );
    }
}

#[test]
fn oar_new_makes_a_module_that_joins_the_workspace_and_refuses_to_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    fake_checkout(d);
    let out = ok(oar(&["new", "night-pop"], d));
    assert!(out.contains("cargo test -p night-pop"), "{out}");
    let m = d.join("example-algorithms/night-pop");
    let cargo = std::fs::read_to_string(m.join("Cargo.toml")).unwrap();
    assert!(cargo.contains("name = \"night-pop\""), "{cargo}");
    assert!(
        cargo.contains("oar-host = { path = \"../../host\" }"),
        "{cargo}"
    );
    let test = std::fs::read_to_string(m.join("tests/native.rs")).unwrap();
    assert!(test.contains("use night_pop::{run, Params, OUTPUT};"));
    let manifest = std::fs::read_to_string(m.join("manifest.toml")).unwrap();
    assert!(manifest.contains("name = \"night-pop\""));
    assert!(!format!("{cargo}{test}{manifest}").contains("module-template"));
    let root = std::fs::read_to_string(d.join("Cargo.toml")).unwrap();
    assert!(
        root.contains("    \"guest-sdk\",\n    \"example-algorithms/night-pop\",\n]"),
        "{root}"
    );

    // Again: refused, and nothing changes.
    let before = std::fs::read_to_string(m.join("src/lib.rs")).unwrap();
    let again = oar(&["new", "night-pop"], d);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    assert_eq!(
        std::fs::read_to_string(m.join("src/lib.rs")).unwrap(),
        before
    );
    assert_eq!(std::fs::read_to_string(d.join("Cargo.toml")).unwrap(), root);

    // A name that is not a crate name: refused before anything is written.
    let bad = oar(&["new", "Night_Pop"], d);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a module name"));
    assert!(!d.join("example-algorithms/Night_Pop").exists());
}

#[test]
fn oar_new_writes_exactly_the_template_that_ci_builds_tests_and_signs() {
    // Under its own name and place, `oar new` reproduces templates/module byte for byte, so the
    // template crate (a workspace member: built for wasm by build.rs, its native tests run by
    // `cargo test --workspace`) is what authors get.
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    fake_checkout(d);
    ok(oar(
        &["new", "module-template", "--dir", "templates/module"],
        d,
    ));
    same_as_checked_in(d, "templates/module", oar_host::template::template_files());

    // The template's component signs with its manifest and reviews.
    ok(oar(&["keygen", "author", "--out", "keys"], d));
    ok(sign_module(
        d,
        "module_template",
        "templates/module",
        "keys/author.key",
        "module.oarb",
    ));
    let review = ok(oar(&["review", "module.oarb"], d));
    assert!(review.contains("module-template"), "{review}");
    assert!(review.contains("subscribers_by_region"), "{review}");
}

#[test]
fn oar_new_outside_a_checkout_makes_a_standalone_crate() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    ok(oar(&["new", "solo"], d));
    let cargo = std::fs::read_to_string(d.join("solo/Cargo.toml")).unwrap();
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    assert!(cargo.contains("[workspace]"), "{cargo}");
    assert!(
        cargo.contains(&format!("path = \"{}/guest-sdk\"", checkout.display())),
        "{cargo}"
    );
    assert!(std::fs::read_to_string(d.join("solo/src/lib.rs"))
        .unwrap()
        .contains("pub fn run"));
}

#[test]
fn oar_new_lang_python_writes_exactly_the_python_template() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    fake_checkout(d);
    let out = ok(oar(
        &[
            "new",
            "python-module-template",
            "--lang",
            "python",
            "--dir",
            "templates/python-module",
        ],
        d,
    ));
    assert!(out.contains("oar test"), "{out}");
    same_as_checked_in(
        d,
        "templates/python-module",
        oar_host::template::python_template_files(),
    );
    // A Python module joins no workspace.
    assert!(!std::fs::read_to_string(d.join("Cargo.toml"))
        .unwrap()
        .contains("python-module"));
}

/// The Python template out of the box, outside any checkout, as an author takes it: new, test
/// (the FakeHost tests and a native run through the real gate), build (componentize-py from
/// PyPI, pinned), sign, approve, and a holder's dry run on synthetic data.
#[test]
fn a_new_python_module_tests_builds_signs_and_dry_runs_out_of_the_box() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let created = ok(oar(&["new", "night-py", "--lang", "python"], d));
    assert!(
        created.contains("created Python module 'night-py'"),
        "{created}"
    );
    let manifest = std::fs::read_to_string(d.join("night-py/manifest.toml")).unwrap();
    assert!(manifest.contains("name = \"night-py\""), "{manifest}");

    let tested = oar(&["test", "night-py"], d);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&tested.stdout),
        String::from_utf8_lossy(&tested.stderr)
    );
    assert!(tested.status.success(), "{text}");
    for line in [
        "test_publishes_one_row_per_region_and_never_the_small_island",
        "test_a_column_outside_the_manifest_is_refused_and_nothing_is_charged",
        "Doctest: app.combine ... ok",
        "Ran 7 tests",
    ] {
        assert!(text.contains(line), "missing '{line}' in:\n{text}");
    }

    // pytest from PyPI runs them too, doctests included, as the template's README says.
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk/python");
    let module = d.join("night-py");
    let pytest = python::pytest(&module)
        .args(["app.py", "tests"])
        .env(
            "PYTHONPATH",
            std::env::join_paths([module.clone(), sdk]).unwrap(),
        )
        .env("OAR", env!("CARGO_BIN_EXE_oar"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&pytest.stdout);
    assert!(
        pytest.status.success() && text.contains("7 passed"),
        "{text}"
    );

    let componentize = python::python().with_file_name("componentize-py");
    let built = ok(oar(
        &[
            "build",
            "night-py",
            "--componentize-py",
            componentize.to_str().unwrap(),
        ],
        d,
    ));
    assert!(
        built.contains("imports only what the host provides"),
        "{built}"
    );
    assert!(d.join("night-py/build/night-py.wasm").exists());
    assert!(!d.join("night-py/build/night-py.wasm.partial").exists());

    for who in ["author", "member", "stats-office"] {
        ok(oar(&["keygen", who, "--out", "keys"], d));
    }
    ok(oar(
        &["synth", "cdr", "--out", "data", "--rows", "50000"],
        d,
    ));
    std::fs::write(
        d.join("policy.toml"),
        format!(
            "[[authors]]\nname = \"author\"\nkey = \"{}\"\ndatasets = [\"cdr\"]\n\n[committee]\nquorum = 1\n\
             [[committee.members]]\nname = \"m\"\nkey = \"{}\"\n\n\
             [[requesters]]\nname = \"stats-office\"\nkey = \"{}\"\ndatasets = [\"cdr\"]\n",
            public_key(d, "author"),
            public_key(d, "member"),
            public_key(d, "stats-office"),
        ),
    )
    .unwrap();
    let signed = ok(oar(
        &[
            "sign",
            "--component",
            "night-py/build/night-py.wasm",
            "--manifest",
            "night-py/manifest.toml",
            "--key",
            "keys/author.key",
            "--out",
            "night-py.oarb",
        ],
        d,
    ));
    assert!(signed.contains("module hash"), "{signed}");
    ok(oar(
        &[
            "approve",
            "--bundle",
            "night-py.oarb",
            "--key",
            "keys/member.key",
            "--approval",
            "approval.json",
        ],
        d,
    ));
    let dry = ok(oar(
        &[
            "run",
            "--bundle",
            "night-py.oarb",
            "--approval",
            "approval.json",
            "--policy",
            "policy.toml",
            "--dataset",
            "data/cdr.toml",
            "--requester",
            "stats-office",
            "--out",
            "release",
            "--dry-run",
            "--dry-rows",
            "50000",
            "--dry-units",
            "5000",
        ],
        d,
    ));
    assert!(dry.contains("DRY RUN"), "{dry}");
    assert!(dry.contains("a real run would cost epsilon 1"), "{dry}");
    assert!(dry.contains("table subscribers_by_region"), "{dry}");
    assert!(!d.join("release").exists());
}

/// `oar build` of a Rust module: cargo's guest build, the component found in its messages and
/// checked. It builds into the guests' target dir, which `build.rs` already filled.
#[test]
fn oar_build_builds_and_checks_a_rust_module() {
    let tmp = tempfile::tempdir().unwrap();
    let guests = oar_host::artifacts::component_path("x");
    let target = guests.ancestors().nth(3).unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(env!("CARGO_BIN_EXE_oar"))
        .args(["build", "templates/module", "--out"])
        .arg(tmp.path().join("t.wasm"))
        .current_dir(&repo)
        .env("CARGO_TARGET_DIR", target)
        .output()
        .unwrap();
    let stdout = ok(out);
    assert!(stdout.contains("built module-template"), "{stdout}");
    assert!(stdout.contains("(Rust, "), "{stdout}");
    let wasm = std::fs::read(tmp.path().join("t.wasm")).unwrap();
    oar_host::sandbox::check_component(&wasm).unwrap();

    // A folder that is no module is refused with what to give instead.
    let bad = oar(&["build", "."], tmp.path());
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("neither a Cargo.toml"));
}

/// `oar bench` runs end to end (a smoke run on a small set; the default is 10 million rows).
/// Two repetitions: the second run of the same module with the same parameters must run again,
/// not come back from the release cache (which once made `oar bench` with its defaults fail).
#[test]
fn oar_bench_runs_and_reports_ratios() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bench");
    let stdout = ok(oar(
        &[
            "bench",
            "--rows",
            "20000",
            "--repeat",
            "2",
            "--dir",
            data.to_str().unwrap(),
        ],
        dir.path(),
    ));
    for line in [
        "raw Polars group-by",
        "execute + gate",
        "whole sandboxed module run",
    ] {
        assert!(stdout.contains(line), "missing '{line}' in:\n{stdout}");
    }
}

/// `oar bench --scale` runs every variant in its own process on chunked data and reports time
/// (the median of `--repeat` runs) and peak memory per variant (a smoke run on tiny sizes; the
/// default is 10M, 100M and 1B rows).
#[test]
fn oar_bench_scale_measures_every_variant_in_its_own_process() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("scale");
    let stdout = ok(oar(
        &[
            "bench",
            "--scale",
            "--sizes",
            "20000,40000",
            "--subscribers",
            "1000",
            "--in-memory-up-to",
            "20000",
            "--repeat",
            "2",
            "--dir",
            data.to_str().unwrap(),
        ],
        dir.path(),
    ));
    let table: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("rows"))
        .collect();
    for variant in ["raw-streaming", "population", "raw-od-streaming", "od"] {
        let rows = table
            .iter()
            .filter(|l| l.split_whitespace().nth(1) == Some(variant))
            .count();
        assert_eq!(rows, 2, "{variant} at both sizes in:\n{stdout}");
    }
    // The in-memory variants stop at --in-memory-up-to.
    let in_memory = table.iter().filter(|l| l.contains("in-memory")).count();
    assert_eq!(in_memory, 3, "{stdout}");
    // DataFusion's variants run when this oar has the engine, and are skipped when not.
    let datafusion = table.iter().filter(|l| l.contains("-datafusion")).count();
    assert_eq!(
        datafusion,
        if cfg!(feature = "datafusion") { 4 } else { 0 },
        "{stdout}"
    );
    // Every line has a peak resident set, and the data was written in files.
    assert!(table
        .iter()
        .skip(1)
        .all(|l| l.ends_with("MiB") && !l.contains(" 0 MiB")));
    assert!(data
        .join("rows-40000-subscribers-1000/cdr-00000.parquet")
        .exists());

    // A variant that fails (here: a damaged file) is reported beside the others, and the run
    // says so in its exit status rather than stopping at the first.
    let file = data.join("rows-20000-subscribers-1000/cdr-00000.parquet");
    std::fs::write(&file, b"not parquet").unwrap();
    let out = oar(
        &[
            "bench",
            "--scale",
            "--sizes",
            "20000,40000",
            "--subscribers",
            "1000",
            "--variants",
            "population,od",
            "--dir",
            data.to_str().unwrap(),
        ],
        dir.path(),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stdout}");
    assert!(stderr.contains("2 variant run(s) failed"), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    for variant in ["population", "od"] {
        let row = |rows: &str| {
            lines
                .iter()
                .find(|l| {
                    let mut w = l.split_whitespace();
                    w.next() == Some(rows) && w.next() == Some(variant)
                })
                .unwrap_or_else(|| panic!("no {variant} at {rows} in:\n{stdout}"))
                .to_string()
        };
        assert!(row("20000").contains("failed:"), "{stdout}");
        assert!(row("40000").ends_with("MiB"), "{stdout}");
    }
}

/// `oar bench --peers` times Python Polars and OpenDP-Python on the same file, from a pinned
/// environment it installs from PyPI on first use (kept in the target dir across runs).
#[test]
fn oar_bench_peers_times_python_polars_and_opendp_on_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-peers");
    let stdout = ok(oar(
        &[
            "bench",
            "--rows",
            "20000",
            "--repeat",
            "1",
            "--peers",
            "--dir",
            data.to_str().unwrap(),
        ],
        dir.path(),
    ));
    for line in [
        "Python Polars 1.36.1 (exact",
        "OpenDP-Python 0.16.0 user-level DP count",
        "faster for OAR",
    ] {
        assert!(stdout.contains(line), "missing '{line}' in:\n{stdout}");
    }
}

/// The hardened systemd unit for holders (`packaging/oar.service`) passes `systemd-analyze
/// verify` with no warning (it prints unknown or misspelt settings but still exits 0, so its
/// output must be empty), pointed at the built binary, and keeps its hardening.
#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/oar.service"),
    )
    .unwrap();
    for setting in [
        "Type=notify",
        "User=oar",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "MemoryMax=",
        "CapabilityBoundingSet=\n",
        "SystemCallFilter=@system-service",
    ] {
        assert!(unit.contains(setting), "the unit lost {setting:?}");
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("oar.service");
    std::fs::write(
        &path,
        unit.replace(
            "ExecStart=/usr/bin/oar ",
            &format!("ExecStart={} ", env!("CARGO_BIN_EXE_oar")),
        ),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze runs (Debian's systemd package; .ci/run installs it)");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
}

/// The Debian package (`packaging/deb/build.sh`) installs with `dpkg -i`: the binary, the unit,
/// the `oar` system user and its 0700 state folder; the installed `oar serve`, started as that
/// user with the package's settings file, answers `/readyz`; and `dpkg --purge` removes the
/// program but keeps the holder's records. Needs root, as `dpkg -i` does: CI runs as root, and
/// under `CI` a non-root run fails rather than passes untested.
#[test]
fn the_deb_installs_and_its_service_answers_readyz() {
    let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    if !root {
        assert!(
            std::env::var_os("CI").is_none(),
            "installing the .deb needs root; CI must run the tests as root"
        );
        eprintln!("not root: the .deb test needs `dpkg -i`, skipped outside CI");
        return;
    }
    let sh = |cmd: &str| {
        let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), said)
    };
    // A package left by an earlier, interrupted run of this test goes first.
    let _ = sh("dpkg -s oar >/dev/null 2>&1 && dpkg --purge oar");
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/deb/build.sh"))
        .arg(env!("CARGO_BIN_EXE_oar"))
        .arg(tmp.path())
        .env("OAR_DEB_COMPRESSION", "none")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deb = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let (ok, said) = sh(&format!("dpkg-deb --contents {deb}"));
    assert!(ok, "{said}");
    for path in [
        "./usr/bin/oar",
        "./lib/systemd/system/oar.service",
        "./etc/oar/oar.env",
    ] {
        assert!(said.contains(path), "the package lacks {path}:\n{said}");
    }
    let (ok, said) = sh(&format!("dpkg -i {deb}"));
    assert!(ok, "dpkg -i: {said}");
    let installed = the_installed_service_answers_readyz(&sh);
    let (purged, said) = sh("dpkg --purge oar");
    let kept = Path::new("/var/lib/oar/audit.log").exists();
    let _ = sh("userdel oar; rm -rf /var/lib/oar");
    assert!(installed, "the installed service did not answer /readyz");
    assert!(purged, "dpkg --purge: {said}");
    assert!(!Path::new("/usr/bin/oar").exists(), "purge left the binary");
    assert!(kept, "purge must keep the holder's records");
}

/// Starts the installed `oar serve` as the `oar` user with the package's settings, on free
/// loopback ports, and waits for its `/readyz`.
fn the_installed_service_answers_readyz(sh: &dyn Fn(&str) -> (bool, String)) -> bool {
    let (ok, said) = sh("id -un oar && stat -c '%U %a' /var/lib/oar && /usr/bin/oar --version");
    assert!(ok, "{said}");
    assert!(said.contains("oar 700"), "the state folder: {said}");
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (port, admin) = (free(), free());
    let mut serve = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "set -a; . /etc/oar/oar.env; set +a; cd /var/lib/oar && OAR_LISTEN=127.0.0.1:{port} OAR_ADMIN_LISTEN=127.0.0.1:{admin} exec runuser -u oar -- /usr/bin/oar serve --data /var/lib/oar"
        ))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let ready = loop {
        let answer = ureq::get(format!("http://127.0.0.1:{admin}/readyz")).call();
        if answer.is_ok_and(|r| r.status() == 200) {
            break true;
        }
        if std::time::Instant::now() > until || serve.try_wait().unwrap().is_some() {
            break false;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    };
    let _ = sh(&format!("kill {}", serve.id()));
    let _ = serve.wait();
    ready
}

/// `OAR_LOG_FORMAT=json` turns the log into one JSON object per line, for a log collector; each
/// run's lines carry its span (module hash and job id). An unknown format falls back to text
/// and says so.
#[test]
fn logs_are_json_lines_on_request_with_the_run_span() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_oar"))
        .args(["demo", "--rows", "20000", "--out", "demo"])
        .current_dir(tmp.path())
        .env("OAR_LOG", "info")
        .env("OAR_LOG_FORMAT", "json")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let finished = lines
        .iter()
        .find(|l| l["fields"]["message"] == "module finished")
        .unwrap_or_else(|| panic!("no run line in {stderr}"));
    assert_eq!(finished["level"], "INFO");
    assert_eq!(finished["span"]["name"], "run");
    assert_eq!(finished["span"]["module"].as_str().unwrap().len(), 64);
    assert!(finished["span"]["job"].is_string());

    let odd = Command::new(env!("CARGO_BIN_EXE_oar"))
        .args(["schema", "--out", "schema"])
        .current_dir(tmp.path())
        .env("OAR_LOG_FORMAT", "xml")
        .output()
        .unwrap();
    assert!(odd.status.success());
    assert!(String::from_utf8_lossy(&odd.stderr).contains("OAR_LOG_FORMAT must be text or json"));
}
