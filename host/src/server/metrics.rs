//! Counters of the service, served to the operator in the Prometheus text format at
//! `/admin/metrics`. Failures an unauthenticated client can cause are counted here, never
//! chained into the audit log: a flood must not be able to fill the disk the log lives on.

use std::sync::atomic::{AtomicU64, Ordering};

/// The service's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Requests refused before the sender was known (bad, missing or unknown signatures,
    /// wrong admin token).
    pub unauthenticated: AtomicU64,
    /// Requests refused by a rate limit (per key or per address).
    pub rate_limited: AtomicU64,
    /// Requests refused because the service was at its concurrency limit.
    pub shed: AtomicU64,
    /// Requests answered (any status).
    pub requests: AtomicU64,
    /// Connections refused because the connection limit was reached.
    pub connections_refused: AtomicU64,
    /// Jobs that ended, by outcome.
    pub jobs_succeeded: AtomicU64,
    /// Jobs that ended without a release.
    pub jobs_failed: AtomicU64,
}

/// Adds one to a counter.
pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    /// The counters in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let rows: [(&str, &str, &AtomicU64); 7] = [
            (
                "oar_unauthenticated_requests_total",
                "Requests refused before the sender was authenticated.",
                &self.unauthenticated,
            ),
            (
                "oar_rate_limited_requests_total",
                "Requests refused by a per-key or per-address rate limit.",
                &self.rate_limited,
            ),
            (
                "oar_shed_requests_total",
                "Requests refused because the service was at its concurrency limit.",
                &self.shed,
            ),
            (
                "oar_requests_total",
                "Requests answered, any status.",
                &self.requests,
            ),
            (
                "oar_connections_refused_total",
                "Connections closed at once because the connection limit was reached.",
                &self.connections_refused,
            ),
            (
                "oar_jobs_succeeded_total",
                "Jobs that ended with a signed release.",
                &self.jobs_succeeded,
            ),
            (
                "oar_jobs_failed_total",
                "Jobs that ended without a release.",
                &self.jobs_failed,
            ),
        ];
        let mut out = String::new();
        for (name, help, value) in rows {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                value.load(Ordering::Relaxed)
            ));
        }
        out
    }
}
