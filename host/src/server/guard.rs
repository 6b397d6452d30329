//! What every request passes through before its route: a request id and a tracing span, the
//! per-address rate limit, load shedding at the concurrency limit, and the request timeout
//! (which also bounds how slowly a body may arrive).

use super::listen::PeerAddr;
use super::metrics::bump;
use super::problem::Problem;
use super::State;
use axum::extract::{Request, State as AxState};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;
use tracing::Instrument as _;

/// The middleware; see the module documentation.
pub async fn guard(AxState(s): AxState<Arc<State>>, req: Request, next: Next) -> Response {
    bump(&s.metrics.requests);
    let id = crate::job::new_job_id();
    let peer = req.extensions().get::<PeerAddr>().map(|p| p.0);
    if let Some(peer) = peer {
        if !s.address_limit.allow(&peer.ip()) {
            bump(&s.metrics.rate_limited);
            return Problem::RateLimited.respond(
                "too many requests from this address; slow down and retry",
                Some(1),
            );
        }
    }
    let Ok(_slot) = s.in_flight.clone().try_acquire_owned() else {
        bump(&s.metrics.shed);
        return Problem::Overloaded.respond(
            "the server is at its limit of concurrent requests; retry shortly",
            Some(1),
        );
    };
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.uri().path(),
    );
    let timeout = s.config.request_timeout();
    let mut response = match tokio::time::timeout(timeout, next.run(req).instrument(span)).await {
        Ok(response) => response,
        Err(_) => Problem::RequestTimeout.respond(
            "the request took longer than the server allows; send the body promptly and retry",
            None,
        ),
    };
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", v);
    }
    response
}
