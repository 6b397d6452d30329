//! `Content-Digest` (RFC 9530): the digest of the body, which a signature covers so that the
//! signature covers the body.

use crate::Error;
use sfv::{Dictionary, ListEntry, Parser};
use sha2::{Digest, Sha256, Sha512};

const SHA_256: &sfv::KeyRef = sfv::KeyRef::constant("sha-256");

/// `sha-256=:BASE64:`, the `Content-Digest` of `body`.
///
/// ```
/// // RFC 9530's example.
/// assert_eq!(
///     oar_httpsig::content_digest(b"{\"hello\": \"world\"}\n"),
///     "sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:"
/// );
/// ```
pub fn content_digest(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    let mut ser = sfv::DictSerializer::new();
    let _ = ser.bare_item(SHA_256, &digest[..]);
    ser.finish().unwrap_or_default()
}

/// Checks `body` against a `Content-Digest` header value (see [`ContentDigest`]).
pub fn verify_content_digest(header: &str, body: &[u8]) -> Result<(), Error> {
    ContentDigest::parse(header)?.check(body)
}

/// The digests a `Content-Digest` header claims, for the algorithms this crate knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentDigest {
    sha256: Option<[u8; 32]>,
    sha512: Option<[u8; 64]>,
}

impl ContentDigest {
    /// Parses a `Content-Digest` value as a Dictionary. Members `sha-256` and `sha-512` are
    /// read (each must be a byte sequence of the algorithm's length); others are ignored; at
    /// least one known member is required.
    pub fn parse(header: &str) -> Result<ContentDigest, Error> {
        let dict: Dictionary =
            Parser::new(header)
                .parse()
                .map_err(|e: sfv::Error| Error::MalformedHeader {
                    header: "Content-Digest",
                    expected: "Dictionary",
                    reason: e.to_string(),
                })?;
        let member = |name: &str| -> Result<Option<Vec<u8>>, Error> {
            match dict.get(name) {
                None => Ok(None),
                Some(ListEntry::Item(item)) => item
                    .bare_item
                    .as_byte_sequence()
                    .map(|b| Some(b.to_vec()))
                    .ok_or_else(|| Error::MalformedDigest(name.to_string())),
                Some(ListEntry::InnerList(_)) => Err(Error::MalformedDigest(name.to_string())),
            }
        };
        let sha256 = member("sha-256")?
            .map(|b| <[u8; 32]>::try_from(b.as_slice()))
            .transpose()
            .map_err(|_| Error::MalformedDigest("sha-256".into()))?;
        let sha512 = member("sha-512")?
            .map(|b| <[u8; 64]>::try_from(b.as_slice()))
            .transpose()
            .map_err(|_| Error::MalformedDigest("sha-512".into()))?;
        if sha256.is_none() && sha512.is_none() {
            return Err(Error::DigestAlgorithm);
        }
        Ok(ContentDigest { sha256, sha512 })
    }

    /// Checks `body`: every known digest in the header must match it.
    pub fn check(&self, body: &[u8]) -> Result<(), Error> {
        if let Some(expected) = self.sha256 {
            if Sha256::digest(body).as_slice() != expected {
                return Err(Error::DigestMismatch("sha-256".into()));
            }
        }
        if let Some(expected) = self.sha512 {
            if Sha512::digest(body).as_slice() != expected {
                return Err(Error::DigestMismatch("sha-512".into()));
            }
        }
        Ok(())
    }
}
