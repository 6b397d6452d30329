//! The HTTP API. Requester endpoints under `/v1` need an RFC 9421 signature; admin endpoints
//! under `/admin` need the admin bearer token; `/openapi.json` is public. A refused call gets
//! 401 (who are you?) or 403 (not yours, or does not exist: the two are not told apart) and an
//! audit entry, and learns nothing about datasets or jobs.

use super::httpsig::{self, SignatureHeaders};
use super::State;
use crate::audit::EntryKind;
use crate::policy::Requester;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State as AxState};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
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
    ("get", "/v1/runs/{id}/release"),
    ("get", "/v1/budget"),
    ("get", "/v1/audit"),
    ("post", "/admin/datasets"),
    ("post", "/admin/revocations"),
    ("get", "/admin/audit"),
];

/// The OpenAPI document served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

pub(super) fn router(state: Shared) -> Router {
    let limit = state.config.max_body_bytes;
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/v1/datasets", get(datasets))
        .route("/v1/modules", get(modules))
        .route("/v1/bundles", post(upload_bundle))
        .route("/v1/approvals", post(attach_approval))
        .route("/v1/runs", post(submit_run))
        .route("/v1/runs/{id}", get(job_status))
        .route("/v1/runs/{id}/release", get(fetch_release))
        .route("/v1/budget", get(budget))
        .route("/v1/audit", get(register))
        .route("/admin/datasets", post(admin_register_dataset))
        .route("/admin/revocations", post(admin_revoke))
        .route("/admin/audit", get(admin_audit))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// An error response: a status and a message that says what to do.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

fn bad_request(m: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, m.into())
}

fn forbidden() -> ApiError {
    ApiError(
        StatusCode::FORBIDDEN,
        "not permitted, or no such resource for this requester".into(),
    )
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "server error");
    ApiError(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error; the holder's log has details".into(),
    )
}

type ApiResult = Result<Response, ApiError>;

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(String::from)
}

/// Checks the request's signature, key, time window and nonce; returns the requester.
fn authenticate(
    state: &State,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Requester, ApiError> {
    let refuse = |reason: String| {
        let _ = state.audit.append(
            EntryKind::Auth,
            "unknown",
            json!({"method": method.as_str(), "path": uri.path(), "reason": reason}),
        );
        ApiError(
            StatusCode::UNAUTHORIZED,
            format!("unauthenticated: {reason}"),
        )
    };
    let (Some(content_digest), Some(signature_input), Some(signature)) = (
        header(headers, "content-digest"),
        header(headers, "signature-input"),
        header(headers, "signature"),
    ) else {
        return Err(refuse(
            "sign the request (RFC 9421: Content-Digest, Signature-Input, Signature); `oar submit` does".into(),
        ));
    };
    let signed = httpsig::verify(
        method.as_str(),
        uri.path(),
        uri.query(),
        body,
        &SignatureHeaders {
            content_digest,
            signature_input,
            signature,
        },
    )
    .map_err(|e| refuse(e.to_string()))?;
    let Some(requester) = state
        .policy
        .requesters
        .iter()
        .find(|r| r.key == signed.key)
        .cloned()
    else {
        return Err(refuse(
            "the key is not a requester in the holder's policy".into(),
        ));
    };
    let revoked = state
        .host
        .revocations()
        .with(|l| crate::verify::check_requester(&requester.key, l));
    if let Err(e) = revoked {
        return Err(refuse(e.to_string()));
    }
    let skew = (chrono::Utc::now().timestamp() - signed.created).abs();
    if skew > state.config.clock_window_seconds {
        return Err(refuse(format!(
            "the signature was created {skew} s away from the server's clock (window {} s)",
            state.config.clock_window_seconds
        )));
    }
    let fresh = state
        .store
        .fresh_nonce(&signed.nonce, 2 * state.config.clock_window_seconds)
        .map_err(internal)?;
    if !fresh {
        return Err(refuse(
            "the nonce was used before (replayed request)".into(),
        ));
    }
    Ok(requester)
}

fn admin(state: &State, method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<(), ApiError> {
    let expected = format!("Bearer {}", state.admin_token);
    let ok = header(headers, "authorization").is_some_and(|h| {
        h.len() == expected.len()
            && h.bytes()
                .zip(expected.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    if ok {
        Ok(())
    } else {
        let _ = state.audit.append(
            EntryKind::Auth,
            "unknown",
            json!({"method": method.as_str(), "path": uri.path(), "reason": "bad or missing admin token"}),
        );
        Err(ApiError(
            StatusCode::UNAUTHORIZED,
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
        let body = axum::body::to_bytes(body, state.config.max_body_bytes)
            .await
            .map_err(|_| {
                ApiError(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "the body is larger than {} bytes",
                        state.config.max_body_bytes
                    ),
                )
            })?;
        let requester = authenticate(state, &parts.method, &parts.uri, &parts.headers, &body)?;
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
        admin(state, &parts.method, &parts.uri, &parts.headers).map(|()| Admin)
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| bad_request(format!("malformed JSON: {e}")))
}

async fn openapi() -> Response {
    ([("content-type", "application/json")], OPENAPI).into_response()
}

async fn datasets(AxState(s): AxState<Shared>, _signed: Signed) -> ApiResult {
    let catalog = s.host.catalog();
    let list: Vec<Value> = catalog
        .names()
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

async fn modules(AxState(s): AxState<Shared>, _signed: Signed) -> ApiResult {
    let mut out = Vec::new();
    for hash in s.store.approved_modules().map_err(internal)? {
        let Some(json) = s.store.bundle(&hash).map_err(internal)? else {
            continue;
        };
        let Ok(b) = crate::bundle::Bundle::from_json(json.as_bytes()) else {
            continue;
        };
        out.push(json!({
            "module_hash": hash,
            "name": b.manifest.name,
            "version": b.manifest.version,
            "purpose": b.manifest.purpose,
            "datasets": b.manifest.datasets,
            "outputs": b.manifest.outputs,
        }));
    }
    Ok(Json(out).into_response())
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
            StatusCode::UNPROCESSABLE_ENTITY,
            "the bundle's signature does not verify, its component was altered, or its author is not trusted by this holder".into(),
        ));
    }
    let text =
        std::str::from_utf8(&body).map_err(|_| bad_request("the bundle is not UTF-8 JSON"))?;
    s.store
        .put_bundle(&hash, text, &who.name)
        .map_err(internal)?;
    s.audit
        .append(
            EntryKind::Submission,
            &who.name,
            json!({"bundle": hash, "module": bundle.manifest.name, "version": bundle.manifest.version}),
        )
        .map_err(internal)?;
    Ok((StatusCode::CREATED, Json(json!({"module_hash": hash}))).into_response())
}

async fn attach_approval(AxState(s): AxState<Shared>, signed: Signed) -> ApiResult {
    let Signed {
        requester: who,
        body,
    } = signed;
    let approval: crate::approval::Approval = parse(&body)?;
    let module = approval.record.module_hash.clone();
    if s.store.bundle(&module).map_err(internal)?.is_none() {
        return Err(bad_request(format!(
            "no bundle with module hash {module} was uploaded; upload the bundle first"
        )));
    }
    let digest = hex::encode(approval.record.digest());
    let text = serde_json::to_string(&approval).map_err(internal)?;
    s.store
        .put_approval(&digest, &module, &text)
        .map_err(internal)?;
    s.audit
        .append(
            EntryKind::Submission,
            &who.name,
            json!({"approval": digest, "module_hash": module, "signatures": approval.signatures.len()}),
        )
        .map_err(internal)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"approval_digest": digest, "signatures": approval.signatures.len()})),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunRequest {
    module_hash: String,
    #[serde(default = "empty_params")]
    params: Value,
    /// Run again every this many seconds (at least 60).
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
            StatusCode::SERVICE_UNAVAILABLE,
            "the server is stopping; try again shortly".into(),
        ));
    }
    let req: RunRequest = parse(&body)?;
    if let Some(every) = req.every_seconds {
        if every < 60 {
            return Err(bad_request("every_seconds must be at least 60"));
        }
    }
    let Some(bundle) = s.store.bundle(&req.module_hash).map_err(internal)? else {
        return Err(refused_scope(
            &s,
            &who,
            json!({"module_hash": req.module_hash}),
        ));
    };
    let bundle = crate::bundle::Bundle::from_json(bundle.as_bytes()).map_err(internal)?;
    // The module's datasets must all be open to this requester.
    if bundle
        .manifest
        .datasets
        .iter()
        .any(|d| !who.may_query(&d.name))
    {
        return Err(refused_scope(
            &s,
            &who,
            json!({"module_hash": req.module_hash}),
        ));
    }
    let hour_ago = chrono::Utc::now().timestamp() - 3600;
    let recent = s
        .store
        .submitted_since(&who.name, hour_ago)
        .map_err(internal)?;
    if recent >= s.policy.limits.runs_per_requester_per_hour {
        let _ = s.audit.append(
            EntryKind::Refusal,
            &who.name,
            json!({"reason": "rate limit", "runs_last_hour": recent}),
        );
        return Err(ApiError(
            StatusCode::TOO_MANY_REQUESTS,
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
}

/// The job `id` if it belongs to `who`; otherwise a 403 (the same whether the job is someone
/// else's or does not exist) and an audit entry.
fn own_job(s: &State, who: &Requester, id: &str) -> Result<super::Job, ApiError> {
    match s.store.job(id).map_err(internal)? {
        Some(job) if job.requester == who.name => Ok(job),
        _ => Err(refused_scope(s, who, json!({"job_id": id}))),
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
    Ok(Json(own_job(&s, &who, &id)?).into_response())
}

async fn fetch_release(
    AxState(s): AxState<Shared>,
    Path(id): Path<String>,
    Signed { requester: who, .. }: Signed,
) -> ApiResult {
    let job = own_job(&s, &who, &id)?;
    if job.status != "succeeded" {
        return Err(ApiError(
            StatusCode::CONFLICT,
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
    Ok(Json(json!({"job_id": id, "holder": s.holder.public(), "files": files})).into_response())
}

async fn budget(AxState(s): AxState<Shared>, Signed { requester: who, .. }: Signed) -> ApiResult {
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
}

async fn register(AxState(s): AxState<Shared>, _signed: Signed) -> ApiResult {
    let rows = crate::audit::export(s.audit.path()).map_err(internal)?;
    Ok(Json(rows).into_response())
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
    let path = std::path::PathBuf::from(&req.descriptor);
    let dataset = crate::dataset::Dataset::open(&path).map_err(|e| bad_request(e.to_string()))?;
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
}

async fn admin_revoke(AxState(s): AxState<Shared>, _admin: Admin, body: Bytes) -> ApiResult {
    let list: crate::revocation::SignedRevocations = parse(&body)?;
    s.host
        .revocations()
        .install(&list, &s.policy)
        .map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    list.write(&s.data_dir.join("revocations.json"))
        .map_err(internal)?;
    s.audit
        .append(
            EntryKind::Admin,
            "holder",
            json!({"act": "revocation list installed", "serial": list.list.serial, "entries": list.list.entries.len()}),
        )
        .map_err(internal)?;
    Ok(Json(json!({"serial": list.list.serial})).into_response())
}

async fn admin_audit(AxState(s): AxState<Shared>, _admin: Admin) -> ApiResult {
    let v = crate::audit::verify(s.audit.path(), &s.holder.public()).map_err(internal)?;
    Ok(Json(json!({"entries": v.entries, "head": v.head})).into_response())
}
