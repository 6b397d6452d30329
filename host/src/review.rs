//! What an ethics-committee member needs to decide on a module, without reading code.
//!
//! [`Review::of`] gathers, from a bundle (and optionally the holder's policy and an approval in
//! progress), the module's purpose, the datasets and columns it can read, the most epsilon it may
//! spend, the tables it declares, what it *cannot* do, and the hashes an approval binds. `oar
//! review` prints it as text or JSON.

use crate::approval::{Approval, APPROVAL_CONTEXT};
use crate::bundle::{Bundle, BUNDLE_CONTEXT};
use crate::keys::sha256;
use crate::policy::Policy;
use serde::Serialize;
use std::fmt;

/// A dataset the module can read, with what the holder's policy says about it.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetAccess {
    /// Dataset name.
    pub name: String,
    /// Columns its queries may touch (and nothing else).
    pub columns: Vec<String>,
    /// Listed columns the holder's policy denies anyway (its queries on them will be refused).
    pub denied_by_policy: Vec<String>,
    /// Whether the policy lets this author's modules read the dataset (None without a policy).
    pub author_may_read: Option<bool>,
    /// Minimum distinct people per released cell on this dataset (None without a policy).
    pub min_units: Option<u64>,
}

/// A committee signature on the approval under review.
#[derive(Debug, Clone, Serialize)]
pub struct SignatureStatus {
    /// Key, hex.
    pub key: String,
    /// The member's name on the roster, if on it.
    pub member: Option<String>,
    /// Whether the signature verifies over this approval record.
    pub valid: bool,
}

/// The approval under review, if one was given.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalStatus {
    /// The digest members sign (hex): SHA-256 of "oar-approval-v1" and the record's canonical JSON.
    pub digest: String,
    /// Whether the record names exactly this bundle's component and manifest.
    pub matches_bundle: bool,
    /// The purpose as approved.
    pub purpose: String,
    /// Epsilon per run and in total as approved.
    pub epsilon_per_run: f64,
    /// Total epsilon for all runs under the approval.
    pub epsilon_total: f64,
    /// Validity window (RFC 3339).
    pub valid_from: String,
    /// End of the validity window (RFC 3339).
    pub valid_until: String,
    /// Conditions attached.
    pub conditions: String,
    /// Signatures so far.
    pub signatures: Vec<SignatureStatus>,
    /// Distinct valid roster signatures, and the quorum (None without a policy).
    pub quorum: Option<(usize, usize)>,
}

/// Everything `oar review` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Review {
    /// Module name.
    pub name: String,
    /// Module version.
    pub version: String,
    /// Authoring body as the manifest names it.
    pub author: String,
    /// The key that signed the bundle, hex.
    pub author_key: String,
    /// Whether that key is a trusted author in the policy, and under which name.
    pub trusted_author: Option<String>,
    /// Whether the author's signature verifies over this component and manifest.
    pub author_signature_valid: bool,
    /// Whether the component bytes hash to the declared module hash.
    pub component_intact: bool,
    /// Purpose in plain words.
    pub purpose: String,
    /// What it can read.
    pub datasets: Vec<DatasetAccess>,
    /// The most epsilon one run may spend, as the manifest declares.
    pub max_epsilon_per_run: f64,
    /// Tables it may publish: (name, description).
    pub outputs: Vec<(String, String)>,
    /// What the module cannot do, whatever its code says.
    pub cannot: Vec<String>,
    /// SHA-256 of the component (hex): what an approval binds.
    pub module_hash: String,
    /// SHA-256 of the manifest's canonical JSON (hex): what an approval binds.
    pub manifest_hash: String,
    /// Component size in bytes.
    pub component_bytes: usize,
    /// The approval under review, if given.
    pub approval: Option<ApprovalStatus>,
}

impl Review {
    /// Builds the review of `bundle`, checked against `policy` and `approval` when given.
    pub fn of(bundle: &Bundle, policy: Option<&Policy>, approval: Option<&Approval>) -> Review {
        let m = &bundle.manifest;
        let module_hash = hex::encode(sha256(&bundle.component));
        let manifest_hash = hex::encode(m.hash());
        let author = policy.and_then(|p| p.author(&bundle.author_key));
        let datasets = m
            .datasets
            .iter()
            .map(|d| DatasetAccess {
                name: d.name.clone(),
                columns: d.columns.clone(),
                denied_by_policy: d
                    .columns
                    .iter()
                    .filter(|c| policy.is_some_and(|p| p.column_denied(&d.name, c)))
                    .cloned()
                    .collect(),
                author_may_read: policy.map(|_| author.is_some_and(|a| a.may_read(&d.name))),
                min_units: policy.map(|p| p.min_units_for(&d.name)),
            })
            .collect();
        let min_units = policy.map_or(crate::policy::MIN_UNITS_FLOOR, |p| p.min_units);
        let cannot = vec![
            "see any row of data: every answer it gets is an aggregate table".to_string(),
            "read the privacy-unit column (e.g. subscriber id) in any form, or columns not listed above".to_string(),
            format!("receive or publish a cell counting fewer than {min_units} distinct people; every released number carries differential-privacy noise"),
            "spend more privacy budget than the approval allows per run and in total".to_string(),
            "publish tables other than those listed above".to_string(),
            "use files, the network, environment variables or the real clock; it runs in a memory- and time-limited sandbox".to_string(),
        ];
        let approval = approval.map(|a| approval_status(a, policy, &module_hash, &manifest_hash));
        Review {
            name: m.name.clone(),
            version: m.version.clone(),
            author: m.author.clone(),
            author_key: bundle.author_key.to_hex(),
            trusted_author: author.map(|a| a.name.clone()),
            author_signature_valid: bundle.author_key.verify(
                BUNDLE_CONTEXT,
                &bundle.digest(),
                &bundle.signature,
            ),
            component_intact: module_hash == bundle.module_hash,
            purpose: m.purpose.trim().to_string(),
            datasets,
            max_epsilon_per_run: m.max_epsilon_per_run,
            outputs: m
                .outputs
                .iter()
                .map(|o| (o.name.clone(), o.description.clone()))
                .collect(),
            cannot,
            module_hash,
            manifest_hash,
            component_bytes: bundle.component.len(),
            approval,
        }
    }
}

fn approval_status(
    a: &Approval,
    policy: Option<&Policy>,
    module_hash: &str,
    manifest_hash: &str,
) -> ApprovalStatus {
    let r = &a.record;
    let digest = r.digest();
    let signatures: Vec<SignatureStatus> = a
        .signatures
        .iter()
        .map(|s| SignatureStatus {
            key: s.member.to_hex(),
            member: policy
                .and_then(|p| p.member(&s.member))
                .map(|m| m.name.clone()),
            valid: s.member.verify(APPROVAL_CONTEXT, &digest, &s.signature),
        })
        .collect();
    let quorum = policy.map(|p| {
        let mut keys: Vec<&String> = signatures
            .iter()
            .filter(|s| s.valid && s.member.is_some())
            .map(|s| &s.key)
            .collect();
        keys.sort();
        keys.dedup();
        (keys.len(), p.committee.quorum)
    });
    let stamp =
        |t: &chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    ApprovalStatus {
        digest: hex::encode(digest),
        matches_bundle: r.module_hash == module_hash && r.manifest_hash == manifest_hash,
        purpose: r.purpose.trim().to_string(),
        epsilon_per_run: r.epsilon_per_run,
        epsilon_total: r.epsilon_total,
        valid_from: stamp(&r.valid_from),
        valid_until: stamp(&r.valid_until),
        conditions: r.conditions.clone(),
        signatures,
        quorum,
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "NO"
    }
}

impl fmt::Display for Review {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "MODULE   {} {}", self.name, self.version)?;
        writeln!(f, "AUTHOR   {}", self.author)?;
        match &self.trusted_author {
            Some(name) => writeln!(f, "         signed by trusted author '{name}'")?,
            None => writeln!(f, "         signed by key {} (not a trusted author in the policy, or no policy given)", self.author_key)?,
        }
        writeln!(
            f,
            "         signature valid: {}; component intact: {}",
            yes_no(self.author_signature_valid),
            yes_no(self.component_intact)
        )?;
        writeln!(f, "\nPURPOSE\n  {}", self.purpose.replace('\n', "\n  "))?;
        writeln!(f, "\nWHAT IT CAN READ")?;
        for d in &self.datasets {
            writeln!(
                f,
                "  dataset '{}': columns {}",
                d.name,
                d.columns.join(", ")
            )?;
            if !d.denied_by_policy.is_empty() {
                writeln!(
                    f,
                    "    the holder's policy denies: {} (those queries will be refused)",
                    d.denied_by_policy.join(", ")
                )?;
            }
            if d.author_may_read == Some(false) {
                writeln!(
                    f,
                    "    the policy does NOT let this author's modules read it"
                )?;
            }
            if let Some(m) = d.min_units {
                writeln!(f, "    released cells need at least {m} distinct people")?;
            }
        }
        writeln!(f, "\nPRIVACY BUDGET")?;
        writeln!(
            f,
            "  at most epsilon {} per run (the manifest's cap; the approval may set less)",
            self.max_epsilon_per_run
        )?;
        writeln!(f, "\nTABLES IT MAY PUBLISH")?;
        for (name, description) in &self.outputs {
            writeln!(f, "  {name}: {description}")?;
        }
        writeln!(f, "\nWHAT IT CANNOT DO, WHATEVER ITS CODE SAYS")?;
        for c in &self.cannot {
            writeln!(f, "  - {c}")?;
        }
        writeln!(f, "\nWHAT AN APPROVAL BINDS")?;
        writeln!(f, "  module hash   {}", self.module_hash)?;
        writeln!(f, "  manifest hash {}", self.manifest_hash)?;
        writeln!(f, "  ({} bytes of WebAssembly)", self.component_bytes)?;
        match &self.approval {
            None => writeln!(
                f,
                "\nNo approval given. `oar approve --bundle … --key YOUR.key --approval FILE` creates one binding the hashes above and adds your signature."
            )?,
            Some(a) => {
                writeln!(f, "\nAPPROVAL UNDER REVIEW")?;
                writeln!(f, "  digest you sign {}", a.digest)?;
                writeln!(f, "  names this bundle: {}", yes_no(a.matches_bundle))?;
                writeln!(
                    f,
                    "  epsilon {} per run, {} in total; valid {} to {}",
                    a.epsilon_per_run, a.epsilon_total, a.valid_from, a.valid_until
                )?;
                if !a.conditions.is_empty() {
                    writeln!(f, "  conditions: {}", a.conditions)?;
                }
                for s in &a.signatures {
                    writeln!(
                        f,
                        "  signed by {} ({}): {}",
                        s.member.as_deref().unwrap_or("someone not on the roster"),
                        &s.key[..16],
                        if s.valid { "valid" } else { "INVALID" }
                    )?;
                }
                if let Some((have, need)) = a.quorum {
                    writeln!(f, "  quorum: {have} of {need} required valid member signatures")?;
                }
            }
        }
        Ok(())
    }
}
