//! Verification: the only way to obtain a [`VerifiedModule`].
//!
//! Code that runs a module takes a `VerifiedModule`, whose fields are private and which only
//! [`verify`] constructs, so no path can run a component whose bundle signature, approval quorum,
//! hashes or validity window have not been checked. The one exception,
//! [`VerifiedModule::for_synthetic_review`], is crate-private and used only by
//! [`crate::dry_run::for_review`], which runs the module over synthetic data it writes itself.

use crate::approval::{Approval, ApprovalRecord, APPROVAL_CONTEXT};
use crate::bundle::{Bundle, Manifest, BUNDLE_CONTEXT};
use crate::keys::{sha256, PublicKey};
use crate::policy::Policy;
use crate::revocation::RevocationList;
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
    /// The manifest reads a dataset the policy does not let this author's modules read.
    #[error("module by {author} reads dataset '{dataset}', which the policy does not allow this author's modules to read; add it to the author's `datasets` in the policy if intended")]
    AuthorNotAllowed {
        /// The author's name in the policy.
        author: String,
        /// The dataset.
        dataset: String,
    },
    /// The approval's scope is wider than what the module declares.
    #[error("approval covers {what}, which the module's manifest does not declare; the committee can only approve what the manifest asks for")]
    ApprovalWiderThanManifest {
        /// The dataset or column.
        what: String,
    },
    /// The module (its component hash) is on the revocation list.
    #[error("module {module_hash} was revoked: {reason}")]
    ModuleRevoked {
        /// The module hash.
        module_hash: String,
        /// The reason on the list.
        reason: String,
    },
    /// The approval is on the revocation list.
    #[error("approval {digest} was revoked: {reason}")]
    ApprovalRevoked {
        /// The approval digest.
        digest: String,
        /// The reason on the list.
        reason: String,
    },
    /// A key the run depends on (the author's or the requester's) is on the revocation list.
    #[error("the {role}'s key {key} was revoked: {reason}")]
    KeyRevoked {
        /// "author" or "requester".
        role: &'static str,
        /// The key.
        key: PublicKey,
        /// The reason on the list.
        reason: String,
    },
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
    author_key: PublicKey,
    signatures: Approval,
    manifest: Manifest,
    approval: ApprovalRecord,
    approval_digest: String,
    signers: Vec<PublicKey>,
    component: Arc<[u8]>,
}

impl VerifiedModule {
    /// A module whose approval is still being signed, for a committee's dry run on synthetic
    /// data: the component, its author's signature and trust are checked as [`verify`] checks
    /// them, and the approval is signed by `dry_run_key` alone, a throwaway key that only the
    /// dry run's own policy lists (quorum 1). Crate-private, and called only by
    /// [`crate::dry_run::for_review`], whose catalogue holds nothing but synthetic data it wrote.
    /// Were such a module handed to a host over real data anyway, that host's policy would not
    /// count the throwaway signature, and the quorum check at the start of the job and before
    /// every query ([`VerifiedModule::check_revocations`]) would stop it.
    pub(crate) fn for_synthetic_review(
        bundle: &Bundle,
        record: &ApprovalRecord,
        policy: &Policy,
        dry_run_key: &crate::keys::KeyPair,
    ) -> Result<VerifiedModule, VerifyError> {
        let (actual, _) = check_bundle(bundle, policy)?;
        check_scope_within_manifest(record, &bundle.manifest)?;
        let mut signatures = Approval::new(record.clone());
        signatures.sign(dry_run_key);
        Ok(VerifiedModule {
            module_hash: actual,
            author_key: bundle.author_key,
            signatures,
            manifest: bundle.manifest.clone(),
            approval: record.clone(),
            approval_digest: hex::encode(record.digest()),
            signers: vec![dry_run_key.public()],
            component: Arc::from(bundle.component.as_slice()),
        })
    }

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

    /// Checks a run of the module for `requester` against a (possibly newer) revocation list:
    /// the module, its approval, its author, the members whose signatures made the quorum, and
    /// the requester's key if given. Hosts call this when a job starts and before every query,
    /// so a revocation stops queued and running jobs alike.
    pub fn check_revocations(
        &self,
        requester: Option<&PublicKey>,
        revoked: &RevocationList,
        policy: &Policy,
    ) -> Result<(), VerifyError> {
        check_revoked(
            &self.module_hash,
            &self.approval_digest,
            &self.author_key,
            revoked,
        )?;
        count_quorum(&self.signatures, policy, revoked)?;
        requester.map_or(Ok(()), |key| check_requester(key, revoked))
    }
}

/// Refuses a revoked module, approval or author key.
fn check_revoked(
    module_hash: &str,
    approval_digest: &str,
    author: &PublicKey,
    revoked: &RevocationList,
) -> Result<(), VerifyError> {
    use crate::revocation::RevokedKind;
    if let Some(e) = revoked.find(RevokedKind::Module, module_hash) {
        return Err(VerifyError::ModuleRevoked {
            module_hash: module_hash.to_string(),
            reason: e.reason.clone(),
        });
    }
    if let Some(e) = revoked.find(RevokedKind::Approval, approval_digest) {
        return Err(VerifyError::ApprovalRevoked {
            digest: approval_digest.to_string(),
            reason: e.reason.clone(),
        });
    }
    if let Some(e) = revoked.key(author) {
        return Err(VerifyError::KeyRevoked {
            role: "author",
            key: *author,
            reason: e.reason.clone(),
        });
    }
    Ok(())
}

/// Refuses a requester whose key was revoked.
pub fn check_requester(key: &PublicKey, revoked: &RevocationList) -> Result<(), VerifyError> {
    match revoked.key(key) {
        Some(e) => Err(VerifyError::KeyRevoked {
            role: "requester",
            key: *key,
            reason: e.reason.clone(),
        }),
        None => Ok(()),
    }
}

/// Checks `bundle` and `approval` against `policy` and the revocation list `revoked` at time `now`.
///
/// Guarantees, if it returns `Ok`: the component bytes hash to the declared module hash; a trusted
/// author signed the component and manifest together, and the policy lets that author's modules
/// read every dataset the manifest names; the approval names exactly this component and manifest
/// and its scope lies within the manifest's; at least `policy.committee.quorum` distinct roster
/// members signed the approval record (signatures by others, repeated by one member, or by a
/// revoked key do not count); neither the module, the approval nor the author's key is revoked;
/// and `now` lies inside the approval's validity window.
pub fn verify(
    bundle: &Bundle,
    approval: &Approval,
    policy: &Policy,
    revoked: &RevocationList,
    now: DateTime<Utc>,
) -> Result<VerifiedModule, VerifyError> {
    let (actual, author) = check_bundle(bundle, policy)?;
    if let Some(d) = bundle
        .manifest
        .datasets
        .iter()
        .find(|d| !author.may_read(&d.name))
    {
        return Err(VerifyError::AuthorNotAllowed {
            author: author.name.clone(),
            dataset: d.name.clone(),
        });
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
    check_scope_within_manifest(record, &bundle.manifest)?;
    let approval_digest = hex::encode(record.digest());
    check_revoked(&actual, &approval_digest, &bundle.author_key, revoked)?;
    let signers = count_quorum(approval, policy, revoked)?;
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
        author_key: bundle.author_key,
        signatures: approval.clone(),
        manifest: bundle.manifest.clone(),
        approval: record.clone(),
        approval_digest,
        signers,
        component: Arc::from(bundle.component.as_slice()),
    })
}

/// The bundle's own checks: its component hashes to the hash it declares (returned, hex), and
/// a trusted author (returned) signed it.
fn check_bundle<'p>(
    bundle: &Bundle,
    policy: &'p Policy,
) -> Result<(String, &'p crate::policy::Author), VerifyError> {
    let actual = hex::encode(sha256(&bundle.component));
    if actual != bundle.module_hash {
        return Err(VerifyError::ComponentTampered {
            declared: bundle.module_hash.clone(),
            actual,
        });
    }
    let Some(author) = policy.author(&bundle.author_key) else {
        return Err(VerifyError::UntrustedAuthor {
            key: bundle.author_key,
        });
    };
    if !bundle
        .author_key
        .verify(BUNDLE_CONTEXT, &bundle.digest(), &bundle.signature)
    {
        return Err(VerifyError::BadAuthorSignature);
    }
    Ok((actual, author))
}

/// Refuses an approval that covers datasets or columns the manifest does not declare.
fn check_scope_within_manifest(
    record: &ApprovalRecord,
    manifest: &Manifest,
) -> Result<(), VerifyError> {
    for d in &record.datasets {
        let Some(declared) = manifest.datasets.iter().find(|m| m.name == d.name) else {
            return Err(VerifyError::ApprovalWiderThanManifest {
                what: format!("dataset '{}'", d.name),
            });
        };
        if let Some(c) = d.columns.iter().find(|c| !declared.columns.contains(c)) {
            return Err(VerifyError::ApprovalWiderThanManifest {
                what: format!("column '{c}' of '{}'", d.name),
            });
        }
    }
    Ok(())
}

/// Distinct roster members with a valid, unrevoked signature; errors if fewer than the quorum.
fn count_quorum(
    approval: &Approval,
    policy: &Policy,
    revoked: &RevocationList,
) -> Result<Vec<PublicKey>, VerifyError> {
    let digest = approval.record.digest();
    let mut valid = BTreeSet::new();
    let mut ignored = Vec::new();
    for s in &approval.signatures {
        let short = &s.member.to_hex()[..12];
        if policy.member(&s.member).is_none() {
            ignored.push(format!("{short}… is not on the committee roster"));
        } else if let Some(e) = revoked.key(&s.member) {
            ignored.push(format!("{short}…'s key was revoked ({})", e.reason));
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
