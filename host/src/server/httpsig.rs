//! HTTP Message Signatures (RFC 9421) with ed25519, the subset OAR uses to authenticate
//! requesters, with the body bound through `Content-Digest` (RFC 9530).
//!
//! Every request signs the components `"@method" "@path" "@query" "content-digest"` with the
//! parameters `created` (Unix seconds), `keyid` (the requester's public key, hex), `alg`
//! (`"ed25519"`) and `nonce` (unique per request). The signature base is built as RFC 9421
//! section 2.5 describes, and signed directly with ed25519 (section 3.3.6). The server checks
//! the key, the signature, the digest, that `created` is within its window, and that the nonce
//! was not seen before (replay).

use crate::keys::{sha256, KeyPair, PublicKey};
use base64::Engine as _;

/// The label of OAR's signature in `Signature-Input` and `Signature`.
pub const LABEL: &str = "oar";
/// The components every request signs, in order.
pub const COMPONENTS: [&str; 4] = ["@method", "@path", "@query", "content-digest"];

/// The headers a signed request carries.
#[derive(Debug, Clone, PartialEq)]
pub struct SignatureHeaders {
    /// `Content-Digest`.
    pub content_digest: String,
    /// `Signature-Input`.
    pub signature_input: String,
    /// `Signature`.
    pub signature: String,
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SigError {
    /// A header is missing.
    #[error("missing header {0}")]
    Missing(&'static str),
    /// A header does not parse.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// The signature does not cover the required components.
    #[error("the signature must cover \"@method\" \"@path\" \"@query\" \"content-digest\"")]
    Components,
    /// The algorithm is not ed25519.
    #[error("only alg=\"ed25519\" is accepted")]
    Algorithm,
    /// The body does not match `Content-Digest`.
    #[error("the body does not match Content-Digest")]
    Digest,
    /// The signature does not verify.
    #[error("the signature does not verify")]
    Invalid,
}

/// `sha-256=:BASE64:` of `body`.
pub fn content_digest(body: &[u8]) -> String {
    format!("sha-256=:{}:", b64().encode(sha256(body)))
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// The `@query` component: `?` followed by the query, or `?` alone (RFC 9421 2.2.7).
pub fn query_component(query: Option<&str>) -> String {
    format!("?{}", query.unwrap_or(""))
}

fn params(created: i64, keyid: &str, nonce: &str) -> String {
    let list = COMPONENTS
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(" ");
    format!("({list});created={created};keyid=\"{keyid}\";alg=\"ed25519\";nonce=\"{nonce}\"")
}

/// The signature base of RFC 9421 section 2.5 for OAR's components.
pub fn signature_base(
    method: &str,
    path: &str,
    query: Option<&str>,
    digest: &str,
    params: &str,
) -> String {
    format!(
        "\"@method\": {}\n\"@path\": {path}\n\"@query\": {}\n\"content-digest\": {digest}\n\"@signature-params\": {params}",
        method.to_ascii_uppercase(),
        query_component(query)
    )
}

/// Signs a request as `key`.
pub fn sign(
    key: &KeyPair,
    method: &str,
    path: &str,
    query: Option<&str>,
    body: &[u8],
    created: i64,
    nonce: &str,
) -> SignatureHeaders {
    let digest = content_digest(body);
    let p = params(created, &key.public().to_hex(), nonce);
    let base = signature_base(method, path, query, &digest, &p);
    SignatureHeaders {
        content_digest: digest,
        signature_input: format!("{LABEL}={p}"),
        signature: format!("{LABEL}=:{}:", b64().encode(key.sign_raw(base.as_bytes()))),
    }
}

/// A verified request's signer and parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Signed {
    /// The signer's key.
    pub key: PublicKey,
    /// `created`, Unix seconds.
    pub created: i64,
    /// The nonce.
    pub nonce: String,
}

/// Checks a request's signature and body digest; the caller then checks the key, the time
/// window and the nonce.
pub fn verify(
    method: &str,
    path: &str,
    query: Option<&str>,
    body: &[u8],
    headers: &SignatureHeaders,
) -> Result<Signed, SigError> {
    if headers.content_digest != content_digest(body) {
        return Err(SigError::Digest);
    }
    let p = headers
        .signature_input
        .strip_prefix(&format!("{LABEL}="))
        .ok_or(SigError::Malformed("Signature-Input"))?;
    let (list, rest) = p
        .strip_prefix('(')
        .and_then(|p| p.split_once(')'))
        .ok_or(SigError::Malformed("Signature-Input"))?;
    let components: Vec<&str> = list.split(' ').map(|c| c.trim_matches('"')).collect();
    if components != COMPONENTS {
        return Err(SigError::Components);
    }
    let mut created = None;
    let mut keyid = None;
    let mut nonce = None;
    let mut alg = None;
    for item in rest.split(';').filter(|s| !s.is_empty()) {
        let (k, v) = item
            .split_once('=')
            .ok_or(SigError::Malformed("Signature-Input"))?;
        let text = || v.trim_matches('"').to_string();
        match k {
            "created" => created = v.parse::<i64>().ok(),
            "keyid" => keyid = Some(text()),
            "nonce" => nonce = Some(text()),
            "alg" => alg = Some(text()),
            _ => return Err(SigError::Malformed("Signature-Input")),
        }
    }
    let (Some(created), Some(keyid), Some(nonce)) = (created, keyid, nonce) else {
        return Err(SigError::Malformed("Signature-Input"));
    };
    if alg.as_deref() != Some("ed25519") {
        return Err(SigError::Algorithm);
    }
    // The base is rebuilt from the parsed values in canonical order, so a header that
    // serializes its parameters differently simply fails to verify.
    let canonical = params(created, &keyid, &nonce);
    if canonical != p {
        return Err(SigError::Malformed("Signature-Input"));
    }
    let key = PublicKey::from_hex(&keyid).map_err(|_| SigError::Malformed("keyid"))?;
    let sig = headers
        .signature
        .strip_prefix(&format!("{LABEL}=:"))
        .and_then(|s| s.strip_suffix(':'))
        .and_then(|s| b64().decode(s).ok())
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .ok_or(SigError::Malformed("Signature"))?;
    let base = signature_base(method, path, query, &headers.content_digest, &canonical);
    if !key.verify_raw(base.as_bytes(), &sig) {
        return Err(SigError::Invalid);
    }
    Ok(Signed {
        key,
        created,
        nonce,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> KeyPair {
        KeyPair::from_seed("r", "requester")
    }

    #[test]
    fn a_signed_request_verifies_and_any_change_does_not() {
        let body = br#"{"module":"abc"}"#;
        let h = sign(&key(), "POST", "/v1/runs", None, body, 1_700_000_000, "n1");
        let ok = verify("POST", "/v1/runs", None, body, &h).unwrap();
        assert_eq!(
            (ok.key, ok.created, ok.nonce.as_str()),
            (key().public(), 1_700_000_000, "n1")
        );
        assert_eq!(
            verify("POST", "/v1/runs", None, b"{}", &h),
            Err(SigError::Digest)
        );
        assert_eq!(
            verify("GET", "/v1/runs", None, body, &h),
            Err(SigError::Invalid)
        );
        assert_eq!(
            verify("POST", "/v1/other", None, body, &h),
            Err(SigError::Invalid)
        );
        assert_eq!(
            verify("POST", "/v1/runs", Some("x=1"), body, &h),
            Err(SigError::Invalid)
        );
        let mut later = h.clone();
        later.signature_input = later.signature_input.replace("1700000000", "1700000001");
        assert_eq!(
            verify("POST", "/v1/runs", None, body, &later),
            Err(SigError::Invalid)
        );
        let mut fewer = h.clone();
        fewer.signature_input = fewer.signature_input.replace(" \"content-digest\"", "");
        assert_eq!(
            verify("POST", "/v1/runs", None, body, &fewer),
            Err(SigError::Components)
        );
    }

    #[test]
    fn the_signature_base_follows_rfc_9421() {
        let base = signature_base(
            "post",
            "/foo",
            Some("param=Value&Pet=dog"),
            "sha-256=:X:",
            "(..)",
        );
        assert_eq!(
            base,
            "\"@method\": POST\n\"@path\": /foo\n\"@query\": ?param=Value&Pet=dog\n\"content-digest\": sha-256=:X:\n\"@signature-params\": (..)"
        );
        // RFC 9530's example: the digest of {"hello": "world"}\n.
        assert_eq!(
            content_digest(b"{\"hello\": \"world\"}\n"),
            "sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:"
        );
    }
}
