//! `oar federate submit|fetch|verify`: one approved module run at several holders, their
//! signed releases verified and combined (rules in `oar_host::federation`).

use anyhow::{bail, Context as _};
use oar_host::client::{Client, ClientError};
use oar_host::federation::{self, HolderRecord, HolderRelease, Provenance};
use oar_host::keys::{KeyPair, PublicKey};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The holders file: who to ask, and with which keys and approvals.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldersFile {
    holders: Vec<HolderEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HolderEntry {
    /// Your name for the holder (a folder name in the output).
    name: String,
    /// Its service, e.g. `https://telco-a.example:8420`.
    url: String,
    /// Its public key: `.pub` file or hex.
    holder_key: String,
    /// Your requester key at this holder (secret `.key` file).
    key: PathBuf,
    /// This holder's committee approval of the module (default: `--approval`).
    #[serde(default)]
    approval: Option<PathBuf>,
    /// PEM of the CA of its TLS certificate, if private.
    #[serde(default)]
    ca_cert: Option<PathBuf>,
}

/// `run.json`: what `oar federate submit` did at each holder.
#[derive(Debug, Serialize, Deserialize)]
struct FederatedRun {
    module_hash: String,
    params: serde_json::Value,
    holders: Vec<Submitted>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Submitted {
    name: String,
    url: String,
    holder_key: PublicKey,
    key: PathBuf,
    #[serde(default)]
    ca_cert: Option<PathBuf>,
    job_id: Option<String>,
    error: Option<String>,
    /// Why it was not submitted: `unreachable` or `refused`.
    #[serde(default)]
    outcome: Option<String>,
}

fn client(url: &str, key: &Path, ca_cert: Option<&Path>) -> anyhow::Result<Client> {
    let key = KeyPair::read(key)?;
    Ok(match ca_cert {
        None => Client::new(url, key),
        Some(path) => {
            let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            Client::with_ca_certs(url, key, &pem)?
        }
    })
}

/// `oar federate submit`.
pub fn submit(
    holders: &Path,
    bundle: &Path,
    approval: Option<&Path>,
    params: &str,
    out: &Path,
) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(holders)
        .with_context(|| format!("reading {}", holders.display()))?;
    let file: HoldersFile = toml::from_str(&text)
        .with_context(|| format!("{} is not a holders file", holders.display()))?;
    if file.holders.is_empty() {
        bail!(
            "{} names no holder; add [[holders]] entries",
            holders.display()
        );
    }
    let base = holders.parent().unwrap_or(Path::new("."));
    let at = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            base.join(p)
        }
    };
    let mut names = std::collections::BTreeSet::new();
    for h in &file.holders {
        if !federation::plain_name(&h.name) || !names.insert(h.name.clone()) {
            bail!(
                "holder name '{}' must be unique and made of letters, digits, '-' and '_'",
                h.name
            );
        }
    }
    let params: serde_json::Value =
        serde_json::from_str(params).context("--params must be a JSON object")?;
    let bundle_bytes =
        std::fs::read(bundle).with_context(|| format!("reading {}", bundle.display()))?;
    let module_hash = oar_host::bundle::Bundle::from_json(&bundle_bytes)?.module_hash;
    let mut submitted = Vec::new();
    for h in &file.holders {
        let holder_key = super::public_key_arg(&at(Path::new(&h.holder_key)).to_string_lossy())
            .or_else(|_| super::public_key_arg(&h.holder_key))
            .with_context(|| format!("holder {}: holder_key", h.name))?;
        let approval = h
            .approval
            .as_deref()
            .map(at)
            .or_else(|| approval.map(Path::to_path_buf))
            .with_context(|| {
                format!(
                    "holder {}: no approval (give --approval, or approval = ... for this holder)",
                    h.name
                )
            })?;
        let key = at(&h.key);
        let ca_cert = h.ca_cert.as_deref().map(at);
        let attempt = (|| -> anyhow::Result<String> {
            let c = client(&h.url, &key, ca_cert.as_deref())?;
            c.upload_bundle(&bundle_bytes)?;
            let approval_bytes = std::fs::read(&approval)
                .with_context(|| format!("reading {}", approval.display()))?;
            c.attach_approval(&approval_bytes)?;
            Ok(c.submit(&module_hash, &params, None)?)
        })();
        let (job_id, error, outcome) = match attempt {
            Ok(job) => {
                println!("{}: submitted job {job}", h.name);
                (Some(job), None, None)
            }
            Err(e) => {
                let unreachable = e
                    .downcast_ref::<ClientError>()
                    .is_some_and(|c| matches!(c, ClientError::Unreachable { .. }));
                let outcome = if unreachable {
                    "unreachable"
                } else {
                    "refused"
                };
                println!("{}: not submitted ({outcome}): {e:#}", h.name);
                (None, Some(format!("{e:#}")), Some(outcome.to_string()))
            }
        };
        submitted.push(Submitted {
            name: h.name.clone(),
            url: h.url.clone(),
            holder_key,
            key,
            ca_cert,
            job_id,
            error,
            outcome,
        });
    }
    let n = submitted.iter().filter(|s| s.job_id.is_some()).count();
    let run = FederatedRun {
        module_hash,
        params,
        holders: submitted,
    };
    std::fs::write(out, serde_json::to_vec_pretty(&run)?)
        .with_context(|| format!("writing {}", out.display()))?;
    println!(
        "submitted at {n} of {} holder(s); `oar federate fetch --run {}` waits, verifies and combines",
        run.holders.len(),
        out.display()
    );
    if n == 0 {
        bail!("no holder took the run");
    }
    Ok(())
}

/// `oar federate fetch`.
pub fn fetch(run: &Path, out: &Path, wait_seconds: u64, partial: bool) -> anyhow::Result<()> {
    let run: FederatedRun = serde_json::from_slice(
        &std::fs::read(run).with_context(|| format!("reading {}", run.display()))?,
    )
    .with_context(|| {
        format!(
            "{} is not a run file of `oar federate submit`",
            run.display()
        )
    })?;
    if out.exists() && std::fs::read_dir(out)?.next().is_some() {
        bail!("{} is not empty; give a new folder", out.display());
    }
    let started = std::time::Instant::now();
    let mut records = Vec::new();
    let mut releases = Vec::new();
    for h in &run.holders {
        let mut record = HolderRecord {
            name: h.name.clone(),
            url: h.url.clone(),
            key: h.holder_key,
            job_id: h.job_id.clone(),
            outcome: "included".into(),
            reason: None,
            manifest_digest: None,
        };
        let outcome = match &h.job_id {
            None => Err((
                if h.outcome.as_deref() == Some("unreachable") {
                    "unreachable"
                } else {
                    "refused"
                },
                h.error.clone().unwrap_or_else(|| "not submitted".into()),
            )),
            Some(job) => fetch_one(h, job, out, wait_seconds),
        };
        match outcome {
            Ok(release) => {
                record.manifest_digest = Some(hex::encode(release.manifest.digest()));
                println!(
                    "{}: release of job {} verified",
                    h.name, release.manifest.job_id
                );
                releases.push(release);
            }
            Err((outcome, reason)) => {
                println!("{}: {outcome}: {reason}", h.name);
                record.outcome = outcome.into();
                record.reason = Some(reason);
            }
        }
        records.push(record);
    }
    let missing: Vec<String> = records
        .iter()
        .filter(|r| r.outcome != "included")
        .map(|r| format!("{} ({})", r.name, r.outcome))
        .collect();
    let is_partial = !missing.is_empty();
    if is_partial && !partial {
        bail!(
            "not every holder answered: {}. Nothing was combined, so no total undercounts silently; \
             their verified releases are in {}. Pass --partial for a combination labelled partial.",
            missing.join(", "),
            out.join("holders").display()
        );
    }
    let combination = federation::combine(&releases)?;
    let dir = federation::combined_dir(out, is_partial);
    let files = federation::write_combination(&combination, &dir)?;
    let provenance = Provenance {
        rules: federation::RULES.into(),
        module_hash: run.module_hash.clone(),
        holders: records,
        partial: is_partial,
        combined_files: files,
    };
    std::fs::create_dir_all(out)?;
    std::fs::write(
        out.join("federation.json"),
        serde_json::to_vec_pretty(&provenance)?,
    )?;
    for t in &combination.tables {
        println!(
            "combined table {}: {} cells released, {} withheld{}",
            t.name,
            t.table
                .rows
                .iter()
                .filter(|r| r.suppressed.is_none())
                .count(),
            t.table
                .rows
                .iter()
                .filter(|r| r.suppressed.is_some())
                .count(),
            if t.left_out.is_empty() {
                String::new()
            } else {
                format!(
                    "; left out: {}",
                    t.left_out
                        .iter()
                        .map(|(c, _)| c.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
    }
    for (t, why) in &combination.not_combined {
        println!("table {t} not combined: {why}");
    }
    if is_partial {
        println!(
            "PARTIAL: combines {} of {} holders; missing {}. Totals count only the holders included.",
            releases.len(),
            provenance.holders.len(),
            missing.join(", ")
        );
    }
    println!(
        "combined {} holder(s) into {} in {:.1} s; `oar federate verify {}` re-checks it offline",
        releases.len(),
        dir.display(),
        started.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(())
}

/// Waits for one holder's run and fetches its release, verified, into `OUT/holders/NAME`.
fn fetch_one(
    h: &Submitted,
    job: &str,
    out: &Path,
    wait_seconds: u64,
) -> Result<HolderRelease, (&'static str, String)> {
    let c = client(&h.url, &h.key, h.ca_cert.as_deref())
        .map_err(|e| ("unreachable", format!("{e:#}")))?;
    let status = super::wait_showing(&c, job, wait_seconds).map_err(|e| {
        let unreachable = e
            .downcast_ref::<ClientError>()
            .is_some_and(|c| matches!(c, ClientError::Unreachable { .. }));
        (
            if unreachable {
                "unreachable"
            } else {
                "refused"
            },
            format!("{e:#}"),
        )
    })?;
    let state = status["status"].as_str().unwrap_or_default();
    if state != "succeeded" {
        return Err((
            "failed",
            format!(
                "job {job} is {state}{}",
                status["error"]
                    .as_str()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
        ));
    }
    let dir = out.join("holders").join(&h.name);
    c.fetch_verified(job, &dir, &h.holder_key)
        .map_err(|e| ("not verified", e.to_string()))?;
    HolderRelease::open(&h.name, h.holder_key, &dir).map_err(|e| ("not verified", e.to_string()))
}

/// `oar federate verify`.
pub fn verify(dir: &Path) -> anyhow::Result<()> {
    let p = federation::verify(dir)?;
    let included: Vec<&str> = p
        .holders
        .iter()
        .filter(|h| h.outcome == "included")
        .map(|h| h.name.as_str())
        .collect();
    println!(
        "OK: {} holder release(s) verify against their keys ({}), and the combined files are exactly what they combine to under {}{}",
        included.len(),
        included.join(", "),
        p.rules,
        if p.partial { " (PARTIAL: some holders are missing)" } else { "" }
    );
    Ok(())
}
