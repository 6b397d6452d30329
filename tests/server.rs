//! The holder's service over real HTTP on loopback: the full flow with signed requests, the
//! refusals (bad signatures, replays, stale or unsigned requests, oversized uploads, malformed
//! JSON, other requesters' jobs, admin without the token, rate limits), many concurrent
//! requesters, and a server killed mid-run that restarts consistent.

mod common;

use common::serve::{admin_url, holder, raw, setup, signed_headers, status_of, upload, url, ADMIN};
use common::{approval, bundle, component, World};
use oar_host::client::Client;
use oar_host::keys::KeyPair;
use oar_host::server::{self, ServeConfig};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[test]
fn full_flow_over_http_with_signed_requests_and_a_signed_release() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = World::new(2, 3);
    let config = setup(dir.path(), &mut w, |_| {});
    let s = server::start(config).unwrap();
    let client = Client::new(&url(&s), w.requester.clone());

    // The API describes itself, covering every route.
    let (status, doc) = raw(&url(&s), "GET", "/openapi.json", b"", &[]);
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
    for (method, path) in server::ROUTES {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} undocumented"
        );
    }
    assert_eq!(doc["paths"].as_object().unwrap().len(), 19);

    // The catalogue: public metadata, the unit named but no values.
    let datasets = client.call("GET", "/v1/datasets", None).unwrap();
    assert_eq!(datasets[0]["name"], "cdr");
    assert_eq!(datasets[0]["privacy_unit"], "subscriber_id");
    assert_eq!(datasets[0]["update_frequency"], "daily");
    assert_eq!(datasets[0]["period"][0], "2026-03-02");
    assert!(!datasets.to_string().contains("\"rows\""));

    let module = upload(&client, &w, "population");
    let modules = client.call("GET", "/v1/modules", None).unwrap();
    assert_eq!(modules[0]["module_hash"], module);

    let job = client
        .submit(&module, &serde_json::json!({"epsilon": 0.5}), None)
        .unwrap();
    let done = client.wait(&job, Duration::from_secs(60)).unwrap();
    assert_eq!(done["status"], "succeeded", "{done}");
    let out = dir.path().join("fetched");
    let (manifest, files) = client
        .fetch_verified(&job, &out, &holder().public())
        .unwrap();
    assert_eq!(files.len(), 4, "json, csv, parquet and the signature");
    assert_eq!(manifest.job_id, job);

    let budget = client.call("GET", "/v1/budget", None).unwrap();
    assert!(
        (budget[0]["remaining"].as_f64().unwrap() - 9.5).abs() < 1e-9,
        "{budget}"
    );

    // A recurring run: after it succeeds, its next run is queued for later.
    let daily = client
        .submit(&module, &serde_json::json!({"epsilon": 0.25}), Some(86_400))
        .unwrap();
    let done = client.wait(&daily, Duration::from_secs(60)).unwrap();
    assert_eq!(done["status"], "succeeded", "{done}");
    let e = client
        .submit(&module, &serde_json::json!({}), Some(10))
        .unwrap_err();
    assert_eq!(status_of(e), 400, "intervals under a minute are refused");
    let register = client.call("GET", "/v1/audit", None).unwrap();
    assert_eq!(register["rows"][0]["job_id"], job);
    assert_eq!(register["rows"][0]["epsilon"], 0.5);

    // Another requester cannot see this job, and cannot tell it exists.
    let council = Client::new(&url(&s), KeyPair::from_seed("c", "council"));
    assert_eq!(status_of(council.job(&job).unwrap_err()), 403);
    assert_eq!(status_of(council.job("0000000000000000").unwrap_err()), 403);
    let elsewhere = dir.path().join("council");
    assert_eq!(
        status_of(
            council
                .fetch_verified(&job, &elsewhere, &holder().public())
                .unwrap_err()
        ),
        403
    );

    let data = dir.path().join("data");
    s.shutdown();
    let v = oar_host::audit::verify(&data.join("audit.log"), &holder().public()).unwrap();
    assert!(v.entries >= 8, "{v:?}");
    let store = oar_host::server::Store::open(&data.join("server.db")).unwrap();
    assert!(
        store.claim().unwrap().is_none(),
        "the next daily run is not due yet"
    );
    let queued = store.jobs_with_status("queued").unwrap();
    assert_eq!(
        queued.len(),
        1,
        "{queued:?} {:?}",
        store.jobs_with_status("succeeded").unwrap()
    );
    assert_eq!(queued[0].every_seconds, Some(86_400));
}

#[test]
fn bad_signatures_replays_and_malformed_requests_are_refused_with_the_right_status() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = World::new(2, 3);
    let config = setup(dir.path(), &mut w, |p| {
        p.limits.runs_per_requester_per_hour = 3
    });
    let s = server::start(config).unwrap();
    let base = url(&s);
    let now = chrono::Utc::now().timestamp();
    let me = &w.requester;

    // Unsigned.
    assert_eq!(raw(&base, "GET", "/v1/datasets", b"", &[]).0, 401);
    // Signed by a key the policy does not know.
    let stranger = KeyPair::from_seed("x", "stranger");
    let h = signed_headers(
        &base,
        &stranger,
        "GET",
        "/v1/datasets",
        b"",
        now,
        "n-stranger",
    );
    assert_eq!(raw(&base, "GET", "/v1/datasets", b"", &h).0, 401);
    // A valid signature replayed: the first is served, the copy refused.
    let h = signed_headers(&base, me, "GET", "/v1/datasets", b"", now, "n-replay");
    assert_eq!(raw(&base, "GET", "/v1/datasets", b"", &h).0, 200);
    let (status, body) = raw(&base, "GET", "/v1/datasets", b"", &h);
    assert_eq!(status, 401);
    assert!(body.contains("replayed"), "{body}");
    // Too old.
    let h = signed_headers(&base, me, "GET", "/v1/datasets", b"", now - 3600, "n-old");
    assert_eq!(raw(&base, "GET", "/v1/datasets", b"", &h).0, 401);
    // Signed for another path, or the body swapped after signing.
    let h = signed_headers(&base, me, "GET", "/v1/modules", b"", now, "n-path");
    assert_eq!(raw(&base, "GET", "/v1/datasets", b"", &h).0, 401);
    let body = br#"{"module_hash":"x"}"#;
    let h = signed_headers(&base, me, "POST", "/v1/runs", body, now, "n-body");
    assert_eq!(
        raw(&base, "POST", "/v1/runs", br#"{"module_hash":"y"}"#, &h).0,
        401
    );
    // The 401s learn nothing: same message whether the dataset or job exists.
    // Malformed JSON, properly signed.
    let bad = b"{not json";
    let h = signed_headers(&base, me, "POST", "/v1/runs", bad, now, "n-json");
    let (status, body) = raw(&base, "POST", "/v1/runs", bad, &h);
    assert_eq!(status, 400);
    assert!(body.contains("malformed JSON"), "{body}");
    // Oversized upload (the limit is 8 MiB).
    let huge = vec![b'x'; 9 * 1024 * 1024];
    let h = signed_headers(&base, me, "POST", "/v1/bundles", &huge, now, "n-huge");
    let (status, body) = raw(&base, "POST", "/v1/bundles", &huge, &h);
    assert!(
        status == 413 || status == 0,
        "oversized upload answered {status}: {body}"
    );
    // A bundle whose signature does not verify.
    let client = Client::new(&base, me.clone());
    let mut b = bundle(&w, component("population"));
    b.manifest.purpose.push('!');
    let e = client
        .upload_bundle(&serde_json::to_vec(&b).unwrap())
        .unwrap_err();
    assert_eq!(status_of(e), 422);
    // Unknown module: 403, as for another requester's.
    let e = client
        .submit("ab", &serde_json::json!({}), None)
        .unwrap_err();
    assert_eq!(status_of(e), 403);
    // Admin endpoints are not on the requester listener at all, and want the token on theirs.
    assert_eq!(raw(&base, "GET", "/admin/audit", b"", &[]).0, 404);
    let admin = admin_url(&s);
    let (status, _) = raw(&admin, "POST", "/admin/datasets", b"{}", &[]);
    assert_eq!(status, 401);
    let (status, _) = raw(
        &admin,
        "GET",
        "/admin/audit",
        b"",
        &[("authorization", "Bearer wrong".into())],
    );
    assert_eq!(status, 401);
    let (status, body) = raw(
        &admin,
        "GET",
        "/admin/audit",
        b"",
        &[("authorization", format!("Bearer {ADMIN}"))],
    );
    assert_eq!(status, 200, "{body}");
    // Rate limit: 3 runs per hour.
    let module = upload(&client, &w, "population");
    for i in 0..3 {
        client
            .submit(
                &module,
                &serde_json::json!({"epsilon": 0.1 + f64::from(i) * 0.01}),
                None,
            )
            .unwrap();
    }
    let e = client
        .submit(&module, &serde_json::json!({"epsilon": 0.2}), None)
        .unwrap_err();
    assert_eq!(status_of(e), 429);

    // Every 401 was counted (not audited: see tests/edge.rs); the 403 is on the record.
    let (_, metrics) = raw(
        &admin,
        "GET",
        "/admin/metrics",
        b"",
        &[("authorization", format!("Bearer {ADMIN}"))],
    );
    assert!(
        metrics.contains("oar_unauthenticated_requests_total 8"),
        "{metrics}"
    );
    let data = dir.path().join("data");
    s.shutdown();
    let log = std::fs::read_to_string(data.join("audit.log")).unwrap();
    assert!(!log.contains("\"kind\":\"auth\""), "{log}");
    assert!(
        log.contains("outside the requester's scope"),
        "the 403 is on the record"
    );
    oar_host::audit::verify(&data.join("audit.log"), &holder().public()).unwrap();
}

#[test]
fn many_concurrent_requesters_do_not_corrupt_state() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = World::new(2, 3);
    let config = setup(dir.path(), &mut w, |_| {});
    let data = config.data_dir.clone();
    let s = server::start(config).unwrap();
    let base = url(&s);
    let admin_client = Client::new(&base, w.requester.clone());
    let module = upload(&admin_client, &w, "population");
    let requesters = [w.requester.clone(), KeyPair::from_seed("c", "council")];
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let (base, module, key) = (base.clone(), module.clone(), requesters[t % 2].clone());
            std::thread::spawn(move || {
                let c = Client::new(&base, key);
                (0..2)
                    .map(|i| {
                        let eps = 0.05 + 0.01 * (t * 2 + i) as f64;
                        let job = c
                            .submit(&module, &serde_json::json!({"epsilon": eps}), None)
                            .unwrap();
                        let done = c.wait(&job, Duration::from_secs(120)).unwrap();
                        assert_eq!(done["status"], "succeeded", "{done}");
                        eps
                    })
                    .sum::<f64>()
            })
        })
        .collect();
    let per_thread: Vec<f64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let council = Client::new(&base, KeyPair::from_seed("c", "council"));
    let mine = admin_client.call("GET", "/v1/budget", None).unwrap()[0]["remaining"]
        .as_f64()
        .unwrap();
    let theirs = council.call("GET", "/v1/budget", None).unwrap()[0]["remaining"]
        .as_f64()
        .unwrap();
    let spent_mine: f64 = per_thread.iter().step_by(2).sum();
    let spent_theirs: f64 = per_thread.iter().skip(1).step_by(2).sum();
    assert!(
        (10.0 - mine - spent_mine).abs() < 1e-9,
        "{mine} vs {spent_mine}"
    );
    assert!((10.0 - theirs - spent_theirs).abs() < 1e-9);
    s.shutdown();
    let v = oar_host::audit::verify(&data.join("audit.log"), &holder().public()).unwrap();
    assert!(v.entries > 12 * 3);
}

fn write_config(dir: &Path, config: &ServeConfig) -> PathBuf {
    let path = dir.join("serve.toml");
    std::fs::write(&path, toml::to_string(config).unwrap()).unwrap();
    path
}

#[test]
fn a_server_killed_mid_run_restarts_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = World::new(2, 3);
    let mut config = setup(dir.path(), &mut w, |p| {
        p.limits.concurrent_runs = 1;
        p.limits.time_ms = 60_000;
    });
    config.listen = "127.0.0.1:0".into();
    // The child process prints its address; a port is picked by the OS.
    let config_path = write_config(dir.path(), &config);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_oar"))
        .args(["serve", "--config"])
        .arg(&config_path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let line = lines.next().unwrap().unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .to_string();
    let base = format!("http://{addr}");
    let client = Client::new(&base, w.requester.clone());
    // A module that spins (it holds the only worker), and a normal run queued behind it.
    let spin = upload(&client, &w, "oar_test_guest_spin");
    let spinning = client.submit(&spin, &serde_json::json!({}), None).unwrap();
    let population = upload(&client, &w, "population");
    let queued = client
        .submit(&population, &serde_json::json!({"epsilon": 0.5}), None)
        .unwrap();
    let until = std::time::Instant::now() + Duration::from_secs(30);
    while client.job(&spinning).unwrap()["status"] != "running" {
        assert!(std::time::Instant::now() < until, "the job never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL mid-run
    child.wait().unwrap();

    // Restart in-process on the same data: the killed job is interrupted, the queued one runs.
    let s = server::start(config).unwrap();
    let client = Client::new(&url(&s), w.requester.clone());
    let killed = client.job(&spinning).unwrap();
    assert_eq!(killed["status"], "interrupted", "{killed}");
    let done = client.wait(&queued, Duration::from_secs(60)).unwrap();
    assert_eq!(done["status"], "succeeded", "{done}");
    let budget = client.call("GET", "/v1/budget", None).unwrap();
    assert!(
        (budget[0]["remaining"].as_f64().unwrap() - 9.5).abs() < 1e-9,
        "{budget}"
    );
    let data = dir.path().join("data");
    s.shutdown();
    // The audit log chains across the kill and the restart.
    oar_host::audit::verify(&data.join("audit.log"), &holder().public()).unwrap();
}

#[test]
fn graceful_shutdown_lets_the_running_job_finish_and_keeps_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = World::new(2, 3);
    let config = setup(dir.path(), &mut w, |p| {
        p.limits.concurrent_runs = 1;
        p.limits.time_ms = 1_500;
    });
    let s = server::start(config.clone()).unwrap();
    let client = Client::new(&url(&s), w.requester.clone());
    let spin = upload(&client, &w, "oar_test_guest_spin");
    let running = client.submit(&spin, &serde_json::json!({}), None).unwrap();
    let population = upload(&client, &w, "population");
    let waiting = client
        .submit(&population, &serde_json::json!({"epsilon": 0.5}), None)
        .unwrap();
    let until = std::time::Instant::now() + Duration::from_secs(30);
    while client.job(&running).unwrap()["status"] != "running" {
        assert!(std::time::Instant::now() < until, "the job never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Shutdown waits for the running job (the spin module meets its deadline and fails
    // cleanly); the queued one is left for the next start.
    s.shutdown();
    let s = server::start(config).unwrap();
    let client = Client::new(&url(&s), w.requester.clone());
    let finished = client.job(&running).unwrap();
    assert_eq!(finished["status"], "failed", "{finished}");
    assert!(
        finished["error"].as_str().unwrap().contains("time limit"),
        "{finished}"
    );
    let done = client.wait(&waiting, Duration::from_secs(60)).unwrap();
    assert_eq!(done["status"], "succeeded", "{done}");
    s.shutdown();
}

#[test]
fn oar_submit_and_oar_fetch_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = World::new(2, 3);
    let config = setup(dir.path(), &mut w, |_| {});
    let s = server::start(config).unwrap();
    let d = dir.path();
    w.requester.write(d).unwrap();
    let b = bundle(&w, component("population"));
    b.write(&d.join("m.oarb")).unwrap();
    approval(&w, &b, 2).write(&d.join("a.json")).unwrap();
    let oar = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_oar"))
            .args(args)
            .current_dir(d)
            .output()
            .unwrap()
    };
    let base = url(&s);
    let submitted = oar(&[
        "submit",
        "--server",
        &base,
        "--key",
        "stats-office.key",
        "--bundle",
        "m.oarb",
        "--approval",
        "a.json",
        "--params",
        r#"{"epsilon": 0.5}"#,
    ]);
    assert!(
        submitted.status.success(),
        "{}",
        String::from_utf8_lossy(&submitted.stderr)
    );
    let job = String::from_utf8(submitted.stdout)
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(job.len(), 16, "{job}");
    // The holder's `.pub` file, as `oar keygen` writes it, names the key to verify against.
    holder().write(d).unwrap();
    let holder_key = holder().public().to_hex();
    let fetched = oar(&[
        "fetch",
        "--server",
        &base,
        "--key",
        "stats-office.key",
        "--job",
        &job,
        "--out",
        "release",
        "--holder",
        "holder.pub",
        "--wait-seconds",
        "60",
    ]);
    let stdout = String::from_utf8_lossy(&fetched.stdout);
    assert!(
        fetched.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&fetched.stderr)
    );
    assert!(
        stdout.contains("verified: signed by the holder"),
        "{stdout}"
    );
    assert!(d.join("release/population_by_region_day.parquet").exists());
    // A key the server does not know is refused with the server's reason.
    KeyPair::from_seed("stranger", "stranger").write(d).unwrap();
    let refused = oar(&[
        "fetch",
        "--server",
        &base,
        "--key",
        "stranger.key",
        "--job",
        &job,
        "--out",
        "x",
        "--holder",
        &holder_key,
    ]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("401"));
    s.shutdown();
}

/// `promtool` from Debian's `prometheus` package (`.ci/run` installs it).
fn promtool() -> &'static str {
    assert!(
        std::process::Command::new("promtool")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "promtool is missing: install Debian's prometheus package (.ci/run does)"
    );
    "promtool"
}

/// `/metrics` after a run and refused requests: `promtool check metrics` (the Prometheus
/// project's own linter) finds nothing to say, the figures are there with fixed labels only, and
/// a real Prometheus on loopback scrapes it with the admin token. `/healthz` and `/readyz`
/// answer without a token.
#[test]
fn metrics_pass_promtool_and_a_real_prometheus_scrapes_them() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = World::new(2, 3);
    let s = server::start(setup(dir.path(), &mut w, |_| {})).unwrap();
    let client = Client::new(&url(&s), w.requester.clone());
    let module = upload(&client, &w, "population");
    let job = client
        .submit(&module, &serde_json::json!({"epsilon": 0.5}), None)
        .unwrap();
    assert_eq!(
        client.wait(&job, Duration::from_secs(60)).unwrap()["status"],
        "succeeded"
    );
    // An unsigned request and a wrong admin token.
    assert_eq!(raw(&url(&s), "GET", "/v1/datasets", b"", &[]).0, 401);
    let wrong = [("authorization", "Bearer nope".to_string())];
    assert_eq!(raw(&admin_url(&s), "GET", "/metrics", b"", &wrong).0, 401);

    for probe in ["/healthz", "/readyz"] {
        assert_eq!(
            raw(&admin_url(&s), "GET", probe, b"", &[]).0,
            200,
            "{probe}"
        );
    }
    let token = [("authorization", format!("Bearer {ADMIN}"))];
    let (status, metrics) = raw(&admin_url(&s), "GET", "/metrics", b"", &token);
    assert_eq!(status, 200, "{metrics}");
    for line in [
        "oar_jobs{state=\"succeeded\"} 1",
        "oar_queue_depth 0",
        "oar_run_duration_seconds_count 1",
        "oar_auth_failures_total{reason=\"unsigned\"} 1",
        "oar_auth_failures_total{reason=\"admin_token\"} 1",
        "oar_query_refusals_total{reason=\"budget_exhausted\"} 0",
        "oar_epsilon_spent{dataset=\"cdr\"} 0.5",
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
    // Labels are fixed names: no requester, module hash or job id.
    for private in [w.requester.name(), module.as_str(), job.as_str()] {
        assert!(!metrics.contains(private), "{private} in\n{metrics}");
    }
    let mut check = std::process::Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    check
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}"
    );

    // A real Prometheus scrapes it every second, with the admin token from a file.
    let work = dir.path().join("prometheus");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("token"), ADMIN).unwrap();
    let listen = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let web = listen.local_addr().unwrap();
    drop(listen);
    std::fs::write(
        work.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: oar\n    \
             authorization:\n      credentials_file: {}\n    static_configs:\n      \
             - targets: ['{}']\n",
            work.join("token").display(),
            s.admin_addr()
        ),
    )
    .unwrap();
    struct Killed(std::process::Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _prometheus = Killed(
        std::process::Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                work.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                work.join("data").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(work.join("log")).unwrap())
            .spawn()
            .expect("prometheus starts (Debian's prometheus package; .ci/run installs it)"),
    );
    let until = std::time::Instant::now() + Duration::from_secs(60);
    let query = format!("http://{web}/api/v1/query?query=oar_jobs%7Bstate%3D%22succeeded%22%7D");
    loop {
        let answer = ureq::get(&query)
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .unwrap_or_default();
        if answer.contains("\"value\"") && answer.contains("\"1\"]") {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "Prometheus did not scrape oar_jobs: {answer}\n{}",
            std::fs::read_to_string(work.join("log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    s.shutdown();
}

/// Under systemd (`Type=notify`), `oar serve` says `READY=1` on `NOTIFY_SOCKET` once it
/// listens, when `/readyz` answers 200, and `STOPPING=1` when SIGTERM starts its shutdown.
#[test]
fn oar_serve_tells_systemd_when_it_is_ready_and_when_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = World::new(2, 3);
    let mut config = setup(dir.path(), &mut w, |_| {});
    config.listen = "127.0.0.1:0".into();
    config.admin_listen = "127.0.0.1:0".into();
    let config_path = write_config(dir.path(), &config);
    let socket_path = dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_oar"))
        .args(["serve", "--config"])
        .arg(&config_path)
        .env("NOTIFY_SOCKET", &socket_path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 512];
    let n = socket.recv(&mut buf).expect("READY=1 within a minute");
    let ready = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(ready.starts_with("READY=1\n"), "{ready}");
    assert!(
        ready.contains(&format!("MAINPID={}", child.id())),
        "{ready}"
    );
    let stdout = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()))
        .map(|l| l.unwrap())
        .find(|l| l.contains("admin API on http://"))
        .unwrap();
    let admin = stdout
        .split("admin API on http://")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap();
    assert_eq!(
        raw(&format!("http://{admin}"), "GET", "/readyz", b"", &[]).0,
        200
    );
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let n = socket.recv(&mut buf).expect("STOPPING=1 after SIGTERM");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("STOPPING=1"));
    assert!(child.wait().unwrap().success());
}

/// Refusals are RFC 9457 problem details (`application/problem+json`) with a stable `type` per
/// kind, the kind's `title`, the `status` and a `detail` that says what to do (kept under
/// `error` too, for earlier clients), whichever layer refuses: authentication, the route, the
/// admin guard.
#[test]
fn refusals_are_problem_details_with_a_stable_type() {
    let dir = tempfile::tempdir().unwrap();
    let (w, s) = common::serve::started(dir.path());
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    );
    let get = |url: String, headers: &[(&str, String)]| {
        let mut r = agent.get(&url);
        for (k, v) in headers {
            r = r.header(*k, v);
        }
        let mut response = r.call().unwrap();
        let kind = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body: serde_json::Value =
            serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
        (response.status().as_u16(), kind, body)
    };
    let signed = |path: &str| {
        let now = chrono::Utc::now().timestamp();
        signed_headers(
            &url(&s),
            &w.requester,
            "GET",
            path,
            b"",
            now,
            "problem-details-1",
        )
    };
    let cases = [
        (
            get(format!("{}/v1/datasets", url(&s)), &[]),
            401,
            "/problems/unauthenticated",
        ),
        (
            get(format!("{}/metrics", admin_url(&s)), &[]),
            401,
            "/problems/admin-token-required",
        ),
        (
            get(
                format!("{}/v1/runs/0000000000000000", url(&s)),
                &signed("/v1/runs/0000000000000000"),
            ),
            403,
            "/problems/forbidden",
        ),
    ];
    for ((status, content_type, body), want_status, want_type) in cases {
        assert_eq!(status, want_status, "{body}");
        assert_eq!(content_type, "application/problem+json", "{body}");
        assert_eq!(body["type"], want_type, "{body}");
        assert_eq!(body["status"], want_status, "{body}");
        assert!(
            body["title"].as_str().is_some_and(|t| !t.is_empty()),
            "{body}"
        );
        assert!(
            body["detail"].as_str().is_some_and(|t| !t.is_empty()),
            "{body}"
        );
        assert_eq!(body["detail"], body["error"], "{body}");
    }
    // Every kind is documented in the OpenAPI document.
    let doc: serde_json::Value = serde_json::from_str(server::OPENAPI).unwrap();
    let documented = &doc["components"]["schemas"]["Problem"]["properties"]["type"]["enum"];
    for p in server::problem::Problem::ALL {
        assert!(
            documented
                .as_array()
                .is_some_and(|a| a.iter().any(|t| *t == p.type_uri())),
            "{} undocumented",
            p.type_uri()
        );
    }
    s.shutdown();
}

/// `GET /v1/runs/{id}/events` follows a job as server-sent events: a `status` event now and at
/// each change of state, ending after the final one. Another requester is refused before any
/// event, with the same 403 as for a job that does not exist.
#[test]
fn a_job_is_followed_as_server_sent_events_until_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let other = KeyPair::generate("other-office");
    let mut w = World::new(2, 3);
    let s = server::start(setup(dir.path(), &mut w, |p| {
        p.requesters.push(oar_host::policy::Requester {
            name: "other-office".into(),
            key: other.public(),
            datasets: vec!["cdr".into()],
        })
    }))
    .unwrap();
    let client = Client::new(&url(&s), w.requester.clone());
    let module = upload(&client, &w, "population");
    let job = client
        .submit(&module, &serde_json::json!({"epsilon": 0.5}), None)
        .unwrap();
    let path = format!("/v1/runs/{job}/events");
    let headers = signed_headers(
        &url(&s),
        &w.requester,
        "GET",
        &path,
        b"",
        chrono::Utc::now().timestamp(),
        "events-1",
    );
    let mut request = ureq::get(format!("{}{path}", url(&s)));
    for (k, v) in &headers {
        request = request.header(*k, v);
    }
    let mut response = request.call().unwrap();
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    // The stream ends by itself after the final state.
    let text = response.body_mut().read_to_string().unwrap();
    let states: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| {
            serde_json::from_str::<serde_json::Value>(d).unwrap()["status"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(text.contains("event: status"), "{text}");
    assert_eq!(
        states.last().map(String::as_str),
        Some("succeeded"),
        "{text}"
    );
    let mut unique = states.clone();
    unique.dedup();
    assert_eq!(unique, states, "an event per change of state: {text}");

    // Someone else's job: refused, as a job that does not exist is.
    let (status, body) = raw(
        &url(&s),
        "GET",
        &path,
        b"",
        &signed_headers(
            &url(&s),
            &other,
            "GET",
            &path,
            b"",
            chrono::Utc::now().timestamp(),
            "events-2",
        ),
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("/problems/forbidden"), "{body}");
    assert!(!body.contains("event:"), "{body}");
    s.shutdown();
}

/// A Python module, an 18.6 MB component, fits the service's upload limit (its bundle is JSON
/// with the component in base64), and runs as a job like any module: compiled on first use
/// within the run's time limit, released and signed.
#[test]
fn a_python_module_uploads_and_runs_as_a_job() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = World::new(2, 3);
    // The service's own upload limit (the other tests use a smaller one).
    let config = ServeConfig {
        max_body_bytes: ServeConfig::default().max_body_bytes,
        // The default time limit: the first run compiles the component (about 7 s here), and
        // compiling counts against the run's deadline.
        ..setup(dir.path(), &mut w, |p| {
            p.limits.time_ms = oar_host::policy::Limits::default().time_ms
        })
    };
    let s = server::start(config).unwrap();
    let client = Client::new(&url(&s), w.requester.clone());
    let b = bundle(
        &w,
        common::python::component("example-algorithms/population-py"),
    );
    let a = approval(&w, &b, 2);
    let body = serde_json::to_vec(&b).unwrap();
    let limit = ServeConfig::default().max_body_bytes;
    assert!(
        body.len() < limit,
        "a {} byte bundle over the {limit} byte limit",
        body.len()
    );
    let module = client.upload_bundle(&body).unwrap();
    client
        .attach_approval(&serde_json::to_vec(&a).unwrap())
        .unwrap();
    let job = client
        .submit(&module, &serde_json::json!({"epsilon": 0.5}), None)
        .unwrap();
    let done = client.wait(&job, Duration::from_secs(120)).unwrap();
    assert_eq!(done["status"], "succeeded", "{done}");
    let (_, files) = client
        .fetch_verified(&job, &dir.path().join("release"), &holder().public())
        .unwrap();
    assert_eq!(files.len(), 4, "json, csv, parquet and the signature");
    s.shutdown();
}

/// Compiling a module counts against its run's deadline, and a Python component takes seconds
/// to compile: under the test world's 5 s limit its first run used to fail. Now the service
/// compiles a module into its compiled-code cache as soon as an approval makes it verify, so
/// even the first run starts from the cache.
#[test]
fn a_module_is_compiled_when_approved_so_its_first_run_fits_a_short_limit() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("fresh-cache");
    let mut w = World::new(2, 3);
    let config = ServeConfig {
        max_body_bytes: ServeConfig::default().max_body_bytes,
        cache_dir: Some(cache.clone()),
        ..setup(dir.path(), &mut w, |p| p.limits.time_ms = 5_000)
    };
    let s = server::start(config).unwrap();
    let client = Client::new(&url(&s), w.requester.clone());
    let b = bundle(
        &w,
        common::python::component("example-algorithms/population-py"),
    );
    let module = client
        .upload_bundle(&serde_json::to_vec(&b).unwrap())
        .unwrap();
    client
        .attach_approval(&serde_json::to_vec(&approval(&w, &b, 2)).unwrap())
        .unwrap();
    let compiled = cache.join(format!("{module}.cwasm"));
    let until = std::time::Instant::now() + Duration::from_secs(120);
    while !compiled.exists() {
        assert!(
            std::time::Instant::now() < until,
            "the approved module was not compiled ahead of its runs"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let job = client
        .submit(&module, &serde_json::json!({"epsilon": 0.5}), None)
        .unwrap();
    let done = client.wait(&job, Duration::from_secs(60)).unwrap();
    assert_eq!(done["status"], "succeeded", "{done}");
    s.shutdown();
}
