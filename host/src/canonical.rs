//! The canonical byte form that every OAR signature covers.
//!
//! Signed artifacts (manifests, approval records, revocation lists) are JSON documents. Their
//! digests are taken over the **JSON Canonicalization Scheme (JCS, RFC 8785)** form of the parsed
//! document, so two machines, or two implementations, that read the same record compute the same
//! bytes regardless of whitespace, key order or number spelling in the file:
//!
//! - no whitespace between tokens;
//! - object members sorted by key, comparing keys as UTF-16 code units (for the ASCII keys OAR
//!   uses this is byte order);
//! - strings escaped as ECMAScript `JSON.stringify` does: `\"`, `\\`, `\b`, `\f`, `\n`, `\r`,
//!   `\t`, other control characters as `\u00xx` (lowercase hex), everything else literal UTF-8;
//! - numbers in ECMAScript's shortest round-trip form (`1`, not `1.0`; `0.1`; `1e+21`; `1e-7`);
//!   non-finite numbers cannot be encoded;
//! - timestamps are RFC 3339 strings in UTC with a `Z` and whole seconds
//!   (`2026-01-01T00:00:00Z`), see [`timestamp`].
//!
//! The digest of an approval record or revocation list is
//! `SHA-256(u64be(len(context)) || context || u64be(len(jcs)) || jcs)`, with context
//! `oar-approval-v1` or `oar-revocation-v1` (see [`crate::keys::sha256_parts`]); a manifest's hash
//! is plain `SHA-256(jcs)`; a bundle digest is the parts digest of `oar-bundle-v1`, the module
//! hash and the manifest hash. An ed25519 signature covers `context || 0x00 || digest`. `tests/vectors/` holds
//! vectors computed with independent tools (Python's `hashlib` and `cryptography`).

use serde::Serialize;
use serde_json::Value;

/// A value that has no canonical form.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode canonically: {0}")]
pub struct CanonicalError(String);

/// The RFC 8785 canonical JSON bytes of `value`.
pub fn to_canonical_json<T: Serialize>(value: &T) -> Result<Vec<u8>, CanonicalError> {
    let value = serde_json::to_value(value).map_err(|e| CanonicalError(e.to_string()))?;
    let mut out = Vec::new();
    write_value(&value, &mut out)?;
    Ok(out)
}

fn write_value(value: &Value, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => write_number(n, out)?,
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.encode_utf16().cmp(b.0.encode_utf16()));
            out.push(b'{');
            for (i, (key, item)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write_value(item, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_number(n: &serde_json::Number, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    if let Some(i) = n.as_i64() {
        // ECMAScript numbers are doubles: integers beyond 2^53 would not round-trip.
        if i.unsigned_abs() > (1u64 << 53) {
            return Err(CanonicalError(format!("integer {i} exceeds 2^53")));
        }
        out.extend_from_slice(i.to_string().as_bytes());
    } else if let Some(u) = n.as_u64() {
        if u > (1u64 << 53) {
            return Err(CanonicalError(format!("integer {u} exceeds 2^53")));
        }
        out.extend_from_slice(u.to_string().as_bytes());
    } else {
        let f = n
            .as_f64()
            .ok_or_else(|| CanonicalError(format!("number {n}")))?;
        if !f.is_finite() {
            return Err(CanonicalError("non-finite number".into()));
        }
        let mut buf = ryu_js::Buffer::new();
        out.extend_from_slice(buf.format_finite(f).as_bytes());
    }
    Ok(())
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes())
            }
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// Serde helpers for timestamps in canonical form: RFC 3339, UTC, `Z`, whole seconds.
///
/// Reading accepts any RFC 3339 offset (it is normalised to UTC) but refuses fractional seconds,
/// so that the canonical form never silently drops precision that a signer saw.
pub mod timestamp {
    use chrono::{DateTime, SecondsFormat, Timelike, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes `t` as `YYYY-MM-DDTHH:MM:SSZ`.
    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Secs, true))
    }

    /// Reads an RFC 3339 timestamp with whole seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        let t = DateTime::parse_from_rfc3339(&text)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "'{text}' is not an RFC 3339 timestamp ({e}); write e.g. 2026-01-01T00:00:00Z"
                ))
            })?
            .with_timezone(&Utc);
        if t.nanosecond() != 0 {
            return Err(serde::de::Error::custom(format!(
                "'{text}' has fractional seconds; signed timestamps use whole seconds"
            )));
        }
        Ok(t)
    }

    /// `t` truncated to whole seconds (what a new record stores).
    pub fn whole_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
        t.with_nanosecond(0).expect("zero nanoseconds is valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canon(v: Value) -> String {
        String::from_utf8(to_canonical_json(&v).unwrap()).unwrap()
    }

    #[test]
    fn numbers_follow_ecmascript() {
        // Values from RFC 8785 appendix B and section 3.2.2.3.
        let cases = [
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (4.5, "4.5"),
            (0.002, "0.002"),
            (1e-7, "1e-7"),
            (1e21, "1e+21"),
            (1e30, "1e+30"),
            (333333333.3333333, "333333333.3333333"),
            (9007199254740992.0, "9007199254740992"),
            (5e-324, "5e-324"),
        ];
        for (x, want) in cases {
            assert_eq!(canon(json!(x)), want, "{x:e}");
        }
    }

    #[test]
    fn keys_sort_and_whitespace_goes() {
        assert_eq!(
            canon(json!({"b": [1, {"d": true, "c": null}], "a": "x"})),
            r#"{"a":"x","b":[1,{"c":null,"d":true}]}"#
        );
    }

    #[test]
    fn strings_escape_like_json_stringify() {
        assert_eq!(
            canon(json!("q\"b\\n\n\u{1}é€")),
            "\"q\\\"b\\\\n\\n\\u0001é€\""
        );
    }

    #[test]
    fn keys_sort_by_utf16_units() {
        // U+1F600 (surrogates D83D DE00) sorts before U+FB01 in UTF-16, after it in UTF-8.
        assert_eq!(
            canon(json!({"\u{fb01}": 1, "\u{1f600}": 2})),
            "{\"\u{1f600}\":2,\"\u{fb01}\":1}"
        );
    }

    #[test]
    fn huge_integers_are_refused() {
        assert!(to_canonical_json(&json!(u64::MAX)).is_err());
    }
}
