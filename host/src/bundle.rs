//! Module bundles: a component, its manifest, and the author's signature over both.
//!
//! The *module hash* is SHA-256 of the component bytes; the *manifest hash* is SHA-256 of the
//! manifest's canonical JSON (RFC 8785, see [`crate::canonical`]); the *bundle digest*
//! binds the two and is what the author signs in context [`BUNDLE_CONTEXT`].

use crate::keys::{sha256, sha256_parts, KeyPair, PublicKey, Signature};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Signing context of bundle signatures.
pub const BUNDLE_CONTEXT: &str = "oar-bundle-v1";
/// Format tag of bundle files.
pub const BUNDLE_FORMAT: &str = "oar-bundle/1";

/// A dataset the module reads and the columns it needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetUse {
    /// Dataset name.
    pub name: String,
    /// Columns the module's plans read.
    pub columns: Vec<String>,
}

/// A table the module may publish.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputDecl {
    /// Table name passed to `emit`.
    pub name: String,
    /// What it contains.
    #[serde(default)]
    pub description: String,
}

/// What a module is and what it may touch: the document a committee reviews.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Module name.
    pub name: String,
    /// Module version.
    pub version: String,
    /// The public body that wrote it.
    pub author: String,
    /// Why it exists, in plain words.
    pub purpose: String,
    /// The most epsilon one run may spend.
    pub max_epsilon_per_run: f64,
    /// Datasets and columns it reads.
    pub datasets: Vec<DatasetUse>,
    /// Tables it may publish.
    pub outputs: Vec<OutputDecl>,
}

impl Manifest {
    /// Parses a manifest TOML file.
    pub fn from_toml(text: &str) -> Result<Self, BundleError> {
        let m: Manifest = toml::from_str(text).map_err(|e| BundleError::Manifest(e.to_string()))?;
        if !(m.max_epsilon_per_run.is_finite() && m.max_epsilon_per_run > 0.0) {
            return Err(BundleError::Manifest(format!(
                "max_epsilon_per_run is {}; it must be a positive number",
                m.max_epsilon_per_run
            )));
        }
        Ok(m)
    }

    /// SHA-256 of the canonical JSON form.
    pub fn hash(&self) -> [u8; 32] {
        sha256(&crate::canonical::to_canonical_json(self).expect("manifests have finite numbers"))
    }
}

/// Errors reading or building bundles.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// File I/O failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The bundle file is not a valid bundle.
    #[error("not a valid OAR bundle: {0}")]
    Malformed(String),
    /// The manifest is invalid.
    #[error("invalid manifest: {0}")]
    Manifest(String),
}

/// A signed module bundle as stored in a `.oarb` file (JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bundle {
    /// Always [`BUNDLE_FORMAT`].
    pub format: String,
    /// The manifest.
    pub manifest: Manifest,
    /// SHA-256 of the component, hex, as the author computed it.
    pub module_hash: String,
    /// The component bytes (base64 in the file).
    #[serde(with = "b64")]
    pub component: Vec<u8>,
    /// The author's key.
    pub author_key: PublicKey,
    /// The author's signature over [`Bundle::digest`].
    pub signature: Signature,
}

impl Bundle {
    /// Builds and signs a bundle.
    pub fn sign(component: Vec<u8>, manifest: Manifest, author: &KeyPair) -> Bundle {
        let module_hash = hex::encode(sha256(&component));
        let digest = bundle_digest(&sha256(&component), &manifest.hash());
        Bundle {
            format: BUNDLE_FORMAT.into(),
            manifest,
            module_hash,
            component,
            author_key: author.public(),
            signature: author.sign(BUNDLE_CONTEXT, &digest),
        }
    }

    /// The digest the author signs: binds the component's hash and the manifest's hash.
    pub fn digest(&self) -> [u8; 32] {
        bundle_digest(&sha256(&self.component), &self.manifest.hash())
    }

    /// Reads a bundle file.
    pub fn read(path: &Path) -> Result<Bundle, BundleError> {
        let bytes = std::fs::read(path).map_err(|source| BundleError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json(&bytes)
    }

    /// Parses bundle JSON.
    pub fn from_json(bytes: &[u8]) -> Result<Bundle, BundleError> {
        let bundle: Bundle =
            serde_json::from_slice(bytes).map_err(|e| BundleError::Malformed(e.to_string()))?;
        if bundle.format != BUNDLE_FORMAT {
            return Err(BundleError::Malformed(format!(
                "format is '{}', this host reads '{BUNDLE_FORMAT}'",
                bundle.format
            )));
        }
        Ok(bundle)
    }

    /// Writes the bundle file.
    pub fn write(&self, path: &Path) -> Result<(), BundleError> {
        let json = serde_json::to_vec_pretty(self).expect("bundles serialize");
        std::fs::write(path, json).map_err(|source| BundleError::Io {
            path: path.display().to_string(),
            source,
        })
    }
}

fn bundle_digest(module_hash: &[u8; 32], manifest_hash: &[u8; 32]) -> [u8; 32] {
    sha256_parts(&[BUNDLE_CONTEXT.as_bytes(), module_hash, manifest_hash])
}

mod b64 {
    use super::*;
    pub fn serialize<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}
