//! Running a verified module for a requester: the in-process path that `oar run`, `oar demo` and
//! (later) the server share.

use crate::audit::{AuditLog, EntryKind};
use crate::dataset::Catalog;
use crate::ledger::{Ledger, RunStatus};
use crate::policy::Policy;
use crate::release::{Release, ReleasedTable};
use crate::revocation::Revocations;
use crate::sandbox::{RunLimits, RunStats, Runtime, SandboxError};
use crate::session::{Session, SessionRecord};
use crate::verify::{VerifiedModule, VerifyError};
use std::sync::Arc;
use std::time::Duration;

/// Why a job released nothing.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The requester is not in the policy.
    #[error("requester '{0}' is not listed in the policy's [[requesters]]")]
    UnknownRequester(String),
    /// The module, its approval, its author, a signer or the requester is revoked.
    #[error("{0}; the job did not start")]
    Revoked(VerifyError),
    /// The module failed in the sandbox; nothing it emitted is released.
    #[error("{0}; nothing was released")]
    Sandbox(#[from] SandboxError),
    /// The module finished without emitting a table.
    #[error("the module finished without emitting any table; nothing was released")]
    NoOutput,
    /// The ledger could not record the run; nothing ran.
    #[error("{0}; the job did not start")]
    Ledger(#[from] crate::ledger::LedgerError),
    /// The audit log could not record a step, so the step did not happen (fail closed).
    #[error("{0}; nothing was released")]
    Audit(#[from] crate::audit::AuditError),
    /// The release could not be written and signed; nothing was released or recorded as
    /// released.
    #[error("writing the release failed ({0}); nothing was released")]
    Write(String),
}

/// Where a run's release goes: written and signed there before the audit log and the ledger
/// record it as released (see [`Release::publish`]).
pub struct ReleaseTarget<'a> {
    /// The release folder (must not exist yet, or be empty).
    pub dir: &'a std::path::Path,
    /// The holder's key, to sign it.
    pub signer: Option<&'a crate::keys::KeyPair>,
}

/// A job's result and everything needed to account for it.
pub struct JobOutcome {
    /// The job id.
    pub job_id: String,
    /// The release, or why there is none.
    pub result: Result<Release, JobError>,
    /// Charges, refusals and log of the run (charges stand even when the run failed).
    pub record: SessionRecord,
    /// The release's files in its target folder, the signature last (empty without a target).
    pub files: Vec<std::path::PathBuf>,
    /// Sandbox timings.
    pub stats: Option<RunStats>,
}

/// Everything a data holder's host needs to run jobs.
pub struct Host {
    runtime: Runtime,
    catalog: std::sync::RwLock<Arc<Catalog>>,
    policy: Arc<Policy>,
    ledger: Arc<dyn Ledger>,
    revocations: Arc<Revocations>,
    audit: Option<Arc<AuditLog>>,
    reuse_releases: bool,
    backend: Arc<dyn crate::query::QueryBackend>,
}

impl Host {
    /// A host over these parts.
    pub fn new(
        runtime: Runtime,
        catalog: Catalog,
        policy: Policy,
        ledger: Arc<dyn Ledger>,
    ) -> Self {
        Host {
            runtime,
            catalog: std::sync::RwLock::new(Arc::new(catalog)),
            policy: Arc::new(policy),
            ledger,
            revocations: Arc::new(Revocations::new()),
            audit: None,
            reuse_releases: true,
            backend: Arc::new(crate::query::PolarsBackend::default()),
        }
    }

    /// Runs queries with `backend` (the holder's choice; Polars' streaming engine by default).
    pub fn with_backend(mut self, backend: Arc<dyn crate::query::QueryBackend>) -> Self {
        self.backend = backend;
        self
    }

    /// Runs every job afresh instead of returning an identical earlier run's release. Only for
    /// measuring the run path (`oar bench` repeats one run): a holder's host must reuse, or
    /// repeating a run would let a requester average the noise away.
    pub fn without_release_reuse(mut self) -> Self {
        self.reuse_releases = false;
        self
    }

    /// Records every run, charge, release and refusal in `log`.
    pub fn with_audit(mut self, log: Arc<AuditLog>) -> Self {
        self.audit = Some(log);
        self
    }

    /// Appends to the audit log, if there is one.
    fn audit(
        &self,
        kind: EntryKind,
        actor: &str,
        details: serde_json::Value,
    ) -> Result<(), crate::audit::AuditError> {
        match &self.audit {
            Some(log) => log.append(kind, actor, details).map(|_| ()),
            None => Ok(()),
        }
    }

    /// The datasets this host serves (a snapshot: registering a dataset later does not change
    /// it, and running jobs keep the catalogue they started with).
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Registers (or replaces) a dataset for jobs that start from now on.
    pub fn register_dataset(&self, dataset: crate::dataset::Dataset) {
        let mut guard = self.catalog.write().unwrap_or_else(|p| p.into_inner());
        let mut next = (**guard).clone();
        next.register(dataset);
        *guard = Arc::new(next);
    }

    /// Uses `revocations` (e.g. one shared with a server that installs new lists).
    pub fn with_revocations(mut self, revocations: Arc<Revocations>) -> Self {
        self.revocations = revocations;
        self
    }

    /// The installed revocation list; install a newer one with [`Revocations::install`] and it
    /// applies to the next job and to the next query of every running job.
    pub fn revocations(&self) -> &Arc<Revocations> {
        &self.revocations
    }

    /// The sandbox runtime.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The ledger.
    pub fn ledger(&self) -> &Arc<dyn Ledger> {
        &self.ledger
    }

    /// The policy.
    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// A session for a run (also used by the native harness).
    pub fn session(&self, job_id: &str, requester: &str, module: Arc<VerifiedModule>) -> Session {
        Session::new(
            job_id,
            requester,
            module,
            self.catalog(),
            self.policy.clone(),
            self.ledger.clone(),
            self.revocations.clone(),
        )
        .with_audit(self.audit.clone())
        .with_backend(self.backend.clone())
    }

    /// Runs `module` for `requester` with JSON `params`.
    ///
    /// A release exists only if the module finished successfully and emitted at least one table.
    /// Charges made before a failure stay charged (the module saw those results). An identical
    /// earlier run's release is returned instead of running again (see [`Release::reused_by`]).
    pub fn run(&self, module: Arc<VerifiedModule>, requester: &str, params: &str) -> JobOutcome {
        self.run_job(&new_job_id(), module, requester, params)
    }

    /// [`Host::run`] under a job id chosen by the caller (a queue's id).
    pub fn run_job(
        &self,
        job_id: &str,
        module: Arc<VerifiedModule>,
        requester: &str,
        params: &str,
    ) -> JobOutcome {
        self.run_job_into(job_id, module, requester, params, None)
    }

    /// [`Host::run_job`], writing the release to `target` before it is recorded: the audit
    /// log's release entry and the stored copy exist only for a release that is on disk, whole
    /// and signed.
    pub fn run_job_into(
        &self,
        job_id: &str,
        module: Arc<VerifiedModule>,
        requester: &str,
        params: &str,
        target: Option<&ReleaseTarget<'_>>,
    ) -> JobOutcome {
        let job_id = job_id.to_string();
        let refused = |e: JobError| {
            let details = serde_json::json!({
                "job_id": job_id,
                "module_hash": module.module_hash(),
                "reason": e.to_string(),
            });
            let result = match self.audit(EntryKind::Refusal, requester, details) {
                Ok(()) => Err(e),
                Err(audit) => Err(JobError::Audit(audit)),
            };
            JobOutcome {
                job_id: job_id.clone(),
                result,
                record: SessionRecord::default(),
                files: Vec::new(),
                stats: None,
            }
        };
        let Some(r) = self.policy.requester(requester) else {
            return refused(JobError::UnknownRequester(requester.to_string()));
        };
        // Checked when the job starts, not when it was queued: a revocation stops queued jobs.
        let revoked = self
            .revocations
            .with(|list| module.check_revocations(Some(&r.key), list, &self.policy));
        if let Err(e) = revoked {
            return refused(JobError::Revoked(e));
        }
        let span = tracing::info_span!("job", job = %job_id, module = %module.module_hash());
        let _entered = span.enter();
        // An identical earlier run (same module, approval, parameters and data snapshot) is
        // answered with its release: repeating a run cannot average the noise away.
        // Only a requester allowed on every dataset in the approval's scope may receive a stored
        // release (its tables may come from any of them); others run, and the session refuses
        // what they may not query.
        let allowed_everywhere = module
            .approval()
            .datasets
            .iter()
            .all(|d| r.may_query(&d.name));
        let cache_key = (allowed_everywhere && self.reuse_releases)
            .then(|| self.cache_key(&module, params))
            .flatten();
        if let Some(key) = &cache_key {
            match self.ledger.cached_release(key) {
                Ok(Some(json)) => {
                    if let Ok(mut release) = serde_json::from_str::<Release>(&json) {
                        tracing::info!(original = %release.job_id, "identical run: returning the stored release, charging nothing");
                        release.reused_by = Some(job_id.clone());
                        let details = release_details(&release, &module, 0.0);
                        let files =
                            match self.publish_and_record(&release, target, requester, details) {
                                Ok(files) => files,
                                Err(e) => return refused(e),
                            };
                        return JobOutcome {
                            job_id,
                            result: Ok(release),
                            record: SessionRecord::default(),
                            files,
                            stats: None,
                        };
                    }
                }
                Ok(None) => {}
                Err(e) => return refused(JobError::Ledger(e)),
            }
        }
        if let Err(e) = self
            .ledger
            .begin_run(&job_id, requester, module.module_hash())
        {
            return refused(JobError::Ledger(e));
        }
        let started = serde_json::json!({
            "job_id": job_id,
            "module": format!("{} {}", module.manifest().name, module.manifest().version),
            "module_hash": module.module_hash(),
            "approval_digest": module.approval_digest(),
            "purpose": module.approval().purpose,
        });
        if let Err(e) = self.audit(EntryKind::RunStarted, requester, started) {
            let _ = self.ledger.finish_run(&job_id, RunStatus::Failed);
            return refused(JobError::Audit(e));
        }
        let session = self.session(&job_id, requester, module.clone());
        let limits = RunLimits {
            memory_mib: self.policy.limits.memory_mib,
            time: Duration::from_millis(self.policy.limits.time_ms),
        };
        let (result, session) = self.runtime.run(&module, session, params, limits);
        let record = session.finish();
        let (result, stats) = match result {
            Err(e) => (Err(JobError::Sandbox(e)), None),
            Ok(_) if record.outputs.is_empty() => (Err(JobError::NoOutput), None),
            Ok(stats) => {
                let spends = Release::spends(&record.charges);
                let release = Release {
                    job_id: job_id.clone(),
                    module: module.manifest().name.clone(),
                    module_version: module.manifest().version.clone(),
                    module_hash: module.module_hash().to_string(),
                    approval_digest: module.approval_digest().to_string(),
                    requester: requester.to_string(),
                    created_at: chrono::Utc::now()
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    epsilon_total: spends.iter().map(|s| s.epsilon).sum(),
                    epsilon_spent: spends,
                    queries: record.answered.clone(),
                    tables: record
                        .outputs
                        .iter()
                        .map(|(name, table, provenance)| ReleasedTable {
                            name: name.clone(),
                            table: table.clone(),
                            provenance: provenance.clone(),
                        })
                        .collect(),
                    reused_by: None,
                    params_sha256: Some(params_sha256(params)),
                };
                (Ok(release), Some(stats))
            }
        };
        // Written and signed first, then recorded: a release that cannot be written, or that
        // the audit log cannot record, is a failed run.
        let (result, files) = match result {
            Ok(release) => {
                let details = release_details(&release, &module, release.epsilon_total);
                match self.publish_and_record(&release, target, requester, details) {
                    Ok(files) => (Ok(release), files),
                    Err(e) => (Err(e), Vec::new()),
                }
            }
            Err(e) => (Err(e), Vec::new()),
        };
        // A failure goes on the record too (unless the record is what failed).
        if let Some(e) = result
            .as_ref()
            .err()
            .filter(|e| !matches!(e, JobError::Audit(_)))
        {
            let error = crate::module_text::bounded(
                &e.to_string(),
                crate::module_text::MAX_MODULE_ERROR_CHARS,
            );
            let details = serde_json::json!({"job_id": job_id, "error": error});
            if let Err(audit) = self.audit(EntryKind::RunFailed, requester, details) {
                tracing::error!(error = %audit, "could not record the failed run");
            }
        }
        let status = if result.is_ok() {
            RunStatus::Succeeded
        } else {
            RunStatus::Failed
        };
        if let (Ok(release), Some(key)) = (&result, &cache_key) {
            let json = serde_json::to_string(release).expect("releases serialize");
            if let Err(e) = self.ledger.store_release(key, &job_id, &json) {
                tracing::error!(error = %e, "could not store the release for reuse");
            }
        }
        if let Err(e) = self.ledger.finish_run(&job_id, status) {
            tracing::error!(error = %e, "could not record the run's end; recovery will mark it failed");
        }
        JobOutcome {
            job_id,
            result,
            record,
            files,
            stats,
        }
    }

    /// Writes `release` to `target` (if any), then records it in the audit log with `details`.
    /// A release the log cannot record is taken back off the disk: nothing is out that the
    /// record does not show. Returns the files written.
    fn publish_and_record(
        &self,
        release: &Release,
        target: Option<&ReleaseTarget<'_>>,
        requester: &str,
        details: serde_json::Value,
    ) -> Result<Vec<std::path::PathBuf>, JobError> {
        let files = match target {
            Some(t) => release
                .publish(t.dir, t.signer)
                .map_err(|e| JobError::Write(e.to_string()))?,
            None => Vec::new(),
        };
        if let Err(e) = self.audit(EntryKind::Release, requester, details) {
            if let Some(t) = target {
                let _ = std::fs::remove_dir_all(t.dir);
            }
            return Err(JobError::Audit(e));
        }
        Ok(files)
    }
}

/// A run's parameters in RFC 8785 form, or None if they are not JSON that has one.
fn canonical_params(params: &str) -> Option<Vec<u8>> {
    let value: serde_json::Value = serde_json::from_str(params).ok()?;
    crate::canonical::to_canonical_json(&value).ok()
}

/// SHA-256 (hex) of a run's parameters in RFC 8785 form (of the raw text if it is not JSON).
pub fn params_sha256(params: &str) -> String {
    let canonical = canonical_params(params);
    hex::encode(crate::keys::sha256(
        canonical.as_deref().unwrap_or(params.as_bytes()),
    ))
}

impl Host {
    /// The release-cache key of running `module` with `params` on the current data, or None when
    /// the parameters are not JSON or a dataset's files cannot be read (then nothing is reused).
    fn cache_key(&self, module: &VerifiedModule, params: &str) -> Option<String> {
        let params = canonical_params(params)?;
        let mut parts: Vec<Vec<u8>> = vec![
            b"oar-release-cache-v1".to_vec(),
            module.module_hash().as_bytes().to_vec(),
            module.approval_digest().as_bytes().to_vec(),
            params,
        ];
        for d in &module.approval().datasets {
            let snapshot = match self.catalog().get(&d.name) {
                Some(ds) => ds.snapshot_id().ok()?,
                None => "unregistered".to_string(),
            };
            parts.push(format!("{}={snapshot}", d.name).into_bytes());
        }
        let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
        Some(hex::encode(crate::keys::sha256_parts(&refs)))
    }
}

/// The audit details of a release: what the public register shows, never a data value.
fn release_details(release: &Release, module: &VerifiedModule, epsilon: f64) -> serde_json::Value {
    serde_json::json!({
        "job_id": release.job_id,
        "reused_by": release.reused_by,
        "module": format!("{} {}", release.module, release.module_version),
        "module_hash": release.module_hash,
        "approval_digest": release.approval_digest,
        "purpose": module.approval().purpose,
        "datasets": module.approval().datasets.iter().map(|d| d.name.clone()).collect::<Vec<_>>(),
        "epsilon": epsilon,
        "tables": release.tables.iter().map(|t| t.name.clone()).collect::<Vec<_>>(),
        "suppressed_cells": release.suppressed_cells(),
    })
}

/// A fresh random job id (16 hex digits).
pub fn new_job_id() -> String {
    let mut bytes = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    hex::encode(bytes)
}
