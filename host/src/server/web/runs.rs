//! The requester's pages: their runs, and each release with its tables, intervals, withheld
//! cells and charts, the holder's signature checked, and the files to download. A run that is
//! not the signed-in requester's answers exactly as one that does not exist.

use super::{
    chart, not_permitted, page, require, respond, sentences, short_hash, when, Nav, Role, Shared,
};
use crate::release::Release;
use crate::server::api::{blocking, internal, ApiError};
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use oar_guest::table::{Suppression, Table};

/// Runs listed on the requester's page.
const RUNS_SHOWN: usize = 200;

pub(super) async fn list(
    AxState(s): AxState<Shared>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let viewer = match require(&s, &headers, Role::Requester, "/runs") {
        Ok(v) => v,
        Err(answer) => return Ok(*answer),
    };
    let (state, name) = (s.clone(), viewer.name.clone());
    let jobs = blocking(move || {
        state
            .store
            .recent_jobs(Some(&name), RUNS_SHOWN)
            .map_err(internal)
    })
    .await?;
    let body = html! {
        p { "Your runs on this service, newest first. Submit runs with " code { "oar submit" } " or the API." }
        @if jobs.is_empty() { p { "You have no run here yet." } }
        @else {
            table {
                caption { "Runs" }
                thead { tr { th scope="col" { "Submitted" } th scope="col" { "Job" } th scope="col" { "Module" } th scope="col" { "State" } } }
                tbody {
                    @for j in &jobs {
                        tr {
                            td { (when(j.created_at)) }
                            td { a href={"/runs/" (j.id)} { (j.id) } }
                            td { (short_hash(&j.module_hash)) }
                            td { (j.status) @if let Some(e) = &j.error { br; span class="muted" { (e) } } }
                        }
                    }
                }
            }
        }
    };
    Ok(respond(
        StatusCode::OK,
        page(&s, "My runs", Nav::Runs, Some(&viewer), body),
        true,
    ))
}

/// A requester's own release, read and checked.
struct Shown {
    job: crate::server::Job,
    release: Option<Release>,
    signature: Result<(), String>,
    files: Vec<(String, u64)>,
}

fn load(s: &crate::server::State, who: &str, id: &str) -> Result<Option<Shown>, ApiError> {
    let Some(job) = s
        .store
        .job(id)
        .map_err(internal)?
        .filter(|j| j.requester == who)
    else {
        return Ok(None);
    };
    if job.status != "succeeded" {
        return Ok(Some(Shown {
            job,
            release: None,
            signature: Err("no release".into()),
            files: Vec::new(),
        }));
    }
    let dir = s.releases_dir(id);
    let signature = crate::release::signed::verify_dir(&dir, &s.holder.public())
        .map(|_| ())
        .map_err(|e| e.to_string());
    let release = std::fs::read(dir.join("release.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Release>(&b).ok());
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(internal)? {
        let entry = entry.map_err(internal)?;
        let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
        files.push((entry.file_name().to_string_lossy().into_owned(), len));
    }
    files.sort();
    Ok(Some(Shown {
        job,
        release,
        signature,
        files,
    }))
}

pub(super) async fn show(
    AxState(s): AxState<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let viewer = match require(&s, &headers, Role::Requester, &format!("/runs/{id}")) {
        Ok(v) => v,
        Err(answer) => return Ok(*answer),
    };
    let (state, name, job_id) = (s.clone(), viewer.name.clone(), id.clone());
    let Some(shown) = blocking(move || load(&state, &name, &job_id)).await? else {
        return Ok(not_permitted(&s, Some(&viewer)));
    };
    let holder = s.holder.public();
    let body = html! {
        dl {
            dt { "State" } dd { (shown.job.status) @if let Some(e) = &shown.job.error { " — " (e) } }
            dt { "Submitted" } dd { (when(shown.job.created_at)) }
            dt { "Module" } dd class="hash" { (shown.job.module_hash) }
        }
        @if let Some(release) = &shown.release {
            p {
                @match &shown.signature {
                    Ok(()) => { span class="ok" { "Signed by the holder: the signature verifies" } " with key " span class="hash" { (holder) } ". Check it yourself with " code { "oar verify-release DIR --holder " (holder) } "." }
                    Err(e) => { span class="warn" { "The holder's signature does not verify: " (e) } }
                }
            }
            p { "Spent ε " (sentences::number(release.epsilon_total))
                @for sp in &release.epsilon_spent { " (" (sentences::number(sp.epsilon)) " on " (sp.dataset) ")" }
                ". Every number carries privacy noise; the interval beside it holds the true value with 95% probability."
                @if let Some(later) = &release.reused_by { " Returned again for the identical run " (later) ", which spent nothing." } }
            h2 { "Download" }
            ul { @for (f, len) in &shown.files { li { a href={"/runs/" (id) "/files/" (f)} download=(f) { (f) } " (" (len) " bytes)" } } }
            @for t in &release.tables { (table_section(&t.name, &t.table)) }
        } @else {
            p { "There is no release for this run." }
        }
    };
    Ok(respond(
        StatusCode::OK,
        page(&s, &format!("Run {id}"), Nav::Runs, Some(&viewer), body),
        true,
    ))
}

fn reason(s: &Suppression) -> &'static str {
    match s {
        Suppression::MinimumUnits => "too few people",
        Suppression::Dominance => "a few people dominate the total",
        Suppression::Secondary => "withheld to protect another cell",
        Suppression::Derived => "computed from a withheld cell",
    }
}

fn table_section(name: &str, t: &Table) -> Markup {
    let half: Vec<Option<f64>> = t
        .value_columns
        .iter()
        .map(|c| {
            t.release
                .as_ref()
                .and_then(|r| r.accuracy.iter().find(|a| &a.column == c))
                .map(|a| a.ci95_half_width)
        })
        .collect();
    html! {
        section aria-label={"Table " (name)} {
            h2 { "Table " (name) }
            @if let Some(info) = &t.release {
                p class="muted" { (info.released_cells) " cells published, " (info.suppressed_cells) " withheld; each published cell counts at least " (info.min_units) " people." }
            }
            @if let Some(c) = chart::chart(t, name) { (c) }
            table {
                caption { (name) ": estimates, 95% intervals and withheld cells" }
                thead { tr {
                    @for k in &t.key_columns { th scope="col" { (k) } }
                    @for (i, v) in t.value_columns.iter().enumerate() {
                        th scope="col" { (v) }
                        @if half[i].is_some() { th scope="col" { (v) " 95% interval" } }
                    }
                    th scope="col" { "Withheld because" }
                } }
                tbody {
                    @for r in &t.rows {
                        tr {
                            @for k in &r.keys { td { (k.key_text()) } }
                            @for (i, _) in t.value_columns.iter().enumerate() {
                                @match r.values.get(i) {
                                    Some(v) => {
                                        td class="num" { (chart::short(*v)) }
                                        @if let Some(h) = half[i] { td class="num" { (chart::short(v - h)) " to " (chart::short(v + h)) } }
                                    }
                                    None => {
                                        td { "—" }
                                        @if half[i].is_some() { td { "—" } }
                                    }
                                }
                            }
                            td { @if let Some(s) = &r.suppressed { (reason(s)) } }
                        }
                    }
                }
            }
        }
    }
}

pub(super) async fn file(
    AxState(s): AxState<Shared>,
    Path((id, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let viewer = match require(&s, &headers, Role::Requester, &format!("/runs/{id}")) {
        Ok(v) => v,
        Err(answer) => return Ok(*answer),
    };
    let (state, who) = (s.clone(), viewer.name.clone());
    let bytes = blocking(move || {
        let Some(shown) = load(&state, &who, &id)? else {
            return Ok(None);
        };
        // Only a file the release folder lists, by its exact name.
        if !shown.files.iter().any(|(f, _)| f == &name) {
            return Ok(None);
        }
        let bytes = std::fs::read(state.releases_dir(&id).join(&name)).map_err(internal)?;
        Ok(Some((name, bytes)))
    })
    .await?;
    let Some((name, bytes)) = bytes else {
        return Ok(not_permitted(&s, Some(&viewer)));
    };
    let kind = match name.rsplit('.').next() {
        Some("csv") => "text/csv; charset=utf-8",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    };
    let mut r = (StatusCode::OK, bytes).into_response();
    let h = r.headers_mut();
    h.insert("content-type", HeaderValue::from_static(kind));
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert("content-disposition", v);
    }
    Ok(r)
}
