//! Agent identities of one tenant: registered names (unique), capabilities, issuer,
//! revocation. Pure.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::event::{check_name, Event, Family, Fields};

/// A registered agent identity.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    /// Id.
    pub agent_id: String,
    /// Unique name.
    pub name: String,
    /// What it may do.
    pub capabilities: Vec<String>,
    /// Who issued it (`meshflow` by default).
    pub issuer: String,
    /// Unix seconds.
    pub created_at: f64,
    /// Revoked identities stay listed.
    pub revoked: bool,
    /// When it was revoked.
    pub revoked_at: Option<f64>,
    /// Free JSON object.
    pub metadata: Map<String, Value>,
    /// Offset of the registering event.
    pub offset: u64,
}

impl Identity {
    /// The reference's shape.
    pub fn to_json(&self) -> Value {
        json!({
            "agent_id": self.agent_id,
            "name": self.name,
            "capabilities": self.capabilities,
            "issuer": self.issuer,
            "created_at": self.created_at,
            "revoked": self.revoked,
            "revoked_at": self.revoked_at,
            "metadata": self.metadata,
        })
    }
}

/// One tenant's identities.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct IdentityState {
    identities: BTreeMap<String, Identity>,
    /// Name → id.
    names: BTreeMap<String, String>,
}

impl IdentityState {
    /// By id, or else by name.
    pub fn get(&self, id_or_name: &str) -> Option<&Identity> {
        self.identities.get(id_or_name).or_else(|| {
            self.names
                .get(id_or_name)
                .and_then(|id| self.identities.get(id))
        })
    }

    /// Oldest first; only unrevoked ones with `active_only`.
    pub fn list(&self, active_only: bool) -> Vec<&Identity> {
        let mut out: Vec<&Identity> = self
            .identities
            .values()
            .filter(|i| !active_only || !i.revoked)
            .collect();
        out.sort_by(|a, b| {
            a.created_at
                .total_cmp(&b.created_at)
                .then(a.offset.cmp(&b.offset))
        });
        out
    }

    /// Checks an event.
    pub fn check(&self, event: &Event) -> Result<(), String> {
        let f = Fields(&event.body);
        match event.op() {
            "register" => {
                let i = identity_of(&f, 0)?;
                if self.identities.contains_key(&i.agent_id) {
                    return Err(format!("an identity with id '{}' exists", i.agent_id));
                }
                if self.names.contains_key(&i.name) {
                    return Err(format!("an identity named '{}' exists", i.name));
                }
                Ok(())
            }
            "revoke" => {
                let key = f.str("agent")?;
                f.f64("ts")?;
                match self.get(key) {
                    None => Err(format!("no identity '{key}'")),
                    Some(i) if i.revoked => Err(format!("identity '{key}' is already revoked")),
                    Some(_) => Ok(()),
                }
            }
            other => Err(format!("unknown identity op '{other}'")),
        }
    }

    /// Applies a checked event.
    pub fn apply(&mut self, event: &Event, offset: u64) -> Result<(), String> {
        let f = Fields(&event.body);
        if event.op() == "register" {
            // Built once and checked here.
            let i = identity_of(&f, offset)?;
            if self.identities.contains_key(&i.agent_id) || self.names.contains_key(&i.name) {
                return self.check(event);
            }
            self.names.insert(i.name.clone(), i.agent_id.clone());
            self.identities.insert(i.agent_id.clone(), i);
        } else {
            self.check(event)?;
            let id = self.get(f.str("agent")?).map(|i| i.agent_id.clone());
            if let Some(i) = id.and_then(|id| self.identities.get_mut(&id)) {
                i.revoked = true;
                i.revoked_at = Some(f.f64("ts")?);
            }
        }
        Ok(())
    }
}

fn identity_of(f: &Fields<'_>, offset: u64) -> Result<Identity, String> {
    let name = f.str("name")?.to_string();
    check_name("an identity name", &name)?;
    let capabilities = match f.value("capabilities") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|c| c.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or("'capabilities' must be an array of strings")?,
        Some(_) => return Err("'capabilities' must be an array of strings".to_string()),
    };
    Ok(Identity {
        agent_id: f.str("agent_id")?.to_string(),
        name,
        capabilities,
        issuer: f.opt_str("issuer")?.unwrap_or("meshflow").to_string(),
        created_at: f.f64("created_at")?,
        revoked: false,
        revoked_at: None,
        metadata: match f.value("metadata") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => return Err("'metadata' must be a JSON object".to_string()),
        },
        offset,
    })
}

/// Builders of identity events.
pub mod events {
    use super::*;

    fn event(body: Value) -> Event {
        Event::from_value(Family::Identity, body)
    }

    /// Registers an identity.
    pub fn register(
        agent_id: &str,
        name: &str,
        capabilities: &[String],
        issuer: &str,
        metadata: Map<String, Value>,
        now: f64,
    ) -> Result<Event, String> {
        let e = event(json!({
            "op": "register",
            "agent_id": agent_id,
            "name": name,
            "capabilities": capabilities,
            "issuer": issuer,
            "metadata": metadata,
            "created_at": now,
        }));
        identity_of(&Fields(&e.body), 0)?;
        Ok(e)
    }

    /// Revokes the identity with this id or name.
    pub fn revoke(agent: &str, now: f64) -> Event {
        event(json!({"op": "revoke", "agent": agent, "ts": now}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_revocation_is_final() {
        // Proves register/revoke checks: a taken name, an unknown or already revoked identity.
        let mut s = IdentityState::default();
        let e =
            events::register("a1", "bot", &["read".into()], "meshflow", Map::new(), 1.0).unwrap();
        s.apply(&e, 0).unwrap();
        let dup = events::register("a2", "bot", &[], "meshflow", Map::new(), 2.0).unwrap();
        assert!(s.check(&dup).unwrap_err().contains("named"));
        s.apply(&events::revoke("bot", 3.0), 1).unwrap();
        assert!(s.get("a1").unwrap().revoked);
        assert!(s.check(&events::revoke("a1", 4.0)).is_err());
        assert!(s.check(&events::revoke("nobody", 4.0)).is_err());
        assert_eq!(s.list(true).len(), 0);
        assert_eq!(s.list(false).len(), 1);
    }
}
