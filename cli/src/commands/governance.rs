//! `meshflow policy …` and `meshflow tenant …`: the governance views. Writes forward to a
//! running `serve` for the log, or take the writer lock here (waiting up to `--wait-lock`);
//! reads open the log read-only and show the view now or `--at-offset N`.

use std::io::Write;

use anyhow::{Context, Result};
use meshflow_engine::governance::policy::{self, Condition, Op};
use meshflow_engine::governance::vault::{self, KdfParams, VaultError, VaultKey};
use meshflow_engine::governance::{self as gov, sla, tenant, Event, GovState};
use meshflow_engine::ledger::Ledger;
use meshflow_engine::log::LogOptions;
use meshflow_engine::service::client::Client;
use serde_json::{json, Map, Value};

use crate::args::{
    AtOffset, Cli, PolicyAddArgs, PolicyCommand, SecretValue, SlaCommand, TenantCommand,
    UsageError, VaultAuth, VaultCommand, WaitLock,
};
use crate::commands::ledger::open_write_waiting;

/// Appends `event` for the command's tenant: through a running `serve`, or here.
pub(crate) fn write_event(cli: &Cli, event: &Event, wait: WaitLock) -> Result<u64> {
    write_event_with_slots(cli, event, Vec::new(), wait)
}

/// [`write_event`] with erasable slots (a vault ciphertext).
pub(crate) fn write_event_with_slots(
    cli: &Cli,
    event: &Event,
    slots: Vec<Vec<u8>>,
    wait: WaitLock,
) -> Result<u64> {
    if let Some(mut client) = Client::discover(&cli.db) {
        return Ok(client.append_event(&cli.tenant, event, &slots)?);
    }
    let ledger = open_write_waiting(cli, wait.secs)?;
    Ok(ledger.append_event_with_slots(event, slots)?)
}

/// The governance views now, or just before `--at-offset N`.
pub(crate) fn read_views(cli: &Cli, at: &AtOffset) -> Result<GovState> {
    let ledger = Ledger::open_read_only(&cli.db, LogOptions::default(), &cli.tenant)?;
    Ok(match (at.offset, &at.time) {
        (Some(offset), _) => ledger.governance_at(offset)?,
        (None, Some(text)) => {
            let ns = crate::time::parse_time(text).ok_or_else(|| {
                usage(format!(
                    "--at-time '{text}': not RFC 3339 UTC (2026-11-25T10:00:00Z) or Unix seconds"
                ))
            })?;
            ledger.governance_at_time(ns)?
        }
        (None, None) => ledger.with_governance(Clone::clone)?,
    })
}

pub(crate) fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

pub(crate) fn print_written(
    cli: &Cli,
    what: &str,
    offset: u64,
    record: Option<Value>,
) -> Result<u8> {
    let mut out = std::io::stdout().lock();
    if cli.json {
        let mut v = json!({"ok": true, "offset": offset});
        if let Some(r) = record {
            v["record"] = r;
        }
        writeln!(out, "{v}")?;
    } else {
        writeln!(out, "{what} (offset {offset})")?;
    }
    Ok(0)
}

/// `FIELD OP [VALUE]`: VALUE as JSON when it parses, as text otherwise.
pub(crate) fn parse_condition(text: &str) -> Result<Condition> {
    let mut parts = text.trim().splitn(3, char::is_whitespace);
    let field = parts.next().unwrap_or("").trim();
    let op = parts.next().unwrap_or("").trim();
    let value = parts.next().map(str::trim).unwrap_or("");
    if field.is_empty() || op.is_empty() {
        return Err(usage(format!(
            "--condition '{text}': expected FIELD OP [VALUE]"
        )));
    }
    let op = Op::parse(op).map_err(|e| usage(format!("--condition '{text}': {e}")))?;
    if value.is_empty() && op != Op::Exists {
        return Err(usage(format!(
            "--condition '{text}': {} needs a value",
            op.name()
        )));
    }
    let value = if value.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()))
    };
    Ok(Condition {
        field: field.to_string(),
        op,
        value,
    })
}

fn policy_add(cli: &Cli, a: &PolicyAddArgs) -> Result<u8> {
    let mut conditions = a
        .conditions
        .iter()
        .map(|c| parse_condition(c))
        .collect::<Result<Vec<_>>>()?;
    if let Some(text) = &a.conditions_json {
        let items: Vec<Value> = serde_json::from_str(text)
            .map_err(|e| usage(format!("--conditions-json: not a JSON array: {e}")))?;
        for item in &items {
            conditions.push(
                Condition::from_json(item).map_err(|e| usage(format!("--conditions-json: {e}")))?,
            );
        }
    }
    let event = policy::events::add(
        &gov::new_id(),
        &a.name,
        &a.action,
        &conditions,
        a.priority,
        &a.framework,
        &a.description,
        !a.disabled,
        gov::now_secs(),
    )
    .map_err(usage)?;
    let offset = write_event(cli, &event, a.wait)?;
    let record = event.to_value();
    print_written(
        cli,
        &format!("added policy rule '{}' ({})", a.name, a.action),
        offset,
        Some(record),
    )
}

fn rule_line(r: &policy::Rule) -> String {
    let conditions: Vec<String> = r
        .conditions
        .iter()
        .map(|c| format!("{} {} {}", c.field, c.op.name(), c.value))
        .collect();
    format!(
        "{:<24} {:<6} prio {:>4} {:<8} {:<10} {}  [{}]",
        r.name,
        r.action.name(),
        r.priority,
        if r.enabled { "enabled" } else { "disabled" },
        r.framework,
        r.rule_id,
        conditions.join(" AND ")
    )
}

/// `meshflow policy …`
pub fn policy(cli: &Cli, command: &PolicyCommand) -> Result<u8> {
    let mut out = std::io::stdout().lock();
    match command {
        PolicyCommand::Add(a) => policy_add(cli, a),
        PolicyCommand::Enable { rule, wait } => {
            let offset = write_event(cli, &policy::events::change("enable", rule), *wait)?;
            print_written(cli, &format!("enabled policy rule '{rule}'"), offset, None)
        }
        PolicyCommand::Disable { rule, wait } => {
            let offset = write_event(cli, &policy::events::change("disable", rule), *wait)?;
            print_written(cli, &format!("disabled policy rule '{rule}'"), offset, None)
        }
        PolicyCommand::Delete { rule, wait } => {
            let offset = write_event(cli, &policy::events::change("delete", rule), *wait)?;
            print_written(cli, &format!("deleted policy rule '{rule}'"), offset, None)
        }
        PolicyCommand::Default { action, wait } => {
            let event = policy::events::default_action(action).map_err(usage)?;
            let offset = write_event(cli, &event, *wait)?;
            print_written(cli, &format!("no match now means {action}"), offset, None)
        }
        PolicyCommand::List {
            framework,
            enabled_only,
            at,
        } => {
            let views = read_views(cli, at)?;
            let rules = views.policy(&cli.tenant).list(framework, *enabled_only);
            if cli.json {
                let v: Vec<Value> = rules.iter().map(|r| r.to_json()).collect();
                writeln!(out, "{}", Value::Array(v))?;
            } else if rules.is_empty() {
                writeln!(out, "No policy rules found.")?;
            } else {
                for r in rules {
                    writeln!(out, "{}", rule_line(r))?;
                }
            }
            Ok(0)
        }
        PolicyCommand::Evaluate {
            context,
            framework,
            log,
            context_key,
            at,
            wait,
        } => {
            let context: Map<String, Value> = serde_json::from_str(context)
                .map_err(|e| usage(format!("--context: not a JSON object: {e}")))?;
            if *log && at.offset.is_some() {
                return Err(usage(
                    "--log records a decision now; it cannot go with --at-offset",
                ));
            }
            let views = read_views(cli, at)?;
            let verdict = views.policy(&cli.tenant).evaluate(&context, framework);
            drop(views);
            let mut logged = None;
            if *log {
                let event = policy::events::decision(
                    &gov::new_id(),
                    &verdict,
                    context_key,
                    gov::now_secs(),
                );
                logged = Some(write_event(cli, &event, *wait)?);
            }
            if cli.json {
                let mut v = verdict.to_json();
                if let Some(offset) = logged {
                    v["logged_at_offset"] = json!(offset);
                }
                writeln!(out, "{v}")?;
            } else {
                writeln!(
                    out,
                    "{}: {}",
                    verdict.action.name().to_uppercase(),
                    verdict.reason
                )?;
            }
            Ok(0)
        }
        PolicyCommand::Decisions { limit, at } => {
            let views = read_views(cli, at)?;
            let decisions = views.policy(&cli.tenant).decisions(*limit);
            if cli.json {
                let v: Vec<Value> = decisions.iter().map(|d| d.to_json()).collect();
                writeln!(out, "{}", Value::Array(v))?;
            } else if decisions.is_empty() {
                writeln!(out, "No decisions logged.")?;
            } else {
                for d in decisions {
                    writeln!(
                        out,
                        "{:.6}  {:<6} {:<24} {}  {}",
                        d.ts, d.action, d.rule_name, d.context_key, d.reason
                    )?;
                }
            }
            Ok(0)
        }
    }
}

fn tenant_line(t: &tenant::Tenant) -> String {
    format!(
        "{:<24} {:<20} {:<20} {:<10} {}",
        t.tenant_id, t.slug, t.name, t.plan, t.status
    )
}

/// `meshflow tenant …`
pub fn tenant(cli: &Cli, command: &TenantCommand) -> Result<u8> {
    let mut out = std::io::stdout().lock();
    match command {
        TenantCommand::Create {
            name,
            slug,
            plan,
            id,
            metadata,
            wait,
        } => {
            let metadata: Map<String, Value> = match metadata {
                None => Map::new(),
                Some(text) => serde_json::from_str(text)
                    .map_err(|e| usage(format!("--metadata: not a JSON object: {e}")))?,
            };
            let id = id.clone().unwrap_or_else(|| slug.clone());
            let event = tenant::events::create(&id, name, slug, plan, metadata, gov::now_secs())
                .map_err(usage)?;
            let offset = write_event(cli, &event, *wait)?;
            print_written(
                cli,
                &format!("created tenant '{id}' ({name}, {plan})"),
                offset,
                Some(event.to_value()),
            )
        }
        TenantCommand::Suspend { tenant, wait } => set_status(cli, tenant, "suspended", *wait),
        TenantCommand::Activate { tenant, wait } => set_status(cli, tenant, "active", *wait),
        TenantCommand::Delete {
            tenant,
            purge: false,
            wait,
            ..
        } => set_status(cli, tenant, "deleted", *wait),
        TenantCommand::Delete {
            tenant,
            purge: true,
            by,
            reason,
            wait,
        } => {
            let r = match Client::discover(&cli.db) {
                Some(mut client) => client.purge_tenant(tenant, by, reason)?,
                None => open_write_waiting(cli, wait.secs)?
                    .with_tenant(tenant)?
                    .purge_tenant(by, reason)?,
            };
            let mut out = std::io::stdout().lock();
            if cli.json {
                writeln!(
                    out,
                    "{}",
                    json!({"tenant": tenant, "runs_deleted": r.runs, "slots_erased": r.slots_erased,
                           "offsets": r.offsets})
                )?;
            } else {
                writeln!(
                    out,
                    "purged tenant '{tenant}': {} run(s) deleted, {} slot(s) erased; its governance data erased",
                    r.runs.len(),
                    r.slots_erased
                )?;
            }
            Ok(0)
        }
        TenantCommand::Plan { tenant, plan, wait } => {
            let event = tenant::events::plan(tenant, plan).map_err(usage)?;
            let offset = write_event(cli, &event, *wait)?;
            print_written(
                cli,
                &format!("tenant '{tenant}' is on plan {plan}"),
                offset,
                None,
            )
        }
        TenantCommand::List { status, at } => {
            let views = read_views(cli, at)?;
            let tenants = views.tenants().list(status);
            if cli.json {
                let v: Vec<Value> = tenants.iter().map(|t| t.to_json()).collect();
                writeln!(out, "{}", Value::Array(v))?;
            } else if tenants.is_empty() {
                writeln!(out, "No tenants found.")?;
            } else {
                for t in tenants {
                    writeln!(out, "{}", tenant_line(t))?;
                }
            }
            Ok(0)
        }
        TenantCommand::Get { tenant, at } => {
            let views = read_views(cli, at)?;
            let t = views.tenants().get(tenant).ok_or_else(|| {
                meshflow_engine::ledger::LedgerError::NotFound {
                    what: format!("tenant '{tenant}'"),
                }
            })?;
            if cli.json {
                writeln!(out, "{}", t.to_json())?;
            } else {
                writeln!(out, "{}", tenant_line(t))?;
            }
            Ok(0)
        }
    }
}

fn set_status(cli: &Cli, tenant: &str, status: &str, wait: WaitLock) -> Result<u8> {
    let event = tenant::events::status(tenant, status).map_err(usage)?;
    let offset = write_event(cli, &event, wait)
        .with_context(|| format!("setting tenant '{tenant}' {status}"))?;
    print_written(cli, &format!("tenant '{tenant}' is {status}"), offset, None)
}

/// `meshflow sla …`
pub fn sla(cli: &Cli, command: &SlaCommand) -> Result<u8> {
    let mut out = std::io::stdout().lock();
    match command {
        SlaCommand::Define {
            agent,
            p50,
            p95,
            p99,
            error_rate,
            window,
            wait,
        } => {
            let event = sla::events::define(
                &gov::new_id(),
                agent,
                *p50,
                *p95,
                *p99,
                *error_rate,
                *window,
                gov::now_secs(),
            )
            .map_err(usage)?;
            let offset = write_event(cli, &event, *wait)?;
            print_written(
                cli,
                &format!("SLA for '{agent}': p50 ≤ {p50} ms, p95 ≤ {p95} ms, p99 ≤ {p99} ms, errors ≤ {error_rate}"),
                offset,
                Some(event.to_value()),
            )
        }
        SlaCommand::Record {
            agent,
            latency,
            failed,
            wait,
        } => {
            let obs_id = gov::new_id();
            let event = sla::events::record(&obs_id, agent, *latency, !*failed, gov::now_secs())
                .map_err(usage)?;
            let offset = write_event(cli, &event, *wait)?;
            // The breaches this observation caused, as the view derived them at its offset.
            let views = read_views(
                cli,
                &AtOffset {
                    offset: Some(offset + 1),
                    time: None,
                },
            )?;
            let caused: Vec<Value> = views
                .sla(&cli.tenant)
                .all_breaches()
                .iter()
                .filter(|b| b.breach_id.starts_with(&format!("{obs_id}:")))
                .map(sla::Breach::to_json)
                .collect();
            if cli.json {
                writeln!(
                    out,
                    "{}",
                    json!({"ok": true, "offset": offset, "breaches": caused})
                )?;
            } else {
                writeln!(out, "recorded {latency} ms for '{agent}' (offset {offset})")?;
                for b in &caused {
                    writeln!(
                        out,
                        "BREACH {}: observed {} > threshold {}",
                        b["breach_type"].as_str().unwrap_or(""),
                        b["observed"],
                        b["threshold"]
                    )?;
                }
            }
            Ok(0)
        }
        SlaCommand::Stats { agent, now, at } => {
            let views = read_views(cli, at)?;
            let stats = views
                .sla(&cli.tenant)
                .stats(agent, now.unwrap_or_else(gov::now_secs));
            if cli.json {
                writeln!(out, "{}", stats.to_json())?;
            } else {
                let v = stats.to_json();
                writeln!(
                    out,
                    "{agent}: {} observation(s) in {} s; p50 {} ms, p95 {} ms, p99 {} ms, avg {} ms, error rate {}",
                    v["total"], v["window_s"], v["p50_ms"], v["p95_ms"], v["p99_ms"], v["avg_ms"], v["error_rate"]
                )?;
            }
            Ok(0)
        }
        SlaCommand::Breaches { agent, limit, at } => {
            let views = read_views(cli, at)?;
            let breaches = views.sla(&cli.tenant).breaches(agent, *limit);
            if cli.json {
                let v: Vec<Value> = breaches.iter().map(|b| b.to_json()).collect();
                writeln!(out, "{}", Value::Array(v))?;
            } else if breaches.is_empty() {
                writeln!(out, "No SLA breaches.")?;
            } else {
                for b in breaches {
                    let v = b.to_json();
                    writeln!(
                        out,
                        "{:.6}  {:<20} {:<10} observed {} > {}",
                        b.ts, b.agent_name, b.breach_type, v["observed"], v["threshold"]
                    )?;
                }
            }
            Ok(0)
        }
        SlaCommand::List { at } => {
            let views = read_views(cli, at)?;
            let contracts = views.sla(&cli.tenant).contracts();
            if cli.json {
                let v: Vec<Value> = contracts.iter().map(|c| c.to_json()).collect();
                writeln!(out, "{}", Value::Array(v))?;
            } else if contracts.is_empty() {
                writeln!(out, "No SLA contracts.")?;
            } else {
                for c in contracts {
                    writeln!(
                        out,
                        "{:<24} p50 {} ms, p95 {} ms, p99 {} ms, errors {}, window {} s",
                        c.agent_name, c.p50_ms, c.p95_ms, c.p99_ms, c.error_rate, c.window_s
                    )?;
                }
            }
            Ok(0)
        }
    }
}

fn passphrase(auth: &VaultAuth) -> Result<&[u8]> {
    match auth.vault_passphrase.as_deref() {
        Some(p) if !p.is_empty() => Ok(p.as_bytes()),
        _ => Err(usage(
            "the vault passphrase is required: --vault-passphrase or MESHFLOW_VAULT_PASSPHRASE",
        )),
    }
}

fn secret_value(v: &SecretValue) -> Result<Vec<u8>> {
    match (&v.value, &v.value_file) {
        (Some(text), None) => Ok(text.as_bytes().to_vec()),
        (None, Some(path)) => {
            let mut bytes = if path.as_os_str() == "-" {
                let mut b = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut b)
                    .context("reading the value from stdin")?;
                b
            } else {
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?
            };
            if bytes.last() == Some(&b'\n') {
                bytes.pop();
            }
            Ok(bytes)
        }
        _ => Err(usage("give the value with --value or --value-file")),
    }
}

/// Unlocks the tenant's vault; a wrong passphrase is audited (the only record written) and
/// is an error.
fn unlock(cli: &Cli, auth: &VaultAuth, op: &str, name: &str, wait: WaitLock) -> Result<VaultKey> {
    // A malformed name is bad input (exit 2), refused before the passphrase is even tried.
    if !name.is_empty() {
        meshflow_engine::governance::event::check_name("a secret name", name).map_err(usage)?;
    }
    let pass = passphrase(auth)?;
    let views = read_views(cli, &AtOffset::default())?;
    let kdf = views.vault(&cli.tenant).kdf().cloned().ok_or_else(|| {
        usage(format!(
            "tenant '{}' has no vault: meshflow vault init",
            cli.tenant
        ))
    })?;
    drop(views);
    match kdf.unlock(&cli.tenant, pass) {
        Ok(key) => Ok(key),
        Err(VaultError::WrongPassphrase) => {
            let denied = vault::events::access(
                &format!("{op}_denied"),
                name,
                &auth.by,
                &gov::new_id(),
                gov::now_secs(),
            );
            write_event(cli, &denied, wait)?;
            Err(VaultError::WrongPassphrase.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// `meshflow vault …`
pub fn vault(cli: &Cli, command: &VaultCommand) -> Result<u8> {
    let mut out = std::io::stdout().lock();
    let t = cli.tenant.as_str();
    match command {
        VaultCommand::Init { auth, wait } => {
            let pass = passphrase(auth)?;
            let (params, _key) = KdfParams::create(t, pass)?;
            let event = vault::events::init(&params, &gov::new_id(), &auth.by, gov::now_secs());
            let offset = write_event(cli, &event, *wait)?;
            print_written(
                cli,
                &format!(
                    "vault of '{t}' initialised (Argon2id m={} KiB t={} p={}, XChaCha20-Poly1305)",
                    params.m_kib, params.t, params.p
                ),
                offset,
                None,
            )
        }
        VaultCommand::Put {
            name,
            value,
            category,
            description,
            auth,
            wait,
        } => {
            let plaintext = secret_value(value)?;
            let key = unlock(cli, auth, "write", name, *wait)?;
            let sealed = vault::seal_value(&key, t, name, 1, &plaintext)?;
            let event = vault::events::put(
                &gov::new_id(),
                name,
                category,
                description,
                &auth.by,
                &gov::new_id(),
                gov::now_secs(),
            );
            let offset = write_event_with_slots(cli, &event, vec![sealed], *wait)?;
            print_written(cli, &format!("stored secret '{name}'"), offset, None)
        }
        VaultCommand::Rotate {
            name,
            value,
            auth,
            wait,
        } => {
            let plaintext = secret_value(value)?;
            let key = unlock(cli, auth, "rotate", name, *wait)?;
            let views = read_views(cli, &AtOffset::default())?;
            let current = views
                .vault(t)
                .secret(name)
                .map(|s| s.version)
                .ok_or_else(|| meshflow_engine::ledger::LedgerError::NotFound {
                    what: format!("secret '{name}'"),
                })?;
            drop(views);
            let sealed = vault::seal_value(&key, t, name, current + 1, &plaintext)?;
            let event =
                vault::events::rotate(name, current + 1, &auth.by, &gov::new_id(), gov::now_secs());
            let offset = write_event_with_slots(cli, &event, vec![sealed], *wait)?;
            print_written(
                cli,
                &format!("rotated secret '{name}' to version {}", current + 1),
                offset,
                None,
            )
        }
        VaultCommand::Delete { name, auth, wait } => {
            unlock(cli, auth, "delete", name, *wait)?;
            let event = vault::events::delete(name, &auth.by, &gov::new_id(), gov::now_secs());
            let offset = write_event(cli, &event, *wait)?;
            print_written(
                cli,
                &format!("deleted secret '{name}' (its ciphertexts are erased)"),
                offset,
                None,
            )
        }
        VaultCommand::Get { name, auth, wait } => {
            let key = unlock(cli, auth, "read", name, *wait)?;
            let ledger = Ledger::open_read_only(&cli.db, LogOptions::default(), t)?;
            let secret = ledger
                .with_governance(|g| g.vault(t).secret(name).cloned())?
                .ok_or_else(|| meshflow_engine::ledger::LedgerError::NotFound {
                    what: format!("secret '{name}'"),
                })?;
            let sealed = ledger.read_event_slot(secret.offset, 0)?.ok_or_else(|| {
                meshflow_engine::ledger::LedgerError::NotFound {
                    what: format!("the ciphertext of secret '{name}' (erased)"),
                }
            })?;
            drop(ledger);
            let value = vault::open_value(&key, t, name, secret.version, &sealed)?;
            // The read is audited before the value is shown.
            let event =
                vault::events::access("read", name, &auth.by, &gov::new_id(), gov::now_secs());
            write_event(cli, &event, *wait)?;
            if cli.json {
                let text = String::from_utf8_lossy(&value);
                writeln!(
                    out,
                    "{}",
                    json!({"name": name, "version": secret.version, "value": text})
                )?;
            } else {
                out.write_all(&value)?;
                writeln!(out)?;
            }
            Ok(0)
        }
        VaultCommand::List { category, at } => {
            let views = read_views(cli, at)?;
            let secrets = views.vault(t).list(category);
            if cli.json {
                let v: Vec<Value> = secrets.iter().map(|s| s.to_json()).collect();
                writeln!(out, "{}", Value::Array(v))?;
            } else if secrets.is_empty() {
                writeln!(out, "No secrets.")?;
            } else {
                for s in secrets {
                    writeln!(
                        out,
                        "{:<24} {:<12} v{:<3} {}  {}",
                        s.name, s.category, s.version, s.secret_id, s.description
                    )?;
                }
            }
            Ok(0)
        }
        VaultCommand::Audit { name, limit, at } => {
            let views = read_views(cli, at)?;
            let entries = views.vault(t).audit(name.as_deref().unwrap_or(""), *limit);
            if cli.json {
                let v: Vec<Value> = entries.iter().map(|a| a.to_json()).collect();
                writeln!(out, "{}", Value::Array(v))?;
            } else if entries.is_empty() {
                writeln!(out, "No vault audit entries.")?;
            } else {
                for a in entries {
                    writeln!(
                        out,
                        "{:.6}  {:<14} {:<24} by {}",
                        a.ts, a.operation, a.secret_name, a.accessed_by
                    )?;
                }
            }
            Ok(0)
        }
    }
}
