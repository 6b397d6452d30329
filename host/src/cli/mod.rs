//! Command-line interface. Each subcommand is a thin shell over the library.

mod demo;
mod federate;
mod progress;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use oar_host::approval::{Approval, ApprovalRecord};
use oar_host::bundle::{Bundle, Manifest};
use oar_host::dataset::{Catalog, Dataset};
use oar_host::job::Host;
use oar_host::keys::KeyPair;
use oar_host::ledger::{Ledger as _, SqliteLedger};
use oar_host::policy::Policy;
use oar_host::review::Review;
use oar_host::revocation::{RevocationList, Revocations, RevokedKind, SignedRevocations};
use oar_host::sandbox::Runtime;
use oar_host::synth::cdr::CdrSpec;
use oar_host::verify::verify;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

/// OAR, the Open Algorithms Runtime: send vetted code to the data, release only private aggregates.
///
/// Start with `oar demo`, which runs the whole path on synthetic data. The other commands are the
/// same steps one at a time: researchers `sign` modules, committee members `approve` them, data
/// holders `verify` and `run` them against registered datasets.
#[derive(Parser)]
#[command(name = "oar", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole path on synthetic data: data, keys, signing, approval, sandboxed run, release.
    Demo {
        /// Folder for everything the demo writes.
        #[arg(long, default_value = "oar-demo")]
        out: PathBuf,
        /// Number of synthetic call records.
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
        /// Privacy budget of the release.
        #[arg(long, default_value_t = 1.0)]
        epsilon: f64,
    },
    /// Start a new analysis module from the template: an example that builds, tests natively
    /// through the real gate on synthetic data, and signs. Inside an OAR checkout it goes to
    /// example-algorithms/NAME and joins the workspace.
    New {
        /// The module's name (lowercase letters, digits, hyphens).
        name: String,
        /// Folder to create (default: example-algorithms/NAME in an OAR checkout, else ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The module's language: rust (a crate) or python (an app.py, built with
        /// componentize-py).
        #[arg(long, value_enum, default_value = "rust")]
        lang: Lang,
    },
    /// Build a module folder (Rust or Python) into a component, and check it as the host will
    /// before anyone signs it.
    Build {
        /// The module's folder.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// Where to write the component (default: build/NAME.wasm in the folder for Python,
        /// cargo's target folder for Rust).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The componentize-py to build Python modules with (tested: 0.25.1).
        #[arg(long, default_value = "componentize-py")]
        componentize_py: PathBuf,
    },
    /// Run a module folder's tests: `cargo test` for Rust; for Python, its unit tests with the
    /// SDK on the path and a native run through the real gate on synthetic data.
    Test {
        /// The module's folder.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// The Python to run a Python module's tests with (3.10 or later).
        #[arg(long, default_value = "python3")]
        python: PathBuf,
    },
    /// Serve one module's host calls as JSON lines on stdin and stdout, through the real gate,
    /// on synthetic data (or --dataset): the local host `oar_guest.local.Harness` runs for
    /// native Python tests.
    LocalHost {
        /// The module's manifest.toml.
        #[arg(long)]
        manifest: PathBuf,
        /// Dataset descriptors to serve instead of synthetic data (repeatable).
        #[arg(long = "dataset")]
        datasets: Vec<PathBuf>,
    },
    /// Create an ed25519 key pair: NAME.key (secret, mode 0600) and NAME.pub in --out.
    Keygen {
        /// Who holds the key (used as the file name).
        name: String,
        /// Folder for the files.
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// Sign a module as its author: bundle a component with its manifest.
    Sign {
        /// The compiled component (.wasm for wasm32-wasip2).
        #[arg(long)]
        component: PathBuf,
        /// The manifest (TOML).
        #[arg(long)]
        manifest: PathBuf,
        /// The author's secret key.
        #[arg(long)]
        key: PathBuf,
        /// Where to write the bundle.
        #[arg(long)]
        out: PathBuf,
    },
    /// Add a committee member's signature to an approval (creating it if --approval does not exist).
    Approve {
        /// The bundle under review.
        #[arg(long)]
        bundle: PathBuf,
        /// The member's secret key.
        #[arg(long)]
        key: PathBuf,
        /// The approval file to create or add to.
        #[arg(long)]
        approval: PathBuf,
        /// Total epsilon all runs under the approval may spend (new approvals only).
        #[arg(long, default_value_t = 10.0)]
        epsilon_total: f64,
        /// Days the approval stays valid from now (new approvals only).
        #[arg(long, default_value_t = 90)]
        valid_days: i64,
        /// Conditions attached (new approvals only).
        #[arg(long, default_value = "")]
        conditions: String,
    },
    /// Show what a committee member needs to decide on a module: purpose, data it can read,
    /// largest epsilon, tables, what it cannot do, and the hashes an approval binds.
    Review {
        /// The bundle (.oarb).
        bundle: PathBuf,
        /// The holder's policy, to show trust, denied columns and minimum cell sizes.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// An approval in progress, to show its digest and signatures.
        #[arg(long)]
        approval: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Manage the signed revocation list: revoke a module, approval or key, or sign the list.
    Revoke {
        #[command(subcommand)]
        action: RevokeAction,
    },
    /// Check a bundle and its approval against a policy without running anything.
    Verify {
        #[command(flatten)]
        module: ModuleArgs,
    },
    /// Verify and run a module for a requester; write the release.
    Run {
        #[command(flatten)]
        module: ModuleArgs,
        /// Dataset descriptors (repeatable).
        #[arg(long = "dataset", required = true)]
        datasets: Vec<PathBuf>,
        /// The requester (a name in the policy).
        #[arg(long)]
        requester: String,
        /// Module parameters (JSON).
        #[arg(long, default_value = "{}")]
        params: String,
        /// Folder for the release.
        #[arg(long)]
        out: PathBuf,
        /// Folder for compiled code.
        #[arg(long)]
        cache: Option<PathBuf>,
        /// The privacy ledger (SQLite; created if missing). Budgets, runs and reusable releases
        /// persist here between runs.
        #[arg(long, default_value = "oar-ledger.db")]
        ledger: PathBuf,
        /// The holder's secret key: signs the release (release.sig.json) and the audit head.
        #[arg(long)]
        holder_key: Option<PathBuf>,
        /// Append the run, its charges, refusals and release to this hash-chained audit log
        /// (needs --holder-key).
        #[arg(long, requires = "holder_key")]
        audit: Option<PathBuf>,
        /// Run on synthetic data shaped like the datasets' public schemas instead, and report
        /// suppressed cells, expected error and the epsilon it would cost; spends nothing and
        /// writes no release.
        #[arg(long)]
        dry_run: bool,
        /// Synthetic rows per dataset for --dry-run.
        #[arg(long, default_value_t = 200_000)]
        dry_rows: usize,
        /// Synthetic people per dataset for --dry-run.
        #[arg(long, default_value_t = 20_000)]
        dry_units: usize,
        /// The engine queries run on: polars-streaming (memory bounded by people and cells,
        /// not rows), polars-in-memory (holds the columns a query reads), datafusion, or a
        /// Ballista cluster as df://host:port (those two need an oar built with
        /// `--features datafusion`).
        #[arg(long, default_value = "polars-streaming", value_parser = oar_host::query::QueryEngine::from_name)]
        engine: oar_host::query::QueryEngine,
    },
    /// Run the holder's service: signed requests, job queue, signed releases, audit log. With no
    /// options it creates `oar-data/` with a starter policy, keys and synthetic data.
    Serve {
        /// Config file (TOML; see `oar_host::server::ServeConfig`); OAR_* variables override it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data folder (overrides the config).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Address to listen on (overrides the config), e.g. 127.0.0.1:8420.
        #[arg(long)]
        listen: Option<String>,
    },
    /// Send a module run to a holder's server: upload the bundle and approval, queue the run.
    Submit {
        /// The server, e.g. http://127.0.0.1:8420.
        #[arg(long)]
        server: String,
        /// Your requester key (signs every request).
        #[arg(long)]
        key: PathBuf,
        /// The bundle (.oarb).
        #[arg(long)]
        bundle: PathBuf,
        /// The approval (JSON).
        #[arg(long)]
        approval: PathBuf,
        /// Module parameters (JSON).
        #[arg(long, default_value = "{}")]
        params: String,
        /// Run again this many seconds after each successful run (60 s to a year and a day).
        #[arg(long)]
        every_seconds: Option<i64>,
        /// PEM file of the CA that signed the server's TLS certificate (or the certificate
        /// itself), for an `https://` server not signed by a public CA.
        #[arg(long)]
        ca_cert: Option<PathBuf>,
    },
    /// Wait for a job on a holder's server and download its signed release.
    Fetch {
        /// The server, e.g. http://127.0.0.1:8420.
        #[arg(long)]
        server: String,
        /// Your requester key.
        #[arg(long)]
        key: PathBuf,
        /// The job id `oar submit` printed.
        #[arg(long)]
        job: String,
        /// Folder for the release.
        #[arg(long)]
        out: PathBuf,
        /// Seconds to wait for the job to finish.
        #[arg(long, default_value_t = 600)]
        wait_seconds: u64,
        /// The holder's public key (its `.pub` file, or 64 hex digits): the release is verified
        /// before anything is written.
        #[arg(long)]
        holder: String,
        /// PEM file of the CA that signed the server's TLS certificate (or the certificate
        /// itself), for an `https://` server not signed by a public CA.
        #[arg(long)]
        ca_cert: Option<PathBuf>,
    },
    /// Ask several holders the same question and combine their signed answers: counts and
    /// sums add, noise variances add, a cell withheld anywhere stays withheld.
    Federate {
        #[command(subcommand)]
        action: FederateAction,
    },
    /// Check a release folder offline: the holder's signature and every file's hash.
    VerifyRelease {
        /// The release folder.
        dir: PathBuf,
        #[command(flatten)]
        holder: HolderArg,
    },
    /// Check or export the audit log.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Write the JSON Schemas of plans, dataset schemas and tables (the documents a module
    /// exchanges with the host), for modules written in any language.
    Schema {
        /// The folder to write them to.
        #[arg(long, default_value = oar_host::schema_files::CHECKED_IN)]
        out: PathBuf,
    },
    /// Write a synthetic dataset and its descriptor.
    Synth {
        #[command(subcommand)]
        kind: SynthKind,
    },
    /// Measure the population release against raw Polars and OpenDP on synthetic data.
    Bench {
        /// Synthetic rows.
        #[arg(long, default_value_t = 10_000_000)]
        rows: usize,
        /// Timed repetitions, the median reported: 5 by default; with --scale 1, each a fresh
        /// process per variant and size (the largest peak memory is reported).
        #[arg(long)]
        repeat: Option<usize>,
        /// Folder for the generated data (reused if present).
        #[arg(long, default_value = "target/oar-bench")]
        dir: PathBuf,
        /// Also time Python Polars (exact) and OpenDP-Python (user-level DP) on the same file,
        /// from a pinned Python environment installed from PyPI on first use.
        #[arg(long)]
        peers: bool,
        /// With --peers: a Python that already has opendp[polars] and polars.
        #[arg(long)]
        python: Option<PathBuf>,
        /// Measure the population and OD releases over growing data instead (time and peak
        /// memory per variant, each in its own process, against raw Polars on the same files).
        #[arg(long)]
        scale: bool,
        /// With --scale: the row counts to measure.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "10000000,100000000,1000000000"
        )]
        sizes: Vec<usize>,
        /// With --scale: subscribers (privacy units), the same at every size.
        #[arg(long, default_value_t = 2_000_000)]
        subscribers: usize,
        /// With --scale: run the in-memory variants only up to this many rows (they hold the
        /// columns in memory).
        #[arg(long, default_value_t = 100_000_000)]
        in_memory_up_to: usize,
        /// With --scale: only these variants (raw-streaming, raw-in-memory, population,
        /// population-in-memory, population-datafusion, raw-od-streaming, od, od-in-memory,
        /// od-datafusion; default all this build can run).
        #[arg(long, value_delimiter = ',')]
        variants: Vec<String>,
    },
    /// Runs one `bench --scale` measurement in this process (used by `oar bench --scale`).
    #[command(hide = true)]
    BenchVariant {
        /// The variant.
        variant: String,
        /// The dataset descriptor.
        #[arg(long)]
        data: PathBuf,
    },
}

/// The language of a new module.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Lang {
    /// A Rust crate.
    Rust,
    /// A Python app.py.
    Python,
}

/// A signed module, its approval and the policy to check them against.
#[derive(clap::Args)]
struct ModuleArgs {
    /// The bundle (.oarb).
    #[arg(long)]
    bundle: PathBuf,
    /// The approval (JSON).
    #[arg(long)]
    approval: PathBuf,
    /// The holder's policy (TOML).
    #[arg(long)]
    policy: PathBuf,
    /// The signed revocation list; it must verify against the policy, or nothing runs.
    /// Default: `revocations.json` beside the policy, if there is one.
    #[arg(long)]
    revocations: Option<PathBuf>,
}

impl ModuleArgs {
    /// Reads all of them and verifies the module now.
    fn verify(&self) -> anyhow::Result<(oar_host::verify::VerifiedModule, Policy, Revocations)> {
        let bundle = Bundle::read(&self.bundle)?;
        let approval = Approval::read(&self.approval)?;
        let policy = Policy::load(&self.policy)?;
        let revocations = Revocations::new();
        let beside_policy = self
            .policy
            .parent()
            .map(|d| d.join("revocations.json"))
            .filter(|p| p.exists());
        match self.revocations.as_ref().or(beside_policy.as_ref()) {
            Some(path) => {
                revocations
                    .install(&SignedRevocations::read(path)?, &policy)
                    .with_context(|| format!("installing {}", path.display()))?;
                if self.revocations.is_none() {
                    eprintln!("using the revocation list {}", path.display());
                }
            }
            None => eprintln!(
                "note: no revocation list (--revocations, or revocations.json beside the policy): nothing is treated as revoked"
            ),
        }
        let verified = revocations
            .with(|list| verify(&bundle, &approval, &policy, list, chrono::Utc::now()))?;
        Ok((verified, policy, revocations))
    }
}

/// The holder's public key, given directly or through the policy's `[holder]`.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct HolderArg {
    /// The holder's public key: its `.pub` file, or 64 hex digits.
    #[arg(long)]
    holder: Option<String>,
    /// A policy whose [holder] key to use.
    #[arg(long)]
    policy: Option<PathBuf>,
}

impl HolderArg {
    fn key(&self) -> anyhow::Result<oar_host::keys::PublicKey> {
        if let Some(given) = &self.holder {
            return public_key_arg(given);
        }
        let path = self.policy.as_ref().expect("clap requires one of the two");
        let policy = Policy::load(path)?;
        match policy.holder {
            Some(h) => Ok(h.key),
            None => bail!("{} has no [holder] key; pass --holder HEX", path.display()),
        }
    }
}

#[derive(Subcommand)]
enum FederateAction {
    /// Upload the bundle and each holder's approval, and submit the run at every holder.
    Submit {
        /// The holders (TOML): `[[holders]]` with name, url, holder_key (.pub or hex), key
        /// (your .key there), and optionally approval and ca_cert. Paths are relative to it.
        #[arg(long)]
        holders: PathBuf,
        /// The signed bundle.
        #[arg(long)]
        bundle: PathBuf,
        /// The approval, for holders whose entry names none.
        #[arg(long)]
        approval: Option<PathBuf>,
        /// Module parameters (JSON), the same at every holder.
        #[arg(long, default_value = "{}")]
        params: String,
        /// Where to write the run file `oar federate fetch` reads.
        #[arg(long, default_value = "federated-run.json")]
        out: PathBuf,
    },
    /// Wait for every holder's run, verify each release against its holder's key, and combine
    /// them into OUT/combined (with OUT/federation.json, the provenance).
    Fetch {
        /// The run file `oar federate submit` wrote.
        #[arg(long, default_value = "federated-run.json")]
        run: PathBuf,
        /// A new folder for the holders' releases and the combination.
        #[arg(long)]
        out: PathBuf,
        /// Seconds to wait for each holder's run.
        #[arg(long, default_value_t = 600)]
        wait_seconds: u64,
        /// If a holder refused, failed or is down, combine the others anyway, into
        /// OUT/combined-partial, labelled partial (by default nothing is combined).
        #[arg(long)]
        partial: bool,
    },
    /// Check a combined folder offline: every holder's release against its key, and the
    /// combination recomputed from them.
    Verify {
        /// The folder `oar federate fetch` wrote.
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum AuditAction {
    /// Check the whole chain and the signed head; name the first broken entry.
    Verify {
        /// The audit log.
        log: PathBuf,
        #[command(flatten)]
        holder: HolderArg,
        /// A signed head kept from earlier (a `.head.json` file, or the `head` of a `/v1/audit`
        /// answer saved as JSON): also prove the log was not rewound or rewritten behind it.
        #[arg(long, value_name = "HEAD_JSON")]
        since: Option<PathBuf>,
    },
    /// Print the public register: who ran what, for which purpose, spending how much epsilon.
    Export {
        /// The audit log.
        log: PathBuf,
        /// JSON instead of CSV.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum RevokeAction {
    /// Add an item to the list (creating the list if needed). This starts a new version of the
    /// list: earlier signatures no longer apply and it must be signed again.
    Add {
        /// The revocation list file (JSON).
        #[arg(long)]
        list: PathBuf,
        /// What to revoke.
        #[arg(long, value_enum)]
        kind: RevokeKindArg,
        /// Its id: module hash, approval digest or public key (hex).
        #[arg(long)]
        id: String,
        /// Why (shown in refusals).
        #[arg(long)]
        reason: String,
    },
    /// Add your signature (holder or committee member) to the current version of the list.
    Sign {
        /// The revocation list file (JSON).
        #[arg(long)]
        list: PathBuf,
        /// Your secret key.
        #[arg(long)]
        key: PathBuf,
    },
    /// Check the list's signatures against a policy and print its entries.
    Check {
        /// The revocation list file (JSON).
        #[arg(long)]
        list: PathBuf,
        /// The holder's policy.
        #[arg(long)]
        policy: PathBuf,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum RevokeKindArg {
    Module,
    Approval,
    Key,
}

impl From<RevokeKindArg> for RevokedKind {
    fn from(k: RevokeKindArg) -> Self {
        match k {
            RevokeKindArg::Module => RevokedKind::Module,
            RevokeKindArg::Approval => RevokedKind::Approval,
            RevokeKindArg::Key => RevokedKind::Key,
        }
    }
}

/// Where `oar new NAME` puts a module: `--dir`, else `example-algorithms/NAME` in the OAR
/// checkout around the current folder, else `./NAME`.
fn new_module_dir(name: &str, dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(d) = dir {
        return Ok(d);
    }
    let cwd = std::env::current_dir()?;
    Ok(match oar_host::template::find_checkout(&cwd) {
        Some(root) => root.join("example-algorithms").join(name),
        None => cwd.join(name),
    })
}

/// A fresh private folder under the system's temporary directory.
fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("oar-dry-run-{}", oar_host::job::new_job_id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn revoke(action: RevokeAction) -> anyhow::Result<()> {
    match action {
        RevokeAction::Add {
            list,
            kind,
            id,
            reason,
        } => {
            if !(id.len() == 64 && id.chars().all(|c| c.is_ascii_hexdigit())) {
                bail!("--id must be 64 hex digits (a module hash, approval digest or public key), got '{id}'");
            }
            let mut signed = if list.exists() {
                SignedRevocations::read(&list)?
            } else {
                SignedRevocations::new(RevocationList::empty())
            };
            signed
                .list
                .add(kind.into(), &id, &reason, chrono::Utc::now());
            signed.signatures.clear();
            signed.write(&list)?;
            println!(
                "{}: serial {} with {} entr(ies); unsigned: have it signed with `oar revoke sign` by the holder or a committee quorum",
                list.display(),
                signed.list.serial,
                signed.list.entries.len()
            );
            Ok(())
        }
        RevokeAction::Sign { list, key } => {
            let mut signed = SignedRevocations::read(&list)?;
            let signer = KeyPair::read(&key)?;
            signed.sign(&signer);
            signed.write(&list)?;
            println!(
                "{} signed serial {} ({} signature(s) now)",
                signer.name(),
                signed.list.serial,
                signed.signatures.len()
            );
            Ok(())
        }
        RevokeAction::Check { list, policy } => {
            let signed = SignedRevocations::read(&list)?;
            let policy = Policy::load(&policy)?;
            signed.check(&policy)?;
            println!(
                "OK: serial {} issued {}",
                signed.list.serial, signed.list.issued_at
            );
            for e in &signed.list.entries {
                println!("  {:?} {}: {}", e.kind, e.id, e.reason);
            }
            Ok(())
        }
    }
}

#[derive(Subcommand)]
enum SynthKind {
    /// Call-detail records: subscriber_id, timestamp, cell_id, region over 7 days.
    Cdr {
        /// Folder for cdr.parquet and cdr.toml.
        #[arg(long)]
        out: PathBuf,
        /// Approximate number of rows.
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
        /// Seed.
        #[arg(long, default_value_t = 7)]
        seed: u64,
    },
    /// Business premises: premise_id, ward, waste_contract, utility_connection,
    /// on_rates_register (ward k misses 1+k% of its active premises from the register).
    Premises {
        /// Folder for premises.parquet and premises.toml.
        #[arg(long)]
        out: PathBuf,
        /// Number of premises.
        #[arg(long, default_value_t = 60_000)]
        premises: usize,
        /// Seed.
        #[arg(long, default_value_t = 11)]
        seed: u64,
    },
    /// Smart-meter readings: meter_id, area, read_at, kwh, half_hourly_consent, one row per
    /// household per half-hour (area A05 has only 8 households).
    Meters {
        /// Folder for meters.parquet and meters.toml.
        #[arg(long)]
        out: PathBuf,
        /// Households in the four large areas together.
        #[arg(long, default_value_t = 60_000)]
        meters: usize,
        /// Days of readings.
        #[arg(long, default_value_t = 1)]
        days: u32,
        /// Seed.
        #[arg(long, default_value_t = 13)]
        seed: u64,
    },
    /// Road journeys: vehicle_id, corridor, entered_at, journey_secs over 14 days from
    /// 2026-04-06, with events on 2026-04-09 (19:00-22:59) and 2026-04-18 (15:00-18:59) slowing
    /// corridors C1 and C2 (C6 is a private road with 5 vehicles).
    Journeys {
        /// Folder for journeys.parquet and journeys.toml.
        #[arg(long)]
        out: PathBuf,
        /// Vehicles on the ordinary corridors.
        #[arg(long, default_value_t = 40_000)]
        vehicles: usize,
        /// Seed.
        #[arg(long, default_value_t = 17)]
        seed: u64,
    },
}

/// Logs to standard error: the level from `OAR_LOG` (default `warn`; `info` shows each run's
/// module hash and job id), as text or, with `OAR_LOG_FORMAT=json`, one JSON object per line
/// for a log collector. Log lines never carry a data value.
fn init_logging() {
    let filter =
        || tracing_subscriber::EnvFilter::try_from_env("OAR_LOG").unwrap_or_else(|_| "warn".into());
    let builder = tracing_subscriber::fmt().with_writer(std::io::stderr);
    match std::env::var("OAR_LOG_FORMAT").as_deref() {
        Ok("json") => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_env_filter(filter())
            .init(),
        Ok("text") | Err(_) => builder.with_env_filter(filter()).init(),
        Ok(other) => {
            builder.with_env_filter(filter()).init();
            tracing::warn!(
                format = other,
                "OAR_LOG_FORMAT must be text or json; logging as text"
            );
        }
    }
}

/// Parses arguments, runs the command, prints errors with their causes.
pub fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    match execute(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

fn execute(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Demo { out, rows, epsilon } => {
            println!("OAR demo: present population per region per day from {rows} synthetic call records");
            let opts = demo::DemoOptions { out, rows, epsilon };
            let report = demo::run(&opts, &mut |line| println!("{line}"))?;
            println!();
            print!("{}", demo::summary(&report));
            Ok(())
        }
        Command::Keygen { name, out } => {
            let k = KeyPair::generate(&name);
            let (secret, public) = k.write(&out)?;
            println!("secret key: {} (keep it private)", secret.display());
            println!("public key: {} ({})", public.display(), k.public());
            Ok(())
        }
        Command::Sign {
            component,
            manifest,
            key,
            out,
        } => {
            let bytes = std::fs::read(&component)
                .with_context(|| format!("reading {}", component.display()))?;
            let text = std::fs::read_to_string(&manifest)
                .with_context(|| format!("reading {}", manifest.display()))?;
            let manifest =
                Manifest::from_toml(&text).with_context(|| format!("in {}", manifest.display()))?;
            let author = KeyPair::read(&key)?;
            let bundle = Bundle::sign(bytes, manifest, &author);
            bundle.write(&out)?;
            println!(
                "signed {} {} as {}",
                bundle.manifest.name,
                bundle.manifest.version,
                author.name()
            );
            println!("module hash: {}", bundle.module_hash);
            println!("bundle: {}", out.display());
            Ok(())
        }
        Command::Approve {
            bundle,
            key,
            approval,
            epsilon_total,
            valid_days,
            conditions,
        } => {
            let b = Bundle::read(&bundle)?;
            let member = KeyPair::read(&key)?;
            let mut a = if approval.exists() {
                let a = Approval::read(&approval)?;
                if a.record.module_hash != b.module_hash {
                    bail!(
                        "{} approves module {}, not this bundle's {}; use a new approval file",
                        approval.display(),
                        a.record.module_hash,
                        b.module_hash
                    );
                }
                a
            } else {
                let now = chrono::Utc::now();
                let mut r = ApprovalRecord::for_bundle(
                    &b,
                    epsilon_total,
                    now,
                    now + chrono::Duration::days(valid_days),
                );
                r.conditions = conditions;
                Approval::new(r)
            };
            a.sign(&member);
            a.write(&approval)?;
            println!(
                "{} signed the approval of {} ({} signature(s) now)",
                member.name(),
                a.record.module_name,
                a.signatures.len()
            );
            Ok(())
        }
        Command::Review {
            bundle,
            policy,
            approval,
            json,
        } => {
            let b = Bundle::read(&bundle)?;
            let policy = policy.as_deref().map(Policy::load).transpose()?;
            let approval = approval.as_deref().map(Approval::read).transpose()?;
            let review = Review::of(&b, policy.as_ref(), approval.as_ref());
            if json {
                println!("{}", serde_json::to_string_pretty(&review)?);
            } else {
                print!("{review}");
            }
            Ok(())
        }
        Command::Revoke { action } => revoke(action),
        Command::Verify { module } => {
            let (v, p, _) = module.verify()?;
            println!(
                "OK: {} {} ({}), approved by {} of {} required members until {}",
                v.manifest().name,
                v.manifest().version,
                v.module_hash(),
                v.signers().len(),
                p.committee.quorum,
                v.approval().valid_until
            );
            Ok(())
        }
        Command::Run {
            module,
            datasets,
            requester,
            params,
            out,
            cache,
            ledger,
            dry_run,
            dry_rows,
            dry_units,
            holder_key,
            audit,
            engine,
        } => {
            let (v, p, revocations) = module.verify()?;
            let v = Arc::new(v);
            if dry_run {
                let opened = datasets
                    .iter()
                    .map(|d| Dataset::open(d))
                    .collect::<Result<Vec<_>, _>>()?;
                let work = tempfile_dir()?;
                let spec = oar_host::synth::shaped::ShapedSpec {
                    rows: dry_rows,
                    units: dry_units,
                    seed: 1,
                };
                let report = oar_host::dry_run::dry_run(
                    Runtime::new(cache)?,
                    oar_host::dry_run::DryRun {
                        module: v,
                        policy: p,
                        datasets: &opened,
                        requester: &requester,
                        params: &params,
                        spec,
                    },
                    &work,
                )?;
                let _ = std::fs::remove_dir_all(&work);
                print!("{report}");
                return Ok(());
            }
            let mut catalog = Catalog::new();
            for d in &datasets {
                catalog.register(Dataset::open(d)?);
            }
            let ledger = Arc::new(SqliteLedger::open(&ledger)?);
            let recovery = ledger.recover()?;
            if !recovery.failed_runs.is_empty() {
                eprintln!(
                    "ledger: {} run(s) interrupted earlier are marked failed; {} unsettled reservation(s) refunded",
                    recovery.failed_runs.len(),
                    recovery.refunded
                );
            }
            let holder = holder_key.as_deref().map(KeyPair::read).transpose()?;
            let mut host = Host::new(Runtime::new(cache)?, catalog, p, ledger)
                .with_revocations(Arc::new(revocations))
                .with_backend(oar_host::engine::backend(&engine).map_err(anyhow::Error::msg)?);
            if let (Some(path), Some(h)) = (&audit, &holder) {
                let log = oar_host::audit::AuditLog::open(path, h.clone())
                    .with_context(|| format!("opening the audit log {}", path.display()))?;
                log.close_interrupted(&recovery.failed_runs)
                    .with_context(|| format!("writing the audit log {}", path.display()))?;
                host = host.with_audit(Arc::new(log));
            }
            let target = oar_host::job::ReleaseTarget {
                dir: &out,
                signer: holder.as_ref(),
            };
            let job_id = oar_host::job::new_job_id();
            let outcome = host.run_job_into(&job_id, v, &requester, &params, Some(&target));
            for line in &outcome.record.log {
                eprintln!("module: {line}");
            }
            let release = outcome
                .result
                .with_context(|| format!("job {}", outcome.job_id))?;
            let files = outcome.files;
            if release.reused_by.is_some() {
                println!(
                    "job {}: identical to job {} (same module, approval, parameters and data); its release is returned again and nothing was charged",
                    outcome.job_id, release.job_id
                );
            } else {
                println!(
                    "job {}: released {} table(s), {} cell(s) suppressed, epsilon {}",
                    release.job_id,
                    release.tables.len(),
                    release.suppressed_cells(),
                    release.epsilon_total
                );
            }
            for f in files {
                println!("  {}", f.display());
            }
            Ok(())
        }
        Command::Serve {
            config,
            data,
            listen,
        } => {
            let mut cfg = oar_host::server::ServeConfig::load(config.as_deref())?;
            if let Some(d) = data {
                cfg.data_dir = d;
            }
            if let Some(l) = listen {
                cfg.listen = l;
            }
            let data_dir = cfg.data_dir.clone();
            let server = oar_host::server::start(cfg)?;
            for note in &server.bootstrap_notes {
                println!("{note}");
            }
            println!(
                "oar serve: listening on {}://{} (data in {}; API description at /openapi.json); admin API on http://{} (loopback only; token in {}/admin.token unless OAR_ADMIN_TOKEN is set)",
                server.scheme(),
                server.addr(),
                data_dir.display(),
                server.admin_addr(),
                data_dir.display()
            );
            // Under systemd (Type=notify): the listeners are bound and the workers run.
            oar_host::server::notify::ready(&format!(
                "listening on {}://{}",
                server.scheme(),
                server.addr()
            ));
            server.wait_for_signal()?;
            Ok(())
        }
        Command::Submit {
            server,
            key,
            bundle,
            approval,
            params,
            every_seconds,
            ca_cert,
        } => {
            let client = client_for(&server, KeyPair::read(&key)?, ca_cert.as_deref())?;
            let bundle_bytes =
                std::fs::read(&bundle).with_context(|| format!("reading {}", bundle.display()))?;
            let approval_bytes = std::fs::read(&approval)
                .with_context(|| format!("reading {}", approval.display()))?;
            let params: serde_json::Value =
                serde_json::from_str(&params).context("--params must be JSON")?;
            let module = client.upload_bundle(&bundle_bytes)?;
            client.attach_approval(&approval_bytes)?;
            let job = client.submit(&module, &params, every_seconds)?;
            println!("{job}");
            eprintln!("queued job {job} for module {module}; `oar fetch --job {job}` downloads the release");
            Ok(())
        }
        Command::Fetch {
            server,
            key,
            job,
            out,
            wait_seconds,
            holder,
            ca_cert,
        } => {
            let holder = public_key_arg(&holder)?;
            let client = client_for(&server, KeyPair::read(&key)?, ca_cert.as_deref())?;
            let status = wait_showing(&client, &job, wait_seconds)?;
            let state = status["status"].as_str().unwrap_or_default();
            if state != "succeeded" {
                bail!(
                    "job {job} is {state}{}",
                    status["error"]
                        .as_str()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                );
            }
            let spin = progress::spinner(format!(
                "downloading and verifying the release of job {job}"
            ));
            let (manifest, files) = client.fetch_verified(&job, &out, &holder)?;
            spin.finish_and_clear();
            if manifest.job_id != job {
                bail!(
                    "the server returned the release of job {} for job {job}; it was verified but is not the one asked for",
                    manifest.job_id
                );
            }
            println!("verified: signed by the holder {holder}, every file intact");
            println!("job {job}: {} file(s) in {}", files.len(), out.display());
            Ok(())
        }
        Command::Federate { action } => match action {
            FederateAction::Submit {
                holders,
                bundle,
                approval,
                params,
                out,
            } => federate::submit(&holders, &bundle, approval.as_deref(), &params, &out),
            FederateAction::Fetch {
                run,
                out,
                wait_seconds,
                partial,
            } => federate::fetch(&run, &out, wait_seconds, partial),
            FederateAction::Verify { dir } => federate::verify(&dir),
        },
        Command::VerifyRelease { dir, holder } => {
            let key = holder.key()?;
            let manifest = oar_host::release::signed::verify_dir(&dir, &key)?;
            println!(
                "OK: release of job {} signed by the holder {key}; {} file(s) intact",
                manifest.job_id,
                manifest.files.len()
            );
            Ok(())
        }
        Command::Audit {
            action: AuditAction::Verify { log, holder, since },
        } => {
            let key = holder.key()?;
            let v = match &since {
                None => oar_host::audit::verify(&log, &key)?,
                Some(kept) => {
                    let kept = oar_host::audit::Head::read(kept)?;
                    oar_host::audit::verify_since(&log, &key, &kept)?
                }
            };
            println!(
                "OK: {} entries chain correctly up to the head {} signed by the holder",
                v.entries, v.head
            );
            if since.is_some() {
                println!("OK: the log still holds the kept head; it was not rewound");
            }
            Ok(())
        }
        Command::Audit {
            action: AuditAction::Export { log, json },
        } => {
            let rows = oar_host::audit::export(&log)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!("at,job_id,requester,module,module_hash,purpose,datasets,epsilon");
                for r in rows {
                    let field = |s: &str| {
                        if s.contains([',', '"', '\n']) {
                            format!("\"{}\"", s.replace('"', "\"\"").replace('\n', " "))
                        } else {
                            s.to_string()
                        }
                    };
                    println!(
                        "{},{},{},{},{},{},{},{}",
                        r.at,
                        r.job_id,
                        field(&r.requester),
                        field(&r.module),
                        r.module_hash,
                        field(&r.purpose),
                        field(&r.datasets.join(" ")),
                        r.epsilon
                    );
                }
            }
            Ok(())
        }
        Command::Schema { out } => {
            let written = oar_host::schema_files::write(&out)
                .with_context(|| format!("writing the JSON Schemas to {}", out.display()))?;
            for path in written {
                println!("wrote {}", path.display());
            }
            Ok(())
        }
        Command::Synth {
            kind: SynthKind::Cdr { out, rows, seed },
        } => {
            let spec = CdrSpec {
                rows,
                seed,
                ..CdrSpec::default()
            };
            let t = std::time::Instant::now();
            let spin = progress::spinner(format!("writing ~{rows} call records"));
            let desc = spec.write(&out)?;
            spin.finish_and_clear();
            println!(
                "wrote ~{rows} call records in {:.1?}; descriptor {}",
                t.elapsed(),
                desc.display()
            );
            Ok(())
        }
        Command::Synth {
            kind:
                SynthKind::Premises {
                    out,
                    premises,
                    seed,
                },
        } => {
            let spin = progress::spinner(format!("writing {premises} premises"));
            let desc = oar_host::synth::premises::PremisesSpec { premises, seed }.write(&out)?;
            spin.finish_and_clear();
            println!("wrote {premises} premises; descriptor {}", desc.display());
            Ok(())
        }
        Command::Synth {
            kind:
                SynthKind::Meters {
                    out,
                    meters,
                    days,
                    seed,
                },
        } => {
            if days == 0 {
                anyhow::bail!("--days must be at least 1");
            }
            let spec = oar_host::synth::meters::MetersSpec {
                meters,
                days,
                seed,
                ..Default::default()
            };
            let spin = progress::spinner(format!("writing {days} day(s) of half-hourly readings"));
            let desc = spec.write(&out)?;
            spin.finish_and_clear();
            println!(
                "wrote {} households × {days} day(s) of half-hourly readings; descriptor {}",
                meters + oar_host::synth::meters::SMALL_AREA_METERS,
                desc.display()
            );
            Ok(())
        }
        Command::Synth {
            kind:
                SynthKind::Journeys {
                    out,
                    vehicles,
                    seed,
                },
        } => {
            let spec = oar_host::synth::traffic::TrafficSpec {
                vehicles,
                seed,
                ..Default::default()
            };
            let spin = progress::spinner(format!("writing the journeys of {vehicles} vehicles"));
            let desc = spec.write(&out)?;
            spin.finish_and_clear();
            println!(
                "wrote the journeys of {} vehicles over {} days (events on {}); descriptor {}",
                vehicles + oar_host::synth::traffic::SMALL_CORRIDOR_VEHICLES,
                oar_host::synth::traffic::DAYS,
                spec.event_dates().join(" and "),
                desc.display()
            );
            Ok(())
        }
        Command::New {
            name,
            dir,
            lang: Lang::Python,
        } => {
            let dir = new_module_dir(&name, dir)?;
            let created = oar_host::template::create_python(&name, &dir)?;
            println!(
                "created Python module '{name}' in {}",
                created.dir.display()
            );
            for f in &created.files {
                println!("  {f}");
            }
            let d = created.dir.display();
            println!(
                "\nnext:\n  oar test {d}     # unit tests, and a native run through the real gate on synthetic data\n  \
                 oar build {d}    # needs componentize-py {} (python3 -m pip install componentize-py=={})\n  \
                 oar sign --component {d}/build/{name}.wasm --manifest {d}/manifest.toml --key YOUR.key --out {name}.oarb",
                oar_host::module_build::COMPONENTIZE_PY_VERSION,
                oar_host::module_build::COMPONENTIZE_PY_VERSION,
            );
            Ok(())
        }
        Command::Build {
            dir,
            out,
            componentize_py,
        } => {
            let tools = oar_host::module_build::Tools {
                componentize_py,
                ..Default::default()
            };
            let built = oar_host::module_build::build(&dir, out.as_deref(), &tools)?;
            println!(
                "built {} ({:?}, {:.1} MB): {}\nmodule hash {}\nchecked: it compiles, and imports only what the host provides",
                built.name,
                built.language,
                built.bytes as f64 / 1e6,
                built.component.display(),
                built.module_hash,
            );
            println!(
                "\nnext:\n  oar sign --component {} --manifest {}/manifest.toml --key YOUR.key --out {}.oarb",
                built.component.display(),
                dir.display(),
                built.name
            );
            Ok(())
        }
        Command::Test { dir, python } => {
            let tools = oar_host::module_build::Tools {
                python,
                ..Default::default()
            };
            let oar = std::env::current_exe().context("finding the oar binary")?;
            oar_host::module_build::test(&dir, &oar, &tools)?;
            Ok(())
        }
        Command::LocalHost { manifest, datasets } => {
            let data = tempfile_dir()?;
            let harness = if datasets.is_empty() {
                oar_host::local::Harness::with_synthetic_data(&manifest, &data)
            } else {
                oar_host::local::Harness::new(&manifest, &datasets)
            };
            let served = harness.map_err(anyhow::Error::from).and_then(|h| {
                let stdin = std::io::stdin().lock();
                let stdout = std::io::stdout().lock();
                Ok(oar_host::local::lines::serve(&h, stdin, stdout)?)
            });
            let _ = std::fs::remove_dir_all(&data);
            served
        }
        Command::New {
            name,
            dir,
            lang: Lang::Rust,
        } => {
            let dir = new_module_dir(&name, dir)?;
            let checkout = Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .unwrap_or(Path::new("."));
            let created = oar_host::template::create(&name, &dir, checkout)?;
            println!("created module '{name}' in {}", created.dir.display());
            for f in &created.files {
                println!("  {f}");
            }
            match &created.workspace {
                Some(root) => println!("added to the workspace in {}/Cargo.toml", root.display()),
                None => println!(
                    "a standalone crate using the SDK and host in {}",
                    checkout.display()
                ),
            }
            let wasm = name.replace('-', "_");
            println!(
                "\nnext:\n  cargo test -p {name}        # natively, through the real gate, on synthetic data\n  \
                 oar build {}   # the component, checked as the host will check it\n  \
                 oar sign --component target/wasm32-wasip2/guest/{wasm}.wasm --manifest {}/manifest.toml --key YOUR.key --out {name}.oarb",
                created.dir.display(),
                created.dir.display()
            );
            Ok(())
        }
        Command::Bench {
            scale: true,
            sizes,
            subscribers,
            in_memory_up_to,
            dir,
            variants,
            repeat,
            ..
        } => {
            use oar_host::bench::scale::Variant;
            let names: Vec<_> = Variant::ALL.iter().map(|v| v.name()).collect();
            let variants = variants
                .iter()
                .map(|n| {
                    Variant::from_name(n).with_context(|| {
                        format!("no variant '{n}'; variants: {}", names.join(", "))
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let dir = if dir == std::path::Path::new("target/oar-bench") {
                PathBuf::from("target/oar-scale")
            } else {
                dir
            };
            let opts = oar_host::bench::scale::ScaleOptions {
                sizes,
                subscribers,
                dir,
                in_memory_up_to,
                exe: std::env::current_exe().context("finding the oar executable")?,
                variants,
                repeat: repeat.unwrap_or(1),
            };
            let bar = progress::Bar::new();
            let report = oar_host::bench::scale::run(&opts, &mut |p| bar.report(p))?;
            drop(bar);
            println!();
            print!("{report}");
            if !report.failed.is_empty() {
                anyhow::bail!(
                    "{} variant run(s) failed (above); the others were measured",
                    report.failed.len()
                );
            }
            Ok(())
        }
        Command::BenchVariant { variant, data } => {
            use oar_host::bench::scale;
            let v = scale::Variant::from_name(&variant).with_context(|| {
                let names: Vec<_> = scale::Variant::ALL.iter().map(|v| v.name()).collect();
                format!("no variant '{variant}'; variants: {}", names.join(", "))
            })?;
            let m = scale::run_variant(v, &data)?;
            println!("{}", scale::format_measurement(&m));
            Ok(())
        }
        Command::Bench {
            rows,
            repeat,
            dir,
            peers,
            python,
            ..
        } => {
            let bar = progress::Bar::new();
            let report = oar_host::bench::run(
                &oar_host::bench::BenchOptions {
                    rows,
                    repeat: repeat.unwrap_or(5),
                    dir,
                    peers,
                    python,
                },
                &mut |p| bar.report(p),
            )?;
            drop(bar);
            println!();
            print!("{report}");
            Ok(())
        }
    }
}

/// A public key given on the command line: 64 hex digits, or a key file (`oar keygen`'s `.pub`).
fn public_key_arg(given: &str) -> anyhow::Result<oar_host::keys::PublicKey> {
    let trimmed = given.trim();
    if trimmed.len() == 64 && trimmed.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(oar_host::keys::PublicKey::from_hex(trimmed)?);
    }
    let path = Path::new(given);
    if !path.is_file() {
        bail!("'{given}' is neither a public key (64 hex digits) nor a key file; give the `.pub` file `oar keygen` wrote, or the key in hex");
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {given}"))?;
    let kind = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["kind"].as_str().map(String::from));
    match kind.as_deref() {
        Some("oar-public-key") => Ok(oar_host::keys::read_public(path)?.public),
        Some("oar-secret-key") => bail!(
            "{given} is a secret key file; give the public one (the `.pub` beside it): a secret key never needs to leave its owner"
        ),
        _ => bail!("{given} is not an OAR key file; give the `.pub` file `oar keygen` wrote, or the key in hex"),
    }
}

/// Waits for job `id` to leave the queue (at most `seconds`), showing its state on a spinner;
/// returns its last status.
fn wait_showing(
    client: &oar_host::client::Client,
    id: &str,
    seconds: u64,
) -> anyhow::Result<serde_json::Value> {
    let spin = progress::spinner(format!("job {id}: waiting"));
    let job = client.wait_watching(id, std::time::Duration::from_secs(seconds), |job| {
        let state = job["status"].as_str().unwrap_or_default();
        spin.set_message(format!("job {id}: {state}"));
    });
    spin.finish_and_clear();
    Ok(job?)
}

/// A client for `server`, trusting `ca_cert` (PEM) for HTTPS if given.
fn client_for(
    server: &str,
    key: KeyPair,
    ca_cert: Option<&std::path::Path>,
) -> anyhow::Result<oar_host::client::Client> {
    Ok(match ca_cert {
        None => oar_host::client::Client::new(server, key),
        Some(path) => {
            let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            oar_host::client::Client::with_ca_certs(server, key, &pem)?
        }
    })
}
