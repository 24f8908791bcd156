//! The records of each snapshot section, in the reference's shapes (reference §6), sorted by
//! the documented keys of [`SORT_KEYS`]. Pure: the state and "now" in, JSON values out.

use std::cmp::Ordering;

use serde_json::{json, Value};

use super::Scope;
use crate::governance::{GovState, TenantViews, SYSTEM_TENANT};

/// Each section's sort key: fields compared in turn, `true` for descending. The last field is
/// the record's id, so the order is total.
pub const SORT_KEYS: [(&str, &[(&str, bool)]); 13] = [
    ("identities", &[("created_at", false), ("agent_id", false)]),
    ("lineage_nodes", &[("ts", false), ("node_id", false)]),
    ("lineage_edges", &[("ts", false), ("edge_id", false)]),
    (
        "canary_experiments",
        &[("created_at", true), ("experiment_id", false)],
    ),
    ("locks", &[("acquired_at", false), ("resource_id", false)]),
    ("alerts", &[("fired_at", true), ("alert_id", false)]),
    ("feature_flags", &[("created_at", true), ("flag_id", false)]),
    (
        "policy_rules",
        &[
            ("priority", true),
            ("created_at", false),
            ("rule_id", false),
        ],
    ),
    (
        "sla_contracts",
        &[("agent_name", false), ("contract_id", false)],
    ),
    ("sla_breaches", &[("ts", true), ("breach_id", false)]),
    (
        "vault_secrets_metadata",
        &[("created_at", true), ("secret_id", false)],
    ),
    ("vault_audit", &[("ts", true), ("audit_id", false)]),
    ("tenants", &[("created_at", true), ("tenant_id", false)]),
];

/// The records of section `name` for `scope`, sorted, with time-dependent fields computed at
/// `now` (the snapshot's `created_at`). In an all-tenant snapshot every record but a tenant's
/// own registry record carries a `tenant` key. An unknown name has no records.
pub fn section_records(state: &GovState, scope: &Scope, name: &str, now: f64) -> Vec<Value> {
    let mut records = Vec::new();
    for_each_record(state, scope, name, now, &mut |r| records.push(r));
    if let Some((_, keys)) = SORT_KEYS.iter().find(|(n, _)| *n == name) {
        sort_records(&mut records, keys);
    }
    records
}

/// Section `name`'s file bytes and record count: exactly `to_vec_pretty` of
/// [`section_records`] and a newline, built one record at a time (each record is serialised
/// as soon as it is made, so the section's records never all exist as JSON values at once).
pub fn section_bytes(state: &GovState, scope: &Scope, name: &str, now: f64) -> (u64, Vec<u8>) {
    let keys: &[(&str, bool)] = SORT_KEYS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(&[], |(_, k)| k);
    let mut items: Vec<(Vec<Key>, Vec<u8>)> = Vec::new();
    for_each_record(state, scope, name, now, &mut |r| {
        let key = keys.iter().map(|(k, _)| Key::of(r.get(k))).collect();
        items.push((key, element_bytes(&r)));
    });
    items.sort_by(|(a, _), (b, _)| compare_keys(a, b, keys));
    let mut out = Vec::with_capacity(items.iter().map(|(_, b)| b.len() + 4).sum::<usize>() + 4);
    if items.is_empty() {
        out.extend_from_slice(b"[]");
    } else {
        out.extend_from_slice(b"[\n  ");
        for (i, (_, bytes)) in items.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b",\n  ");
            }
            out.extend_from_slice(bytes);
        }
        out.extend_from_slice(b"\n]");
    }
    out.push(b'\n');
    (items.len() as u64, out)
}

/// A record as an element of a pretty-printed top-level array: pretty JSON with every line
/// after the first indented two more spaces (JSON text has no raw newline but formatting's).
fn element_bytes(record: &Value) -> Vec<u8> {
    let pretty = serde_json::to_vec_pretty(record).unwrap_or_default();
    let mut out = Vec::with_capacity(pretty.len() + pretty.len() / 8);
    for &b in &pretty {
        out.push(b);
        if b == b'\n' {
            out.extend_from_slice(b"  ");
        }
    }
    out
}

fn for_each_record(
    state: &GovState,
    scope: &Scope,
    name: &str,
    now: f64,
    emit: &mut dyn FnMut(Value),
) {
    if name == "tenants" {
        for t in state.tenants().list("") {
            if matches!(scope, Scope::Tenant(id) if *id != t.tenant_id) {
                continue;
            }
            emit(t.to_json());
        }
        return;
    }
    let tenants: Vec<&str> = match scope {
        Scope::Tenant(t) => vec![t.as_str()],
        Scope::All => state.tenant_ids().filter(|t| *t != SYSTEM_TENANT).collect(),
    };
    for tenant in tenants {
        let mut tag = |mut r: Value| {
            if *scope == Scope::All {
                if let Value::Object(map) = &mut r {
                    map.insert("tenant".to_string(), Value::String(tenant.to_string()));
                }
            }
            emit(r);
        };
        tenant_records(state.of(tenant), name, now, &mut tag);
    }
}

fn tenant_records(views: &TenantViews, name: &str, now: f64, emit: &mut dyn FnMut(Value)) {
    let mut all = |values: &mut dyn Iterator<Item = Value>| values.for_each(&mut *emit);
    match name {
        "identities" => all(&mut views.identity.list(false).iter().map(|i| i.to_json())),
        "lineage_nodes" => all(&mut views.lineage.nodes().iter().map(|n| n.to_json())),
        "lineage_edges" => all(&mut views.lineage.edges().iter().map(|e| e.to_json())),
        "canary_experiments" => all(&mut views.canary.list().iter().map(|e| e.to_json())),
        "locks" => all(&mut views.lock.list(false, now).iter().map(|l| l.to_json(now))),
        "alerts" => all(&mut views
            .alert
            .list("", "", usize::MAX)
            .iter()
            .map(|a| a.to_json())),
        "feature_flags" => all(&mut views.flag.list().iter().map(|f| {
            // The reference's keys (`default_val`), and the rules it left out (W11).
            match f.to_json() {
                Value::Object(map) => Value::Object(
                    map.into_iter()
                        .map(|(k, v)| match k.as_str() {
                            "default_value" => ("default_val".to_string(), v),
                            _ => (k, v),
                        })
                        .collect(),
                ),
                other => other,
            }
        })),
        "policy_rules" => all(&mut views.policy.list("", false).iter().map(|r| r.to_json())),
        "sla_contracts" => all(&mut views.sla.contracts().iter().map(|c| c.to_json())),
        "sla_breaches" => all(&mut views.sla.all_breaches().iter().map(|b| b.to_json())),
        "vault_secrets_metadata" => all(&mut views.vault.list("").iter().map(|s| {
            // Metadata only: the reference's seven keys, never a value or ciphertext.
            json!({
                "secret_id": s.secret_id, "name": s.name, "category": s.category,
                "description": s.description, "created_by": s.created_by,
                "created_at": s.created_at, "rotated_at": s.rotated_at,
            })
        })),
        "vault_audit" => all(&mut views.vault.all_audit().iter().map(|a| a.to_json())),
        _ => {}
    }
}

/// A sort field's value, taken out of its record once (not looked up per comparison).
#[derive(Debug, Clone, PartialEq)]
enum Key {
    Null,
    Bool(bool),
    Number(f64),
    Text(String),
    Other,
}

impl Key {
    fn of(v: Option<&Value>) -> Key {
        match v {
            None | Some(Value::Null) => Key::Null,
            Some(Value::Bool(b)) => Key::Bool(*b),
            Some(Value::Number(n)) => Key::Number(n.as_f64().unwrap_or(0.0)),
            Some(Value::String(s)) => Key::Text(s.clone()),
            Some(_) => Key::Other,
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Key::Null => 0,
            Key::Bool(_) => 1,
            Key::Number(_) => 2,
            Key::Text(_) => 3,
            Key::Other => 4,
        }
    }

    /// Numbers numerically, strings bytewise, null first.
    fn cmp(&self, other: &Key) -> Ordering {
        match (self, other) {
            (Key::Number(x), Key::Number(y)) => x.total_cmp(y),
            (Key::Text(x), Key::Text(y)) => x.as_bytes().cmp(y.as_bytes()),
            (Key::Bool(x), Key::Bool(y)) => x.cmp(y),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

/// Sorts records by `keys` (field, descending), stably.
fn sort_records(records: &mut Vec<Value>, keys: &[(&str, bool)]) {
    let mut keyed: Vec<(Vec<Key>, Value)> = std::mem::take(records)
        .into_iter()
        .map(|r| (keys.iter().map(|(k, _)| Key::of(r.get(k))).collect(), r))
        .collect();
    keyed.sort_by(|(a, _), (b, _)| compare_keys(a, b, keys));
    records.extend(keyed.into_iter().map(|(_, r)| r));
}

fn compare_keys(a: &[Key], b: &[Key], keys: &[(&str, bool)]) -> Ordering {
    for ((x, y), (_, descending)) in a.iter().zip(b).zip(keys) {
        let order = x.cmp(y);
        let order = if *descending { order.reverse() } else { order };
        if order != Ordering::Equal {
            return order;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_section_has_a_total_sort_key() {
        // Proves each section is listed once, in the SECTIONS order, and ends with an id.
        let names: Vec<&str> = SORT_KEYS.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, super::super::SECTIONS);
        for (name, keys) in SORT_KEYS {
            let last = keys.last().map(|k| k.0).unwrap_or("");
            assert!(last.ends_with("_id"), "{name} ends with {last}");
        }
    }

    #[test]
    fn streamed_section_bytes_equal_pretty_printing_the_records() {
        // Proves section_bytes (one record at a time) gives exactly to_vec_pretty of the
        // sorted records, for empty and non-empty sections, nested arrays, empty objects and
        // strings holding newlines.
        let mut state = GovState::default();
        let rule = crate::governance::policy::events::add(
            "r1",
            "rule",
            "deny",
            &[],
            3,
            "",
            "multi\nline",
            true,
            1.0,
        )
        .unwrap();
        state.apply("t", &rule, &[], 0).unwrap();
        let flag = crate::governance::flag::events::define(
            "f1",
            "beta",
            "string",
            json!("x\ny"),
            "",
            true,
            100,
            2.0,
        )
        .unwrap();
        state.apply("t", &flag, &[], 1).unwrap();
        let scope = Scope::Tenant("t".to_string());
        for name in super::super::SECTIONS {
            let records = section_records(&state, &scope, name, 5.0);
            let mut expected = serde_json::to_vec_pretty(&records).unwrap();
            expected.push(b'\n');
            let (count, bytes) = section_bytes(&state, &scope, name, 5.0);
            assert_eq!(count, records.len() as u64, "{name}");
            assert_eq!(
                String::from_utf8(bytes).unwrap(),
                String::from_utf8(expected).unwrap(),
                "{name}"
            );
        }
    }

    #[test]
    fn records_sort_by_their_keys() {
        // Proves descending and ascending keys, numbers and strings, and the tie-break.
        let keys: &[(&str, bool)] = &[("priority", true), ("rule_id", false)];
        let mut v = vec![
            json!({"priority": 1, "rule_id": "b"}),
            json!({"priority": 5, "rule_id": "z"}),
            json!({"priority": 1, "rule_id": "a"}),
            json!({"rule_id": "n"}),
        ];
        sort_records(&mut v, keys);
        let ids: Vec<&str> = v.iter().map(|r| r["rule_id"].as_str().unwrap()).collect();
        assert_eq!(
            ids,
            ["z", "a", "b", "n"],
            "a missing priority sorts as null: last when descending"
        );
    }
}
