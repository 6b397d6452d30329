//! Command-line interface. Each subcommand is a thin shell over the library.

mod demo;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};
use oar_host::approval::{Approval, ApprovalRecord};
use oar_host::bundle::{Bundle, Manifest};
use oar_host::dataset::{Catalog, Dataset};
use oar_host::job::Host;
use oar_host::keys::KeyPair;
use oar_host::ledger::MemoryLedger;
use oar_host::policy::Policy;
use oar_host::sandbox::Runtime;
use oar_host::synth::cdr::CdrSpec;
use oar_host::verify::verify;
use std::path::PathBuf;
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
        /// Timed repetitions (the median is reported).
        #[arg(long, default_value_t = 5)]
        repeat: usize,
        /// Folder for the generated data (reused if present).
        #[arg(long, default_value = "target/oar-bench")]
        dir: PathBuf,
    },
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
}

impl ModuleArgs {
    /// Reads all three and verifies the module now.
    fn verify(&self) -> anyhow::Result<(oar_host::verify::VerifiedModule, Policy)> {
        let bundle = Bundle::read(&self.bundle)?;
        let approval = Approval::read(&self.approval)?;
        let policy = Policy::load(&self.policy)?;
        let verified = verify(&bundle, &approval, &policy, chrono::Utc::now())?;
        Ok((verified, policy))
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
}

/// Parses arguments, runs the command, prints errors with their causes.
pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OAR_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
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
        Command::Verify { module } => {
            let (v, p) = module.verify()?;
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
        } => {
            let (v, p) = module.verify()?;
            let v = Arc::new(v);
            let mut catalog = Catalog::new();
            for d in &datasets {
                catalog.register(Dataset::open(d)?);
            }
            let ledger = Arc::new(MemoryLedger::new());
            let host = Host::new(Runtime::new(cache)?, catalog, p, ledger);
            let outcome = host.run(v, &requester, &params);
            for line in &outcome.record.log {
                eprintln!("module: {line}");
            }
            let release = outcome
                .result
                .with_context(|| format!("job {}", outcome.job_id))?;
            let files = release.write(&out)?;
            println!(
                "job {}: released {} table(s), {} cell(s) suppressed, epsilon {}",
                release.job_id,
                release.tables.len(),
                release.suppressed_cells(),
                release.epsilon_total
            );
            for f in files {
                println!("  {}", f.display());
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
            let desc = spec.write(&out)?;
            println!(
                "wrote ~{rows} call records in {:.1?}; descriptor {}",
                t.elapsed(),
                desc.display()
            );
            Ok(())
        }
        Command::Bench { rows, repeat, dir } => {
            let report = oar_host::bench::run(
                &oar_host::bench::BenchOptions { rows, repeat, dir },
                &mut |l| println!("{l}"),
            )?;
            println!();
            print!("{report}");
            Ok(())
        }
    }
}
