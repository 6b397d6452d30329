//! Ethics approvals: a record of what a committee agreed, and its members' signatures.
//!
//! The record names the exact module (component hash and manifest hash), the purpose, the datasets
//! and columns in scope, epsilon per run and in total, and a validity window. Members sign the
//! digest of its canonical JSON ([`crate::canonical`]) in context [`APPROVAL_CONTEXT`]; the verifier counts distinct
//! valid signatures from the policy's committee roster against the quorum.

use crate::bundle::{Bundle, DatasetUse};
use crate::canonical::{timestamp::whole_seconds, to_canonical_json};
use crate::keys::{sha256_parts, KeyPair, PublicKey, Signature};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Signing context of approval signatures.
pub const APPROVAL_CONTEXT: &str = "oar-approval-v1";

/// What the committee agreed to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRecord {
    /// Module name (informative; the hashes are what bind).
    pub module_name: String,
    /// SHA-256 of the component, hex.
    pub module_hash: String,
    /// SHA-256 of the manifest's canonical JSON, hex.
    pub manifest_hash: String,
    /// The purpose the committee approved.
    pub purpose: String,
    /// Datasets and columns in scope.
    pub datasets: Vec<DatasetUse>,
    /// The most epsilon one run may spend.
    pub epsilon_per_run: f64,
    /// The most epsilon all runs under this approval may spend.
    pub epsilon_total: f64,
    /// Not valid before this instant.
    #[serde(with = "crate::canonical::timestamp")]
    pub valid_from: DateTime<Utc>,
    /// Not valid after this instant.
    #[serde(with = "crate::canonical::timestamp")]
    pub valid_until: DateTime<Utc>,
    /// Conditions attached by the committee (free text).
    #[serde(default)]
    pub conditions: String,
}

impl ApprovalRecord {
    /// A record for `bundle` taking scope and purpose from its manifest.
    pub fn for_bundle(
        bundle: &Bundle,
        epsilon_total: f64,
        valid_from: DateTime<Utc>,
        valid_until: DateTime<Utc>,
    ) -> Self {
        ApprovalRecord {
            module_name: bundle.manifest.name.clone(),
            module_hash: hex::encode(crate::keys::sha256(&bundle.component)),
            manifest_hash: hex::encode(bundle.manifest.hash()),
            purpose: bundle.manifest.purpose.clone(),
            datasets: bundle.manifest.datasets.clone(),
            epsilon_per_run: bundle.manifest.max_epsilon_per_run,
            epsilon_total,
            valid_from: whole_seconds(valid_from),
            valid_until: whole_seconds(valid_until),
            conditions: String::new(),
        }
    }

    /// The canonical bytes (RFC 8785 JSON, see [`crate::canonical`]) that signatures cover.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        to_canonical_json(self).expect("approval records have finite numbers")
    }

    /// The digest members sign: SHA-256 of the context followed by the canonical bytes.
    pub fn digest(&self) -> [u8; 32] {
        sha256_parts(&[APPROVAL_CONTEXT.as_bytes(), &self.canonical_bytes()])
    }
}

/// One committee member's signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberSignature {
    /// The member's key.
    pub member: PublicKey,
    /// Signature over [`ApprovalRecord::digest`].
    pub signature: Signature,
}

/// An approval record with the signatures collected so far.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Approval {
    /// What was agreed.
    pub record: ApprovalRecord,
    /// Who signed it.
    pub signatures: Vec<MemberSignature>,
}

/// Errors reading approvals.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// File I/O failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not a valid approval.
    #[error("{path} is not a valid approval: {reason}")]
    Malformed {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// A signature an approval carries that this holder does not accept.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MemberSignatureError {
    /// The key is not on the holder's committee roster.
    #[error("signature {index} (key {key}) is not by a member of this holder's committee")]
    NotAMember {
        /// Position in `signatures`.
        index: usize,
        /// The key.
        key: PublicKey,
    },
    /// The signature does not verify over the record.
    #[error("signature {index} (key {key}) does not verify over the approval record")]
    Invalid {
        /// Position in `signatures`.
        index: usize,
        /// The key.
        key: PublicKey,
    },
}

impl Approval {
    /// Checks that every signature is by a member of `policy`'s committee and verifies over
    /// the record; names the first that is not (what an upload must pass before it is stored).
    pub fn check_member_signatures(
        &self,
        policy: &crate::policy::Policy,
    ) -> Result<(), MemberSignatureError> {
        let digest = self.record.digest();
        for (index, sig) in self.signatures.iter().enumerate() {
            let key = sig.member;
            if policy.member(&key).is_none() {
                return Err(MemberSignatureError::NotAMember { index, key });
            }
            if !key.verify(APPROVAL_CONTEXT, &digest, &sig.signature) {
                return Err(MemberSignatureError::Invalid { index, key });
            }
        }
        Ok(())
    }

    /// Adds the signatures of `other` by members who have not signed this approval yet (the
    /// ones already here stay); returns how many were added.
    pub fn gain_signatures(&mut self, other: &Approval) -> usize {
        let mut added = 0;
        for sig in &other.signatures {
            if self.signatures.iter().all(|m| m.member != sig.member) {
                self.signatures.push(sig.clone());
                added += 1;
            }
        }
        added
    }

    /// An approval with no signatures yet.
    pub fn new(record: ApprovalRecord) -> Self {
        Approval {
            record,
            signatures: Vec::new(),
        }
    }

    /// Adds `member`'s signature (replacing an earlier one by the same key).
    pub fn sign(&mut self, member: &KeyPair) {
        let signature = member.sign(APPROVAL_CONTEXT, &self.record.digest());
        self.signatures.retain(|s| s.member != member.public());
        self.signatures.push(MemberSignature {
            member: member.public(),
            signature,
        });
    }

    /// Reads an approval file.
    pub fn read(path: &Path) -> Result<Self, ApprovalError> {
        let text = std::fs::read(path).map_err(|source| ApprovalError::Io {
            path: path.display().to_string(),
            source,
        })?;
        serde_json::from_slice(&text).map_err(|e| ApprovalError::Malformed {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// Writes the approval file.
    pub fn write(&self, path: &Path) -> Result<(), ApprovalError> {
        let json = serde_json::to_vec_pretty(self).expect("approvals serialize");
        std::fs::write(path, json).map_err(|source| ApprovalError::Io {
            path: path.display().to_string(),
            source,
        })
    }
}
