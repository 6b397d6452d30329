//! The data holder's policy: trust roots, privacy parameters and resource limits.
//!
//! Loaded from a TOML file (see `policies/example.toml`, which documents every field). A policy
//! can only make the system stricter than the built-in floor: `min_units` below 10 is refused.

use crate::keys::PublicKey;
use serde::{Deserialize, Serialize};
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
    /// Resource limits per run.
    #[serde(default)]
    pub limits: Limits,
    /// Privacy budgets.
    #[serde(default)]
    pub budget: Budget,
    /// Public bodies whose signed modules may be submitted.
    #[serde(default)]
    pub authors: Vec<Party>,
    /// The ethics committee.
    pub committee: Committee,
    /// Who may request runs, and on which datasets.
    #[serde(default)]
    pub requesters: Vec<Requester>,
}

fn default_min_units() -> u64 {
    MIN_UNITS_FLOOR
}
fn default_delta0() -> f64 {
    1e-9
}

/// Resource limits applied to every run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Linear memory cap per module instance, in MiB.
    pub memory_mib: u64,
    /// Wall-clock deadline of a run, in milliseconds (guest code; host queries are checked
    /// against it between calls).
    pub time_ms: u64,
    /// Most queries one run may make.
    pub max_queries_per_run: u32,
    /// Most cells (public key domain size) one query may produce.
    pub max_output_cells: usize,
    /// Largest `max_groups_per_unit` a plan may ask for.
    pub max_groups_per_unit: u32,
    /// Most tables one run may emit.
    pub max_output_tables: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_mib: 128,
            time_ms: 30_000,
            max_queries_per_run: 32,
            max_output_cells: 100_000,
            max_groups_per_unit: 256,
            max_output_tables: 16,
        }
    }
}

/// Budget settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Budget {
    /// Total epsilon each requester may spend on each dataset.
    pub epsilon_per_requester_dataset: f64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            epsilon_per_requester_dataset: 10.0,
        }
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
    /// A value is out of range.
    #[error("policy {path}: {field} {problem}")]
    Invalid {
        /// The file.
        path: String,
        /// The field.
        field: &'static str,
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
            message: e.to_string(),
        })?;
        policy.check(origin)?;
        Ok(policy)
    }

    fn check(&self, origin: &str) -> Result<(), PolicyError> {
        let invalid = |field, problem: String| PolicyError::Invalid {
            path: origin.to_string(),
            field,
            problem,
        };
        if self.min_units < MIN_UNITS_FLOOR {
            return Err(invalid(
                "min_units",
                format!(
                    "is {}; it may only raise the floor of {MIN_UNITS_FLOOR}",
                    self.min_units
                ),
            ));
        }
        if !(self.delta0 > 0.0 && self.delta0 <= 1e-6) {
            return Err(invalid(
                "delta0",
                format!("is {}; use a value in (0, 1e-6]", self.delta0),
            ));
        }
        let n = self.committee.members.len();
        if self.committee.quorum == 0 || self.committee.quorum > n {
            return Err(invalid(
                "committee.quorum",
                format!(
                    "is {} with {n} members; it must be between 1 and {n}",
                    self.committee.quorum
                ),
            ));
        }
        if !(self.budget.epsilon_per_requester_dataset.is_finite()
            && self.budget.epsilon_per_requester_dataset >= 0.0)
        {
            return Err(invalid(
                "budget.epsilon_per_requester_dataset",
                "must be a number >= 0".into(),
            ));
        }
        if self.limits.memory_mib == 0 || self.limits.time_ms == 0 {
            return Err(invalid(
                "limits",
                "memory_mib and time_ms must be positive".into(),
            ));
        }
        Ok(())
    }

    /// The committee member with `key`, if any.
    pub fn member(&self, key: &PublicKey) -> Option<&Party> {
        self.committee.members.iter().find(|m| &m.key == key)
    }

    /// The trusted author with `key`, if any.
    pub fn author(&self, key: &PublicKey) -> Option<&Party> {
        self.authors.iter().find(|a| &a.key == key)
    }

    /// The requester called `name`, if any.
    pub fn requester(&self, name: &str) -> Option<&Requester> {
        self.requesters.iter().find(|r| r.name == name)
    }
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
        assert_eq!((p.committee.quorum, p.min_units), (2, 10));
    }
}
