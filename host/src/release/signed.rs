//! Signed releases: the holder signs the SHA-256 of every file of a release, so a statistical
//! office (or anyone) can check offline, with `oar verify-release`, that the tables and their
//! privacy facts are exactly what the holder's host released.
//!
//! `release.sig.json` holds the job id, the holder's key, each file's name and hash, the
//! SHA-256 of the run's parameters (RFC 8785 form), the job whose release was returned again
//! (for an identical repeat), and an ed25519 signature over
//! `SHA-256(parts("oar-release-v1", JCS{files, holder, job_id, params_sha256?, reuses?}))`.

use crate::canonical::to_canonical_json;
use crate::keys::{sha256, sha256_parts, KeyPair, PublicKey, Signature};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Signing context of releases.
pub const RELEASE_CONTEXT: &str = "oar-release-v1";
/// Name of the signature file in a release folder.
pub const SIGNATURE_FILE: &str = "release.sig.json";

/// What the holder signs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseManifest {
    /// The job that produced the release.
    pub job_id: String,
    /// The holder's key.
    pub holder: PublicKey,
    /// File name → SHA-256 (hex) of every file of the release.
    pub files: BTreeMap<String, String>,
    /// SHA-256 (hex) of the run's parameters in RFC 8785 form: what the release answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params_sha256: Option<String>,
    /// For an identical repeat answered with an earlier release: that earlier job's id. The
    /// release is signed for `job_id`, the job that asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reuses: Option<String>,
}

impl ReleaseManifest {
    /// The digest the holder signs.
    pub fn digest(&self) -> [u8; 32] {
        let bytes = to_canonical_json(self).expect("release manifests have no floats");
        sha256_parts(&[RELEASE_CONTEXT.as_bytes(), &bytes])
    }
}

/// The signature file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReleaseSignature {
    /// What is signed.
    pub manifest: ReleaseManifest,
    /// The holder's signature over [`ReleaseManifest::digest`].
    pub signature: Signature,
}

/// Why a release does not verify.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseVerifyError {
    /// Reading the folder failed.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The signature file is missing or not valid JSON.
    #[error("{path} is not a release signature: {reason}")]
    Malformed {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// Signed by another key than the holder's.
    #[error("the release is signed by {found}, not by the holder's key {expected}")]
    WrongHolder {
        /// The key expected.
        expected: PublicKey,
        /// The key in the file.
        found: PublicKey,
    },
    /// The signature does not verify (the signature file was edited).
    #[error("the holder's signature does not verify: release.sig.json was altered")]
    BadSignature,
    /// A signed file is missing.
    #[error("file {0} is listed in the signature but missing")]
    FileMissing(String),
    /// A signed file changed after signing.
    #[error("file {0} was altered after the holder signed it")]
    FileChanged(String),
    /// A file in the folder is not covered by the signature.
    #[error("file {0} is not covered by the holder's signature")]
    Unsigned(String),
}

/// Which job a release is signed for, and what it answers.
#[derive(Debug, Clone, Copy)]
pub struct ReleaseFor<'a> {
    /// The job that asked (for a repeat, the repeat's id).
    pub job_id: &'a str,
    /// SHA-256 (hex) of the parameters in RFC 8785 form.
    pub params_sha256: Option<&'a str>,
    /// The earlier job whose release is returned again, for a repeat.
    pub reuses: Option<&'a str>,
}

/// Signs `files` (all inside `dir`) as the release `of`; writes and returns
/// `dir/release.sig.json`.
pub fn sign_dir(
    dir: &Path,
    files: &[PathBuf],
    of: ReleaseFor<'_>,
    holder: &KeyPair,
) -> std::io::Result<PathBuf> {
    let mut hashes = BTreeMap::new();
    for f in files {
        let name = f
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| std::io::Error::other("release file names are UTF-8"))?
            .to_string();
        hashes.insert(name, hex::encode(sha256(&std::fs::read(f)?)));
    }
    let manifest = ReleaseManifest {
        job_id: of.job_id.to_string(),
        holder: holder.public(),
        files: hashes,
        params_sha256: of.params_sha256.map(String::from),
        reuses: of.reuses.map(String::from),
    };
    let signature = holder.sign(RELEASE_CONTEXT, &manifest.digest());
    let path = dir.join(SIGNATURE_FILE);
    let json = serde_json::to_vec_pretty(&ReleaseSignature {
        manifest,
        signature,
    })
    .expect("signatures serialize");
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// Checks the release in `dir` against the holder's key: the signature, every signed file's
/// hash, and that no other file sits beside them. Returns the signed manifest.
pub fn verify_dir(dir: &Path, holder: &PublicKey) -> Result<ReleaseManifest, ReleaseVerifyError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| ReleaseVerifyError::Io { path, source }
    };
    let sig_path = dir.join(SIGNATURE_FILE);
    let bytes = std::fs::read(&sig_path).map_err(io(&sig_path))?;
    let signed: ReleaseSignature =
        serde_json::from_slice(&bytes).map_err(|e| ReleaseVerifyError::Malformed {
            path: sig_path.display().to_string(),
            reason: e.to_string(),
        })?;
    if &signed.manifest.holder != holder {
        return Err(ReleaseVerifyError::WrongHolder {
            expected: *holder,
            found: signed.manifest.holder,
        });
    }
    if !holder.verify(
        RELEASE_CONTEXT,
        &signed.manifest.digest(),
        &signed.signature,
    ) {
        return Err(ReleaseVerifyError::BadSignature);
    }
    for (name, hash) in &signed.manifest.files {
        if name.contains('/') || name.contains('\\') || name == ".." {
            return Err(ReleaseVerifyError::Malformed {
                path: sig_path.display().to_string(),
                reason: format!("file name '{name}' is not a plain name"),
            });
        }
        let path = dir.join(name);
        let bytes =
            std::fs::read(&path).map_err(|_| ReleaseVerifyError::FileMissing(name.clone()))?;
        if &hex::encode(sha256(&bytes)) != hash {
            return Err(ReleaseVerifyError::FileChanged(name.clone()));
        }
    }
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name != SIGNATURE_FILE && !signed.manifest.files.contains_key(&name) {
            return Err(ReleaseVerifyError::Unsigned(name));
        }
    }
    Ok(signed.manifest)
}
