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
    if name == "tenants" {
        for t in state.tenants().list("") {
            if matches!(scope, Scope::Tenant(id) if *id != t.tenant_id) {
                continue;
            }
            records.push(t.to_json());
        }
    } else {
        let tenants: Vec<&str> = match scope {
            Scope::Tenant(t) => vec![t.as_str()],
            Scope::All => state.tenant_ids().filter(|t| *t != SYSTEM_TENANT).collect(),
        };
        for tenant in tenants {
            let from = records.len();
            tenant_records(state.of(tenant), name, now, &mut records);
            if *scope == Scope::All {
                for r in records.iter_mut().skip(from) {
                    if let Value::Object(map) = r {
                        map.insert("tenant".to_string(), Value::String(tenant.to_string()));
                    }
                }
            }
        }
    }
    if let Some((_, keys)) = SORT_KEYS.iter().find(|(n, _)| *n == name) {
        records.sort_by(|a, b| compare(a, b, keys));
    }
    records
}

fn tenant_records(views: &TenantViews, name: &str, now: f64, out: &mut Vec<Value>) {
    match name {
        "identities" => out.extend(views.identity.list(false).iter().map(|i| i.to_json())),
        "lineage_nodes" => out.extend(views.lineage.nodes().iter().map(|n| n.to_json())),
        "lineage_edges" => out.extend(views.lineage.edges().iter().map(|e| e.to_json())),
        "canary_experiments" => out.extend(views.canary.list().iter().map(|e| e.to_json())),
        "locks" => out.extend(views.lock.list(false, now).iter().map(|l| l.to_json(now))),
        "alerts" => out.extend(
            views
                .alert
                .list("", "", usize::MAX)
                .iter()
                .map(|a| a.to_json()),
        ),
        "feature_flags" => out.extend(views.flag.list().iter().map(|f| {
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
        "policy_rules" => out.extend(views.policy.list("", false).iter().map(|r| r.to_json())),
        "sla_contracts" => out.extend(views.sla.contracts().iter().map(|c| c.to_json())),
        "sla_breaches" => out.extend(views.sla.all_breaches().iter().map(|b| b.to_json())),
        "vault_secrets_metadata" => out.extend(views.vault.list("").iter().map(|s| {
            // Metadata only: the reference's seven keys, never a value or ciphertext.
            json!({
                "secret_id": s.secret_id, "name": s.name, "category": s.category,
                "description": s.description, "created_by": s.created_by,
                "created_at": s.created_at, "rotated_at": s.rotated_at,
            })
        })),
        "vault_audit" => out.extend(views.vault.all_audit().iter().map(|a| a.to_json())),
        _ => {}
    }
}

/// Orders two records by `keys`: numbers numerically, strings bytewise, null first.
fn compare(a: &Value, b: &Value, keys: &[(&str, bool)]) -> Ordering {
    for (key, descending) in keys {
        let order = compare_values(a.get(key), b.get(key));
        let order = if *descending { order.reverse() } else { order };
        if order != Ordering::Equal {
            return order;
        }
    }
    Ordering::Equal
}

fn compare_values(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    let rank = |v: Option<&Value>| match v {
        None | Some(Value::Null) => 0,
        Some(Value::Bool(_)) => 1,
        Some(Value::Number(_)) => 2,
        Some(Value::String(_)) => 3,
        Some(_) => 4,
    };
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .unwrap_or(0.0)
            .total_cmp(&y.as_f64().unwrap_or(0.0)),
        (Some(Value::String(x)), Some(Value::String(y))) => x.as_bytes().cmp(y.as_bytes()),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
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
    fn records_sort_by_their_keys() {
        // Proves descending and ascending keys, numbers and strings, and the tie-break.
        let keys: &[(&str, bool)] = &[("priority", true), ("rule_id", false)];
        let mut v = [
            json!({"priority": 1, "rule_id": "b"}),
            json!({"priority": 5, "rule_id": "z"}),
            json!({"priority": 1, "rule_id": "a"}),
        ];
        v.sort_by(|a, b| compare(a, b, keys));
        let ids: Vec<&str> = v.iter().map(|r| r["rule_id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["z", "a", "b"]);
    }
}
