//! The public pages: anyone may read them without signing in. They show the register of runs,
//! the modules and their approvals, the datasets the holder marks public and the audit log's
//! signed head: public facts only, never a data value.

use super::{auth, page, respond, short_hash, Nav, Shared, Viewer};
use crate::server::api::{blocking, internal, ApiError};
use crate::server::problem::Problem;
use axum::body::Bytes;
use axum::extract::{Query, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

pub(super) async fn home(AxState(s): AxState<Shared>, headers: HeaderMap) -> Response {
    let viewer = Viewer::of(&s, &headers);
    let body = html! {
        p { "This service runs approved analyses " em { "where the data is" } ". Nobody outside sees a single record: "
            "an analysis (a " em { "module" } ") is written by a public body, reviewed and signed by an independent ethics committee, "
            "and run here in a sandbox. Only tables of totals leave, each with privacy noise added, and only for groups of at least "
            (s.policy.min_units) " people." }
        ul {
            li { a href="/register" { "The register of runs" } ": who asked what, for which purpose, and what it cost in privacy." }
            li { a href="/modules" { "Modules" } ": every analysis this service may run, and who approved it." }
            li { a href="/datasets" { "Datasets" } ": what data is here, described without showing any of it." }
            li { a href="/log" { "The audit log" } ": how to check, without trusting us, that the register is complete." }
        }
        p { "Committee members and requesters " a href="/signin" { "sign in with their OAR key file" } "." }
    };
    respond(
        StatusCode::OK,
        page(
            &s,
            "Open Algorithms Runtime",
            Nav::Home,
            viewer.as_ref(),
            body,
        ),
        viewer.is_some(),
    )
}

#[derive(Deserialize)]
pub(super) struct RegisterQuery {
    #[serde(default)]
    after: u64,
}

/// Runs shown per register page.
const REGISTER_PAGE: usize = 100;

/// Register pages kept at most (by their `after`).
const MAX_KEPT_PAGES: usize = 256;

pub(super) async fn register(
    AxState(s): AxState<Shared>,
    headers: HeaderMap,
    Query(q): Query<RegisterQuery>,
) -> Result<Response, ApiError> {
    let state = s.clone();
    let page_rows = blocking(move || {
        // Reading a page walks the log from its start: pages are kept a while, so a flood of
        // views does not read the whole log once per request.
        let fresh = {
            let mut pages = state
                .web
                .register_pages
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if pages.len() >= MAX_KEPT_PAGES && !pages.contains_key(&q.after) {
                pages.clear();
            }
            pages.entry(q.after).or_default().clone()
        };
        fresh.get_or(|| {
            let head = state.audit.head();
            crate::audit::export_page(state.audit.path(), &head, q.after, REGISTER_PAGE)
                .map_err(internal)
        })
    })
    .await?;
    let viewer = Viewer::of(&s, &headers);
    let body = html! {
        p { "Every release this service made, as its signed audit log records it: who asked, which module, for what purpose, on which data, and how much privacy budget (ε) it spent. "
            "A release that repeats an identical earlier run spends nothing." }
        @if page_rows.rows.is_empty() {
            p { "No release yet." }
        } @else {
            table {
                caption { "Releases" }
                thead { tr { th scope="col" { "When" } th scope="col" { "Requester" } th scope="col" { "Module" } th scope="col" { "Purpose" } th scope="col" { "Datasets" } th scope="col" { "ε spent" } th scope="col" { "Job" } } }
                tbody {
                    @for r in &page_rows.rows {
                        tr {
                            td { (r.at) }
                            td { (r.requester) }
                            td { (r.module) br; (short_hash(&r.module_hash)) }
                            td { (r.purpose) }
                            td { (r.datasets.join(", ")) }
                            td class="num" { (super::sentences::number(r.epsilon)) }
                            td { (short_hash(&r.job_id)) }
                        }
                    }
                }
            }
        }
        @if let Some(next) = page_rows.next_after {
            p { a href={"/register?after=" (next)} { "Later releases" } }
        }
        p class="muted" { "Read up to entry " (page_rows.head.seq) " of the audit log, whose head the holder signed. " a href="/log" { "Check it yourself." } }
    };
    Ok(respond(
        StatusCode::OK,
        page(&s, "Register of runs", Nav::Register, viewer.as_ref(), body),
        viewer.is_some(),
    ))
}

/// A module's approval as the public sees it.
pub(crate) struct ApprovalView {
    pub name: String,
    pub version: String,
    pub author: String,
    pub purpose: String,
    pub datasets: Vec<String>,
    pub module_hash: String,
    pub valid: usize,
    pub quorum: usize,
    pub valid_until: String,
    /// Runnable now, or why not, in words.
    pub status: Result<(), String>,
}

/// Every stored approval of every module with one, with its status now. Reads the store and
/// the revocation list only; writes nothing (no audit entry per page view).
pub(super) fn approvals(s: &crate::server::State) -> Result<Vec<ApprovalView>, ApiError> {
    let mut out = Vec::new();
    for hash in s.store.approved_modules().map_err(internal)? {
        let stored = crate::server::StoredModule::load(s, &hash).map_err(internal)?;
        for (bundle, approvals) in stored.approved() {
            for a in approvals {
                let review = crate::review::Review::of(bundle, Some(&s.policy), Some(a));
                let status = s
                    .host
                    .revocations()
                    .with(|l| crate::verify::verify(bundle, a, &s.policy, l, chrono::Utc::now()))
                    .map(|_| ())
                    .map_err(|e| status_words(&e));
                let approval = review.approval.expect("the review of an approval has it");
                let (valid, quorum) = approval.quorum.unwrap_or((0, s.policy.committee.quorum));
                out.push(ApprovalView {
                    name: review.name,
                    version: review.version,
                    author: review.trusted_author.unwrap_or(review.author),
                    purpose: approval.purpose,
                    datasets: a.record.datasets.iter().map(|d| d.name.clone()).collect(),
                    module_hash: hash.clone(),
                    valid,
                    quorum,
                    valid_until: approval.valid_until,
                    status,
                });
            }
        }
    }
    Ok(out)
}

fn status_words(e: &crate::verify::VerifyError) -> String {
    use crate::verify::VerifyError as E;
    match e {
        E::QuorumNotMet { .. } => "awaiting committee signatures".into(),
        E::ApprovalExpired { .. } => "approval expired".into(),
        E::ApprovalNotYetValid { .. } => "approval not yet in force".into(),
        E::ModuleRevoked { .. } | E::ApprovalRevoked { .. } | E::KeyRevoked { .. } => {
            "revoked".into()
        }
        _ => "does not verify".into(),
    }
}

pub(super) async fn modules(
    AxState(s): AxState<Shared>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let state = s.clone();
    let list = blocking(move || state.web.approvals.get_or(|| approvals(&state))).await?;
    let viewer = Viewer::of(&s, &headers);
    let body = html! {
        p { "Every analysis uploaded here with an approval, and whether it may run now. A module runs only when at least "
            (s.policy.committee.quorum) " of the " (s.policy.committee.members.len()) " members of the ethics committee have signed its approval, within the approval's dates, and while nothing about it is revoked." }
        @if list.is_empty() { p { "No module has an approval yet." } }
        @for m in list.iter() {
            section class="card" aria-label={(m.name) " " (m.version)} {
                h2 { (m.name) " " span class="muted" { (m.version) } }
                p { (m.purpose) }
                dl {
                    dt { "Written by" } dd { (m.author) }
                    dt { "Reads" } dd { (m.datasets.join(", ")) }
                    dt { "Committee signatures" } dd { (m.valid) " of " (m.quorum) " needed" }
                    dt { "Approved until" } dd { (m.valid_until) }
                    dt { "Status" } dd {
                        @match &m.status {
                            Ok(()) => span class="ok" { "Approved: may run" },
                            Err(why) => span class="warn" { (why) },
                        }
                    }
                    dt { "Module hash" } dd class="hash" { (m.module_hash) }
                }
            }
        }
    };
    Ok(respond(
        StatusCode::OK,
        page(&s, "Modules", Nav::Modules, viewer.as_ref(), body),
        viewer.is_some(),
    ))
}

pub(super) async fn datasets(AxState(s): AxState<Shared>, headers: HeaderMap) -> Response {
    let viewer = Viewer::of(&s, &headers);
    let catalog = s.host.catalog();
    let public: Vec<_> = catalog
        .names()
        .filter_map(|n| catalog.get(n))
        .filter(|d| d.descriptor().public)
        .collect();
    let body = html! {
        p { "The datasets this holder lists publicly, described by their public metadata: no record is ever shown. "
            "Each is about people (its " em { "privacy unit" } "); no analysis can see who they are." }
        @if public.is_empty() { p { "The holder lists no dataset publicly." } }
        @for d in &public {
            @let desc = d.descriptor();
            section class="card" aria-label=(desc.name) {
                h2 { (if desc.title.is_empty() { &desc.name } else { &desc.title }) }
                p { (desc.description) }
                dl {
                    dt { "Name in analyses" } dd { code { (desc.name) } }
                    @if !desc.owner.is_empty() { dt { "Held by" } dd { (desc.owner) } }
                    @if !desc.update_frequency.is_empty() { dt { "Updated" } dd { (desc.update_frequency) } }
                    dt { "About" } dd { (super::sentences::people(&desc.privacy_unit)) " (column " code { (desc.privacy_unit) } ", never readable by an analysis)" }
                }
                table {
                    caption { "Columns analyses may use" }
                    thead { tr { th scope="col" { "Column" } th scope="col" { "Type" } th scope="col" { "Values" } th scope="col" { "Meaning" } } }
                    tbody {
                        @for c in &d.schema().columns {
                            tr {
                                td { code { (c.name) } }
                                td { (c.dtype) }
                                td {
                                    @if let Some(domain) = &c.domain {
                                        @let shown: Vec<String> = domain.iter().take(12).map(|v| v.key_text()).collect();
                                        (shown.join(", ")) @if domain.len() > 12 { ", … (" (domain.len()) " in all)" }
                                    } @else if let Some([lo, hi]) = c.bounds {
                                        "from " (super::sentences::number(lo)) " to " (super::sentences::number(hi))
                                    } @else if let Some([a, b]) = &c.period {
                                        (a) " to " (b)
                                    }
                                }
                                td { (c.description) }
                            }
                        }
                    }
                }
            }
        }
    };
    respond(
        StatusCode::OK,
        page(&s, "Datasets", Nav::Datasets, viewer.as_ref(), body),
        viewer.is_some(),
    )
}

pub(super) async fn log(AxState(s): AxState<Shared>, headers: HeaderMap) -> Response {
    let viewer = Viewer::of(&s, &headers);
    let head = s.audit.head();
    let verified = head.signed_by(&s.holder.public());
    let body = html! {
        p { "Everything this service does (each upload, approval, run, refusal and release) is written to an append-only log. "
            "Each entry carries the hash of the one before it, so no entry can be changed or removed without breaking the chain, "
            "and the holder signs the latest entry (the " em { "head" } ")." }
        h2 { "The signed head now" }
        dl {
            dt { "Entries" } dd { (head.seq) }
            dt { "Hash of the last entry" } dd class="hash" { (head.hash) }
            dt { "Holder's key" } dd class="hash" { (head.holder) }
            dt { "Holder's signature" } dd class="hash" { (head.signature.to_hex()) }
            dt { "Signature" } dd { @if verified { span class="ok" { "verifies with the holder's key" } } @else { span class="warn" { "does not verify" } } }
        }
        p { a href="/log/head.json" download="oar-head.json" { "Download this head (JSON)" } " and keep it." }
        h2 { "Check it yourself" }
        ol {
            li { "Keep the head above. It commits the holder to every entry up to now." }
            li { "Later, ask the holder for the log file (an auditor's copy) and run "
                 code { "oar audit verify LOG --holder " (head.holder) " --since oar-head.json" }
                 ". It checks every link of the chain and the holder's signature, and proves the log was not rewound or rewritten behind the head you kept." }
            li { code { "oar audit export LOG" } " prints the register of runs from the same log; it must match " a href="/register" { "the register here" } "." }
        }
    };
    respond(
        StatusCode::OK,
        page(&s, "Audit log", Nav::Log, viewer.as_ref(), body),
        viewer.is_some(),
    )
}

pub(super) async fn head_json(AxState(s): AxState<Shared>) -> Response {
    (
        [("content-type", "application/json")],
        serde_json::to_string_pretty(&s.audit.head()).unwrap_or_default(),
    )
        .into_response()
}

#[derive(Deserialize)]
pub(super) struct SigninQuery {
    next: Option<String>,
}

pub(super) async fn signin_page(
    AxState(s): AxState<Shared>,
    headers: HeaderMap,
    Query(q): Query<SigninQuery>,
) -> Response {
    let viewer = Viewer::of(&s, &headers);
    let authority = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let challenge = s
        .web
        .sessions
        .challenge(&crate::module_text::bounded(&authority, 100));
    let next = super::safe_next(q.next.as_deref().unwrap_or("/"));
    let body = html! {
        p { "Committee members and requesters sign in with the OAR key file they were given (the " code { ".key" } " file " code { "oar keygen" } " wrote). "
            "Your browser signs a one-time challenge with it; " strong { "the key never leaves this computer" } "." }
        form id="signin" data-challenge=(challenge) data-next=(next) {
            label for="keyfile" { "Your key file" }
            input id="keyfile" type="file" accept=".key,application/json" required;
            p { button type="submit" { "Sign in" } }
            p role="status" aria-live="polite" {}
        }
        noscript { p class="warn" { "Signing in needs JavaScript, to sign with your key inside this page." } }
    };
    respond(
        StatusCode::OK,
        page(&s, "Sign in", Nav::Other, viewer.as_ref(), body),
        true,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SigninAnswer {
    challenge: String,
    key: crate::keys::PublicKey,
    signature: crate::keys::Signature,
}

pub(super) async fn signin(
    AxState(s): AxState<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if !super::same_origin(&s, &headers) {
        return Err(ApiError(
            Problem::Forbidden,
            "sign in from this server's own page".into(),
        ));
    }
    let answer: SigninAnswer = serde_json::from_slice(&body)
        .map_err(|e| crate::server::api::bad_request(format!("malformed sign-in: {e}")))?;
    let refused = || {
        s.metrics
            .unauthenticated_because(crate::server::metrics::AuthFailure::Signature);
        ApiError(
            Problem::Unauthenticated,
            "the signature does not verify, the challenge expired, or this key is not a committee member or requester here; reload the page and choose your own .key file".into(),
        )
    };
    if !s
        .web
        .sessions
        .answer(&answer.challenge, &answer.key, &answer.signature)
    {
        return Err(refused());
    }
    let Some(viewer) = Viewer::for_key(&s, &answer.key) else {
        return Err(refused());
    };
    let token = s.web.sessions.open(super::Principal::Key(answer.key));
    let mut r = (
        StatusCode::OK,
        axum::Json(serde_json::json!({"signed_in": viewer.name})),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&auth::set_cookie(
        auth::COOKIE,
        Some(&token),
        s.scheme == "https",
    )) {
        r.headers_mut().insert("set-cookie", v);
    }
    Ok(r)
}

pub(super) async fn signout(AxState(s): AxState<Shared>, headers: HeaderMap) -> Response {
    if let Some(token) = auth::cookie(&headers, auth::COOKIE) {
        if super::same_origin(&s, &headers) {
            s.web.sessions.close(&token);
        }
    }
    let mut r = StatusCode::SEE_OTHER.into_response();
    r.headers_mut()
        .insert("location", HeaderValue::from_static("/"));
    if let Ok(v) = HeaderValue::from_str(&auth::set_cookie(auth::COOKIE, None, s.scheme == "https"))
    {
        r.headers_mut().insert("set-cookie", v);
    }
    r
}
