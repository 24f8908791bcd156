//! The canonical "agent steps" workload of the benchmarks (SPEC.md §9): R runs × S steps, each
//! step a record whose payload holds the step's scalar fields and whose two slots hold
//! `input_task` and `output_content` of P bytes, appended round-robin across runs.
//!
//! [`Workload::record`] is the bare-log form (a compact fixed payload close in size to a step
//! event, used by `--layer log` and the peer comparison); [`Workload::step_request`] is the same
//! step as the ledger takes it (`--layer ledger`).

use crate::log::RecordInput;

/// Record kind used for workload step records.
pub const KIND_BENCH_STEP: u16 = 0x0101;

/// Workload parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    /// Number of runs (R).
    pub runs: u64,
    /// Steps per run (S).
    pub steps: u64,
    /// Bytes of input and of output per step (P).
    pub payload_bytes: u64,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            runs: 1000,
            steps: 200,
            payload_bytes: 256,
        }
    }
}

impl Workload {
    /// Total records.
    pub fn record_count(&self) -> u64 {
        self.runs * self.steps
    }

    /// The `i`-th record in append order (round-robin across runs).
    pub fn record(&self, i: u64) -> RecordInput {
        let run = i % self.runs.max(1);
        let step = i / self.runs.max(1);
        let mut payload = Vec::with_capacity(160);
        let run_id = format!("run-{run:08}");
        let step_id = format!("{run_id}-step-{step:06}");
        for field in [
            run_id.as_bytes(),
            step_id.as_bytes(),
            b"node-llm",
            b"llm",
            b"commit",
        ] {
            payload.extend_from_slice(&u32::try_from(field.len()).unwrap_or(0).to_le_bytes());
            payload.extend_from_slice(field);
        }
        payload.extend_from_slice(&step.to_le_bytes());
        for number in [0.1f64, 0.0021, 0.5, 120.0] {
            payload.extend_from_slice(&number.to_bits().to_le_bytes());
        }
        payload.extend_from_slice(&1234u64.to_le_bytes());
        payload.extend_from_slice(b"2026-06-01T12:00:00.123456+00:00");
        let p = usize::try_from(self.payload_bytes).unwrap_or(0);
        let input = filler(b'i', i, p);
        let output = filler(b'o', i, p);
        RecordInput::new(KIND_BENCH_STEP, "default", payload)
            .with_slot(input)
            .with_slot(output)
    }
}

impl Workload {
    /// The `i`-th step in append order as the ledger takes it: run `run-{r:08}`, step id
    /// `run-{r:08}-step-{s:06}`, input and output of P bytes, fixed scalar fields.
    pub fn step_request(&self, i: u64) -> crate::ledger::StepRequest {
        let run = i % self.runs.max(1);
        let step = i / self.runs.max(1);
        let run_id = format!("run-{run:08}");
        let p = usize::try_from(self.payload_bytes).unwrap_or(0);
        crate::ledger::StepRequest {
            step_id: Some(format!("{run_id}-step-{step:06}")),
            run_id,
            node_id: "node-llm".to_string(),
            node_kind: "llm".to_string(),
            input_task: String::from_utf8(filler(b'i', i, p)).unwrap_or_default(),
            output_content: String::from_utf8(filler(b'o', i, p)).unwrap_or_default(),
            verdict: "commit".to_string(),
            uncertainty: 0.1,
            cost_usd: 0.0021,
            tokens_used: 1234,
            carbon_gco2: 0.5,
            duration_ms: 120.0,
            timestamp: Some("2026-06-01T12:00:00.123456+00:00".to_string()),
            ..crate::ledger::StepRequest::default()
        }
    }
}

fn filler(tag: u8, i: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let seed = format!("{}{i:016x}", char::from(tag));
    while out.len() < len {
        out.extend_from_slice(seed.as_bytes());
    }
    out.truncate(len);
    out
}
