//! The tenant registry: managed tenants with a unique name and slug, a plan and a status,
//! built from `tenant` events, which live under the `_system` tenant (one registry for the
//! log). A tenant id needs no registration to be used; once registered it is never reused,
//! even after its deletion (which is a status here; purging data is the erasure issue's).
//! Pure: no I/O, no clock.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::event::{check_name, Event, Family, Fields};

/// Plans (the reference's).
pub const PLANS: [&str; 3] = ["free", "pro", "enterprise"];
/// Statuses (the reference's).
pub const STATUSES: [&str; 3] = ["active", "suspended", "deleted"];

/// A managed tenant.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Tenant {
    /// The tenant id (the `--tenant` its data is written under).
    pub tenant_id: String,
    /// Display name, unique among tenants not deleted.
    pub name: String,
    /// Slug, unique among tenants not deleted.
    pub slug: String,
    /// `free`, `pro` or `enterprise`.
    pub plan: String,
    /// `active`, `suspended` or `deleted`.
    pub status: String,
    /// Free JSON object.
    pub metadata: Map<String, Value>,
    /// Unix seconds.
    pub created_at: f64,
    /// Offset of the creating event (orders tenants created in the same instant).
    pub offset: u64,
}

impl Tenant {
    /// The reference's record shape.
    pub fn to_json(&self) -> Value {
        json!({
            "tenant_id": self.tenant_id,
            "name": self.name,
            "slug": self.slug,
            "plan": self.plan,
            "status": self.status,
            "metadata": self.metadata,
            "created_at": self.created_at,
        })
    }
}

/// The registry.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct TenantRegistry {
    tenants: BTreeMap<String, Tenant>,
}

impl TenantRegistry {
    /// The tenant with this id, or else this slug.
    pub fn get(&self, id_or_slug: &str) -> Option<&Tenant> {
        self.tenants.get(id_or_slug).or_else(|| {
            self.tenants
                .values()
                .find(|t| t.slug == id_or_slug && t.status != "deleted")
        })
    }

    /// The tenants, newest first; `status` filters when not empty.
    pub fn list(&self, status: &str) -> Vec<&Tenant> {
        let mut out: Vec<&Tenant> = self
            .tenants
            .values()
            .filter(|t| status.is_empty() || t.status == status)
            .collect();
        out.sort_by(|a, b| {
            b.created_at
                .total_cmp(&a.created_at)
                .then(b.offset.cmp(&a.offset))
        });
        out
    }

    /// Checks `event` against the registry: `Err` is the refusal.
    pub fn check(&self, event: &Event) -> Result<(), String> {
        let f = Fields(&event.body);
        match event.op() {
            "create" => {
                let t = tenant_of(&f, 0)?;
                if self.tenants.contains_key(&t.tenant_id) {
                    return Err(format!(
                        "tenant id '{}' is taken (ids are never reused)",
                        t.tenant_id
                    ));
                }
                let live = || self.tenants.values().filter(|x| x.status != "deleted");
                if live().any(|x| x.slug == t.slug) {
                    return Err(format!("a tenant with slug '{}' exists", t.slug));
                }
                if live().any(|x| x.name == t.name) {
                    return Err(format!("a tenant named '{}' exists", t.name));
                }
                Ok(())
            }
            "status" | "plan" => {
                let key = f.str("tenant")?;
                let t = self.get(key).ok_or_else(|| format!("no tenant '{key}'"))?;
                if t.status == "deleted" {
                    return Err(format!("tenant '{key}' is deleted"));
                }
                if event.op() == "status" {
                    one_of("status", f.str("status")?, &STATUSES)
                } else {
                    one_of("plan", f.str("plan")?, &PLANS)
                }
            }
            other => Err(format!("unknown tenant op '{other}'")),
        }
    }

    /// Applies a checked event at `offset`.
    pub fn apply(&mut self, event: &Event, offset: u64) -> Result<(), String> {
        self.check(event)?;
        let f = Fields(&event.body);
        match event.op() {
            "create" => {
                let t = tenant_of(&f, offset)?;
                self.tenants.insert(t.tenant_id.clone(), t);
            }
            op => {
                let key = f.str("tenant")?;
                let id = self
                    .get(key)
                    .map(|t| t.tenant_id.clone())
                    .ok_or_else(|| format!("no tenant '{key}'"))?;
                if let Some(t) = self.tenants.get_mut(&id) {
                    if op == "status" {
                        t.status = f.str("status")?.to_string();
                    } else {
                        t.plan = f.str("plan")?.to_string();
                    }
                }
            }
        }
        Ok(())
    }
}

fn one_of(what: &str, value: &str, allowed: &[&str]) -> Result<(), String> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "{what} '{value}' is not one of {}",
            allowed.join(", ")
        ))
    }
}

fn tenant_of(f: &Fields<'_>, offset: u64) -> Result<Tenant, String> {
    let tenant_id = f.str("tenant_id")?.to_string();
    crate::log::check_tenant(&tenant_id).map_err(|e| e.to_string())?;
    if tenant_id.starts_with('_') {
        return Err("tenant ids starting with '_' are reserved for the engine".to_string());
    }
    let name = f.str("name")?.to_string();
    check_name("a tenant name", &name)?;
    let slug = f.str("slug")?.to_string();
    check_name("a tenant slug", &slug)?;
    let plan = f.str("plan")?.to_string();
    one_of("plan", &plan, &PLANS)?;
    let metadata = match f.value("metadata") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err("'metadata' must be a JSON object".to_string()),
    };
    Ok(Tenant {
        tenant_id,
        name,
        slug,
        plan,
        status: "active".to_string(),
        metadata,
        created_at: f.f64("created_at")?,
        offset,
    })
}

/// Builders of tenant events.
pub mod events {
    use super::*;

    fn event(body: Value) -> Event {
        Event::from_value(Family::Tenant, body)
    }

    /// A new tenant; its fields are checked here.
    pub fn create(
        tenant_id: &str,
        name: &str,
        slug: &str,
        plan: &str,
        metadata: Map<String, Value>,
        now: f64,
    ) -> Result<Event, String> {
        let e = event(json!({
            "op": "create",
            "tenant_id": tenant_id,
            "name": name,
            "slug": slug,
            "plan": plan,
            "metadata": metadata,
            "created_at": now,
        }));
        tenant_of(&Fields(&e.body), 0)?;
        Ok(e)
    }

    /// A status change (`active`, `suspended`, `deleted`) of the tenant with this id or slug.
    pub fn status(tenant: &str, status: &str) -> Result<Event, String> {
        one_of("status", status, &STATUSES)?;
        Ok(event(
            json!({"op": "status", "tenant": tenant, "status": status}),
        ))
    }

    /// A plan change.
    pub fn plan(tenant: &str, plan: &str) -> Result<Event, String> {
        one_of("plan", plan, &PLANS)?;
        Ok(event(json!({"op": "plan", "tenant": tenant, "plan": plan})))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(
        r: &mut TenantRegistry,
        id: &str,
        name: &str,
        slug: &str,
        at: u64,
    ) -> Result<(), String> {
        let e = events::create(id, name, slug, "free", Map::new(), at as f64)?;
        r.apply(&e, at)
    }

    #[test]
    fn slugs_and_names_are_unique_and_ids_never_reused() {
        // Proves the registry's uniqueness rules, including after a deletion.
        let mut r = TenantRegistry::default();
        create(&mut r, "acme", "Acme", "acme", 1).unwrap();
        assert!(create(&mut r, "acme2", "Acme", "acme2", 2)
            .unwrap_err()
            .contains("named"));
        assert!(create(&mut r, "acme3", "Other", "acme", 3)
            .unwrap_err()
            .contains("slug"));
        r.apply(&events::status("acme", "deleted").unwrap(), 4)
            .unwrap();
        assert!(create(&mut r, "acme", "New", "new", 5)
            .unwrap_err()
            .contains("never reused"));
        create(&mut r, "acme-2", "Acme", "acme", 6).unwrap();
        assert_eq!(
            r.get("acme").unwrap().tenant_id,
            "acme",
            "an id wins over a slug"
        );
        assert_eq!(r.list("")[0].tenant_id, "acme-2", "newest first");
        assert!(r
            .check(&events::plan("acme", "pro").unwrap())
            .unwrap_err()
            .contains("deleted"));
    }

    #[test]
    fn bad_fields_are_refused_before_anything_is_sent() {
        // Proves the builders refuse an unknown plan or status, a control character, '_' ids.
        assert!(events::create("t", "T", "t", "gold", Map::new(), 1.0).is_err());
        assert!(events::create("t\n", "T", "t", "free", Map::new(), 1.0).is_err());
        assert!(events::create("_system", "T", "t", "free", Map::new(), 1.0).is_err());
        assert!(events::status("t", "frozen").is_err());
    }
}
