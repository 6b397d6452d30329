//! ed25519 keys: generation, files, and domain-separated signatures.
//!
//! Every signature in OAR is over a SHA-256 digest prefixed by a *context* string naming what is
//! signed (`oar-bundle-v1`, `oar-approval-v1`, ...), so a signature on one kind of artifact can never
//! be replayed as another.

use ed25519_dalek::Signer;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// Errors reading or using keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The key file is not an OAR key.
    #[error("key file {path} is not a valid OAR key: {reason}")]
    Malformed {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A hex-encoded public key or signature did not decode.
    #[error("invalid {what}: {reason}")]
    Encoding {
        /// What was being decoded.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// A public key, shown and stored as 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Result<Self, KeyError> {
        let bytes = hex::decode(s.trim()).map_err(|e| KeyError::Encoding {
            what: "public key",
            reason: e.to_string(),
        })?;
        let arr: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Encoding {
            what: "public key",
            reason: "expected 32 bytes (64 hex digits)".into(),
        })?;
        let key =
            ed25519_dalek::VerifyingKey::from_bytes(&arr).map_err(|e| KeyError::Encoding {
                what: "public key",
                reason: e.to_string(),
            })?;
        // A small-order key verifies signatures nobody made: never a party's key.
        if key.is_weak() {
            return Err(KeyError::Encoding {
                what: "public key",
                reason: "a weak (small-order) key cannot be anyone's key".into(),
            });
        }
        Ok(PublicKey(arr))
    }

    /// The key's 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key as hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Checks `signature` over `digest` in signing context `context`. Strict (RFC 8032 with
    /// canonical encodings, no small-order keys or commitments), so one message has one valid
    /// signature per key.
    pub fn verify(&self, context: &str, digest: &[u8; 32], signature: &Signature) -> bool {
        let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&self.0) else {
            return false;
        };
        let sig = ed25519_dalek::Signature::from_bytes(&signature.0);
        !key.is_weak()
            && key
                .verify_strict(&signed_message(context, digest), &sig)
                .is_ok()
    }

    /// Checks a plain ed25519 signature over `message` (HTTP message signatures sign their
    /// signature base directly, as RFC 9421 specifies for ed25519).
    pub fn verify_raw(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(&self.0) else {
            return false;
        };
        !key.is_weak()
            && key
                .verify_strict(message, &ed25519_dalek::Signature::from_bytes(signature))
                .is_ok()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}
impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
impl Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}
impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PublicKey::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// Whether `a` and `b` are equal, in time that does not depend on where they differ (for
/// comparing secrets: tokens, tags).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An ed25519 signature, stored as 128 hex digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature([u8; 64]);

impl Signature {
    /// The signature as 128 hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}…)", &hex::encode(self.0)[..16])
    }
}
impl Serialize for Signature {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}
impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let bytes = hex::decode(s.trim()).map_err(serde::de::Error::custom)?;
        let arr: [u8; 64] = bytes
            .try_into()
            .map_err(|_| serde::de::Error::custom("a signature is 64 bytes (128 hex digits)"))?;
        Ok(Signature(arr))
    }
}

/// A secret signing key with the name of whoever holds it.
#[derive(Clone)]
pub struct KeyPair {
    name: String,
    key: ed25519_dalek::SigningKey,
}

#[derive(Serialize, Deserialize)]
struct SecretKeyFile {
    kind: String,
    algorithm: String,
    name: String,
    public: PublicKey,
    secret: String,
}

/// The public half of a key file, as shared with a data holder or committee.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PublicKeyFile {
    /// Always `oar-public-key`.
    pub kind: String,
    /// Always `ed25519`.
    pub algorithm: String,
    /// Who holds the key.
    pub name: String,
    /// The key.
    pub public: PublicKey,
}

impl KeyPair {
    /// A fresh key from the operating system's randomness.
    pub fn generate(name: &str) -> Self {
        let key = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
        KeyPair {
            name: name.to_string(),
            key,
        }
    }

    /// A key derived from a seed: only for reproducible examples and tests, never for real use.
    pub fn from_seed(name: &str, seed: &str) -> Self {
        use sha2::Digest;
        let bytes: [u8; 32] = sha2::Sha256::digest(seed.as_bytes()).into();
        KeyPair {
            name: name.to_string(),
            key: ed25519_dalek::SigningKey::from_bytes(&bytes),
        }
    }

    /// Who holds the key.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.key.verifying_key().to_bytes())
    }

    /// Signs `digest` in signing context `context`.
    pub fn sign(&self, context: &str, digest: &[u8; 32]) -> Signature {
        Signature(self.key.sign(&signed_message(context, digest)).to_bytes())
    }

    /// A plain ed25519 signature over `message` (for HTTP message signatures).
    pub fn sign_raw(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }

    /// The ed25519 signing key (for signing HTTP requests with `oar-httpsig`).
    pub fn signing_key(&self) -> &ed25519_dalek::SigningKey {
        &self.key
    }

    /// Writes `DIR/NAME.key` (secret, mode 0600) and `DIR/NAME.pub`; returns both paths.
    pub fn write(&self, dir: &Path) -> Result<(std::path::PathBuf, std::path::PathBuf), KeyError> {
        let secret_path = dir.join(format!("{}.key", self.name));
        let public_path = dir.join(format!("{}.pub", self.name));
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| KeyError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let secret = SecretKeyFile {
            kind: "oar-secret-key".into(),
            algorithm: "ed25519".into(),
            name: self.name.clone(),
            public: self.public(),
            secret: hex::encode(self.key.to_bytes()),
        };
        write_private(&secret_path, &to_json(&secret)).map_err(io(&secret_path))?;
        let public = PublicKeyFile {
            kind: "oar-public-key".into(),
            algorithm: "ed25519".into(),
            name: self.name.clone(),
            public: self.public(),
        };
        std::fs::write(&public_path, to_json(&public)).map_err(io(&public_path))?;
        Ok((secret_path, public_path))
    }

    /// Reads a secret key file written by [`KeyPair::write`].
    pub fn read(path: &Path) -> Result<Self, KeyError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: shown.clone(),
            source,
        })?;
        let malformed = |reason: String| KeyError::Malformed {
            path: shown.clone(),
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| malformed(format!("not JSON: {e}")))?;
        let kind = value
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or("unknown kind");
        if kind != "oar-secret-key" {
            return Err(malformed(format!(
                "expected an oar-secret-key, found {kind} (is this a .pub file? sign with the .key file)"
            )));
        }
        let file: SecretKeyFile =
            serde_json::from_value(value).map_err(|e| malformed(e.to_string()))?;
        if file.algorithm != "ed25519" {
            return Err(malformed(format!(
                "unsupported algorithm {}",
                file.algorithm
            )));
        }
        let bytes: [u8; 32] = hex::decode(&file.secret)
            .map_err(|e| malformed(e.to_string()))?
            .try_into()
            .map_err(|_| malformed("secret is not 32 bytes".into()))?;
        let pair = KeyPair {
            name: file.name,
            key: ed25519_dalek::SigningKey::from_bytes(&bytes),
        };
        if pair.public() != file.public {
            return Err(malformed("public key does not match the secret".into()));
        }
        Ok(pair)
    }
}

/// Reads a public key file, or a bare hex key.
pub fn read_public(path: &Path) -> Result<PublicKeyFile, KeyError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
        path: shown.clone(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| KeyError::Malformed {
        path: shown,
        reason: e.to_string(),
    })
}

fn signed_message(context: &str, digest: &[u8; 32]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(context.len() + 33);
    msg.extend_from_slice(context.as_bytes());
    msg.push(0);
    msg.extend_from_slice(digest);
    msg
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).expect("key files serialize") + "\n"
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(text.as_bytes())
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// SHA-256 over several parts, each length-prefixed so that part boundaries are unambiguous.
pub fn sha256_parts(parts: &[&[u8]]) -> [u8; 32] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_verifies_only_in_its_context_and_for_its_digest() {
        let k = KeyPair::from_seed("a", "seed");
        let d = sha256(b"x");
        let s = k.sign("oar-bundle-v1", &d);
        assert!(k.public().verify("oar-bundle-v1", &d, &s));
        assert!(!k.public().verify("oar-approval-v1", &d, &s));
        assert!(!k.public().verify("oar-bundle-v1", &sha256(b"y"), &s));
    }

    #[test]
    fn key_files_round_trip_and_reject_public_files() {
        let dir = tempfile::tempdir().unwrap();
        let k = KeyPair::generate("alice");
        let (secret, public) = k.write(dir.path()).unwrap();
        assert_eq!(KeyPair::read(&secret).unwrap().public(), k.public());
        assert_eq!(read_public(&public).unwrap().public, k.public());
        assert!(matches!(
            KeyPair::read(&public),
            Err(KeyError::Malformed { .. })
        ));
    }
}
