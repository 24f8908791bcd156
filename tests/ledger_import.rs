//! Import of a reference MeshFlow SQLite ledger (SPEC §5.6): per-run and batched (1.15) legacy
//! chains recognised, a broken one reported (and imported), gzip+base64 outputs decoded,
//! tenants kept, legacy hashes kept as provenance, every imported chain valid, and a second
//! import writing nothing.

use std::io::Write;

use base64::Engine;
use meshflow_engine::ledger::legacy_v1::{entry_hash, LegacyFields};
use meshflow_engine::ledger::Ledger;
use meshflow_engine::log::LogOptions;

const SCHEMA: &str = "CREATE TABLE step_records (
    id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, step_id TEXT NOT NULL UNIQUE,
    node_id TEXT, node_kind TEXT NOT NULL, input_task TEXT, output_content TEXT,
    output_compressed INTEGER NOT NULL DEFAULT 0, verdict TEXT,
    blocked INTEGER NOT NULL DEFAULT 0, block_reason TEXT DEFAULT '', uncertainty REAL DEFAULT 0,
    cost_usd REAL DEFAULT 0, carbon_gco2 REAL DEFAULT 0, duration_ms REAL DEFAULT 0,
    tokens_used INTEGER DEFAULT 0, timestamp TEXT, prev_hash TEXT DEFAULT '',
    entry_hash TEXT DEFAULT '', tenant_id TEXT NOT NULL DEFAULT 'default',
    metadata TEXT DEFAULT '{}')";

struct Step<'a> {
    run: &'a str,
    step: String,
    output: String,
    tenant: &'a str,
}

fn hash(s: &Step<'_>, prev: &str) -> String {
    entry_hash(&LegacyFields {
        run_id: s.run,
        step_id: &s.step,
        node_id: "node",
        input_task: "task",
        output_content: &s.output,
        verdict: "commit",
        blocked: false,
        timestamp: "2026-05-21T00:00:00+00:00",
        prev_hash: prev,
    })
}

fn insert(conn: &rusqlite::Connection, s: &Step<'_>, prev: &str, entry: &str) {
    let (stored, compressed) = if s.output.len() > 10_000 {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        gz.write_all(s.output.as_bytes()).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(gz.finish().unwrap());
        (b64, 1)
    } else {
        (s.output.clone(), 0)
    };
    conn.execute(
        "INSERT INTO step_records (run_id, step_id, node_id, node_kind, input_task,
         output_content, output_compressed, verdict, blocked, cost_usd, tokens_used, timestamp,
         prev_hash, entry_hash, tenant_id, metadata)
         VALUES (?1, ?2, 'node', 'llm', 'task', ?3, ?4, 'commit', 0, 0.01, 5,
                 '2026-05-21T00:00:00+00:00', ?5, ?6, ?7, '{\"k\":1}')",
        rusqlite::params![s.run, s.step, stored, compressed, prev, entry, s.tenant],
    )
    .unwrap();
}

/// A: per-run chain (default); B and C: batched, interleaved (acme); D: broken (default).
fn fixture(path: &std::path::Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute(SCHEMA, []).unwrap();
    let mut prev = String::new();
    for n in 0..3 {
        let output = if n == 1 {
            "x".repeat(12_000)
        } else {
            format!("output {n}")
        };
        let s = Step {
            run: "A",
            step: format!("A-s{n}"),
            output,
            tenant: "default",
        };
        let h = hash(&s, &prev);
        insert(&conn, &s, &prev, &h);
        prev = h;
    }
    // Batched: each row's prev is the previous row of the whole table.
    for n in 0..4 {
        let run = if n % 2 == 0 { "B" } else { "C" };
        let s = Step {
            run,
            step: format!("{run}-s{n}"),
            output: format!("o{n}"),
            tenant: "acme",
        };
        let h = hash(&s, &prev);
        insert(&conn, &s, &prev, &h);
        prev = h;
    }
    let s = Step {
        run: "D",
        step: "D-s0".into(),
        output: "tampered".into(),
        tenant: "default",
    };
    insert(&conn, &s, "", &"0".repeat(64));
}

#[test]
fn a_reference_ledger_imports_with_its_chains_checked_and_provenance_kept() {
    // Proves SPEC §5.6 on a fixture written with the reference's schema and hash.
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dir.path().join("meshflow.db");
    fixture(&sqlite);
    let db = dir.path().join("db");
    let ledger = Ledger::open(&db, LogOptions::default(), "default")
        .unwrap()
        .0;
    let report = ledger.import_meshflow_sqlite(&sqlite).unwrap();
    let chains: Vec<(&str, &str, u64, &str)> = report
        .runs
        .iter()
        .map(|r| {
            (
                r.tenant.as_str(),
                r.run_id.as_str(),
                r.steps,
                r.legacy_chain.as_str(),
            )
        })
        .collect();
    assert_eq!(chains[0], ("default", "A", 3, "per-run"));
    assert_eq!(chains[1], ("acme", "B", 2, "batched"));
    assert_eq!(chains[2], ("acme", "C", 2, "batched"));
    assert_eq!(
        (chains[3].1, chains[3].3.starts_with("broken")),
        ("D", true)
    );
    assert_eq!(report.rows, 8);
    let a = ledger.get_run("A").unwrap();
    assert_eq!(a[1].text(1), "x".repeat(12_000), "gzip+base64 decoded");
    let meta: serde_json::Value = serde_json::from_str(a[0].text(3)).unwrap();
    assert_eq!(meta["k"], 1);
    assert_eq!(meta["_legacy"]["chain"], "per-run");
    assert_eq!(meta["_legacy"]["prev_hash"], "");
    let acme = ledger.with_tenant("acme").unwrap();
    assert_eq!(acme.list_runs().unwrap().len(), 2, "tenants kept");
    assert!(ledger.get_run("B").is_err(), "B is acme's");
    let (_, chains) = ledger.verify_all().unwrap();
    assert!(chains.iter().all(|c| c.valid));
    let size = ledger
        .log()
        .unwrap()
        .reader()
        .snapshot()
        .unwrap()
        .head
        .next_offset;
    ledger.import_meshflow_sqlite(&sqlite).unwrap();
    let again = ledger
        .log()
        .unwrap()
        .reader()
        .snapshot()
        .unwrap()
        .head
        .next_offset;
    assert_eq!(size, again, "a second import writes nothing");
    let not_a_ledger = dir.path().join("other.db");
    rusqlite::Connection::open(&not_a_ledger)
        .unwrap()
        .execute("CREATE TABLE t (x)", [])
        .unwrap();
    let err = ledger
        .import_meshflow_sqlite(&not_a_ledger)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a MeshFlow ledger"), "{err}");
}
