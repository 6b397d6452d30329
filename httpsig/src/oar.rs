//! OAR's policy for signed requests, on top of the generic verifier.
//!
//! A request is accepted when one of its signatures (any label) meets all of:
//! - it covers `"@method"`, `"@authority"`, `"@path"`, `"@query"` and `"content-digest"`
//!   (whole, without parameters); it may cover more (`date`, `content-type`, ...);
//! - it has `created`, `keyid`, `alg="ed25519"` and a `nonce` (1 to [`MAX_NONCE_LEN`]
//!   printable characters); `expires`, if present, is later than `created` and than now;
//! - `created` is within `window_seconds` of now, in either direction;
//! - `keyid` resolves to a valid, not weak, ed25519 key and the signature verifies over the
//!   base rebuilt from what the signer listed;
//! - the body matches `Content-Digest` (checked last, by [`Pending::check_body`], so a server
//!   can authenticate before it reads a large body).
//!
//! Covering `@authority` binds a request to the holder it was sent to: a request signed for
//! holder A does not verify at holder B. The nonce is returned, not checked: the caller keeps
//! the nonces it has seen (for at least the window) and refuses a repeat.

use crate::message::WithHeader;
use crate::verify::verify_input;
use crate::{
    content_digest, sign, ComponentId, ContentDigest, Error, KeyResolver, Message, SignatureInput,
    SignatureParams, SignatureSet,
};
use ed25519_dalek::{SigningKey, VerifyingKey};

/// The label OAR's own client signs under (the verifier accepts any label).
pub const LABEL: &str = "oar";
/// The components every OAR request signature must cover, in the order OAR's client signs them.
pub const COMPONENTS: [&str; 5] = ["@method", "@authority", "@path", "@query", "content-digest"];
/// The longest nonce accepted, in characters.
pub const MAX_NONCE_LEN: usize = 256;

/// A request whose signature and body were both verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The signer's ed25519 public key.
    pub key: [u8; 32],
    /// The signature's `keyid`, as sent.
    pub keyid: String,
    /// `created`, Unix seconds.
    pub created: i64,
    /// `expires`, Unix seconds, if the signer set it.
    pub expires: Option<i64>,
    /// The nonce: the caller must refuse a nonce it has already seen.
    pub nonce: String,
    /// The label of the signature that was accepted.
    pub label: String,
}

/// A request whose signature verified but whose body is not yet checked.
///
/// The signature covers the `Content-Digest` header, so once [`Pending::check_body`] confirms
/// that the body matches it, the body is authenticated too. Until then nothing about the body
/// may be trusted.
#[derive(Debug, Clone)]
#[must_use = "the body is not verified until Pending::check_body is called"]
pub struct Pending {
    head: Verified,
    digest: ContentDigest,
}

impl Pending {
    /// The signer's public key.
    pub fn key(&self) -> &[u8; 32] {
        &self.head.key
    }
    /// The signature's `keyid`.
    pub fn keyid(&self) -> &str {
        &self.head.keyid
    }
    /// The nonce (check it against the nonces already seen before reading the body).
    pub fn nonce(&self) -> &str {
        &self.head.nonce
    }
    /// `created`, Unix seconds.
    pub fn created(&self) -> i64 {
        self.head.created
    }
    /// `expires`, Unix seconds, if set.
    pub fn expires(&self) -> Option<i64> {
        self.head.expires
    }
    /// The label of the signature that verified.
    pub fn label(&self) -> &str {
        &self.head.label
    }

    /// Checks the body against the signed `Content-Digest`: every `sha-256` / `sha-512` member
    /// must match. Only then is the request verified.
    pub fn check_body(self, body: &[u8]) -> Result<Verified, Error> {
        self.digest.check(body)?;
        Ok(self.head)
    }
}

/// Authenticates a request before its body is read: finds a signature that meets OAR's policy
/// (see the module documentation) and verifies it. The body is then checked with
/// [`Pending::check_body`].
///
/// When no signature is accepted, the error is the one from the signature that got furthest
/// through the checks (parse, policy, time, key, signature, digest), the first one on a tie.
pub fn authenticate_head<M, K>(
    msg: &M,
    now_unix: i64,
    window_seconds: i64,
    keys: &K,
) -> Result<Pending, Error>
where
    M: Message + ?Sized,
    K: KeyResolver + ?Sized,
{
    let set = SignatureSet::from_message(msg)?;
    let mut best: Option<(Stage, Error)> = None;
    for label in set.labels() {
        match check_label(msg, &set, label, now_unix, window_seconds, keys) {
            Ok(pending) => return Ok(pending),
            Err((stage, error)) => {
                if best.as_ref().is_none_or(|(s, _)| stage > *s) {
                    best = Some((stage, error));
                }
            }
        }
    }
    Err(best.map_or(Error::MissingHeader("Signature-Input"), |(_, e)| e))
}

/// [`authenticate_head`] then [`Pending::check_body`]: the whole check for a request whose
/// body is already read.
pub fn verify_request<M, K>(
    msg: &M,
    body: &[u8],
    now_unix: i64,
    window_seconds: i64,
    keys: &K,
) -> Result<Verified, Error>
where
    M: Message + ?Sized,
    K: KeyResolver + ?Sized,
{
    authenticate_head(msg, now_unix, window_seconds, keys)?.check_body(body)
}

/// How far a signature got through the checks; the furthest one's error is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Parse,
    Policy,
    Time,
    Key,
    Signature,
    Digest,
}

fn check_label<M, K>(
    msg: &M,
    set: &SignatureSet,
    label: &str,
    now: i64,
    window: i64,
    keys: &K,
) -> Result<Pending, (Stage, Error)>
where
    M: Message + ?Sized,
    K: KeyResolver + ?Sized,
{
    let input = set.input(label).map_err(|e| (Stage::Parse, e))?;
    let signature = set.signature(label).map_err(|e| (Stage::Parse, e))?;
    let head = policy(&input, now, window)?;
    verify_input(msg, &input, &signature, keys)
        .map_err(|e| match e {
            Error::UnknownKey(_) | Error::InvalidKey(_) | Error::WeakKey(_) => (Stage::Key, e),
            e => (Stage::Signature, e),
        })
        .and_then(|key| {
            let header = msg
                .header_values("content-digest")
                .iter()
                .map(|v| v.trim_matches([' ', '\t']))
                .collect::<Vec<_>>()
                .join(", ");
            let digest = ContentDigest::parse(&header).map_err(|e| (Stage::Digest, e))?;
            Ok(Pending {
                head: Verified { key, ..head },
                digest,
            })
        })
}

/// The policy checks that need no key: components, parameters and time.
fn policy(input: &SignatureInput, now: i64, window: i64) -> Result<Verified, (Stage, Error)> {
    let refuse = |e| (Stage::Policy, e);
    if let Some(missing) = COMPONENTS.into_iter().find(|c| !input.covers(c)) {
        return Err(refuse(Error::MissingComponent(missing)));
    }
    let p = input.params();
    let created = p
        .created
        .ok_or(Error::MissingParameter("created"))
        .map_err(refuse)?;
    let keyid = p
        .keyid
        .clone()
        .ok_or(Error::MissingParameter("keyid"))
        .map_err(refuse)?;
    match p.alg.as_deref() {
        None => return Err(refuse(Error::MissingParameter("alg"))),
        Some("ed25519") => {}
        Some(other) => return Err(refuse(Error::Algorithm(other.to_string()))),
    }
    let nonce = p
        .nonce
        .clone()
        .ok_or(Error::MissingParameter("nonce"))
        .map_err(refuse)?;
    if nonce.is_empty() || nonce.len() > MAX_NONCE_LEN {
        return Err(refuse(Error::InvalidParameter {
            param: "nonce",
            reason: format!("must be 1 to {MAX_NONCE_LEN} characters"),
        }));
    }
    if let Some(expires) = p.expires {
        if expires <= created {
            return Err(refuse(Error::InvalidParameter {
                param: "expires",
                reason: "must be later than created".into(),
            }));
        }
    }
    let late = |e| (Stage::Time, e);
    let window = window.max(0);
    if created.saturating_sub(now) > window {
        return Err(late(Error::FromTheFuture {
            created,
            now,
            window,
        }));
    }
    if now.saturating_sub(created) > window {
        return Err(late(Error::Stale {
            created,
            now,
            window,
        }));
    }
    if let Some(expires) = p.expires {
        if expires <= now {
            return Err(late(Error::Expired { expires, now }));
        }
    }
    Ok(Verified {
        key: [0; 32],
        keyid,
        created,
        expires: p.expires,
        nonce,
        label: input.label().to_string(),
    })
}

/// The headers OAR's client adds to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// `Content-Digest`: `sha-256=:BASE64:` of the body.
    pub content_digest: String,
    /// `Signature-Input`.
    pub signature_input: String,
    /// `Signature`.
    pub signature: String,
}

/// Signs a request as OAR's client does: label `oar`, components
/// `"@method" "@authority" "@path" "@query" "content-digest"` (the digest of `body`, computed
/// here), parameters `created`, `keyid` (hex of the public key), `alg="ed25519"`, `nonce`.
///
/// `msg` needs no `Content-Digest` header: the returned one is what was signed, and must be
/// sent with the request.
pub fn sign_request<M: Message + ?Sized>(
    msg: &M,
    body: &[u8],
    key: &SigningKey,
    created: i64,
    nonce: &str,
) -> Result<SignedRequest, Error> {
    let digest = content_digest(body);
    let view = WithHeader {
        inner: msg,
        name: "content-digest",
        value: &digest,
    };
    let components = COMPONENTS
        .iter()
        .map(|c| ComponentId::parse(c))
        .collect::<Result<Vec<_>, _>>()?;
    let params = SignatureParams {
        created: Some(created),
        keyid: Some(keyid_of(&key.verifying_key())),
        alg: Some("ed25519".into()),
        nonce: Some(nonce.to_string()),
        ..SignatureParams::default()
    };
    let input = SignatureInput::new(LABEL, components, params)?;
    let headers = sign(&view, &input, key)?;
    Ok(SignedRequest {
        content_digest: digest,
        signature_input: headers.signature_input,
        signature: headers.signature,
    })
}

/// OAR's `keyid` for a key: the 64 lowercase hex digits of the public key.
pub fn keyid_of(key: &VerifyingKey) -> String {
    key.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// The public key an OAR `keyid` names: exactly 64 lowercase hex digits (the one spelling
/// [`keyid_of`] produces, so a key has one `keyid`). `None` otherwise. This only decodes; the
/// resolver must still check that the key is registered.
pub fn key_from_keyid(keyid: &str) -> Option<[u8; 32]> {
    let digits = keyid.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let nibble = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    let mut key = [0u8; 32];
    for (out, pair) in key.iter_mut().zip(digits.chunks_exact(2)) {
        *out = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(key)
}
