//! The "meshflow" peer: the engine's own benchmark phases (`meshflow_engine::bench`), exactly
//! as `meshflow bench --layer log` runs them; and the "ledger" peer, the same workload through
//! the ledger, as `meshflow bench --layer ledger` runs it.

use std::path::Path;

use anyhow::Result;
use meshflow_engine::bench;

use crate::{Peer, PhaseResult, Workload, REOPEN_TRIES};

/// meshflow's log layer.
#[derive(Debug, Clone, Copy, Default)]
pub struct Meshflow;

impl Peer for Meshflow {
    fn name(&self) -> &'static str {
        "meshflow"
    }

    fn phase_a(&self, dir: &Path, workload: &Workload) -> Result<PhaseResult> {
        Ok(bench::phase_a(dir, workload)?)
    }

    fn phase_b(
        &self,
        dir: &Path,
        workload: &Workload,
        writers: u64,
        records: u64,
    ) -> Result<PhaseResult> {
        Ok(bench::phase_b(dir, workload, writers, records)?)
    }

    fn phase_c(&self, dir: &Path) -> Result<PhaseResult> {
        Ok(bench::phase_c(dir)?)
    }

    fn phase_e(&self, dir: &Path) -> Result<PhaseResult> {
        Ok(bench::phase_e(dir, REOPEN_TRIES)?)
    }

    fn phase_d(&self, _dir: &Path, _workload: &Workload) -> Result<Option<PhaseResult>> {
        Ok(None)
    }
}

/// meshflow through the ledger: steps with both chains (`meshflow bench --layer ledger`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Ledger;

impl Peer for Ledger {
    fn name(&self) -> &'static str {
        "ledger"
    }

    fn phase_a(&self, dir: &Path, workload: &Workload) -> Result<PhaseResult> {
        Ok(bench::ledger::phase_a(dir, workload)?)
    }

    fn phase_b(
        &self,
        dir: &Path,
        workload: &Workload,
        writers: u64,
        records: u64,
    ) -> Result<PhaseResult> {
        Ok(bench::ledger::phase_b(dir, workload, writers, records)?)
    }

    fn phase_c(&self, dir: &Path) -> Result<PhaseResult> {
        Ok(bench::ledger::phase_c(dir)?)
    }

    fn phase_e(&self, dir: &Path) -> Result<PhaseResult> {
        Ok(bench::ledger::phase_e(dir, REOPEN_TRIES)?)
    }

    fn phase_d(&self, dir: &Path, workload: &Workload) -> Result<Option<PhaseResult>> {
        Ok(Some(bench::ledger::phase_d(dir, workload)?))
    }
}
