//! The in-process host: runs a module's Rust code natively against a [`Session`], with the same
//! scope checks, gate, ledger and limits as the sandbox, so authors can test with `cargo test`.

use crate::session::{Session, SessionRecord};

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
