//! The requester's client for `oar serve`: every request is signed with the requester's key
//! (RFC 9421, see [`crate::server::httpsig`]). `oar submit` and `oar fetch` use it.

use crate::keys::KeyPair;
use crate::server::httpsig;
use base64::Engine as _;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Largest response the client reads (releases are the big ones).
const MAX_RESPONSE: u64 = 512 * 1024 * 1024;

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached.
    #[error("cannot reach {url}: {message}")]
    Unreachable {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// The server refused, with its status and message.
    #[error("the server answered {status}: {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Its error message.
        message: String,
    },
    /// The answer is not what the API documents.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
    /// The downloaded release does not verify against the holder's key: nothing was kept.
    #[error("the release does not verify, so nothing was written: {0}")]
    Unverified(String),
    /// The CA certificate file is unusable.
    #[error("the CA certificate: {0}")]
    Certificate(String),
    /// Writing the release failed.
    #[error("writing {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// A signed-request client for one server and one requester key.
pub struct Client {
    base: String,
    key: KeyPair,
    agent: ureq::Agent,
}

impl Client {
    /// A client for the server at `base` (e.g. `https://holder.example:8420`) signing as
    /// `key`; HTTPS servers are checked against the system's (webpki) roots.
    pub fn new(base: &str, key: KeyPair) -> Self {
        Self::build(base, key, None)
    }

    /// As [`Client::new`], trusting only the CA certificate(s) in `pem` for HTTPS (a holder
    /// with its own CA, or a self-signed certificate).
    pub fn with_ca_certs(base: &str, key: KeyPair, pem: &[u8]) -> Result<Self, ClientError> {
        let certs = ureq::tls::parse_pem(pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ClientError::Certificate(e.to_string()))?;
        if certs.is_empty() {
            return Err(ClientError::Certificate(
                "no PEM `BEGIN CERTIFICATE` block found".into(),
            ));
        }
        Ok(Self::build(
            base,
            key,
            Some(ureq::tls::RootCerts::new_with_certs(&certs)),
        ))
    }

    fn build(base: &str, key: KeyPair, roots: Option<ureq::tls::RootCerts>) -> Self {
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(roots) = roots {
            tls = tls.root_certs(roots);
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .tls_config(tls.build())
            .build();
        Client {
            base: base.trim_end_matches('/').to_string(),
            key,
            agent: ureq::Agent::new_with_config(config),
        }
    }

    /// Sends a signed request; returns the JSON answer of a 2xx response.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Value, ClientError> {
        let body = body.unwrap_or_default();
        let url = format!("{}{path}", self.base);
        let nonce = format!("{}{}", crate::job::new_job_id(), crate::job::new_job_id());
        let h = httpsig::sign(
            &self.key,
            method,
            &url,
            body,
            chrono::Utc::now().timestamp(),
            &nonce,
        )
        .map_err(|e| ClientError::Protocol(format!("cannot sign a request to {url}: {e}")))?;
        let unreachable = |e: ureq::Error| ClientError::Unreachable {
            url: url.clone(),
            message: e.to_string(),
        };
        let response = match method {
            "GET" => self
                .agent
                .get(&url)
                .header("content-digest", &h.content_digest)
                .header("signature-input", &h.signature_input)
                .header("signature", &h.signature)
                .call()
                .map_err(unreachable)?,
            _ => self
                .agent
                .post(&url)
                .header("content-type", "application/json")
                .header("content-digest", &h.content_digest)
                .header("signature-input", &h.signature_input)
                .header("signature", &h.signature)
                .send(body)
                .map_err(unreachable)?,
        };
        let status = response.status().as_u16();
        let mut response = response;
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE)
            .read_to_string()
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if (200..300).contains(&status) {
            Ok(value)
        } else {
            let message = value["error"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| value.to_string());
            Err(ClientError::Refused { status, message })
        }
    }

    /// Uploads a bundle file; returns its module hash.
    pub fn upload_bundle(&self, bundle_json: &[u8]) -> Result<String, ClientError> {
        let v = self.call("POST", "/v1/bundles", Some(bundle_json))?;
        text(&v, "module_hash")
    }

    /// Attaches an approval file; returns its digest.
    pub fn attach_approval(&self, approval_json: &[u8]) -> Result<String, ClientError> {
        let v = self.call("POST", "/v1/approvals", Some(approval_json))?;
        text(&v, "approval_digest")
    }

    /// Submits a run; returns the job id.
    pub fn submit(
        &self,
        module_hash: &str,
        params: &Value,
        every_seconds: Option<i64>,
    ) -> Result<String, ClientError> {
        let mut req = serde_json::json!({"module_hash": module_hash, "params": params});
        if let Some(e) = every_seconds {
            req["every_seconds"] = e.into();
        }
        let v = self.call("POST", "/v1/runs", Some(req.to_string().as_bytes()))?;
        text(&v, "job_id")
    }

    /// A job's status document.
    pub fn job(&self, id: &str) -> Result<Value, ClientError> {
        self.call("GET", &format!("/v1/runs/{id}"), None)
    }

    /// Waits until job `id` leaves the queue (or `timeout` passes); returns its last status.
    pub fn wait(&self, id: &str, timeout: Duration) -> Result<Value, ClientError> {
        self.wait_watching(id, timeout, |_| {})
    }

    /// [`Client::wait`], showing each status read to `watch` (a progress display).
    pub fn wait_watching(
        &self,
        id: &str,
        timeout: Duration,
        mut watch: impl FnMut(&Value),
    ) -> Result<Value, ClientError> {
        let until = std::time::Instant::now() + timeout;
        loop {
            let job = self.job(id)?;
            watch(&job);
            let status = job["status"].as_str().unwrap_or_default();
            if !matches!(status, "queued" | "running") || std::time::Instant::now() > until {
                return Ok(job);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Downloads job `id`'s release, verifies it against the holder's key, and only then
    /// puts it at `dir` (which must not exist yet, or be empty); returns the release's
    /// manifest and the files. A release that does not verify leaves nothing behind.
    pub fn fetch_verified(
        &self,
        id: &str,
        dir: &Path,
        holder: &crate::keys::PublicKey,
    ) -> Result<(crate::release::signed::ReleaseManifest, Vec<PathBuf>), ClientError> {
        let v = self.call("GET", &format!("/v1/runs/{id}/release"), None)?;
        let files = v["files"]
            .as_object()
            .ok_or_else(|| ClientError::Protocol("no files in the release".into()))?;
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| ClientError::Io { path, source }
        };
        let manifest = crate::release::staged::write_whole(dir, |staging| {
            for (name, content) in files {
                if name.is_empty() || name.contains(['/', '\\', '\0']) || name.starts_with('.') {
                    return Err(ClientError::Protocol(format!(
                        "unsafe file name {:?}",
                        crate::module_text::bounded(name, 80)
                    )));
                }
                let bytes = content
                    .as_str()
                    .and_then(|c| base64::engine::general_purpose::STANDARD.decode(c).ok())
                    .ok_or_else(|| ClientError::Protocol(format!("{name} is not base64")))?;
                let path = staging.join(name);
                std::fs::write(&path, bytes).map_err(io(&path))?;
            }
            crate::release::signed::verify_dir(staging, holder)
                .map_err(|e| ClientError::Unverified(e.to_string()))
        })
        .map_err(|e| match e {
            crate::release::staged::StagedError::Io(source) => ClientError::Io {
                path: dir.display().to_string(),
                source,
            },
            crate::release::staged::StagedError::Fill(e) => e,
        })?;
        let mut written: Vec<PathBuf> = files.keys().map(|name| dir.join(name)).collect();
        written.sort();
        Ok((manifest, written))
    }
}

fn text(v: &Value, field: &str) -> Result<String, ClientError> {
    v[field]
        .as_str()
        .map(String::from)
        .ok_or_else(|| ClientError::Protocol(format!("no {field} in {v}")))
}
