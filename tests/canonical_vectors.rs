//! Canonical-encoding test vectors: the Rust implementation must reproduce, byte for byte, what
//! `tests/vectors/make_vectors.py` computed with tools independent of this code: canonical JSON
//! by the PyPI package `rfc8785` (and cross-checked against the npm package `canonicalize` by
//! `tests/vectors/cross_check.mjs`), digests by Python's `hashlib`, signatures by `cryptography`.
//! If these pass on a machine, approvals and revocation lists signed there verify everywhere.

use oar_host::approval::{ApprovalRecord, APPROVAL_CONTEXT};
use oar_host::bundle::Manifest;
use oar_host::canonical::{canonical_json_from_str, to_canonical_json};
use oar_host::keys::{KeyPair, PublicKey};
use oar_host::revocation::{RevocationList, REVOCATION_CONTEXT};
use serde::Deserialize;
use serde_json::Value;

/// A signed document as a person might write it, with its canonical bytes, digest and signature.
#[derive(Deserialize)]
struct Vector {
    name: String,
    context: Option<String>,
    document: String,
    canonical: String,
    digest: String,
    signer_seed: Option<String>,
    signer_public: Option<String>,
    signature: Option<String>,
}

/// A JSON text and its canonical form, or the fact that it has none.
#[derive(Deserialize)]
struct JcsVector {
    name: String,
    input: String,
    canonical: Option<String>,
    expect_error: Option<String>,
}

#[derive(Deserialize)]
struct VectorFile {
    documents: Vec<Vector>,
    jcs: Vec<JcsVector>,
}

fn vector_file() -> VectorFile {
    serde_json::from_str(include_str!("vectors/canonical.json")).expect("vector file parses")
}

fn vectors() -> Vec<Vector> {
    vector_file().documents
}

/// (canonical bytes, digest) of a vector's document, parsed as the type its name says.
fn compute(v: &Vector) -> (Vec<u8>, [u8; 32]) {
    match v.name.as_str() {
        "approval record" => {
            let r: ApprovalRecord = serde_json::from_str(&v.document).unwrap();
            (r.canonical_bytes(), r.digest())
        }
        "manifest" => {
            let m: Manifest = serde_json::from_str(&v.document).unwrap();
            (to_canonical_json(&m).unwrap(), m.hash())
        }
        "revocation list" => {
            let l: RevocationList = serde_json::from_str(&v.document).unwrap();
            (to_canonical_json(&l).unwrap(), l.digest())
        }
        other => panic!("unknown vector {other}"),
    }
}

#[test]
fn canonical_bytes_and_digests_match_the_independent_vectors() {
    let vs = vectors();
    assert_eq!(vs.len(), 3);
    for v in &vs {
        let (bytes, digest) = compute(v);
        assert_eq!(String::from_utf8(bytes).unwrap(), v.canonical, "{}", v.name);
        assert_eq!(hex::encode(digest), v.digest, "{}", v.name);
        // The typed record and the plain JSON text canonicalize alike.
        let generic = canonical_json_from_str(&v.document).unwrap();
        assert_eq!(
            String::from_utf8(generic).unwrap(),
            v.canonical,
            "{}",
            v.name
        );
    }
}

#[test]
fn plain_jcs_vectors_match_rfc8785() {
    let vs = vector_file().jcs;
    assert!(vs.len() >= 100, "{} vectors", vs.len());
    let mut failures = Vec::new();
    for v in &vs {
        let from_text = canonical_json_from_str(&v.input).map(|b| String::from_utf8(b).unwrap());
        match (&v.canonical, &v.expect_error) {
            (Some(want), None) => {
                if from_text.as_ref().ok() != Some(want) {
                    failures.push(format!("{}: text form gives {from_text:?}", v.name));
                }
                // Through a serde_json::Value, as callers with a parsed document do.
                let value: Value = serde_json::from_str(&v.input).unwrap();
                let from_value = to_canonical_json(&value).map(|b| String::from_utf8(b).unwrap());
                if from_value.as_ref().ok() != Some(want) {
                    failures.push(format!("{}: value form gives {from_value:?}", v.name));
                }
            }
            (None, Some(why)) => {
                if let Ok(got) = from_text {
                    failures.push(format!(
                        "{}: rfc8785 refuses ({why}), we give {got}",
                        v.name
                    ));
                }
            }
            _ => failures.push(format!("{}: needs canonical or expect_error", v.name)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn signatures_match_the_independent_vectors_and_verify() {
    for v in vectors().iter().filter(|v| v.signature.is_some()) {
        let (_, digest) = compute(v);
        let context = v.context.as_deref().unwrap();
        assert!([APPROVAL_CONTEXT, REVOCATION_CONTEXT].contains(&context));
        let signer = KeyPair::from_seed("vector", v.signer_seed.as_deref().unwrap());
        assert_eq!(signer.public().to_hex(), v.signer_public.clone().unwrap());
        let ours = signer.sign(context, &digest);
        let theirs: oar_host::keys::Signature =
            serde_json::from_value(serde_json::json!(v.signature.clone().unwrap())).unwrap();
        // Ed25519 is deterministic: the same key and message give the same signature.
        assert_eq!(ours, theirs, "{}", v.name);
        let key = PublicKey::from_hex(v.signer_public.as_deref().unwrap()).unwrap();
        assert!(key.verify(context, &digest, &theirs));
        // The same signature does not verify under the other context or a changed digest.
        let other = if context == APPROVAL_CONTEXT {
            REVOCATION_CONTEXT
        } else {
            APPROVAL_CONTEXT
        };
        assert!(!key.verify(other, &digest, &theirs));
        let mut changed = digest;
        changed[0] ^= 1;
        assert!(!key.verify(context, &changed, &theirs));
    }
}

#[test]
fn whitespace_key_order_and_offsets_do_not_change_the_digest() {
    let v = &vectors()[0];
    let r: ApprovalRecord = serde_json::from_str(&v.document).unwrap();
    // Same instant written with an offset instead of Z.
    let offset = v
        .document
        .replace("2026-01-01T00:00:00Z", "2026-01-01T01:00:00+01:00");
    let r2: ApprovalRecord = serde_json::from_str(&offset).unwrap();
    assert_eq!(r.digest(), r2.digest());
    // The canonical text itself parses back to the same record.
    let r3: ApprovalRecord = serde_json::from_str(&v.canonical).unwrap();
    assert_eq!(r, r3);
}

#[test]
fn fractional_second_timestamps_are_refused_rather_than_truncated() {
    let v = &vectors()[0];
    let doc = v
        .document
        .replace("2026-01-01T00:00:00Z", "2026-01-01T00:00:00.5Z");
    let err = serde_json::from_str::<ApprovalRecord>(&doc)
        .unwrap_err()
        .to_string();
    assert!(err.contains("fractional seconds"), "{err}");
}
