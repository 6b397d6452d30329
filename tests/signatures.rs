//! Bundles and approvals: every way a module can fail verification is refused with its own error.

mod common;

use common::{approval, bundle, component, World};
use oar_host::approval::Approval;
use oar_host::keys::KeyPair;
use oar_host::verify::{verify, VerifyError};

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

#[test]
fn signed_and_approved_module_verifies() {
    let w = World::new(1, 1);
    let b = bundle(&w, component("population"));
    let a = approval(&w, &b, 1);
    let v = verify(
        &b,
        &a,
        &w.policy,
        &oar_host::revocation::RevocationList::empty(),
        now(),
    )
    .expect("verifies");
    assert_eq!(v.module_hash(), b.module_hash);
    assert_eq!(v.signers(), &[w.members[0].public()]);
}

#[test]
fn tampered_component_bytes_are_refused() {
    let w = World::new(1, 1);
    let mut b = bundle(&w, component("population"));
    let a = approval(&w, &b, 1);
    let last = b.component.len() - 1;
    b.component[last] ^= 0x01;
    assert!(matches!(
        verify(
            &b,
            &a,
            &w.policy,
            &oar_host::revocation::RevocationList::empty(),
            now()
        ),
        Err(VerifyError::ComponentTampered { .. })
    ));
}

#[test]
fn tampered_component_with_updated_hash_fails_the_author_signature() {
    let w = World::new(1, 1);
    let mut b = bundle(&w, component("population"));
    let a = approval(&w, &b, 1);
    b.component.push(0);
    b.module_hash = hex::encode(oar_host::keys::sha256(&b.component));
    assert_eq!(
        verify(
            &b,
            &a,
            &w.policy,
            &oar_host::revocation::RevocationList::empty(),
            now()
        )
        .unwrap_err(),
        VerifyError::BadAuthorSignature
    );
}

#[test]
fn manifest_edited_after_signing_is_refused() {
    let w = World::new(1, 1);
    let mut b = bundle(&w, component("population"));
    let a = approval(&w, &b, 1);
    b.manifest.datasets[0].columns.push("cell_id".into());
    assert_eq!(
        verify(
            &b,
            &a,
            &w.policy,
            &oar_host::revocation::RevocationList::empty(),
            now()
        )
        .unwrap_err(),
        VerifyError::BadAuthorSignature
    );
}

#[test]
fn bundle_signed_by_an_untrusted_author_is_refused() {
    let w = World::new(1, 1);
    let stranger = KeyPair::from_seed("stranger", "not an author");
    let b = oar_host::bundle::Bundle::sign(component("population"), common::manifest(), &stranger);
    let a = approval(&w, &b, 1);
    assert!(matches!(
        verify(
            &b,
            &a,
            &w.policy,
            &oar_host::revocation::RevocationList::empty(),
            now()
        ),
        Err(VerifyError::UntrustedAuthor { .. })
    ));
}

#[test]
fn approval_signed_by_a_key_outside_the_committee_is_refused() {
    let w = World::new(1, 1);
    let b = bundle(&w, component("population"));
    let mut a = approval(&w, &b, 0);
    a.sign(&KeyPair::from_seed("impostor", "not a member"));
    match verify(
        &b,
        &a,
        &w.policy,
        &oar_host::revocation::RevocationList::empty(),
        now(),
    )
    .unwrap_err()
    {
        VerifyError::QuorumNotMet {
            valid: 0,
            quorum: 1,
            ignored,
        } => {
            assert!(
                ignored[0].contains("not on the committee roster"),
                "{ignored:?}"
            )
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn approval_for_another_module_is_refused() {
    let w = World::new(1, 1);
    let b = bundle(&w, component("population"));
    let other = bundle(&w, component("oar_test_guest_greedy"));
    let a = approval(&w, &other, 1);
    assert!(matches!(
        verify(
            &b,
            &a,
            &w.policy,
            &oar_host::revocation::RevocationList::empty(),
            now()
        ),
        Err(VerifyError::ApprovalForOtherModule { .. })
    ));
}

#[test]
fn expired_approval_is_refused() {
    let w = World::new(1, 1);
    let b = bundle(&w, component("population"));
    let a = approval(&w, &b, 1);
    let later = a.record.valid_until + chrono::Duration::seconds(1);
    assert!(matches!(
        verify(
            &b,
            &a,
            &w.policy,
            &oar_host::revocation::RevocationList::empty(),
            later
        ),
        Err(VerifyError::ApprovalExpired { .. })
    ));
}

#[test]
fn approval_not_yet_valid_is_refused() {
    let w = World::new(1, 1);
    let b = bundle(&w, component("population"));
    let a = approval(&w, &b, 1);
    let earlier = a.record.valid_from - chrono::Duration::seconds(1);
    assert!(matches!(
        verify(
            &b,
            &a,
            &w.policy,
            &oar_host::revocation::RevocationList::empty(),
            earlier
        ),
        Err(VerifyError::ApprovalNotYetValid { .. })
    ));
}

#[test]
fn extending_the_approval_after_signing_invalidates_the_signatures() {
    let w = World::new(1, 1);
    let b = bundle(&w, component("population"));
    let mut a = approval(&w, &b, 1);
    a.record.valid_until += chrono::Duration::days(365);
    match verify(
        &b,
        &a,
        &w.policy,
        &oar_host::revocation::RevocationList::empty(),
        now(),
    )
    .unwrap_err()
    {
        VerifyError::QuorumNotMet {
            valid: 0, ignored, ..
        } => assert!(ignored[0].contains("does not verify")),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn quorum_needs_k_distinct_members() {
    let w = World::new(2, 3);
    let b = bundle(&w, component("population"));
    let one = approval(&w, &b, 1);
    assert!(matches!(
        verify(
            &b,
            &one,
            &w.policy,
            &oar_host::revocation::RevocationList::empty(),
            now()
        ),
        Err(VerifyError::QuorumNotMet {
            valid: 1,
            quorum: 2,
            ..
        })
    ));
    // The same member's signature twice counts once.
    let mut twice: Approval = one.clone();
    twice.signatures.push(twice.signatures[0].clone());
    assert!(matches!(
        verify(
            &b,
            &twice,
            &w.policy,
            &oar_host::revocation::RevocationList::empty(),
            now()
        ),
        Err(VerifyError::QuorumNotMet { valid: 1, .. })
    ));
    let two = approval(&w, &b, 2);
    assert_eq!(
        verify(
            &b,
            &two,
            &w.policy,
            &oar_host::revocation::RevocationList::empty(),
            now()
        )
        .unwrap()
        .signers()
        .len(),
        2
    );
}

#[test]
fn bundle_and_approval_files_round_trip() {
    let w = World::new(1, 1);
    let dir = tempfile::tempdir().unwrap();
    let b = bundle(&w, component("population"));
    let a = approval(&w, &b, 1);
    b.write(&dir.path().join("m.oarb")).unwrap();
    a.write(&dir.path().join("a.json")).unwrap();
    let b2 = oar_host::bundle::Bundle::read(&dir.path().join("m.oarb")).unwrap();
    let a2 = Approval::read(&dir.path().join("a.json")).unwrap();
    verify(
        &b2,
        &a2,
        &w.policy,
        &oar_host::revocation::RevocationList::empty(),
        now(),
    )
    .expect("verifies after a round trip through files");
    std::fs::write(dir.path().join("bad.oarb"), b"{not json").unwrap();
    assert!(oar_host::bundle::Bundle::read(&dir.path().join("bad.oarb")).is_err());
}

#[test]
fn wycheproof_ed25519_vectors_pin_what_oar_accepts() {
    // Project Wycheproof's EdDSA vectors: every "valid" signature is accepted, every "invalid"
    // one refused (malleable S, non-canonical encodings, small-order keys and commitments,
    // truncated or padded signatures), and the "acceptable" ones are refused too: OAR's
    // verification is strict, so a message has one valid signature per key.
    use wycheproof::eddsa::{TestName, TestSet};
    use wycheproof::TestResult;
    let set = TestSet::load(TestName::Ed25519).expect("the Wycheproof Ed25519 set loads");
    let (mut valid, mut refused) = (0, 0);
    for group in &set.test_groups {
        let key = oar_host::keys::PublicKey::from_hex(&hex::encode(group.key.pk.as_slice())).ok();
        for t in &group.tests {
            let accepted = match (&key, <[u8; 64]>::try_from(t.sig.as_slice())) {
                (Some(k), Ok(sig)) => k.verify_raw(t.msg.as_slice(), &sig),
                _ => false,
            };
            match t.result {
                TestResult::Valid => {
                    assert!(accepted, "tcId {} ({}) must verify", t.tc_id, t.comment);
                    valid += 1;
                }
                _ => {
                    assert!(
                        !accepted,
                        "tcId {} ({}) must be refused",
                        t.tc_id, t.comment
                    );
                    refused += 1;
                }
            }
        }
    }
    assert!(
        valid > 50 && refused > 50,
        "{valid} valid, {refused} refused"
    );
}

#[test]
fn a_small_order_key_is_nobody_s_key_and_verifies_nothing() {
    // Finding 12.10: bundles, approvals, revocations, releases and audit heads were checked
    // with the lenient `verify`, and weak keys were accepted. The identity point as a key,
    // with R = identity and S = 0, "verified" every message under the lenient check.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let err = oar_host::keys::PublicKey::from_hex(&hex::encode(identity)).unwrap_err();
    assert!(err.to_string().contains("weak"), "{err}");
    let mut forged = [0u8; 64];
    forged[0] = 1;
    let lenient = ed25519_dalek::VerifyingKey::from_bytes(&identity).unwrap();
    use ed25519_dalek::Verifier as _;
    assert!(
        lenient
            .verify(
                b"any message",
                &ed25519_dalek::Signature::from_bytes(&forged)
            )
            .is_ok(),
        "the lenient check accepts the forgery, which is why OAR does not use it"
    );
    assert!(lenient
        .verify_strict(
            b"any message",
            &ed25519_dalek::Signature::from_bytes(&forged)
        )
        .is_err());
}
