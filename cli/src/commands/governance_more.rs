//! `meshflow identity | canary | lock | alert | flag …`: the smaller governance views, with
//! the same conventions as `policy` (writes forward to `serve` or take the lock; reads show
//! the view now or `--at-offset N`; `--json` prints the reference's record shapes).

use std::io::Write;

use anyhow::Result;
use meshflow_engine::governance::{self as gov, alert, canary, flag, identity, lineage, lock};
use meshflow_engine::ledger::LedgerError;
use serde_json::{json, Map, Value};

use super::governance::{
    parse_condition, print_written, read_views, usage, write_event, write_event_with_slots,
};
use crate::args::{
    AlertCommand, CanaryCommand, Cli, FlagCommand, IdentityCommand, LineageCommand, LockCommand,
};

fn not_found(what: String) -> anyhow::Error {
    LedgerError::NotFound { what }.into()
}

fn print_list(
    cli: &Cli,
    items: Vec<Value>,
    empty: &str,
    line: impl Fn(&Value) -> String,
) -> Result<u8> {
    let mut out = std::io::stdout().lock();
    if cli.json {
        writeln!(out, "{}", Value::Array(items))?;
    } else if items.is_empty() {
        writeln!(out, "{empty}")?;
    } else {
        for item in &items {
            writeln!(out, "{}", line(item))?;
        }
    }
    Ok(0)
}

fn object(text: &Option<String>, what: &str) -> Result<Map<String, Value>> {
    match text {
        None => Ok(Map::new()),
        Some(t) => {
            serde_json::from_str(t).map_err(|e| usage(format!("{what}: not a JSON object: {e}")))
        }
    }
}

/// `meshflow identity …`
pub fn identity(cli: &Cli, command: &IdentityCommand) -> Result<u8> {
    match command {
        IdentityCommand::Register {
            name,
            capabilities,
            issuer,
            metadata,
            wait,
        } => {
            let event = identity::events::register(
                &gov::new_id(),
                name,
                capabilities,
                issuer,
                object(metadata, "--metadata")?,
                gov::now_secs(),
            )
            .map_err(usage)?;
            let offset = write_event(cli, &event, *wait)?;
            print_written(
                cli,
                &format!("registered identity '{name}'"),
                offset,
                Some(event.to_value()),
            )
        }
        IdentityCommand::Revoke { agent, wait } => {
            let offset = write_event(
                cli,
                &identity::events::revoke(agent, gov::now_secs()),
                *wait,
            )?;
            print_written(cli, &format!("revoked identity '{agent}'"), offset, None)
        }
        IdentityCommand::List { active_only, at } => {
            let views = read_views(cli, at)?;
            let items = views
                .of(&cli.tenant)
                .identity
                .list(*active_only)
                .iter()
                .map(|i| i.to_json())
                .collect();
            print_list(cli, items, "No identities.", |i| {
                format!(
                    "{:<24} {}  {}  [{}]",
                    i["name"].as_str().unwrap_or(""),
                    i["agent_id"].as_str().unwrap_or(""),
                    if i["revoked"] == true {
                        "revoked"
                    } else {
                        "active"
                    },
                    i["capabilities"]
                        .as_array()
                        .map(|c| c
                            .iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(", "))
                        .unwrap_or_default()
                )
            })
        }
    }
}

fn experiment_line(e: &Value) -> String {
    format!(
        "{:<20} {:<10} stable {} ({} ok of {}), canary {} ({} ok of {}), split {}",
        e["name"].as_str().unwrap_or(""),
        e["status"].as_str().unwrap_or(""),
        e["stable_agent"].as_str().unwrap_or(""),
        e["stable"]["successes"],
        e["stable"]["total"],
        e["canary_agent"].as_str().unwrap_or(""),
        e["canary"]["successes"],
        e["canary"]["total"],
        e["split"]
    )
}

/// `meshflow canary …`
pub fn canary(cli: &Cli, command: &CanaryCommand) -> Result<u8> {
    let mut out = std::io::stdout().lock();
    let t = cli.tenant.as_str();
    match command {
        CanaryCommand::Create {
            name,
            stable,
            canary,
            split,
            min_requests,
            promote_threshold,
            rollback_threshold,
            wait,
        } => {
            let event = canary::events::create(
                &gov::new_id(),
                name,
                stable,
                canary,
                *split,
                *min_requests,
                *promote_threshold,
                *rollback_threshold,
                gov::now_secs(),
            )
            .map_err(usage)?;
            let offset = write_event(cli, &event, *wait)?;
            print_written(
                cli,
                &format!("created experiment '{name}'"),
                offset,
                Some(event.to_value()),
            )
        }
        CanaryCommand::Outcome {
            experiment,
            cohort,
            failed,
            latency,
            wait,
        } => {
            let event = canary::events::outcome(
                &gov::new_id(),
                experiment,
                cohort,
                !*failed,
                *latency,
                gov::now_secs(),
            );
            let offset = write_event(cli, &event, *wait)?;
            print_written(
                cli,
                &format!("recorded a {cohort} outcome of '{experiment}'"),
                offset,
                None,
            )
        }
        CanaryCommand::Status { experiment, at } => {
            let views = read_views(cli, at)?;
            let e = views
                .of(t)
                .canary
                .get(experiment)
                .ok_or_else(|| not_found(format!("experiment '{experiment}'")))?;
            let mut v = e.to_json();
            v["should_promote"] = json!(e.should_promote());
            v["should_rollback"] = json!(e.should_rollback());
            if cli.json {
                writeln!(out, "{v}")?;
            } else {
                writeln!(out, "{}", experiment_line(&v))?;
                writeln!(
                    out,
                    "promote check: {}; rollback check: {}",
                    e.should_promote(),
                    e.should_rollback()
                )?;
            }
            Ok(0)
        }
        CanaryCommand::Promote {
            experiment,
            force,
            wait,
        }
        | CanaryCommand::Rollback {
            experiment,
            force,
            wait,
        } => {
            let promote = matches!(command, CanaryCommand::Promote { .. });
            let views = read_views(cli, &crate::args::AtOffset::default())?;
            let e = views
                .of(t)
                .canary
                .get(experiment)
                .ok_or_else(|| not_found(format!("experiment '{experiment}'")))?;
            let passes = if promote {
                e.should_promote()
            } else {
                e.should_rollback()
            };
            if !passes && !force {
                return Err(LedgerError::Conflict {
                    reason: format!(
                        "the {} check does not pass for '{experiment}' (status {}, canary outcomes {}); --force overrides",
                        if promote { "promote" } else { "rollback" },
                        e.status,
                        e.cohorts.get("canary").map_or(0, |c| c.0)
                    ),
                }
                .into());
            }
            drop(views);
            let status = if promote { "promoted" } else { "rolled_back" };
            let offset = write_event(
                cli,
                &canary::events::status(experiment, status, gov::now_secs()),
                *wait,
            )?;
            print_written(
                cli,
                &format!("experiment '{experiment}' {status}"),
                offset,
                None,
            )
        }
        CanaryCommand::SetStatus {
            experiment,
            status,
            wait,
        } => {
            let offset = write_event(
                cli,
                &canary::events::status(experiment, status, gov::now_secs()),
                *wait,
            )?;
            print_written(
                cli,
                &format!("experiment '{experiment}' is {status}"),
                offset,
                None,
            )
        }
        CanaryCommand::Route {
            experiment,
            entity,
            at,
        } => {
            let views = read_views(cli, at)?;
            let e = views
                .of(t)
                .canary
                .get(experiment)
                .ok_or_else(|| not_found(format!("experiment '{experiment}'")))?;
            let cohort = e.route(entity);
            let agent = if cohort == "canary" {
                &e.canary_agent
            } else {
                &e.stable_agent
            };
            if cli.json {
                writeln!(
                    out,
                    "{}",
                    json!({"experiment": e.name, "entity": entity, "cohort": cohort, "agent": agent})
                )?;
            } else {
                writeln!(out, "{cohort}: {agent}")?;
            }
            Ok(0)
        }
        CanaryCommand::List { at } => {
            let views = read_views(cli, at)?;
            let items = views
                .of(t)
                .canary
                .list()
                .iter()
                .map(|e| e.to_json())
                .collect();
            print_list(cli, items, "No experiments.", experiment_line)
        }
    }
}

/// `meshflow lock …`
pub fn lock(cli: &Cli, command: &LockCommand) -> Result<u8> {
    let t = cli.tenant.as_str();
    match command {
        LockCommand::Acquire {
            resource,
            owner,
            ttl,
            wait,
        } => {
            let offset = write_event(
                cli,
                &lock::events::acquire(&gov::new_id(), resource, owner, *ttl, gov::now_secs()),
                *wait,
            )?;
            let views = read_views(
                cli,
                &crate::args::AtOffset {
                    offset: Some(offset + 1),
                    time: None,
                },
            )?;
            let token = views
                .of(t)
                .lock
                .history(resource)
                .last()
                .map_or(0, |h| h.fencing_token);
            let mut out = std::io::stdout().lock();
            if cli.json {
                writeln!(
                    out,
                    "{}",
                    json!({"ok": true, "offset": offset, "resource_id": resource, "owner": owner, "fencing_token": token})
                )?;
            } else {
                writeln!(out, "'{resource}' acquired by '{owner}' for {ttl} s, fencing token {token} (offset {offset})")?;
            }
            Ok(0)
        }
        LockCommand::Release {
            resource,
            owner,
            token,
            wait,
        } => {
            let offset = write_event(
                cli,
                &lock::events::release(resource, owner, *token, gov::now_secs()),
                *wait,
            )?;
            print_written(
                cli,
                &format!("'{resource}' released by '{owner}'"),
                offset,
                None,
            )
        }
        LockCommand::Extend {
            resource,
            owner,
            add,
            token,
            wait,
        } => {
            let offset = write_event(
                cli,
                &lock::events::extend(resource, owner, *add, *token, gov::now_secs()),
                *wait,
            )?;
            print_written(
                cli,
                &format!("'{resource}' extended by {add} s"),
                offset,
                None,
            )
        }
        LockCommand::List { all, at } => {
            let views = read_views(cli, at)?;
            let now = gov::now_secs();
            let items = views
                .of(t)
                .lock
                .list(!*all, now)
                .iter()
                .map(|l| l.to_json(now))
                .collect();
            print_list(cli, items, "No locks held.", |l| {
                format!(
                    "{:<24} {:<16} token {}  {:.1} s left",
                    l["resource_id"].as_str().unwrap_or(""),
                    l["owner"].as_str().unwrap_or(""),
                    l["fencing_token"],
                    l["remaining_s"].as_f64().unwrap_or(0.0)
                )
            })
        }
        LockCommand::History { resource, at } => {
            let views = read_views(cli, at)?;
            let items = views
                .of(t)
                .lock
                .history(resource.as_deref().unwrap_or(""))
                .iter()
                .map(|h| h.to_json())
                .collect();
            print_list(cli, items, "No lock history.", |h| {
                format!(
                    "{:.6}  {:<8} {:<24} {:<16} token {}",
                    h["ts"].as_f64().unwrap_or(0.0),
                    h["action"].as_str().unwrap_or(""),
                    h["resource_id"].as_str().unwrap_or(""),
                    h["owner"].as_str().unwrap_or(""),
                    h["fencing_token"]
                )
            })
        }
    }
}

/// `meshflow alert …`
pub fn alert(cli: &Cli, command: &AlertCommand) -> Result<u8> {
    match command {
        AlertCommand::Fire {
            agent,
            metric,
            operator,
            threshold,
            value,
            rule,
            message,
            wait,
        } => {
            let id = gov::new_id();
            let event = alert::events::fire(
                &id,
                rule,
                agent,
                metric,
                operator,
                *threshold,
                *value,
                message,
                gov::now_secs(),
            )
            .map_err(usage)?;
            let offset = write_event(cli, &event, *wait)?;
            print_written(
                cli,
                &format!(
                    "alert {id} firing: {}",
                    event
                        .body
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                ),
                offset,
                Some(event.to_value()),
            )
        }
        AlertCommand::Resolve { alert_id, wait } => {
            let offset = write_event(
                cli,
                &alert::events::resolve(alert_id, gov::now_secs()),
                *wait,
            )?;
            print_written(cli, &format!("alert {alert_id} resolved"), offset, None)
        }
        AlertCommand::Ack { alert_id, by, wait } => {
            let offset = write_event(
                cli,
                &alert::events::ack(alert_id, by, gov::now_secs()),
                *wait,
            )?;
            print_written(
                cli,
                &format!("alert {alert_id} acknowledged by {by}"),
                offset,
                None,
            )
        }
        AlertCommand::List {
            status,
            agent,
            limit,
            at,
        } => {
            let views = read_views(cli, at)?;
            let items = views
                .of(&cli.tenant)
                .alert
                .list(status, agent, *limit)
                .iter()
                .map(|a| a.to_json())
                .collect();
            print_list(cli, items, "No alerts.", |a| {
                format!(
                    "{}  {:<9} {}",
                    a["alert_id"].as_str().unwrap_or(""),
                    a["status"].as_str().unwrap_or(""),
                    a["message"].as_str().unwrap_or("")
                )
            })
        }
    }
}

fn json_value(text: &str, what: &str) -> Result<Value> {
    serde_json::from_str(text)
        .map_err(|e| usage(format!("{what}: not JSON: {e} (a string is \"quoted\")")))
}

/// `meshflow flag …`
pub fn flag(cli: &Cli, command: &FlagCommand) -> Result<u8> {
    let t = cli.tenant.as_str();
    match command {
        FlagCommand::Define {
            name,
            flag_type,
            default,
            rollout,
            description,
            disabled,
            wait,
        } => {
            let event = flag::events::define(
                &gov::new_id(),
                name,
                flag_type,
                json_value(default, "--default")?,
                description,
                !disabled,
                *rollout,
                gov::now_secs(),
            )
            .map_err(usage)?;
            let offset = write_event(cli, &event, *wait)?;
            print_written(
                cli,
                &format!("defined flag '{name}'"),
                offset,
                Some(event.to_value()),
            )
        }
        FlagCommand::Rule {
            flag: name,
            when,
            return_value,
            priority,
            wait,
        } => {
            let c = parse_condition(when)?;
            let event = flag::events::rule(
                &gov::new_id(),
                name,
                *priority,
                &c.field,
                c.op.name(),
                c.value,
                json_value(return_value, "--return")?,
                gov::now_secs(),
            )
            .map_err(usage)?;
            let offset = write_event(cli, &event, *wait)?;
            print_written(cli, &format!("added a rule to flag '{name}'"), offset, None)
        }
        FlagCommand::Evaluate {
            flag: name,
            context,
            at,
        } => {
            let context: Map<String, Value> = serde_json::from_str(context)
                .map_err(|e| usage(format!("--context: not a JSON object: {e}")))?;
            let views = read_views(cli, at)?;
            let f = views
                .of(t)
                .flag
                .get(name)
                .ok_or_else(|| not_found(format!("flag '{name}'")))?;
            let (value, reason) = f.evaluate(&context);
            let mut out = std::io::stdout().lock();
            if cli.json {
                writeln!(
                    out,
                    "{}",
                    json!({"flag": f.name, "value": value, "reason": reason})
                )?;
            } else {
                writeln!(out, "{value} ({reason})")?;
            }
            Ok(0)
        }
        FlagCommand::List { at } => {
            let views = read_views(cli, at)?;
            let items = views
                .of(t)
                .flag
                .list()
                .iter()
                .map(|f| f.to_json())
                .collect();
            print_list(cli, items, "No flags.", |f| {
                format!(
                    "{:<24} {:<7} default {}  rollout {}%  {} rule(s){}",
                    f["name"].as_str().unwrap_or(""),
                    f["flag_type"].as_str().unwrap_or(""),
                    f["default_value"],
                    f["rollout_pct"],
                    f["rules"].as_array().map_or(0, Vec::len),
                    if f["enabled"] == true {
                        ""
                    } else {
                        ", disabled"
                    }
                )
            })
        }
    }
}

fn node_line(n: &Value) -> String {
    format!(
        "{:<38} {:<10} {}",
        n["node_id"].as_str().unwrap_or(""),
        n["kind"].as_str().unwrap_or(""),
        n["name"].as_str().unwrap_or("")
    )
}

/// `meshflow lineage …`
pub fn lineage(cli: &Cli, command: &LineageCommand) -> Result<u8> {
    let t = cli.tenant.as_str();
    let nodes_out = |nodes: Vec<&lineage::Node>| {
        let items = nodes.iter().map(|n| n.to_json()).collect();
        print_list(cli, items, "No nodes.", node_line)
    };
    match command {
        LineageCommand::AddNode {
            name,
            kind,
            id,
            run_id,
            agent,
            metadata,
            wait,
        } => {
            let id = id.clone().unwrap_or_else(gov::new_id);
            let (event, slots) = lineage::events::add_node(
                &id,
                kind,
                name,
                run_id,
                agent,
                &object(metadata, "--metadata")?,
                gov::now_secs(),
            )
            .map_err(usage)?;
            let offset = write_event_with_slots(cli, &event, slots, *wait)?;
            print_written(
                cli,
                &format!("added node {id} ({kind} '{name}')"),
                offset,
                Some(json!({"node_id": id})),
            )
        }
        LineageCommand::AddEdge {
            source,
            target,
            relation,
            metadata,
            wait,
        } => {
            let id = gov::new_id();
            let (event, slots) = lineage::events::add_edge(
                &id,
                source,
                target,
                relation,
                &object(metadata, "--metadata")?,
                gov::now_secs(),
            )
            .map_err(usage)?;
            let offset = write_event_with_slots(cli, &event, slots, *wait)?;
            print_written(
                cli,
                &format!("added edge {source} -[{relation}]-> {target}"),
                offset,
                Some(json!({"edge_id": id})),
            )
        }
        LineageCommand::Upstream { node, at } => {
            let views = read_views(cli, at)?;
            let g = &views.of(t).lineage;
            g.node(node)
                .ok_or_else(|| not_found(format!("node '{node}'")))?;
            nodes_out(g.upstream(node))
        }
        LineageCommand::Downstream { node, at } | LineageCommand::Impact { node, at } => {
            let views = read_views(cli, at)?;
            let g = &views.of(t).lineage;
            g.node(node)
                .ok_or_else(|| not_found(format!("node '{node}'")))?;
            nodes_out(g.downstream(node))
        }
        LineageCommand::Subgraph { node, at } => {
            let views = read_views(cli, at)?;
            let g = &views.of(t).lineage;
            g.node(node)
                .ok_or_else(|| not_found(format!("node '{node}'")))?;
            let (nodes, edges) = g.subgraph(node);
            graph_out(cli, &nodes, &edges)
        }
        LineageCommand::List { at } => {
            let views = read_views(cli, at)?;
            let g = &views.of(t).lineage;
            graph_out(cli, &g.nodes(), &g.edges())
        }
        LineageCommand::DeleteSubject { name, wait } => {
            let views = read_views(cli, &crate::args::AtOffset::default())?;
            let ids: Vec<String> = views
                .of(t)
                .lineage
                .named(name)
                .iter()
                .map(|n| n.node_id.clone())
                .collect();
            drop(views);
            if ids.is_empty() {
                return Err(not_found(format!("lineage subject '{name}'")));
            }
            let (event, slots) = lineage::events::delete_subject(name, &ids, gov::now_secs());
            let offset = write_event_with_slots(cli, &event, slots, *wait)?;
            print_written(
                cli,
                &format!(
                    "deleted {} node(s) of the subject and erased their names and metadata",
                    ids.len()
                ),
                offset,
                Some(json!({"nodes_deleted": ids.len()})),
            )
        }
    }
}

fn graph_out(cli: &Cli, nodes: &[&lineage::Node], edges: &[&lineage::Edge]) -> Result<u8> {
    let mut out = std::io::stdout().lock();
    if cli.json {
        let v = json!({
            "nodes": nodes.iter().map(|n| n.to_json()).collect::<Vec<_>>(),
            "edges": edges.iter().map(|e| e.to_json()).collect::<Vec<_>>(),
        });
        writeln!(out, "{v}")?;
    } else {
        for n in nodes {
            writeln!(out, "{}", node_line(&n.to_json()))?;
        }
        for e in edges {
            writeln!(out, "{} -[{}]-> {}", e.source_id, e.relation, e.target_id)?;
        }
    }
    Ok(0)
}
