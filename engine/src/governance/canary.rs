//! Canary experiments of one tenant: a stable and a canary agent, a traffic split, outcomes
//! per cohort, and the reference's promote / rollback checks. Routing is sticky (the
//! reference draws a random number per request: W14): an entity always lands in the same
//! cohort of an experiment. Pure.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::event::{check_name, Event, Family, Fields};

/// Statuses (any transition is allowed, as the reference's).
pub const STATUSES: [&str; 4] = ["active", "promoted", "rolled_back", "paused"];

/// An experiment.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Experiment {
    /// Id.
    pub experiment_id: String,
    /// Unique name.
    pub name: String,
    /// The agent most traffic goes to.
    pub stable_agent: String,
    /// The agent under test.
    pub canary_agent: String,
    /// Fraction of traffic to the canary, 0..=1.
    pub split: f64,
    /// Canary outcomes needed before a check can pass.
    pub min_requests: u64,
    /// Promote at or above this canary success rate.
    pub promote_threshold: f64,
    /// Roll back below this one.
    pub rollback_threshold: f64,
    /// `active`, `promoted`, `rolled_back`, `paused`.
    pub status: String,
    /// Unix seconds.
    pub created_at: f64,
    /// Outcomes per cohort: (total, successes, latency sum).
    pub cohorts: BTreeMap<String, (u64, u64, f64)>,
}

impl Experiment {
    /// The reference's shape, with per-cohort counts.
    pub fn to_json(&self) -> Value {
        let cohort = |c: &str| {
            let (n, ok, lat) = self.cohorts.get(c).copied().unwrap_or((0, 0, 0.0));
            json!({
                "total": n,
                "successes": ok,
                "success_rate": if n == 0 { 0.0 } else { ok as f64 / n as f64 },
                "avg_latency_ms": if n == 0 { 0.0 } else { lat / n as f64 },
            })
        };
        json!({
            "experiment_id": self.experiment_id,
            "name": self.name,
            "stable_agent": self.stable_agent,
            "canary_agent": self.canary_agent,
            "split": self.split,
            "min_requests": self.min_requests,
            "promote_threshold": self.promote_threshold,
            "rollback_threshold": self.rollback_threshold,
            "status": self.status,
            "created_at": self.created_at,
            "stable": cohort("stable"),
            "canary": cohort("canary"),
        })
    }

    fn canary_rate(&self) -> Option<f64> {
        let (n, ok, _) = self.cohorts.get("canary").copied().unwrap_or((0, 0, 0.0));
        (self.status == "active" && n >= self.min_requests && n > 0).then(|| ok as f64 / n as f64)
    }

    /// Active, enough canary outcomes, and a success rate at or above the promote threshold.
    pub fn should_promote(&self) -> bool {
        self.canary_rate()
            .is_some_and(|r| r >= self.promote_threshold)
    }

    /// Active, enough canary outcomes, and a success rate below the rollback threshold.
    pub fn should_rollback(&self) -> bool {
        self.canary_rate()
            .is_some_and(|r| r < self.rollback_threshold)
    }

    /// The cohort of `entity`: `canary` when the experiment is active and the entity's
    /// bucket (SHA-256 of `<experiment_id>:<entity>`, first 8 bytes, mod 10,000) is below
    /// `split × 10,000`; else `stable`. The same entity always gets the same cohort.
    pub fn route(&self, entity: &str) -> &'static str {
        if self.status != "active" {
            return "stable";
        }
        let digest = Sha256::digest(format!("{}:{entity}", self.experiment_id).as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(digest.get(..8).unwrap_or(&[0; 8]));
        let bucket = u64::from_be_bytes(first) % 10_000;
        if (bucket as f64) < self.split * 10_000.0 {
            "canary"
        } else {
            "stable"
        }
    }
}

/// One tenant's experiments.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct CanaryState {
    experiments: BTreeMap<String, Experiment>,
}

impl CanaryState {
    /// By name, or else id.
    pub fn get(&self, name_or_id: &str) -> Option<&Experiment> {
        self.experiments.get(name_or_id).or_else(|| {
            self.experiments
                .values()
                .find(|e| e.experiment_id == name_or_id)
        })
    }

    /// By name.
    pub fn list(&self) -> Vec<&Experiment> {
        self.experiments.values().collect()
    }

    /// Checks an event.
    pub fn check(&self, event: &Event) -> Result<(), String> {
        let f = Fields(&event.body);
        match event.op() {
            "create" => {
                let e = experiment_of(&f)?;
                if self.experiments.contains_key(&e.name) {
                    return Err(format!("an experiment named '{}' exists", e.name));
                }
                Ok(())
            }
            "outcome" => {
                let key = f.str("experiment")?;
                self.get(key)
                    .ok_or_else(|| format!("no experiment '{key}'"))?;
                let cohort = f.str("cohort")?;
                if cohort != "stable" && cohort != "canary" {
                    return Err(format!("cohort '{cohort}' is not stable or canary"));
                }
                f.bool("success")?;
                if f.f64("latency_ms")? < 0.0 {
                    return Err("a latency must not be negative".to_string());
                }
                Ok(())
            }
            "status" => {
                let key = f.str("experiment")?;
                self.get(key)
                    .ok_or_else(|| format!("no experiment '{key}'"))?;
                let status = f.str("status")?;
                if !STATUSES.contains(&status) {
                    return Err(format!(
                        "status '{status}' is not one of {}",
                        STATUSES.join(", ")
                    ));
                }
                Ok(())
            }
            other => Err(format!("unknown canary op '{other}'")),
        }
    }

    /// Applies a checked event.
    pub fn apply(&mut self, event: &Event) -> Result<(), String> {
        self.check(event)?;
        let f = Fields(&event.body);
        if event.op() == "create" {
            let e = experiment_of(&f)?;
            self.experiments.insert(e.name.clone(), e);
            return Ok(());
        }
        let name = self.get(f.str("experiment")?).map(|e| e.name.clone());
        let Some(e) = name.and_then(|n| self.experiments.get_mut(&n)) else {
            return Ok(());
        };
        if event.op() == "outcome" {
            let c = e
                .cohorts
                .entry(f.str("cohort")?.to_string())
                .or_insert((0, 0, 0.0));
            c.0 += 1;
            c.1 += u64::from(f.bool("success")?);
            c.2 += f.f64("latency_ms")?;
        } else {
            e.status = f.str("status")?.to_string();
        }
        Ok(())
    }
}

fn experiment_of(f: &Fields<'_>) -> Result<Experiment, String> {
    let name = f.str("name")?.to_string();
    check_name("an experiment name", &name)?;
    let stable_agent = f.str("stable_agent")?.to_string();
    check_name("an agent name", &stable_agent)?;
    let canary_agent = f.str("canary_agent")?.to_string();
    check_name("an agent name", &canary_agent)?;
    let split = f.f64("split")?;
    if !(0.0..=1.0).contains(&split) {
        return Err("split must be between 0 and 1".to_string());
    }
    let promote = f.f64("promote_threshold")?;
    let rollback = f.f64("rollback_threshold")?;
    if promote < rollback {
        return Err("promote_threshold must be at least rollback_threshold".to_string());
    }
    Ok(Experiment {
        experiment_id: f.str("experiment_id")?.to_string(),
        name,
        stable_agent,
        canary_agent,
        split,
        min_requests: u64::try_from(f.i64("min_requests")?)
            .map_err(|_| "min_requests must not be negative")?,
        promote_threshold: promote,
        rollback_threshold: rollback,
        status: "active".to_string(),
        created_at: f.f64("created_at")?,
        cohorts: BTreeMap::new(),
    })
}

/// Builders of canary events.
pub mod events {
    use super::*;

    fn event(body: Value) -> Event {
        Event::from_value(Family::Canary, body)
    }

    /// Creates an experiment.
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        experiment_id: &str,
        name: &str,
        stable: &str,
        canary: &str,
        split: f64,
        min_requests: i64,
        promote: f64,
        rollback: f64,
        now: f64,
    ) -> Result<Event, String> {
        let e = event(json!({
            "op": "create", "experiment_id": experiment_id, "name": name,
            "stable_agent": stable, "canary_agent": canary, "split": split,
            "min_requests": min_requests, "promote_threshold": promote,
            "rollback_threshold": rollback, "created_at": now,
        }));
        experiment_of(&Fields(&e.body))?;
        Ok(e)
    }

    /// One outcome of a cohort.
    pub fn outcome(
        outcome_id: &str,
        experiment: &str,
        cohort: &str,
        success: bool,
        latency_ms: f64,
        now: f64,
    ) -> Event {
        event(json!({
            "op": "outcome", "outcome_id": outcome_id, "experiment": experiment,
            "cohort": cohort, "success": success, "latency_ms": latency_ms, "ts": now,
        }))
    }

    /// A status change.
    pub fn status(experiment: &str, status: &str, now: f64) -> Event {
        event(json!({"op": "status", "experiment": experiment, "status": status, "ts": now}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_and_sticky_routing() {
        // Proves create validation, the promote/rollback gates and that routing is sticky.
        assert!(events::create("e", "x", "s", "c", 1.5, 10, 0.9, 0.8, 0.0).is_err());
        assert!(events::create("e", "x", "s", "c", 0.5, 10, 0.7, 0.8, 0.0).is_err());
        let mut s = CanaryState::default();
        s.apply(&events::create("e1", "exp", "s", "c", 0.5, 3, 0.9, 0.5, 0.0).unwrap())
            .unwrap();
        for i in 0..3 {
            s.apply(&events::outcome(
                &format!("o{i}"),
                "exp",
                "canary",
                true,
                5.0,
                1.0,
            ))
            .unwrap();
        }
        let e = s.get("exp").unwrap();
        assert!(e.should_promote() && !e.should_rollback());
        let first: Vec<&str> = (0..50).map(|i| e.route(&format!("user-{i}"))).collect();
        let again: Vec<&str> = (0..50).map(|i| e.route(&format!("user-{i}"))).collect();
        assert_eq!(first, again);
        assert!(first.contains(&"canary") && first.contains(&"stable"));
        s.apply(&events::status("exp", "paused", 2.0)).unwrap();
        assert!(!s.get("exp").unwrap().should_promote());
        assert_eq!(s.get("exp").unwrap().route("user-1"), "stable");
    }
}
