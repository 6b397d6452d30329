//! The holder's edge under hostile traffic (issue 12): each test is an attack that worked on
//! the service before it was hardened.
//!
//! - unauthenticated floods are counted, not chained into the audit log;
//! - an approval uploaded without signatures (or with forged ones) cannot strip a valid one;
//! - recurring jobs can be cancelled, stop when their module is no longer approved, and their
//!   interval is bounded;
//! - runs interrupted by a crash get a closing audit entry;
//! - a requester sees only the datasets and modules it may use;
//! - `/v1/audit` is paged and carries the holder's signed head;
//! - an empty admin token is refused.

mod common;

use common::serve::{
    admin_url, holder, raw, setup, signed_headers, started, status_of, upload, url, ADMIN,
};
use common::{approval, bundle, component, World};
use oar_host::client::Client;
use oar_host::keys::KeyPair;
use oar_host::policy::Requester;
use oar_host::server;
use std::time::Duration;

fn admin_get(base: &str, path: &str) -> (u16, String) {
    raw(
        base,
        "GET",
        path,
        b"",
        &[("authorization", format!("Bearer {ADMIN}"))],
    )
}

fn audit_lines(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("data/audit.log"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn an_unauthenticated_flood_is_counted_and_leaves_the_audit_log_alone() {
    // Finding 12.1: every 401 appended an fsync'd, signed audit entry holding the attacker's
    // path (up to 64 KiB); a flood filled the disk and the log, failing closed, stopped every
    // release.
    let dir = tempfile::tempdir().unwrap();
    let (_, s) = started(dir.path());
    let base = url(&s);
    let before = std::fs::metadata(dir.path().join("data/audit.log"))
        .unwrap()
        .len();
    let long = format!("/v1/runs/{}", "x".repeat(8 * 1024));
    let stranger = KeyPair::from_seed("x", "stranger");
    let now = chrono::Utc::now().timestamp();
    for i in 0..50 {
        assert_eq!(raw(&base, "GET", &long, b"", &[]).0, 401);
        let h = signed_headers(
            &base,
            &stranger,
            "GET",
            "/v1/datasets",
            b"",
            now,
            &format!("n{i}"),
        );
        assert_eq!(raw(&base, "GET", "/v1/datasets", b"", &h).0, 401);
        let bad = [("authorization", "Bearer wrong".to_string())];
        assert_eq!(raw(&admin_url(&s), "GET", "/admin/audit", b"", &bad).0, 401);
    }
    let after = std::fs::metadata(dir.path().join("data/audit.log"))
        .unwrap()
        .len();
    assert_eq!(before, after, "401s wrote to the audit log");
    let (status, metrics) = admin_get(&admin_url(&s), "/admin/metrics");
    assert_eq!(status, 200, "{metrics}");
    let count = metrics
        .lines()
        .find(|l| l.starts_with("oar_unauthenticated_requests_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<u64>().ok());
    assert_eq!(count, Some(150), "{metrics}");
    s.shutdown();
}

#[test]
fn an_approval_cannot_be_stripped_or_forged_by_an_upload() {
    // Finding 12.2: approvals were stored unchecked and replaced on conflict, so any requester
    // could upload the record with `"signatures": []` and stop the module for everyone.
    let dir = tempfile::tempdir().unwrap();
    let (w, s) = started(dir.path());
    let client = Client::new(&url(&s), w.requester.clone());
    let module = upload(&client, &w, "population");
    let b = bundle(&w, component("population"));
    let valid = approval(&w, &b, 2);

    let mut stripped = valid.clone();
    stripped.signatures.clear();
    client
        .attach_approval(&serde_json::to_vec(&stripped).unwrap())
        .expect("an upload without signatures adds nothing and is harmless");
    let mut forged = valid.clone();
    forged.signatures[0].signature = forged.signatures[1].signature;
    let e = client
        .attach_approval(&serde_json::to_vec(&forged).unwrap())
        .unwrap_err();
    assert_eq!(status_of(e), 422);
    let mut stranger = valid.clone();
    stranger.signatures.clear();
    stranger.sign(&KeyPair::from_seed("m", "not a member"));
    let e = client
        .attach_approval(&serde_json::to_vec(&stranger).unwrap())
        .unwrap_err();
    assert_eq!(status_of(e), 422);

    let job = client
        .submit(&module, &serde_json::json!({"epsilon": 0.5}), None)
        .unwrap();
    let done = client.wait(&job, Duration::from_secs(120)).unwrap();
    assert_eq!(done["status"], "succeeded", "{done}");

    // A known approval gains valid member signatures one at a time.
    let mut one = approval(&w, &b, 0);
    one.record = valid.record.clone();
    one.sign(&w.members[2]);
    let answer = client
        .attach_approval(&serde_json::to_vec(&one).unwrap())
        .unwrap();
    assert_eq!(answer, hex::encode(valid.record.digest()));
    s.shutdown();
}

#[test]
fn recurring_jobs_are_bounded_cancellable_and_stop_without_an_approval() {
    // Finding 12.7: recurring jobs could not be stopped, were re-queued after revocation,
    // expiry or failure, and `every_seconds` was unbounded (an overflowing addition).
    let dir = tempfile::tempdir().unwrap();
    let (w, s) = started(dir.path());
    let client = Client::new(&url(&s), w.requester.clone());
    let module = upload(&client, &w, "population");
    let params = serde_json::json!({"epsilon": 0.1});
    for every in [i64::MAX, 400 * 86_400] {
        let e = client.submit(&module, &params, Some(every)).unwrap_err();
        assert_eq!(status_of(e), 400, "every_seconds {every}");
    }
    // Cancelled: if still queued it never runs; if running it finishes; nothing re-queues it.
    let job = client.submit(&module, &params, Some(3600)).unwrap();
    let cancelled = client
        .call("POST", &format!("/v1/runs/{job}/cancel"), Some(b""))
        .unwrap();
    assert_eq!(cancelled["recurring"], false, "{cancelled}");
    assert!(
        ["cancelled", "running", "succeeded"].contains(&cancelled["status"].as_str().unwrap()),
        "{cancelled}"
    );
    client.wait(&job, Duration::from_secs(120)).unwrap();
    // Someone else cannot cancel it (403, as for a job that does not exist).
    let council = Client::new(&url(&s), KeyPair::from_seed("c", "council"));
    let e = council
        .call("POST", &format!("/v1/runs/{job}/cancel"), Some(b""))
        .unwrap_err();
    assert_eq!(status_of(e), 403);
    // A recurring job whose module fails verification (no approval) fails and is not
    // re-queued.
    let b = bundle(&w, component("oar_test_guest_spin"));
    let unapproved = client
        .upload_bundle(&serde_json::to_vec(&b).unwrap())
        .unwrap();
    let failing = client.submit(&unapproved, &params, Some(60)).unwrap();
    let done = client.wait(&failing, Duration::from_secs(60)).unwrap();
    assert_eq!(done["status"], "failed", "{done}");
    let data = dir.path().join("data");
    s.shutdown();
    let store = server::Store::open(&data.join("server.db")).unwrap();
    let queued = store.jobs_with_status("queued").unwrap();
    assert!(queued.is_empty(), "{queued:?}");
}

#[test]
fn a_requester_sees_only_the_datasets_and_modules_it_may_use() {
    // Finding 12.10: `/v1/datasets` and `/v1/modules` showed everything to every requester.
    let dir = tempfile::tempdir().unwrap();
    let mut w = World::new(2, 3);
    let outsider = KeyPair::from_seed("o", "outsider");
    let config = setup(dir.path(), &mut w, |p| {
        p.requesters.push(Requester {
            name: "meter-office".into(),
            key: outsider.public(),
            datasets: vec!["meters".into()],
        })
    });
    let s = server::start(config).unwrap();
    let client = Client::new(&url(&s), w.requester.clone());
    upload(&client, &w, "population");
    let mine = client.call("GET", "/v1/datasets", None).unwrap();
    assert_eq!(mine.as_array().unwrap().len(), 1);
    assert_eq!(
        client
            .call("GET", "/v1/modules", None)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let other = Client::new(&url(&s), outsider);
    assert_eq!(
        other.call("GET", "/v1/datasets", None).unwrap(),
        serde_json::json!([])
    );
    assert_eq!(
        other.call("GET", "/v1/modules", None).unwrap(),
        serde_json::json!([])
    );
    s.shutdown();
}

#[test]
fn the_register_is_paged_and_carries_the_signed_head() {
    // Finding 12.5: `/v1/audit` returned the whole register with no signed head, so a
    // requester had nothing to hold the holder to.
    let dir = tempfile::tempdir().unwrap();
    let (w, s) = started(dir.path());
    let client = Client::new(&url(&s), w.requester.clone());
    let module = upload(&client, &w, "population");
    for i in 0..3 {
        let job = client
            .submit(
                &module,
                &serde_json::json!({"epsilon": 0.1 + f64::from(i) / 100.0}),
                None,
            )
            .unwrap();
        client.wait(&job, Duration::from_secs(120)).unwrap();
    }
    let page = client.call("GET", "/v1/audit?limit=2", None).unwrap();
    assert_eq!(page["rows"].as_array().unwrap().len(), 2, "{page}");
    let next = page["next_after"].as_u64().expect("a second page");
    let rest = client
        .call("GET", &format!("/v1/audit?after={next}&limit=2"), None)
        .unwrap();
    assert_eq!(rest["rows"].as_array().unwrap().len(), 1, "{rest}");
    assert!(rest["next_after"].is_null());
    let head: oar_host::audit::Head = serde_json::from_value(page["head"].clone()).unwrap();
    assert!(head.signed_by(&holder().public()));
    let data = dir.path().join("data");
    s.shutdown();
    oar_host::audit::verify_since(&data.join("audit.log"), &holder().public(), &head).unwrap();
}

#[test]
fn runs_interrupted_by_a_crash_get_a_closing_audit_entry() {
    // Finding 12.0: a run killed mid-query was marked interrupted in the job store, but its
    // audit trail ended at "run started".
    let dir = tempfile::tempdir().unwrap();
    let mut w = World::new(2, 3);
    let config = setup(dir.path(), &mut w, |_| {});
    let data = config.data_dir.clone();
    drop(server::start(config.clone()).unwrap());
    // As a crash leaves it: a job marked running.
    let store = server::Store::open(&data.join("server.db")).unwrap();
    store
        .enqueue("crashedjob000001", "stats-office", "ab", "{}", 0, None)
        .unwrap();
    assert!(store.claim().unwrap().is_some());
    drop(store);
    let s = server::start(config).unwrap();
    s.shutdown();
    let closing = audit_lines(dir.path())
        .into_iter()
        .find(|l| l.contains("crashedjob000001") && l.contains("\"kind\":\"run_failed\""));
    assert!(
        closing.is_some(),
        "no closing entry for the interrupted job"
    );
    oar_host::audit::verify(&data.join("audit.log"), &holder().public()).unwrap();
}

#[test]
fn an_empty_admin_token_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = World::new(2, 3);
    let mut config = setup(dir.path(), &mut w, |_| {});
    config.admin_token = Some(String::new());
    let e = server::start(config).err().expect("refused");
    assert!(e.to_string().contains("admin token"), "{e}");
}

#[test]
fn a_request_signed_for_one_holder_is_refused_by_another() {
    // Finding 12.4: signatures did not cover `@authority`, so a request signed for holder A
    // replayed to holder B within the window.
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut wa, mut wb) = (World::new(2, 3), World::new(2, 3));
    let a = server::start(setup(dir_a.path(), &mut wa, |_| {})).unwrap();
    let b = server::start(setup(dir_b.path(), &mut wb, |_| {})).unwrap();
    let (base_a, base_b) = (url(&a), url(&b));
    let now = chrono::Utc::now().timestamp();
    let base = base_a.clone();
    let h = signed_headers(&base, &wa.requester, "GET", "/v1/datasets", b"", now, "n-a");
    let (status, body) = raw(&base_b, "GET", "/v1/datasets", b"", &h);
    assert_eq!(status, 401, "{body}");
    // Sent to B with A's name in `Host`, the signature verifies: B refuses a name not its own.
    let mut forged = h.clone();
    forged.push(("host", a.addr().to_string()));
    let (status, body) = raw(&base_b, "GET", "/v1/datasets", b"", &forged);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("another server"), "{body}");
    assert_eq!(raw(&base_a, "GET", "/v1/datasets", b"", &h).0, 200);
    a.shutdown();
    b.shutdown();
}

#[test]
fn a_stranger_is_refused_before_the_server_reads_the_body() {
    // Finding 12.3: the body (up to 32 MiB) was read and hashed before authentication, on
    // every route. Here the client announces a large body and sends none: the server must
    // answer from the headers alone.
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let (_, s) = started(dir.path());
    let now = chrono::Utc::now().timestamp();
    let base = url(&s);
    let stranger = KeyPair::from_seed("x", "stranger");
    let h = signed_headers(&base, &stranger, "POST", "/v1/bundles", b"{}", now, "n-big");
    let mut conn = std::net::TcpStream::connect(s.addr()).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut head = format!(
        "POST /v1/bundles HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: 7000000\r\n",
        s.addr()
    );
    for (k, v) in &h {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes()).unwrap();
    let mut answer = [0u8; 12];
    conn.read_exact(&mut answer)
        .expect("an answer without the body");
    assert_eq!(&answer, b"HTTP/1.1 401");
    s.shutdown();
}

#[test]
fn a_release_is_bound_to_the_job_that_asked_and_its_parameters() {
    // Finding 12.10: a reused release was signed with the original job's id, and nothing in
    // the signature bound a release to the parameters it answered.
    let dir = tempfile::tempdir().unwrap();
    let (w, s) = started(dir.path());
    let client = Client::new(&url(&s), w.requester.clone());
    let module = upload(&client, &w, "population");
    let params = serde_json::json!({"epsilon": 0.5});
    let first = client.submit(&module, &params, None).unwrap();
    client.wait(&first, Duration::from_secs(120)).unwrap();
    let again = client.submit(&module, &params, None).unwrap();
    client.wait(&again, Duration::from_secs(120)).unwrap();
    let out = dir.path().join("fetched");
    let (manifest, _) = client
        .fetch_verified(&again, &out, &holder().public())
        .unwrap();
    assert_eq!(manifest.job_id, again, "signed for the job that asked");
    assert_eq!(manifest.reuses.as_deref(), Some(first.as_str()));
    let expected = hex::encode(oar_host::keys::sha256(
        &oar_host::canonical::to_canonical_json(&params).unwrap(),
    ));
    assert_eq!(manifest.params_sha256.as_deref(), Some(expected.as_str()));
    // A release that does not verify against the holder's key leaves nothing behind.
    let other = KeyPair::from_seed("o", "another holder").public();
    let refused = dir.path().join("refused");
    assert!(client.fetch_verified(&first, &refused, &other).is_err());
    assert!(!refused.exists());
    s.shutdown();
}

/// Reads from `conn` until the server closes it or answers; how long that took, or None if
/// it was still open after `patience`.
fn closed_within(conn: &mut std::net::TcpStream, patience: Duration) -> Option<Duration> {
    use std::io::Read;
    let start = std::time::Instant::now();
    conn.set_read_timeout(Some(patience)).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None
            }
            Err(_) => return Some(start.elapsed()),
        }
    }
}

#[test]
fn slow_clients_are_cut_off_and_connections_are_capped() {
    // Finding 12.3: no timeouts and no connection limit: a few slow clients, each sending
    // its header a byte at a time, held connections (and memory) for ever.
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let mut w = World::new(2, 3);
    let mut config = setup(dir.path(), &mut w, |_| {});
    config.max_connections = 8;
    config.header_timeout_seconds = 1;
    let s = server::start(config).unwrap();
    let slow: Vec<std::net::TcpStream> = (0..8)
        .map(|_| {
            let mut c = std::net::TcpStream::connect(s.addr()).unwrap();
            c.write_all(b"GET /openapi.json HTTP/1.1\r\nhost: x\r\n")
                .unwrap();
            c
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    // The ninth is closed at once.
    let mut ninth = std::net::TcpStream::connect(s.addr()).unwrap();
    assert!(
        closed_within(&mut ninth, Duration::from_secs(5)).is_some(),
        "a connection past the cap was kept open"
    );
    // The slow ones are cut off by the header timeout.
    for mut c in slow {
        assert!(
            closed_within(&mut c, Duration::from_secs(10)).is_some(),
            "a slow client was never cut off"
        );
    }
    // And the service answers again.
    assert_eq!(raw(&url(&s), "GET", "/openapi.json", b"", &[]).0, 200);
    let (_, metrics) = admin_get(&admin_url(&s), "/admin/metrics");
    assert!(
        !metrics.contains("oar_connections_refused_total 0"),
        "{metrics}"
    );
    s.shutdown();
}

#[test]
fn requests_are_rate_limited_per_key_and_per_address() {
    // Finding 12.3: only `POST /v1/runs` was rate-limited; any other route could be called
    // without bound.
    let dir = tempfile::tempdir().unwrap();
    let mut w = World::new(2, 3);
    let mut config = setup(dir.path(), &mut w, |_| {});
    config.requests_per_minute_per_key = 5;
    config.requests_per_minute_per_address = 0;
    let s = server::start(config).unwrap();
    let client = Client::new(&url(&s), w.requester.clone());
    for _ in 0..5 {
        client.call("GET", "/v1/budget", None).unwrap();
    }
    let e = client.call("GET", "/v1/budget", None).unwrap_err();
    assert_eq!(status_of(e), 429);
    // Another key is not held back by the first one's limit.
    let council = Client::new(&url(&s), KeyPair::from_seed("c", "council"));
    council.call("GET", "/v1/budget", None).unwrap();
    s.shutdown();

    let dir = tempfile::tempdir().unwrap();
    let mut w = World::new(2, 3);
    let mut config = setup(dir.path(), &mut w, |_| {});
    config.requests_per_minute_per_address = 5;
    let s = server::start(config).unwrap();
    for _ in 0..5 {
        assert_eq!(raw(&url(&s), "GET", "/openapi.json", b"", &[]).0, 200);
    }
    assert_eq!(raw(&url(&s), "GET", "/openapi.json", b"", &[]).0, 429);
    s.shutdown();
}

#[test]
fn beyond_loopback_the_server_wants_tls_or_an_explicit_choice() {
    // Finding 12.4: plain HTTP only, on any address, with the admin token on the same
    // listener.
    let dir = tempfile::tempdir().unwrap();
    let mut w = World::new(2, 3);
    let mut config = setup(dir.path(), &mut w, |_| {});
    config.listen = "0.0.0.0:0".into();
    config.authorities = vec!["holder.example:8420".into()];
    let e = server::start(config.clone()).err().expect("refused");
    assert!(e.to_string().contains("without TLS"), "{e}");
    config.allow_plain_http = true;
    let s = server::start(config.clone()).expect("allowed when told");
    s.shutdown();
    config.admin_listen = "0.0.0.0:0".into();
    let e = server::start(config)
        .err()
        .expect("admin beyond loopback refused");
    assert!(e.to_string().contains("loopback"), "{e}");
}

#[test]
fn a_deleted_revocation_list_does_not_un_revoke_at_restart() {
    // Finding 12.9: the highest installed serial lived only in memory and in one file;
    // deleting `revocations.json` and restarting un-revoked everything.
    let dir = tempfile::tempdir().unwrap();
    let mut w = World::new(2, 3);
    let config = setup(dir.path(), &mut w, |_| {});
    let s = server::start(config.clone()).unwrap();
    let mut list = oar_host::revocation::RevocationList::empty();
    list.add(
        oar_host::revocation::RevokedKind::Module,
        &"ab".repeat(32),
        "test",
        chrono::Utc::now(),
    );
    let mut signed = oar_host::revocation::SignedRevocations::new(list);
    signed.sign(&holder());
    let (status, body) = raw(
        &admin_url(&s),
        "POST",
        "/admin/revocations",
        &serde_json::to_vec(&signed).unwrap(),
        &[("authorization", format!("Bearer {ADMIN}"))],
    );
    assert_eq!(status, 200, "{body}");
    s.shutdown();
    std::fs::remove_file(config.data_dir.join("revocations.json")).unwrap();
    let e = server::start(config.clone()).err().expect("refused");
    assert!(e.to_string().contains("serial 1"), "{e}");
    // Putting the list back lets it start.
    signed
        .write(&config.data_dir.join("revocations.json"))
        .unwrap();
    server::start(config).unwrap().shutdown();
}

#[test]
fn two_tables_that_would_share_a_file_name_fail_the_release() {
    // Finding 12.10: table names `a.b` and `a b` both became `a_b.csv`; the second silently
    // overwrote the first, and the signature covered only what was left.
    use oar_guest::table::Row;
    use oar_guest::{Table, Value};
    let table = || {
        let mut t = Table::new(["k"], ["v"]);
        t.rows.push(Row {
            keys: vec![Value::Int(1)],
            values: vec![1.0],
            suppressed: None,
        });
        t
    };
    let released = |name: &str| oar_host::release::ReleasedTable {
        name: name.into(),
        table: table(),
        provenance: oar_host::release::provenance::Provenance::Derived { from: vec![] },
    };
    let release = common::release_of(vec![released("a.b"), released("a b")]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("release");
    let err = release.publish(&out, Some(&holder())).unwrap_err();
    assert!(err.to_string().contains("same file name"), "{err}");
    assert!(!out.exists());
}

#[test]
fn an_older_manifest_cannot_squat_a_module_hash() {
    // Finding 12.10: bundles were keyed by the component hash alone (`INSERT OR IGNORE`), so
    // whoever uploaded first, say an older manifest of the same component, kept the slot and
    // the approved bundle uploaded later was silently dropped: the module never ran.
    let dir = tempfile::tempdir().unwrap();
    let (w, s) = started(dir.path());
    let client = Client::new(&url(&s), w.requester.clone());
    let mut old = common::manifest();
    old.version = "0.0.1".into();
    let squat = oar_host::bundle::Bundle::sign(component("population"), old, &w.author);
    client
        .upload_bundle(&serde_json::to_vec(&squat).unwrap())
        .unwrap();
    let module = upload(&client, &w, "population");
    let job = client
        .submit(&module, &serde_json::json!({"epsilon": 0.5}), None)
        .unwrap();
    let done = client.wait(&job, Duration::from_secs(120)).unwrap();
    assert_eq!(done["status"], "succeeded", "{done}");
    let listed = client.call("GET", "/v1/modules", None).unwrap();
    assert_eq!(
        listed.as_array().unwrap().len(),
        1,
        "only the approved manifest: {listed}"
    );
    s.shutdown();
}

#[test]
fn the_admin_api_registers_datasets_only_from_the_dataset_folders() {
    // Finding 12.10: `/admin/datasets` opened any path on the server and echoed parse errors.
    let dir = tempfile::tempdir().unwrap();
    let mut w = World::new(2, 3);
    let config = setup(dir.path(), &mut w, |_| {});
    let s = server::start(config.clone()).unwrap();
    let secret = dir.path().join("secret.toml");
    std::fs::write(&secret, "s3cr3t = not a descriptor\n").unwrap();
    let register = |path: &std::path::Path| {
        raw(
            &admin_url(&s),
            "POST",
            "/admin/datasets",
            serde_json::json!({"descriptor": path})
                .to_string()
                .as_bytes(),
            &[("authorization", format!("Bearer {ADMIN}"))],
        )
    };
    let (status, body) = register(&secret);
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("dataset_roots") && !body.contains("s3cr3t"),
        "{body}"
    );
    // A descriptor inside DATA_DIR/datasets registers.
    let inside = config.data_dir.join("datasets/cdr2");
    let descriptor = oar_host::synth::cdr::CdrSpec {
        rows: 1_000,
        ..Default::default()
    }
    .write(&inside)
    .unwrap();
    let (status, body) = register(&descriptor);
    assert_eq!(status, 201, "{body}");
    s.shutdown();
}

/// The p-th percentile of `samples` (sorted in place).
fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i.min(samples.len() - 1)]
}

#[test]
fn under_a_flood_and_slow_clients_legitimate_jobs_finish_and_budgets_stay_exact() {
    // The load test of issue 12: many requesters on loopback while a hostile client floods
    // unauthenticated requests and holds slow connections. Bounded: 6 requesters × 3 jobs,
    // 4 flooding threads, 16 slow connections, at most 240 s. Prints jobs/s and the p99 latency
    // of `GET /v1/runs/{id}`, quiet (the baseline, same run) and under the flood.
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    const REQUESTERS: usize = 6;
    const JOBS: usize = 3;
    let dir = tempfile::tempdir().unwrap();
    let mut w = World::new(2, 3);
    let keys: Vec<KeyPair> = (0..REQUESTERS)
        .map(|i| KeyPair::from_seed(&format!("load-{i}"), &format!("load {i}")))
        .collect();
    let mut config = setup(dir.path(), &mut w, |p| {
        p.limits.runs_per_requester_per_hour = 100;
        p.limits.concurrent_runs = 2;
        for (i, k) in keys.iter().enumerate() {
            p.requesters.push(Requester {
                name: format!("office-{i}"),
                key: k.public(),
                datasets: vec!["cdr".into()],
            });
        }
    });
    // Every client here shares 127.0.0.1: the per-address limit would throttle the
    // legitimate ones with the flood, so it is off; the per-key limit and shedding stay.
    config.requests_per_minute_per_address = 0;
    config.header_timeout_seconds = 2;
    let s = server::start(config).unwrap();
    let base = url(&s);
    let module = upload(&Client::new(&base, w.requester.clone()), &w, "population");
    let started = std::time::Instant::now();
    let deadline = started + Duration::from_secs(240);

    // Baseline: status latency with nothing else going on.
    let probe = Client::new(&base, w.requester.clone());
    let job = probe
        .submit(&module, &serde_json::json!({"epsilon": 0.05}), None)
        .unwrap();
    probe.wait(&job, Duration::from_secs(120)).unwrap();
    let mut quiet: Vec<Duration> = (0..100)
        .map(|_| {
            let t = std::time::Instant::now();
            probe.job(&job).unwrap();
            t.elapsed()
        })
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    let mut hostile = Vec::new();
    for _ in 0..4 {
        let (stop, base) = (stop.clone(), base.clone());
        hostile.push(std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let (status, _) = raw(&base, "GET", "/v1/datasets", b"", &[]);
                assert!(status == 401 || status == 503, "flood answered {status}");
                n += 1;
            }
            n
        }));
    }
    let addr = s.addr();
    {
        let stop = stop.clone();
        hostile.push(std::thread::spawn(move || {
            // Slow connections, reopened as the server cuts them off.
            let mut conns: Vec<std::net::TcpStream> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                conns.retain_mut(|c| c.write_all(b"x").is_ok());
                while conns.len() < 16 {
                    match std::net::TcpStream::connect(addr) {
                        Ok(mut c) => {
                            let _ = c.write_all(b"GET /v1/datasets HTTP/1.1\r\nhost: ");
                            conns.push(c);
                        }
                        Err(_) => break,
                    }
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            0
        }));
    }

    let loaded = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let finished = std::time::Instant::now();
    let workers: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let (base, module, key, loaded) =
                (base.clone(), module.clone(), key.clone(), loaded.clone());
            std::thread::spawn(move || {
                let client = Client::new(&base, key);
                let ids: Vec<String> = (0..JOBS)
                    .map(|j| {
                        let epsilon = 0.1 + (i * JOBS + j) as f64 / 1000.0;
                        client
                            .submit(&module, &serde_json::json!({ "epsilon": epsilon }), None)
                            .unwrap()
                    })
                    .collect();
                for id in &ids {
                    loop {
                        assert!(
                            std::time::Instant::now() < deadline,
                            "the load test ran out of time"
                        );
                        let t = std::time::Instant::now();
                        let job = client.job(id).unwrap();
                        loaded.lock().unwrap().push(t.elapsed());
                        match job["status"].as_str().unwrap() {
                            "queued" | "running" => std::thread::sleep(Duration::from_millis(100)),
                            "succeeded" => break,
                            other => panic!("job {id} {other}: {job}"),
                        }
                    }
                }
                ids.len()
            })
        })
        .collect();
    let jobs: usize = workers.into_iter().map(|h| h.join().unwrap()).sum();
    let elapsed = finished.elapsed();
    stop.store(true, Ordering::Relaxed);
    let flood: u64 = hostile.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(jobs, REQUESTERS * JOBS);

    // Budgets are exact: each office has spent exactly the sum of its jobs' epsilons.
    for (i, key) in keys.iter().enumerate() {
        let client = Client::new(&base, key.clone());
        let budget = client.call("GET", "/v1/budget", None).unwrap();
        let spent = budget[0]["total"].as_f64().unwrap() - budget[0]["remaining"].as_f64().unwrap();
        let expected: f64 = (0..JOBS)
            .map(|j| 0.1 + (i * JOBS + j) as f64 / 1000.0)
            .sum();
        assert!(
            (spent - expected).abs() < 1e-9,
            "office-{i} spent {spent}, expected {expected}"
        );
    }
    let mut loaded = loaded.lock().unwrap().clone();
    let (quiet99, loaded99) = (percentile(&mut quiet, 0.99), percentile(&mut loaded, 0.99));
    eprintln!(
        "load: {jobs} jobs in {:.1} s ({:.2} jobs/s) beside {flood} flooding requests and 16 slow connections; GET /v1/runs/{{id}} p99 {:.1} ms under load vs {:.1} ms quiet ({:.1}x, {} samples)",
        elapsed.as_secs_f64(),
        jobs as f64 / elapsed.as_secs_f64(),
        loaded99.as_secs_f64() * 1e3,
        quiet99.as_secs_f64() * 1e3,
        loaded99.as_secs_f64() / quiet99.as_secs_f64().max(1e-9),
        loaded.len()
    );
    let data = dir.path().join("data");
    s.shutdown();
    oar_host::audit::verify(&data.join("audit.log"), &holder().public()).unwrap();
    assert!(started.elapsed() < Duration::from_secs(240));
}

#[test]
fn the_hourly_run_limit_holds_under_concurrent_submissions() {
    // Finding 12.3: the per-hour run limit was counted, then the run enqueued, with an fsync'd
    // audit write in between: simultaneous submissions all passed the count.
    let dir = tempfile::tempdir().unwrap();
    let mut w = World::new(2, 3);
    let s = server::start(setup(dir.path(), &mut w, |p| {
        p.limits.runs_per_requester_per_hour = 3
    }))
    .unwrap();
    let base = url(&s);
    let module = upload(&Client::new(&base, w.requester.clone()), &w, "population");
    let accepted: usize = (0..12)
        .map(|i| {
            let (base, key, module) = (base.clone(), w.requester.clone(), module.clone());
            std::thread::spawn(move || {
                let client = Client::new(&base, key);
                let params = serde_json::json!({"epsilon": 0.1 + f64::from(i) / 1000.0});
                match client.submit(&module, &params, None) {
                    Ok(_) => 1,
                    Err(e) => {
                        assert_eq!(status_of(e), 429);
                        0
                    }
                }
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .sum();
    assert_eq!(accepted, 3);
    s.shutdown();
}
