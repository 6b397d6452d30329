//! Pages for people who are not programmers, served by `oar serve` as server-rendered HTML
//! (`maud`, checked at compile time), with one small script for signing with a key file in the
//! browser and no other JavaScript.
//!
//! - Public, on the requester listener, without signing in: the register of runs, the modules
//!   and their approval status, the datasets the holder marks public, the audit log's signed
//!   head and how to check it ([`public`]).
//! - For committee members, signed in with their key: what a module will do, in sentences, with
//!   a dry run on synthetic data, and signing the approval in the browser ([`review`]).
//! - For requesters, signed in with their key: their runs and releases, with charts and
//!   downloads ([`runs`]).
//! - For the operator, on the admin listener, signed in with the admin token ([`operator`]).
//!
//! Every page shows only what the JSON API already gives the same person, or public facts
//! (policy, approvals, register). Pages answer with a strict content security policy (scripts
//! and styles from this server only, no inline script or style, no framing).

mod auth;
mod chart;
mod fresh;
mod operator;
mod public;
mod review;
mod runs;
pub mod sentences;

use super::State;
use crate::policy::Requester;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup, DOCTYPE};
use std::sync::Arc;

pub use auth::{Principal, Sessions};

type Shared = Arc<State>;

/// A review page's dry run: its report, or why it could not run.
pub(crate) type DryRunShown = Arc<Result<crate::dry_run::DryRunReport, String>>;

/// What the pages keep: sign-in challenges and sessions, and the committee's dry runs.
#[derive(Default)]
pub(crate) struct Web {
    /// Challenges and sessions.
    pub sessions: Sessions,
    /// Dry runs shown on review pages, by module hash and approval digest.
    pub dry_runs: std::sync::Mutex<std::collections::HashMap<(String, String), DryRunShown>>,
    /// Held while a dry run for a review page runs: one at a time.
    pub dry_running: std::sync::Mutex<()>,
    /// The approvals the public module list and the review list show, read at most every
    /// [`fresh::MODULES_TTL`] and again after an approval is stored.
    pub approvals: fresh::Fresh<Vec<public::ApprovalView>>,
    /// Register pages by their `after`, each read at most every [`fresh::MODULES_TTL`].
    pub register_pages: std::sync::Mutex<
        std::collections::HashMap<u64, Arc<fresh::Fresh<crate::audit::RegisterPage>>>,
    >,
}

const CSS: &str = include_str!("oar.css");
const JS: &str = include_str!("oar.js");
const ICON: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\"><rect width=\"16\" height=\"16\" rx=\"3\" fill=\"#10324f\"/><circle cx=\"8\" cy=\"8\" r=\"4\" fill=\"none\" stroke=\"#fff\" stroke-width=\"2\"/></svg>";

/// The pages on the requester listener.
pub(super) fn router(state: Shared) -> Router {
    Router::new()
        .route("/", get(public::home))
        .route("/register", get(public::register))
        .route("/modules", get(public::modules))
        .route("/datasets", get(public::datasets))
        .route("/log", get(public::log))
        .route("/log/head.json", get(public::head_json))
        .route("/signin", get(public::signin_page).post(public::signin))
        .route("/signout", post(public::signout))
        .route("/review", get(review::list))
        .route("/review/{hash}", get(review::show))
        .route("/review/{hash}/sign", post(review::sign))
        .route("/review/{hash}/approval.json", get(review::record))
        .route("/runs", get(runs::list))
        .route("/runs/{id}", get(runs::show))
        .route("/runs/{id}/files/{name}", get(runs::file))
        .route("/ui/oar.css", get(css))
        .route("/ui/oar.js", get(js))
        .route("/ui/icon.svg", get(icon))
        .route("/favicon.ico", get(icon))
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            super::guard::guard,
        ))
        .with_state(state)
}

/// The operator's page on the admin listener.
pub(super) fn admin_router(state: Shared) -> Router {
    Router::new()
        .route("/", get(operator::page))
        .route("/operator", get(operator::page))
        .route("/operator/signin", post(operator::signin))
        .route("/operator/signout", post(operator::signout))
        .route("/ui/oar.css", get(css))
        .route("/ui/icon.svg", get(icon))
        .route("/favicon.ico", get(icon))
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024))
        .with_state(state)
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

async fn icon() -> Response {
    asset("image/svg+xml", ICON)
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            ("content-type", kind),
            ("cache-control", "public, max-age=300"),
            ("x-content-type-options", "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// The person looking at a page.
#[derive(Clone)]
pub(crate) struct Viewer {
    /// Their name on the policy (member's or requester's).
    pub name: String,
    /// Their key.
    pub key: crate::keys::PublicKey,
    /// On the committee roster.
    pub member: bool,
    /// Their requester entry, if they are one.
    pub requester: Option<Requester>,
}

impl Viewer {
    /// The signed-in person of a request, if any: a session for a key that is still on the
    /// policy's roster or requesters and not revoked.
    pub fn of(s: &State, headers: &HeaderMap) -> Option<Viewer> {
        let token = auth::cookie(headers, auth::COOKIE)?;
        let Principal::Key(key) = s.web.sessions.who(&token)? else {
            return None;
        };
        Viewer::for_key(s, &key)
    }

    /// The viewer a key would be: a committee member or a requester, not revoked.
    pub fn for_key(s: &State, key: &crate::keys::PublicKey) -> Option<Viewer> {
        let member = s.policy.member(key);
        let requester = s.policy.requesters.iter().find(|r| &r.key == key).cloned();
        let name = member
            .map(|m| m.name.clone())
            .or_else(|| requester.as_ref().map(|r| r.name.clone()))?;
        let revoked = s
            .host
            .revocations()
            .with(|l| crate::verify::check_requester(key, l).is_err());
        (!revoked).then(|| Viewer {
            name,
            key: *key,
            member: member.is_some(),
            requester,
        })
    }
}

/// What a page asks of the person looking at it.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Role {
    /// A member of the ethics committee.
    Member,
    /// A requester.
    Requester,
}

/// The signed-in person with `role`, or the answer to give instead: the sign-in page (then
/// back to `back`) for nobody, the 403 page for someone without the role.
pub(crate) fn require(
    s: &State,
    headers: &HeaderMap,
    role: Role,
    back: &str,
) -> Result<Viewer, Box<Response>> {
    let Some(viewer) = Viewer::of(s, headers) else {
        return Err(Box::new(to_signin(back)));
    };
    let has = match role {
        Role::Member => viewer.member,
        Role::Requester => viewer.requester.is_some(),
    };
    if has {
        Ok(viewer)
    } else {
        Err(Box::new(not_permitted(s, Some(&viewer))))
    }
}

/// Where the page sits in the navigation.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Nav {
    Home,
    Register,
    Modules,
    Datasets,
    Log,
    Review,
    Runs,
    Other,
}

/// A whole page: the shell, the navigation and `body`.
pub(crate) fn page(
    s: &State,
    title: &str,
    nav: Nav,
    viewer: Option<&Viewer>,
    body: Markup,
) -> Markup {
    let holder = s
        .policy
        .holder
        .as_ref()
        .map(|h| h.name.clone())
        .unwrap_or_else(|| "this data holder".into());
    let link = |href: &'static str, label: &'static str, here: Nav| {
        html! {
            li { a href=(href) aria-current=[(nav == here).then_some("page")] { (label) } }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(&format!("{title} · OAR at {holder}")))
            body {
                a class="skip" href="#main" { "Skip to the content" }
                header class="site" {
                    a class="brand" href="/" { "OAR · " (holder) }
                    nav aria-label="Main" {
                        ul {
                            (link("/register", "Register of runs", Nav::Register))
                            (link("/modules", "Modules", Nav::Modules))
                            (link("/datasets", "Datasets", Nav::Datasets))
                            (link("/log", "Audit log", Nav::Log))
                            @if viewer.is_some_and(|v| v.member) { (link("/review", "Review", Nav::Review)) }
                            @if viewer.is_some_and(|v| v.requester.is_some()) { (link("/runs", "My runs", Nav::Runs)) }
                        }
                    }
                    div class="who" {
                        @match viewer {
                            Some(v) => {
                                "Signed in as " strong { (v.name) } " "
                                form method="post" action="/signout" { button class="link" type="submit" { "Sign out" } }
                            }
                            None => { a href="/signin" { "Sign in" } }
                        }
                    }
                }
                main id="main" { h1 { (title) } (body) }
                footer { "Open Algorithms Runtime. Every number released here carries differential-privacy noise and counts at least the policy's minimum of people." }
                script src="/ui/oar.js" defer {}
            }
        }
    }
}

/// A page's `head`: its title, the viewport, the style sheet and the icon.
pub(crate) fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) }
            link rel="stylesheet" href="/ui/oar.css";
            link rel="icon" href="/ui/icon.svg" type="image/svg+xml";
        }
    }
}

/// An HTML response with the pages' security headers. Pages for a signed-in person are never
/// cached.
pub(crate) fn respond(status: StatusCode, markup: Markup, private: bool) -> Response {
    let mut r = (status, markup.into_string()).into_response();
    let h = r.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    if private {
        h.insert("cache-control", HeaderValue::from_static("no-store"));
    }
    r
}

/// The answer to a page that needs signing in: to the sign-in page, then back.
pub(crate) fn to_signin(back: &str) -> Response {
    let back = safe_next(back);
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/signin?next={}", percent(&back))) {
        r.headers_mut().insert("location", v);
    }
    r
}

/// The page that answers both "not yours" and "does not exist", alike.
pub(crate) fn not_permitted(s: &State, viewer: Option<&Viewer>) -> Response {
    respond(
        StatusCode::FORBIDDEN,
        page(
            s,
            "Not available",
            Nav::Other,
            viewer,
            html! { p { "This page does not exist, or it is not yours to see." } },
        ),
        true,
    )
}

/// A path on this site to return to after signing in (anything else becomes `/`).
pub(crate) fn safe_next(next: &str) -> String {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && next.len() <= 200
        && next
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/-_.?=&".contains(c));
    if ok {
        next.to_string()
    } else {
        "/".into()
    }
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_./".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Whether a state-changing request comes from this site: a browser's `Origin`, when sent, must
/// name one of the server's own authorities (the session cookie is `SameSite=Strict` too).
pub(crate) fn same_origin(s: &State, headers: &HeaderMap) -> bool {
    match headers.get("origin").and_then(|v| v.to_str().ok()) {
        None => true,
        Some(origin) => s
            .authorities
            .iter()
            .any(|a| origin.eq_ignore_ascii_case(&format!("{}://{a}", s.scheme))),
    }
}

/// Time as people read it, from Unix seconds.
pub(crate) fn when(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// A short form of a hash for tables (the full one in a title).
pub(crate) fn short_hash(h: &str) -> Markup {
    let short: String = h.chars().take(12).collect();
    html! { abbr class="hash" title=(h) { (short) "…" } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_on_this_site_are_returned_to() {
        assert_eq!(safe_next("/review/abc"), "/review/abc");
        assert_eq!(safe_next("//evil.example/"), "/");
        assert_eq!(safe_next("https://evil.example/"), "/");
        assert_eq!(safe_next("/\\evil"), "/");
        assert_eq!(safe_next("/runs?x=<script>"), "/");
    }
}
