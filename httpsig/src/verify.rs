//! The generic verifier: one label's ed25519 signature over the base its signer listed.

use crate::{signature_base, Error, Message, SignatureInput, SignatureSet};
use ed25519_dalek::{Signature, VerifyingKey};

/// Finds the public key for a signature's `keyid`.
///
/// Any `Fn(&str) -> Option<[u8; 32]>` is a resolver. In OAR the `keyid` is the hex of the
/// requester's public key, so a resolver decodes it ([`crate::oar::key_from_keyid`]) and checks
/// the key is registered.
pub trait KeyResolver {
    /// The ed25519 public key for `keyid`, or `None` when the key is unknown.
    fn resolve(&self, keyid: &str) -> Option<[u8; 32]>;
}

impl<F: Fn(&str) -> Option<[u8; 32]>> KeyResolver for F {
    fn resolve(&self, keyid: &str) -> Option<[u8; 32]> {
        self(keyid)
    }
}

/// A signature that verified, with what it covers.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedSignature {
    /// The signer's public key.
    pub key: [u8; 32],
    /// The label, covered components and parameters, as the signer sent them.
    pub input: SignatureInput,
}

/// Verifies the signature labelled `label` on `msg`, whatever components it covers.
///
/// Checks: `alg`, if present, is `ed25519`; `keyid` is present and `keys` knows it; the key is
/// a valid, not weak, ed25519 key; the signature verifies (`verify_strict`) over the base
/// rebuilt from the received components and parameters. It checks no time, nonce or required
/// component: that is the caller's policy (see [`crate::oar`] for OAR's).
pub fn verify<M, K>(msg: &M, label: &str, keys: &K) -> Result<VerifiedSignature, Error>
where
    M: Message + ?Sized,
    K: KeyResolver + ?Sized,
{
    let set = SignatureSet::from_message(msg)?;
    let input = set.input(label)?;
    let signature = set.signature(label)?;
    let key = verify_input(msg, &input, &signature, keys)?;
    Ok(VerifiedSignature { key, input })
}

/// Verifies `signature` for `input` over `msg` (the checks of [`verify`]); returns the key.
pub fn verify_input<M, K>(
    msg: &M,
    input: &SignatureInput,
    signature: &[u8; 64],
    keys: &K,
) -> Result<[u8; 32], Error>
where
    M: Message + ?Sized,
    K: KeyResolver + ?Sized,
{
    if let Some(alg) = &input.params().alg {
        if alg != "ed25519" {
            return Err(Error::Algorithm(alg.clone()));
        }
    }
    let keyid = input
        .params()
        .keyid
        .as_deref()
        .ok_or(Error::MissingParameter("keyid"))?;
    let bytes = keys
        .resolve(keyid)
        .ok_or_else(|| Error::UnknownKey(keyid.to_string()))?;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| Error::InvalidKey(keyid.to_string()))?;
    if key.is_weak() {
        return Err(Error::WeakKey(keyid.to_string()));
    }
    let base = signature_base(msg, input)?;
    key.verify_strict(base.as_bytes(), &Signature::from_bytes(signature))
        .map_err(|_| Error::BadSignature(input.label().to_string()))?;
    Ok(bytes)
}
