//! The audit log: append-only, hash-chained entries for every run, charge, release, refusal and
//! administrative act, with a head signed by the holder, so an auditor can check offline what
//! happened without trusting the holder's word.
//!
//! The log is a file of JSON lines. Entry `n` carries `prev`, the hash of entry `n - 1` (64 zeros
//! for the first). The writer encodes the entry without its hash as RFC 8785 JSON (`B`), and
//! writes the line `B` with `,"hash":"H"` inserted before its closing brace, where
//! `H = SHA-256(parts("oar-audit-v1", B))`. A verifier hashes the **exact bytes** on disk (the line
//! with that final member removed), never a re-serialization of parsed values, so no float or
//! string ever re-reads differently. After every append the holder signs the head
//! (`FILE.head.json`: last sequence number and hash, plus the byte offset where that entry ends,
//! a hint for the next start).
//!
//! Opening the log for appending starts from the signed head (constant work, whatever the log's
//! size): the entry the head names must still be where it was, entries written after it (a crash
//! between the two writes) must chain from it, and a line torn by a crash is dropped. A log cut
//! back behind its signed head is refused. [`verify`] streams the whole chain in constant memory
//! and reports the first entry that does not check; [`verify_since`] also proves the log was not
//! rewound behind a head a requester kept; [`export`] turns it into a public register of who ran
//! what, for which purpose, spending how much epsilon. Entries never hold data values: only ids,
//! hashes, names, epsilons and refusal reasons (which are written never to contain values).

mod read;

pub use read::{
    export, export_page, recent, verify, verify_since, verify_to, RegisterPage, RegisterRow,
    Verified,
};

use crate::canonical::{timestamp, to_canonical_json};
use crate::keys::{sha256_parts, KeyPair, PublicKey, Signature};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Hashing context of entries.
pub const AUDIT_CONTEXT: &str = "oar-audit-v1";
/// Signing context of the head.
pub const AUDIT_HEAD_CONTEXT: &str = "oar-audit-head-v1";
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A bundle or run was submitted.
    Submission,
    /// A module's signatures and approval were checked.
    Verification,
    /// A run started.
    RunStarted,
    /// Budget was charged.
    Charge,
    /// A release was produced (or an identical one returned again).
    Release,
    /// A run ended without a release.
    RunFailed,
    /// A request or query was refused.
    Refusal,
    /// An administrative act (dataset registered, list revoked, server started).
    Admin,
    /// An authentication failure.
    Auth,
}

/// An entry without its hash: what the hash covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryBody {
    /// Position in the log, from 1.
    pub seq: u64,
    /// When it was written.
    #[serde(with = "timestamp")]
    pub at: DateTime<Utc>,
    /// What it records.
    pub kind: EntryKind,
    /// Who acted (a requester, "holder", "committee", or a key).
    pub actor: String,
    /// Facts of the act (ids, hashes, epsilons; never data values).
    pub details: serde_json::Value,
    /// Hash of the previous entry.
    pub prev: String,
}

impl EntryBody {
    /// The exact bytes the writer puts on disk for this entry's body (RFC 8785 JSON).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        to_canonical_json(self).expect("audit entries encode canonically")
    }

    /// The entry's hash: over [`EntryBody::canonical_bytes`], which are the bytes written.
    pub fn hash(&self) -> String {
        hash_bytes(&self.canonical_bytes())
    }
}

/// `SHA-256(parts("oar-audit-v1", body))` in hex, over the exact bytes of an entry's body.
pub fn hash_bytes(body: &[u8]) -> String {
    hex::encode(sha256_parts(&[AUDIT_CONTEXT.as_bytes(), body]))
}

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// What is hashed.
    #[serde(flatten)]
    pub body: EntryBody,
    /// [`EntryBody::hash`].
    pub hash: String,
}

/// The signed head of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Head {
    /// Sequence number of the last entry (0 for an empty log).
    pub seq: u64,
    /// Hash of the last entry.
    pub hash: String,
    /// The holder's key.
    pub holder: PublicKey,
    /// Signature over [`head_digest`].
    pub signature: Signature,
    /// Byte offset in the log file where entry `seq` ends: where the next start begins
    /// checking. Not signed: a wrong offset only makes the next start refuse the log.
    #[serde(default)]
    pub end: u64,
}

impl Head {
    /// Whether `holder` signed this head.
    pub fn signed_by(&self, holder: &PublicKey) -> bool {
        &self.holder == holder
            && holder.verify(
                AUDIT_HEAD_CONTEXT,
                &head_digest(self.seq, &self.hash),
                &self.signature,
            )
    }

    /// Reads a head file.
    pub fn read(path: &Path) -> Result<Self, AuditError> {
        let bytes = std::fs::read(path)
            .map_err(|e| AuditError::Head(format!("{}: {e}", path.display())))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| AuditError::Head(format!("{} is malformed ({e})", path.display())))
    }
}

/// The digest the holder signs for a head.
pub fn head_digest(seq: u64, hash: &str) -> [u8; 32] {
    sha256_parts(&[
        AUDIT_HEAD_CONTEXT.as_bytes(),
        &seq.to_be_bytes(),
        hash.as_bytes(),
    ])
}

/// Errors writing or checking the log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// File I/O failed (a full disk, permissions). Writers fail closed on it.
    #[error("audit log {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// An entry does not check: the first one found, by line number (from 1).
    #[error("audit log broken at line {line}: {reason}")]
    Broken {
        /// The line.
        line: u64,
        /// What does not check.
        reason: String,
    },
    /// The head file is missing, malformed, unsigned by the holder, or does not match the log.
    #[error("audit head: {0}")]
    Head(String),
    /// The log no longer contains a head the holder signed earlier.
    #[error("audit log: {0}")]
    Rewound(String),
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The head file beside a log.
pub fn head_path(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".head.json");
    PathBuf::from(name)
}

/// The longest line the writer produces is far below this; a longer "line" is corruption.
const MAX_LINE_BYTES: u64 = 4 * 1024 * 1024;

/// An open log that entries are appended to.
pub struct AuditLog {
    path: PathBuf,
    holder: KeyPair,
    head: Mutex<Head>,
}

impl AuditLog {
    /// Opens (or creates) the log at `path` for appending, signing heads with `holder`.
    ///
    /// Work is constant in the log's size: the holder's signed head is checked, the entry it
    /// names must still end where it did, and entries after it (a crash between writing an
    /// entry and signing the head) must chain from it; they are then covered by a new head. A
    /// line torn by a crash mid-write is dropped (its append never returned, so its act never
    /// happened). A log cut back behind its signed head, or with entries but no head, is
    /// refused: the host does not append to a log it cannot vouch for. `oar audit verify`
    /// checks the whole chain.
    pub fn open(path: &Path, holder: KeyPair) -> Result<Self, AuditError> {
        let head_file = head_path(path);
        if !path.exists() {
            std::fs::File::create(path).map_err(io_err(path))?;
        }
        let len = std::fs::metadata(path).map_err(io_err(path))?.len();
        let start = if head_file.exists() {
            let head = Head::read(&head_file)?;
            if !head.signed_by(&holder.public()) {
                return Err(AuditError::Head(format!(
                    "{} is not signed by this holder's key {}",
                    head_file.display(),
                    holder.public()
                )));
            }
            read::check_signed_entry(path, &head, len)?;
            head
        } else if len == 0 {
            Head {
                seq: 0,
                hash: GENESIS.to_string(),
                holder: holder.public(),
                signature: holder.sign(AUDIT_HEAD_CONTEXT, &head_digest(0, GENESIS)),
                end: 0,
            }
        } else {
            return Err(AuditError::Head(format!(
                "{} holds entries but its signed head {} is missing; restore the head from a backup (the log is not appended to without it)",
                path.display(),
                head_file.display()
            )));
        };
        let tail = read::check_tail(path, &start)?;
        if let Some(torn) = tail.torn_at {
            tracing::warn!(
                log = %path.display(),
                bytes = len - torn,
                "dropping a line torn by a crash while it was written"
            );
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(io_err(path))?;
            f.set_len(torn).map_err(io_err(path))?;
            f.sync_data().map_err(io_err(path))?;
        }
        let log = AuditLog {
            path: path.to_path_buf(),
            holder,
            head: Mutex::new(start),
        };
        log.write_head(tail.at.seq, &tail.at.hash, tail.at.end)?;
        Ok(log)
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current signed head (what a requester keeps to detect a later rewind).
    pub fn head(&self) -> Head {
        self.head.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Appends an entry, durably, and re-signs the head. Fails closed: if it returns an error,
    /// the caller must not go on with the act it records.
    pub fn append(
        &self,
        kind: EntryKind,
        actor: &str,
        details: serde_json::Value,
    ) -> Result<Entry, AuditError> {
        let mut head = self.head.lock().unwrap_or_else(|p| p.into_inner());
        let body = EntryBody {
            seq: head.seq + 1,
            at: timestamp::whole_seconds(Utc::now()),
            kind,
            actor: actor.to_string(),
            details,
            prev: head.hash.clone(),
        };
        let bytes = body.canonical_bytes();
        let hash = hash_bytes(&bytes);
        let line = read::line(&bytes, &hash);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(io_err(&self.path))?;
        let end = head.end + line.len() as u64;
        let written = f
            .write_all(&line)
            .and_then(|()| f.sync_data())
            .map_err(io_err(&self.path));
        if let Err(e) = written {
            // Leave no partial line behind for the next append to chain onto.
            let _ = f.set_len(head.end);
            return Err(e);
        }
        *head = self.signed(body.seq, &hash, end);
        self.store_head(&head)?;
        Ok(Entry { body, hash })
    }

    /// Writes the closing `run_failed` entry of each run a crash cut short (the runs recovery
    /// marked failed), so that every run's trail ends.
    pub fn close_interrupted(&self, job_ids: &[String]) -> Result<(), AuditError> {
        for job_id in job_ids {
            self.append(
                EntryKind::RunFailed,
                "holder",
                serde_json::json!({
                    "job_id": job_id,
                    "reason": "interrupted: the host stopped during the run; charges for answers the module had received stand, the rest were refunded",
                }),
            )?;
        }
        Ok(())
    }

    fn signed(&self, seq: u64, hash: &str, end: u64) -> Head {
        Head {
            seq,
            hash: hash.to_string(),
            holder: self.holder.public(),
            signature: self
                .holder
                .sign(AUDIT_HEAD_CONTEXT, &head_digest(seq, hash)),
            end,
        }
    }

    fn write_head(&self, seq: u64, hash: &str, end: u64) -> Result<(), AuditError> {
        let head = self.signed(seq, hash, end);
        self.store_head(&head)?;
        *self.head.lock().unwrap_or_else(|p| p.into_inner()) = head;
        Ok(())
    }

    fn store_head(&self, head: &Head) -> Result<(), AuditError> {
        let path = head_path(&self.path);
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".partial");
        let tmp = PathBuf::from(tmp);
        let json = serde_json::to_vec_pretty(head).expect("heads serialize");
        std::fs::write(&tmp, json).map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io_err(&path))
    }
}
