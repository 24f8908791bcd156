//! The benchmark phases of SPEC.md §9 on the log layer, shared by `meshflow bench` and the peer
//! comparison in `benches/peers`. Each phase returns its measurements; printing is the caller's.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::log::{Durability, Log, LogOptions, LogReader};
use crate::workload::Workload;

/// Outstanding pipelined submissions before phase A's appender collects receipts.
const PIPELINE_DEPTH: usize = 4096;
/// Phase A makes the log durable every this many records.
pub const SYNC_EVERY_RECORDS: u64 = 1000;

/// What one phase measured.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseResult {
    /// Phase name (`A`, `B`, `B64`, `C`, `E`).
    pub phase: String,
    /// Records the phase covered.
    pub records: u64,
    /// Wall time in seconds (for E: the median reopen time).
    pub secs: f64,
    /// Unit of [`PhaseResult::rate`].
    pub unit: &'static str,
    /// Per-operation latencies (appends for B, syncs for A, reopens for E).
    pub latencies: Vec<Duration>,
}

impl PhaseResult {
    /// A phase measured in records per second.
    pub fn records_per_sec(
        phase: impl Into<String>,
        records: u64,
        secs: f64,
        latencies: Vec<Duration>,
    ) -> PhaseResult {
        PhaseResult {
            phase: phase.into(),
            records,
            secs,
            unit: "records/s",
            latencies,
        }
    }

    /// Records per second, or reopens per second for E.
    pub fn rate(&self) -> f64 {
        if self.unit == "reopens/s" {
            1.0 / self.secs
        } else {
            self.records as f64 / self.secs
        }
    }

    /// The `p`-quantile latency in microseconds (p in 0..=1).
    pub fn percentile_us(&self, p: f64) -> Option<f64> {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        let last = sorted.len().checked_sub(1)?;
        let rank = ((last as f64) * p).round() as usize;
        sorted.get(rank.min(last)).map(|d| d.as_secs_f64() * 1e6)
    }
}

/// A pipelined appender as phase A drives it: the log's [`crate::log::Appender`] or the
/// ledger's [`crate::ledger::appender::LedgerAppender`].
trait Pipeline {
    type Error;
    /// Submits record `i` of the workload.
    fn submit(&mut self, i: u64, durability: Durability) -> Result<(), Self::Error>;
    /// The offset of the oldest outstanding submission, if it is back.
    fn try_next(&mut self) -> Option<Result<u64, Self::Error>>;
    /// Waits for the offset of the oldest outstanding submission.
    fn next(&mut self) -> Result<u64, Self::Error>;
    /// Submissions not yet collected.
    fn outstanding(&self) -> usize;
}

/// Phase A's loop: every record in order, every 1,000th `Sync` (all before it are durable
/// when its receipt returns), the rest `Buffered`, keeping at most [`PIPELINE_DEPTH`]
/// outstanding. Returns the wall time and the latencies of the `Sync` submissions.
fn drive_pipeline<P: Pipeline>(
    pipeline: &mut P,
    count: u64,
) -> Result<(f64, Vec<Duration>), P::Error> {
    let mut latencies = Vec::new();
    let mut sync_started: std::collections::VecDeque<(u64, Instant)> = Default::default();
    let mut collect =
        |offset: u64, sync_started: &mut std::collections::VecDeque<(u64, Instant)>| {
            if let Some((n, t)) = sync_started.front() {
                if offset == *n {
                    latencies.push(t.elapsed());
                    sync_started.pop_front();
                }
            }
        };
    let started = Instant::now();
    for i in 0..count {
        let durable = (i + 1) % SYNC_EVERY_RECORDS == 0 || i + 1 == count;
        let durability = if durable {
            Durability::Sync
        } else {
            Durability::Buffered
        };
        if durable {
            sync_started.push_back((i, Instant::now()));
        }
        pipeline.submit(i, durability)?;
        while let Some(offset) = pipeline.try_next() {
            collect(offset?, &mut sync_started);
        }
        while pipeline.outstanding() > PIPELINE_DEPTH {
            collect(pipeline.next()?, &mut sync_started);
        }
    }
    while pipeline.outstanding() > 0 {
        collect(pipeline.next()?, &mut sync_started);
    }
    Ok((started.elapsed().as_secs_f64(), latencies))
}

/// Phases B and `B<W>`'s loop: `writers` threads, writer `w` appending records
/// `w, w + W, w + 2W, …` (`records / writers` each) with `append`, each durable on return.
/// Returns the wall time, the latencies and the records appended.
fn drive_writers<E: Send>(
    writers: u64,
    records: u64,
    append: &(dyn Fn(u64) -> Result<(), E> + Sync),
    panicked: fn() -> E,
) -> Result<(f64, Vec<Duration>, u64), E> {
    let writers = writers.max(1);
    let per_writer = records / writers;
    let started = Instant::now();
    let latencies = std::thread::scope(|scope| -> Result<Vec<Duration>, E> {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                scope.spawn(move || -> Result<Vec<Duration>, E> {
                    let mut lat = Vec::with_capacity(usize::try_from(per_writer).unwrap_or(0));
                    for i in 0..per_writer {
                        let t = Instant::now();
                        append(i * writers + w)?;
                        lat.push(t.elapsed());
                    }
                    Ok(lat)
                })
            })
            .collect();
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.join().map_err(|_| panicked())??);
        }
        Ok(all)
    })?;
    Ok((
        started.elapsed().as_secs_f64(),
        latencies,
        per_writer * writers,
    ))
}

fn b_phase_name(writers: u64) -> String {
    if writers <= 1 {
        "B".to_string()
    } else {
        format!("B{writers}")
    }
}

struct LogPipeline<'a> {
    appender: crate::log::Appender<'a>,
    workload: &'a Workload,
}

impl Pipeline for LogPipeline<'_> {
    type Error = Error;
    fn submit(&mut self, i: u64, durability: Durability) -> Result<(), Error> {
        self.appender.submit(self.workload.record(i), durability)
    }
    fn try_next(&mut self) -> Option<Result<u64, Error>> {
        let receipts = self.appender.try_next_receipts()?;
        Some(receipts.map(|r| r.first().map_or(u64::MAX, |r| r.offset)))
    }
    fn next(&mut self) -> Result<u64, Error> {
        let receipts = self.appender.next_receipts()?;
        Ok(receipts.first().map_or(u64::MAX, |r| r.offset))
    }
    fn outstanding(&self) -> usize {
        self.appender.outstanding()
    }
}

/// Phase A: one pipelined appender; every 1,000th record is appended with `Sync` durability
/// (so everything before it is durable when its receipt returns), the others `Buffered`. The
/// appender keeps building frames while the sequencer syncs. Latencies are those of the `Sync`
/// appends, from submission to receipt.
pub fn phase_a(dir: &Path, workload: &Workload) -> Result<PhaseResult, Error> {
    let (log, _) = Log::open(dir, LogOptions::default())?;
    let count = workload.record_count();
    let (secs, latencies) = {
        let mut pipeline = LogPipeline {
            appender: log.appender(),
            workload,
        };
        drive_pipeline(&mut pipeline, count)?
    };
    log.close()?;
    Ok(PhaseResult::records_per_sec(
        "A".to_string(),
        count,
        secs,
        latencies,
    ))
}

/// Phases B (`writers` = 1) and `B<W>`: each of `writers` threads appends durable on return.
pub fn phase_b(
    dir: &Path,
    workload: &Workload,
    writers: u64,
    records: u64,
) -> Result<PhaseResult, Error> {
    let (log, _) = Log::open(dir, LogOptions::default())?;
    let append = |i: u64| log.append(workload.record(i), Durability::Sync).map(|_| ());
    let (secs, latencies, records) = drive_writers(writers, records, &append, || Error::Closed)?;
    log.close()?;
    Ok(PhaseResult::records_per_sec(
        b_phase_name(writers),
        records,
        secs,
        latencies,
    ))
}

/// Phase C: a full verifying scan (frames, chain, slots) of the log in `dir`.
pub fn phase_c(dir: &Path) -> Result<PhaseResult, Error> {
    let reader = LogReader::open(dir, LogOptions::default())?;
    let started = Instant::now();
    let report = reader.verify()?;
    let secs = started.elapsed().as_secs_f64();
    Ok(PhaseResult::records_per_sec(
        "C".to_string(),
        report.record_count,
        secs,
        Vec::new(),
    ))
}

/// Phase E: clean reopen of the (cleanly closed) log in `dir` until ready to append; the
/// median of `tries` reopens.
pub fn phase_e(dir: &Path, tries: u32) -> Result<PhaseResult, Error> {
    let mut latencies = Vec::new();
    let mut records = 0;
    for _ in 0..tries.max(1) {
        let started = Instant::now();
        let (log, report) = Log::open(dir, LogOptions::default())?;
        latencies.push(started.elapsed());
        records = report.next_offset;
        if !report.clean {
            return Err(Error::InvalidInput {
                reason: "phase E needs a cleanly closed log".to_string(),
            });
        }
        log.close()?;
    }
    let mut sorted = latencies.clone();
    sorted.sort_unstable();
    let secs = sorted
        .get(sorted.len() / 2)
        .map_or(0.0, Duration::as_secs_f64);
    Ok(PhaseResult {
        phase: "E".to_string(),
        records,
        secs,
        unit: "reopens/s",
        latencies,
    })
}

/// Runs phase D reads: 1,000 run indices drawn with a fixed seed (the same for every peer).
pub fn phase_d_runs(workload: &Workload) -> Vec<u64> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..1000)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % workload.runs.max(1)
        })
        .collect()
}

impl PhaseResult {
    /// The phase as one JSON object line, keys in the order of SPEC.md §9 (`peer`, `phase`,
    /// `records`, `secs`, `rate`, `unit`, `p50_us`, `p99_us`), then `rss_peak_mib`.
    pub fn json_line(&self, peer: &str) -> String {
        use serde_json::json;
        let fields: [(&str, serde_json::Value); 9] = [
            ("peer", json!(peer)),
            ("phase", json!(self.phase)),
            ("records", json!(self.records)),
            ("secs", json!(self.secs)),
            ("rate", json!(self.rate())),
            ("unit", json!(self.unit)),
            ("p50_us", json!(self.percentile_us(0.50))),
            ("p99_us", json!(self.percentile_us(0.99))),
            ("rss_peak_mib", json!(rss_peak_mib())),
        ];
        let body: Vec<String> = fields
            .iter()
            .map(|(key, value)| format!("{}:{value}", json!(key)))
            .collect();
        format!("{{{}}}", body.join(","))
    }
}

/// The peak resident set size of this process since the last [`reset_rss_peak`], in MiB
/// (Linux `VmHWM`; `None` elsewhere).
pub fn rss_peak_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Resets the peak resident set size (Linux `clear_refs`), so each phase reports its own.
pub fn reset_rss_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The same phases through the ledger (`meshflow bench --layer ledger`): steps with both
/// chains, plus phase D (reading whole runs).
pub mod ledger {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use super::PhaseResult;
    use crate::ledger::{Ledger, LedgerError};
    use crate::log::{Durability, LogOptions};
    use crate::workload::Workload;

    const TENANT: &str = "default";

    fn open(dir: &Path) -> Result<Ledger, LedgerError> {
        Ok(Ledger::open(dir, LogOptions::default(), TENANT)?.0)
    }

    struct LedgerPipeline<'a> {
        appender: crate::ledger::appender::LedgerAppender<'a>,
        workload: &'a Workload,
    }

    impl super::Pipeline for LedgerPipeline<'_> {
        type Error = LedgerError;
        fn submit(&mut self, i: u64, durability: Durability) -> Result<(), LedgerError> {
            self.appender
                .submit(self.workload.step_request(i), durability)
        }
        fn try_next(&mut self) -> Option<Result<u64, LedgerError>> {
            Some(self.appender.try_next_receipt()?.map(|r| r.offset))
        }
        fn next(&mut self) -> Result<u64, LedgerError> {
            self.appender.next_receipt().map(|r| r.offset)
        }
        fn outstanding(&self) -> usize {
            self.appender.outstanding()
        }
    }

    /// Phase A: one pipelined ledger appender, a `Sync` step every 1,000 (latencies of those).
    pub fn phase_a(dir: &Path, workload: &Workload) -> Result<PhaseResult, LedgerError> {
        let ledger = open(dir)?;
        let count = workload.record_count();
        let (secs, latencies) = {
            let mut pipeline = LedgerPipeline {
                appender: ledger.appender()?,
                workload,
            };
            super::drive_pipeline(&mut pipeline, count)?
        };
        drop(ledger);
        Ok(PhaseResult::records_per_sec(
            "A".to_string(),
            count,
            secs,
            latencies,
        ))
    }

    /// Phases B and `B<W>`: `writers` threads, each step durable on return.
    pub fn phase_b(
        dir: &Path,
        workload: &Workload,
        writers: u64,
        records: u64,
    ) -> Result<PhaseResult, LedgerError> {
        let ledger = open(dir)?;
        let append = |i: u64| {
            ledger
                .append(workload.step_request(i), Durability::Sync)
                .map(|_| ())
        };
        let (secs, latencies, records) = super::drive_writers(writers, records, &append, || {
            LedgerError::Log(crate::Error::Closed)
        })?;
        Ok(PhaseResult::records_per_sec(
            super::b_phase_name(writers),
            records,
            secs,
            latencies,
        ))
    }

    /// Phase C: open the ledger read-only (runs view from its checkpoint) and verify the log
    /// (frames, global chain, slots) and every run chain in one pass.
    pub fn phase_c(dir: &Path) -> Result<PhaseResult, LedgerError> {
        let started = Instant::now();
        let ledger = Ledger::open_read_only(dir, LogOptions::default(), TENANT)?;
        let (report, chains) = ledger.verify_all()?;
        if chains.iter().any(|c| !c.valid) {
            return Err(LedgerError::Conflict {
                reason: "phase C found an invalid chain".to_string(),
            });
        }
        let secs = started.elapsed().as_secs_f64();
        Ok(PhaseResult::records_per_sec(
            "C".to_string(),
            report.record_count,
            secs,
            Vec::new(),
        ))
    }

    /// Phase D: every step of 1,000 runs picked at random (a fixed seed), runs/s; latencies
    /// are per run. The runs view is built before the clock starts.
    pub fn phase_d(dir: &Path, workload: &Workload) -> Result<PhaseResult, LedgerError> {
        let ledger = Ledger::open_read_only(dir, LogOptions::default(), TENANT)?;
        ledger.list_runs()?;
        let picks: Vec<String> = super::phase_d_runs(workload)
            .into_iter()
            .map(|r| format!("run-{r:08}"))
            .collect();
        let mut latencies = Vec::with_capacity(picks.len());
        let mut steps = 0u64;
        let started = Instant::now();
        for run in &picks {
            let t = Instant::now();
            steps += ledger.get_run(run)?.len() as u64;
            latencies.push(t.elapsed());
        }
        let secs = started.elapsed().as_secs_f64();
        debug_assert_eq!(steps, 1000 * workload.steps);
        Ok(PhaseResult {
            phase: "D".to_string(),
            records: picks.len() as u64,
            secs,
            unit: "runs/s",
            latencies,
        })
    }

    /// Phase E: reopen the ledger for writing until ready to append (the runs view loads its
    /// checkpoint, written when the log was last closed, and applies the tail); the median of
    /// `tries`.
    pub fn phase_e(dir: &Path, tries: u32) -> Result<PhaseResult, LedgerError> {
        let mut latencies = Vec::new();
        let mut records = 0;
        for _ in 0..tries.max(1) {
            let started = Instant::now();
            let (ledger, report) = Ledger::open(dir, LogOptions::default(), TENANT)?;
            latencies.push(started.elapsed());
            records = report.next_offset;
            drop(ledger);
        }
        let mut sorted = latencies.clone();
        sorted.sort_unstable();
        let secs = sorted
            .get(sorted.len() / 2)
            .map_or(0.0, Duration::as_secs_f64);
        Ok(PhaseResult {
            phase: "E".to_string(),
            records,
            secs,
            unit: "reopens/s",
            latencies,
        })
    }
}

/// Phase `S<W>`: `writers` client threads, each with its own connection to an in-process writer
/// service (`docs/protocol.md`) on a Unix socket, each appending one step per request, durable
/// on return: the `B<W>` workload through the socket, to compare with the in-process rate.
pub mod service {
    use std::path::Path;
    use std::sync::atomic::Ordering;

    use super::PhaseResult;
    use crate::ledger::{Ledger, LedgerError};
    use crate::log::LogOptions;
    use crate::service::client::{Client, ClientError};
    use crate::service::server::{Server, ServerOptions};
    use crate::workload::Workload;

    /// Runs phase `S<W>` on a fresh log in `dir`.
    pub fn phase_s(
        dir: &Path,
        workload: &Workload,
        writers: u64,
        records: u64,
    ) -> Result<PhaseResult, LedgerError> {
        let ledger = Ledger::open(dir, LogOptions::default(), "default")?.0;
        let io = |e: std::io::Error| LedgerError::Log(crate::Error::io("running the service", e));
        let server = Server::start(
            ledger,
            ServerOptions {
                socket: dir.join("bench.sock"),
                max_message_bytes: crate::service::protocol::MESSAGE_BYTES_MAX,
                http: None,
            },
        )
        .map_err(io)?;
        let stop = server.stop_handle();
        let thread = std::thread::spawn(move || server.run());
        let socket = dir.join("bench.sock");
        let clients: Vec<std::sync::Mutex<Client>> = (0..writers.max(1))
            .map(|_| Client::connect(&socket).map(std::sync::Mutex::new))
            .collect::<Result<_, _>>()
            .map_err(|e| remote(&e))?;
        let append = |i: u64| -> Result<(), LedgerError> {
            let w = usize::try_from(i % writers.max(1)).unwrap_or(0);
            let line = workload.step_request(i).to_json_line();
            let client = clients
                .get(w)
                .ok_or(LedgerError::Log(crate::Error::Closed))?;
            let mut client = client.lock().unwrap_or_else(|p| p.into_inner());
            client
                .append("default", &[line], true)
                .map(|_| ())
                .map_err(|e| remote(&e))
        };
        let result = super::drive_writers(writers, records, &append, || {
            LedgerError::Log(crate::Error::Closed)
        });
        drop(clients);
        stop.store(true, Ordering::Relaxed);
        let _ = thread.join();
        let (secs, latencies, records) = result?;
        Ok(PhaseResult::records_per_sec(
            format!("S{}", writers.max(1)),
            records,
            secs,
            latencies,
        ))
    }

    fn remote(e: &ClientError) -> LedgerError {
        LedgerError::Log(crate::Error::io(
            "appending through the service",
            std::io::Error::other(e.to_string()),
        ))
    }
}

/// The governance views' phases (issue 5's bars):
/// `P` policy evaluation over 1,000 rules (10% deny); `G` rebuilding every view from scratch
/// (events per second, to compare with C's verified records per second); `R` and `R10`
/// reopening with checkpoints a log of the canonical workload plus a fixed governance state,
/// and the same log grown 10× in steps.
pub mod governance {
    use std::path::Path;
    use std::time::Instant;

    use serde_json::{json, Map, Value};

    use super::PhaseResult;
    use crate::governance::policy::{self, Condition, Op, PolicyState};
    use crate::governance::{alert, identity, lock, sla, Event};
    use crate::ledger::{Ledger, LedgerError};
    use crate::log::{Durability, LogOptions, RecordInput};
    use crate::workload::Workload;

    const TENANT: &str = "default";

    /// Rule `i` of the 1,000-rule policy: every tenth denies; conditions on an amount and a
    /// region, so that about a third of the rules match a context.
    pub(super) fn bench_rule(i: u64) -> Event {
        let action = match i % 10 {
            0 => "deny",
            1..=3 => "log",
            _ => "allow",
        };
        let conditions = [
            Condition {
                field: "amount".to_string(),
                op: Op::Gt,
                value: json!(i * 7 % 1000),
            },
            Condition {
                field: "region".to_string(),
                op: if i.is_multiple_of(2) { Op::Eq } else { Op::Neq },
                value: json!(format!("r{}", i % 20)),
            },
        ];
        let prio = i64::try_from(i % 100).unwrap_or(0);
        policy::events::add(
            &format!("rule-{i}"),
            &format!("rule-{i}"),
            action,
            &conditions,
            prio,
            "bench",
            "",
            true,
            i as f64,
        )
        .unwrap_or_else(|_| policy::events::change("enable", "unreachable"))
    }

    fn context(j: u64) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("amount".into(), json!(j * 37 % 1200));
        m.insert("region".into(), json!(format!("r{}", j % 20)));
        m.insert("user".into(), json!(format!("u{j}")));
        m
    }

    /// Phase P: `evaluations` evaluations of a 1,000-rule policy (10% deny), one thread.
    pub fn phase_p(evaluations: u64) -> PhaseResult {
        let mut state = PolicyState::default();
        for i in 0..1000 {
            let _ = state.apply(&bench_rule(i), i);
        }
        let contexts: Vec<Map<String, Value>> = (0..256).map(context).collect();
        let started = Instant::now();
        let mut denies = 0u64;
        for j in 0..evaluations {
            let ctx = contexts
                .get((j % 256) as usize)
                .cloned()
                .unwrap_or_default();
            if state.evaluate(&ctx, "").action == policy::Action::Deny {
                denies += 1;
            }
        }
        let secs = started.elapsed().as_secs_f64();
        std::hint::black_box(denies);
        PhaseResult {
            phase: "P".to_string(),
            records: evaluations,
            secs,
            unit: "evaluations/s",
            latencies: Vec::new(),
        }
    }

    /// Alert `i` of the benches' event mixes (fired at time `i`).
    pub(super) fn bench_alert(i: u64) -> Event {
        alert::events::fire(
            &format!("a{i}"),
            "p99",
            &format!("agent-{}", i % 16),
            "latency_ms",
            "gt",
            100.0,
            150.0,
            "",
            i as f64,
        )
        .unwrap_or_else(|_| policy::events::change("enable", "unreachable"))
    }

    /// Governance event `i` of phase G's mix: rules, SLA observations, alerts, identities and
    /// lock cycles.
    fn mixed_event(i: u64) -> Event {
        let now = i as f64;
        let fallback = || policy::events::change("enable", "unreachable");
        match i % 8 {
            0 => bench_rule(i),
            1 | 2 => sla::events::record(
                &format!("o{i}"),
                &format!("agent-{}", i % 16),
                (i % 500) as f64,
                !i.is_multiple_of(17),
                now,
            )
            .unwrap_or_else(|_| fallback()),
            3 => bench_alert(i),
            4 => identity::events::register(
                &format!("id{i}"),
                &format!("bot-{i}"),
                &[],
                "meshflow",
                Map::new(),
                now,
            )
            .unwrap_or_else(|_| fallback()),
            5 => lock::events::acquire(&format!("l{i}"), &format!("res-{}", i % 64), "w", 1.0, now),
            6 => lock::events::release(&format!("res-{}", (i - 1) % 64), "w", None, now),
            _ => sla::events::define(
                &format!("c{i}"),
                &format!("agent-{}", i % 16),
                100.0,
                200.0,
                300.0,
                0.1,
                3600.0,
                now,
            )
            .unwrap_or_else(|_| fallback()),
        }
    }

    /// Appends `events` governance events (phase G's mix) to the ledger, buffered, through a
    /// pipelined appender, then syncs. Refused events (none in this mix) are skipped.
    fn write_events(ledger: &Ledger, events: u64, first: u64) -> Result<(), LedgerError> {
        write_events_of(ledger, first..first + events, mixed_event)
    }

    /// Appends the events `event(i)` for `range` through the log's pipelined appender, buffered
    /// (bypassing the sequencer's checks: the benches' events are valid by construction), then
    /// syncs.
    pub(super) fn write_events_of(
        ledger: &Ledger,
        range: std::ops::Range<u64>,
        event: impl Fn(u64) -> Event,
    ) -> Result<(), LedgerError> {
        let log = ledger.log().ok_or(LedgerError::ReadOnly)?;
        let mut appender = log.appender();
        for i in range {
            let e = event(i);
            appender.submit(
                RecordInput::new(e.family.kind(), TENANT, e.encode()),
                Durability::Buffered,
            )?;
            while appender.outstanding() > 4096 {
                let _ = appender.next_receipts();
            }
        }
        while appender.outstanding() > 0 {
            let _ = appender.next_receipts();
        }
        appender.sync()?;
        Ok(())
    }

    /// Phase G: writes `events` governance events to a fresh log in `dir`, then rebuilds every
    /// view from scratch (checkpoints removed): the read-only open's scan and the views'
    /// events applied. The rate is events per second of the rebuild.
    pub fn phase_g(dir: &Path, events: u64) -> Result<PhaseResult, LedgerError> {
        {
            let ledger = Ledger::open(dir, LogOptions::default(), TENANT)?.0;
            write_events(&ledger, events, 0)?;
        }
        let _ = std::fs::remove_dir_all(dir.join(crate::ledger::checkpoint::DIR));
        let started = Instant::now();
        let ledger = Ledger::open_read_only(dir, LogOptions::default(), TENANT)?;
        let rules = ledger.with_governance(|g| g.policy(TENANT).list("", false).len())?;
        let secs = started.elapsed().as_secs_f64();
        std::hint::black_box(rules);
        Ok(PhaseResult::records_per_sec("G", events, secs, Vec::new()))
    }

    /// Phases R / R10: a log of the canonical workload's steps (`scale` × its size) plus 8,000
    /// governance events, closed with its checkpoints; the median of `tries` read-only reopens
    /// that also bring the governance views up to date (`R`), and of loading the governance
    /// views' checkpoint alone (`RG`).
    pub fn phase_r(
        dir: &Path,
        workload: &Workload,
        scale: u64,
        tries: u32,
    ) -> Result<Vec<PhaseResult>, LedgerError> {
        let steps = workload.record_count() * scale;
        {
            let ledger = Ledger::open(dir, LogOptions::default(), TENANT)?.0;
            write_events(&ledger, 8000, 0)?;
            let mut appender = ledger.appender()?;
            for i in 0..steps {
                appender.submit(workload.step_request(i), Durability::Buffered)?;
                while appender.outstanding() > 4096 {
                    appender.next_receipt()?;
                }
            }
            while appender.outstanding() > 0 {
                appender.next_receipt()?;
            }
            appender.sync()?;
        }
        let mut times = Vec::new();
        let mut governance = Vec::new();
        for _ in 0..tries.max(1) {
            let started = Instant::now();
            let ledger = Ledger::open_read_only(dir, LogOptions::default(), TENANT)?;
            let n = ledger.with_governance(|g| g.policy(TENANT).list("", false).len())?;
            std::hint::black_box(n);
            times.push(started.elapsed());
            // The governance views alone: their newest checkpoint, loaded and checked.
            let reader = crate::log::LogReader::open(dir, LogOptions::default())?;
            let started = Instant::now();
            let (state, _) = crate::ledger::checkpoint::governance::load(dir, &reader, u64::MAX)?;
            std::hint::black_box(state.map(|s| s.next_offset()));
            governance.push(started.elapsed());
        }
        let median = |mut v: Vec<std::time::Duration>| {
            v.sort_unstable();
            let m = v.get(v.len() / 2).copied().unwrap_or_default();
            (m, v)
        };
        let suffix = if scale == 1 {
            String::new()
        } else {
            scale.to_string()
        };
        let (all, times) = median(times);
        let (gov, governance) = median(governance);
        Ok(vec![
            PhaseResult {
                phase: format!("R{suffix}"),
                records: steps + 8000,
                secs: all.as_secs_f64(),
                unit: "reopens/s",
                latencies: times,
            },
            PhaseResult {
                phase: format!("RG{suffix}"),
                records: steps + 8000,
                secs: gov.as_secs_f64(),
                unit: "reopens/s",
                latencies: governance,
            },
        ])
    }
}

/// Phase Z: compliance snapshots (issue 7).
pub mod snapshot {
    use std::io::Write;
    use std::path::Path;
    use std::time::Instant;

    use serde_json::{json, Map, Value};

    use super::PhaseResult;
    use crate::governance::{flag, identity, Event};
    use crate::ledger::{Ledger, LedgerError};
    use crate::log::LogOptions;
    use crate::snapshot::{
        section_records, At, Scope, SnapshotExporter, SnapshotOptions, SECTIONS,
    };

    const TENANT: &str = "default";

    /// Event `i` of phase Z: each one becomes exactly one snapshot record (an alert, an
    /// identity, a policy rule or a feature flag).
    fn event(i: u64) -> Event {
        let now = i as f64;
        let fallback = || crate::governance::policy::events::change("enable", "unreachable");
        match i % 4 {
            0 => super::governance::bench_alert(i),
            1 => identity::events::register(
                &format!("id{i}"),
                &format!("bot-{i}"),
                &["search".to_string()],
                "meshflow",
                Map::new(),
                now,
            )
            .unwrap_or_else(|_| fallback()),
            2 => super::governance::bench_rule(i),
            _ => flag::events::define(
                &format!("f{i}"),
                &format!("flag-{i}"),
                "bool",
                json!(false),
                "",
                true,
                50,
                now,
            )
            .unwrap_or_else(|_| fallback()),
        }
    }

    fn io(what: &str, e: impl std::fmt::Display) -> LedgerError {
        LedgerError::Log(crate::Error::io(
            what.to_string(),
            std::io::Error::other(e.to_string()),
        ))
    }

    /// The process's peak resident set (VmHWM), in bytes; 0 where /proc is not there.
    pub fn peak_rss() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .map_or(0, |kb| kb * 1024)
    }

    /// Resets the peak resident set to the current one (Linux `clear_refs` 5).
    pub fn reset_peak_rss() {
        let _ = std::fs::write("/proc/self/clear_refs", "5");
    }

    /// What phase Z measured.
    #[derive(Debug, Clone)]
    pub struct Measured {
        /// The export (build, serialise, compress, write, fsync, rename), records per second.
        pub export: PhaseResult,
        /// The same records serialised with serde_json and compressed with the zip crate
        /// straight into a file (fsynced too), seconds.
        pub baseline_secs: f64,
        /// Peak RSS during the export, bytes (the views already in memory included).
        pub export_peak_rss: u64,
        /// RSS before the export, bytes.
        pub before_rss: u64,
        /// Size of the snapshot file, bytes.
        pub zip_bytes: u64,
    }

    /// Phase Z: `records` governance events in a fresh log in `dir` (one snapshot record
    /// each), the views brought up to date, then a snapshot exported at the durable end and,
    /// in the same run, the same records written with serde_json and the zip crate directly.
    pub fn phase_z(dir: &Path, records: u64) -> Result<Measured, LedgerError> {
        {
            let ledger = Ledger::open(dir, LogOptions::default(), TENANT)?.0;
            super::governance::write_events_of(&ledger, 0..records, event)?;
        }
        let ledger = Ledger::open_read_only(dir, LogOptions::default(), TENANT)?;
        ledger.with_governance(|_| ())?;
        let out = dir.join("out");
        std::fs::create_dir_all(&out).map_err(|e| io("creating the output directory", e))?;
        let scope = Scope::Tenant(TENANT.to_string());
        let options = SnapshotOptions {
            scope: scope.clone(),
            at: At::Now,
            snapshot_id: Some("bench".to_string()),
            created_at: Some(1.0),
            created_by: "bench".to_string(),
            description: None,
        };
        let before_rss = peak_rss();
        reset_peak_rss();
        let started = Instant::now();
        let bundle = SnapshotExporter::new(&ledger).export(&options)?;
        let path = out.join("snapshot.zip");
        bundle.write_file(&path, true)?;
        let export_secs = started.elapsed().as_secs_f64();
        let export_peak_rss = peak_rss();
        let exported = bundle.total_records();
        drop(bundle);
        let zip_bytes = std::fs::metadata(&path).map_or(0, |m| m.len());

        let sections: Vec<(&str, Vec<Value>)> = ledger.with_governance(|g| {
            SECTIONS
                .iter()
                .map(|name| (*name, section_records(g, &scope, name, 1.0)))
                .collect()
        })?;
        let started = Instant::now();
        let file = std::fs::File::create(out.join("baseline.zip"))
            .map_err(|e| io("creating the baseline", e))?;
        let mut zip = zip::ZipWriter::new(file);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, records) in &sections {
            // Serialised whole, then compressed in one write (writing the serialiser's many
            // small pieces into the compressor directly is 8× slower).
            let mut bytes = serde_json::to_vec_pretty(records).map_err(|e| io("serialising", e))?;
            bytes.push(b'\n');
            zip.start_file(format!("{name}.json"), options)
                .map_err(|e| io("writing the baseline", e))?;
            zip.write_all(&bytes)
                .map_err(|e| io("writing the baseline", e))?;
        }
        let file = zip.finish().map_err(|e| io("writing the baseline", e))?;
        file.sync_all().map_err(|e| io("syncing the baseline", e))?;
        let baseline_secs = started.elapsed().as_secs_f64();
        Ok(Measured {
            export: PhaseResult::records_per_sec("Z", exported, export_secs, Vec::new()),
            baseline_secs,
            export_peak_rss,
            before_rss,
            zip_bytes,
        })
    }
}

/// Operators' tools (issue 6's bars): `F` forks a 10,000-step run at −1 (steps copied per
/// second, to compare with A's append rate); `X` anonymizes one run of the canonical workload
/// and reports the slot bytes it overwrote (to compare with the log's size).
pub mod operators {
    use std::path::Path;
    use std::time::Instant;

    use super::PhaseResult;
    use crate::ledger::fork::ForkOverrides;
    use crate::ledger::{Ledger, LedgerError};
    use crate::log::{Durability, LogOptions};
    use crate::workload::Workload;

    const TENANT: &str = "default";

    /// Phase F: a run of `steps` steps (the canonical step shape) forked whole.
    pub fn phase_f(dir: &Path, steps: u64) -> Result<PhaseResult, LedgerError> {
        let workload = Workload {
            runs: 1,
            steps,
            payload_bytes: 256,
        };
        let ledger = Ledger::open(dir, LogOptions::default(), TENANT)?.0;
        {
            let mut appender = ledger.appender()?;
            for i in 0..steps {
                appender.submit(workload.step_request(i), Durability::Buffered)?;
                while appender.outstanding() > 4096 {
                    appender.next_receipt()?;
                }
            }
            while appender.outstanding() > 0 {
                appender.next_receipt()?;
            }
            appender.sync()?;
        }
        let run = workload.step_request(0).run_id;
        // Five forks of the whole run, timed together (one fork takes tens of milliseconds).
        let started = Instant::now();
        let mut copied = 0;
        for i in 0..5 {
            let id = format!("fork-{i}");
            copied += ledger
                .fork(&run, -1, Some(&id), &ForkOverrides::default())?
                .steps_copied;
        }
        let secs = started.elapsed().as_secs_f64();
        Ok(PhaseResult::records_per_sec("F", copied, secs, Vec::new()))
    }

    /// Phase X: anonymizes one run of the log in `dir` (phase A's). `records` is the number of
    /// slot content bytes overwritten; the caller compares them with the log's size.
    pub fn phase_x(dir: &Path, workload: &Workload) -> Result<(PhaseResult, u64), LedgerError> {
        let ledger = Ledger::open(dir, LogOptions::default(), TENANT)?.0;
        let run = workload.step_request(workload.runs / 2).run_id;
        let bytes: u64 = ledger
            .get_run(&run)?
            .iter()
            .map(|s| {
                s.stored
                    .slots
                    .iter()
                    .map(|v| match v {
                        crate::ledger::record::FieldValue::Text(t) => t.len() as u64,
                        crate::ledger::record::FieldValue::Redacted { len, .. } => *len,
                    })
                    .sum::<u64>()
            })
            .sum();
        let log_bytes = ledger.log().map_or(0, |l| {
            l.reader()
                .stats()
                .map(|s| s.segments.iter().map(|(_, len)| *len).sum())
                .unwrap_or_default()
        });
        let started = Instant::now();
        ledger.anonymize_run(&run, false, "bench", "phase X")?;
        let secs = started.elapsed().as_secs_f64();
        Ok((
            PhaseResult {
                phase: "X".to_string(),
                records: bytes,
                secs,
                unit: "bytes/s",
                latencies: Vec::new(),
            },
            log_bytes,
        ))
    }
}
