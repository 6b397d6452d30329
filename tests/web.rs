//! The pages `oar serve` serves to people (`host/src/server/web`): in a real browser (Debian's
//! Chromium driven by npm's Playwright, every page checked by axe-core; `tests/interop/web.mjs`)
//! and over plain HTTP for the attacks a browser would not make.

mod common;

use common::python::{interop, run};
use common::serve::{admin_url, setup, url, ADMIN};
use common::{approval, bundle, component, World};
use oar_host::bundle::{Bundle, Manifest};
use oar_host::client::Client;
use oar_host::keys::KeyPair;
use oar_host::server;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The second requester in [`setup`]'s policy.
fn council() -> KeyPair {
    KeyPair::from_seed("c", "council")
}

/// The od-flows example signed with its own manifest (a second module, different hash).
fn od_flows(w: &World) -> Bundle {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../example-algorithms/od-flows/manifest.toml");
    let manifest = Manifest::from_toml(&std::fs::read_to_string(path).unwrap()).unwrap();
    Bundle::sign(component("od_flows"), manifest, &w.author)
}

/// A server with a finished population run (approved 2 of 2) and od-flows awaiting its second
/// signature; returns the run's job id and od-flows' module hash.
fn scene(dir: &Path) -> (World, server::RunningServer, String, String) {
    let mut w = World::new(2, 3);
    let s = server::start(setup(dir, &mut w, |_| {})).unwrap();
    let client = Client::new(&url(&s), w.requester.clone());
    let population = bundle(&w, component("population"));
    let hash = client
        .upload_bundle(&serde_json::to_vec(&population).unwrap())
        .unwrap();
    client
        .attach_approval(&serde_json::to_vec(&approval(&w, &population, 2)).unwrap())
        .unwrap();
    let job = client.submit(&hash, &serde_json::json!({}), None).unwrap();
    let done = client.wait(&job, Duration::from_secs(120)).unwrap();
    assert_eq!(done["status"], "succeeded", "{done}");
    let od = od_flows(&w);
    let pending = client
        .upload_bundle(&serde_json::to_vec(&od).unwrap())
        .unwrap();
    client
        .attach_approval(&serde_json::to_vec(&approval(&w, &od, 1)).unwrap())
        .unwrap();
    (w, s, job, pending)
}

fn agent() -> ureq::Agent {
    ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .build(),
    )
}

/// GET `path`: status, headers and body.
fn get(base: &str, path: &str, cookie: Option<&str>) -> (u16, ureq::http::HeaderMap, String) {
    let mut r = agent().get(format!("{base}{path}"));
    if let Some(c) = cookie {
        r = r.header("cookie", c);
    }
    let mut response = r.call().unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.body_mut().read_to_string().unwrap_or_default(),
    )
}

fn post(
    base: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, ureq::http::HeaderMap, String) {
    let mut r = agent().post(format!("{base}{path}"));
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let mut response = r.send(body).unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (
        status,
        headers,
        response.body_mut().read_to_string().unwrap_or_default(),
    )
}

/// The challenge on the sign-in page.
fn challenge(base: &str) -> String {
    let (_, _, html) = get(base, "/signin", None);
    let start = html.find("data-challenge=\"").expect("a challenge") + 16;
    let end = start + html[start..].find('"').unwrap();
    html[start..end].to_string()
}

fn signin_body(challenge: &str, key: &KeyPair, context: &str) -> String {
    let sig = key.sign(context, &oar_host::keys::sha256(challenge.as_bytes()));
    serde_json::json!({"challenge": challenge, "key": key.public(), "signature": sig}).to_string()
}

/// Signs in as `key` the way the page's script does; returns the `cookie` header to send.
fn sign_in(base: &str, key: &KeyPair) -> String {
    let c = challenge(base);
    let (status, headers, body) = post(
        base,
        "/signin",
        &signin_body(&c, key, "oar-web-signin-v1"),
        &[("content-type", "application/json")],
    );
    assert_eq!(status, 200, "{body}");
    let set = headers["set-cookie"].to_str().unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    set.split(';').next().unwrap().to_string()
}

#[test]
fn the_pages_work_for_people_in_a_real_browser() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "Chromium is not at {chromium}: `.ci/run` installs Debian's chromium (or set CHROMIUM)"
    );
    if !interop().join("node_modules/playwright-core").exists()
        || !interop().join("node_modules/@axe-core/playwright").exists()
    {
        run(Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--silent"])
            .current_dir(interop()));
    }
    let dir = tempfile::tempdir().unwrap();
    let (w, s, job, pending) = scene(dir.path());
    let keys = dir.path().join("people");
    let (member_key, member_pub) = w.members[1].write(&keys).unwrap();
    let (requester_key, _) = w.requester.write(&keys).unwrap();
    let (council_key, _) = council().write(&keys).unwrap();
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-screenshots");
    std::fs::create_dir_all(&artifacts).unwrap();
    let out = run(Command::new("node")
        .arg(interop().join("web.mjs"))
        .current_dir(interop())
        .env("OAR_URL", url(&s))
        .env("OAR_ADMIN_URL", admin_url(&s))
        .env("ADMIN_TOKEN", ADMIN)
        .env("MEMBER_KEY", &member_key)
        .env("MEMBER_PUB", &member_pub)
        .env("REQUESTER_KEY", &requester_key)
        .env("OTHER_REQUESTER_KEY", &council_key)
        .env("PENDING_HASH", &pending)
        .env("JOB_ID", &job)
        .env("CHROMIUM", &chromium)
        .env("ARTIFACTS", &artifacts));
    println!("{out}");
    // The signature made in the browser counts: the module now runs.
    let client = Client::new(&url(&s), w.requester.clone());
    let job = client
        .submit(&pending, &serde_json::json!({}), None)
        .unwrap();
    let done = client.wait(&job, Duration::from_secs(120)).unwrap();
    assert_eq!(done["status"], "succeeded", "{done}");
    s.shutdown();
}

#[test]
fn public_pages_need_no_sign_in_and_carry_a_strict_content_security_policy() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = World::new(2, 3);
    let s = server::start(setup(dir.path(), &mut w, |_| {})).unwrap();
    for path in ["/", "/register", "/modules", "/datasets", "/log", "/signin"] {
        let (status, headers, body) = get(&url(&s), path, None);
        assert_eq!(status, 200, "{path}: {body}");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
        assert!(!body.contains("<script>"), "{path} has an inline script");
    }
    let (status, _, head) = get(&url(&s), "/log/head.json", None);
    assert_eq!(status, 200);
    let head: oar_host::audit::Head = serde_json::from_str(&head).unwrap();
    assert!(head.signed_by(&common::serve::holder().public()));
    s.shutdown();
}

#[test]
fn pages_for_people_ask_them_to_sign_in_and_refuse_everyone_else() {
    let dir = tempfile::tempdir().unwrap();
    let (w, s, job, pending) = scene(dir.path());
    let base = url(&s);
    // Not signed in: to the sign-in page, and back after.
    for path in [
        "/review",
        &format!("/review/{pending}"),
        "/runs",
        &format!("/runs/{job}"),
    ] {
        let (status, headers, _) = get(&base, path, None);
        assert_eq!(status, 303, "{path}");
        assert_eq!(headers["location"], format!("/signin?next={path}").as_str());
    }
    // A key that is neither member nor requester (the author's) cannot sign in.
    let c = challenge(&base);
    let (status, _, body) = post(
        &base,
        "/signin",
        &signin_body(&c, &w.author, "oar-web-signin-v1"),
        &[("content-type", "application/json")],
    );
    assert_eq!(status, 401, "{body}");
    // A signature in another context, or over another challenge, does not sign in; nor does a
    // challenge used once already.
    let c = challenge(&base);
    let (status, _, _) = post(
        &base,
        "/signin",
        &signin_body(&c, &w.requester, "oar-approval-v1"),
        &[],
    );
    assert_eq!(status, 401);
    let (status, _, _) = post(
        &base,
        "/signin",
        &signin_body(&c, &w.requester, "oar-web-signin-v1"),
        &[],
    );
    assert_eq!(status, 401, "a used challenge signs in nobody");
    // A forged cookie is nobody.
    let (status, _, _) = get(&base, "/runs", Some("oar_session=00ff"));
    assert_eq!(status, 303);
    // The requester is not a committee member: no review pages.
    let requester = sign_in(&base, &w.requester);
    let (status, _, _) = get(&base, &format!("/review/{pending}"), Some(&requester));
    assert_eq!(status, 403);
    // The other requester: the run and its files answer as a run that does not exist.
    let other = sign_in(&base, &council());
    for path in [
        format!("/runs/{job}"),
        format!("/runs/{job}/files/release.json"),
        "/runs/not-a-run".to_string(),
    ] {
        let (status, _, body) = get(&base, &path, Some(&other));
        assert_eq!(status, 403, "{path}");
        assert!(body.contains("not yours to see"));
    }
    // The owner gets the files, but only those the release folder lists.
    let (status, headers, _) = get(
        &base,
        &format!("/runs/{job}/files/release.json"),
        Some(&requester),
    );
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    let (status, _, _) = get(
        &base,
        &format!("/runs/{job}/files/..%2F..%2Fpolicy.toml"),
        Some(&requester),
    );
    assert_eq!(status, 403);
    // A member's signature posted from another site is refused, even with the member's cookie.
    let member = sign_in(&base, &w.members[1]);
    let (status, _, html) = get(&base, &format!("/review/{pending}"), Some(&member));
    assert_eq!(status, 200);
    let start = html.find("data-digest=\"").expect("a sign form") + 13;
    let digest = html[start..start + 64].to_string();
    let sig = w.members[1].sign(
        oar_host::approval::APPROVAL_CONTEXT,
        &hex::decode(&digest).unwrap().try_into().unwrap(),
    );
    let body = serde_json::json!({"approval_digest": digest, "member": w.members[1].public(), "signature": sig}).to_string();
    let (status, _, _) = post(
        &base,
        &format!("/review/{pending}/sign"),
        &body,
        &[("cookie", &member), ("origin", "https://evil.example")],
    );
    assert_eq!(status, 401, "a cross-site post is refused");
    s.shutdown();
}

#[test]
fn the_operator_page_is_on_the_admin_listener_behind_the_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = World::new(2, 3);
    let s = server::start(setup(dir.path(), &mut w, |_| {})).unwrap();
    let (status, _, _) = get(&url(&s), "/operator", None);
    assert_eq!(status, 404, "not on the requester listener");
    let admin = admin_url(&s);
    let (status, _, body) = get(&admin, "/operator", None);
    assert_eq!(status, 200);
    assert!(body.contains("Admin token") && !body.contains("Jobs by state"));
    let (status, _, _) = post(
        &admin,
        "/operator/signin",
        "token=wrong",
        &[("content-type", "application/x-www-form-urlencoded")],
    );
    assert_eq!(status, 401);
    let (status, headers, _) = post(
        &admin,
        "/operator/signin",
        &format!("token={ADMIN}"),
        &[("content-type", "application/x-www-form-urlencoded")],
    );
    assert_eq!(status, 303);
    let cookie = headers["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let (status, _, body) = get(&admin, "/operator", Some(&cookie));
    assert_eq!(status, 200);
    assert!(body.contains("Jobs by state") && body.contains("Privacy budgets"));
    s.shutdown();
}
