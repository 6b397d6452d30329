//! Canonical-encoding test vectors: the Rust implementation must reproduce, byte for byte, the
//! canonical JSON, digests and signatures that `tests/vectors/make_vectors.py` computed with
//! Python's `json`, `hashlib` and `cryptography` (independent of this code). If these pass on a
//! machine, approvals and revocation lists signed there verify everywhere.

use oar_host::approval::{ApprovalRecord, APPROVAL_CONTEXT};
use oar_host::bundle::Manifest;
use oar_host::canonical::to_canonical_json;
use oar_host::keys::{KeyPair, PublicKey};
use oar_host::revocation::{RevocationList, REVOCATION_CONTEXT};
use serde::Deserialize;

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

fn vectors() -> Vec<Vector> {
    serde_json::from_str(include_str!("vectors/canonical.json")).expect("vector file parses")
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
    }
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
