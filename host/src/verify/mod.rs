//! Verification: the only way to obtain a [`VerifiedModule`].
//!
//! Code that runs a module takes a `VerifiedModule`, whose fields are private and which only
//! [`verify`] constructs, so no path can run a component whose bundle signature, approval quorum,
//! hashes or validity window have not been checked.

use crate::approval::{Approval, ApprovalRecord, APPROVAL_CONTEXT};
use crate::bundle::{Bundle, Manifest, BUNDLE_CONTEXT};
use crate::keys::{sha256, PublicKey};
use crate::policy::Policy;
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Why a module may not run. Each refusal has its own variant.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VerifyError {
    /// The component bytes do not hash to the hash the bundle declares: edited after signing.
    #[error("component bytes were altered after signing: bundle declares {declared}, bytes hash to {actual}")]
    ComponentTampered {
        /// Hash in the bundle.
        declared: String,
        /// Hash of the bytes.
        actual: String,
    },
    /// The author's key is not among the policy's trusted authors.
    #[error("bundle is signed by {key}, which is not a trusted author in the policy; add it under [[authors]] if this public body may submit modules")]
    UntrustedAuthor {
        /// The key.
        key: PublicKey,
    },
    /// The author's signature does not verify over the bundle digest (the manifest or the
    /// component changed, or the signature is forged).
    #[error("author signature does not verify: the bundle was altered after signing or signed by another key")]
    BadAuthorSignature,
    /// The approval names a different component.
    #[error("approval is for module {approved}, but this bundle's component is {actual}")]
    ApprovalForOtherModule {
        /// Hash in the approval.
        approved: String,
        /// Hash of this component.
        actual: String,
    },
    /// The approval names a different manifest.
    #[error("approval is for manifest {approved}, but this bundle's manifest is {actual}; the manifest changed after review")]
    ApprovalForOtherManifest {
        /// Hash in the approval.
        approved: String,
        /// Hash of this manifest.
        actual: String,
    },
    /// Too few valid committee signatures.
    #[error("approval has {valid} valid committee signature(s), quorum is {quorum}{}", ignored_note(.ignored))]
    QuorumNotMet {
        /// Distinct valid member signatures.
        valid: usize,
        /// Signatures needed.
        quorum: usize,
        /// Why other signatures did not count.
        ignored: Vec<String>,
    },
    /// The approval's window has not started.
    #[error("approval is not valid until {valid_from}")]
    ApprovalNotYetValid {
        /// Start of the window.
        valid_from: DateTime<Utc>,
    },
    /// The approval's window has ended.
    #[error("approval expired at {valid_until}; the committee must renew it")]
    ApprovalExpired {
        /// End of the window.
        valid_until: DateTime<Utc>,
    },
    /// The approval is malformed (negative epsilon, window ends before it starts).
    #[error("approval record is invalid: {0}")]
    InvalidApproval(String),
}

fn ignored_note(ignored: &[String]) -> String {
    if ignored.is_empty() {
        String::new()
    } else {
        format!(" (not counted: {})", ignored.join("; "))
    }
}

/// A module whose bundle and approval verified against a policy at a point in time.
#[derive(Debug, Clone)]
pub struct VerifiedModule {
    module_hash: String,
    manifest: Manifest,
    approval: ApprovalRecord,
    approval_digest: String,
    signers: Vec<PublicKey>,
    component: Arc<[u8]>,
}

impl VerifiedModule {
    /// SHA-256 of the component (hex): the key of the compiled-code cache.
    pub fn module_hash(&self) -> &str {
        &self.module_hash
    }
    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    /// The approval record in force.
    pub fn approval(&self) -> &ApprovalRecord {
        &self.approval
    }
    /// Digest of the approval record (hex).
    pub fn approval_digest(&self) -> &str {
        &self.approval_digest
    }
    /// Committee members whose signatures counted.
    pub fn signers(&self) -> &[PublicKey] {
        &self.signers
    }
    /// The component bytes.
    pub fn component(&self) -> &[u8] {
        &self.component
    }
}

/// Checks `bundle` and `approval` against `policy` at time `now`.
///
/// Guarantees, if it returns `Ok`: the component bytes hash to the declared module hash; a trusted
/// author signed the component and manifest together; the approval names exactly this component
/// and manifest; at least `policy.committee.quorum` distinct roster members signed the approval
/// record (signatures by others, or repeated by one member, do not count); and `now` lies inside the
/// approval's validity window.
pub fn verify(
    bundle: &Bundle,
    approval: &Approval,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Result<VerifiedModule, VerifyError> {
    let actual = hex::encode(sha256(&bundle.component));
    if actual != bundle.module_hash {
        return Err(VerifyError::ComponentTampered {
            declared: bundle.module_hash.clone(),
            actual,
        });
    }
    if policy.author(&bundle.author_key).is_none() {
        return Err(VerifyError::UntrustedAuthor {
            key: bundle.author_key,
        });
    }
    if !bundle
        .author_key
        .verify(BUNDLE_CONTEXT, &bundle.digest(), &bundle.signature)
    {
        return Err(VerifyError::BadAuthorSignature);
    }
    let record = &approval.record;
    if record.module_hash != actual {
        return Err(VerifyError::ApprovalForOtherModule {
            approved: record.module_hash.clone(),
            actual,
        });
    }
    let manifest_hash = hex::encode(bundle.manifest.hash());
    if record.manifest_hash != manifest_hash {
        return Err(VerifyError::ApprovalForOtherManifest {
            approved: record.manifest_hash.clone(),
            actual: manifest_hash,
        });
    }
    if !(record.epsilon_per_run > 0.0 && record.epsilon_total >= record.epsilon_per_run) {
        return Err(VerifyError::InvalidApproval(format!(
            "epsilon_per_run {} must be positive and at most epsilon_total {}",
            record.epsilon_per_run, record.epsilon_total
        )));
    }
    if record.valid_until <= record.valid_from {
        return Err(VerifyError::InvalidApproval(
            "valid_until is not after valid_from".into(),
        ));
    }
    let signers = count_quorum(approval, policy)?;
    if now < record.valid_from {
        return Err(VerifyError::ApprovalNotYetValid {
            valid_from: record.valid_from,
        });
    }
    if now > record.valid_until {
        return Err(VerifyError::ApprovalExpired {
            valid_until: record.valid_until,
        });
    }
    Ok(VerifiedModule {
        module_hash: bundle.module_hash.clone(),
        manifest: bundle.manifest.clone(),
        approval: record.clone(),
        approval_digest: hex::encode(record.digest()),
        signers,
        component: Arc::from(bundle.component.as_slice()),
    })
}

/// Distinct roster members with a valid signature; errors if fewer than the quorum.
fn count_quorum(approval: &Approval, policy: &Policy) -> Result<Vec<PublicKey>, VerifyError> {
    let digest = approval.record.digest();
    let mut valid = BTreeSet::new();
    let mut ignored = Vec::new();
    for s in &approval.signatures {
        let short = &s.member.to_hex()[..12];
        if policy.member(&s.member).is_none() {
            ignored.push(format!("{short}… is not on the committee roster"));
        } else if !s.member.verify(APPROVAL_CONTEXT, &digest, &s.signature) {
            ignored.push(format!("{short}…'s signature does not verify"));
        } else if !valid.insert(s.member) {
            ignored.push(format!("{short}… signed more than once"));
        }
    }
    if valid.len() < policy.committee.quorum {
        return Err(VerifyError::QuorumNotMet {
            valid: valid.len(),
            quorum: policy.committee.quorum,
            ignored,
        });
    }
    Ok(valid.into_iter().collect())
}
