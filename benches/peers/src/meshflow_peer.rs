//! The "meshflow" peer: the engine's own benchmark phases (`meshflow_engine::bench`), exactly
//! as `meshflow bench --layer log` runs them.

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
}
