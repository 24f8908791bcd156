//! Governance events as log records (`docs/governance-events.md`): one record kind per view,
//! critical (a reader that does not know a kind must not skip it), and a payload of one
//! version byte followed by one JSON object `{"op": OP, ...}` (keys written in sorted order).
//! Pure: bytes in, values out.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// The version byte every governance payload starts with.
pub const EVENT_VERSION: u8 = 1;

/// The views whose events live in the log, with their record kinds (`0x8200 | id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// Policy rules and decisions.
    Policy,
    /// SLA contracts and observations (breaches are derived).
    Sla,
    /// Secrets (ciphertext in slot 0) and their audit trail.
    Vault,
    /// The tenant registry (events under the `_system` tenant).
    Tenant,
    /// The lineage graph (names and metadata in slots).
    Lineage,
    /// Agent identities.
    Identity,
    /// Canary experiments and their outcomes.
    Canary,
    /// Locks with expiry and fencing tokens.
    Lock,
    /// Alerts.
    Alert,
    /// Feature flags and their rules.
    Flag,
    /// The register of compliance snapshots taken (not a snapshot section).
    Snapshot,
}

impl Family {
    /// Every family, in kind order.
    pub const ALL: [Family; 11] = [
        Family::Policy,
        Family::Sla,
        Family::Vault,
        Family::Tenant,
        Family::Lineage,
        Family::Identity,
        Family::Canary,
        Family::Lock,
        Family::Alert,
        Family::Flag,
        Family::Snapshot,
    ];

    /// The record kind of this family's events.
    pub fn kind(self) -> u16 {
        match self {
            Family::Policy => 0x8201,
            Family::Sla => 0x8202,
            Family::Vault => 0x8203,
            Family::Tenant => 0x8204,
            Family::Lineage => 0x8205,
            Family::Identity => 0x8206,
            Family::Canary => 0x8207,
            Family::Lock => 0x8208,
            Family::Alert => 0x8209,
            Family::Flag => 0x820A,
            Family::Snapshot => 0x820B,
        }
    }

    /// The family of a record kind, if it is a governance kind.
    pub fn of_kind(kind: u16) -> Option<Family> {
        // Asked for every record the sequencer admits: one comparison for a step.
        if kind & 0xFF00 != 0x8200 {
            return None;
        }
        Family::ALL.into_iter().find(|f| f.kind() == kind)
    }

    /// The family's name (`policy`, `tenant`), as in the protocol and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            Family::Policy => "policy",
            Family::Sla => "sla",
            Family::Vault => "vault",
            Family::Tenant => "tenant",
            Family::Lineage => "lineage",
            Family::Identity => "identity",
            Family::Canary => "canary",
            Family::Lock => "lock",
            Family::Alert => "alert",
            Family::Flag => "flag",
            Family::Snapshot => "snapshot",
        }
    }

    /// The family named `name`.
    pub fn from_name(name: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// A governance event's fields, in key order (a small ordered map: no hashing when the views
/// read them back).
pub type Body = BTreeMap<String, Value>;

/// A governance event: its family, and its JSON object (with `op`).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Which view it belongs to.
    pub family: Family,
    /// The event's fields, `op` included.
    pub body: Body,
}

impl Event {
    /// The event of `family` with the fields of `body` (a JSON object; anything else gives
    /// no fields, which no view accepts).
    pub fn from_value(family: Family, body: Value) -> Event {
        let body = match body {
            Value::Object(map) => map.into_iter().collect(),
            _ => Body::new(),
        };
        Event { family, body }
    }

    /// The fields as a JSON object.
    pub fn to_value(&self) -> Value {
        Value::Object(
            self.body
                .clone()
                .into_iter()
                .collect::<Map<String, Value>>(),
        )
    }

    /// The event's operation.
    pub fn op(&self) -> &str {
        self.body.get("op").and_then(Value::as_str).unwrap_or("")
    }

    /// The record payload: the version byte, then the JSON object.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![EVENT_VERSION];
        // A map of JSON values always serialises.
        out.extend_from_slice(
            serde_json::to_string(&self.body)
                .unwrap_or_default()
                .as_bytes(),
        );
        out
    }

    /// Decodes a payload of `family`'s kind.
    pub fn decode(family: Family, payload: &[u8]) -> Result<Event, String> {
        let (&version, json) = payload
            .split_first()
            .ok_or_else(|| "an empty governance payload".to_string())?;
        if version != EVENT_VERSION {
            return Err(format!(
                "governance event version {version} (this engine reads {EVENT_VERSION})"
            ));
        }
        let body: Body = serde_json::from_slice(json)
            .map_err(|e| format!("a governance payload that is not a JSON object: {e}"))?;
        if !body.get("op").is_some_and(Value::is_string) {
            return Err("a governance event without an op".to_string());
        }
        Ok(Event { family, body })
    }
}

/// Field access with typed errors, for the views' event readers.
pub(crate) struct Fields<'a>(pub(crate) &'a Body);

impl<'a> Fields<'a> {
    pub(crate) fn str(&self, key: &str) -> Result<&'a str, String> {
        self.0
            .get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("'{key}' must be a string"))
    }

    pub(crate) fn opt_str(&self, key: &str) -> Result<Option<&'a str>, String> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(format!("'{key}' must be a string")),
        }
    }

    pub(crate) fn f64(&self, key: &str) -> Result<f64, String> {
        self.0
            .get(key)
            .and_then(Value::as_f64)
            .filter(|x| x.is_finite())
            .ok_or_else(|| format!("'{key}' must be a finite number"))
    }

    pub(crate) fn i64(&self, key: &str) -> Result<i64, String> {
        self.0
            .get(key)
            .and_then(Value::as_i64)
            .ok_or_else(|| format!("'{key}' must be an integer"))
    }

    pub(crate) fn bool(&self, key: &str) -> Result<bool, String> {
        self.0
            .get(key)
            .and_then(Value::as_bool)
            .ok_or_else(|| format!("'{key}' must be true or false"))
    }

    pub(crate) fn value(&self, key: &str) -> Option<&'a Value> {
        self.0.get(key)
    }
}

/// Checks an identifier or name: 1–128 bytes of UTF-8 without control characters (SPEC §4).
pub fn check_name(what: &str, text: &str) -> Result<(), String> {
    if text.is_empty() || text.len() > 128 {
        return Err(format!("{what} must be 1–128 bytes (got {})", text.len()));
    }
    if text.chars().any(char::is_control) {
        return Err(format!("{what} must not contain control characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_carry_their_version() {
        // Proves the payload layout: one version byte, then the JSON object, decoded back.
        let mut body = Body::new();
        body.insert("op".into(), Value::from("add"));
        body.insert("name".into(), Value::from("r"));
        let event = Event {
            family: Family::Policy,
            body,
        };
        let bytes = event.encode();
        assert_eq!(bytes[0], EVENT_VERSION);
        assert_eq!(&bytes[1..], br#"{"name":"r","op":"add"}"#, "keys in order");
        assert_eq!(Event::decode(Family::Policy, &bytes).unwrap(), event);
    }

    #[test]
    fn malformed_payloads_are_errors() {
        // Proves an unknown version, non-JSON and a missing op are refused with a reason.
        assert!(Event::decode(Family::Policy, b"").is_err());
        assert!(Event::decode(Family::Policy, b"\x02{\"op\":\"add\"}")
            .unwrap_err()
            .contains("version 2"));
        assert!(Event::decode(Family::Policy, b"\x01[1]").is_err());
        assert!(Event::decode(Family::Policy, b"\x01{\"name\":1}")
            .unwrap_err()
            .contains("op"));
    }

    #[test]
    fn kinds_are_critical_and_map_back_to_their_family() {
        // Proves every family's kind has the critical bit and is found again from the kind.
        for f in Family::ALL {
            assert_eq!(f.kind() & 0x8000, 0x8000);
            assert_eq!(Family::of_kind(f.kind()), Some(f));
            assert_eq!(Family::from_name(f.name()), Some(f));
        }
        assert_eq!(Family::of_kind(0x8100), None);
    }
}
