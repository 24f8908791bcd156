//! `meshflow demo`: simulated agents append their runs' steps concurrently into a fresh
//! directory; one step's personal data is erased in place; the ledger is reopened, runs are
//! listed, replayed and diffed, the log and every run chain are verified, and one run is
//! exported and verified offline.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use meshflow_engine::format::erasure::SlotRef;
use meshflow_engine::ledger::offline::verify_export;
use meshflow_engine::ledger::{Ledger, StepRequest};
use meshflow_engine::log::{Durability, LogOptions};
use serde_json::json;

use crate::args::{Cli, DemoArgs};

fn fresh_dir(args: &DemoArgs) -> Result<PathBuf> {
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            std::env::temp_dir().join(format!("meshflow-demo-{stamp}-{}", std::process::id()))
        }
    };
    if dir.exists() {
        bail!(crate::args::UsageError(format!(
            "{} already exists; the demo needs a fresh directory",
            dir.display()
        )));
    }
    Ok(dir)
}

/// Nodes a simulated agent walks through, in order, again and again.
const NODES: [(&str, &str); 6] = [
    ("plan", "llm"),
    ("retrieve", "tool"),
    ("analyze", "llm"),
    ("call-api", "tool"),
    ("gate", "native"),
    ("report", "llm"),
];

/// The `step`-th step of agent `agent`: deterministic, with a blocked gate now and then.
fn demo_step(agent: u64, step: u64) -> StepRequest {
    let (node, kind) = NODES[usize::try_from(step).unwrap_or(0) % NODES.len()];
    let blocked = node == "gate" && (agent + step).is_multiple_of(7);
    StepRequest {
        run_id: format!("agent-{agent:02}-run"),
        step_id: Some(format!("agent-{agent:02}-step-{step:05}")),
        node_id: node.to_string(),
        node_kind: kind.to_string(),
        input_task: format!("agent {agent}, step {step}: {node} for customer alice@example.com"),
        output_content: format!("result of {node} #{step} by agent {agent}"),
        verdict: if blocked { "reject" } else { "commit" }.to_string(),
        blocked,
        block_reason: blocked.then(|| "policy: external call without approval".to_string()),
        uncertainty: ((agent * 31 + step * 17) % 100) as f64 / 100.0,
        cost_usd: 0.0001 * ((step % 9) + 1 + agent % 3) as f64,
        tokens_used: 100 + (step * 37 + agent * 11) % 900,
        carbon_gco2: 0.01,
        duration_ms: 5.0 + ((step * 13) % 50) as f64,
        metadata_json: Some(format!("{{\"tool_calls\": {}}}", step % 3)),
        ..StepRequest::default()
    }
}

/// One thread per simulated agent, each appending its run's steps durably (group commit
/// shares the fsyncs between them).
fn run_agents(ledger: &Ledger, agents: u64, steps: u64) -> Result<()> {
    std::thread::scope(|scope| -> Result<()> {
        let handles: Vec<_> = (0..agents)
            .map(|agent| {
                scope.spawn(move || -> Result<()> {
                    for step in 0..steps {
                        ledger.append(demo_step(agent, step), Durability::Sync)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("an agent thread panicked"))??;
        }
        Ok(())
    })
}

/// Runs the demo.
pub fn run(cli: &Cli, args: &DemoArgs) -> Result<u8> {
    if args.agents == 0 || args.steps == 0 {
        bail!(crate::args::UsageError(
            "--agents and --steps must be positive".to_string()
        ));
    }
    let dir = fresh_dir(args)?;
    let mut out = std::io::stdout().lock();
    let human = !cli.json;
    if human {
        writeln!(out, "demo directory: {}", dir.display())?;
    }
    let (ledger, _) = Ledger::open(&dir, LogOptions::default(), "default")?;
    let started = Instant::now();
    run_agents(&ledger, args.agents, args.steps)?;
    let append_secs = started.elapsed().as_secs_f64();
    let appended = args.agents * args.steps;
    if human {
        writeln!(
            out,
            "{} agents appended {appended} durable steps concurrently in {append_secs:.2}s ({:.0}/s)",
            args.agents,
            appended as f64 / append_secs
        )?;
    }

    // Erase one step's personal data in place: every chain still verifies.
    let first = ledger
        .load_state("agent-00-run", 0)?
        .context("agent 0 has a first step")?;
    let log = ledger.log().context("the demo ledger is writable")?;
    let erasure = log.erase(
        "default",
        vec![SlotRef {
            offset: first.stored.offset,
            slot_index: 0,
        }],
        b"{\"reason\":\"demo: data subject request\"}".to_vec(),
    )?;
    drop(ledger);

    // Reopen as an operator would, and read.
    let (ledger, recovery) = Ledger::open(&dir, LogOptions::default(), "default")?;
    let runs = ledger.list_runs()?;
    let replayed = ledger.get_run("agent-00-run")?;
    let diff = if args.agents > 1 {
        Some(ledger.diff("agent-00-run", "agent-01-run")?)
    } else {
        None
    };
    if human {
        writeln!(out, "runs (newest first): {}", runs.join(", "))?;
        writeln!(
            out,
            "replay agent-00-run (first 3 of {} steps):",
            replayed.len()
        )?;
        for step in replayed.iter().take(3) {
            let f = &step.stored.fields;
            writeln!(
                out,
                "  {:>3} {:<9} {:<7} ${:.4} {:>4} tok  input: {}",
                step.step_index,
                f.node_id,
                f.verdict,
                f.cost_usd,
                f.tokens_used,
                step.text(0)
            )?;
        }
        if let Some(d) = &diff {
            writeln!(
                out,
                "diff agent-00-run ↔ agent-01-run: {} common node(s), {} changed, cost Δ {:+.6} USD, token Δ {:+}",
                d.common.len(),
                d.changed.len(),
                d.cost_delta_usd,
                d.token_delta
            )?;
        }
    }

    // Every governance view gets events: tenants, policy, SLA, vault, lineage, identities,
    // a canary, a lock, an alert and a flag.
    let governance = populate_governance(&ledger, args.agents)?;

    // Operators' tools: a fork with another model, a two-branch comparison, an anonymization.
    let operators = operators_tools(&ledger, args.agents)?;

    // Verify everything: the log (frames, global chain, erased slots) and every run chain.
    let (log_report, chains) = ledger.verify_all()?;
    let invalid = chains.iter().filter(|r| !r.valid).count();
    let redacted: u64 = chains.iter().map(|r| r.steps_redacted).sum();

    // Export one run and verify the export offline, as an auditor would. The export goes
    // beside the data directory, not into it: exports are outside erasure's reach.
    let export_path = PathBuf::from(format!("{}-export-agent-00-run.json", dir.display()));
    let mut bytes = Vec::new();
    ledger.export_run("agent-00-run", &mut bytes)?;
    std::fs::write(&export_path, &bytes)
        .with_context(|| format!("writing {}", export_path.display()))?;
    let envelope: serde_json::Value = serde_json::from_slice(&bytes)?;
    let offline = verify_export(&envelope).map_err(|e| anyhow::anyhow!(e))?;
    let export_valid = offline.iter().all(|r| r.valid());
    let snapshot = snapshot_and_verify(&ledger, &dir)?;
    let valid = invalid == 0 && export_valid && snapshot["valid"] == true;
    let summary = json!({
        "dir": dir.display().to_string(),
        "agents": args.agents,
        "steps_appended": appended,
        "append_secs": append_secs,
        "appends_per_sec": appended as f64 / append_secs,
        "erasure_offset": erasure.offset,
        "reopened_cleanly": recovery.clean,
        "runs": chains.len(),
        "runs_invalid": invalid,
        "steps_redacted": redacted,
        "records": log_report.record_count,
        "slots_erased": log_report.slots_erased,
        "head_hash": log_report.head_hash,
        "export_file": export_path.display().to_string(),
        "export_valid": export_valid,
        "governance": governance,
        "operators": operators,
        "snapshot": snapshot,
        "valid": valid,
    });
    if cli.json {
        writeln!(out, "{summary}")?;
    } else {
        print_human(&mut out, &summary)?;
    }
    Ok(u8::from(!valid))
}

fn print_human(out: &mut impl Write, s: &serde_json::Value) -> Result<()> {
    writeln!(
        out,
        "erased agent-00-run step 0's input in place (erasure record at offset {}); reopened {}",
        s["erasure_offset"],
        if s["reopened_cleanly"].as_bool().unwrap_or(false) {
            "cleanly"
        } else {
            "after recovery"
        }
    )?;
    writeln!(
        out,
        "LOG VALID: {} records, {} erased slot(s), global head {}",
        s["records"],
        s["slots_erased"],
        s["head_hash"].as_str().unwrap_or("")
    )?;
    writeln!(
        out,
        "{} run chain(s) verified, {} invalid, {} step(s) redacted (their hashes still verify)",
        s["runs"], s["runs_invalid"], s["steps_redacted"]
    )?;
    let file = s["export_file"].as_str().unwrap_or("");
    writeln!(
        out,
        "exported agent-00-run to {file}: offline verification {}",
        if s["export_valid"].as_bool().unwrap_or(false) {
            "OK"
        } else {
            "FAILED"
        }
    )?;
    writeln!(
        out,
        "verify it independently: python3 tools/verify_export.py {file}"
    )?;
    let snap = &s["snapshot"];
    writeln!(
        out,
        "compliance snapshot {} at log offset {}: {} sections, {} records; verified against the log: {}",
        snap["file"].as_str().unwrap_or(""),
        snap["log_offset"],
        snap["sections"],
        snap["records"],
        if snap["valid"].as_bool().unwrap_or(false) {
            "OK"
        } else {
            "FAILED"
        }
    )?;
    writeln!(
        out,
        "verify it again: meshflow --db {} snapshot verify {}",
        s["dir"].as_str().unwrap_or(""),
        snap["file"].as_str().unwrap_or("")
    )?;
    let o = &s["operators"];
    if !o.is_null() {
        writeln!(
            out,
            "operators: forked {} into {} ({} steps, model {}); branches {}; anonymized {} ({} slots erased, its chain still verifies)",
            o["forked"].as_str().unwrap_or(""),
            o["fork"].as_str().unwrap_or(""),
            o["fork_steps"],
            o["fork_model"].as_str().unwrap_or(""),
            o["branches"].as_array().map(|b| b.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", ")).unwrap_or_default(),
            o["anonymized"].as_str().unwrap_or(""),
            o["slots_erased"]
        )?;
    }
    let g = &s["governance"];
    writeln!(
        out,
        "governance: {} tenant(s), {} policy rule(s) (verdict for a $0.05 step: {}), {} SLA contract(s) with {} breach(es), {} secret(s), {} lineage node(s), {} identities, {} canary experiment(s), {} lock event(s), {} alert(s), {} flag(s)",
        g["tenants"], g["policy_rules"], g["policy_verdict"].as_str().unwrap_or(""),
        g["sla_contracts"], g["sla_breaches"], g["vault_secrets"], g["lineage_nodes"],
        g["identities"], g["canary_experiments"], g["lock_events"], g["alerts"], g["flags"]
    )?;
    writeln!(
        out,
        "explore: meshflow --db {} runs | replay agent-00-run | trace agent-01-run | policy list | sla breaches | lineage list",
        s["dir"].as_str().unwrap_or("")
    )?;
    writeln!(
        out,
        "the demo vault's passphrase (random, this run only): {}",
        g["vault_passphrase"].as_str().unwrap_or("")
    )?;
    Ok(())
}

/// Exports a compliance snapshot of the default tenant beside the data directory, records it
/// in the log, reads it back and verifies it against the log.
fn snapshot_and_verify(ledger: &Ledger, dir: &std::path::Path) -> Result<serde_json::Value> {
    use meshflow_engine::snapshot::{self, At, ReadLimits, Scope, SnapshotExporter};
    let path = PathBuf::from(format!("{}-snapshot.zip", dir.display()));
    let options = snapshot::SnapshotOptions {
        scope: Scope::Tenant("default".to_string()),
        at: At::Now,
        snapshot_id: None,
        created_at: None,
        created_by: "demo".to_string(),
        description: None,
    };
    let bundle = SnapshotExporter::new(ledger).export(&options)?;
    bundle.write_file(&path, true)?;
    let m = &bundle.manifest;
    ledger.append_event(&m.taken_event())?;
    let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let read = snapshot::read_zip(std::io::BufReader::new(file), ReadLimits::default())?;
    let report = snapshot::verify(&read, Some(ledger))?;
    Ok(json!({
        "file": path.display().to_string(),
        "snapshot_id": m.snapshot_id,
        "log_offset": m.log_offset,
        "sections": m.sections.len(),
        "records": bundle.total_records(),
        "manifest_recorded": report.manifest_recorded,
        "problems": report.problems,
        "valid": report.valid() && report.manifest_recorded == Some(true),
    }))
}

/// Appends events to every governance view and returns what the views then hold.
fn populate_governance(ledger: &Ledger, agents: u64) -> Result<serde_json::Value> {
    use meshflow_engine::governance::policy::{Condition, Op};
    use meshflow_engine::governance::vault::{self, KdfParams};
    use meshflow_engine::governance::{
        self as gov, alert, canary, flag, identity, lineage, lock, policy, sla, tenant,
    };
    let now = gov::now_secs();
    let t = "default";
    let fail = |e: String| anyhow::anyhow!(e);
    ledger.append_event(
        &tenant::events::create(
            "default",
            "Demo Corp",
            "default",
            "pro",
            Default::default(),
            now,
        )
        .map_err(fail)?,
    )?;
    let over_budget = Condition {
        field: "cost_usd".to_string(),
        op: Op::Gt,
        value: json!(0.01),
    };
    for (name, action, priority, conditions) in [
        ("deny-over-budget", "deny", 10, vec![over_budget]),
        (
            "log-tool-calls",
            "log",
            20,
            vec![Condition {
                field: "node_kind".to_string(),
                op: Op::Eq,
                value: json!("tool"),
            }],
        ),
        ("allow-all", "allow", 0, vec![]),
    ] {
        ledger.append_event(
            &policy::events::add(
                &gov::new_id(),
                name,
                action,
                &conditions,
                priority,
                "demo",
                "",
                true,
                now,
            )
            .map_err(fail)?,
        )?;
    }
    let context = json!({"cost_usd": 0.05, "node_kind": "tool"});
    let verdict = ledger.with_governance(|g| {
        g.policy(t)
            .evaluate(&context.as_object().cloned().unwrap_or_default(), "")
    })?;
    ledger.append_event(&policy::events::decision(
        &gov::new_id(),
        &verdict,
        "demo-step",
        now,
    ))?;
    ledger.append_event(
        &sla::events::define(
            &gov::new_id(),
            "agent-00",
            50.0,
            100.0,
            150.0,
            0.1,
            3600.0,
            now,
        )
        .map_err(fail)?,
    )?;
    for i in 0..12u32 {
        let latency = if i < 8 { 40.0 } else { 400.0 };
        ledger.append_event(
            &sla::events::record(
                &gov::new_id(),
                "agent-00",
                latency,
                i % 5 != 0,
                now + f64::from(i),
            )
            .map_err(fail)?,
        )?;
    }
    let passphrase = gov::new_id();
    let (params, key) = KdfParams::create(t, passphrase.as_bytes())?;
    ledger.append_event(&vault::events::init(&params, &gov::new_id(), "demo", now))?;
    let sealed = vault::seal_value(&key, t, "openai-api-key", 1, gov::new_id().as_bytes())?;
    ledger.append_event_with_slots(
        &vault::events::put(
            &gov::new_id(),
            "openai-api-key",
            "llm",
            "demo key",
            "demo",
            &gov::new_id(),
            now,
        ),
        vec![sealed],
    )?;
    ledger.append_event(&vault::events::access(
        "read",
        "openai-api-key",
        "demo",
        &gov::new_id(),
        now,
    ))?;
    let (input, slots) = lineage::events::add_node(
        "input",
        "dataset",
        "customer-tickets",
        "",
        "",
        &Default::default(),
        now,
    )
    .map_err(fail)?;
    ledger.append_event_with_slots(&input, slots)?;
    for a in 0..agents {
        let node = format!("agent-{a:02}-run");
        let (e, slots) = lineage::events::add_node(
            &node,
            "run",
            &node,
            &node,
            &format!("agent-{a:02}"),
            &Default::default(),
            now,
        )
        .map_err(fail)?;
        ledger.append_event_with_slots(&e, slots)?;
        let (e, slots) = lineage::events::add_edge(
            &gov::new_id(),
            "input",
            &node,
            "feeds",
            &Default::default(),
            now,
        )
        .map_err(fail)?;
        ledger.append_event_with_slots(&e, slots)?;
        ledger.append_event(
            &identity::events::register(
                &gov::new_id(),
                &format!("agent-{a:02}"),
                &["llm_call".to_string()],
                "meshflow",
                Default::default(),
                now,
            )
            .map_err(fail)?,
        )?;
    }
    ledger.append_event(
        &canary::events::create(
            &gov::new_id(),
            "model-upgrade",
            "agent-00",
            "agent-01",
            0.2,
            5,
            0.9,
            0.6,
            now,
        )
        .map_err(fail)?,
    )?;
    for i in 0..6u32 {
        ledger.append_event(&canary::events::outcome(
            &gov::new_id(),
            "model-upgrade",
            "canary",
            i != 3,
            80.0,
            now,
        ))?;
    }
    ledger.append_event(&lock::events::acquire(
        &gov::new_id(),
        "nightly-report",
        "agent-00",
        30.0,
        now,
    ))?;
    ledger.append_event(&lock::events::release(
        "nightly-report",
        "agent-00",
        Some(1),
        now + 1.0,
    ))?;
    let alert_id = gov::new_id();
    ledger.append_event(
        &alert::events::fire(
            &alert_id,
            "p99-latency",
            "agent-00",
            "latency_ms",
            "gt",
            150.0,
            400.0,
            "",
            now,
        )
        .map_err(fail)?,
    )?;
    ledger.append_event(&alert::events::ack(&alert_id, "on-call", now + 2.0))?;
    ledger.append_event(
        &flag::events::define(
            &gov::new_id(),
            "new-planner",
            "bool",
            json!(false),
            "",
            true,
            50,
            now,
        )
        .map_err(fail)?,
    )?;
    ledger.append_event(
        &flag::events::rule(
            &gov::new_id(),
            "new-planner",
            1,
            "tenant",
            "eq",
            json!("default"),
            json!(true),
            now,
        )
        .map_err(fail)?,
    )?;
    let summary = ledger.with_governance(|g| {
        let v = g.of(t);
        json!({
            "tenants": g.tenants().list("").len(),
            "policy_rules": v.policy.list("", false).len(),
            "policy_verdict": verdict.action.name(),
            "policy_decisions": v.policy.decisions(usize::MAX).len(),
            "sla_contracts": v.sla.contracts().len(),
            "sla_breaches": v.sla.all_breaches().len(),
            "vault_secrets": v.vault.list("").len(),
            "vault_audit": v.vault.all_audit().len(),
            "lineage_nodes": v.lineage.nodes().len(),
            "lineage_edges": v.lineage.edges().len(),
            "identities": v.identity.list(false).len(),
            "canary_experiments": v.canary.list().len(),
            "canary_should_promote": v.canary.get("model-upgrade").is_some_and(|e| e.should_promote()),
            "lock_events": v.lock.history("").len(),
            "alerts": v.alert.list("", "", usize::MAX).len(),
            "flags": v.flag.list().len(),
            "vault_passphrase": passphrase,
        })
    })?;
    Ok(summary)
}

/// A fork with another model, a branch comparison and an anonymization, when there are agents
/// enough (`null` otherwise).
fn operators_tools(ledger: &Ledger, agents: u64) -> Result<serde_json::Value> {
    use meshflow_engine::ledger::fork::ForkOverrides;
    if agents < 4 {
        return Ok(serde_json::Value::Null);
    }
    let model = ForkOverrides {
        model: Some("gpt-4o".to_string()),
        ..Default::default()
    };
    let fork = ledger.fork("agent-01-run", -1, Some("agent-01-run-gpt4o"), &model)?;
    let mut branches = Vec::new();
    for (label, m) in [("small", "gpt-4o-mini"), ("large", "claude-sonnet-4-6")] {
        let o = ForkOverrides {
            label: Some(label.to_string()),
            model: Some(m.to_string()),
            ..Default::default()
        };
        let r = ledger.fork(
            "agent-02-run",
            3,
            Some(&format!("agent-02-run--{label}")),
            &o,
        )?;
        branches.push(r.run_id);
    }
    let erased = ledger.anonymize_run("agent-03-run", false, "demo", "data subject request")?;
    Ok(json!({
        "forked": fork.parent_run_id, "fork": fork.run_id, "fork_steps": fork.steps_copied,
        "fork_model": "gpt-4o", "branches": branches, "anonymized": "agent-03-run",
        "slots_erased": erased.slots_erased,
    }))
}
