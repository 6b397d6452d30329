//! The operator's page, on the admin listener only (loopback), behind the admin token: jobs and
//! their states, the queue, budgets per requester and dataset over time, refusals and failed
//! authentications by reason, and the latest audit entries in words.

use super::auth::{self, Principal};
use super::{respond, sentences, short_hash, when, Shared};
use crate::audit::{Entry, EntryKind};
use crate::server::api::{blocking, internal, ApiError};
use axum::extract::State as AxState;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;
use std::sync::atomic::Ordering;

/// Audit entries shown.
const ENTRIES_SHOWN: usize = 50;
/// Jobs shown.
const JOBS_SHOWN: usize = 50;

fn signed_in(s: &crate::server::State, headers: &HeaderMap) -> bool {
    auth::cookie(headers, auth::ADMIN_COOKIE)
        .and_then(|t| s.web.sessions.who(&t))
        .is_some_and(|p| p == Principal::Operator)
}

fn shell(title: &str, signed_in: bool, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (super::head(&format!("{title} · OAR operator")))
            body {
                header class="site" {
                    a class="brand" href="/operator" { "OAR · operator" }
                    @if signed_in {
                        div class="who" { form method="post" action="/operator/signout" { button class="link" type="submit" { "Sign out" } } }
                    }
                }
                main id="main" { h1 { (title) } (body) }
            }
        }
    }
}

/// Everything the page shows, read on the blocking pool.
struct Facts {
    by_state: Vec<(String, u64)>,
    jobs: Vec<crate::server::Job>,
    budgets: Vec<Budget>,
    entries: Vec<Entry>,
}

struct Budget {
    requester: String,
    dataset: String,
    total: f64,
    spent: f64,
    remaining: f64,
    day: f64,
    week: f64,
}

fn facts(s: &crate::server::State) -> Result<Facts, ApiError> {
    let head = s.audit.head();
    let register = crate::audit::export(s.audit.path()).map_err(internal)?;
    let now = chrono::Utc::now();
    let since = |rows: &[crate::audit::RegisterRow], who: &str, dataset: &str, secs: i64| -> f64 {
        rows.iter()
            .filter(|r| r.requester == who && r.datasets.iter().any(|d| d == dataset))
            .filter(|r| {
                chrono::DateTime::parse_from_rfc3339(&r.at)
                    .is_ok_and(|t| (now - t.with_timezone(&chrono::Utc)).num_seconds() <= secs)
            })
            .map(|r| r.epsilon / r.datasets.len().max(1) as f64)
            .sum()
    };
    let ledger = s.host.ledger();
    let mut budgets = Vec::new();
    for r in &s.policy.requesters {
        for d in &r.datasets {
            let account = s.policy.requester_account(&r.name, d);
            let spent = ledger
                .spent(&crate::ledger::requester_key(&r.name, d))
                .map_err(internal)?;
            budgets.push(Budget {
                requester: r.name.clone(),
                dataset: d.clone(),
                total: account.total,
                spent,
                remaining: ledger.remaining(&account, now).unwrap_or(0.0),
                day: since(&register, &r.name, d, 86_400),
                week: since(&register, &r.name, d, 7 * 86_400),
            });
        }
    }
    Ok(Facts {
        by_state: s.store.jobs_by_state().map_err(internal)?,
        jobs: s.store.recent_jobs(None, JOBS_SHOWN).map_err(internal)?,
        budgets,
        entries: crate::audit::recent(s.audit.path(), &head, ENTRIES_SHOWN).map_err(internal)?,
    })
}

pub(super) async fn page(
    AxState(s): AxState<Shared>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !signed_in(&s, &headers) {
        let body = html! {
            p { "The operator's view of this service. Sign in with the admin token (in " code { "DATA_DIR/admin.token" } ", or " code { "OAR_ADMIN_TOKEN" } ")." }
            form method="post" action="/operator/signin" {
                label for="token" { "Admin token" }
                input id="token" name="token" type="password" autocomplete="current-password" required;
                p { button type="submit" { "Sign in" } }
            }
        };
        return Ok(respond(StatusCode::OK, shell("Sign in", false, body), true));
    }
    let state = s.clone();
    let f = blocking(move || facts(&state)).await?;
    let queued = f
        .by_state
        .iter()
        .find(|(k, _)| k == "queued")
        .map_or(0, |(_, n)| *n);
    let refusals: Vec<(&str, u64)> = crate::session::Refusal::KINDS
        .iter()
        .zip(&s.metrics.refusals)
        .map(|(k, n)| (*k, n.load(Ordering::Relaxed)))
        .collect();
    let auth_failures: Vec<(&str, u64)> = crate::server::metrics::AuthFailure::ALL
        .iter()
        .zip(&s.metrics.auth_failures)
        .map(|(k, n)| (k.label(), n.load(Ordering::Relaxed)))
        .collect();
    let body = html! {
        p { "Queue: " strong { (queued) } " job(s) waiting. Machine-readable counters are at " code { "/metrics" } " (Prometheus)." }
        h2 { "Jobs by state" }
        table {
            caption { "All jobs" }
            thead { tr { th scope="col" { "State" } th scope="col" { "Jobs" } } }
            tbody { @for (k, n) in &f.by_state { tr { td { (k) } td class="num" { (n) } } } }
        }
        h2 { "Latest jobs" }
        table {
            caption { "The " (JOBS_SHOWN) " newest jobs" }
            thead { tr { th scope="col" { "Submitted" } th scope="col" { "Job" } th scope="col" { "Requester" } th scope="col" { "Module" } th scope="col" { "State" } } }
            tbody { @for j in &f.jobs { tr {
                td { (when(j.created_at)) } td class="hash" { (j.id) } td { (j.requester) } td { (short_hash(&j.module_hash)) }
                td { (j.status) @if let Some(e) = &j.error { br; span class="muted" { (e) } } }
            } } }
        }
        h2 { "Privacy budgets" }
        table {
            caption { "ε per requester and dataset" }
            thead { tr { th scope="col" { "Requester" } th scope="col" { "Dataset" } th scope="col" { "Spent, last 24 h" } th scope="col" { "Spent, last 7 days" } th scope="col" { "Spent in all" } th scope="col" { "Left now" } th scope="col" { "Budget" } } }
            tbody { @for b in &f.budgets { tr {
                td { (b.requester) } td { (b.dataset) }
                td class="num" { (sentences::number(b.day)) } td class="num" { (sentences::number(b.week)) }
                td class="num" { (sentences::number(b.spent)) } td class="num" { (sentences::number(b.remaining)) } td class="num" { (sentences::number(b.total)) }
            } } }
        }
        h2 { "Refusals since the service started" }
        table {
            caption { "Queries refused in runs, by reason" }
            thead { tr { th scope="col" { "Reason" } th scope="col" { "Refused" } } }
            tbody { @for (k, n) in &refusals { tr { td { (k.replace('_', " ")) } td class="num" { (n) } } } }
        }
        table {
            caption { "Requests refused before the sender was known, by reason" }
            thead { tr { th scope="col" { "Reason" } th scope="col" { "Refused" } } }
            tbody { @for (k, n) in &auth_failures { tr { td { (k.replace('_', " ")) } td class="num" { (n) } } } }
        }
        h2 { "Latest audit entries" }
        table {
            caption { "The " (ENTRIES_SHOWN) " newest entries, newest first" }
            thead { tr { th scope="col" { "#" } th scope="col" { "When" } th scope="col" { "What happened" } } }
            tbody { @for e in f.entries.iter().rev() { tr {
                td class="num" { (e.body.seq) } td { (e.body.at.format("%Y-%m-%d %H:%M:%S UTC")) } td { (describe(e)) }
            } } }
        }
    };
    Ok(respond(StatusCode::OK, shell("Service", true, body), true))
}

/// An audit entry in a sentence.
pub fn describe(e: &Entry) -> String {
    let d = &e.body.details;
    let text = |k: &str| d[k].as_str().map(String::from);
    let short = |k: &str| {
        text(k)
            .map(|h| h.chars().take(12).collect::<String>())
            .unwrap_or_default()
    };
    let who = &e.body.actor;
    let eps = |k: &str| d[k].as_f64().map(sentences::number).unwrap_or_default();
    match e.body.kind {
        EntryKind::Submission => {
            if let Some(act) = text("act") {
                format!("{who}: {act} (job {})", short("job_id"))
            } else if text("bundle").is_some() {
                format!(
                    "{who} uploaded module {} {} ({})",
                    text("module").unwrap_or_default(),
                    text("version").unwrap_or_default(),
                    short("bundle")
                )
            } else if text("approval").is_some() {
                format!(
                    "{who} added {} signature(s) to an approval of module {} ({} in all)",
                    d["signatures_added"],
                    short("module_hash"),
                    d["signatures"]
                )
            } else {
                format!(
                    "{who} asked for a run of module {} (job {})",
                    short("module_hash"),
                    short("job_id")
                )
            }
        }
        EntryKind::Verification => format!(
            "Module {} checked: approved by {} committee member(s)",
            short("module_hash"),
            d["signers"]
        ),
        EntryKind::RunStarted => format!(
            "Run {} of {} started for {who}",
            short("job_id"),
            text("module").unwrap_or_default()
        ),
        EntryKind::Charge => format!(
            "ε {} charged to {who} on dataset {} (run {})",
            eps("epsilon"),
            text("dataset").unwrap_or_default(),
            short("job_id")
        ),
        EntryKind::Release => format!(
            "Run {} released its tables to {who}, spending ε {}",
            short("job_id"),
            eps("epsilon")
        ),
        EntryKind::RunFailed => format!(
            "Run {} ended without a release: {}",
            short("job_id"),
            text("error").unwrap_or_default()
        ),
        EntryKind::Refusal => format!(
            "{who} was refused: {}",
            text("reason").unwrap_or_else(|| "see the entry".into())
        ),
        EntryKind::Admin => format!("{who}: {}", text("act").unwrap_or_else(|| d.to_string())),
        EntryKind::Auth => format!("Authentication: {}", d),
    }
}

#[derive(Deserialize)]
pub(super) struct TokenForm {
    token: String,
}

pub(super) async fn signin(
    AxState(s): AxState<Shared>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<TokenForm>,
) -> Response {
    let origin_ok = headers
        .get("origin")
        .and_then(|v| v.to_str().ok())
        .is_none_or(|o| {
            headers
                .get("host")
                .and_then(|h| h.to_str().ok())
                .is_some_and(|h| o.eq_ignore_ascii_case(&format!("http://{h}")))
        });
    let ok =
        origin_ok && crate::keys::constant_time_eq(form.token.as_bytes(), s.admin_token.as_bytes());
    if !ok {
        s.metrics
            .unauthenticated_because(crate::server::metrics::AuthFailure::AdminToken);
        let body = html! {
            p class="warn" role="alert" { "That is not the admin token." }
            p { a href="/operator" { "Try again" } }
        };
        return respond(
            StatusCode::UNAUTHORIZED,
            shell("Sign in", false, body),
            true,
        );
    }
    let token = s.web.sessions.open(Principal::Operator);
    let mut r = StatusCode::SEE_OTHER.into_response();
    r.headers_mut()
        .insert("location", HeaderValue::from_static("/operator"));
    if let Ok(v) = HeaderValue::from_str(&auth::set_cookie(auth::ADMIN_COOKIE, Some(&token), false))
    {
        r.headers_mut().insert("set-cookie", v);
    }
    r
}

pub(super) async fn signout(AxState(s): AxState<Shared>, headers: HeaderMap) -> Response {
    if let Some(t) = auth::cookie(&headers, auth::ADMIN_COOKIE) {
        s.web.sessions.close(&t);
    }
    let mut r = StatusCode::SEE_OTHER.into_response();
    r.headers_mut()
        .insert("location", HeaderValue::from_static("/operator"));
    if let Ok(v) = HeaderValue::from_str(&auth::set_cookie(auth::ADMIN_COOKIE, None, false)) {
        r.headers_mut().insert("set-cookie", v);
    }
    r
}
