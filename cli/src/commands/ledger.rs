//! `meshflow append | runs | replay | trace`: writing steps and reading runs.

use std::collections::BTreeSet;
use std::io::{BufRead, Read, Write};

use anyhow::{Context, Result};
use meshflow_engine::ledger::export::{diff_json, report_json, step_json, summary_json};
use meshflow_engine::ledger::step::slot;
use meshflow_engine::ledger::{Ledger, LedgerError, RunSummary, Step, StepReceipt, StepRequest};
use meshflow_engine::log::{Durability, LogOptions};
use meshflow_engine::service::client::Client;
use serde_json::{json, Value};

use crate::args::{AppendArgs, Cli, ReplayArgs, TraceArgs};

/// Opens the ledger read-only (a missing log is "No ledger found").
pub fn open_read(cli: &Cli) -> Result<Ledger> {
    Ok(Ledger::open_read_only(
        &cli.db,
        LogOptions::default(),
        &cli.tenant,
    )?)
}

/// Opens the ledger for writing (creating it), holding the writer lock; when another process
/// holds it, retries for up to `wait_secs`.
pub fn open_write_waiting(cli: &Cli, wait_secs: f64) -> Result<Ledger> {
    let deadline =
        std::time::Instant::now() + std::time::Duration::from_secs_f64(wait_secs.max(0.0));
    loop {
        match Ledger::open(&cli.db, LogOptions::default(), &cli.tenant) {
            Ok((ledger, _)) => return Ok(ledger),
            Err(LedgerError::Log(meshflow_engine::Error::Locked { .. }))
                if std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// One batch of `append`: the lines' text, or their parsed steps (see [`Sink::append`]).
#[derive(Default)]
struct Batch {
    lines: Vec<String>,
    requests: Vec<StepRequest>,
}

impl Batch {
    fn len(&self) -> usize {
        self.lines.len().max(self.requests.len())
    }
}

/// Where `append` sends its batches: a running writer service, or the ledger opened here.
enum Sink {
    Service(Client),
    Local(Ledger),
}

impl Sink {
    /// Whether batches go to the service, which takes the lines' text (so metadata keeps its
    /// exact bytes) and parses them itself.
    fn wants_text(&self) -> bool {
        matches!(self, Sink::Service(_))
    }

    /// Appends one batch: the lines' text for the service, their parsed steps for the local
    /// ledger (each line is parsed once, when it is read). The receipts as the protocol
    /// carries them.
    fn append(
        &mut self,
        tenant: &str,
        batch: Batch,
        durability: Durability,
    ) -> Result<Vec<StepReceipt>> {
        match self {
            Sink::Service(client) => {
                Ok(client.append(tenant, &batch.lines, durability == Durability::Sync)?)
            }
            Sink::Local(ledger) => Ok(ledger.append_batch(batch.requests, durability)?),
        }
    }

    fn sync(&mut self) -> Result<()> {
        match self {
            Sink::Service(client) => Ok(client.sync()?),
            Sink::Local(ledger) => Ok(ledger.sync()?),
        }
    }
}

/// `meshflow append`
pub fn append(cli: &Cli, args: &AppendArgs) -> Result<u8> {
    let input: Box<dyn BufRead> = match &args.file {
        None => Box::new(std::io::stdin().lock()),
        Some(p) if p.as_os_str() == "-" => Box::new(std::io::stdin().lock()),
        Some(p) => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?,
        )),
    };
    let batch_lines = args
        .batch_lines
        .unwrap_or(if args.ack { 1 } else { 1000 })
        .max(1);
    let durability = if args.durability == "buffered" && !args.ack {
        Durability::Buffered
    } else {
        Durability::Sync
    };
    // A running writer service takes the batches; otherwise this process takes the lock.
    let mut sink = match Client::discover(&cli.db) {
        Some(client) => Sink::Service(client),
        None => Sink::Local(open_write_waiting(cli, args.wait_lock)?),
    };
    let mut out = std::io::stdout().lock();
    let mut batch = Batch::default();
    let as_text = sink.wants_text();
    let mut batch_first_line = 1u64;
    let mut appended = 0u64;
    let mut first_offset: Option<u64> = None;
    let mut last_offset: Option<u64> = None;
    let mut runs = BTreeSet::new();
    let mut flush = |batch: &mut Batch, first_line: u64| -> Result<()> {
        if batch.len() == 0 {
            return Ok(());
        }
        let receipts = sink
            .append(&cli.tenant, std::mem::take(batch), durability)
            .with_context(|| {
                format!(
                    "lines {first_line}..: batch not written ({appended} step(s) appended before it)"
                )
            })?;
        for (i, r) in receipts.iter().enumerate() {
            if args.ack {
                let ack = json!({"line": first_line + i as u64, "offset": r.offset,
                                 "run_id": r.run_id, "step_index": r.step_index});
                writeln!(out, "{ack}")?;
            }
            first_offset.get_or_insert(r.offset);
            last_offset = Some(r.offset);
            if !runs.contains(&r.run_id) {
                runs.insert(r.run_id.clone());
            }
        }
        if args.ack {
            out.flush()?;
        }
        appended += receipts.len() as u64;
        Ok(())
    };
    let mut line_no = 0u64;
    let mut line = String::new();
    let mut reader = input;
    loop {
        line.clear();
        // A line is read up to the limit only: a longer one is refused, not buffered whole.
        let n = match (&mut reader).take(LINE_BYTES_MAX + 1).read_line(&mut line) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(meshflow_engine::Error::InvalidInput {
                    reason: format!(
                        "line {}: not UTF-8 ({appended} step(s) appended before it)",
                        line_no + 1
                    ),
                }
                .into())
            }
            Err(e) => {
                return Err(anyhow::Error::from(e).context(format!("reading line {}", line_no + 1)))
            }
        };
        if n == 0 {
            break;
        }
        line_no += 1;
        if n as u64 > LINE_BYTES_MAX {
            return Err(anyhow::Error::from(meshflow_engine::Error::LimitExceeded {
                what: "line bytes",
                actual: n as u64,
                max: LINE_BYTES_MAX,
            })
            .context(format!(
                "line {line_no} ({appended} step(s) appended before it)"
            )));
        }
        let text = line.trim_end_matches(['\n', '\r']);
        if text.trim().is_empty() {
            continue;
        }
        // Parsed here, so a bad line is reported with its number before its batch is sent.
        let request = StepRequest::from_json(text)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("line {line_no}"))?;
        if batch.len() == 0 {
            batch_first_line = line_no;
        }
        if as_text {
            batch.lines.push(text.to_string());
        } else {
            batch.requests.push(request);
        }
        if batch.len() >= batch_lines {
            flush(&mut batch, batch_first_line)?;
        }
    }
    flush(&mut batch, batch_first_line)?;
    if durability == Durability::Buffered {
        sink.sync()?;
    }
    let mut out = std::io::stdout().lock();
    if cli.json {
        let value = json!({"appended": appended, "first_offset": first_offset,
                           "last_offset": last_offset, "runs": runs});
        writeln!(out, "{value}")?;
    } else if !args.ack {
        match (first_offset, last_offset) {
            (Some(a), Some(b)) => writeln!(
                out,
                "appended {appended} step(s) to {} run(s) (offsets {a}..={b})",
                runs.len()
            )?,
            _ => writeln!(out, "appended 0 steps")?,
        }
    }
    Ok(0)
}

/// `meshflow runs`
pub fn runs(cli: &Cli) -> Result<u8> {
    let ledger = open_read(cli)?;
    let mut out = std::io::stdout().lock();
    let ids = ledger.list_runs()?;
    if cli.json {
        let mut first = true;
        write!(out, "[")?;
        for id in &ids {
            let s = ledger.run_summary(id)?;
            write!(out, "{}{}", if first { "" } else { "," }, summary_json(&s))?;
            first = false;
        }
        writeln!(out, "]")?;
        return Ok(0);
    }
    if ids.is_empty() {
        writeln!(out, "No runs for tenant '{}'.", cli.tenant)?;
        return Ok(0);
    }
    writeln!(
        out,
        "{:<38} {:>6} {:>12} {:>9} {:>7}  LAST STEP",
        "RUN", "STEPS", "COST_USD", "TOKENS", "BLOCKED"
    )?;
    for id in &ids {
        let s = ledger.run_summary(id)?;
        writeln!(
            out,
            "{:<38} {:>6} {:>12.6} {:>9} {:>7}  {}",
            id,
            s.steps,
            s.total_cost_usd,
            s.total_tokens,
            s.blocked_steps,
            s.end.as_deref().unwrap_or("-")
        )?;
    }
    Ok(0)
}

fn preview(text: &str, chars: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() > chars {
        format!("{}…", flat.chars().take(chars).collect::<String>())
    } else {
        flat
    }
}

/// A step's block reason (when blocked) and a 100-character preview of its output, indented.
fn print_reason_and_output(out: &mut impl Write, step: &Step, indent: usize) -> Result<()> {
    let pad = " ".repeat(indent);
    if step.stored.fields.blocked {
        let reason = preview(step.text(slot::BLOCK_REASON), 100);
        writeln!(out, "{pad}reason: {reason}")?;
    }
    let output = preview(step.text(slot::OUTPUT_CONTENT), 100);
    writeln!(out, "{pad}output: {output}")?;
    Ok(())
}

fn status(steps: &[Step]) -> &'static str {
    if steps.iter().any(|s| s.stored.fields.blocked) {
        "FAILED"
    } else if steps
        .last()
        .is_some_and(|s| s.stored.fields.verdict == "escalate")
    {
        "PAUSED"
    } else {
        "COMPLETED"
    }
}

/// The longest JSON Lines line `append` reads (a step's record is at most 16 MiB; its JSON text
/// with escapes can be longer).
const LINE_BYTES_MAX: u64 = 64 << 20;

/// `meshflow replay RUN [--diff RUN_B]`
pub fn replay(cli: &Cli, args: &ReplayArgs) -> Result<u8> {
    if args.fork_at.is_some() || args.fork_at_offset.is_some() {
        return fork(cli, args);
    }
    if let Some(n) = args.rewind {
        return rewind(cli, args, n);
    }
    if args.branch_compare {
        return branch_compare(cli, args);
    }
    if args.branches {
        return branches(cli, args);
    }
    let ledger = open_read(cli)?;
    if let Some(dest) = &args.archive {
        let r = ledger.archive_file(&args.run_id, dest)?;
        let event = meshflow_engine::ledger::archive::archive_event(&r);
        super::governance::write_event(
            cli,
            &event,
            crate::args::WaitLock {
                secs: args.wait_lock,
            },
        )?;
        let mut out = std::io::stdout().lock();
        if cli.json {
            writeln!(
                out,
                "{}",
                json!({"run_id": r.run_id, "uri": r.uri, "bytes_written": r.bytes_written,
                       "sha256": r.sha256})
            )?;
        } else {
            writeln!(
                out,
                "archived '{}' to {} ({} bytes, sha256 {})",
                r.run_id, r.uri, r.bytes_written, r.sha256
            )?;
        }
        return Ok(0);
    }
    let mut out = std::io::stdout().lock();
    if let Some(b) = &args.diff {
        let d = ledger.diff(&args.run_id, b)?;
        if cli.json {
            writeln!(out, "{}", diff_json(&d))?;
            return Ok(0);
        }
        let short = |s: &str| s.chars().take(24).collect::<String>();
        let list = |v: &[String]| {
            if v.is_empty() {
                "—".to_string()
            } else {
                v.join(", ")
            }
        };
        writeln!(
            out,
            "Diff {}  ↔  {}",
            short(&d.run_id_a),
            short(&d.run_id_b)
        )?;
        writeln!(out, "Only in A : {}", list(&d.only_in_a))?;
        writeln!(out, "Only in B : {}", list(&d.only_in_b))?;
        writeln!(out, "Common    : {} node(s)", d.common.len())?;
        writeln!(out, "Changed   : {} node(s)", d.changed.len())?;
        for c in &d.changed {
            writeln!(
                out,
                "  • {}: verdict {} → {}",
                c.node_id, c.verdict_a, c.verdict_b
            )?;
        }
        writeln!(out, "Cost Δ    : {:+.6} USD", d.cost_delta_usd)?;
        writeln!(out, "Token Δ   : {:+}", d.token_delta)?;
        return Ok(0);
    }
    if cli.json {
        write!(out, "[")?;
        let mut first = true;
        ledger.for_each_step(&args.run_id, 0, |step| {
            write!(out, "{}{}", if first { "" } else { "," }, step_json(&step))
                .map_err(|e| LedgerError::Log(meshflow_engine::Error::io("writing", e)))?;
            first = false;
            Ok(())
        })?;
        writeln!(out, "]")?;
        return Ok(0);
    }
    let steps = ledger.get_run(&args.run_id)?;
    let s = RunSummary::of(&args.run_id, &steps);
    let duration: f64 = steps.iter().map(|s| s.stored.fields.duration_ms).sum();
    writeln!(out, "Run {} (tenant {})", args.run_id, cli.tenant)?;
    writeln!(
        out,
        "Status: {}   Steps: {}   Cost: ${:.6}   Tokens: {}   Duration: {:.1} ms",
        status(&steps),
        s.steps,
        s.total_cost_usd,
        s.total_tokens,
        duration
    )?;
    for step in &steps {
        let f = &step.stored.fields;
        writeln!(
            out,
            "  {:>3}  {:<20} {:<8} {:<9} ${:<10.6} {:>7} tok{}",
            step.step_index,
            f.node_id,
            f.node_kind,
            f.verdict,
            f.cost_usd,
            f.tokens_used,
            if f.blocked { "  BLOCKED" } else { "" }
        )?;
        print_reason_and_output(&mut out, step, 7)?;
    }
    Ok(0)
}

/// `meshflow trace RUN [--export FILE]`
pub fn trace(cli: &Cli, args: &TraceArgs) -> Result<u8> {
    let ledger = open_read(cli)?;
    let steps = ledger.get_run(&args.run_id)?;
    let summary = RunSummary::of(&args.run_id, &steps);
    let report = ledger.verify_chain(&args.run_id)?;
    let document = || -> Value {
        json!({
            "run_id": args.run_id,
            "summary": summary_json(&summary),
            "chain_valid": report.valid,
            "chain": report_json(&report),
            "steps": steps.iter().map(step_json).collect::<Vec<_>>(),
        })
    };
    if let Some(path) = &args.export {
        let text = serde_json::to_string_pretty(&document())?;
        crate::output::write_new_file(path, text.as_bytes())?;
    }
    let code = u8::from(!report.valid);
    let mut out = std::io::stdout().lock();
    if cli.json {
        writeln!(out, "{}", document())?;
        return Ok(code);
    }
    let chain = if report.valid { "VALID" } else { "INVALID" };
    writeln!(
        out,
        "Run {}   Steps: {}   Cost: ${:.6}   Tokens: {}   Chain: {chain}",
        args.run_id, summary.steps, summary.total_cost_usd, summary.total_tokens
    )?;
    writeln!(
        out,
        "{:>4}  {:<20} {:<8} {:<9} {:>6} {:>8} {:>10} {:>9}  STATUS",
        "#", "NODE", "KIND", "VERDICT", "UNCERT", "TOKENS", "COST", "MS"
    )?;
    for step in &steps {
        let f = &step.stored.fields;
        let status = if f.blocked {
            "BLOCKED"
        } else if f.verdict == "escalate" {
            "PAUSED"
        } else {
            "ok"
        };
        writeln!(
            out,
            "{:>4}  {:<20} {:<8} {:<9} {:>6.2} {:>8} {:>10.6} {:>9.1}  {status}",
            step.step_index,
            f.node_id,
            f.node_kind,
            f.verdict,
            f.uncertainty,
            f.tokens_used,
            f.cost_usd,
            f.duration_ms
        )?;
        print_reason_and_output(&mut out, step, 6)?;
    }
    for e in &report.errors {
        writeln!(out, "  {}", e.message)?;
    }
    writeln!(out, "CHAIN {chain}")?;
    if report.steps_redacted > 0 {
        writeln!(
            out,
            "({} step(s) redacted: their erased content is unverifiable)",
            report.steps_redacted
        )?;
    }
    if let Some(path) = &args.export {
        writeln!(out, "Written to {}", path.display())?;
    }
    Ok(code)
}

/// `meshflow replay RUN --fork-at N | --fork-at-offset O`: through a running `serve`, or here.
fn fork(cli: &Cli, args: &ReplayArgs) -> Result<u8> {
    use meshflow_engine::ledger::fork::ForkOverrides;
    let mut inject = std::collections::BTreeMap::new();
    for pair in &args.inject {
        let Some((k, v)) = pair.split_once('=') else {
            return Err(
                crate::args::UsageError(format!("--inject '{pair}': expected KEY=VALUE")).into(),
            );
        };
        inject.insert(k.to_string(), v.to_string());
    }
    let overrides = ForkOverrides {
        label: None,
        model: args.model.clone(),
        prompt: args.prompt.clone(),
        inject,
    };
    let receipt = do_fork(
        cli,
        &args.run_id,
        args.fork_at,
        args.fork_at_offset,
        args.new_run_id.as_deref(),
        &overrides,
        args.wait_lock,
    )?;
    print_fork(cli, &receipt)
}

/// One fork through a running `serve`, or here with the writer lock.
fn do_fork(
    cli: &Cli,
    run: &str,
    from_step: Option<i64>,
    at_offset: Option<u64>,
    new_run_id: Option<&str>,
    overrides: &meshflow_engine::ledger::fork::ForkOverrides,
    wait_lock: f64,
) -> Result<meshflow_engine::ledger::fork::ForkReceipt> {
    Ok(match Client::discover(&cli.db) {
        Some(mut client) => client.fork(
            &cli.tenant,
            run,
            from_step,
            at_offset,
            new_run_id,
            overrides,
        )?,
        None => {
            let ledger = open_write_waiting(cli, wait_lock)?;
            match at_offset {
                Some(offset) => ledger.fork_at_offset(run, offset, new_run_id, overrides)?,
                None => ledger.fork(run, from_step.unwrap_or(-1), new_run_id, overrides)?,
            }
        }
    })
}

fn print_fork(cli: &Cli, receipt: &meshflow_engine::ledger::fork::ForkReceipt) -> Result<u8> {
    let mut out = std::io::stdout().lock();
    if cli.json {
        writeln!(
            out,
            "{}",
            json!({"run_id": receipt.run_id, "parent_run_id": receipt.parent_run_id,
                   "steps_copied": receipt.steps_copied, "offset": receipt.offset})
        )?;
    } else {
        writeln!(
            out,
            "forked '{}' into '{}': {} step(s) copied (fork event at offset {})",
            receipt.parent_run_id, receipt.run_id, receipt.steps_copied, receipt.offset
        )?;
    }
    Ok(0)
}

/// `replay RUN --rewind N`: the state at step N, then a fork copying steps 0..N−1.
fn rewind(cli: &Cli, args: &ReplayArgs, n: u64) -> Result<u8> {
    let index = i64::try_from(n).unwrap_or(i64::MAX);
    let state = {
        let ledger = open_read(cli)?;
        ledger.load_state(&args.run_id, index)?.ok_or_else(|| {
            anyhow::Error::from(LedgerError::NotFound {
                what: format!("step {n} of run '{}'", args.run_id),
            })
        })?
    };
    let receipt = do_fork(
        cli,
        &args.run_id,
        Some(index),
        None,
        args.new_run_id.as_deref(),
        &meshflow_engine::ledger::fork::ForkOverrides {
            model: args.model.clone(),
            prompt: args.prompt.clone(),
            ..Default::default()
        },
        args.wait_lock,
    )?;
    let mut out = std::io::stdout().lock();
    if cli.json {
        writeln!(
            out,
            "{}",
            json!({"state": step_json(&state), "run_id": receipt.run_id,
                   "steps_copied": receipt.steps_copied, "offset": receipt.offset})
        )?;
    } else {
        let f = &state.stored.fields;
        writeln!(
            out,
            "state at step {n} of '{}': node {} ({}), verdict {}, input: {}",
            args.run_id,
            f.node_id,
            f.node_kind,
            f.verdict,
            state.text(0)
        )?;
        writeln!(
            out,
            "forked into '{}' with the {} step(s) before step {n}; step {n} is the next to run",
            receipt.run_id, receipt.steps_copied
        )?;
    }
    Ok(0)
}

/// `--forks` parsed: one (label, overrides) per variant.
fn parse_variants(
    spec: &str,
) -> Result<Vec<(String, meshflow_engine::ledger::fork::ForkOverrides)>> {
    let mut out = Vec::new();
    for variant in spec.split(',').map(str::trim).filter(|v| !v.is_empty()) {
        let (label, settings) = variant.split_once(':').unwrap_or((variant, ""));
        let label = label.trim();
        if label.is_empty() || out.iter().any(|(l, _): &(String, _)| l == label) {
            return Err(crate::args::UsageError(format!(
                "--forks: '{variant}' needs a label of its own (LABEL:KEY=VALUE)"
            ))
            .into());
        }
        let mut o = meshflow_engine::ledger::fork::ForkOverrides {
            label: Some(label.to_string()),
            ..Default::default()
        };
        for kv in settings.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((k, v)) = kv.split_once('=') else {
                return Err(crate::args::UsageError(format!(
                    "--forks: '{kv}' in '{variant}' is not KEY=VALUE"
                ))
                .into());
            };
            match k.trim() {
                "model" => o.model = Some(v.trim().to_string()),
                "prompt" => o.prompt = Some(v.trim().to_string()),
                key => {
                    o.inject.insert(key.to_string(), v.trim().to_string());
                }
            }
        }
        out.push((label.to_string(), o));
    }
    if out.is_empty() {
        return Err(crate::args::UsageError("--forks names no variant".to_string()).into());
    }
    Ok(out)
}

/// `replay RUN --branch-compare --forks SPEC [--compare-step N]`.
fn branch_compare(cli: &Cli, args: &ReplayArgs) -> Result<u8> {
    let variants = parse_variants(args.forks.as_deref().unwrap_or(""))?;
    let mut made = Vec::new();
    for (label, overrides) in &variants {
        let id = format!("{}--{label}", args.run_id);
        let r = do_fork(
            cli,
            &args.run_id,
            Some(args.compare_step),
            None,
            Some(&id),
            overrides,
            args.wait_lock,
        )?;
        made.push(json!({"label": label, "run_id": r.run_id, "steps_copied": r.steps_copied}));
    }
    let mut out = std::io::stdout().lock();
    if cli.json {
        writeln!(out, "{}", json!({"parent": args.run_id, "branches": made}))?;
    } else {
        for m in &made {
            writeln!(
                out,
                "branch {}: {} ({} step(s) copied)",
                m["label"].as_str().unwrap_or(""),
                m["run_id"].as_str().unwrap_or(""),
                m["steps_copied"]
            )?;
        }
        writeln!(
            out,
            "compare them: meshflow replay {} --branches",
            args.run_id
        )?;
    }
    Ok(0)
}

/// `replay RUN --branches`: the run beside each labelled branch.
fn branches(cli: &Cli, args: &ReplayArgs) -> Result<u8> {
    let ledger = open_read(cli)?;
    let branches = ledger.branches(&args.run_id)?;
    let row = |label: &str, run: &str| -> Result<Value> {
        let s = ledger.run_summary(run)?;
        let mut verdicts = std::collections::BTreeMap::<String, u64>::new();
        for v in &s.verdicts {
            *verdicts.entry(v.clone()).or_default() += 1;
        }
        let changed: Vec<String> = if run == args.run_id {
            Vec::new()
        } else {
            ledger
                .diff(&args.run_id, run)?
                .changed
                .iter()
                .map(|c| c.node_id.clone())
                .collect()
        };
        Ok(json!({"label": label, "run_id": run, "steps": s.steps,
                  "cost_usd": s.total_cost_usd, "tokens": s.total_tokens,
                  "verdicts": verdicts, "nodes_changed": changed}))
    };
    let mut rows = vec![row("parent", &args.run_id)?];
    for b in &branches {
        rows.push(row(&b.label, &b.run_id)?);
    }
    let mut out = std::io::stdout().lock();
    if cli.json {
        writeln!(out, "{}", Value::Array(rows))?;
        return Ok(0);
    }
    writeln!(
        out,
        "{:<12} {:<36} {:>5} {:>12} {:>8}  {:<24} CHANGED NODES",
        "BRANCH", "RUN", "STEPS", "COST_USD", "TOKENS", "VERDICTS"
    )?;
    for r in &rows {
        let verdicts: Vec<String> = r["verdicts"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| format!("{k}:{v}")).collect())
            .unwrap_or_default();
        let changed: Vec<&str> = r["nodes_changed"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        writeln!(
            out,
            "{:<12} {:<36} {:>5} {:>12.6} {:>8}  {:<24} {}",
            r["label"].as_str().unwrap_or(""),
            r["run_id"].as_str().unwrap_or(""),
            r["steps"].as_u64().unwrap_or(0),
            r["cost_usd"].as_f64().unwrap_or(0.0),
            r["tokens"].as_u64().unwrap_or(0),
            verdicts.join(" "),
            if changed.is_empty() {
                "—".to_string()
            } else {
                changed.join(", ")
            }
        )?;
    }
    if branches.is_empty() {
        writeln!(
            out,
            "(no labelled branches: meshflow replay {} --branch-compare --forks …)",
            args.run_id
        )?;
    }
    Ok(0)
}
