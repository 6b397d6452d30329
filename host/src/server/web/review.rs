//! The committee's pages: everything a member needs to decide on a module, in plain language,
//! and signing its approval from the page. The member's key signs in the browser (see
//! `oar.js`); the server receives only the signature, checks it against the roster, and adds it
//! to the stored approval exactly as `POST /v1/approvals` would.

use super::sentences::{self, DatasetWords};
use super::{not_permitted, page, require, respond, Nav, Role, Shared, Viewer};
use crate::approval::{Approval, MemberSignature};
use crate::dry_run::DryRunReport;
use crate::server::api::{blocking, internal, ApiError};
use crate::server::problem::Problem;
use axum::body::Bytes;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;
use std::sync::Arc;

/// The synthetic data a review's dry run uses (per dataset).
const DRY_ROWS: usize = 100_000;
const DRY_UNITS: usize = 10_000;

pub(super) async fn list(
    AxState(s): AxState<Shared>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let viewer = match require(&s, &headers, Role::Member, "/review") {
        Ok(v) => v,
        Err(answer) => return Ok(*answer),
    };
    let state = s.clone();
    let list = blocking(move || {
        state
            .web
            .approvals
            .get_or(|| super::public::approvals(&state))
    })
    .await?;
    let body = html! {
        p { "Approvals stored here, with the signatures they have. Open one to see what the module would do, and to sign it." }
        @if list.is_empty() { p { "No approval is waiting." } }
        @else {
            table {
                caption { "Approvals" }
                thead { tr { th scope="col" { "Module" } th scope="col" { "Purpose" } th scope="col" { "Signatures" } th scope="col" { "Status" } } }
                tbody {
                    @for a in list.iter() {
                        tr {
                            td { a href={"/review/" (a.module_hash)} { (a.name) " " (a.version) } }
                            td { (a.purpose) }
                            td { (a.valid) " of " (a.quorum) }
                            td { @match &a.status { Ok(()) => span class="ok" { "approved" }, Err(w) => span class="warn" { (w) } } }
                        }
                    }
                }
            }
        }
    };
    Ok(respond(
        StatusCode::OK,
        page(&s, "Review", Nav::Review, Some(&viewer), body),
        true,
    ))
}

/// One approval on the page: the bundle it approves, the approval, its review and dry run.
struct Shown {
    approval: Approval,
    /// What the revocation list says of the module, this approval and the author: (what, why).
    revoked: Vec<(&'static str, String)>,
    review: crate::review::Review,
    dry_run: Arc<Result<DryRunReport, String>>,
    runnable: bool,
}

async fn load(s: Shared, hash: String) -> Result<Option<Vec<Shown>>, ApiError> {
    blocking(move || {
        let stored = crate::server::StoredModule::load(&s, &hash).map_err(internal)?;
        let mut shown = Vec::new();
        for (bundle, approvals) in stored.approved() {
            for a in approvals {
                let review = crate::review::Review::of(bundle, Some(&s.policy), Some(a));
                let runnable = s.host.revocations().with(|l| {
                    crate::verify::verify(bundle, a, &s.policy, l, chrono::Utc::now()).is_ok()
                });
                let dry_run = dry_run(&s, bundle, a);
                let revoked = s.host.revocations().with(|l| {
                    use crate::revocation::RevokedKind;
                    let digest = hex::encode(a.record.digest());
                    let author = bundle.author_key.to_hex();
                    [
                        (
                            "the module",
                            RevokedKind::Module,
                            bundle.module_hash.as_str(),
                        ),
                        ("this approval", RevokedKind::Approval, digest.as_str()),
                        ("the author's key", RevokedKind::Key, author.as_str()),
                    ]
                    .into_iter()
                    .filter_map(|(what, kind, id)| {
                        l.find(kind, id).map(|e| (what, e.reason.clone()))
                    })
                    .collect()
                });
                shown.push(Shown {
                    revoked,
                    approval: a.clone(),
                    review,
                    dry_run,
                    runnable,
                });
            }
        }
        Ok((!shown.is_empty()).then_some(shown))
    })
    .await
}

/// The dry run of a module under an approval, run once and kept.
fn dry_run(
    s: &crate::server::State,
    bundle: &crate::bundle::Bundle,
    approval: &Approval,
) -> Arc<Result<DryRunReport, String>> {
    let key = (
        bundle.module_hash.clone(),
        hex::encode(approval.record.digest()),
    );
    let cached = || {
        s.web
            .dry_runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned()
    };
    if let Some(done) = cached() {
        return done;
    }
    // One dry run at a time; one that finished while this page waited is not run again.
    let _one = s.web.dry_running.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(done) = cached() {
        return done;
    }
    let result = (|| {
        let work = tempfile::Builder::new()
            .prefix("review-dry-run-")
            .tempdir_in(&s.data_dir)
            .map_err(|e| e.to_string())?;
        let cache = s
            .config
            .cache_dir
            .clone()
            .unwrap_or_else(|| s.data_dir.join("cache"));
        let runtime = crate::sandbox::Runtime::new(Some(cache)).map_err(|e| e.to_string())?;
        let catalog = s.host.catalog();
        let datasets: Vec<_> = catalog
            .names()
            .filter_map(|n| catalog.get(n))
            .map(|d| d.as_ref().clone())
            .collect();
        crate::dry_run::for_review(
            runtime,
            bundle,
            &approval.record,
            (*s.policy).clone(),
            &datasets,
            crate::synth::shaped::ShapedSpec {
                rows: DRY_ROWS,
                units: DRY_UNITS,
                seed: 1,
            },
            work.path(),
        )
        .map_err(|e| e.to_string())
    })();
    if let Err(e) = &result {
        tracing::warn!(module = %bundle.module_hash, error = %e, "review dry run failed");
    }
    let result = Arc::new(result);
    let mut map = s.web.dry_runs.lock().unwrap_or_else(|p| p.into_inner());
    if map.len() >= 64 {
        map.clear();
    }
    map.insert(key, result.clone());
    result
}

pub(super) async fn show(
    AxState(s): AxState<Shared>,
    Path(hash): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let viewer = match require(&s, &headers, Role::Member, &format!("/review/{hash}")) {
        Ok(v) => v,
        Err(answer) => return Ok(*answer),
    };
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(not_permitted(&s, Some(&viewer)));
    }
    let Some(shown) = load(s.clone(), hash.clone()).await? else {
        return Ok(not_permitted(&s, Some(&viewer)));
    };
    let title = format!(
        "Review: {} {}",
        shown[0].review.name, shown[0].review.version
    );
    let body = html! {
        @for item in &shown { (approval_section(&s, &viewer, &hash, item)) }
    };
    Ok(respond(
        StatusCode::OK,
        page(&s, &title, Nav::Review, Some(&viewer), body),
        true,
    ))
}

fn approval_section(s: &crate::server::State, viewer: &Viewer, hash: &str, item: &Shown) -> Markup {
    let r = &item.review;
    let a = r.approval.as_ref().expect("reviews here have an approval");
    let (valid, quorum) = a.quorum.unwrap_or((0, s.policy.committee.quorum));
    let signed_by_me = item
        .approval
        .signatures
        .iter()
        .any(|sig| sig.member == viewer.key);
    let runs = if a.epsilon_per_run > 0.0 {
        (a.epsilon_total / a.epsilon_per_run).floor()
    } else {
        0.0
    };
    let catalog = s.host.catalog();
    html! {
        section aria-label="Approval" {
            h2 { "What it is for" }
            p { (a.purpose) }
            p class="muted" { "Written by " (r.trusted_author.clone().unwrap_or(r.author.clone()))
                @if r.author_signature_valid && r.component_intact { " (their signature on this exact code checks)" } @else { span class="warn" { " (the author's signature does NOT check: do not approve)" } } }

            h2 { "Committee signatures" }
            p { strong { (valid) " of " (quorum) } " needed signatures from the committee ("
                (s.policy.committee.members.len()) " members). "
                @if item.runnable { span class="ok" { "Approved: the module may run." } }
                @else if valid >= quorum { span class="warn" { "Signed, but it may not run now (dates or a revocation)." } }
                @else { span class="warn" { "Not yet approved: it cannot run." } } }
            ul {
                @for sig in &a.signatures {
                    li { (sig.member.clone().unwrap_or_else(|| "someone not on the committee".into())) ": "
                        @if sig.valid && sig.member.is_some() { span class="ok" { "signed" } } @else { span class="warn" { "signature does not count" } } }
                }
            }

            h2 { "The data it reads" }
            table {
                caption { "Datasets and columns" }
                thead { tr { th scope="col" { "Dataset" } th scope="col" { "About" } th scope="col" { "Columns it may use" } th scope="col" { "Denied by the holder anyway" } th scope="col" { "Smallest group published" } } }
                tbody {
                    @for d in &r.datasets {
                        @let unit = catalog.get(&d.name).map(|ds| sentences::people(&ds.descriptor().privacy_unit)).unwrap_or_else(|| "people".into());
                        tr {
                            td { (d.name) }
                            td { (unit) " (never identifiable to the module)" }
                            td { (d.columns.join(", ")) }
                            td { @if d.denied_by_policy.is_empty() { "none" } @else { span class="warn" { (d.denied_by_policy.join(", ")) } } }
                            td class="num" { (d.min_units.unwrap_or(s.policy.min_units)) " people" }
                        }
                    }
                }
            }

            h2 { "What it will ask" }
            (plans(s, &item.dry_run))

            h2 { "Privacy cost and what it means" }
            p { "Each run may spend at most " strong { "ε " (sentences::number(a.epsilon_per_run)) } ", and all runs together at most "
                strong { "ε " (sentences::number(a.epsilon_total)) } " (about " (sentences::number(runs)) " runs). "
                "Smaller ε means more noise and more privacy." }
            (dry_run_tables(&item.dry_run))

            h2 { "What it cannot do, whatever its code says" }
            ul { @for c in &r.cannot { li { (c) } } }

            h2 { "Dates and conditions" }
            dl {
                dt { "In force" } dd { "from " (a.valid_from) " until " (a.valid_until) }
                dt { "Conditions" } dd { @if a.conditions.trim().is_empty() { "none" } @else { (a.conditions) } }
                dt { "Revoked" } dd {
                    @if item.revoked.is_empty() { "nothing: not the module, this approval, nor the author's key" }
                    @for (what, why) in &item.revoked { span class="warn" { (what) " is revoked: " (why) } br; }
                }
                dt { "Module hash" } dd class="hash" { (r.module_hash) }
                dt { "Approval digest (what you sign)" } dd class="hash" { (a.digest) }
            }

            h2 { "Your signature" }
            @if signed_by_me {
                p class="ok" { "You have signed this approval." }
            } @else {
                form id="approve" data-digest=(a.digest) data-action={"/review/" (hash) "/sign"} {
                    p { "Signing says you approve the purpose, the data, the privacy cost and the dates above, for this exact module. "
                        "Your browser signs with your key file; the key never leaves this computer." }
                    label for="approve-key" { "Your key file" }
                    input id="approve-key" type="file" accept=".key,application/json" required;
                    p { button type="submit" { "Sign this approval" } }
                    p role="status" aria-live="polite" {}
                }
                p class="muted" { "Or sign in a terminal: download " a href={"/review/" (hash) "/approval.json?digest=" (a.digest)} download="approval.json" { "the approval" } ", run "
                    code { "oar approve --bundle MODULE.oarb --key YOUR.key --approval approval.json" } " with the module's bundle, and send both with "
                    code { "oar submit" } " (see " code { "oar submit --help" } ")." }
            }
        }
    }
}

fn plans(s: &crate::server::State, dry: &Result<DryRunReport, String>) -> Markup {
    let catalog = s.host.catalog();
    match dry {
        Err(e) => {
            html! { p class="warn" { "The module could not be tried on synthetic data: " (e) } }
        }
        Ok(report) if report.plans.is_empty() => {
            html! { p { "On synthetic data the module asked no question of the data." } }
        }
        Ok(report) => html! {
            p { "Tried on synthetic data shaped like the real data, the module asked these questions (the host checks every one before touching data):" }
            ol class="plans" {
                @for plan in &report.plans {
                    @let words = catalog.get(&plan.dataset).map(|d| {
                        let desc = d.descriptor();
                        (desc.privacy_unit.clone(), desc.max_groups_per_unit, desc.max_rows_per_group)
                    }).unwrap_or(("person_id".into(), 1, 1));
                    li { (sentences::plan_sentence(plan, &DatasetWords { privacy_unit: &words.0, max_groups_per_unit: words.1, max_rows_per_group: words.2 })) }
                }
            }
            @for r in &report.refusals { p class="warn" { "Refused on synthetic data: " (r) } }
        },
    }
}

fn dry_run_tables(dry: &Result<DryRunReport, String>) -> Markup {
    let Ok(report) = dry else {
        return html! {};
    };
    html! {
        p { "On synthetic data (" (report.spec.rows) " rows about " (report.spec.units) " people; nothing real read or spent), a run would cost ε "
            (sentences::number(report.epsilon.iter().map(|(_, e)| e).sum::<f64>())) " and publish:" }
        @match &report.outcome {
            Err(e) => p class="warn" { "nothing: " (e) },
            Ok(tables) => {
                table {
                    caption { "Expected error per table (95% of released numbers fall within ± this of the truth)" }
                    thead { tr { th scope="col" { "Table" } th scope="col" { "Value" } th scope="col" { "Expected error (±, 95%)" } th scope="col" { "Cells published" } th scope="col" { "Cells withheld (too few people / dominance / to protect totals)" } } }
                    tbody {
                        @for (name, t) in tables {
                            @match &t.release {
                                Some(info) => {
                                    @for acc in &info.accuracy {
                                        tr {
                                            td { (name) } td { (acc.column) } td class="num" { (sentences::number((acc.ci95_half_width * 100.0).round() / 100.0)) }
                                            td class="num" { (info.released_cells) }
                                            td class="num" { (info.suppressed_minimum_units) " / " (info.suppressed_dominance) " / " (info.suppressed_secondary) }
                                        }
                                    }
                                }
                                None => tr { td { (name) } td colspan="4" { "computed by the module from the tables above" } }
                            }
                        }
                    }
                }
                p class="muted" { "Which real cells are withheld depends on the real counts." }
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SignAnswer {
    approval_digest: String,
    member: crate::keys::PublicKey,
    signature: crate::keys::Signature,
}

pub(super) async fn sign(
    AxState(s): AxState<Shared>,
    Path(hash): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let viewer = Viewer::of(&s, &headers);
    let Some(viewer) = viewer.filter(|v| v.member && super::same_origin(&s, &headers)) else {
        return Err(ApiError(
            Problem::Unauthenticated,
            "sign in as a committee member on this server's page first".into(),
        ));
    };
    let answer: SignAnswer = serde_json::from_slice(&body)
        .map_err(|e| crate::server::api::bad_request(format!("malformed signature: {e}")))?;
    if answer.member != viewer.key {
        return Err(ApiError(
            Problem::InvalidDocument,
            "the key file you signed with is not the one you signed in with; use your own key file"
                .into(),
        ));
    }
    let state = s.clone();
    blocking(move || {
        let stored = crate::server::StoredModule::load(&state, &hash).map_err(internal)?;
        let Some(found) = stored
            .approvals()
            .iter()
            .find(|a| hex::encode(a.record.digest()) == answer.approval_digest)
        else {
            return Err(ApiError(
                Problem::Forbidden,
                "no such approval for this module".into(),
            ));
        };
        let mut signed = Approval::new(found.record.clone());
        signed.signatures.push(MemberSignature {
            member: answer.member,
            signature: answer.signature,
        });
        signed.check_member_signatures(&state.policy).map_err(|e| {
            ApiError(
                Problem::InvalidDocument,
                format!("{e}; nothing was stored (is this your key file?)"),
            )
        })?;
        let (_, total, added) = crate::server::api::store_approval(&state, &signed, &viewer.name)?;
        Ok(axum::Json(serde_json::json!({
            "signatures": total,
            "added": added,
            "message": format!("Signed. The approval now has {total} signature(s)."),
        }))
        .into_response())
    })
    .await
}

#[derive(Deserialize)]
pub(super) struct RecordQuery {
    digest: String,
}

pub(super) async fn record(
    AxState(s): AxState<Shared>,
    Path(hash): Path<String>,
    Query(q): Query<RecordQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let viewer = match require(&s, &headers, Role::Member, &format!("/review/{hash}")) {
        Ok(v) => v,
        Err(answer) => return Ok(*answer),
    };
    let state = s.clone();
    let found = blocking(move || {
        let stored = crate::server::StoredModule::load(&state, &hash).map_err(internal)?;
        Ok(stored
            .approvals()
            .iter()
            .find(|a| hex::encode(a.record.digest()) == q.digest)
            .cloned())
    })
    .await?;
    Ok(match found {
        Some(a) => (
            [
                ("content-type", "application/json"),
                ("cache-control", "no-store"),
            ],
            serde_json::to_string_pretty(&a).map_err(internal)?,
        )
            .into_response(),
        None => not_permitted(&s, Some(&viewer)),
    })
}
