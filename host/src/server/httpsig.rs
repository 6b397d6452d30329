//! OAR's signed requests: HTTP Message Signatures (RFC 9421) with ed25519, the body bound
//! through `Content-Digest` (RFC 9530). The generic verifier and OAR's policy live in the
//! `oar-httpsig` crate (checked against the RFC's own ed25519 example and against Python's and
//! npm's `http-message-signatures`); this module adapts it to the server's requests and to
//! OAR's key files.
//!
//! A request must cover `"@method" "@authority" "@path" "@query" "content-digest"` with
//! `created`, `keyid` (the requester's public key, hex), `alg="ed25519"` and a `nonce`; any
//! label; it may cover more and carry `expires`. Covering `@authority` binds a request to the
//! holder it was sent to; the server also checks that the authority is one of its own names.

use crate::keys::KeyPair;
use oar_httpsig::Message;

pub use oar_httpsig::oar::{Pending, Verified, COMPONENTS, LABEL};
pub use oar_httpsig::{content_digest, Error as SigError};

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

/// Signs a request to `url` (`http[s]://authority/path?query`) as `key`, the way `oar submit`
/// does.
pub fn sign(
    key: &KeyPair,
    method: &str,
    url: &str,
    body: &[u8],
    created: i64,
    nonce: &str,
) -> Result<SignatureHeaders, SigError> {
    let request = oar_httpsig::Request::new(method, url)?;
    let signed = oar_httpsig::oar::sign_request(&request, body, key.signing_key(), created, nonce)?;
    Ok(SignatureHeaders {
        content_digest: signed.content_digest,
        signature_input: signed.signature_input,
        signature: signed.signature,
    })
}

/// A received request's head, as the verifier reads it.
pub(crate) struct RequestHead<'a> {
    /// The request line and headers.
    pub parts: &'a axum::http::request::Parts,
    /// `http` or `https`: how this listener is reached.
    pub scheme: &'a str,
}

impl Message for RequestHead<'_> {
    fn method(&self) -> &str {
        self.parts.method.as_str()
    }

    fn scheme(&self) -> &str {
        self.scheme
    }

    fn authority(&self) -> &str {
        self.parts
            .headers
            .get(axum::http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .or_else(|| self.parts.uri.authority().map(|a| a.as_str()))
            .unwrap_or("")
    }

    fn path(&self) -> &str {
        self.parts.uri.path()
    }

    fn query(&self) -> Option<&str> {
        self.parts.uri.query()
    }

    fn header_values(&self, name: &str) -> Vec<&str> {
        self.parts
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_signed_by_the_client_verifies_with_oar_policy() {
        let key = KeyPair::from_seed("r", "requester");
        let body = br#"{"module":"abc"}"#;
        let h = sign(
            &key,
            "POST",
            "http://127.0.0.1:8420/v1/runs",
            body,
            1_700_000_000,
            "n1",
        )
        .unwrap();
        let request = oar_httpsig::Request::new("POST", "http://127.0.0.1:8420/v1/runs")
            .unwrap()
            .with_header("content-digest", &h.content_digest)
            .with_header("signature-input", &h.signature_input)
            .with_header("signature", &h.signature);
        let resolve = |id: &str| oar_httpsig::oar::key_from_keyid(id);
        let ok =
            oar_httpsig::oar::verify_request(&request, body, 1_700_000_000, 300, &resolve).unwrap();
        assert_eq!(ok.key, *key.public().as_bytes());
        assert!(h
            .signature_input
            .starts_with("oar=(\"@method\" \"@authority\""));
    }
}
