//! `meshflow log stats | verify | tail | checkpoint | keygen`.

use std::io::Write;
use std::time::Duration;

use anyhow::Result;
use meshflow_engine::format::hex;
use meshflow_engine::log::{LogOptions, LogReader, OwnedSlot, Record};
use serde_json::json;

use crate::args::{CheckpointArgs, Cli, KeygenArgs, TailArgs, UsageError};
use crate::time::rfc3339_ns;

fn open(cli: &Cli) -> Result<LogReader> {
    Ok(LogReader::open(&cli.db, LogOptions::default())?)
}

/// `meshflow log stats`
pub fn stats(cli: &Cli) -> Result<u8> {
    let stats = open(cli)?.stats()?;
    let head = &stats.head;
    let bytes: u64 = stats.segments.iter().map(|(_, b)| *b).sum();
    let last_ts = (head.next_offset > 0).then_some(head.last_timestamp_ns);
    let value = json!({
        "db": cli.db.display().to_string(),
        "records": head.next_offset,
        "segments": stats.segments.len(),
        "bytes": bytes,
        "head_hash": hex(&head.head_hash),
        "active_segment_base": head.active_base,
        "durable_bytes_active_segment": head.durable_len,
        "head_generation": head.generation,
        "closed_cleanly": head.is_clean(),
        "erasure_pending": head.erase_pending_from != u64::MAX,
        "first_timestamp": stats.first_timestamp_ns.map(rfc3339_ns),
        "last_timestamp": last_ts.map(rfc3339_ns),
    });
    let mut out = std::io::stdout().lock();
    if cli.json {
        writeln!(out, "{value}")?;
        return Ok(0);
    }
    writeln!(out, "log:       {}", cli.db.display())?;
    writeln!(out, "records:   {}", head.next_offset)?;
    writeln!(out, "segments:  {} ({} bytes)", stats.segments.len(), bytes)?;
    writeln!(out, "head hash: {}", hex(&head.head_hash))?;
    writeln!(
        out,
        "closed:    {}",
        if head.is_clean() {
            "cleanly"
        } else {
            "not cleanly (writer running or crashed)"
        }
    )?;
    if let (Some(first), Some(last)) = (stats.first_timestamp_ns, last_ts) {
        writeln!(
            out,
            "time span: {} .. {}",
            rfc3339_ns(first),
            rfc3339_ns(last)
        )?;
    }
    Ok(0)
}

/// `meshflow log verify`
pub fn verify(cli: &Cli) -> Result<u8> {
    let report = open(cli)?.verify()?;
    let mut out = std::io::stdout().lock();
    if cli.json {
        let value = json!({
            "valid": true,
            "records": report.record_count,
            "segments": report.segment_count,
            "bytes": report.frame_bytes,
            "slots_live": report.slots_live,
            "slots_erased": report.slots_erased,
            "erasure_records": report.erasure_records,
            "head_hash": report.head_hash,
            "next_offset": report.next_offset,
        });
        writeln!(out, "{value}")?;
    } else {
        writeln!(
            out,
            "LOG VALID: {} records in {} segments; {} live slots, {} erased slots ({} erasure records)",
            report.record_count, report.segment_count, report.slots_live, report.slots_erased, report.erasure_records
        )?;
        writeln!(
            out,
            "head hash: {} (compare it with a checkpoint you trust)",
            report.head_hash
        )?;
    }
    Ok(0)
}

fn record_json(record: &Record) -> serde_json::Value {
    let view = record.view();
    let slots: Vec<serde_json::Value> = (0..view.slot_count())
        .map(|i| match record.slot(i) {
            Ok(OwnedSlot::Live(c)) => json!({"bytes": c.len(), "erased": false}),
            Ok(OwnedSlot::Erased(n)) => json!({"bytes": n, "erased": true}),
            Err(e) => json!({"bytes": view.slot_len(i), "error": e.to_string()}),
        })
        .collect();
    let payload = std::str::from_utf8(view.payload()).ok();
    json!({
        "offset": view.offset(),
        "timestamp": rfc3339_ns(view.timestamp_ns()),
        "kind": format!("{:#06x}", view.kind()),
        "tenant": record.tenant(),
        "hash": hex(&view.hash()),
        "prev_hash": hex(&view.prev_hash()),
        "payload_bytes": view.payload().len(),
        "payload": payload,
        "slots": slots,
    })
}

fn print_record(out: &mut impl Write, record: &Record, json: bool) -> Result<()> {
    if json {
        writeln!(out, "{}", record_json(record))?;
        return Ok(());
    }
    let view = record.view();
    let slots: Vec<String> = (0..view.slot_count())
        .map(|i| match record.slot(i) {
            Ok(OwnedSlot::Live(c)) => format!("{}B", c.len()),
            Ok(OwnedSlot::Erased(n)) => format!("{n}B erased"),
            Err(_) => "damaged".to_string(),
        })
        .collect();
    writeln!(
        out,
        "{:>10}  {}  kind={:#06x}  tenant={}  payload={}B  slots=[{}]  hash={}",
        view.offset(),
        rfc3339_ns(view.timestamp_ns()),
        view.kind(),
        record.tenant(),
        view.payload().len(),
        slots.join(", "),
        &hex(&view.hash())[..16]
    )?;
    Ok(())
}

/// `meshflow log tail`
pub fn tail(cli: &Cli, args: &TailArgs) -> Result<u8> {
    let reader = open(cli)?;
    let end = reader.snapshot()?.head.next_offset;
    let from = args.from.unwrap_or(end.saturating_sub(10));
    let limit = args.limit.unwrap_or(u64::MAX);
    let mut follower = reader.follow(from);
    let mut out = std::io::stdout().lock();
    let mut printed = 0u64;
    while printed < limit {
        let next = if args.follow {
            follower.next_timeout(Duration::from_millis(500))?
        } else {
            follower.poll()?
        };
        match next {
            Some(record) => {
                print_record(&mut out, &record, cli.json)?;
                printed += 1;
            }
            None if args.follow => out.flush()?,
            None => break,
        }
    }
    out.flush()?;
    Ok(0)
}

/// True when `path` lies inside `dir` (both resolved; a path that does not exist yet is
/// resolved through its parent).
fn is_inside(path: &std::path::Path, dir: &std::path::Path) -> bool {
    let resolve = |p: &std::path::Path| {
        p.canonicalize().ok().or_else(|| {
            let parent = p.parent().filter(|x| !x.as_os_str().is_empty())?;
            Some(parent.canonicalize().ok()?.join(p.file_name()?))
        })
    };
    match (resolve(path), dir.canonicalize().ok()) {
        (Some(p), Some(d)) => p.starts_with(d),
        _ => false,
    }
}

/// `meshflow log checkpoint [--key F]`
pub fn checkpoint(cli: &Cli, args: &CheckpointArgs) -> Result<u8> {
    let reader = open(cli)?;
    let key = match &args.key {
        None => None,
        Some(path) => {
            if is_inside(path, &cli.db) {
                return Err(UsageError(format!(
                    "the signing key {} is inside the log directory; keep it elsewhere",
                    path.display()
                ))
                .into());
            }
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("reading the key {}: {e}", path.display()))?;
            Some(
                meshflow_engine::format::note::parse_signer(&text)
                    .map_err(|e| UsageError(format!("{}: {e}", path.display())))?,
            )
        }
    };
    let (text, path) =
        meshflow_engine::ledger::anchor::write_current(&cli.db, &reader, key.as_ref())?;
    let mut out = std::io::stdout().lock();
    if cli.json {
        let value =
            json!({"note": text, "file": path.display().to_string(), "signed": key.is_some()});
        writeln!(out, "{value}")?;
    } else {
        write!(out, "{text}")?;
        eprintln!("written to {}", path.display());
    }
    Ok(0)
}

/// `meshflow log keygen --name N --out F`
pub fn keygen(cli: &Cli, args: &KeygenArgs) -> Result<u8> {
    if is_inside(&args.out, &cli.db) {
        return Err(UsageError(format!(
            "{} is inside the log directory; keep signing keys elsewhere",
            args.out.display()
        ))
        .into());
    }
    let (signer, verifier) = meshflow_engine::ledger::anchor::generate_key(&args.name)?;
    let public = std::path::PathBuf::from(format!("{}.pub", args.out.display()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&args.out)
        .map_err(|e| anyhow::anyhow!("creating {} (never overwritten): {e}", args.out.display()))?;
    writeln!(file, "{signer}")?;
    file.sync_all()?;
    crate::output::write_new_file(&public, format!("{verifier}\n").as_bytes())?;
    let mut out = std::io::stdout().lock();
    if cli.json {
        let value = json!({"signer_key_file": args.out.display().to_string(),
                           "verifier_key_file": public.display().to_string(),
                           "verifier_key": verifier});
        writeln!(out, "{value}")?;
    } else {
        writeln!(out, "{verifier}")?;
        eprintln!(
            "signer key in {} (keep it secret, outside the log); verifier key in {}",
            args.out.display(),
            public.display()
        );
    }
    Ok(0)
}
