//! # oar-host: the OAR data holder's runtime
//!
//! Sends the code to the data: verifies signed, ethics-approved WebAssembly modules, runs them in a
//! sandbox next to the data, and releases only aggregates that passed the privacy gate.
//!
//! The modules follow the path of a request:
//! [`verify`] (signatures, quorum, expiry → [`verify::VerifiedModule`]) →
//! [`sandbox`] (wasmtime component, memory cap, deadline, only our imports) →
//! [`session`] (each guest call) → [`query`] (plan validation, Polars) →
//! [`gate`] (minimum units, OpenDP noise) → [`ledger`] (budget charge) →
//! [`release`] (tables and their privacy facts). [`job::Host`] ties them together.
#![deny(missing_docs)]

pub mod approval;
pub mod artifacts;
pub mod audit;
pub mod bench;
pub mod bundle;
pub mod canonical;
pub mod client;
pub use oar_query::dataset;
pub mod dry_run;
pub mod engine;
pub mod federation;
pub mod gate;
pub mod job;
pub mod keys;
pub mod ledger;
pub mod local;
pub mod module_build;
pub mod module_text;
pub mod policy;
pub mod progress;
pub use oar_query as query;
pub mod release;
pub mod review;
pub mod revocation;
pub mod sandbox;
pub mod schema_files;
pub mod server;
pub mod session;
pub mod synth;
pub mod template;
pub mod untrusted;
pub mod verify;
