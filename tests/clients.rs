//! Code OAR did not write talks to `oar serve` and checks what it releases:
//!
//! - Python's and npm's `http-message-signatures` (RFC 9421) run a job end to end: submit,
//!   wait, fetch, each under its own label and parameters;
//! - a release is verified by Python (`rfc8785` + `cryptography`) and by `openssl pkeyutl`;
//! - over TLS (an `rcgen` certificate), `curl`, Python's `ssl` and `oar submit`/`oar fetch`
//!   with `--ca-cert` are served, and plain HTTP to the TLS port is not;
//! - Python's `jsonschema` validates plans, dataset schemas and released tables against the
//!   published JSON Schemas (`guest-sdk/schema/`), and refuses misspelt ones.
//!
//! The Python and npm packages are pinned in `tests/interop/`; `.ci/run` installs them from
//! the registries, and this test installs them itself when they are missing.

mod common;

use common::serve::{holder, setup, started, upload, url};
use common::World;
use oar_host::client::Client;
use oar_host::server;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use common::python::{interop, python, run};

/// `tests/interop/node_modules`, installed from the lock file once.
fn node_modules() {
    static NODE: OnceLock<()> = OnceLock::new();
    NODE.get_or_init(|| {
        if !interop()
            .join("node_modules/http-message-signatures")
            .exists()
        {
            run(Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--silent"])
                .current_dir(interop()));
        }
    });
}

fn seed_hex(key: &oar_host::keys::KeyPair) -> String {
    hex::encode(key.signing_key().to_bytes())
}

/// `openssl pkeyutl` checks the holder's signature of the release in `dir`.
fn openssl_verifies(dir: &Path, work: &Path) {
    let signed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("release.sig.json")).unwrap()).unwrap();
    let manifest: oar_host::release::signed::ReleaseManifest =
        serde_json::from_value(signed["manifest"].clone()).unwrap();
    // What the holder signs: context || 0x00 || digest.
    let mut message = oar_host::release::signed::RELEASE_CONTEXT
        .as_bytes()
        .to_vec();
    message.push(0);
    message.extend_from_slice(&manifest.digest());
    std::fs::write(work.join("message"), &message).unwrap();
    let signature = hex::decode(signed["signature"].as_str().unwrap()).unwrap();
    std::fs::write(work.join("signature"), signature).unwrap();
    // SubjectPublicKeyInfo of an ed25519 key: a fixed prefix, then the 32 key bytes.
    let mut spki = hex::decode("302a300506032b6570032100").unwrap();
    spki.extend_from_slice(holder().public().as_bytes());
    std::fs::write(work.join("holder.der"), spki).unwrap();
    let pkeyutl = || {
        let mut cmd = Command::new("openssl");
        cmd.args(["pkeyutl", "-verify", "-pubin", "-keyform", "DER", "-inkey"])
            .arg(work.join("holder.der"))
            .arg("-rawin")
            .arg("-in")
            .arg(work.join("message"))
            .arg("-sigfile")
            .arg(work.join("signature"));
        cmd
    };
    let out = run(&mut pkeyutl());
    assert!(out.contains("Signature Verified Successfully"), "{out}");
    // A flipped byte of the message is refused.
    message[0] ^= 1;
    std::fs::write(work.join("message"), &message).unwrap();
    let refused = pkeyutl().output().unwrap();
    assert!(!refused.status.success());
}

#[test]
fn standard_rfc9421_clients_run_a_job_end_to_end_and_others_verify_the_release() {
    let dir = tempfile::tempdir().unwrap();
    let (w, s) = started(dir.path());
    let base = url(&s);
    let module = upload(&Client::new(&base, w.requester.clone()), &w, "population");
    let holder_hex = holder().public().to_hex();

    let python_out = dir.path().join("python");
    run(Command::new(python())
        .arg(interop().join("python_sign.py"))
        .args([&base, &seed_hex(&w.requester), &module])
        .arg(&python_out));
    oar_host::release::signed::verify_dir(&python_out, &holder().public()).unwrap();

    node_modules();
    let node_out = dir.path().join("node");
    run(Command::new("node")
        .arg(interop().join("node_sign.mjs"))
        .args([&base, &seed_hex(&w.requester), &module])
        .arg(&node_out));
    oar_host::release::signed::verify_dir(&node_out, &holder().public()).unwrap();

    let out = run(Command::new(python())
        .arg(interop().join("verify_release.py"))
        .arg(&python_out)
        .arg(&holder_hex));
    assert!(out.starts_with("OK"), "{out}");
    // A table changed after signing is caught by the independent verifier too.
    let table = std::fs::read_dir(&python_out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "csv"))
        .unwrap();
    let mut bytes = std::fs::read(&table).unwrap();
    bytes.push(b'\n');
    let tampered = dir.path().join("tampered");
    std::fs::create_dir(&tampered).unwrap();
    for e in std::fs::read_dir(&python_out).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, tampered.join(p.file_name().unwrap())).unwrap();
    }
    std::fs::write(tampered.join(table.file_name().unwrap()), bytes).unwrap();
    let refused = Command::new(python())
        .arg(interop().join("verify_release.py"))
        .arg(&tampered)
        .arg(&holder_hex)
        .output()
        .unwrap();
    assert!(!refused.status.success());

    let work = tempfile::tempdir().unwrap();
    openssl_verifies(&node_out, work.path());
    s.shutdown();
}

#[test]
fn over_tls_curl_python_and_oar_are_served_and_plain_http_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let mut w = World::new(2, 3);
    let mut config = setup(dir.path(), &mut w, |_| {});
    config.tls_cert = Some(cert.clone());
    config.tls_key = Some(key);
    let s = server::start(config).unwrap();
    assert_eq!(s.scheme(), "https");
    let base = format!("https://localhost:{}", s.addr().port());

    let out = run(Command::new("curl")
        .args(["--silent", "--show-error", "--fail", "--cacert"])
        .arg(&cert)
        .arg(format!("{base}/openapi.json")));
    assert!(out.contains("\"openapi\""), "{out}");
    let out = run(Command::new("python3").args([
        "-c",
        "import ssl, sys, urllib.request\n\
         ctx = ssl.create_default_context(cafile=sys.argv[1])\n\
         print(urllib.request.urlopen(sys.argv[2], context=ctx).status)",
        cert.to_str().unwrap(),
        &format!("{base}/openapi.json"),
    ]));
    assert_eq!(out.trim(), "200");
    // Without the CA, and in plain HTTP, nothing is served.
    let untrusted = Command::new("curl")
        .args(["--silent", "--fail"])
        .arg(format!("{base}/openapi.json"))
        .output()
        .unwrap();
    assert!(!untrusted.status.success());
    let plain = Command::new("curl")
        .args(["--silent", "--fail", "--max-time", "5"])
        .arg(format!("http://localhost:{}/openapi.json", s.addr().port()))
        .output()
        .unwrap();
    assert!(!plain.status.success());

    // OAR's own client and CLI, trusting the certificate: `oar submit` uploads and queues,
    // the library client waits, `oar fetch` verifies and writes.
    let pem = std::fs::read(&cert).unwrap();
    let client = Client::with_ca_certs(&base, w.requester.clone(), &pem).unwrap();
    let keys = dir.path().join("cli-keys");
    std::fs::create_dir_all(&keys).unwrap();
    let (key_file, _) = w.requester.write(&keys).unwrap();
    let b = common::bundle(&w, common::component("population"));
    let bundle_file = dir.path().join("population.oarb");
    b.write(&bundle_file).unwrap();
    let approval_file = dir.path().join("approval.json");
    common::approval(&w, &b, 2).write(&approval_file).unwrap();
    let submitted = run(Command::new(env!("CARGO_BIN_EXE_oar"))
        .args(["submit", "--server", &base, "--key"])
        .arg(&key_file)
        .arg("--bundle")
        .arg(&bundle_file)
        .arg("--approval")
        .arg(&approval_file)
        .args(["--params", r#"{"epsilon": 0.5}"#, "--ca-cert"])
        .arg(&cert));
    let job = submitted.lines().next().unwrap().trim().to_string();
    assert_eq!(job.len(), 16, "{submitted}");
    let done = client.wait(&job, Duration::from_secs(120)).unwrap();
    assert_eq!(done["status"], "succeeded", "{done}");
    let fetched = dir.path().join("cli-release");
    let out = run(Command::new(env!("CARGO_BIN_EXE_oar"))
        .args(["fetch", "--server", &base, "--key"])
        .arg(&key_file)
        .args(["--job", &job, "--out"])
        .arg(&fetched)
        .args(["--holder", &holder().public().to_hex(), "--ca-cert"])
        .arg(&cert));
    assert!(out.contains("verified: signed by the holder"), "{out}");
    s.shutdown();
}

/// `cases` (name, document, whether it is valid) against `schema` with Python's `jsonschema`.
fn validate_in_python(schema: &str, cases: &[(&str, serde_json::Value, bool)]) {
    use std::io::Write;
    let cases: Vec<serde_json::Value> = cases
        .iter()
        .map(|(name, document, valid)| {
            serde_json::json!({"name": name, "document": document, "valid": valid})
        })
        .collect();
    let schema = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../guest-sdk/schema")
        .join(schema);
    let mut child = Command::new(python())
        .arg(interop().join("validate_schema.py"))
        .arg(&schema)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&cases).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}:\n{text}", schema.display());
}

/// A module in another language can check its documents against the published JSON Schemas with
/// a validator OAR did not write: real plans (the population and OD releases, per-unit steps,
/// quantiles, totals), the example datasets' schemas and a table the gate released all
/// validate, and a misspelt field fails as the host refuses it.
#[test]
fn python_jsonschema_accepts_real_documents_and_refuses_misspelt_ones() {
    use oar_guest::testing::{cdr_schema, meters_schema};
    fn value<T: serde::Serialize>(v: &T) -> serde_json::Value {
        serde_json::to_value(v).unwrap()
    }
    let population = value(&oar_host::bench::population_plan(1.0));
    let od = value(&oar_host::bench::od_plan(1.0));
    let per_unit: serde_json::Value = serde_json::from_str(
        r#"{"dataset":"edgy","steps":[{"op":"per_unit","name":"per","reduce":"sum","expr":{"kind":"literal","value":2.5},"by":["region"]}],"group_by":["visits"],"aggregates":[{"agg":"count_units","name":"n"},{"agg":"sum","name":"s","column":"per","bounds":[0.0,10.0]}],"bounds":{"max_groups_per_unit":2,"max_rows_per_group":3},"epsilon":1.0}"#,
    )
    .unwrap();
    let quantile: serde_json::Value = serde_json::from_str(
        r#"{"dataset":"edgy","steps":[{"op":"filter","predicate":{"kind":"compare","op":"eq","left":{"kind":"column","name":"amount"},"right":{"kind":"arith","op":"mul","left":{"kind":"literal","value":5.0},"right":{"kind":"arith","op":"div","left":{"kind":"column","name":"amount"},"right":{"kind":"literal","value":5.0}}}}}],"group_by":["region"],"aggregates":[{"agg":"count_units","name":"n"},{"agg":"quantile","name":"q","column":"amount","q":0.5,"bounds":[-3.0,3.0],"bins":7}],"totals":true,"epsilon":1.0}"#,
    )
    .unwrap();
    let misspelt = common::renamed(&population, "group_by", "groupby");
    let mut unknown_aggregate = population.clone();
    unknown_aggregate["aggregates"][0]["agg"] = "count_rows".into();
    let mut no_epsilon = population.clone();
    no_epsilon.as_object_mut().unwrap().remove("epsilon");
    let mut in_expression = od.clone();
    in_expression["steps"][0]["expr"]["negate"] = true.into();
    for doc in [&population, &od, &per_unit, &quantile] {
        // The host reads every valid case as a plan.
        serde_json::from_value::<oar_guest::plan::Plan>((*doc).clone()).unwrap();
    }
    validate_in_python(
        "plan.schema.json",
        &[
            ("population", population, true),
            ("od", od, true),
            ("per-unit sum", per_unit, true),
            ("quantile with totals", quantile, true),
            ("groupby", misspelt, false),
            ("count_rows", unknown_aggregate, false),
            ("no epsilon", no_epsilon, false),
            ("negate", in_expression, false),
        ],
    );

    let cdr = value(&cdr_schema());
    let mut misspelt_schema = cdr.clone();
    misspelt_schema["columns"][0]["domian"] = serde_json::json!(["a"]);
    validate_in_python(
        "dataset-schema.schema.json",
        &[
            ("cdr", cdr, true),
            ("meters", value(&meters_schema()), true),
            ("domian", misspelt_schema, false),
        ],
    );

    // A table the gate released (suppressed cells, intervals, release facts).
    let w = World::new(1, 1);
    let (host, _ledger) = common::host(&w, 10.0);
    let mut local = oar_host::local::LocalHost::new(host.session(
        "schema-1",
        "stats-office",
        common::verified(&w, "population"),
    ));
    oar_guest::run_with_host(&mut local, r#"{"epsilon": 0.5}"#, population::run).unwrap();
    let record = local.finish();
    let table = value(&record.outputs[0].1);
    assert!(table["rows"].as_array().unwrap().len() > 100);
    let mut misspelt_table = table.clone();
    misspelt_table["rows"][0]["value"] = misspelt_table["rows"][0]["values"].clone();
    validate_in_python(
        "table.schema.json",
        &[
            ("population", table, true),
            ("value", misspelt_table, false),
        ],
    );
}

/// The Python client (`clients/python`, package `oar_client`) passes its pytest suite against a
/// real `oar serve` it starts on loopback: signed requests through PyPI's
/// `http-message-signatures`, typed problems, releases verified before they are returned, tables
/// as Polars and pandas DataFrames with intervals and reasons; and its example notebook
/// (population, then OD flows) runs end to end in a Jupyter kernel.
#[test]
fn the_python_client_passes_its_tests_and_runs_its_notebook_against_a_real_server() {
    let components = oar_host::artifacts::component_path("population")
        .parent()
        .unwrap()
        .to_path_buf();
    let client = common::python::repo().join("clients/python");
    let out = run(common::python::pytest(&client)
        .arg("tests")
        .env("OAR", env!("CARGO_BIN_EXE_oar"))
        .env("OAR_COMPONENTS", components)
        .env("PYTHONPATH", &client));
    assert!(out.contains("passed") && !out.contains("failed"), "{out}");
}
