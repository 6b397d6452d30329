//! Revocation: a signed list of modules, approvals and keys that may no longer be used.
//!
//! A [`RevocationList`] is valid when signed by the data holder's key (the policy's `[holder]`)
//! or by a quorum of the ethics committee, over the digest of its canonical JSON in context
//! [`REVOCATION_CONTEXT`]. Lists carry a serial number: a host only installs a list whose serial
//! is at least the one it has, so an old list cannot be replayed to un-revoke something.
//!
//! The host checks the installed list when it verifies a module, when a job starts (so queued
//! jobs stop too) and before every query a running module makes.

use crate::canonical::{timestamp, to_canonical_json};
use crate::keys::{sha256_parts, KeyPair, PublicKey, Signature};
use crate::policy::Policy;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::RwLock;

/// The largest serial: 2^53 - 1, the largest integer RFC 8785 encodes exactly.
pub const MAX_SERIAL: u64 = (1 << 53) - 1;

fn bounded_serial<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let serial = u64::deserialize(d)?;
    if serial > MAX_SERIAL {
        return Err(serde::de::Error::custom(format!(
            "serial {serial} is above {MAX_SERIAL} (2^53 - 1), the largest a signed list can carry"
        )));
    }
    Ok(serial)
}

/// Signing context of revocation lists.
pub const REVOCATION_CONTEXT: &str = "oar-revocation-v1";

/// What an entry revokes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokedKind {
    /// A module, by the SHA-256 of its component (hex).
    Module,
    /// An approval, by its digest (hex).
    Approval,
    /// A key (author, committee member or requester), hex. A revoked member's signatures stop
    /// counting toward quorums.
    Key,
}

/// One revoked item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revoked {
    /// What kind of item.
    pub kind: RevokedKind,
    /// Its identifier: a module hash, an approval digest or a public key, in hex.
    pub id: String,
    /// Why (shown in refusals and the audit log).
    pub reason: String,
    /// When it was revoked.
    #[serde(with = "timestamp")]
    pub revoked_at: DateTime<Utc>,
}

/// The revocation list body: what signatures cover.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationList {
    /// Increases with every change; a host refuses a list older than the one it holds. At most
    /// 2^53 - 1, the largest integer the canonical form (RFC 8785) encodes exactly.
    #[serde(deserialize_with = "bounded_serial")]
    pub serial: u64,
    /// When this version was issued.
    #[serde(with = "timestamp")]
    pub issued_at: DateTime<Utc>,
    /// The revoked items.
    pub entries: Vec<Revoked>,
}

/// One signature on a revocation list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListSignature {
    /// The signer (the holder or a committee member).
    pub key: PublicKey,
    /// Signature over [`RevocationList::digest`].
    pub signature: Signature,
}

/// A revocation list with its signatures, as stored in a file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignedRevocations {
    /// The list.
    pub list: RevocationList,
    /// Who signed it.
    pub signatures: Vec<ListSignature>,
}

/// Why a revocation list cannot be installed.
#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    /// File I/O failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not a revocation list.
    #[error("{path} is not a valid revocation list: {reason}")]
    Malformed {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Neither the holder nor a committee quorum signed this version of the list.
    #[error("revocation list serial {serial} is not signed by the holder or by {quorum} committee member(s) ({valid} valid member signature(s)); have it signed with `oar revoke sign`")]
    NotAuthorised {
        /// The list's serial.
        serial: u64,
        /// Valid member signatures found.
        valid: usize,
        /// Member signatures needed.
        quorum: usize,
    },
    /// The list is older than the one installed.
    #[error("revocation list serial {offered} is older than the installed serial {installed}; a list cannot be rolled back")]
    Rollback {
        /// Serial offered.
        offered: u64,
        /// Serial installed.
        installed: u64,
    },
    /// A list signed by the holder alone leaves out an installed entry: only a committee quorum
    /// may lift a revocation.
    #[error("revocation list serial {serial} leaves out the installed entry {kind:?} {id}; only a committee quorum may lift a revocation (the holder may only add)")]
    DropsEntry {
        /// The list's serial.
        serial: u64,
        /// The kind of the entry left out.
        kind: RevokedKind,
        /// Its id.
        id: String,
    },
    /// A serial equal to the installed one but with different content.
    #[error("revocation list serial {serial} differs from the installed list with the same serial; issue a new serial")]
    SerialReused {
        /// The serial.
        serial: u64,
    },
}

impl RevocationList {
    /// An empty list (serial 0), what a host starts with.
    pub fn empty() -> Self {
        RevocationList {
            serial: 0,
            issued_at: DateTime::<Utc>::UNIX_EPOCH,
            entries: Vec::new(),
        }
    }

    /// The digest signers sign: SHA-256 of the context and the canonical JSON.
    pub fn digest(&self) -> [u8; 32] {
        let bytes = to_canonical_json(self).expect("revocation lists have no floats");
        sha256_parts(&[REVOCATION_CONTEXT.as_bytes(), &bytes])
    }

    /// The entry revoking `kind`/`id`, if any.
    pub fn find(&self, kind: RevokedKind, id: &str) -> Option<&Revoked> {
        self.entries
            .iter()
            .find(|e| e.kind == kind && e.id.eq_ignore_ascii_case(id))
    }

    /// The entry revoking `key`, if any.
    pub fn key(&self, key: &PublicKey) -> Option<&Revoked> {
        self.find(RevokedKind::Key, &key.to_hex())
    }

    /// Adds an entry and starts a new version: the serial goes up and the issue time is `now`.
    pub fn add(&mut self, kind: RevokedKind, id: &str, reason: &str, now: DateTime<Utc>) {
        let now = timestamp::whole_seconds(now);
        if self.find(kind, id).is_none() {
            self.entries.push(Revoked {
                kind,
                id: id.to_ascii_lowercase(),
                reason: reason.to_string(),
                revoked_at: now,
            });
        }
        self.serial = (self.serial + 1).min(MAX_SERIAL);
        self.issued_at = now;
    }
}

impl SignedRevocations {
    /// An unsigned wrapper around `list`.
    pub fn new(list: RevocationList) -> Self {
        SignedRevocations {
            list,
            signatures: Vec::new(),
        }
    }

    /// Adds `signer`'s signature (replacing an earlier one by the same key).
    pub fn sign(&mut self, signer: &KeyPair) {
        let signature = signer.sign(REVOCATION_CONTEXT, &self.list.digest());
        self.signatures.retain(|s| s.key != signer.public());
        self.signatures.push(ListSignature {
            key: signer.public(),
            signature,
        });
    }

    /// Checks that the holder, or a quorum of distinct committee members, signed this list.
    pub fn check(&self, policy: &Policy) -> Result<(), RevocationError> {
        self.authority(policy).map(|_| ())
    }

    /// Who signed this list with authority: a committee quorum (which may lift revocations)
    /// or only the holder (who may only add them).
    pub fn authority(&self, policy: &Policy) -> Result<Authority, RevocationError> {
        let digest = self.list.digest();
        let valid = |s: &ListSignature| s.key.verify(REVOCATION_CONTEXT, &digest, &s.signature);
        let members: BTreeSet<PublicKey> = self
            .signatures
            .iter()
            .filter(|s| policy.member(&s.key).is_some() && valid(s))
            .map(|s| s.key)
            .collect();
        if members.len() >= policy.committee.quorum {
            return Ok(Authority::Committee);
        }
        if let Some(holder) = &policy.holder {
            if self
                .signatures
                .iter()
                .any(|s| s.key == holder.key && valid(s))
            {
                return Ok(Authority::Holder);
            }
        }
        Err(RevocationError::NotAuthorised {
            serial: self.list.serial,
            valid: members.len(),
            quorum: policy.committee.quorum,
        })
    }

    /// Reads a revocation file.
    pub fn read(path: &Path) -> Result<Self, RevocationError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| RevocationError::Io {
            path: shown.clone(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|e| RevocationError::Malformed {
            path: shown,
            reason: e.to_string(),
        })
    }

    /// Writes the revocation file (via a temporary file, so a crash never leaves half a list).
    pub fn write(&self, path: &Path) -> Result<(), RevocationError> {
        let io = |source| RevocationError::Io {
            path: path.display().to_string(),
            source,
        };
        let json = serde_json::to_vec_pretty(self).expect("revocation lists serialize");
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, json).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

/// Who gave a list its authority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authority {
    /// A quorum of the ethics committee: may add and lift revocations.
    Committee,
    /// The data holder alone: may add revocations, never lift one.
    Holder,
}

/// The host's installed revocation list, shared by every job and session.
#[derive(Debug)]
pub struct Revocations {
    current: RwLock<RevocationList>,
}

impl Default for Revocations {
    fn default() -> Self {
        Revocations {
            current: RwLock::new(RevocationList::empty()),
        }
    }
}

impl Revocations {
    /// A store holding the empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Installs `signed` after checking its signatures against `policy` and that it does not
    /// roll back the installed list. Takes effect for the next check in every running job.
    pub fn install(
        &self,
        signed: &SignedRevocations,
        policy: &Policy,
    ) -> Result<(), RevocationError> {
        let authority = signed.authority(policy)?;
        let mut current = self.current.write().expect("revocation lock");
        if signed.list.serial < current.serial {
            return Err(RevocationError::Rollback {
                offered: signed.list.serial,
                installed: current.serial,
            });
        }
        if signed.list.serial == current.serial && signed.list != *current {
            return Err(RevocationError::SerialReused {
                serial: current.serial,
            });
        }
        if authority == Authority::Holder {
            if let Some(gone) = current
                .entries
                .iter()
                .find(|e| signed.list.find(e.kind, &e.id).is_none())
            {
                return Err(RevocationError::DropsEntry {
                    serial: signed.list.serial,
                    kind: gone.kind,
                    id: gone.id.clone(),
                });
            }
        }
        *current = signed.list.clone();
        Ok(())
    }

    /// A copy of the installed list.
    pub fn snapshot(&self) -> RevocationList {
        self.current.read().expect("revocation lock").clone()
    }

    /// Runs `f` on the installed list.
    pub fn with<T>(&self, f: impl FnOnce(&RevocationList) -> T) -> T {
        f(&self.current.read().expect("revocation lock"))
    }
}
