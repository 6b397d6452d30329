//! Counters of the service, served to the operator in the Prometheus text format at `/metrics`
//! (and `/admin/metrics`) on the admin listener, behind the admin token. Failures an
//! unauthenticated client can cause are counted here, never chained into the audit log: a flood
//! must not be able to fill the disk the log lives on.
//!
//! Every label is a fixed name (a job state, a refusal kind, an authentication failure's kind),
//! never a requester, a module, a person or a data value.

use std::sync::atomic::{AtomicU64, Ordering};

/// The service's counters.
#[derive(Debug, Default)]
pub struct Metrics {
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
    /// Requests refused before the sender was known (bad, missing or unknown signatures,
    /// wrong admin token), by [`AuthFailure`]; their sum is the unlabelled total.
    pub auth_failures: [AtomicU64; AuthFailure::ALL.len()],
    /// Queries refused in runs, by [`crate::session::Refusal::kind`].
    pub refusals: [AtomicU64; crate::session::Refusal::KINDS.len()],
    /// How long jobs ran, start of verification to the end of the release.
    pub run_seconds: Histogram,
}

/// Why a request could not be authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No RFC 9421 signature headers.
    Unsigned,
    /// A signature that does not verify, an unknown or revoked key, a stale time, a reused nonce.
    Signature,
    /// A body that does not match its signed digest.
    BodyDigest,
    /// An admin request without the admin token.
    AdminToken,
}

impl AuthFailure {
    /// Every kind, in label order.
    pub const ALL: [AuthFailure; 4] = [
        AuthFailure::Unsigned,
        AuthFailure::Signature,
        AuthFailure::BodyDigest,
        AuthFailure::AdminToken,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            AuthFailure::Unsigned => "unsigned",
            AuthFailure::Signature => "signature",
            AuthFailure::BodyDigest => "body_digest",
            AuthFailure::AdminToken => "admin_token",
        }
    }
}

/// Upper bounds (seconds) of the run duration histogram's buckets.
pub const RUN_SECONDS_BUCKETS: [f64; 10] = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// A Prometheus histogram of durations over [`RUN_SECONDS_BUCKETS`].
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations at or below each bound (not cumulative; made so when rendered).
    buckets: [AtomicU64; RUN_SECONDS_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one duration.
    pub fn observe(&self, d: std::time::Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = RUN_SECONDS_BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            d.as_micros().min(u64::MAX as u128) as u64,
            Ordering::Relaxed,
        );
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} histogram\n"));
        let mut cumulative = 0;
        for (bound, n) in RUN_SECONDS_BUCKETS.iter().zip(&self.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            out.push_str(&format!("{name}_bucket{{le=\"{bound}\"}} {cumulative}\n"));
        }
        let count = self.count.load(Ordering::Relaxed);
        out.push_str(&format!("{name}_bucket{{le=\"+Inf\"}} {count}\n"));
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        out.push_str(&format!("{name}_sum {sum}\n{name}_count {count}\n"));
    }
}

/// `text` escaped as a Prometheus label value (backslash, quote and newline).
fn label_value(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// What the job store says at the moment of a scrape.
#[derive(Debug, Default)]
pub struct JobGauges {
    /// Jobs per state (`queued`, `running`, `succeeded`, `failed`, `cancelled`, ...).
    pub by_state: Vec<(String, u64)>,
    /// Epsilon spent (reserved or settled) per registered dataset, all requesters together.
    pub epsilon_spent: Vec<(String, f64)>,
}

/// Adds one to a counter.
pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    /// Counts an authentication failure of kind `why`.
    pub fn unauthenticated_because(&self, why: AuthFailure) {
        bump(&self.auth_failures[why as usize]);
    }

    /// Counts a refused query of kind `kind` (a [`crate::session::Refusal::kind`]).
    pub fn refused(&self, kind: &str) {
        if let Some(i) = crate::session::Refusal::KINDS
            .iter()
            .position(|k| *k == kind)
        {
            bump(&self.refusals[i]);
        }
    }

    /// The counters, the job gauges and the run histogram in the Prometheus text exposition
    /// format (version 0.0.4).
    pub fn render_all(&self, jobs: &JobGauges) -> String {
        let mut out = self.counters();
        let family = |out: &mut String, name: &str, help: &str, kind: &str| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        };
        family(
            &mut out,
            "oar_auth_failures_total",
            "Requests refused before the sender was authenticated, by reason.",
            "counter",
        );
        for (why, n) in AuthFailure::ALL.iter().zip(&self.auth_failures) {
            out.push_str(&format!(
                "oar_auth_failures_total{{reason=\"{}\"}} {}\n",
                why.label(),
                n.load(Ordering::Relaxed)
            ));
        }
        family(
            &mut out,
            "oar_query_refusals_total",
            "Queries refused in runs, by the kind of refusal.",
            "counter",
        );
        for (kind, n) in crate::session::Refusal::KINDS.iter().zip(&self.refusals) {
            out.push_str(&format!(
                "oar_query_refusals_total{{reason=\"{kind}\"}} {}\n",
                n.load(Ordering::Relaxed)
            ));
        }
        family(
            &mut out,
            "oar_jobs",
            "Jobs in the store, by state.",
            "gauge",
        );
        for (state, n) in &jobs.by_state {
            out.push_str(&format!("oar_jobs{{state=\"{state}\"}} {n}\n"));
        }
        let queued = jobs
            .by_state
            .iter()
            .find(|(s, _)| s == "queued")
            .map_or(0, |(_, n)| *n);
        family(
            &mut out,
            "oar_queue_depth",
            "Jobs waiting for a worker.",
            "gauge",
        );
        out.push_str(&format!("oar_queue_depth {queued}\n"));
        family(
            &mut out,
            "oar_epsilon_spent",
            "Privacy budget spent per dataset, all requesters together.",
            "gauge",
        );
        for (dataset, spent) in &jobs.epsilon_spent {
            out.push_str(&format!(
                "oar_epsilon_spent{{dataset=\"{}\"}} {spent}\n",
                label_value(dataset)
            ));
        }
        self.run_seconds.render(
            "oar_run_duration_seconds",
            "How long jobs took, verification to signed release or failure.",
            &mut out,
        );
        out
    }

    /// The unlabelled counters in the Prometheus text exposition format (version 0.0.4).
    fn counters(&self) -> String {
        let unauthenticated = AtomicU64::new(
            self.auth_failures
                .iter()
                .map(|n| n.load(Ordering::Relaxed))
                .sum(),
        );
        let rows: [(&str, &str, &AtomicU64); 7] = [
            (
                "oar_unauthenticated_requests_total",
                "Requests refused before the sender was authenticated.",
                &unauthenticated,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_labels_are_fixed_names() {
        let m = Metrics::default();
        m.run_seconds.observe(std::time::Duration::from_millis(300));
        m.run_seconds.observe(std::time::Duration::from_secs(3));
        m.run_seconds.observe(std::time::Duration::from_secs(1000));
        m.unauthenticated_because(AuthFailure::BodyDigest);
        m.refused("budget_exhausted");
        m.refused("no such kind");
        let text = m.render_all(&JobGauges {
            by_state: vec![("queued".into(), 2), ("succeeded".into(), 5)],
            epsilon_spent: vec![("cdr".into(), 1.5), ("odd\"name".into(), 0.0)],
        });
        for line in [
            "oar_run_duration_seconds_bucket{le=\"0.25\"} 0",
            "oar_run_duration_seconds_bucket{le=\"0.5\"} 1",
            "oar_run_duration_seconds_bucket{le=\"5\"} 2",
            "oar_run_duration_seconds_bucket{le=\"300\"} 2",
            "oar_run_duration_seconds_bucket{le=\"+Inf\"} 3",
            "oar_run_duration_seconds_count 3",
            "oar_unauthenticated_requests_total 1",
            "oar_auth_failures_total{reason=\"body_digest\"} 1",
            "oar_query_refusals_total{reason=\"budget_exhausted\"} 1",
            "oar_jobs{state=\"succeeded\"} 5",
            "oar_queue_depth 2",
            "oar_epsilon_spent{dataset=\"cdr\"} 1.5",
            "oar_epsilon_spent{dataset=\"odd\\\"name\"} 0",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
