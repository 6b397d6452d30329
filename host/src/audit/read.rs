//! Reading the log: lines parsed from their exact bytes, the chain walked in constant memory,
//! and the public register.

use super::{
    hash_bytes, head_path, io_err, AuditError, Entry, EntryBody, EntryKind, Head, GENESIS,
    MAX_LINE_BYTES,
};
use crate::keys::PublicKey;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// The member the writer appends to an entry's canonical body: `,"hash":"` + 64 hex + `"}`.
const HASH_MEMBER: &[u8] = b",\"hash\":\"";
const HASH_SUFFIX_LEN: usize = HASH_MEMBER.len() + 64 + 2;

/// The line written for an entry whose canonical body is `body` (which ends in `}`).
pub(super) fn line(body: &[u8], hash: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + HASH_SUFFIX_LEN + 1);
    out.extend_from_slice(&body[..body.len() - 1]);
    out.extend_from_slice(HASH_MEMBER);
    out.extend_from_slice(hash.as_bytes());
    out.extend_from_slice(b"\"}\n");
    out
}

/// Parses one line (without its newline): the hash is checked over the exact body bytes.
fn parse_line(raw: &[u8]) -> Result<Entry, String> {
    let malformed = || "not a valid entry (it must end with its \"hash\" member)".to_string();
    if raw.len() < HASH_SUFFIX_LEN + 2 {
        return Err(malformed());
    }
    let (front, suffix) = raw.split_at(raw.len() - HASH_SUFFIX_LEN);
    let (member, rest) = suffix.split_at(HASH_MEMBER.len());
    let (hex, close) = rest.split_at(64);
    if member != HASH_MEMBER
        || close != b"\"}"
        || !hex.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(malformed());
    }
    let mut body = Vec::with_capacity(front.len() + 1);
    body.extend_from_slice(front);
    body.push(b'}');
    let hash = String::from_utf8_lossy(hex).into_owned();
    if hash_bytes(&body) != hash {
        return Err("its content does not match its hash".into());
    }
    let body: EntryBody =
        serde_json::from_slice(&body).map_err(|e| format!("not a valid entry ({e})"))?;
    Ok(Entry { body, hash })
}

/// A point in the chain: the last entry's sequence number and hash and the offset after it.
#[derive(Debug, Clone)]
pub(super) struct Position {
    pub seq: u64,
    pub hash: String,
    pub end: u64,
}

impl Position {
    fn genesis() -> Self {
        Position {
            seq: 0,
            hash: GENESIS.to_string(),
            end: 0,
        }
    }

    pub(super) fn of(head: &Head) -> Self {
        Position {
            seq: head.seq,
            hash: head.hash.clone(),
            end: head.end,
        }
    }
}

/// Where a walk over the chain ended.
pub(super) struct Walked {
    /// The last whole entry.
    pub at: Position,
    /// Offset of a final segment without a newline (a line torn by a crash), if any.
    pub torn_at: Option<u64>,
}

/// Walks whole lines from `from` (where entry `seq + 1` starts, chaining from `hash`) up to
/// `until` (or the end of the file), checking each and handing it to `each`.
fn walk(
    path: &Path,
    from: &Position,
    until: Option<u64>,
    mut each: impl FnMut(&Entry) -> Result<bool, AuditError>,
) -> Result<Walked, AuditError> {
    let mut file = std::fs::File::open(path).map_err(io_err(path))?;
    file.seek(SeekFrom::Start(from.end)).map_err(io_err(path))?;
    let limit = until.map_or(u64::MAX, |u| u.saturating_sub(from.end));
    let mut reader = BufReader::with_capacity(1 << 16, file.take(limit));
    let mut at = from.clone();
    let mut raw = Vec::new();
    loop {
        raw.clear();
        let n = (&mut reader)
            .take(MAX_LINE_BYTES)
            .read_until(b'\n', &mut raw)
            .map_err(io_err(path))?;
        if n == 0 {
            return Ok(Walked { at, torn_at: None });
        }
        let line = at.seq + 1;
        let broken = |reason: String| AuditError::Broken { line, reason };
        if raw.last() != Some(&b'\n') {
            if n as u64 == MAX_LINE_BYTES {
                return Err(broken("longer than any entry the host writes".into()));
            }
            let torn_at = Some(at.end);
            return Ok(Walked { at, torn_at });
        }
        let entry = parse_line(&raw[..raw.len() - 1]).map_err(broken)?;
        if entry.body.seq != line {
            return Err(broken(format!(
                "sequence number {} where {line} was expected",
                entry.body.seq
            )));
        }
        if entry.body.prev != at.hash {
            return Err(broken("does not chain to the previous entry".into()));
        }
        at.seq = line;
        at.end += n as u64;
        at.hash.clone_from(&entry.hash);
        if !each(&entry)? {
            return Ok(Walked { at, torn_at: None });
        }
    }
}

/// Checks that the entry a signed head names still ends where the head says.
pub(super) fn check_signed_entry(path: &Path, head: &Head, len: u64) -> Result<(), AuditError> {
    let moved = || {
        AuditError::Head(format!(
            "the entry the signed head covers (entry {}) is not where the head says: the log was changed after signing; run `oar audit verify` and restore the log from a backup",
            head.seq
        ))
    };
    if head.seq == 0 {
        return if head.end == 0 { Ok(()) } else { Err(moved()) };
    }
    if len < head.end {
        return Err(AuditError::Head(format!(
            "the signed head covers entry {} but the log ends before it: entries were removed after signing; restore the log from a backup",
            head.seq
        )));
    }
    // Read back from the head's end in growing windows until the line's start is in view (a
    // start costs one small read however large the log).
    let mut file = std::fs::File::open(path).map_err(io_err(path))?;
    let mut window = head.end.min(64 * 1024);
    let (tail, start) = loop {
        file.seek(SeekFrom::Start(head.end - window))
            .map_err(io_err(path))?;
        let mut tail = vec![0u8; window as usize];
        file.read_exact(&mut tail).map_err(io_err(path))?;
        if tail.last() != Some(&b'\n') {
            return Err(moved());
        }
        let body = &tail[..tail.len() - 1];
        if let Some(i) = body.iter().rposition(|&b| b == b'\n') {
            break (tail, i + 1);
        }
        if window == head.end {
            break (tail, 0);
        }
        if window > MAX_LINE_BYTES {
            return Err(moved());
        }
        window = (window * 2).min(head.end).min(MAX_LINE_BYTES + 1);
    };
    let body = &tail[..tail.len() - 1];
    match parse_line(&body[start..]) {
        Ok(e) if e.body.seq == head.seq && e.hash == head.hash => Ok(()),
        _ => Err(moved()),
    }
}

/// Checks the entries written after `head` (a crash before the head was re-signed).
pub(super) fn check_tail(path: &Path, head: &Head) -> Result<Walked, AuditError> {
    walk(path, &Position::of(head), None, |_| Ok(true))
}

/// What a successful check found.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// Entries in the log.
    pub entries: usize,
    /// The signed head's hash.
    pub head: String,
}

/// Walks the chain from the start, up to `until` (or the end of the file); a torn last line is
/// a break here.
fn walk_from_start(
    path: &Path,
    until: Option<u64>,
    each: impl FnMut(&Entry) -> Result<bool, AuditError>,
) -> Result<Position, AuditError> {
    let walked = walk(path, &Position::genesis(), until, each)?;
    if walked.torn_at.is_some() {
        return Err(AuditError::Broken {
            line: walked.at.seq + 1,
            reason: "cut short (no newline at the end)".into(),
        });
    }
    Ok(walked.at)
}

/// The signed head beside `path`, checked against the holder's key.
fn signed_head(path: &Path, holder: &PublicKey) -> Result<Head, AuditError> {
    let head = Head::read(&head_path(path))?;
    if &head.holder != holder {
        return Err(AuditError::Head(format!(
            "signed by {}, not by the holder's key {holder}",
            head.holder
        )));
    }
    if !head.signed_by(holder) {
        return Err(AuditError::Head(
            "the holder's signature does not verify".into(),
        ));
    }
    Ok(head)
}

fn matches_head(head: &Head, walked: &Position) -> Result<(), AuditError> {
    if head.seq != walked.seq || head.hash != walked.hash {
        return Err(AuditError::Head(format!(
            "the signed head covers entry {} but the log ends at entry {}: entries were removed or added after signing",
            head.seq, walked.seq
        )));
    }
    if head.end != walked.end {
        return Err(AuditError::Head(format!(
            "the head records entry {} ending at byte {} but it ends at byte {}",
            head.seq, head.end, walked.end
        )));
    }
    Ok(())
}

/// Walks the whole chain (handing each entry to `each`) and checks the signed head beside it.
fn verify_walking(
    path: &Path,
    holder: &PublicKey,
    each: impl FnMut(&Entry) -> Result<bool, AuditError>,
) -> Result<(Position, Head), AuditError> {
    let walked = walk_from_start(path, None, each)?;
    let head = signed_head(path, holder)?;
    matches_head(&head, &walked)?;
    Ok((walked, head))
}

/// Checks the whole log at `path` and its head against the holder's key, offline, reading
/// the log once in constant memory.
pub fn verify(path: &Path, holder: &PublicKey) -> Result<Verified, AuditError> {
    let (walked, head) = verify_walking(path, holder, |_| Ok(true))?;
    Ok(Verified {
        entries: walked.seq as usize,
        head: head.hash,
    })
}

/// Checks the log at `path` up to `head` (a head the holder signed, such as an open log's
/// current one): every entry up to it chains and the last is the one it names. Entries appended
/// while this runs are not read, so a live log can be checked while it grows.
pub fn verify_to(path: &Path, holder: &PublicKey, head: &Head) -> Result<Verified, AuditError> {
    if !head.signed_by(holder) {
        return Err(AuditError::Head(
            "the head is not signed by the holder's key".into(),
        ));
    }
    let walked = walk_from_start(path, Some(head.end), |_| Ok(true))?;
    matches_head(head, &walked)?;
    Ok(Verified {
        entries: walked.seq as usize,
        head: head.hash.clone(),
    })
}

/// [`verify`], and also that the log still contains `kept`, a head the holder signed earlier
/// (one a requester kept from an earlier answer): a log rewound behind it, or rewritten from
/// before it, is caught even when both files were rolled back to a consistent older state.
pub fn verify_since(path: &Path, holder: &PublicKey, kept: &Head) -> Result<Verified, AuditError> {
    if !kept.signed_by(holder) {
        return Err(AuditError::Head(
            "the kept head is not signed by the holder's key".into(),
        ));
    }
    let mut at_kept = None;
    let (walked, head) = verify_walking(path, holder, |e| {
        if e.body.seq == kept.seq {
            at_kept = Some(e.hash.clone());
        }
        Ok(true)
    })?;
    if kept.seq > 0 {
        match at_kept {
            None => {
                return Err(AuditError::Rewound(format!(
                    "the log was rewound: the kept head covers entry {} but the log now ends at entry {}",
                    kept.seq, walked.seq
                )))
            }
            Some(h) if h != kept.hash => {
                return Err(AuditError::Rewound(format!(
                    "the log was rewound and rewritten: entry {} is not the one the kept head covers",
                    kept.seq
                )))
            }
            Some(_) => {}
        }
    }
    Ok(Verified {
        entries: walked.seq as usize,
        head: head.hash,
    })
}

/// One line of the public register: a release, without any data value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterRow {
    /// The entry's position in the log (for paging and for checking it against the log).
    pub seq: u64,
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

fn register_row(e: &Entry) -> Option<RegisterRow> {
    if e.body.kind != EntryKind::Release {
        return None;
    }
    let d = &e.body.details;
    let text = |k: &str| d[k].as_str().unwrap_or_default().to_string();
    Some(RegisterRow {
        seq: e.body.seq,
        at: e.body.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        job_id: text("job_id"),
        requester: e.body.actor.clone(),
        module: text("module"),
        module_hash: text("module_hash"),
        purpose: text("purpose"),
        datasets: d["datasets"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
        epsilon: d["epsilon"].as_f64().unwrap_or(0.0),
    })
}

/// The public register of releases in a log whose chain checks (read once, streaming).
pub fn export(path: &Path) -> Result<Vec<RegisterRow>, AuditError> {
    let mut rows = Vec::new();
    walk_from_start(path, None, |e| {
        rows.extend(register_row(e));
        Ok(true)
    })?;
    Ok(rows)
}

/// The last `n` entries up to `head`, oldest first (read once, streaming, keeping `n`).
pub fn recent(path: &Path, head: &Head, n: usize) -> Result<Vec<Entry>, AuditError> {
    let mut last = std::collections::VecDeque::with_capacity(n + 1);
    walk(path, &Position::genesis(), Some(head.end), |e| {
        last.push_back(e.clone());
        if last.len() > n {
            last.pop_front();
        }
        Ok(true)
    })?;
    Ok(last.into())
}

/// A page of the register, with the signed head it was read against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterPage {
    /// Releases after the requested position, oldest first.
    pub rows: Vec<RegisterRow>,
    /// Ask again with `after` set to this for the next page; absent on the last page.
    pub next_after: Option<u64>,
    /// The holder's signed head the page was read up to. Keep it: `oar audit verify --since`
    /// proves a later copy of the log was not rewound behind it.
    pub head: Head,
}

/// Up to `limit` register rows after entry `after`, read up to `head` (entries appended while
/// reading are left for the next page).
pub fn export_page(
    path: &Path,
    head: &Head,
    after: u64,
    limit: usize,
) -> Result<RegisterPage, AuditError> {
    let mut rows = Vec::new();
    let mut more = false;
    walk(path, &Position::genesis(), Some(head.end), |e| {
        if e.body.seq <= after {
            return Ok(true);
        }
        if let Some(row) = register_row(e) {
            if rows.len() == limit {
                more = true;
                return Ok(false);
            }
            rows.push(row);
        }
        Ok(true)
    })?;
    let next_after = if more {
        rows.last().map(|r| r.seq)
    } else {
        None
    };
    Ok(RegisterPage {
        rows,
        next_after,
        head: head.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_the_canonical_body_with_its_hash_member_and_parses_back_exactly() {
        let body = EntryBody {
            seq: 1,
            at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            kind: EntryKind::Charge,
            actor: "a\u{2028}\"b".into(),
            details: serde_json::json!({"epsilon": 0.07 * 7.0, "z": [1e21, 0.1, 5e-324]}),
            prev: GENESIS.into(),
        };
        let hash = body.hash();
        let line = line(&body.canonical_bytes(), &hash);
        assert!(line.ends_with(format!(",\"hash\":\"{hash}\"}}\n").as_bytes()));
        let entry = parse_line(&line[..line.len() - 1]).unwrap();
        assert_eq!((entry.body, entry.hash), (body, hash));
        // Every parser sees valid JSON: the hash is a member like any other.
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["seq"], 1);
        for cut in [1, 10, 70, 76, line.len() - 2] {
            assert!(parse_line(&line[..line.len() - 1 - cut]).is_err());
        }
    }
}
