//! The data holder's policy: trust roots, privacy parameters and resource limits.
//!
//! Loaded from a TOML file (see `policies/example.toml`, which documents every field). A policy
//! can only make the system stricter than the built-in floor: `min_units` below 10 is refused.
//! Every error names the file, the line (where there is one) and what to change.

use crate::keys::PublicKey;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The floor on the minimum number of distinct units per released cell.
pub const MIN_UNITS_FLOOR: u64 = 10;

/// A holder's policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Fewest distinct privacy units a released cell may have (at least 10).
    #[serde(default = "default_min_units")]
    pub min_units: u64,
    /// Probability bound that any cell below `min_units` would pass the noisy threshold in one
    /// release; the hard check then removes it anyway (see PRIVACY notes in `gate`).
    #[serde(default = "default_delta0")]
    pub delta0: f64,
    /// The dominance rule for sums (`[dominance] n = 2, k = 0.9`, the default);
    /// `dominance = false` is not accepted: to relax it, raise `k` to 1.0.
    #[serde(default)]
    pub dominance: crate::gate::Dominance,
    /// The data holder itself: its key signs releases and may sign revocation lists.
    #[serde(default)]
    pub holder: Option<Party>,
    /// Resource limits per run.
    #[serde(default)]
    pub limits: Limits,
    /// Privacy budgets.
    #[serde(default)]
    pub budget: Budget,
    /// Public bodies whose signed modules may be submitted, and for which datasets.
    #[serde(default)]
    pub authors: Vec<Author>,
    /// The ethics committee.
    pub committee: Committee,
    /// Who may request runs, and on which datasets.
    #[serde(default)]
    pub requesters: Vec<Requester>,
    /// Per-dataset rules, keyed by dataset name (`[datasets.cdr]`).
    #[serde(default)]
    pub datasets: BTreeMap<String, DatasetPolicy>,
}

fn default_min_units() -> u64 {
    MIN_UNITS_FLOOR
}
fn default_delta0() -> f64 {
    1e-9
}

/// The smallest `limits.min_epsilon_per_query` a policy may set. Below it, noise scales grow so
/// large that a query answers nothing useful, and the policy refuses to admit them.
pub const MIN_EPSILON_FLOOR: f64 = 1e-9;

/// Resource limits applied to every run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Memory cap per module instance, in MiB: all its linear memories and tables together.
    pub memory_mib: u64,
    /// Wall-clock deadline of a run, in milliseconds, from its start (compiling included): guest
    /// code, host calls and queries all end there, with a trap.
    pub time_ms: u64,
    /// Most queries one run may make; refused queries count too, so refusals cannot be used as a
    /// free, unlimited oracle.
    pub max_queries_per_run: u32,
    /// Smallest epsilon one query may ask for. A plan below it is refused before any data is
    /// touched. At least [`MIN_EPSILON_FLOOR`], so every noise scale the gate calibrates stays in
    /// the range where its threshold arithmetic is exact enough (see `gate::threshold`).
    pub min_epsilon_per_query: f64,
    /// Most cells (public key domain size) one query may produce.
    pub max_output_cells: usize,
    /// Largest `max_groups_per_unit` a plan may ask for.
    pub max_groups_per_unit: u32,
    /// Most tables one run may emit.
    pub max_output_tables: usize,
    /// Runs the server executes at the same time.
    pub concurrent_runs: usize,
    /// Runs one requester may submit per hour (the server answers 429 beyond it).
    pub runs_per_requester_per_hour: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_mib: 128,
            time_ms: 30_000,
            max_queries_per_run: 32,
            min_epsilon_per_query: 1e-3,
            max_output_cells: 100_000,
            max_groups_per_unit: 256,
            max_output_tables: 16,
            concurrent_runs: 2,
            runs_per_requester_per_hour: 60,
        }
    }
}

/// Budget settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Budget {
    /// Total epsilon each requester may spend on each dataset.
    pub epsilon_per_requester_dataset: f64,
    /// The calendar period over which `epsilon_per_period` renews (`day`, `month`, `year`).
    pub period: Option<crate::ledger::Period>,
    /// Epsilon each requester may spend on each dataset per period (needs `period`).
    pub epsilon_per_period: Option<f64>,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            epsilon_per_requester_dataset: 10.0,
            period: None,
            epsilon_per_period: None,
        }
    }
}

impl Budget {
    /// The per-period cap, if the policy sets one.
    pub fn period_cap(&self) -> Option<crate::ledger::PeriodCap> {
        Some(crate::ledger::PeriodCap {
            period: self.period?,
            epsilon: self.epsilon_per_period?,
        })
    }
}

/// A named key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Party {
    /// Who.
    pub name: String,
    /// Their public key.
    pub key: PublicKey,
}

/// A public body whose researchers author modules.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Author {
    /// Who.
    pub name: String,
    /// Their public key.
    pub key: PublicKey,
    /// Datasets their modules may read (`"*"` for any registered dataset).
    pub datasets: Vec<String>,
}

impl Author {
    /// Whether modules by this author may read `dataset`.
    pub fn may_read(&self, dataset: &str) -> bool {
        self.datasets.iter().any(|d| d == "*" || d == dataset)
    }
}

/// Rules for one dataset, on top of the global ones.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetPolicy {
    /// Columns no module may read, whatever its approval says.
    #[serde(default)]
    pub deny_columns: Vec<String>,
    /// A higher minimum cell size for this dataset (at least the global `min_units`).
    #[serde(default)]
    pub min_units: Option<u64>,
    /// A different total epsilon per requester for this dataset.
    #[serde(default)]
    pub epsilon_per_requester: Option<f64>,
}

/// The ethics committee: its members and how many must sign.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Committee {
    /// Signatures needed (k of n).
    pub quorum: usize,
    /// The members.
    pub members: Vec<Party>,
}

/// A requester and what it may query.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requester {
    /// Who.
    pub name: String,
    /// Their public key.
    pub key: PublicKey,
    /// Datasets they may query.
    pub datasets: Vec<String>,
}

impl Requester {
    /// Whether the policy lets this requester query `dataset`.
    pub fn may_query(&self, dataset: &str) -> bool {
        self.datasets.iter().any(|d| d == dataset)
    }
}

/// Errors loading a policy.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read.
    #[error("policy {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The TOML did not parse or a field has the wrong type (the message names line and column).
    #[error("policy {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// A value is out of range or inconsistent with another.
    #[error("policy {path}{}: {field} {problem}", line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid {
        /// The file.
        path: String,
        /// The 1-based line of the offending field (or its table), when it is in the file.
        line: Option<usize>,
        /// The field, as a TOML path (`committee.quorum`, `authors[0].datasets`).
        field: String,
        /// What is wrong and what to do.
        problem: String,
    },
}

impl Policy {
    /// Loads and checks a policy file.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Io {
            path: shown.clone(),
            source,
        })?;
        Self::from_toml(&text, &shown)
    }

    /// Parses and checks policy TOML; `origin` names the source in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, PolicyError> {
        let policy: Policy = toml::from_str(text).map_err(|e| PolicyError::Parse {
            path: origin.to_string(),
            message: parse_message(text, &e),
        })?;
        policy
            .check()
            .map_err(|(field, problem)| PolicyError::Invalid {
                path: origin.to_string(),
                line: locate(text, &field),
                field,
                problem,
            })?;
        Ok(policy)
    }

    /// Checks values and cross-references; on failure returns the field path and the fix.
    fn check(&self) -> Result<(), (String, String)> {
        let bad = |field: &str, problem: String| Err((field.to_string(), problem));
        if self.min_units < MIN_UNITS_FLOOR {
            return bad(
                "min_units",
                format!(
                    "is {}; it may only raise the floor of {MIN_UNITS_FLOOR}: set it to {MIN_UNITS_FLOOR} or more",
                    self.min_units
                ),
            );
        }
        if !(self.delta0 > 0.0 && self.delta0 <= 1e-6) {
            return bad(
                "delta0",
                format!("is {}; use a value in (0, 1e-6], e.g. 1e-9", self.delta0),
            );
        }
        let n = self.committee.members.len();
        if self.committee.quorum == 0 || self.committee.quorum > n {
            return bad(
                "committee.quorum",
                format!(
                    "is {} with {n} member(s) listed; set it between 1 and {n}, or add [[committee.members]]",
                    self.committee.quorum
                ),
            );
        }
        let d = self.dominance;
        if !(1..=crate::query::DOMINANCE_TOP).contains(&d.n) {
            return bad(
                "dominance.n",
                format!(
                    "is {}; use 1 to {} (the default is 2)",
                    d.n,
                    crate::query::DOMINANCE_TOP
                ),
            );
        }
        if !(d.k > 0.0 && d.k <= 1.0) {
            return bad(
                "dominance.k",
                format!("is {}; use a share in (0, 1] (the default is 0.9)", d.k),
            );
        }
        let mut member_keys = BTreeSet::new();
        for (i, m) in self.committee.members.iter().enumerate() {
            if !member_keys.insert(m.key) {
                return bad(
                    &format!("committee.members[{i}].key"),
                    format!(
                        "repeats another member's key; each member needs their own key or one person would count twice toward the quorum ({})",
                        m.name
                    ),
                );
            }
        }
        let epsilon_ok = |e: f64| e.is_finite() && e >= 0.0;
        if !epsilon_ok(self.budget.epsilon_per_requester_dataset) {
            return bad(
                "budget.epsilon_per_requester_dataset",
                format!(
                    "is {}; it must be a finite number >= 0",
                    self.budget.epsilon_per_requester_dataset
                ),
            );
        }
        match (self.budget.period, self.budget.epsilon_per_period) {
            (Some(_), None) | (None, Some(_)) => {
                return bad(
                    "budget.epsilon_per_period",
                    "and budget.period go together: set both (e.g. period = \"month\", epsilon_per_period = 2.0) or neither".into(),
                )
            }
            (_, Some(e)) if !epsilon_ok(e) => {
                return bad(
                    "budget.epsilon_per_period",
                    format!("is {e}; it must be a finite number >= 0"),
                )
            }
            _ => {}
        }
        if self.limits.memory_mib == 0 {
            return bad("limits.memory_mib", "must be positive, e.g. 128".into());
        }
        if self.limits.time_ms == 0 {
            return bad("limits.time_ms", "must be positive, e.g. 30000".into());
        }
        if self.limits.max_queries_per_run == 0 {
            return bad(
                "limits.max_queries_per_run",
                "must be positive, e.g. 16".into(),
            );
        }
        let min_eps = self.limits.min_epsilon_per_query;
        if !(min_eps.is_finite() && min_eps >= MIN_EPSILON_FLOOR) {
            return bad(
                "limits.min_epsilon_per_query",
                format!(
                    "is {min_eps}; it must be at least {MIN_EPSILON_FLOOR} (the default is 0.001)"
                ),
            );
        }
        if self.limits.concurrent_runs == 0 || self.limits.runs_per_requester_per_hour == 0 {
            return bad(
                "limits",
                "concurrent_runs and runs_per_requester_per_hour must be positive".into(),
            );
        }
        if self.limits.max_output_cells == 0 || self.limits.max_output_tables == 0 {
            return bad(
                "limits",
                "max_output_cells and max_output_tables must be positive".into(),
            );
        }
        for (i, a) in self.authors.iter().enumerate() {
            if a.datasets.is_empty() {
                return bad(
                    &format!("authors[{i}].datasets"),
                    format!(
                        "is empty, so {} could submit nothing; list dataset names, or \"*\" for any",
                        a.name
                    ),
                );
            }
        }
        let mut names = BTreeSet::new();
        let mut keys = BTreeSet::new();
        for (i, r) in self.requesters.iter().enumerate() {
            if !names.insert(r.name.as_str()) {
                return bad(
                    &format!("requesters[{i}].name"),
                    format!(
                        "'{}' is listed twice; requester names must be unique",
                        r.name
                    ),
                );
            }
            // A signed request names its signer by key alone: one key, one requester.
            if !keys.insert(r.key) {
                return bad(
                    &format!("requesters[{i}].key"),
                    format!(
                        "is also the key of another requester; each requester needs its own key ('{}')",
                        r.name
                    ),
                );
            }
        }
        for (name, d) in &self.datasets {
            if let Some(m) = d.min_units {
                if m < self.min_units {
                    return bad(
                        &format!("datasets.{name}.min_units"),
                        format!(
                            "is {m}, below the global min_units {}; a dataset may only raise it",
                            self.min_units
                        ),
                    );
                }
            }
            if let Some(e) = d.epsilon_per_requester {
                if !epsilon_ok(e) {
                    return bad(
                        &format!("datasets.{name}.epsilon_per_requester"),
                        format!("is {e}; it must be a finite number >= 0"),
                    );
                }
            }
        }
        Ok(())
    }

    /// The committee member with `key`, if any.
    pub fn member(&self, key: &PublicKey) -> Option<&Party> {
        self.committee.members.iter().find(|m| &m.key == key)
    }

    /// The trusted author with `key`, if any.
    pub fn author(&self, key: &PublicKey) -> Option<&Author> {
        self.authors.iter().find(|a| &a.key == key)
    }

    /// The requester called `name`, if any.
    pub fn requester(&self, name: &str) -> Option<&Requester> {
        self.requesters.iter().find(|r| r.name == name)
    }

    /// The minimum cell size on `dataset` (the dataset's own rule if it raises the global one).
    pub fn min_units_for(&self, dataset: &str) -> u64 {
        self.datasets
            .get(dataset)
            .and_then(|d| d.min_units)
            .unwrap_or(self.min_units)
            .max(self.min_units)
    }

    /// The total epsilon each requester may spend on `dataset`.
    pub fn epsilon_per_requester(&self, dataset: &str) -> f64 {
        self.datasets
            .get(dataset)
            .and_then(|d| d.epsilon_per_requester)
            .unwrap_or(self.budget.epsilon_per_requester_dataset)
    }

    /// The budget account of `requester` on `dataset`: its total and any per-period cap.
    pub fn requester_account(&self, requester: &str, dataset: &str) -> crate::ledger::Account {
        crate::ledger::Account::requester(requester, dataset, self.epsilon_per_requester(dataset))
            .with_period(self.budget.period_cap())
    }

    /// Whether the policy forbids reading `column` of `dataset`.
    pub fn column_denied(&self, dataset: &str, column: &str) -> bool {
        self.datasets
            .get(dataset)
            .is_some_and(|d| d.deny_columns.iter().any(|c| c == column))
    }
}

/// The parties of a fresh installation (`oar demo`, the first `oar serve`): one trusted
/// author, three committee members (quorum 2), one requester for dataset `cdr`, and the holder,
/// each with a new random key.
pub struct StarterParties {
    /// The author (a public body's researcher).
    pub author: crate::keys::KeyPair,
    /// The ethics committee.
    pub members: Vec<crate::keys::KeyPair>,
    /// The statistical office.
    pub requester: crate::keys::KeyPair,
    /// The data holder.
    pub holder: crate::keys::KeyPair,
}

impl StarterParties {
    /// New random keys for everyone.
    pub fn generate() -> Self {
        use crate::keys::KeyPair;
        StarterParties {
            author: KeyPair::generate("author"),
            members: (1..=3)
                .map(|i| KeyPair::generate(&format!("committee-{i}")))
                .collect(),
            requester: KeyPair::generate("stats-office"),
            holder: KeyPair::generate("holder"),
        }
    }

    /// Writes every key pair into `dir` (`NAME.key`, mode 0600, and `NAME.pub`).
    pub fn write_keys(&self, dir: &Path) -> Result<(), crate::keys::KeyError> {
        std::fs::create_dir_all(dir).map_err(|source| crate::keys::KeyError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        for k in std::iter::once(&self.author)
            .chain(&self.members)
            .chain([&self.requester, &self.holder])
        {
            k.write(dir)?;
        }
        Ok(())
    }

    /// A complete policy trusting these parties, with the default limits. `made_by` names the
    /// command in the file's first comment.
    pub fn policy(&self, made_by: &str) -> String {
        let mut s = format!(
            "# Holder policy written by `{made_by}` (see policies/example.toml for every field).\n\
             min_units = 10\ndelta0 = 1e-9\n\n[limits]\nmemory_mib = 128\ntime_ms = 30000\n\
             max_queries_per_run = 16\nmax_output_cells = 100000\nmax_groups_per_unit = 64\nmax_output_tables = 8\n\
             concurrent_runs = 2\nruns_per_requester_per_hour = 60\n\n\
             [budget]\nepsilon_per_requester_dataset = 10.0\n\n"
        );
        s.push_str(&format!(
            "[holder]\nname = \"{}\"\nkey = \"{}\"\n\n",
            self.holder.name(),
            self.holder.public()
        ));
        s.push_str(&format!(
            "[[authors]]\nname = \"Office for Statistics (example)\"\nkey = \"{}\"\ndatasets = [\"cdr\"]\n\n",
            self.author.public()
        ));
        s.push_str(&format!(
            "[committee]\nquorum = {}\n",
            2.min(self.members.len())
        ));
        for m in &self.members {
            s.push_str(&format!(
                "\n[[committee.members]]\nname = \"{}\"\nkey = \"{}\"\n",
                m.name(),
                m.public()
            ));
        }
        s.push_str(&format!(
            "\n[[requesters]]\nname = \"{}\"\nkey = \"{}\"\ndatasets = [\"cdr\"]\n",
            self.requester.name(),
            self.requester.public()
        ));
        s
    }
}

/// The parser's message, with a hint for the mistakes people make most.
fn parse_message(text: &str, e: &toml::de::Error) -> String {
    let mut message = e.message().to_string();
    if let Some(span) = e.span() {
        let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
        message = format!("line {line}: {message}");
    }
    if message.contains("unknown field") {
        message.push_str(
            " (check the spelling against policies/example.toml, which documents every field)",
        );
    } else if message.contains("missing field") {
        message.push_str(" (add it; policies/example.toml shows each field with an example)");
    } else if message.contains("public key") || message.contains("hex") {
        message.push_str(" (keys are 64 hex digits; `oar keygen NAME` prints one)");
    }
    message
}

/// The 1-based line where the TOML path `field` (e.g. `committee.quorum`, `authors[1].datasets`,
/// `datasets.cdr.min_units`) is set, or where its nearest enclosing table starts.
pub fn locate(text: &str, field: &str) -> Option<usize> {
    let mut table = String::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut best: Option<usize> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if let Some(name) = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]")) {
            let name = name.trim().to_string();
            let n = counts.entry(name.clone()).or_insert(0);
            table = format!("{name}[{n}]");
            *n += 1;
            // Nested arrays of tables inherit their parent's index (`committee.members[2]`).
            if field == table || field.starts_with(&format!("{table}.")) {
                best = Some(i + 1);
            }
        } else if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            table = name.trim().to_string();
            if field == table || field.starts_with(&format!("{table}.")) {
                best = Some(i + 1);
            }
        } else if let Some((key, _)) = line.split_once('=') {
            let key = key.trim().trim_matches('"');
            let path = if table.is_empty() {
                key.to_string()
            } else {
                format!("{table}.{key}")
            };
            if path == field {
                return Some(i + 1);
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [committee]
        quorum = 1
        [[committee.members]]
        name = "m"
        key = "KEY"
    "#;

    fn key() -> String {
        crate::keys::KeyPair::from_seed("m", "m").public().to_hex()
    }

    #[test]
    fn min_units_below_ten_is_refused() {
        let text = format!("min_units = 9\n{}", MINIMAL.replace("KEY", &key()));
        let err = Policy::from_toml(&text, "p.toml").unwrap_err();
        assert!(err.to_string().contains("min_units is 9"), "{err}");
    }

    #[test]
    fn parse_errors_name_file_and_line() {
        let text = format!("min_units = \"ten\"\n{}", MINIMAL.replace("KEY", &key()));
        let err = Policy::from_toml(&text, "p.toml").unwrap_err().to_string();
        assert!(
            err.starts_with("policy p.toml:") && err.contains("line 1"),
            "{err}"
        );
    }

    #[test]
    fn two_requesters_with_one_key_are_refused() {
        // Finding 12.10: a signed request names its signer by key, so a shared key made two
        // requesters indistinguishable (the first listed won every request).
        let text = format!(
            "{}\n[[requesters]]\nname = \"a\"\nkey = \"KEY\"\ndatasets = []\n[[requesters]]\nname = \"b\"\nkey = \"KEY\"\ndatasets = []\n",
            MINIMAL
        )
        .replace("KEY", &key());
        let err = Policy::from_toml(&text, "p").unwrap_err().to_string();
        assert!(err.contains("requesters[1].key"), "{err}");
    }

    #[test]
    fn quorum_larger_than_committee_is_refused() {
        let text = MINIMAL
            .replace("KEY", &key())
            .replace("quorum = 1", "quorum = 2");
        assert!(Policy::from_toml(&text, "p").is_err());
    }
}

#[cfg(test)]
mod example_policy {
    use super::*;
    use crate::keys::KeyPair;

    #[test]
    fn the_example_policy_loads_and_its_keys_come_from_the_documented_seeds() {
        let p = Policy::from_toml(
            include_str!("../../policies/example.toml"),
            "policies/example.toml",
        )
        .unwrap();
        assert_eq!(
            p.authors[0].key,
            KeyPair::from_seed("a", "example author").public()
        );
        for (i, m) in p.committee.members.iter().enumerate() {
            assert_eq!(
                m.key,
                KeyPair::from_seed("m", &format!("example member {}", i + 1)).public()
            );
        }
        assert_eq!(
            p.requesters[0].key,
            KeyPair::from_seed("r", "example requester").public()
        );
        assert_eq!(
            p.holder.as_ref().unwrap().key,
            KeyPair::from_seed("h", "example holder").public()
        );
        assert_eq!((p.committee.quorum, p.min_units), (2, 10));
        assert!(p.column_denied("cdr", "cell_id"));
    }
}
