//! Compliance snapshots (SPEC §7, reference cases A34–A39, W11): every section present in the
//! seed's order, nothing truncated, vault values never in the ZIP, byte-identical exports when
//! pinned, tampering caught (alone, and against the log), past offsets, safe file writing and
//! bounded reading.

use std::io::{Cursor, Read};

use meshflow_engine::governance::{alert, flag, lineage, lock, policy, sla, tenant, vault, Event};
use meshflow_engine::ledger::{Ledger, LedgerError};
use meshflow_engine::log::{Durability, Log, LogOptions, RecordInput};
use meshflow_engine::snapshot::{
    read_zip, verify, At, ReadLimits, Scope, SnapshotBundle, SnapshotExporter, SnapshotOptions,
    SECTIONS,
};
use serde_json::{json, Map, Value};

fn open(dir: &std::path::Path) -> Ledger {
    Ledger::open(dir, LogOptions::default(), "acme").unwrap().0
}

fn options(at: At) -> SnapshotOptions {
    SnapshotOptions {
        scope: Scope::Tenant("acme".to_string()),
        at,
        snapshot_id: Some("snap-1".to_string()),
        created_at: Some(1_790_000_000.5),
        created_by: "auditor@example.com".to_string(),
        description: None,
    }
}

fn export(ledger: &Ledger, at: At) -> SnapshotBundle {
    SnapshotExporter::new(ledger).export(&options(at)).unwrap()
}

/// Every entry of a ZIP, decompressed, in order.
fn entries(zip: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = zip::ZipArchive::new(Cursor::new(zip)).unwrap();
    (0..archive.len())
        .map(|i| {
            let mut f = archive.by_index(i).unwrap();
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes).unwrap();
            (f.name().to_string(), bytes)
        })
        .collect()
}

/// A ZIP with the same entries, `edit` applied to the named one.
fn rewrite(zip: &[u8], name: &str, edit: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (n, mut bytes) in entries(zip) {
        if n == name {
            edit(&mut bytes);
        }
        out.start_file(n, zip::write::SimpleFileOptions::default())
            .unwrap();
        std::io::Write::write_all(&mut out, &bytes).unwrap();
    }
    out.finish().unwrap().into_inner()
}

fn section(bundle: &SnapshotBundle, name: &str) -> Vec<Value> {
    serde_json::from_slice(&bundle.section(name).unwrap()).unwrap()
}

fn add_basics(ledger: &Ledger) {
    let now = 1_789_000_000.0;
    let events: Vec<Event> = vec![
        policy::events::add("r1", "no-pii", "deny", &[], 10, "gdpr", "", true, now).unwrap(),
        sla::events::define("c1", "planner", 100.0, 200.0, 300.0, 0.05, 60.0, now).unwrap(),
        flag::events::define("f1", "beta", "bool", json!(false), "", true, 100, now).unwrap(),
        // Held until long after created_at: remaining_s is computed at created_at.
        lock::events::acquire("l1", "db-migration", "agent-7", 2_000_000.0, now),
    ];
    for e in &events {
        ledger.append_event(e).unwrap();
    }
    let t = tenant::events::create("acme", "Acme", "acme", "pro", Map::new(), now).unwrap();
    ledger.append_event(&t).unwrap();
    for (id, name) in [("n1", "dataset-a"), ("n2", "model-b")] {
        let (e, slots) =
            lineage::events::add_node(id, "dataset", name, "", "", &Map::new(), now).unwrap();
        ledger.append_event_with_slots(&e, slots).unwrap();
    }
    let (e, slots) =
        lineage::events::add_edge("e1", "n1", "n2", "feeds", &Map::new(), now).unwrap();
    ledger.append_event_with_slots(&e, slots).unwrap();
}

#[test]
fn a34_an_empty_log_gives_every_section_present_and_empty() {
    // Proves A34 (with SPEC §11): no events still gives all 13 sections, empty arrays, in the
    // seed's order after the manifest, with the reference's default description.
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let mut o = options(At::Now);
    o.snapshot_id = None;
    o.created_at = None;
    let bundle = SnapshotExporter::new(&ledger).export(&o).unwrap();
    assert_eq!(bundle.total_records(), 0);
    assert_eq!(bundle.manifest.log_offset, 0);
    assert_eq!(bundle.manifest.global_hash_at, "");
    let id = &bundle.manifest.snapshot_id;
    assert_eq!(
        bundle.manifest.description,
        format!("Compliance snapshot {}", &id[..8])
    );
    let zip = bundle.to_zip_bytes().unwrap();
    let names: Vec<String> = entries(&zip).into_iter().map(|(n, _)| n).collect();
    let mut expected = vec!["manifest.json".to_string()];
    expected.extend(SECTIONS.iter().map(|s| format!("{s}.json")));
    assert_eq!(names, expected);
    for (name, bytes) in entries(&zip).into_iter().skip(1) {
        assert_eq!(bytes, b"[]\n", "{name}");
    }
}

#[test]
fn a35_vault_values_never_appear_in_the_zip() {
    // Proves A35: the secret's metadata (the reference's 7 keys) is there, its value and its
    // ciphertext are in no decompressed entry.
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let (params, key) = vault::KdfParams::create("acme", b"pw").unwrap();
    ledger
        .append_event(&vault::events::init(&params, "a0", "ops", 1.0))
        .unwrap();
    let sealed = vault::seal_value(&key, "acme", "db", 1, b"super_secret_value").unwrap();
    let put = vault::events::put("s1", "db", "database", "prod db", "ops", "a1", 2.0);
    ledger
        .append_event_with_slots(&put, vec![sealed.clone()])
        .unwrap();
    let bundle = export(&ledger, At::Now);
    let meta = section(&bundle, "vault_secrets_metadata");
    assert_eq!(meta.len(), 1);
    let keys: Vec<&str> = meta[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "secret_id",
            "name",
            "category",
            "description",
            "created_by",
            "created_at",
            "rotated_at"
        ]
    );
    assert_eq!(section(&bundle, "vault_audit").len(), 2);
    let zip = bundle.to_zip_bytes().unwrap();
    for (name, bytes) in entries(&zip) {
        for needle in [&b"super_secret_value"[..], &sealed[..16]] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{name} holds the secret"
            );
        }
    }
}

#[test]
fn a37_a38_each_view_lands_in_its_section_with_the_reference_shape() {
    // Proves A37 and A38: one policy rule, SLA contract, tenant and flag give one record each;
    // lineage gives 2 nodes and 1 edge (the reference always gave 0); the one-tenant snapshot
    // holds its own tenant record; an all-tenant one adds a `tenant` key to view records.
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    add_basics(&ledger);
    let bundle = export(&ledger, At::Now);
    let counts: Vec<(String, u64)> = bundle
        .manifest
        .record_counts
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(
        counts,
        [
            ("lineage_nodes".to_string(), 2),
            ("lineage_edges".to_string(), 1),
            ("locks".to_string(), 1),
            ("feature_flags".to_string(), 1),
            ("policy_rules".to_string(), 1),
            ("sla_contracts".to_string(), 1),
            ("tenants".to_string(), 1),
        ]
    );
    assert_eq!(section(&bundle, "lineage_nodes")[0]["name"], "dataset-a");
    assert_eq!(section(&bundle, "policy_rules")[0]["name"], "no-pii");
    assert_eq!(section(&bundle, "tenants")[0]["slug"], "acme");
    let lock = &section(&bundle, "locks")[0];
    assert_eq!(
        lock["remaining_s"],
        json!(1_789_000_000.0 + 2_000_000.0 - 1_790_000_000.5)
    );
    let mut all = options(At::Now);
    all.scope = Scope::All;
    let all = SnapshotExporter::new(&ledger).export(&all).unwrap();
    assert_eq!(section(&all, "policy_rules")[0]["tenant"], "acme");
    let mut other = options(At::Now);
    other.scope = Scope::Tenant("globex".to_string());
    let other = SnapshotExporter::new(&ledger).export(&other).unwrap();
    assert_eq!(
        other.total_records(),
        0,
        "another tenant sees nothing of acme"
    );
}

#[test]
fn a39_twelve_thousand_alerts_are_all_exported() {
    // Proves A39 / W11: no section is cut at 10,000 records.
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    for i in 0..12_000u32 {
        let e = alert::events::fire(
            &format!("a{i:05}"),
            "latency",
            "planner",
            "p95",
            "gt",
            100.0,
            150.0,
            "",
            f64::from(i),
        )
        .unwrap();
        ledger.append_event(&e).unwrap();
    }
    let bundle = export(&ledger, At::Now);
    let alerts = section(&bundle, "alerts");
    assert_eq!(alerts.len(), 12_000);
    assert_eq!(alerts[0]["alert_id"], "a11999", "fired_at descending");
    let file = read_zip(
        Cursor::new(bundle.to_zip_bytes().unwrap()),
        ReadLimits::default(),
    )
    .unwrap();
    assert!(verify(&file, Some(&ledger)).unwrap().valid());
}

#[test]
fn pinned_exports_at_one_offset_are_byte_identical() {
    // Proves determinism: with the id and created_at pinned, two exports at the same offset,
    // one taken after more events were appended, give the same ZIP bytes.
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    add_basics(&ledger);
    let end = ledger.reader().snapshot().unwrap().head.next_offset;
    let first = export(&ledger, At::Now).to_zip_bytes().unwrap();
    let e = policy::events::add("r2", "later", "allow", &[], 1, "", "", true, 5.0).unwrap();
    ledger.append_event(&e).unwrap();
    let again = export(&ledger, At::Offset(end)).to_zip_bytes().unwrap();
    assert!(first == again, "the same offset gives the same bytes");
    let now = export(&ledger, At::Now).to_zip_bytes().unwrap();
    assert!(first != now);
}

#[test]
fn a_past_snapshot_differs_from_the_current_one_by_the_events_between() {
    // Proves point-in-time: after one more rule and one alert, only policy_rules and alerts
    // differ, each by exactly the new record.
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    add_basics(&ledger);
    let past = export(&ledger, At::Now);
    let rule = policy::events::add("r2", "later", "allow", &[], 1, "", "", true, 5.0).unwrap();
    ledger.append_event(&rule).unwrap();
    let fire = alert::events::fire("al", "x", "planner", "p95", "gt", 1.0, 2.0, "", 6.0).unwrap();
    ledger.append_event(&fire).unwrap();
    let now = export(&ledger, At::Now);
    for name in SECTIONS {
        let (a, b) = (section(&past, name), section(&now, name));
        match name {
            "policy_rules" | "alerts" => {
                assert_eq!(b.len(), a.len() + 1, "{name}");
                let added: Vec<&Value> = b.iter().filter(|r| !a.contains(r)).collect();
                assert_eq!(added.len(), 1, "{name}");
            }
            _ => assert_eq!(a, b, "{name}"),
        }
    }
}

#[test]
fn tampering_is_caught_alone_and_against_the_log() {
    // Proves verification: an edited section fails its SHA-256; an edited manifest field
    // passes alone but fails against the log once the export was recorded there; a section
    // and its hash edited together pass alone and fail against the log; the genuine file
    // passes both ways.
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    add_basics(&ledger);
    let bundle = export(&ledger, At::Now);
    let zip = bundle.to_zip_bytes().unwrap();
    let digest = |b: &[u8]| {
        use sha2::Digest;
        sha2::Sha256::digest(b)
            .iter()
            .map(|x| format!("{x:02x}"))
            .collect::<String>()
    };
    let m = &bundle.manifest;
    let taken = m.taken_event();
    ledger.append_event(&taken).unwrap();
    let check = |zip: &[u8], with_log: bool| {
        let file = read_zip(Cursor::new(zip), ReadLimits::default()).unwrap();
        verify(&file, with_log.then_some(&ledger)).unwrap()
    };
    let ok = check(&zip, true);
    assert!(ok.valid(), "{:?}", ok.problems);
    assert_eq!(ok.manifest_recorded, Some(true));

    let edited = rewrite(&zip, "policy_rules.json", |b| {
        let text = String::from_utf8(b.clone())
            .unwrap()
            .replace("no-pii", "no-pi!");
        *b = text.into_bytes();
    });
    let r = check(&edited, false);
    assert!(
        r.problems
            .iter()
            .any(|p| p.contains("section 'policy_rules'")),
        "{:?}",
        r.problems
    );

    let relabelled = rewrite(&zip, "manifest.json", |b| {
        let text = String::from_utf8(b.clone())
            .unwrap()
            .replace("auditor@example.com", "someone-else@example.com");
        *b = text.into_bytes();
    });
    assert!(
        check(&relabelled, false).valid(),
        "free text is unanchored alone"
    );
    let r = check(&relabelled, true);
    assert!(
        r.problems
            .iter()
            .any(|p| p.contains("manifest.json differs")),
        "{:?}",
        r.problems
    );

    let forged_section = b"[]\n".to_vec();
    let forged_hash = digest(&forged_section);
    let consistent = rewrite(
        &rewrite(&zip, "policy_rules.json", |b| *b = forged_section.clone()),
        "manifest.json",
        |b| {
            let mut m: Value = serde_json::from_slice(b).unwrap();
            m["section_sha256"]["policy_rules"] = json!(forged_hash);
            m["record_counts"]["policy_rules"] = json!(0);
            *b = serde_json::to_vec_pretty(&m).unwrap();
        },
    );
    assert!(
        check(&consistent, false).valid(),
        "a consistent rewrite passes alone"
    );
    let r = check(&consistent, true);
    assert!(
        r.problems
            .iter()
            .any(|p| p.contains("section 'policy_rules' differs from the log")),
        "{:?}",
        r.problems
    );
    assert!(r
        .problems
        .iter()
        .any(|p| p.contains("manifest.json differs")));

    let moved = rewrite(&zip, "manifest.json", |b| {
        let mut m: Value = serde_json::from_slice(b).unwrap();
        m["log_offset"] = json!(1);
        *b = serde_json::to_vec_pretty(&m).unwrap();
    });
    let r = check(&moved, true);
    assert!(
        r.problems.iter().any(|p| p.contains("global_hash_at")),
        "{:?}",
        r.problems
    );
}

#[test]
fn files_are_written_once_unless_forced_and_leave_nothing_partial() {
    // Proves the safe write: an existing file is a conflict (and untouched) without force,
    // replaced with it; no temporary file stays behind.
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("s.zip");
    std::fs::write(&path, b"keep").unwrap();
    let bundle = export(&ledger, At::Now);
    assert!(matches!(
        bundle.write_file(&path, false),
        Err(LedgerError::Conflict { .. })
    ));
    assert_eq!(std::fs::read(&path).unwrap(), b"keep");
    bundle.write_file(&path, true).unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bundle.to_zip_bytes().unwrap()
    );
    let names: Vec<_> = std::fs::read_dir(out.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "no temporary file left");
}

#[test]
fn hostile_zips_are_refused_within_limits() {
    // Proves bounded reading: a section decompressing past the limit (a bomb), garbage, an
    // empty ZIP, a ZIP whose first entry is not the manifest, and an entry name with a path
    // are each one clear error.
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let zip = export(&ledger, At::Now).to_zip_bytes().unwrap();
    let bomb = rewrite(&zip, "alerts.json", |b| *b = vec![b' '; 8 << 20]);
    assert!(bomb.len() < 100_000, "8 MiB of spaces compresses well");
    let small = ReadLimits {
        max_entries: 64,
        max_entry_bytes: 1 << 20,
        max_total_bytes: 4 << 20,
    };
    let e = read_zip(Cursor::new(&bomb), small).unwrap_err().to_string();
    assert!(e.contains("past the limit"), "{e}");
    let e = read_zip(Cursor::new(b"not a zip".to_vec()), small)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a ZIP"), "{e}");
    let empty = zip::ZipWriter::new(Cursor::new(Vec::new()))
        .finish()
        .unwrap()
        .into_inner();
    assert!(read_zip(Cursor::new(empty), small).is_err());
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    w.start_file("../evil.json", zip::write::SimpleFileOptions::default())
        .unwrap();
    let evil = w.finish().unwrap().into_inner();
    let e = read_zip(Cursor::new(evil), small).unwrap_err().to_string();
    assert!(e.contains("not a plain file name"), "{e}");
    let mut truncated = zip.clone();
    truncated.truncate(zip.len() / 2);
    assert!(read_zip(Cursor::new(truncated), small).is_err());
}

#[test]
fn a36_a_view_that_cannot_be_built_fails_the_export_naming_it() {
    // Proves A36 (with SPEC §11): a policy record the view cannot apply (written past the
    // ledger, straight into the log) makes the export fail with an error that names the
    // policy view and the record's offset; nothing is written.
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    {
        let (log, _) = Log::open(dir.path(), LogOptions::default()).unwrap();
        let kind = meshflow_engine::governance::Family::Policy.kind();
        let mut payload = vec![1u8];
        payload.extend_from_slice(br#"{"op":"enable","rule":"no-such-rule"}"#);
        log.append(RecordInput::new(kind, "acme", payload), Durability::Sync)
            .unwrap();
        log.close().unwrap();
    }
    let e = Ledger::open_read_only(dir.path(), LogOptions::default(), "acme")
        .and_then(|l| {
            SnapshotExporter::new(&l)
                .export(&options(At::Now))
                .map(|_| ())
        })
        .unwrap_err()
        .to_string();
    assert!(e.contains("policy") && e.contains("offset 0"), "{e}");
}
