//! Fixtures for tests of `oar serve` over real HTTP: a data folder, a running server, signed
//! and raw requests.

use super::{approval, bundle, component, World};
use oar_host::client::{Client, ClientError};
use oar_host::keys::KeyPair;
use oar_host::policy::{Party, Requester};
use oar_host::server::{self, httpsig, ServeConfig};
use std::path::Path;

pub const ADMIN: &str = "test-admin-token";

pub fn holder() -> KeyPair {
    KeyPair::from_seed("holder", "test holder")
}

/// A data folder with the world's policy (plus a holder and a second requester) and keys.
pub fn setup(
    dir: &Path,
    w: &mut World,
    tweak: impl FnOnce(&mut oar_host::policy::Policy),
) -> ServeConfig {
    w.policy.holder = Some(Party {
        name: "holder".into(),
        key: holder().public(),
    });
    w.policy.requesters.push(Requester {
        name: "city-council".into(),
        key: KeyPair::from_seed("c", "council").public(),
        datasets: vec!["cdr".into()],
    });
    tweak(&mut w.policy);
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, toml::to_string(&w.policy).unwrap()).unwrap();
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    holder().write(&keys).unwrap();
    ServeConfig {
        listen: "127.0.0.1:0".into(),
        data_dir: dir.join("data"),
        policy: Some(policy),
        holder_key: Some(keys.join("holder.key")),
        datasets: vec![super::small_cdr().to_path_buf()],
        admin_token: Some(ADMIN.into()),
        max_body_bytes: 8 * 1024 * 1024,
        clock_window_seconds: 300,
        cache_dir: Some(super::cache_dir()),
        authorities: Vec::new(),
        admin_listen: "127.0.0.1:0".into(),
        ..ServeConfig::default()
    }
}

/// A running server over a fresh data folder in `dir`, with the standard test world.
pub fn started(dir: &Path) -> (World, server::RunningServer) {
    let mut w = World::new(2, 3);
    let s = server::start(setup(dir, &mut w, |_| {})).unwrap();
    (w, s)
}

/// The admin API's base URL (its own loopback listener).
pub fn admin_url(s: &server::RunningServer) -> String {
    format!("http://{}", s.admin_addr())
}

pub fn url(s: &server::RunningServer) -> String {
    format!("http://{}", s.addr())
}

/// Uploads the population bundle and its approval; returns the module hash.
pub fn upload(client: &Client, w: &World, name: &str) -> String {
    let b = bundle(w, component(name));
    let a = approval(w, &b, 2);
    let hash = client
        .upload_bundle(&serde_json::to_vec(&b).unwrap())
        .unwrap();
    client
        .attach_approval(&serde_json::to_vec(&a).unwrap())
        .unwrap();
    hash
}

pub fn status_of(e: ClientError) -> u16 {
    match e {
        ClientError::Refused { status, .. } => status,
        other => panic!("expected a refusal, got {other}"),
    }
}

/// A raw request with the given headers (for forged and replayed signatures). Status 0 means
/// the server closed the connection while the body was still being sent (it refuses an
/// oversized body as soon as it sees it, and the client may then fail writing the rest).
pub fn raw(
    base: &str,
    method: &str,
    path: &str,
    body: &[u8],
    headers: &[(&str, String)],
) -> (u16, String) {
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    );
    let url = format!("{base}{path}");
    let mut response = if method == "GET" {
        let mut r = agent.get(&url);
        for (k, v) in headers {
            r = r.header(*k, v);
        }
        r.call().unwrap()
    } else {
        let mut r = agent.post(&url);
        for (k, v) in headers {
            r = r.header(*k, v);
        }
        match r.send(body) {
            Ok(response) => response,
            Err(ureq::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                return (0, e.to_string());
            }
            Err(e) => panic!("request failed: {e}"),
        }
    };
    let status = response.status().as_u16();
    (
        status,
        response.body_mut().read_to_string().unwrap_or_default(),
    )
}

/// The signature headers of a request to `base` + `path`, as OAR's client signs it.
pub fn signed_headers(
    base: &str,
    key: &KeyPair,
    method: &str,
    path: &str,
    body: &[u8],
    created: i64,
    nonce: &str,
) -> Vec<(&'static str, String)> {
    let h = httpsig::sign(key, method, &format!("{base}{path}"), body, created, nonce).unwrap();
    vec![
        ("content-digest", h.content_digest),
        ("signature-input", h.signature_input),
        ("signature", h.signature),
    ]
}
