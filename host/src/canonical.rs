//! The canonical byte form that every OAR signature covers.
//!
//! Signed artifacts (manifests, approval records, revocation lists) are JSON documents. Their
//! digests are taken over the **JSON Canonicalization Scheme (JCS, RFC 8785)** form of the parsed
//! document, so two machines, or two implementations, that read the same record compute the same
//! bytes regardless of whitespace, key order or number spelling in the file:
//!
//! - no whitespace between tokens;
//! - object members sorted by key, comparing keys as UTF-16 code units (for the ASCII keys OAR
//!   uses this is byte order; a key outside the BMP, such as U+1F600, sorts by its surrogates,
//!   so before U+E000..U+FFFF);
//! - strings escaped as ECMAScript `JSON.stringify` does: `\"`, `\\`, `\b`, `\f`, `\n`, `\r`,
//!   `\t`, other control characters as `\u00xx` (lowercase hex), everything else literal UTF-8
//!   (DEL, U+2028, U+2029 and `</script>` included);
//! - numbers in ECMAScript's shortest round-trip form (`56`, not `56.0`; `0.1`; `1e+21`;
//!   `1e-7`; `-0` is `0`); non-finite numbers cannot be encoded (a Rust `f64` NaN or infinity is
//!   refused, not written as `null`);
//! - integers only within the I-JSON range ±(2^53 − 1), where every integer is exactly a double;
//!   beyond it they are refused rather than rounded (a number that is meant to be large is
//!   written as a float, e.g. `1e21`). [`canonical_json_from_str`] applies this to the JSON text,
//!   so it also refuses integer literals too long for 64 bits, which `serde_json` would otherwise
//!   read as the nearest double before [`to_canonical_json`] sees them;
//! - timestamps are RFC 3339 strings in UTC with a `Z` and whole seconds
//!   (`2026-01-01T00:00:00Z`), see [`timestamp`].
//!
//! The digest of an approval record or revocation list is
//! `SHA-256(u64be(len(context)) || context || u64be(len(jcs)) || jcs)`, with context
//! `oar-approval-v1` or `oar-revocation-v1` (see [`crate::keys::sha256_parts`]); a manifest's hash
//! is plain `SHA-256(jcs)`; a bundle digest is the parts digest of `oar-bundle-v1`, the module
//! hash and the manifest hash. An ed25519 signature covers `context || 0x00 || digest`.
//!
//! `tests/vectors/canonical.json` holds vectors computed with tools independent of this code:
//! canonical forms by the PyPI package `rfc8785` (cross-checked against the npm package
//! `canonicalize`), digests by Python's `hashlib`, signatures by the `cryptography` package. They
//! cover the signed documents and plain JCS cases (the RFC 8785 examples, astral-plane keys,
//! number forms, the integer range, escapes); `tests/vectors/make_vectors.py` says how to
//! regenerate and cross-check them.

use serde::ser::{self, Serialize, Serializer};
use serde_json::Value;

/// A value that has no canonical form.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode canonically: {0}")]
pub struct CanonicalError(String);

impl ser::Error for CanonicalError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        CanonicalError(msg.to_string())
    }
}

/// The largest integer magnitude I-JSON (RFC 7493) allows: every integer up to it is exactly one
/// double, and no other integer rounds to it.
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// The RFC 8785 canonical JSON bytes of `value`.
pub fn to_canonical_json<T: Serialize>(value: &T) -> Result<Vec<u8>, CanonicalError> {
    // `serde_json::to_value` writes a non-finite float as `null`; refuse it instead.
    value.serialize(FiniteCheck)?;
    let value = serde_json::to_value(value).map_err(|e| CanonicalError(e.to_string()))?;
    let mut out = Vec::new();
    write_value(&value, &mut out)?;
    Ok(out)
}

/// The RFC 8785 canonical JSON bytes of the JSON text `text`.
///
/// Refuses what [`to_canonical_json`] refuses and also integer literals outside ±(2^53 − 1) that
/// are too long for 64 bits, which `serde_json` reads as the nearest double (so
/// `18446744073709551616` is refused here, as by other JCS implementations that keep integers
/// apart, instead of becoming `18446744073709552000`).
pub fn canonical_json_from_str(text: &str) -> Result<Vec<u8>, CanonicalError> {
    let value: Value = serde_json::from_str(text).map_err(|e| CanonicalError(e.to_string()))?;
    check_integer_literals(text)?;
    let mut out = Vec::new();
    write_value(&value, &mut out)?;
    Ok(out)
}

/// Refuses the integer literals (no fraction, no exponent) of a valid JSON text that lie outside
/// ±(2^53 − 1).
fn check_integer_literals(text: &str) -> Result<(), CanonicalError> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                // Skip the string: the text is valid, so it ends with an unescaped quote.
                i += 1;
                while bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len()
                    && matches!(bytes[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                let literal = &text[start..i];
                let integer = !literal.contains(['.', 'e', 'E']);
                // 2^53 - 1 has 16 digits; a longer literal (JSON has no leading zeros) is beyond.
                let safe = || {
                    literal.trim_start_matches('-').len() <= 16
                        && literal
                            .parse::<i64>()
                            .is_ok_and(|n| n.unsigned_abs() <= MAX_SAFE_INTEGER)
                };
                if integer && !safe() {
                    return Err(out_of_range(literal));
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

fn out_of_range(integer: impl std::fmt::Display) -> CanonicalError {
    CanonicalError(format!(
        "integer {integer} is outside the I-JSON range of +-(2^53 - 1); write it as a float or a string"
    ))
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
    // ECMAScript numbers are doubles: integers beyond 2^53 - 1 may not round-trip (2^53 + 1 would
    // read as 2^53), so, as RFC 8785 implementations that keep integers apart do, refuse them.
    if let Some(i) = n.as_i64() {
        if i.unsigned_abs() > MAX_SAFE_INTEGER {
            return Err(out_of_range(i));
        }
        out.extend_from_slice(i.to_string().as_bytes());
    } else if let Some(u) = n.as_u64() {
        if u > MAX_SAFE_INTEGER {
            return Err(out_of_range(u));
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

/// A serializer that only looks for floats JCS cannot encode (NaN, the infinities), which
/// `serde_json::to_value` would silently turn into `null`.
#[derive(Clone, Copy)]
struct FiniteCheck;

macro_rules! accept {
    ($($method:ident($ty:ty)),* $(,)?) => {
        $(fn $method(self, _: $ty) -> Result<(), CanonicalError> {
            Ok(())
        })*
    };
}

impl Serializer for FiniteCheck {
    type Ok = ();
    type Error = CanonicalError;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    accept!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_unit_struct(&'static str),
    );

    fn serialize_f32(self, v: f32) -> Result<(), CanonicalError> {
        self.serialize_f64(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<(), CanonicalError> {
        if v.is_finite() {
            Ok(())
        } else {
            Err(CanonicalError(format!("non-finite number {v}")))
        }
    }
    fn serialize_none(self) -> Result<(), CanonicalError> {
        Ok(())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, v: &T) -> Result<(), CanonicalError> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), CanonicalError> {
        Ok(())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<(), CanonicalError> {
        Ok(())
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), CanonicalError> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        v: &T,
    ) -> Result<(), CanonicalError> {
        v.serialize(self)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self, CanonicalError> {
        Ok(self)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self, CanonicalError> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, CanonicalError> {
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, CanonicalError> {
        Ok(self)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self, CanonicalError> {
        Ok(self)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, CanonicalError> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, CanonicalError> {
        Ok(self)
    }
}

macro_rules! check_elements {
    ($($trait:ident :: $method:ident),* $(,)?) => {
        $(impl ser::$trait for FiniteCheck {
            type Ok = ();
            type Error = CanonicalError;
            fn $method<T: ?Sized + Serialize>(&mut self, v: &T) -> Result<(), CanonicalError> {
                v.serialize(*self)
            }
            fn end(self) -> Result<(), CanonicalError> {
                Ok(())
            }
        })*
    };
}

check_elements!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
);

impl ser::SerializeMap for FiniteCheck {
    type Ok = ();
    type Error = CanonicalError;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, k: &T) -> Result<(), CanonicalError> {
        k.serialize(*self)
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, v: &T) -> Result<(), CanonicalError> {
        v.serialize(*self)
    }
    fn end(self) -> Result<(), CanonicalError> {
        Ok(())
    }
}

macro_rules! check_fields {
    ($($trait:ident),* $(,)?) => {
        $(impl ser::$trait for FiniteCheck {
            type Ok = ();
            type Error = CanonicalError;
            fn serialize_field<T: ?Sized + Serialize>(
                &mut self,
                _: &'static str,
                v: &T,
            ) -> Result<(), CanonicalError> {
                v.serialize(*self)
            }
            fn end(self) -> Result<(), CanonicalError> {
                Ok(())
            }
        })*
    };
}

check_fields!(SerializeStruct, SerializeStructVariant);

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
        // Written back in UTC, a time outside years 0000..=9999 would not read again.
        if !(0..=9999).contains(&chrono::Datelike::year(&t)) {
            return Err(serde::de::Error::custom(format!(
                "'{text}' is outside the years 0000 to 9999 in UTC; signed timestamps stay within them"
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
    fn integers_beyond_the_i_json_range_are_refused() {
        let max = (1i64 << 53) - 1;
        assert_eq!(canon(json!(max)), "9007199254740991");
        assert_eq!(canon(json!(-max)), "-9007199254740991");
        for n in [max + 1, -max - 1, i64::MIN] {
            assert!(to_canonical_json(&json!(n)).is_err(), "{n}");
        }
        assert!(to_canonical_json(&json!(u64::MAX)).is_err());
        // The same magnitude as a double is a number like any other.
        assert_eq!(canon(json!((max + 1) as f64)), "9007199254740992");
    }

    #[test]
    fn non_finite_floats_are_refused_not_written_as_null() {
        #[derive(serde::Serialize)]
        struct Record {
            epsilon: f64,
            others: Vec<Option<f32>>,
        }
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let record = Record {
                epsilon: bad,
                others: vec![],
            };
            assert!(to_canonical_json(&record).is_err(), "{bad}");
        }
        let nested = Record {
            epsilon: 1.0,
            others: vec![Some(0.5), None, Some(f32::NAN)],
        };
        assert!(to_canonical_json(&nested).is_err());
        let map = std::collections::BTreeMap::from([("x", f64::INFINITY)]);
        assert!(to_canonical_json(&map).is_err());
        let fine = Record {
            epsilon: 56.0,
            others: vec![Some(0.5), None],
        };
        assert_eq!(
            String::from_utf8(to_canonical_json(&fine).unwrap()).unwrap(),
            r#"{"epsilon":56,"others":[0.5,null]}"#
        );
    }

    #[test]
    fn text_form_refuses_integer_literals_beyond_64_bits() {
        let text = |t: &str| canonical_json_from_str(t).map(|b| String::from_utf8(b).unwrap());
        // serde_json reads this literal as the double 2^64, which the value form cannot tell
        // from a number written as a double; the text form sees the literal.
        let value: Value = serde_json::from_str("18446744073709551616").unwrap();
        assert_eq!(canon(value), "18446744073709552000");
        assert!(text("18446744073709551616").is_err());
        assert!(text(r#"{"a":"\"","b":[1,-99999999999999999999999]}"#).is_err());
        assert!(text("9007199254740992").is_err());
        // Digits in strings and keys, fractions and exponents are not integer literals.
        assert_eq!(
            text(r#"{"18446744073709551616":"9007199254740993\\","e":[1e21,-0,2.0E1]}"#).unwrap(),
            r#"{"18446744073709551616":"9007199254740993\\","e":[1e+21,0,20]}"#
        );
        assert!(text("[1,").is_err());
    }
}
