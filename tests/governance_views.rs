//! The governance views as projections of the log: policy and tenant events persist across
//! reopen (the reference loses them: W1), names are checked on the sequencer (a refusal writes
//! nothing), a view can be materialised at a past offset, and for random event sequences the
//! state rebuilt from offset 0, the state reached incrementally and the state loaded from a
//! checkpoint plus tail are equal.

use meshflow_engine::governance::policy::{self, Condition, Op};
use meshflow_engine::governance::{
    alert, canary, flag, identity, lineage, lock, sla, tenant, Event, GovState,
};
use meshflow_engine::ledger::{Ledger, LedgerError};
use meshflow_engine::log::LogOptions;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn open(dir: &std::path::Path) -> Ledger {
    Ledger::open(dir, LogOptions::default(), "acme").unwrap().0
}

fn rule(name: &str, action: &str, priority: i64, conditions: &[Condition]) -> Event {
    policy::events::add(
        &format!("id-{name}"),
        name,
        action,
        conditions,
        priority,
        "custom",
        "",
        true,
        1_700_000_000.0,
    )
    .unwrap()
}

fn ctx(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[test]
fn policy_and_tenant_events_persist_and_names_are_checked_on_the_sequencer() {
    // Proves W1 is fixed (a reopened log has every rule and tenant), that a reused name is a
    // conflict that uses no offset, and that tenants' policies are partitioned.
    let dir = tempfile::tempdir().unwrap();
    {
        let ledger = open(dir.path());
        let gt = Condition {
            field: "amount".into(),
            op: Op::Gt,
            value: json!(100),
        };
        ledger
            .append_event(&rule("deny-big", "deny", 10, &[gt]))
            .unwrap();
        ledger
            .append_event(&rule("allow-all", "allow", 0, &[]))
            .unwrap();
        let before = ledger
            .log()
            .unwrap()
            .reader()
            .snapshot()
            .unwrap()
            .head
            .next_offset;
        let again = ledger.append_event(&rule("deny-big", "allow", 1, &[]));
        assert!(
            matches!(again, Err(LedgerError::Conflict { .. })),
            "{again:?}"
        );
        let after = ledger
            .log()
            .unwrap()
            .reader()
            .snapshot()
            .unwrap()
            .head
            .next_offset;
        assert_eq!(before, after, "a refused event uses no offset");
        let created =
            tenant::events::create("acme", "Acme Corp", "acme", "pro", Map::new(), 1.0).unwrap();
        ledger.append_event(&created).unwrap();
        let dup =
            tenant::events::create("acme-2", "Other", "acme", "free", Map::new(), 2.0).unwrap();
        assert!(matches!(
            ledger.append_event(&dup),
            Err(LedgerError::Conflict { .. })
        ));
    }
    let reader = Ledger::open_read_only(dir.path(), LogOptions::default(), "acme").unwrap();
    reader
        .verify_all()
        .expect("the log with governance events verifies");
    reader
        .with_governance(|g| {
            let p = g.policy("acme");
            assert_eq!(p.list("", false).len(), 2);
            let v = p.evaluate(&ctx(json!({"amount": 150})), "");
            assert_eq!(v.rule_name, "deny-big");
            assert_eq!(
                g.policy("other").list("", false).len(),
                0,
                "partitioned by tenant"
            );
            assert_eq!(g.tenants().get("acme").unwrap().plan, "pro");
        })
        .unwrap();
}

#[test]
fn a_view_materialises_at_a_past_offset() {
    // Proves "the policy rules as of offset N": the state before an event lacks it.
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let first = ledger.append_event(&rule("a", "allow", 0, &[])).unwrap();
    let second = ledger.append_event(&rule("b", "deny", 0, &[])).unwrap();
    ledger
        .append_event(&policy::events::change("disable", "a"))
        .unwrap();
    let names = |g: &GovState| -> Vec<(String, bool)> {
        let mut v: Vec<_> = g
            .policy("acme")
            .list("", false)
            .iter()
            .map(|r| (r.name.clone(), r.enabled))
            .collect();
        v.sort();
        v
    };
    assert!(names(&ledger.governance_at(first).unwrap()).is_empty());
    assert_eq!(
        names(&ledger.governance_at(second).unwrap()),
        vec![("a".to_string(), true)]
    );
    assert_eq!(
        names(&ledger.governance_at(second + 1).unwrap()),
        vec![("a".to_string(), true), ("b".to_string(), true)]
    );
    let now = ledger.with_governance(names).unwrap();
    assert_eq!(now, vec![("a".to_string(), false), ("b".to_string(), true)]);
    assert!(ledger.governance_at(10_000).is_err());
}

#[derive(Debug, Clone)]
enum Op_ {
    Add(u8, bool, i8),
    Enable(u8),
    Disable(u8),
    Delete(u8),
    Default(bool),
    Tenant(u8),
    Suspend(u8),
    SlaDefine(u8, u8),
    SlaRecord(u8, u16, bool),
    Identity(u8, bool),
    Lock(u8, u8, u8),
    Alert(u8, u8),
    Flag(u8, bool),
    Canary(u8, bool),
    Node(u8),
    Edge(u8, u8),
    DeleteSubject(u8),
    Checkpoint,
}

fn op_strategy() -> impl Strategy<Value = Op_> {
    prop_oneof![
        (0u8..6, any::<bool>(), -3i8..3).prop_map(|(n, d, p)| Op_::Add(n, d, p)),
        (0u8..6).prop_map(Op_::Enable),
        (0u8..6).prop_map(Op_::Disable),
        (0u8..6).prop_map(Op_::Delete),
        any::<bool>().prop_map(Op_::Default),
        (0u8..4).prop_map(Op_::Tenant),
        (0u8..4).prop_map(Op_::Suspend),
        (0u8..3, 1u8..50).prop_map(|(a, s)| Op_::SlaDefine(a, s)),
        (0u8..3, 0u16..2000, any::<bool>()).prop_map(|(a, l, ok)| Op_::SlaRecord(a, l, ok)),
        (0u8..3, 0u16..2000, any::<bool>()).prop_map(|(a, l, ok)| Op_::SlaRecord(a, l, ok)),
        (0u8..3, any::<bool>()).prop_map(|(n, r)| Op_::Identity(n, r)),
        (0u8..2, 0u8..2, 0u8..3).prop_map(|(r, o, a)| Op_::Lock(r, o, a)),
        (0u8..4, 0u8..3).prop_map(|(n, a)| Op_::Alert(n, a)),
        (0u8..3, any::<bool>()).prop_map(|(n, r)| Op_::Flag(n, r)),
        (0u8..2, any::<bool>()).prop_map(|(n, o)| Op_::Canary(n, o)),
        (0u8..4).prop_map(Op_::Node),
        (0u8..4, 0u8..4).prop_map(|(a, b)| Op_::Edge(a, b)),
        (0u8..4).prop_map(Op_::DeleteSubject),
        Just(Op_::Checkpoint),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 32,
        failure_persistence: None,
        .. ProptestConfig::default()
    })]

    #[test]
    fn rebuilt_incremental_and_checkpointed_states_are_equal(ops in prop::collection::vec(op_strategy(), 1..40)) {
        // Proves determinism: whatever the event sequence (refused events included), the
        // writer's incremental state, a reader loading the checkpoint plus the tail and a
        // reader rebuilding from offset 0 (checkpoints deleted) hold the same views.
        let dir = tempfile::tempdir().unwrap();
        let ledger = open(dir.path());
        for (i, op) in ops.iter().enumerate() {
            let event = match op {
                Op_::Add(n, deny, prio) => {
                    let e = policy::events::add(
                        &format!("id-{i}"), &format!("rule-{n}"),
                        if *deny { "deny" } else { "allow" }, &[], i64::from(*prio),
                        "custom", "", true, i as f64,
                    ).unwrap();
                    Some(e)
                }
                Op_::Enable(n) => Some(policy::events::change("enable", &format!("rule-{n}"))),
                Op_::Disable(n) => Some(policy::events::change("disable", &format!("rule-{n}"))),
                Op_::Delete(n) => Some(policy::events::change("delete", &format!("rule-{n}"))),
                Op_::Default(deny) => Some(policy::events::default_action(if *deny { "deny" } else { "allow" }).unwrap()),
                Op_::Tenant(n) => Some(tenant::events::create(
                    &format!("t{i}"), &format!("T{n}"), &format!("t-{n}"), "free", Map::new(), i as f64,
                ).unwrap()),
                Op_::Suspend(n) => Some(tenant::events::status(&format!("t-{n}"), "suspended").unwrap()),
                Op_::SlaDefine(a, scale) => {
                    let x = f64::from(*scale);
                    Some(sla::events::define(&format!("c{i}"), &format!("agent-{a}"), x, 2.0 * x, 3.0 * x, 0.2, 3600.0, i as f64).unwrap())
                }
                Op_::SlaRecord(a, latency, ok) => Some(sla::events::record(
                    &format!("o{i}"), &format!("agent-{a}"), f64::from(*latency), *ok, i as f64,
                ).unwrap()),
                Op_::Identity(n, revoke) => Some(if *revoke {
                    identity::events::revoke(&format!("bot-{n}"), i as f64)
                } else {
                    identity::events::register(&format!("id{i}"), &format!("bot-{n}"), &[], "meshflow", Map::new(), i as f64).unwrap()
                }),
                Op_::Lock(r, o, action) => {
                    let (res, owner) = (format!("res-{r}"), format!("owner-{o}"));
                    Some(match action {
                        0 => lock::events::acquire(&format!("l{i}"), &res, &owner, 3.0, i as f64),
                        1 => lock::events::release(&res, &owner, None, i as f64),
                        _ => lock::events::extend(&res, &owner, 2.0, None, i as f64),
                    })
                }
                Op_::Alert(n, action) => Some(match action {
                    0 => alert::events::fire(&format!("a{n}"), "r", "bot", "m", "gt", 1.0, 2.0, "", i as f64).unwrap(),
                    1 => alert::events::resolve(&format!("a{n}"), i as f64),
                    _ => alert::events::ack(&format!("a{n}"), "ops", i as f64),
                }),
                Op_::Flag(n, rule) => Some(if *rule {
                    flag::events::rule(&format!("r{i}"), &format!("flag-{n}"), i as i64 % 3, "k", "eq", json!("v"), json!(true), i as f64).unwrap()
                } else {
                    flag::events::define(&format!("f{i}"), &format!("flag-{n}"), "bool", json!(false), "", true, 100, i as f64).unwrap()
                }),
                Op_::Canary(n, outcome) => Some(if *outcome {
                    canary::events::outcome(&format!("o{i}"), &format!("exp-{n}"), "canary", i % 2 == 0, 3.0, i as f64)
                } else {
                    canary::events::create(&format!("e{i}"), &format!("exp-{n}"), "s", "c", 0.5, 2, 0.9, 0.5, i as f64).unwrap()
                }),
                Op_::Node(_) | Op_::Edge(..) | Op_::DeleteSubject(_) => None,
                Op_::Checkpoint => {
                    ledger.checkpoint().unwrap();
                    None
                }
            };
            let lineage_event = match op {
                Op_::Node(n) => Some(lineage::events::add_node(
                    &format!("n{n}"), "dataset", &format!("subject-{n}"), "", "", &Map::new(), i as f64,
                ).unwrap()),
                Op_::Edge(a, b) => Some(lineage::events::add_edge(
                    &format!("e{i}"), &format!("n{a}"), &format!("n{b}"), "feeds", &Map::new(), i as f64,
                ).unwrap()),
                Op_::DeleteSubject(n) => Some(lineage::events::delete_subject(
                    &format!("subject-{n}"), &[format!("n{n}")], i as f64,
                )),
                _ => None,
            };
            if let Some((e, slots)) = lineage_event {
                match ledger.append_event_with_slots(&e, slots) {
                    Ok(_) | Err(LedgerError::Conflict { .. }) => {}
                    Err(other) => panic!("{other:?}"),
                }
            }
            if let Some(e) = event {
                match ledger.append_event(&e) {
                    Ok(_) | Err(LedgerError::Conflict { .. }) => {}
                    Err(other) => panic!("{other:?}"),
                }
            }
        }
        let incremental = ledger.with_governance(Clone::clone).unwrap();
        let checkpointed = Ledger::open_read_only(dir.path(), LogOptions::default(), "acme")
            .unwrap()
            .with_governance(Clone::clone)
            .unwrap();
        drop(ledger);
        let _ = std::fs::remove_dir_all(dir.path().join("checkpoints"));
        let rebuilt = Ledger::open_read_only(dir.path(), LogOptions::default(), "acme")
            .unwrap()
            .with_governance(Clone::clone)
            .unwrap();
        prop_assert_eq!(&incremental, &checkpointed);
        prop_assert_eq!(&incremental.policy("acme"), &rebuilt.policy("acme"));
        prop_assert_eq!(incremental.of("acme"), rebuilt.of("acme"));
        prop_assert_eq!(incremental.tenants(), rebuilt.tenants());
    }
}

#[test]
fn deleting_or_rotating_a_secret_erases_its_old_ciphertexts_and_chains_still_verify() {
    // Proves the vault's erasure: a rotated-out version's and a deleted secret's ciphertext
    // slots read as erased (also after reopen), and the log still verifies.
    use meshflow_engine::governance::vault::{self, KdfParams};
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let (params, key) = KdfParams::create("acme", b"pw").unwrap();
    ledger
        .append_event(&vault::events::init(&params, "a0", "t", 1.0))
        .unwrap();
    let put = vault::events::put("s1", "k", "generic", "", "t", "a1", 2.0);
    let sealed = vault::seal_value(&key, "acme", "k", 1, b"v1").unwrap();
    let first = ledger
        .append_event_with_slots(&put, vec![sealed.clone()])
        .unwrap();
    assert_eq!(ledger.read_event_slot(first, 0).unwrap(), Some(sealed));
    let rotate = vault::events::rotate("k", 2, "t", "a2", 3.0);
    let sealed2 = vault::seal_value(&key, "acme", "k", 2, b"v2").unwrap();
    let second = ledger
        .append_event_with_slots(&rotate, vec![sealed2])
        .unwrap();
    assert_eq!(
        ledger.read_event_slot(first, 0).unwrap(),
        None,
        "rotated out: erased"
    );
    assert!(ledger.read_event_slot(second, 0).unwrap().is_some());
    ledger
        .append_event(&vault::events::delete("k", "t", "a3", 4.0))
        .unwrap();
    assert_eq!(
        ledger.read_event_slot(second, 0).unwrap(),
        None,
        "deleted: erased"
    );
    drop(ledger);
    let reader = Ledger::open_read_only(dir.path(), LogOptions::default(), "acme").unwrap();
    assert_eq!(reader.read_event_slot(first, 0).unwrap(), None);
    assert_eq!(reader.read_event_slot(second, 0).unwrap(), None);
    reader.verify_all().unwrap();
    let ops: Vec<String> = reader
        .with_governance(|g| {
            g.vault("acme")
                .audit("", 10)
                .iter()
                .map(|a| a.operation.clone())
                .collect()
        })
        .unwrap();
    assert_eq!(ops, ["delete", "rotate", "write", "init"]);
}

#[test]
fn governance_checkpoints_are_written_with_the_runs_view_and_a_bad_one_is_rebuilt() {
    // Proves the governance views are checkpointed (same offsets as the runs view), that a
    // damaged checkpoint is refused and the views rebuilt from their events to the same
    // state, and that an erasure of governance slots removes every governance checkpoint.
    use meshflow_engine::ledger::checkpoint::governance as gc;
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    for n in 0..20 {
        ledger
            .append_event(&rule(&format!("r{n}"), "allow", n, &[]))
            .unwrap();
    }
    let (node, slots) =
        lineage::events::add_node("n1", "dataset", "bob", "", "", &Map::new(), 1.0).unwrap();
    ledger.append_event_with_slots(&node, slots).unwrap();
    let binding = ledger.checkpoint().unwrap().unwrap();
    assert_eq!(gc::list(dir.path()), vec![binding.offset]);
    let expected = ledger.with_governance(Clone::clone).unwrap();
    let read = |d: &std::path::Path| {
        Ledger::open_read_only(d, LogOptions::default(), "acme")
            .unwrap()
            .with_governance(Clone::clone)
            .unwrap()
    };
    assert_eq!(read(dir.path()), expected, "loaded from the checkpoint");
    let file = dir
        .path()
        .join("checkpoints")
        .join(gc::file_name(binding.offset));
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    std::fs::write(&file, bytes).unwrap();
    assert_eq!(
        read(dir.path()),
        expected,
        "a damaged checkpoint: rebuilt from the events"
    );
    let (delete, slots) = lineage::events::delete_subject("bob", &["n1".to_string()], 2.0);
    ledger.append_event_with_slots(&delete, slots).unwrap();
    assert!(
        gc::list(dir.path()).is_empty(),
        "erasure removes governance checkpoints"
    );
}

#[test]
fn a_damaged_governance_record_fails_the_rebuild_naming_where() {
    // Proves the rebuild's two-thread scan stops at damage and reports the segment, position
    // and offset (no view is built from a damaged log).
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    for n in 0..400 {
        ledger
            .append_event(&rule(&format!("rule-{n:04}"), "allow", 0, &[]))
            .unwrap();
    }
    ledger.checkpoint().unwrap();
    drop(ledger);
    for entry in std::fs::read_dir(dir.path().join("checkpoints")).unwrap() {
        let path = entry.unwrap().path();
        if path.to_str().unwrap().contains("governance-") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let segment = dir.path().join("00000000000000000000.seg");
    let mut bytes = std::fs::read(&segment).unwrap();
    let needle = b"rule-0300";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    bytes[at] ^= 0x01;
    std::fs::write(&segment, bytes).unwrap();
    let reader = Ledger::open_read_only(dir.path(), LogOptions::default(), "acme").unwrap();
    let err = reader.with_governance(|_| ()).unwrap_err().to_string();
    assert!(err.contains("00000000000000000000.seg"), "{err}");
}

#[test]
fn a_consistently_forged_governance_checkpoint_is_caught_by_its_digest_event() {
    // Proves governance checkpoints are chained: a checkpoint whose state, digest and CRC were
    // all recomputed (a forger's rewrite) disagrees with the digest event the writer appended,
    // is refused, and the views are rebuilt from their events.
    use meshflow_engine::ledger::checkpoint::{self as ck, governance as gc};
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    ledger.append_event(&rule("real", "deny", 5, &[])).unwrap();
    let binding = ledger.checkpoint().unwrap().unwrap();
    let expected = ledger.with_governance(Clone::clone).unwrap();
    drop(ledger);
    let file = dir
        .path()
        .join("checkpoints")
        .join(gc::file_name(binding.offset));
    let bytes = std::fs::read(&file).unwrap();
    let (b, state) = ck::unseal(&bytes, gc::VIEW, gc::LOGIC_VERSION).unwrap();
    let forged_state = String::from_utf8(state.to_vec())
        .unwrap()
        .replace("\"Deny\"", "\"Allow\"");
    assert_ne!(forged_state.as_bytes(), state);
    let (forged, _) = ck::seal(
        gc::VIEW,
        gc::LOGIC_VERSION,
        b.offset,
        &b.global_hash,
        forged_state.as_bytes(),
    );
    std::fs::write(&file, forged).unwrap();
    let (loaded, rejected) = gc::load(
        dir.path(),
        &meshflow_engine::log::LogReader::open(dir.path(), LogOptions::default()).unwrap(),
        u64::MAX,
    )
    .unwrap();
    assert!(loaded.is_none());
    assert!(rejected[0].contains("digest event"), "{rejected:?}");
    let reader = Ledger::open_read_only(dir.path(), LogOptions::default(), "acme").unwrap();
    let rebuilt = reader.with_governance(Clone::clone).unwrap();
    assert_eq!(rebuilt.policy("acme"), expected.policy("acme"));
}
