//! Errors as RFC 9457 problem details (`application/problem+json`): every refusal the service
//! answers has a stable `type` a client can branch on, a `title` that names the kind, the HTTP
//! `status`, and a `detail` that says what to do. The same text is kept under `error`, the
//! member earlier clients read (RFC 9457 allows extension members).
//!
//! A `type` is a URI reference relative to the service, `/problems/KIND`; the kinds are
//! [`Problem::ALL`], listed in the OpenAPI document. A detail never quotes a data value.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The kinds of problem the service answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// The request is not well-formed (JSON, parameters, an id).
    MalformedRequest,
    /// No RFC 9421 signature, or one that does not verify.
    Unauthenticated,
    /// An admin route without the admin token.
    AdminTokenRequired,
    /// Not permitted, or no such resource for this requester (the same answer for both).
    Forbidden,
    /// The body is larger than the route allows.
    BodyTooLarge,
    /// Too many requests from this address or key, or too many runs this hour.
    RateLimited,
    /// The server is at its limit of concurrent requests.
    Overloaded,
    /// The request took longer than the server allows.
    RequestTimeout,
    /// The server is stopping.
    Stopping,
    /// The bundle's signature does not verify or its author is not trusted.
    BundleNotTrusted,
    /// The approval (or revocation list) is invalid: nothing was stored.
    InvalidDocument,
    /// The job has no release (it did not succeed).
    NoRelease,
    /// The server failed; its log has the details.
    Internal,
}

impl Problem {
    /// Every kind, in documentation order.
    pub const ALL: [Problem; 13] = [
        Problem::MalformedRequest,
        Problem::Unauthenticated,
        Problem::AdminTokenRequired,
        Problem::Forbidden,
        Problem::BodyTooLarge,
        Problem::RateLimited,
        Problem::Overloaded,
        Problem::RequestTimeout,
        Problem::Stopping,
        Problem::BundleNotTrusted,
        Problem::InvalidDocument,
        Problem::NoRelease,
        Problem::Internal,
    ];

    /// The kind's stable name (the last segment of its `type`).
    pub fn kind(self) -> &'static str {
        match self {
            Problem::MalformedRequest => "malformed-request",
            Problem::Unauthenticated => "unauthenticated",
            Problem::AdminTokenRequired => "admin-token-required",
            Problem::Forbidden => "forbidden",
            Problem::BodyTooLarge => "body-too-large",
            Problem::RateLimited => "rate-limited",
            Problem::Overloaded => "overloaded",
            Problem::RequestTimeout => "request-timeout",
            Problem::Stopping => "stopping",
            Problem::BundleNotTrusted => "bundle-not-trusted",
            Problem::InvalidDocument => "invalid-document",
            Problem::NoRelease => "no-release",
            Problem::Internal => "internal",
        }
    }

    /// The `type` URI reference: `/problems/KIND`.
    pub fn type_uri(self) -> String {
        format!("/problems/{}", self.kind())
    }

    /// A short summary of the kind, the same for every occurrence.
    pub fn title(self) -> &'static str {
        match self {
            Problem::MalformedRequest => "The request is malformed",
            Problem::Unauthenticated => "The request is not signed by a known requester",
            Problem::AdminTokenRequired => "Admin routes need the admin token",
            Problem::Forbidden => "Not permitted, or no such resource",
            Problem::BodyTooLarge => "The body is too large for this route",
            Problem::RateLimited => "Too many requests",
            Problem::Overloaded => "The server is at its limit of concurrent requests",
            Problem::RequestTimeout => "The request took too long",
            Problem::Stopping => "The server is stopping",
            Problem::BundleNotTrusted => "The bundle is not trusted",
            Problem::InvalidDocument => "The document is invalid; nothing was stored",
            Problem::NoRelease => "The job has no release",
            Problem::Internal => "Internal error",
        }
    }

    /// The HTTP status this kind is answered with.
    pub fn status(self) -> StatusCode {
        match self {
            Problem::MalformedRequest => StatusCode::BAD_REQUEST,
            Problem::Unauthenticated | Problem::AdminTokenRequired => StatusCode::UNAUTHORIZED,
            Problem::Forbidden => StatusCode::FORBIDDEN,
            Problem::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Problem::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Problem::Overloaded | Problem::Stopping => StatusCode::SERVICE_UNAVAILABLE,
            Problem::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Problem::BundleNotTrusted | Problem::InvalidDocument => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Problem::NoRelease => StatusCode::CONFLICT,
            Problem::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The response: problem details with `detail`, and `Retry-After` if given.
    pub fn respond(self, detail: &str, retry_after: Option<u64>) -> Response {
        let status = self.status();
        let body = serde_json::json!({
            "type": self.type_uri(),
            "title": self.title(),
            "status": status.as_u16(),
            "detail": detail,
            "error": detail,
        });
        let mut response = (
            status,
            [("content-type", "application/problem+json")],
            body.to_string(),
        )
            .into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_distinct_and_each_answers_as_problem_json() {
        let mut kinds: Vec<&str> = Problem::ALL.iter().map(|p| p.kind()).collect();
        kinds.sort();
        kinds.dedup();
        assert_eq!(kinds.len(), Problem::ALL.len());
        let r = Problem::RateLimited.respond("slow down", Some(3));
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        assert_eq!(r.headers()["retry-after"], "3");
    }
}
