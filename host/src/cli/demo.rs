//! `oar demo`: the whole path on built-in synthetic data, in one call.
//!
//! Generates synthetic call-detail records, creates keys for an author, a three-member ethics
//! committee (quorum two), a requester and the holder, signs the embedded present-population
//! module, has two members approve it, verifies, runs it in the sandbox and writes the release.

use anyhow::Context as _;
use oar_host::approval::{Approval, ApprovalRecord};
use oar_host::artifacts::{POPULATION_COMPONENT, POPULATION_MANIFEST};
use oar_host::bundle::{Bundle, Manifest};
use oar_host::dataset::{Catalog, Dataset};
use oar_host::job::Host;
use oar_host::ledger::SqliteLedger;
use oar_host::policy::Policy;
use oar_host::release::{format_value, Release};
use oar_host::sandbox::Runtime;
use oar_host::synth::cdr::CdrSpec;
use oar_host::verify::verify;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Demo settings.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Folder for everything the demo writes.
    pub out: PathBuf,
    /// Synthetic rows.
    pub rows: usize,
    /// Epsilon of the release.
    pub epsilon: f64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            out: PathBuf::from("oar-demo"),
            rows: 1_000_000,
            epsilon: 1.0,
        }
    }
}

/// What the demo did.
#[derive(Debug)]
pub struct DemoReport {
    /// The release.
    pub release: Release,
    /// Files of the release.
    pub files: Vec<PathBuf>,
    /// Where everything is.
    pub out: PathBuf,
}

/// Runs the demo, reporting progress through `progress`.
pub fn run(opts: &DemoOptions, progress: &mut dyn FnMut(&str)) -> anyhow::Result<DemoReport> {
    let step = |name: &str, t: Instant, progress: &mut dyn FnMut(&str)| {
        progress(&format!("  {name:<44} {:>8.2?}", t.elapsed()));
    };
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("cannot create the demo folder {}", opts.out.display()))?;

    let t = Instant::now();
    let spec = CdrSpec {
        rows: opts.rows,
        ..CdrSpec::default()
    };
    let descriptor = spec.write(&opts.out.join("data"))?;
    step("generated synthetic call-detail records", t, progress);

    let t = Instant::now();
    let keys_dir = opts.out.join("keys");
    let parties = oar_host::policy::StarterParties::generate();
    parties.write_keys(&keys_dir)?;
    let (author, members, requester) = (&parties.author, &parties.members, &parties.requester);
    let policy_path = opts.out.join("policy.toml");
    std::fs::write(&policy_path, parties.policy("oar demo"))?;
    let policy = Policy::load(&policy_path)?;
    step("made keys and the holder's policy", t, progress);

    let t = Instant::now();
    let manifest = Manifest::from_toml(POPULATION_MANIFEST)?;
    let bundle = Bundle::sign(POPULATION_COMPONENT.to_vec(), manifest, author);
    let bundle_path = opts.out.join("population.oarb");
    bundle.write(&bundle_path)?;
    let now = chrono::Utc::now();
    let record = ApprovalRecord::for_bundle(
        &bundle,
        10.0,
        now - chrono::Duration::hours(1),
        now + chrono::Duration::days(90),
    );
    let mut approval = Approval::new(record);
    approval.sign(&members[0]);
    approval.sign(&members[2]);
    approval.write(&opts.out.join("approval.json"))?;
    step("signed the module; 2 of 3 members approved", t, progress);

    let t = Instant::now();
    let verified = Arc::new(verify(
        &bundle,
        &approval,
        &policy,
        &oar_host::revocation::RevocationList::empty(),
        chrono::Utc::now(),
    )?);
    let mut catalog = Catalog::new();
    catalog.register(Dataset::open(&descriptor)?);
    let ledger = Arc::new(SqliteLedger::in_memory());
    let host = Host::new(
        Runtime::new(Some(opts.out.join("cache")))?,
        catalog,
        policy,
        ledger,
    );
    step("verified signatures and quorum", t, progress);

    let t = Instant::now();
    let params = serde_json::json!({ "epsilon": opts.epsilon }).to_string();
    // The demo owns its folder: a release from an earlier demo is replaced.
    let dir = opts.out.join("release");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    let target = oar_host::job::ReleaseTarget {
        dir: &dir,
        signer: None,
    };
    let job_id = oar_host::job::new_job_id();
    let outcome = host.run_job_into(&job_id, verified, requester.name(), &params, Some(&target));
    let release = outcome.result?;
    step("ran the module in the sandbox", t, progress);
    let files = outcome.files;
    Ok(DemoReport {
        release,
        files,
        out: opts.out.clone(),
    })
}

/// A short human summary of a demo run.
pub fn summary(report: &DemoReport) -> String {
    let r = &report.release;
    let mut s = String::new();
    for t in &r.tables {
        let info = t.table.release.as_ref();
        s.push_str(&format!(
            "table {}: {} cells released, {} suppressed (fewer than {} subscribers, or below the noisy threshold {:.0})\n",
            t.name,
            t.table.released().count(),
            t.table.suppressed_count(),
            info.map(|i| i.min_units).unwrap_or(10),
            info.map(|i| i.threshold).unwrap_or(f64::NAN),
        ));
        if let Some(i) = info {
            for a in &i.accuracy {
                s.push_str(&format!(
                    "  {}: {} noise, scale {:.2}, 95% of values within ±{:.1}\n",
                    a.column, a.mechanism, a.noise_scale, a.ci95_half_width
                ));
            }
            s.push_str(&format!(
                "  privacy: epsilon {}, delta {:.1e}\n",
                i.epsilon, i.delta
            ));
        }
        for row in t.table.rows.iter().take(5) {
            let keys: Vec<String> = row.keys.iter().map(|k| k.key_text()).collect();
            match row.suppressed {
                None => {
                    let values: Vec<String> = row.values.iter().map(|v| format_value(*v)).collect();
                    s.push_str(&format!(
                        "    {:<24} {}\n",
                        keys.join(" "),
                        values.join(" ")
                    ))
                }
                Some(_) => s.push_str(&format!("    {:<24} suppressed\n", keys.join(" "))),
            }
        }
        s.push_str("    ...\n");
    }
    s.push_str(&format!(
        "epsilon spent: {} (requester {})\n",
        r.epsilon_total, r.requester
    ));
    s.push_str(&format!(
        "everything is in {}; the release:\n",
        display(&report.out)
    ));
    for f in &report.files {
        s.push_str(&format!("  {}\n", display(f)));
    }
    s
}

fn display(p: &Path) -> String {
    p.display().to_string()
}
