//! The audit log: append-only, hash-chained entries for every run, charge, release, refusal and
//! administrative act, with a head signed by the holder, so an auditor can check offline what
//! happened without trusting the holder's word.
//!
//! The log is a file of JSON lines. Entry `n` carries `prev`, the hash of entry `n - 1` (64 zeros
//! for the first), and `hash = SHA-256(parts("oar-audit-v1", JCS(entry without hash)))`. After
//! every append the holder signs the head (`FILE.head.json`: last sequence number and hash).
//! [`verify`] recomputes the chain and reports the first entry that does not check; [`export`]
//! turns it into a public register of who ran what, for which purpose, spending how much
//! epsilon. Entries never hold data values: only ids, hashes, names, epsilons and refusal
//! reasons (which are written never to contain values).

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
    /// The entry's hash.
    pub fn hash(&self) -> String {
        let bytes = to_canonical_json(self).expect("audit entries encode canonically");
        hex::encode(sha256_parts(&[AUDIT_CONTEXT.as_bytes(), &bytes]))
    }
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

/// An open log that entries are appended to.
pub struct AuditLog {
    path: PathBuf,
    holder: KeyPair,
    state: Mutex<(u64, String)>,
}

impl AuditLog {
    /// Opens (or creates) the log at `path` for appending, signing heads with `holder`. An
    /// existing log must verify first: the host does not append to a broken chain. Entries
    /// after the last signed head (a crash between the two writes) are checked and then
    /// covered by a new signed head.
    pub fn open(path: &Path, holder: KeyPair) -> Result<Self, AuditError> {
        let (seq, hash) = if path.exists() {
            let entries = read_chain(path)?;
            entries
                .last()
                .map(|e| (e.body.seq, e.hash.clone()))
                .unwrap_or((0, GENESIS.to_string()))
        } else {
            std::fs::File::create(path).map_err(io_err(path))?;
            (0, GENESIS.to_string())
        };
        let log = AuditLog {
            path: path.to_path_buf(),
            holder,
            state: Mutex::new((seq, hash.clone())),
        };
        log.write_head(seq, &hash)?;
        Ok(log)
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends an entry, durably, and re-signs the head. Fails closed: if it returns an error,
    /// the caller must not go on with the act it records.
    pub fn append(
        &self,
        kind: EntryKind,
        actor: &str,
        details: serde_json::Value,
    ) -> Result<Entry, AuditError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let body = EntryBody {
            seq: state.0 + 1,
            at: timestamp::whole_seconds(Utc::now()),
            kind,
            actor: actor.to_string(),
            details,
            prev: state.1.clone(),
        };
        let entry = Entry {
            hash: body.hash(),
            body,
        };
        let mut line = serde_json::to_string(&entry).expect("entries serialize");
        line.push('\n');
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(io_err(&self.path))?;
        f.write_all(line.as_bytes()).map_err(io_err(&self.path))?;
        f.sync_data().map_err(io_err(&self.path))?;
        *state = (entry.body.seq, entry.hash.clone());
        self.write_head(entry.body.seq, &entry.hash)?;
        Ok(entry)
    }

    fn write_head(&self, seq: u64, hash: &str) -> Result<(), AuditError> {
        let head = Head {
            seq,
            hash: hash.to_string(),
            holder: self.holder.public(),
            signature: self
                .holder
                .sign(AUDIT_HEAD_CONTEXT, &head_digest(seq, hash)),
        };
        let path = head_path(&self.path);
        let tmp = path.with_extension("partial");
        let json = serde_json::to_vec_pretty(&head).expect("heads serialize");
        std::fs::write(&tmp, json).map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io_err(&path))
    }
}

/// Reads and checks the chain of entries (not the head).
fn read_chain(path: &Path) -> Result<Vec<Entry>, AuditError> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let mut entries: Vec<Entry> = Vec::new();
    let mut prev = GENESIS.to_string();
    // Every entry ends with a newline; a file that does not is cut short (its last line fails).
    let body = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    if body.is_empty() {
        return Ok(entries);
    }
    for (i, raw) in body.split(|&b| b == b'\n').enumerate() {
        let line = i as u64 + 1;
        let broken = |reason: String| AuditError::Broken { line, reason };
        let entry: Entry =
            serde_json::from_slice(raw).map_err(|e| broken(format!("not a valid entry ({e})")))?;
        if entry.body.seq != line {
            return Err(broken(format!(
                "sequence number {} where {line} was expected",
                entry.body.seq
            )));
        }
        if entry.body.prev != prev {
            return Err(broken("does not chain to the previous entry".into()));
        }
        if entry.body.hash() != entry.hash {
            return Err(broken("its content does not match its hash".into()));
        }
        prev = entry.hash.clone();
        entries.push(entry);
    }
    Ok(entries)
}

/// What a successful check found.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// Entries in the log.
    pub entries: usize,
    /// The signed head's hash.
    pub head: String,
}

/// Checks the whole log at `path` and its head against the holder's key, offline.
pub fn verify(path: &Path, holder: &PublicKey) -> Result<Verified, AuditError> {
    let entries = read_chain(path)?;
    let hp = head_path(path);
    let bytes =
        std::fs::read(&hp).map_err(|e| AuditError::Head(format!("{}: {e}", hp.display())))?;
    let head: Head = serde_json::from_slice(&bytes)
        .map_err(|e| AuditError::Head(format!("{} is malformed ({e})", hp.display())))?;
    if &head.holder != holder {
        return Err(AuditError::Head(format!(
            "signed by {}, not by the holder's key {holder}",
            head.holder
        )));
    }
    if !holder.verify(
        AUDIT_HEAD_CONTEXT,
        &head_digest(head.seq, &head.hash),
        &head.signature,
    ) {
        return Err(AuditError::Head(
            "the holder's signature does not verify".into(),
        ));
    }
    let (last_seq, last_hash) = entries
        .last()
        .map(|e| (e.body.seq, e.hash.clone()))
        .unwrap_or((0, GENESIS.to_string()));
    if head.seq != last_seq || head.hash != last_hash {
        return Err(AuditError::Head(format!(
            "the signed head covers entry {} but the log ends at entry {last_seq}: entries were removed or added after signing",
            head.seq
        )));
    }
    Ok(Verified {
        entries: entries.len(),
        head: head.hash,
    })
}

/// One line of the public register: a release, without any data value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterRow {
    /// When (RFC 3339).
    pub at: String,
    /// The job.
    pub job_id: String,
    /// Who asked.
    pub requester: String,
    /// Module name and version.
    pub module: String,
    /// Module hash.
    pub module_hash: String,
    /// The approved purpose.
    pub purpose: String,
    /// Datasets used.
    pub datasets: Vec<String>,
    /// Epsilon spent (0 when an identical earlier release was returned).
    pub epsilon: f64,
}

/// The public register of releases in a (verified) log.
pub fn export(path: &Path) -> Result<Vec<RegisterRow>, AuditError> {
    let entries = read_chain(path)?;
    let text = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or_default().to_string();
    Ok(entries
        .iter()
        .filter(|e| e.body.kind == EntryKind::Release)
        .map(|e| {
            let d = &e.body.details;
            RegisterRow {
                at: e.body.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                job_id: text(d, "job_id"),
                requester: e.body.actor.clone(),
                module: text(d, "module"),
                module_hash: text(d, "module_hash"),
                purpose: text(d, "purpose"),
                datasets: d["datasets"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default(),
                epsilon: d["epsilon"].as_f64().unwrap_or(0.0),
            }
        })
        .collect())
}
