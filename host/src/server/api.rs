//! The HTTP API. Requester endpoints under `/v1` need an RFC 9421 signature; admin endpoints
//! under `/admin` need the admin bearer token; `/openapi.json` is public. A refused call gets
//! 401 (who are you?) or 403 (not yours, or does not exist: the two are not told apart) and
//! learns nothing about datasets or jobs. A 401 is counted in the metrics, never written to the
//! audit log (an unauthenticated flood must not fill the log's disk); a 403 to a known requester
//! is audited, with any text it supplied cut short. Storage and audit I/O run on the blocking
//! pool, never on the async threads.

use super::httpsig;
use super::problem::Problem;
use super::State;
use crate::audit::EntryKind;
use crate::policy::Requester;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

type Shared = Arc<State>;

/// Every route, for the OpenAPI document's consistency test.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/openapi.json"),
    ("get", "/v1/datasets"),
    ("get", "/v1/modules"),
    ("post", "/v1/bundles"),
    ("post", "/v1/approvals"),
    ("post", "/v1/runs"),
    ("get", "/v1/runs/{id}"),
    ("get", "/v1/runs/{id}/events"),
    ("post", "/v1/runs/{id}/cancel"),
    ("get", "/v1/runs/{id}/release"),
    ("get", "/v1/budget"),
    ("get", "/v1/audit"),
    ("post", "/admin/datasets"),
    ("post", "/admin/revocations"),
    ("get", "/admin/audit"),
    ("get", "/admin/metrics"),
    ("get", "/metrics"),
    ("get", "/healthz"),
    ("get", "/readyz"),
];

/// The OpenAPI document served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// The requester API (`/openapi.json`, `/v1/...`), behind [`super::guard::guard`].
pub(super) fn router(state: Shared) -> Router {
    // Signed routes read their body themselves, after authentication, with a per-route limit.
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/v1/datasets", get(datasets))
        .route("/v1/modules", get(modules))
        .route("/v1/bundles", post(upload_bundle))
        .route("/v1/approvals", post(attach_approval))
        .route("/v1/runs", post(submit_run))
        .route("/v1/runs/{id}", get(job_status))
        .route("/v1/runs/{id}/events", get(job_events))
        .route("/v1/runs/{id}/cancel", post(cancel_run))
        .route("/v1/runs/{id}/release", get(fetch_release))
        .route("/v1/budget", get(budget))
        .route("/v1/audit", get(register))
        .layer(DefaultBodyLimit::max(MAX_SMALL_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            super::guard::guard,
        ))
        .with_state(state)
}

/// The admin API (`/admin/...`), served on its own loopback listener only.
pub(super) fn admin_router(state: Shared) -> Router {
    Router::new()
        .route("/admin/datasets", post(admin_register_dataset))
        .route("/admin/revocations", post(admin_revoke))
        .route("/admin/audit", get(admin_audit))
        .route("/admin/metrics", get(admin_metrics))
        .route("/metrics", get(admin_metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .layer(DefaultBodyLimit::max(MAX_SMALL_BODY_BYTES))
        .with_state(state)
}

/// An error response: the kind of problem and a detail that says what to do, answered as
/// RFC 9457 problem details (see [`super::problem`]).
pub struct ApiError(pub(super) Problem, pub(super) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.0.respond(&self.1, None)
    }
}

pub(super) fn bad_request(m: impl Into<String>) -> ApiError {
    ApiError(Problem::MalformedRequest, m.into())
}

fn forbidden() -> ApiError {
    ApiError(
        Problem::Forbidden,
        "not permitted, or no such resource for this requester".into(),
    )
}

pub(super) fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "server error");
    ApiError(
        Problem::Internal,
        "internal error; the holder's log has details".into(),
    )
}

type ApiResult = Result<Response, ApiError>;

/// Runs storage or audit work on the blocking pool.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(internal)?
}

/// Longest text from a request that goes into the audit log.
const MAX_AUDITED_CHARS: usize = 128;

/// Request-supplied text as it may be audited: one line, cut short.
pub(super) fn audited(text: &str) -> String {
    crate::module_text::bounded(text, MAX_AUDITED_CHARS)
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(String::from)
}

/// Checks a request's head before its body is read: the signature (over a base that covers
/// `Content-Digest`), the authority, the key, revocation, the time window and the nonce.
/// Returns the requester and the pending body check.
fn authenticate_head(
    state: &State,
    parts: &axum::http::request::Parts,
) -> Result<(Requester, httpsig::Pending), ApiError> {
    use super::metrics::AuthFailure;
    let refuse = |why: AuthFailure, reason: String| {
        state.metrics.unauthenticated_because(why);
        ApiError(
            Problem::Unauthenticated,
            format!("unauthenticated: {reason}"),
        )
    };
    if parts.headers.get("signature-input").is_none() || parts.headers.get("signature").is_none() {
        return Err(refuse(
            AuthFailure::Unsigned,
            "sign the request (RFC 9421: Content-Digest, Signature-Input, Signature); `oar submit` does".into(),
        ));
    }
    let head = httpsig::RequestHead {
        parts,
        scheme: state.scheme,
    };
    // Only the policy's requesters resolve: any other key is unknown.
    let resolve = |keyid: &str| {
        let key = oar_httpsig::oar::key_from_keyid(keyid)?;
        state
            .policy
            .requesters
            .iter()
            .any(|r| r.key.as_bytes() == &key)
            .then_some(key)
    };
    let now = chrono::Utc::now().timestamp();
    let pending = oar_httpsig::oar::authenticate_head(
        &head,
        now,
        state.config.clock_window_seconds,
        &resolve,
    )
    .map_err(|e| refuse(AuthFailure::Signature, e.to_string()))?;
    let authority = oar_httpsig::Message::authority(&head).to_ascii_lowercase();
    if !state.authorities.iter().any(|a| a == &authority) {
        return Err(refuse(
            AuthFailure::Signature,
            format!(
                "the request is signed for another server ({}); this server answers as {}",
                audited(&authority),
                state.authorities.join(", ")
            ),
        ));
    }
    if !state.key_limit.allow(pending.key()) {
        super::metrics::bump(&state.metrics.rate_limited);
        return Err(ApiError(
            Problem::RateLimited,
            "too many requests signed by this key; slow down and retry".into(),
        ));
    }
    let requester = state
        .policy
        .requesters
        .iter()
        .find(|r| r.key.as_bytes() == pending.key())
        .cloned()
        .expect("the resolver only resolves the policy's requesters");
    let revoked = state
        .host
        .revocations()
        .with(|l| crate::verify::check_requester(&requester.key, l));
    if let Err(e) = revoked {
        return Err(refuse(AuthFailure::Signature, e.to_string()));
    }
    let fresh = state
        .store
        .fresh_nonce(
            &requester.key.to_hex(),
            pending.nonce(),
            2 * state.config.clock_window_seconds,
        )
        .map_err(internal)?;
    if !fresh {
        return Err(refuse(
            AuthFailure::Signature,
            "the nonce was used before (replayed request)".into(),
        ));
    }
    Ok((requester, pending))
}

/// Largest body of a request other than a bundle upload.
pub const MAX_SMALL_BODY_BYTES: usize = 256 * 1024;

/// The body limit of a route: bundles may be large, everything else is small.
fn body_limit(state: &State, path: &str) -> usize {
    if path == "/v1/bundles" {
        state.config.max_body_bytes
    } else {
        state.config.max_body_bytes.min(MAX_SMALL_BODY_BYTES)
    }
}

fn admin(state: &State, headers: &HeaderMap) -> Result<(), ApiError> {
    let expected = format!("Bearer {}", state.admin_token);
    let ok = header(headers, "authorization")
        .is_some_and(|h| crate::keys::constant_time_eq(h.as_bytes(), expected.as_bytes()));
    if ok {
        Ok(())
    } else {
        state
            .metrics
            .unauthenticated_because(super::metrics::AuthFailure::AdminToken);
        Err(ApiError(
            Problem::AdminTokenRequired,
            "admin endpoints need the admin bearer token".into(),
        ))
    }
}

/// A request whose RFC 9421 signature checked out: who sent it and its raw body.
pub(super) struct Signed {
    requester: Requester,
    body: Bytes,
}

impl axum::extract::FromRequest<Shared> for Signed {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &Shared) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        // Who is asking is settled before a byte of the body is read.
        let (requester, pending, parts) = {
            let state = state.clone();
            blocking(move || authenticate_head(&state, &parts).map(|(r, p)| (r, p, parts))).await?
        };
        let limit = body_limit(state, parts.uri.path());
        let body = axum::body::to_bytes(body, limit).await.map_err(|_| {
            ApiError(
                Problem::BodyTooLarge,
                format!("the body is larger than {limit} bytes, the limit of this route"),
            )
        })?;
        pending.check_body(&body).map_err(|e| {
            state
                .metrics
                .unauthenticated_because(super::metrics::AuthFailure::BodyDigest);
            ApiError(Problem::Unauthenticated, format!("unauthenticated: {e}"))
        })?;
        Ok(Signed { requester, body })
    }
}

/// A request carrying the admin bearer token.
pub(super) struct Admin;

impl axum::extract::FromRequestParts<Shared> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &Shared,
    ) -> Result<Self, ApiError> {
        admin(state, &parts.headers).map(|()| Admin)
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| bad_request(format!("malformed JSON: {e}")))
}

async fn openapi() -> Response {
    ([("content-type", "application/json")], OPENAPI).into_response()
}

async fn datasets(AxState(s): AxState<Shared>, signed: Signed) -> ApiResult {
    let who = signed.requester;
    let catalog = s.host.catalog();
    let list: Vec<Value> = catalog
        .names()
        .filter(|n| who.may_query(n))
        .filter_map(|n| catalog.get(n))
        .map(|d| {
            let desc = d.descriptor();
            let schema = d.schema();
            // The dataset's period: the span of its date and datetime columns' periods.
            let periods: Vec<&[String; 2]> = schema
                .columns
                .iter()
                .filter_map(|c| c.period.as_ref())
                .collect();
            let period = (!periods.is_empty()).then(|| {
                [
                    periods.iter().map(|p| p[0].clone()).min(),
                    periods.iter().map(|p| p[1].clone()).max(),
                ]
            });
            json!({
                "name": desc.name,
                "title": desc.title,
                "description": desc.description,
                "owner": desc.owner,
                "period": period,
                "update_frequency": desc.update_frequency,
                "privacy_unit": desc.privacy_unit,
                "columns": schema.columns,
            })
        })
        .collect();
    Ok(Json(list).into_response())
}

async fn modules(AxState(s): AxState<Shared>, signed: Signed) -> ApiResult {
    let who = signed.requester;
    blocking(move || {
        let mut out = Vec::new();
        for hash in s.store.approved_modules().map_err(internal)? {
            let stored = super::StoredModule::load(&s, &hash).map_err(internal)?;
            for (b, _) in stored.approved() {
                // Only modules this requester could run: every dataset they read is open to it.
                if b.manifest.datasets.iter().any(|d| !who.may_query(&d.name)) {
                    continue;
                }
                out.push(json!({
                    "module_hash": hash,
                    "name": b.manifest.name,
                    "version": b.manifest.version,
                    "purpose": b.manifest.purpose,
                    "datasets": b.manifest.datasets,
                    "outputs": b.manifest.outputs,
                }));
            }
        }
        Ok(Json(out).into_response())
    })
    .await
}

async fn upload_bundle(AxState(s): AxState<Shared>, signed: Signed) -> ApiResult {
    let Signed {
        requester: who,
        body,
    } = signed;
    let bundle = crate::bundle::Bundle::from_json(&body).map_err(|e| bad_request(e.to_string()))?;
    let hash = hex::encode(crate::keys::sha256(&bundle.component));
    if hash != bundle.module_hash
        || !bundle.author_key.verify(
            crate::bundle::BUNDLE_CONTEXT,
            &bundle.digest(),
            &bundle.signature,
        )
        || s.policy.author(&bundle.author_key).is_none()
    {
        return Err(ApiError(
            Problem::BundleNotTrusted,
            "the bundle's signature does not verify, its component was altered, or its author is not trusted by this holder".into(),
        ));
    }
    let text = std::str::from_utf8(&body)
        .map_err(|_| bad_request("the bundle is not UTF-8 JSON"))?
        .to_string();
    let manifest_hash = hex::encode(bundle.manifest.hash());
    blocking(move || {
        s.store
            .put_bundle(&hash, &manifest_hash, &text, &who.name)
            .map_err(internal)?;
        s.audit
            .append(
                EntryKind::Submission,
                &who.name,
                json!({"bundle": hash, "module": audited(&bundle.manifest.name), "version": audited(&bundle.manifest.version)}),
            )
            .map_err(internal)?;
        Ok((StatusCode::CREATED, Json(json!({"module_hash": hash}))).into_response())
    })
    .await
}

async fn attach_approval(AxState(s): AxState<Shared>, signed: Signed) -> ApiResult {
    let Signed {
        requester: who,
        body,
    } = signed;
    let approval: crate::approval::Approval = parse(&body)?;
    approval
        .check_member_signatures(&s.policy)
        .map_err(|e| ApiError(Problem::InvalidDocument, format!("{e}; nothing was stored")))?;
    blocking(move || {
        let (digest, total, added) = store_approval(&s, &approval, &who.name)?;
        Ok((
            StatusCode::CREATED,
            Json(json!({"approval_digest": digest, "signatures": total, "added": added})),
        )
            .into_response())
    })
    .await
}

/// Stores an approval whose member signatures checked, or adds its new signatures to the stored
/// approval of the same record; audits it as `actor`'s and compiles the module if it now
/// verifies. Returns the approval digest, its signatures in all, and how many were new.
pub(super) fn store_approval(
    s: &Shared,
    approval: &crate::approval::Approval,
    actor: &str,
) -> Result<(String, usize, usize), ApiError> {
    let module = approval.record.module_hash.clone();
    let stored = s
        .store
        .bundle(&module, &approval.record.manifest_hash)
        .map_err(internal)?;
    if stored.is_none() {
        return Err(bad_request(format!(
            "no bundle with module hash {} and manifest hash {} was uploaded; upload the approved bundle first",
            audited(&module),
            audited(&approval.record.manifest_hash)
        )));
    }
    let record_digest = approval.record.digest();
    let digest = hex::encode(record_digest);
    // A known approval only gains signatures: the stored ones stay, new members' are added.
    let (mut added, mut total) = (0, 0);
    s.store
        .merge_approval(&digest, &module, |stored| {
            let mut merged = stored
                .and_then(|j| serde_json::from_str::<crate::approval::Approval>(j).ok())
                .filter(|a| a.record.digest() == record_digest)
                .unwrap_or_else(|| crate::approval::Approval::new(approval.record.clone()));
            added = merged.gain_signatures(approval);
            total = merged.signatures.len();
            serde_json::to_string(&merged).expect("approvals serialize")
        })
        .map_err(internal)?;
    s.audit
        .append(
            EntryKind::Submission,
            actor,
            json!({"approval": digest, "module_hash": module, "signatures_added": added, "signatures": total}),
        )
        .map_err(internal)?;
    s.web.approvals.forget();
    super::precompile(s.clone(), module);
    Ok((digest, total, added))
}

/// Shortest interval of a recurring job.
pub const MIN_EVERY_SECONDS: i64 = 60;
/// Longest interval of a recurring job (a year and a day).
pub const MAX_EVERY_SECONDS: i64 = 366 * 86_400;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunRequest {
    module_hash: String,
    #[serde(default = "empty_params")]
    params: Value,
    /// Run again every this many seconds (60 to a year and a day).
    #[serde(default)]
    every_seconds: Option<i64>,
}

fn empty_params() -> Value {
    json!({})
}

async fn submit_run(AxState(s): AxState<Shared>, signed: Signed) -> ApiResult {
    let Signed {
        requester: who,
        body,
    } = signed;
    if s.stopping.load(std::sync::atomic::Ordering::SeqCst) {
        return Err(ApiError(
            Problem::Stopping,
            "the server is stopping; try again shortly".into(),
        ));
    }
    let req: RunRequest = parse(&body)?;
    if let Some(every) = req.every_seconds {
        if !(MIN_EVERY_SECONDS..=MAX_EVERY_SECONDS).contains(&every) {
            return Err(bad_request(format!(
                "every_seconds must be from {MIN_EVERY_SECONDS} to {MAX_EVERY_SECONDS} (a year and a day)"
            )));
        }
    }
    blocking(move || {
        let stored = super::StoredModule::load(&s, &req.module_hash).map_err(internal)?;
        if stored.bundles.is_empty() {
            return Err(refused_scope(
                &s,
                &who,
                json!({"module_hash": audited(&req.module_hash)}),
            ));
        }
        // The datasets of the approved manifest (or, before any approval, of every uploaded
        // one) must all be open to this requester.
        let approved = stored.approved();
        let manifests: Vec<&crate::bundle::Bundle> = if approved.is_empty() {
            stored.bundles.iter().collect()
        } else {
            approved.into_iter().map(|(b, _)| b).collect()
        };
        if !manifests
            .iter()
            .any(|b| b.manifest.datasets.iter().all(|d| who.may_query(&d.name)))
        {
            return Err(refused_scope(
                &s,
                &who,
                json!({"module_hash": req.module_hash}),
            ));
        }
        // Counting, recording and queueing are one step: simultaneous submissions cannot all
        // pass the count.
        let _one_at_a_time = s.submissions.lock().unwrap_or_else(|p| p.into_inner());
        let hour_ago = chrono::Utc::now().timestamp() - 3600;
        let recent = s
            .store
            .submitted_since(&who.name, hour_ago)
            .map_err(internal)?;
        if recent >= s.policy.limits.runs_per_requester_per_hour {
            super::metrics::bump(&s.metrics.rate_limited);
            return Err(ApiError(
                Problem::RateLimited,
                format!(
                    "at most {} runs per hour; try again later",
                    s.policy.limits.runs_per_requester_per_hour
                ),
            ));
        }
        let id = crate::job::new_job_id();
        let params = serde_json::to_string(&req.params).map_err(internal)?;
        s.audit
            .append(
                EntryKind::Submission,
                &who.name,
                json!({"job_id": id, "module_hash": req.module_hash, "every_seconds": req.every_seconds}),
            )
            .map_err(internal)?;
        s.store
            .enqueue(
                &id,
                &who.name,
                &req.module_hash,
                &params,
                chrono::Utc::now().timestamp(),
                req.every_seconds,
            )
            .map_err(internal)?;
        s.notify();
        Ok((
            StatusCode::ACCEPTED,
            Json(json!({"job_id": id, "status": "queued"})),
        )
            .into_response())
    })
    .await
}

/// The job `id` if it belongs to `who`; otherwise a 403 (the same whether the job is someone
/// else's or does not exist) and an audit entry.
fn own_job(s: &State, who: &Requester, id: &str) -> Result<super::Job, ApiError> {
    match s.store.job(id).map_err(internal)? {
        Some(job) if job.requester == who.name => Ok(job),
        _ => Err(refused_scope(s, who, json!({"job_id": audited(id)}))),
    }
}

/// Records a wrong-scope call and answers it with the uninformative 403.
fn refused_scope(s: &State, who: &Requester, what: Value) -> ApiError {
    let _ = s.audit.append(
        EntryKind::Refusal,
        &who.name,
        json!({"reason": "outside the requester's scope", "request": what}),
    );
    forbidden()
}

async fn job_status(
    AxState(s): AxState<Shared>,
    Path(id): Path<String>,
    Signed { requester: who, .. }: Signed,
) -> ApiResult {
    blocking(move || Ok(Json(own_job(&s, &who, &id)?).into_response())).await
}

/// States a job does not leave.
const FINAL_STATES: [&str; 4] = ["succeeded", "failed", "cancelled", "interrupted"];

/// How often a followed job's state is read.
const EVENTS_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// The longest a job's event stream stays open (a client reconnects for more).
const EVENTS_MAX: std::time::Duration = std::time::Duration::from_secs(3600);

/// The job's progress as server-sent events: a `status` event with the job (as `GET
/// /v1/runs/{id}` answers it) now and at each change of state, until it reaches a final state,
/// the server stops, or an hour has passed. Only its requester may follow it.
async fn job_events(
    AxState(s): AxState<Shared>,
    Path(id): Path<String>,
    Signed { requester: who, .. }: Signed,
) -> ApiResult {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let first = {
        let (s, who, id) = (s.clone(), who.clone(), id.clone());
        blocking(move || own_job(&s, &who, &id)).await?
    };
    struct Follow {
        next: Option<super::Job>,
        last: Option<String>,
        done: bool,
        until: tokio::time::Instant,
    }
    let start = Follow {
        next: Some(first),
        last: None,
        done: false,
        until: tokio::time::Instant::now() + EVENTS_MAX,
    };
    let events = futures_util::stream::unfold(start, move |mut f| {
        let s = s.clone();
        let id = id.clone();
        async move {
            loop {
                if f.done
                    || tokio::time::Instant::now() > f.until
                    || s.stopping.load(std::sync::atomic::Ordering::SeqCst)
                {
                    return None;
                }
                let job = match f.next.take() {
                    Some(job) => job,
                    None => {
                        tokio::time::sleep(EVENTS_POLL).await;
                        let s = s.clone();
                        let id = id.clone();
                        match tokio::task::spawn_blocking(move || s.store.job(&id)).await {
                            Ok(Ok(Some(job))) => job,
                            _ => return None,
                        }
                    }
                };
                if f.last.as_deref() != Some(job.status.as_str()) {
                    f.last = Some(job.status.clone());
                    f.done = FINAL_STATES.contains(&job.status.as_str());
                    let event = Event::default()
                        .event("status")
                        .json_data(&job)
                        .unwrap_or_else(|_| Event::default().event("status"));
                    return Some((Ok::<_, std::convert::Infallible>(event), f));
                }
            }
        }
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

async fn cancel_run(
    AxState(s): AxState<Shared>,
    Path(id): Path<String>,
    Signed { requester: who, .. }: Signed,
) -> ApiResult {
    blocking(move || {
        let Some(status) = s.store.cancel(&id, &who.name).map_err(internal)? else {
            return Err(refused_scope(&s, &who, json!({"job_id": audited(&id)})));
        };
        s.audit
            .append(
                EntryKind::Submission,
                &who.name,
                json!({"act": "run cancelled", "job_id": id, "status": status}),
            )
            .map_err(internal)?;
        Ok(Json(json!({"job_id": id, "status": status, "recurring": false})).into_response())
    })
    .await
}

async fn fetch_release(
    AxState(s): AxState<Shared>,
    Path(id): Path<String>,
    Signed { requester: who, .. }: Signed,
) -> ApiResult {
    blocking(move || {
        let job = own_job(&s, &who, &id)?;
        if job.status != "succeeded" {
            return Err(ApiError(
                Problem::NoRelease,
                format!(
                    "job {id} is {}; a release exists only for succeeded jobs",
                    job.status
                ),
            ));
        }
        let dir = s.releases_dir(&id);
        let mut files = serde_json::Map::new();
        for entry in std::fs::read_dir(&dir).map_err(internal)? {
            let entry = entry.map_err(internal)?;
            let bytes = std::fs::read(entry.path()).map_err(internal)?;
            files.insert(
                entry.file_name().to_string_lossy().into_owned(),
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
            );
        }
        Ok(
            Json(json!({"job_id": id, "holder": s.holder.public(), "files": files}))
                .into_response(),
        )
    })
    .await
}

async fn budget(AxState(s): AxState<Shared>, Signed { requester: who, .. }: Signed) -> ApiResult {
    blocking(move || {
        let ledger = s.host.ledger();
        let now = chrono::Utc::now();
        let list: Vec<Value> = who
            .datasets
            .iter()
            .map(|d| {
                let account = s.policy.requester_account(&who.name, d);
                json!({
                    "dataset": d,
                    "total": account.total,
                    "remaining": ledger.remaining(&account, now).unwrap_or(0.0),
                })
            })
            .collect();
        Ok(Json(list).into_response())
    })
    .await
}

/// Default and largest page of `/v1/audit`.
const REGISTER_PAGE: usize = 100;
const MAX_REGISTER_PAGE: usize = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterQuery {
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
}

async fn register(
    AxState(s): AxState<Shared>,
    axum::extract::Query(q): axum::extract::Query<RegisterQuery>,
    _signed: Signed,
) -> ApiResult {
    let limit = q.limit.unwrap_or(REGISTER_PAGE).clamp(1, MAX_REGISTER_PAGE);
    blocking(move || {
        let head = s.audit.head();
        let page =
            crate::audit::export_page(s.audit.path(), &head, q.after, limit).map_err(internal)?;
        Ok(Json(page).into_response())
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterDataset {
    descriptor: String,
}

async fn admin_register_dataset(
    AxState(s): AxState<Shared>,
    _admin: Admin,
    body: Bytes,
) -> ApiResult {
    let req: RegisterDataset = parse(&body)?;
    blocking(move || {
        let path = std::path::PathBuf::from(&req.descriptor);
        if !s.in_dataset_roots(&path) {
            return Err(bad_request(format!(
                "{} is not a descriptor inside the folders datasets may be registered from (dataset_roots; default DATA_DIR/datasets); move it there or add its folder to dataset_roots",
                audited(&req.descriptor)
            )));
        }
        let dataset =
            crate::dataset::Dataset::open(&path).map_err(|e| bad_request(e.to_string()))?;
        let name = dataset.name().to_string();
        super::register_path(&s.data_dir, &path).map_err(internal)?;
        s.host.register_dataset(dataset);
        s.audit
            .append(
                EntryKind::Admin,
                "holder",
                json!({"act": "dataset registered", "dataset": name}),
            )
            .map_err(internal)?;
        Ok((StatusCode::CREATED, Json(json!({"dataset": name}))).into_response())
    })
    .await
}

async fn admin_revoke(AxState(s): AxState<Shared>, _admin: Admin, body: Bytes) -> ApiResult {
    let list: crate::revocation::SignedRevocations = parse(&body)?;
    blocking(move || {
        s.host
            .revocations()
            .install(&list, &s.policy)
            .map_err(|e| ApiError(Problem::InvalidDocument, e.to_string()))?;
        s.web.approvals.forget();
        list.write(&s.data_dir.join("revocations.json"))
            .map_err(internal)?;
        s.store
            .record_revocation_serial(list.list.serial)
            .map_err(internal)?;
        s.audit
            .append(
                EntryKind::Admin,
                "holder",
                json!({"act": "revocation list installed", "serial": list.list.serial, "entries": list.list.entries.len()}),
            )
            .map_err(internal)?;
        Ok(Json(json!({"serial": list.list.serial})).into_response())
    })
    .await
}

async fn admin_audit(AxState(s): AxState<Shared>, _admin: Admin) -> ApiResult {
    blocking(move || {
        // Up to the current signed head: runs may append while the check reads.
        let head = s.audit.head();
        let v =
            crate::audit::verify_to(s.audit.path(), &s.holder.public(), &head).map_err(internal)?;
        Ok(Json(json!({"entries": v.entries, "head": v.head})).into_response())
    })
    .await
}

async fn admin_metrics(AxState(s): AxState<Shared>, _admin: Admin) -> ApiResult {
    let state = s.clone();
    let jobs = blocking(move || {
        let by_state = state.store.jobs_by_state().map_err(internal)?;
        // Epsilon spent per dataset: every requester's account on it, summed (the dataset
        // names are the public catalogue's; no requester is named).
        let ledger = state.host.ledger();
        let catalog = state.host.catalog();
        let mut epsilon_spent = Vec::new();
        for dataset in catalog.names() {
            let mut spent = 0.0;
            for r in &state.policy.requesters {
                let key = crate::ledger::requester_key(&r.name, dataset);
                spent += ledger.spent(&key).map_err(internal)?;
            }
            epsilon_spent.push((dataset.to_string(), spent));
        }
        Ok(super::metrics::JobGauges {
            by_state,
            epsilon_spent,
        })
    })
    .await?;
    Ok((
        [("content-type", "text/plain; version=0.0.4")],
        s.metrics.render_all(&jobs),
    )
        .into_response())
}

/// Liveness: the process answers. No token, no detail.
async fn healthz() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

/// Readiness: the job store answers and the service is not shutting down. No token, no detail.
async fn readyz(AxState(s): AxState<Shared>) -> Response {
    let state = s.clone();
    let store = blocking(move || state.store.jobs_by_state().map_err(internal)).await;
    if store.is_ok() && !s.stopping.load(std::sync::atomic::Ordering::SeqCst) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}
