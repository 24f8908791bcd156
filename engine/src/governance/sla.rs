//! The SLA view of one tenant: contracts (one per agent), observations, and breaches derived
//! from them when a metric *enters* breach (the reference re-emits one on every observation:
//! W14). Pure: no I/O, no clock; "now" is an argument of the queries.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::event::{check_name, Event, Family, Fields};

/// Observations needed in a contract's window before breaches are considered (the reference's).
pub const MIN_OBSERVATIONS: usize = 10;

/// The four metrics a contract bounds, in the order breaches are derived.
const METRICS: [&str; 4] = ["p50", "p95", "p99", "error_rate"];

/// An SLA contract.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Contract {
    /// The contract's id (a new one each time the agent's contract is defined).
    pub contract_id: String,
    /// The agent it binds (one contract per agent).
    pub agent_name: String,
    /// Latency bounds in milliseconds: p50 ≤ p95 ≤ p99.
    pub p50_ms: f64,
    /// 95th percentile bound.
    pub p95_ms: f64,
    /// 99th percentile bound.
    pub p99_ms: f64,
    /// Failed fraction bound, 0..=1.
    pub error_rate: f64,
    /// The window observations are taken over, in seconds.
    pub window_s: f64,
    /// Unix seconds.
    pub created_at: f64,
}

impl Contract {
    /// The reference's record shape.
    pub fn to_json(&self) -> Value {
        json!({
            "contract_id": self.contract_id,
            "agent_name": self.agent_name,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms,
            "error_rate": self.error_rate,
            "window_s": self.window_s,
            "enabled": true,
            "created_at": self.created_at,
        })
    }

    fn threshold(&self, metric: &str) -> f64 {
        match metric {
            "p50" => self.p50_ms,
            "p95" => self.p95_ms,
            "p99" => self.p99_ms,
            _ => self.error_rate,
        }
    }
}

/// A breach: a metric entered breach with this observation.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Breach {
    /// `<observation id>:<metric>` (derived, so the same in every rebuild).
    pub breach_id: String,
    /// The contract breached.
    pub contract_id: String,
    /// The agent.
    pub agent_name: String,
    /// `p50`, `p95`, `p99` or `error_rate`.
    pub breach_type: String,
    /// The observed value over the window.
    pub observed: f64,
    /// The contract's bound.
    pub threshold: f64,
    /// When (the observation's time).
    pub ts: f64,
}

impl Breach {
    /// The reference's record shape (milliseconds rounded to 2 decimals, an error rate to 4:
    /// the reference rounds both to 2, which hides error-rate breaches: W14).
    pub fn to_json(&self) -> Value {
        let digits = if self.breach_type == "error_rate" {
            4
        } else {
            2
        };
        json!({
            "breach_id": self.breach_id,
            "contract_id": self.contract_id,
            "agent_name": self.agent_name,
            "breach_type": self.breach_type,
            "observed": round(self.observed, digits),
            "threshold": round(self.threshold, digits),
            "ts": self.ts,
        })
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Observation {
    latency_ms: f64,
    success: bool,
    ts: f64,
}

/// Window statistics of one agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    /// The agent.
    pub agent_name: String,
    /// Observations in the window.
    pub total: usize,
    /// Latency percentiles (linear interpolation) and mean, in milliseconds.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Mean.
    pub avg_ms: f64,
    /// Failed fraction.
    pub error_rate: f64,
    /// The window, in seconds.
    pub window_s: f64,
}

impl Stats {
    /// The reference's shape (`avg_ms` rounded to 2 decimals, `error_rate` to 4).
    pub fn to_json(&self) -> Value {
        json!({
            "agent_name": self.agent_name,
            "total": self.total,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms,
            "avg_ms": round(self.avg_ms, 2),
            "error_rate": round(self.error_rate, 4),
            "window_s": self.window_s,
        })
    }
}

/// Linear interpolation at `p/100 · (n − 1)` on sorted values (the reference's).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = p / 100.0 * (sorted.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    let (Some(a), Some(b)) = (sorted.get(lo), sorted.get(hi)) else {
        return 0.0;
    };
    a + (b - a) * (rank - lo as f64)
}

/// One tenant's SLA state.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct SlaState {
    contracts: BTreeMap<String, Contract>,
    observations: BTreeMap<String, Vec<Observation>>,
    /// Per agent, the metrics currently in breach.
    in_breach: BTreeMap<String, Vec<String>>,
    breaches: Vec<Breach>,
}

impl SlaState {
    /// The contracts, by agent name.
    pub fn contracts(&self) -> Vec<&Contract> {
        self.contracts.values().collect()
    }

    /// One agent's contract.
    pub fn contract(&self, agent: &str) -> Option<&Contract> {
        self.contracts.get(agent)
    }

    /// Breaches, newest first (of one agent when `agent` is not empty), at most `limit`.
    pub fn breaches(&self, agent: &str, limit: usize) -> Vec<&Breach> {
        self.breaches
            .iter()
            .rev()
            .filter(|b| agent.is_empty() || b.agent_name == agent)
            .take(limit)
            .collect()
    }

    /// Every breach, oldest first.
    pub fn all_breaches(&self) -> &[Breach] {
        &self.breaches
    }

    /// Statistics of `agent` over the window ending at `now` (its contract's window, else
    /// 3600 s).
    pub fn stats(&self, agent: &str, now: f64) -> Stats {
        let window = self.contracts.get(agent).map_or(3600.0, |c| c.window_s);
        self.window_stats(agent, now, window)
    }

    fn window_stats(&self, agent: &str, now: f64, window: f64) -> Stats {
        // Observations are kept in time order: the window is found by binary search.
        let in_window: &[Observation] = self
            .observations
            .get(agent)
            .map(|all| {
                let from = all.partition_point(|o| o.ts < now - window);
                let to = all.partition_point(|o| o.ts <= now);
                all.get(from..to.max(from)).unwrap_or(&[])
            })
            .unwrap_or(&[]);
        let mut latencies: Vec<f64> = in_window.iter().map(|o| o.latency_ms).collect();
        latencies.sort_by(f64::total_cmp);
        let total = latencies.len();
        let failed = in_window.iter().filter(|o| !o.success).count();
        Stats {
            agent_name: agent.to_string(),
            total,
            p50_ms: percentile(&latencies, 50.0),
            p95_ms: percentile(&latencies, 95.0),
            p99_ms: percentile(&latencies, 99.0),
            avg_ms: if total == 0 {
                0.0
            } else {
                latencies.iter().sum::<f64>() / total as f64
            },
            error_rate: if total == 0 {
                0.0
            } else {
                failed as f64 / total as f64
            },
            window_s: window,
        }
    }

    /// Checks `event` against this state.
    pub fn check(&self, event: &Event) -> Result<(), String> {
        let f = Fields(&event.body);
        match event.op() {
            "define" => contract_of(&f).map(|_| ()),
            "record" => observation_of(&f).map(|_| ()),
            other => Err(format!("unknown sla op '{other}'")),
        }
    }

    /// Applies a checked event; an observation derives the breaches it causes.
    pub fn apply(&mut self, event: &Event) -> Result<(), String> {
        let f = Fields(&event.body);
        match event.op() {
            "define" => {
                let c = contract_of(&f)?;
                self.in_breach.remove(&c.agent_name);
                self.contracts.insert(c.agent_name.clone(), c);
            }
            "record" => {
                let (obs_id, agent, o) = observation_of(&f)?;
                let ts = o.ts;
                let all = self.observations.entry(agent.clone()).or_default();
                // In time order (events usually arrive so: the insert is then a push).
                let at = all.partition_point(|x| x.ts <= ts);
                all.insert(at, o);
                self.derive_breaches(&obs_id, &agent, ts);
            }
            other => return Err(format!("unknown sla op '{other}'")),
        }
        Ok(())
    }

    fn derive_breaches(&mut self, obs_id: &str, agent: &str, now: f64) {
        let Some(contract) = self.contracts.get(agent).cloned() else {
            return;
        };
        let stats = self.window_stats(agent, now, contract.window_s);
        if stats.total < MIN_OBSERVATIONS {
            return;
        }
        let breached = self.in_breach.entry(agent.to_string()).or_default();
        for metric in METRICS {
            let observed = match metric {
                "p50" => stats.p50_ms,
                "p95" => stats.p95_ms,
                "p99" => stats.p99_ms,
                _ => stats.error_rate,
            };
            let threshold = contract.threshold(metric);
            let over = observed > threshold;
            let was = breached.iter().any(|m| m == metric);
            if over && !was {
                breached.push(metric.to_string());
                self.breaches.push(Breach {
                    breach_id: format!("{obs_id}:{metric}"),
                    contract_id: contract.contract_id.clone(),
                    agent_name: agent.to_string(),
                    breach_type: metric.to_string(),
                    observed,
                    threshold,
                    ts: now,
                });
            } else if !over && was {
                breached.retain(|m| m != metric);
            }
        }
    }
}

fn contract_of(f: &Fields<'_>) -> Result<Contract, String> {
    let agent_name = f.str("agent_name")?.to_string();
    check_name("an agent name", &agent_name)?;
    let c = Contract {
        contract_id: f.str("contract_id")?.to_string(),
        agent_name,
        p50_ms: f.f64("p50_ms")?,
        p95_ms: f.f64("p95_ms")?,
        p99_ms: f.f64("p99_ms")?,
        error_rate: f.f64("error_rate")?,
        window_s: f.f64("window_s")?,
        created_at: f.f64("created_at")?,
    };
    if !(c.p50_ms <= c.p95_ms && c.p95_ms <= c.p99_ms) {
        return Err("SLA thresholds must satisfy p50 ≤ p95 ≤ p99".to_string());
    }
    if c.p50_ms < 0.0 {
        return Err("SLA thresholds must not be negative".to_string());
    }
    if !(0.0..=1.0).contains(&c.error_rate) {
        return Err("the error rate must be between 0 and 1".to_string());
    }
    if c.window_s <= 0.0 {
        return Err("the window must be positive".to_string());
    }
    Ok(c)
}

fn observation_of(f: &Fields<'_>) -> Result<(String, String, Observation), String> {
    let agent = f.str("agent_name")?.to_string();
    check_name("an agent name", &agent)?;
    let latency_ms = f.f64("latency_ms")?;
    if latency_ms < 0.0 {
        return Err("a latency must not be negative".to_string());
    }
    Ok((
        f.str("obs_id")?.to_string(),
        agent,
        Observation {
            latency_ms,
            success: f.bool("success")?,
            ts: f.f64("ts")?,
        },
    ))
}

/// Builders of SLA events.
pub mod events {
    use super::*;

    fn event(body: Value) -> Event {
        Event::from_value(Family::Sla, body)
    }

    /// Defines (or replaces) an agent's contract; the thresholds are checked here.
    #[allow(clippy::too_many_arguments)]
    pub fn define(
        contract_id: &str,
        agent: &str,
        p50_ms: f64,
        p95_ms: f64,
        p99_ms: f64,
        error_rate: f64,
        window_s: f64,
        now: f64,
    ) -> Result<Event, String> {
        let e = event(json!({
            "op": "define",
            "contract_id": contract_id,
            "agent_name": agent,
            "p50_ms": p50_ms,
            "p95_ms": p95_ms,
            "p99_ms": p99_ms,
            "error_rate": error_rate,
            "window_s": window_s,
            "created_at": now,
        }));
        contract_of(&Fields(&e.body))?;
        Ok(e)
    }

    /// One observation of an agent's call.
    pub fn record(
        obs_id: &str,
        agent: &str,
        latency_ms: f64,
        success: bool,
        now: f64,
    ) -> Result<Event, String> {
        let e = event(json!({
            "op": "record",
            "obs_id": obs_id,
            "agent_name": agent,
            "latency_ms": latency_ms,
            "success": success,
            "ts": now,
        }));
        observation_of(&Fields(&e.body))?;
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a30_thresholds_are_ordered_and_a_redefinition_replaces() {
        // Proves A30: p50 > p95 is refused with the reference's message; redefining keeps one.
        let err = events::define("c1", "a", 3.0, 2.0, 5.0, 0.05, 3600.0, 1.0).unwrap_err();
        assert!(err.contains("p50 ≤ p95 ≤ p99"), "{err}");
        let mut s = SlaState::default();
        s.apply(&events::define("c1", "a", 1.0, 2.0, 3.0, 0.05, 3600.0, 1.0).unwrap())
            .unwrap();
        s.apply(&events::define("c2", "a", 10.0, 20.0, 30.0, 0.1, 60.0, 2.0).unwrap())
            .unwrap();
        assert_eq!(s.contracts().len(), 1);
        assert_eq!(s.contract("a").unwrap().p99_ms, 30.0);
        assert_eq!(s.contract("a").unwrap().contract_id, "c2");
    }

    #[test]
    fn a31_breaches_need_ten_observations_and_are_derived_once_on_entering() {
        // Proves A31 and W14: nothing below 10 observations; then p50/p95/p99 breach with
        // observed > threshold, once; a recovery and a new excursion breach again.
        let mut s = SlaState::default();
        s.apply(&events::define("c", "a", 100.0, 200.0, 300.0, 0.5, 3600.0, 0.0).unwrap())
            .unwrap();
        for i in 0..9 {
            s.apply(&events::record(&format!("o{i}"), "a", 1000.0, true, 10.0 + i as f64).unwrap())
                .unwrap();
        }
        assert!(s.all_breaches().is_empty(), "9 observations: no breach yet");
        s.apply(&events::record("o9", "a", 1000.0, true, 20.0).unwrap())
            .unwrap();
        let kinds: Vec<&str> = s
            .all_breaches()
            .iter()
            .map(|b| b.breach_type.as_str())
            .collect();
        assert_eq!(kinds, ["p50", "p95", "p99"]);
        assert!(s.all_breaches().iter().all(|b| b.observed > b.threshold));
        s.apply(&events::record("o10", "a", 1000.0, true, 21.0).unwrap())
            .unwrap();
        assert_eq!(s.all_breaches().len(), 3, "still in breach: not re-emitted");
        let st = s.stats("a", 21.0);
        assert_eq!((st.total, st.p50_ms, st.error_rate), (11, 1000.0, 0.0));
        assert_eq!(s.breaches("a", 2).len(), 2);
    }

    #[test]
    fn percentiles_interpolate_linearly() {
        // Proves the reference's percentile: rank p/100·(n−1), linear between neighbours.
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 50.0), 2.5);
        assert_eq!(percentile(&v, 100.0), 4.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}
