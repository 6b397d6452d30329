//! Shared fixtures: keys, a policy, signed bundles and approvals, small synthetic datasets.
#![allow(dead_code)]

use oar_host::approval::{Approval, ApprovalRecord};
use oar_host::bundle::{Bundle, DatasetUse, Manifest, OutputDecl};
use oar_host::dataset::{Catalog, Dataset};
use oar_host::job::Host;
use oar_host::keys::KeyPair;
use oar_host::ledger::SqliteLedger;
use oar_host::policy::{Author, Budget, Committee, Limits, Party, Policy, Requester};
use oar_host::sandbox::Runtime;
use oar_host::synth::cdr::CdrSpec;
use oar_host::verify::{verify, VerifiedModule};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

pub mod python;
pub mod serve;
pub mod truth;

/// The parties of a test world, from fixed seeds.
pub struct World {
    pub author: KeyPair,
    pub members: Vec<KeyPair>,
    pub requester: KeyPair,
    pub policy: Policy,
}

impl World {
    /// A committee of `n` members with quorum `k`.
    pub fn new(k: usize, n: usize) -> World {
        let author = KeyPair::from_seed("author", "test author");
        let members: Vec<KeyPair> = (0..n)
            .map(|i| KeyPair::from_seed(&format!("member-{i}"), &format!("test member {i}")))
            .collect();
        let requester = KeyPair::from_seed("stats-office", "test requester");
        let policy = Policy {
            min_units: 10,
            delta0: 1e-9,
            limits: Limits {
                time_ms: 5_000,
                memory_mib: 64,
                ..Limits::default()
            },
            budget: Budget {
                epsilon_per_requester_dataset: 10.0,
                ..Budget::default()
            },
            holder: None,
            dominance: Default::default(),
            authors: vec![Author {
                name: "author".into(),
                key: author.public(),
                datasets: vec!["*".into()],
            }],
            committee: Committee {
                quorum: k,
                members: members
                    .iter()
                    .map(|m| Party {
                        name: m.name().into(),
                        key: m.public(),
                    })
                    .collect(),
            },
            requesters: vec![Requester {
                name: "stats-office".into(),
                key: requester.public(),
                datasets: vec!["cdr".into()],
            }],
            datasets: Default::default(),
        };
        World {
            author,
            members,
            requester,
            policy,
        }
    }
}

/// The manifest every test module uses (the population module's).
pub fn manifest() -> Manifest {
    Manifest {
        name: "population".into(),
        version: "0.1.0".into(),
        author: "test".into(),
        purpose: "tests".into(),
        max_epsilon_per_run: 2.0,
        datasets: vec![DatasetUse {
            name: "cdr".into(),
            columns: vec!["timestamp".into(), "region".into()],
        }],
        outputs: vec![OutputDecl {
            name: "population_by_region_day".into(),
            description: String::new(),
        }],
    }
}

/// Bytes of a component built from this repository.
pub fn component(name: &str) -> Vec<u8> {
    std::fs::read(oar_host::artifacts::component_path(name))
        .expect("guest component built by build.rs")
}

/// A bundle of `component` signed by the world's author.
pub fn bundle(world: &World, component: Vec<u8>) -> Bundle {
    Bundle::sign(component, manifest(), &world.author)
}

/// An approval of `bundle` valid around now, signed by the first `signers` members.
pub fn approval(world: &World, bundle: &Bundle, signers: usize) -> Approval {
    let now = chrono::Utc::now();
    let record = ApprovalRecord::for_bundle(
        bundle,
        10.0,
        now - chrono::Duration::hours(1),
        now + chrono::Duration::days(30),
    );
    let mut a = Approval::new(record);
    for m in world.members.iter().take(signers) {
        a.sign(m);
    }
    a
}

/// A verified module for a component from this repository, under the test manifest.
pub fn verified(world: &World, name: &str) -> Arc<VerifiedModule> {
    verified_bundle(world, bundle(world, component(name)))
}

/// The example module in `example-algorithms/CRATE_DIR` (component `name`), signed with its own
/// manifest and approved by the world's quorum.
pub fn verified_example(world: &World, crate_dir: &str, name: &str) -> Arc<VerifiedModule> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../example-algorithms/{crate_dir}/manifest.toml"));
    let manifest = Manifest::from_toml(&std::fs::read_to_string(path).unwrap()).unwrap();
    verified_bundle(
        world,
        Bundle::sign(component(name), manifest, &world.author),
    )
}

/// `b` approved by the world's quorum and verified now.
pub fn verified_bundle(world: &World, b: Bundle) -> Arc<VerifiedModule> {
    let a = approval(world, &b, world.policy.committee.quorum);
    Arc::new(
        verify(
            &b,
            &a,
            &world.policy,
            &oar_host::revocation::RevocationList::empty(),
            chrono::Utc::now(),
        )
        .expect("fixture verifies"),
    )
}

/// A small synthetic CDR set (shared by all tests in a binary), returning its descriptor path.
pub fn small_cdr() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("cdr-small-{}", std::process::id()));
        CdrSpec {
            rows: 60_000,
            ..CdrSpec::default()
        }
        .write(&dir)
        .expect("synthetic data")
    })
}

/// Compiled-code cache shared across test binaries.
pub fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cwasm-cache")
}

/// A host over the small CDR set with a ledger of `budget` per (requester, dataset).
pub fn host(world: &World, budget: f64) -> (Host, Arc<SqliteLedger>) {
    let mut policy = world.policy.clone();
    policy.budget.epsilon_per_requester_dataset = budget;
    let mut catalog = Catalog::new();
    catalog.register(Dataset::open(small_cdr()).expect("dataset opens"));
    let ledger = Arc::new(SqliteLedger::in_memory());
    let host = Host::new(
        Runtime::new(Some(cache_dir())).expect("runtime"),
        catalog,
        policy,
        ledger.clone(),
    );
    (host, ledger)
}

/// Epsilon `requester` has spent on the `cdr` dataset.
pub fn spent(ledger: &SqliteLedger, requester: &str) -> f64 {
    use oar_host::ledger::Ledger;
    ledger
        .spent(&oar_host::ledger::requester_key(requester, "cdr"))
        .expect("ledger readable")
}

/// A release of `tables` with placeholder run facts (for tests of writing and signing).
pub fn release_of(tables: Vec<oar_host::release::ReleasedTable>) -> oar_host::release::Release {
    oar_host::release::Release {
        job_id: "j".into(),
        module: "m".into(),
        module_version: "1".into(),
        module_hash: "h".into(),
        approval_digest: "d".into(),
        requester: "r".into(),
        created_at: "2026-11-29T00:00:00Z".into(),
        epsilon_spent: vec![],
        epsilon_total: 0.0,
        queries: vec![],
        tables,
        reused_by: None,
        params_sha256: None,
    }
}

/// `doc` with its top-level field `from` renamed to `to` (a misspelt field, for strict parsing).
pub fn renamed(doc: &serde_json::Value, from: &str, to: &str) -> serde_json::Value {
    let mut doc = doc.clone();
    let object = doc.as_object_mut().expect("an object");
    let value = object.remove(from).expect("the field exists");
    object.insert(to.to_string(), value);
    doc
}
