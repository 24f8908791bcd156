//! Locks of one tenant: leases on named resources with an expiry, and a fencing token that
//! grows with every acquisition of a resource (the reference has none: W14), so a holder whose
//! lease lapsed can be told apart from the current one. Expiry is judged with the time of the
//! event being checked (deterministic); queries take "now" as an argument. Pure.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::event::{check_name, Event, Family, Fields};

/// A lease on a resource.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Lease {
    /// The resource.
    pub resource_id: String,
    /// This acquisition's id.
    pub lock_id: String,
    /// Who holds it.
    pub owner: String,
    /// Unix seconds.
    pub acquired_at: f64,
    /// Unix seconds; the lease is void from then on.
    pub expires_at: f64,
    /// Its total time to live, seconds (extensions included).
    pub ttl_s: f64,
    /// The resource's acquisition count: every new lease gets a larger one.
    pub fencing_token: u64,
}

impl Lease {
    /// The reference's shape, with the fencing token and `remaining_s` at `now`.
    pub fn to_json(&self, now: f64) -> Value {
        json!({
            "resource_id": self.resource_id,
            "lock_id": self.lock_id,
            "owner": self.owner,
            "acquired_at": self.acquired_at,
            "expires_at": self.expires_at,
            "ttl_s": self.ttl_s,
            "fencing_token": self.fencing_token,
            "remaining_s": (self.expires_at - now).max(0.0),
        })
    }
}

/// One entry of a resource's history.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LockEvent {
    /// The resource.
    pub resource_id: String,
    /// `acquire`, `release`, `extend`.
    pub action: String,
    /// Who.
    pub owner: String,
    /// The lease's fencing token.
    pub fencing_token: u64,
    /// When.
    pub ts: f64,
}

impl LockEvent {
    /// As JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "resource_id": self.resource_id,
            "action": self.action,
            "owner": self.owner,
            "fencing_token": self.fencing_token,
            "ts": self.ts,
        })
    }
}

/// One tenant's locks.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct LockState {
    leases: BTreeMap<String, Lease>,
    tokens: BTreeMap<String, u64>,
    history: Vec<LockEvent>,
}

impl LockState {
    /// The lease on `resource` if it is held at `now`.
    pub fn held(&self, resource: &str, now: f64) -> Option<&Lease> {
        self.leases.get(resource).filter(|l| l.expires_at > now)
    }

    /// Leases by resource; only those unexpired at `now` with `active_only`.
    pub fn list(&self, active_only: bool, now: f64) -> Vec<&Lease> {
        self.leases
            .values()
            .filter(|l| !active_only || l.expires_at > now)
            .collect()
    }

    /// The history, oldest first (of one resource when not empty).
    pub fn history(&self, resource: &str) -> Vec<&LockEvent> {
        self.history
            .iter()
            .filter(|h| resource.is_empty() || h.resource_id == resource)
            .collect()
    }

    /// Checks an event (expiry judged at the event's `ts`).
    pub fn check(&self, event: &Event) -> Result<(), String> {
        let f = Fields(&event.body);
        let resource = f.str("resource")?;
        check_name("a resource", resource)?;
        let owner = f.str("owner")?;
        check_name("an owner", owner)?;
        let ts = f.f64("ts")?;
        let held = self.held(resource, ts);
        match event.op() {
            "acquire" => {
                f.str("lock_id")?;
                if f.f64("ttl_s")? <= 0.0 {
                    return Err("a lock's ttl must be positive".to_string());
                }
                match held {
                    Some(l) => Err(format!(
                        "'{resource}' is held by '{}' until {} (fencing token {})",
                        l.owner, l.expires_at, l.fencing_token
                    )),
                    None => Ok(()),
                }
            }
            "release" | "extend" => {
                let Some(l) = held else {
                    return Err(format!("'{resource}' is not held"));
                };
                if l.owner != owner {
                    return Err(format!(
                        "'{resource}' is held by '{}', not '{owner}'",
                        l.owner
                    ));
                }
                if let Some(token) = f.value("fencing_token").and_then(Value::as_u64) {
                    if token != l.fencing_token {
                        return Err(format!(
                            "fencing token {token} is stale (the lease has {})",
                            l.fencing_token
                        ));
                    }
                }
                if event.op() == "extend" && f.f64("add_s")? <= 0.0 {
                    return Err("an extension must be positive".to_string());
                }
                Ok(())
            }
            other => Err(format!("unknown lock op '{other}'")),
        }
    }

    /// Applies a checked event.
    pub fn apply(&mut self, event: &Event) -> Result<(), String> {
        self.check(event)?;
        let f = Fields(&event.body);
        let resource = f.str("resource")?.to_string();
        let owner = f.str("owner")?.to_string();
        let ts = f.f64("ts")?;
        let token = match event.op() {
            "acquire" => {
                let token = self.tokens.get(&resource).copied().unwrap_or(0) + 1;
                self.tokens.insert(resource.clone(), token);
                let ttl = f.f64("ttl_s")?;
                self.leases.insert(
                    resource.clone(),
                    Lease {
                        resource_id: resource.clone(),
                        lock_id: f.str("lock_id")?.to_string(),
                        owner: owner.clone(),
                        acquired_at: ts,
                        expires_at: ts + ttl,
                        ttl_s: ttl,
                        fencing_token: token,
                    },
                );
                token
            }
            "release" => self.leases.remove(&resource).map_or(0, |l| l.fencing_token),
            _ => {
                let add = f.f64("add_s")?;
                match self.leases.get_mut(&resource) {
                    Some(l) => {
                        l.expires_at += add;
                        l.ttl_s += add;
                        l.fencing_token
                    }
                    None => 0,
                }
            }
        };
        self.history.push(LockEvent {
            resource_id: resource,
            action: event.op().to_string(),
            owner,
            fencing_token: token,
            ts,
        });
        Ok(())
    }
}

/// Builders of lock events.
pub mod events {
    use super::*;

    fn event(body: Value) -> Event {
        Event::from_value(Family::Lock, body)
    }

    /// Acquires `resource` for `ttl_s` seconds.
    pub fn acquire(lock_id: &str, resource: &str, owner: &str, ttl_s: f64, now: f64) -> Event {
        event(
            json!({"op": "acquire", "lock_id": lock_id, "resource": resource, "owner": owner, "ttl_s": ttl_s, "ts": now}),
        )
    }

    /// Releases it (with the fencing token when the holder has it).
    pub fn release(resource: &str, owner: &str, token: Option<u64>, now: f64) -> Event {
        event(
            json!({"op": "release", "resource": resource, "owner": owner, "fencing_token": token, "ts": now}),
        )
    }

    /// Extends the lease by `add_s` seconds.
    pub fn extend(resource: &str, owner: &str, add_s: f64, token: Option<u64>, now: f64) -> Event {
        event(
            json!({"op": "extend", "resource": resource, "owner": owner, "add_s": add_s, "fencing_token": token, "ts": now}),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_expire_and_fencing_tokens_grow() {
        // Proves exclusive leases, expiry at the event's time, owner and token checks, and a
        // larger fencing token for every new lease of a resource.
        let mut s = LockState::default();
        s.apply(&events::acquire("l1", "db", "a", 10.0, 0.0))
            .unwrap();
        assert!(s
            .check(&events::acquire("l2", "db", "b", 10.0, 5.0))
            .is_err());
        assert!(
            s.check(&events::release("db", "b", None, 5.0)).is_err(),
            "not the owner"
        );
        s.apply(&events::extend("db", "a", 5.0, Some(1), 6.0))
            .unwrap();
        assert!(
            s.check(&events::acquire("l2", "db", "b", 10.0, 12.0))
                .is_err(),
            "extended"
        );
        s.apply(&events::acquire("l3", "db", "b", 10.0, 16.0))
            .unwrap();
        assert_eq!(s.held("db", 16.0).unwrap().fencing_token, 2);
        assert!(s
            .check(&events::release("db", "b", Some(1), 17.0))
            .unwrap_err()
            .contains("stale"));
        s.apply(&events::release("db", "b", Some(2), 17.0)).unwrap();
        assert!(s.held("db", 17.0).is_none());
        let actions: Vec<&str> = s.history("db").iter().map(|h| h.action.as_str()).collect();
        assert_eq!(actions, ["acquire", "extend", "acquire", "release"]);
    }
}
