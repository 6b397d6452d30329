//! The in-process host: runs a module's Rust code natively against a [`Session`], with the same
//! scope checks, gate, ledger and limits as the sandbox, so authors can test with `cargo test`.
//!
//! [`Harness`] is the easy way in: give it the module's `manifest.toml` and datasets (or let it
//! write synthetic ones), and call [`Harness::run`] with the module's `run` function. It makes
//! throwaway keys, signs and approves the module in memory, and keeps a ledger for its lifetime,
//! so a researcher needs neither wasm nor keys to iterate.

use crate::approval::{Approval, ApprovalRecord};
use crate::bundle::{Bundle, Manifest};
use crate::dataset::{Catalog, Dataset};
use crate::keys::KeyPair;
use crate::ledger::SqliteLedger;
use crate::policy::{Author, Budget, Committee, Limits, Party, Policy, Requester};
use crate::revocation::{RevocationList, Revocations};
use crate::session::{Session, SessionRecord};
use crate::verify::VerifiedModule;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub mod lines;

/// A [`oar_guest::Host`] backed by a session.
pub struct LocalHost {
    session: Session,
}

impl LocalHost {
    /// Wraps a session.
    pub fn new(session: Session) -> Self {
        LocalHost { session }
    }

    /// Ends the run, returning what it produced.
    pub fn finish(self) -> SessionRecord {
        self.session.finish()
    }
}

impl oar_guest::Host for LocalHost {
    fn datasets(&mut self) -> Vec<String> {
        self.session.datasets()
    }
    fn dataset_schema(&mut self, name: &str) -> Result<String, String> {
        self.session.dataset_schema(name)
    }
    fn query(&mut self, plan: &str) -> Result<String, String> {
        self.session.query(plan)
    }
    fn check_plan(&mut self, plan: &str) -> Result<(), String> {
        self.session.check_plan(plan)
    }
    fn budget_remaining(&mut self, dataset: &str) -> f64 {
        self.session.budget_remaining(dataset)
    }
    fn emit(&mut self, name: &str, table: &str) -> Result<(), String> {
        self.session.emit(name, table)
    }
    fn log(&mut self, message: &str) {
        self.session.log(message)
    }
}

/// Why the harness could not start or run a module.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The manifest could not be read or parsed.
    #[error("manifest {path}: {reason}")]
    Manifest {
        /// The manifest's path.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// A dataset descriptor could not be opened.
    #[error("{0}")]
    Dataset(#[from] crate::dataset::DatasetError),
    /// The manifest reads a dataset with no descriptor and no synthetic generator.
    #[error("the manifest reads dataset '{0}', which has no descriptor here and no synthetic generator (oar synth knows cdr, premises, meters and journeys); pass its descriptor to Harness::new")]
    NoData(String),
    /// Writing synthetic data failed.
    #[error("{0}")]
    Synth(#[from] crate::synth::SynthError),
    /// The module failed or was refused; the record says what it had done by then.
    #[error("the module failed: {message}")]
    Run {
        /// The module's error.
        message: String,
        /// Tables, charges and refusals up to the failure.
        record: Box<SessionRecord>,
    },
}

/// The text of the manifest at `path` and its parsed form.
fn read_manifest(path: &Path) -> Result<(String, Manifest), HarnessError> {
    let error = |reason: String| HarnessError::Manifest {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    let parsed = Manifest::from_toml(&text).map_err(|e| error(e.to_string()))?;
    Ok((text, parsed))
}

/// Runs one module natively, through the real session, against local datasets.
pub struct Harness {
    module: Arc<VerifiedModule>,
    catalog: Arc<Catalog>,
    policy: Arc<Policy>,
    ledger: Arc<SqliteLedger>,
    revocations: Arc<Revocations>,
    runs: std::sync::atomic::AtomicU32,
}

/// The requester name runs are made for.
pub const HARNESS_REQUESTER: &str = "researcher";

impl Harness {
    /// A harness for the module described by `manifest` (its `manifest.toml`), serving the
    /// datasets of `descriptors`. The policy is the starter one: at least 10 units per cell,
    /// δ₀ = 1e-9, default limits, and a budget of 10 per dataset for the harness's lifetime.
    pub fn new(manifest: &Path, descriptors: &[PathBuf]) -> Result<Harness, HarnessError> {
        let (text, parsed) = read_manifest(manifest)?;
        let mut catalog = Catalog::new();
        for d in descriptors {
            catalog.register(Dataset::open(d)?);
        }
        let datasets: Vec<String> = parsed.datasets.iter().map(|d| d.name.clone()).collect();
        let author = KeyPair::generate("author");
        let member = KeyPair::generate("committee");
        let requester = KeyPair::generate(HARNESS_REQUESTER);
        let policy = Policy {
            min_units: 10,
            delta0: 1e-9,
            limits: Limits::default(),
            budget: Budget {
                epsilon_per_requester_dataset: 10.0,
                ..Budget::default()
            },
            holder: None,
            dominance: Default::default(),
            authors: vec![Author {
                name: "author".into(),
                key: author.public(),
                datasets: datasets.clone(),
            }],
            committee: Committee {
                quorum: 1,
                members: vec![Party {
                    name: member.name().into(),
                    key: member.public(),
                }],
            },
            requesters: vec![Requester {
                name: HARNESS_REQUESTER.into(),
                key: requester.public(),
                datasets,
            }],
            datasets: Default::default(),
        };
        // The component bytes are the manifest's: a native run has no wasm, and the hash only
        // has to bind this harness's approval to this manifest.
        let bundle = Bundle::sign(text.into_bytes(), parsed, &author);
        let now = chrono::Utc::now();
        let mut approval = Approval::new(ApprovalRecord::for_bundle(
            &bundle,
            policy.budget.epsilon_per_requester_dataset,
            now - chrono::Duration::minutes(1),
            now + chrono::Duration::days(1),
        ));
        approval.sign(&member);
        let module =
            crate::verify::verify(&bundle, &approval, &policy, &RevocationList::empty(), now)
                .map_err(|e| HarnessError::Manifest {
                    path: manifest.display().to_string(),
                    reason: e.to_string(),
                })?;
        Ok(Harness {
            module: Arc::new(module),
            catalog: Arc::new(catalog),
            policy: Arc::new(policy),
            ledger: Arc::new(SqliteLedger::in_memory()),
            revocations: Arc::new(Revocations::new()),
            runs: Default::default(),
        })
    }

    /// A harness whose datasets are synthetic ones written into `dir` (`oar synth` at a size
    /// that runs in seconds) for every dataset the manifest reads.
    pub fn with_synthetic_data(manifest: &Path, dir: &Path) -> Result<Harness, HarnessError> {
        let (_, parsed) = read_manifest(manifest)?;
        let mut descriptors = Vec::new();
        for d in &parsed.datasets {
            descriptors.push(match d.name.as_str() {
                "cdr" => crate::synth::cdr::CdrSpec {
                    rows: 200_000,
                    ..Default::default()
                }
                .write(dir)?,
                "premises" => crate::synth::premises::PremisesSpec::default().write(dir)?,
                "meters" => crate::synth::meters::MetersSpec {
                    meters: 20_000,
                    ..Default::default()
                }
                .write(dir)?,
                "journeys" => crate::synth::traffic::TrafficSpec {
                    vehicles: 20_000,
                    ..Default::default()
                }
                .write(dir)?,
                other => return Err(HarnessError::NoData(other.to_string())),
            });
        }
        Harness::new(manifest, &descriptors)
    }

    /// Starts a run: a host for one module run, through the same gate, ledger and limits as a
    /// sandboxed run. [`LocalHost::finish`] ends it.
    pub fn begin(&self) -> LocalHost {
        let n = self.runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        LocalHost::new(Session::new(
            &format!("local-{n}"),
            HARNESS_REQUESTER,
            self.module.clone(),
            self.catalog.clone(),
            self.policy.clone(),
            self.ledger.clone(),
            self.revocations.clone(),
        ))
    }

    /// Runs `run` with `params` (JSON) natively, through the same gate, ledger and limits as a
    /// sandboxed run. Budget spent stays spent for the harness's lifetime.
    pub fn run<P: serde::de::DeserializeOwned>(
        &self,
        params: &str,
        run: oar_guest::RunFn<P>,
    ) -> Result<SessionRecord, HarnessError> {
        let mut host = self.begin();
        let result = oar_guest::run_with_host(&mut host, params, run);
        let record = host.finish();
        match result {
            Ok(()) => Ok(record),
            Err(e) => Err(HarnessError::Run {
                message: e.to_string(),
                record: Box::new(record),
            }),
        }
    }
}
