//! Shared helpers for the workspace-level tests (`tests/`) and benches (`benches/`).

pub mod fuzz;

use meshflow_engine::log::{LogOptions, RecordInput};

/// Record kind used by test records.
pub const KIND_TEST: u16 = 0x0200;

/// A test record whose payload and slots encode `n`, so its content can be checked later.
pub fn test_record(n: u64) -> RecordInput {
    RecordInput::new(KIND_TEST, "tenant-a", format!("payload-{n}").into_bytes())
        .with_slot(format!("input-{n}").into_bytes())
        .with_slot(format!("output-{n}-{}", "x".repeat((n % 7) as usize)).into_bytes())
}

/// The number a test record encodes, from its payload.
pub fn record_number(payload: &[u8]) -> Option<u64> {
    std::str::from_utf8(payload)
        .ok()?
        .strip_prefix("payload-")?
        .parse()
        .ok()
}

/// Options with small segments and indexes, so tests cross segment boundaries quickly.
pub fn small_options() -> LogOptions {
    let mut o = LogOptions {
        segment_bytes_max: 64 * 1024,
        ..LogOptions::default()
    };
    o.limits.record_bytes_max = 16 * 1024;
    o.limits.payload_bytes_max = 8 * 1024;
    o.limits.slot_bytes_max = 8 * 1024;
    o.limits.batch_bytes_max = 32 * 1024;
    o.index_interval_bytes = 1024;
    o.read_window_bytes = 8192;
    o
}

/// A xorshift generator for seeded test loops: the same sequence every run.
pub struct Rng(pub u64);

impl Rng {
    /// The next number below `bound` (below 1 when `bound` is 0).
    pub fn next(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound.max(1)
    }
}

/// Runs the binary `bin` with `args` (and no `MESHFLOW_DB`); returns (exit code, stdout, stderr).
pub fn run_binary(bin: &str, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(bin)
        .args(args)
        .env_remove("MESHFLOW_DB")
        .output()
        .unwrap_or_else(|e| panic!("running {bin}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts `meshflow serve` (binary `bin`) on `db` and waits until a client reaches it through
/// `serve.json` (at most 20 s). The caller kills it.
pub fn start_serve(bin: &str, db: &std::path::Path) -> std::process::Child {
    let child = std::process::Command::new(bin)
        .args(["--db", db.to_str().unwrap_or("."), "serve"])
        .env_remove("MESHFLOW_DB")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {bin} serve: {e}"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while meshflow_engine::service::client::Client::discover(db).is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "serve did not come up"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child
}

/// Writes `records` records of the canonical workload (R = records / 100, P = 256) into a new
/// log in `dir`, in buffered batches of 1,000, and closes it: the log the scan and verify
/// benches read.
pub fn build_workload_log(dir: &std::path::Path, records: u64) {
    let workload = meshflow_engine::workload::Workload {
        runs: (records / 100).max(1),
        steps: 100,
        payload_bytes: 256,
    };
    let (log, _) = meshflow_engine::log::Log::open(dir, LogOptions::default()).expect("open");
    for chunk in 0..records.div_ceil(1000) {
        let batch = (chunk * 1000..((chunk + 1) * 1000).min(records))
            .map(|i| workload.record(i))
            .collect();
        log.append_batch(batch, meshflow_engine::log::Durability::Buffered)
            .expect("append");
    }
    log.close().expect("close");
}
