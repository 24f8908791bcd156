//! Alerts of one tenant: fired, resolved (only from firing) and acknowledged (from firing or
//! resolved), as the reference's alert records. Pure.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::event::{check_name, Event, Family, Fields};

/// The comparison an alert's rule made.
pub const OPERATORS: [&str; 5] = ["gt", "lt", "gte", "lte", "eq"];

/// An alert record.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Alert {
    /// Id.
    pub alert_id: String,
    /// The rule that fired (id and name; may be empty for a manual alert).
    pub rule_id: String,
    /// The rule's name.
    pub rule_name: String,
    /// The agent.
    pub agent_name: String,
    /// The metric.
    pub metric: String,
    /// The value that fired it.
    pub value: f64,
    /// The rule's threshold.
    pub threshold: f64,
    /// The rule's operator.
    pub operator: String,
    /// `firing`, `resolved` or `acked`.
    pub status: String,
    /// Unix seconds.
    pub fired_at: f64,
    /// When resolved.
    pub resolved_at: Option<f64>,
    /// When acknowledged.
    pub acked_at: Option<f64>,
    /// By whom.
    pub acked_by: String,
    /// Text.
    pub message: String,
    /// Offset of the firing event.
    pub offset: u64,
}

impl Alert {
    /// The reference's shape.
    pub fn to_json(&self) -> Value {
        json!({
            "alert_id": self.alert_id,
            "rule_id": self.rule_id,
            "rule_name": self.rule_name,
            "agent_name": self.agent_name,
            "metric": self.metric,
            "value": self.value,
            "threshold": self.threshold,
            "operator": self.operator,
            "status": self.status,
            "fired_at": self.fired_at,
            "resolved_at": self.resolved_at,
            "acked_at": self.acked_at,
            "acked_by": self.acked_by,
            "message": self.message,
        })
    }
}

/// The reference's default message: `<agent>.<metric> <op> <threshold> (value=<4 sig digits>)`.
pub fn default_message(
    agent: &str,
    metric: &str,
    operator: &str,
    threshold: f64,
    value: f64,
) -> String {
    format!(
        "{agent}.{metric} {operator} {} (value={})",
        super::super::ledger::export::python_float(threshold),
        significant(value, 4)
    )
}

/// Python's `format(x, '.4g')`.
fn significant(x: f64, digits: i32) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let exp = x.abs().log10().floor() as i32;
    if exp < -4 || exp >= digits {
        let mantissa = x / 10f64.powi(exp);
        let m = format!("{:.*}", (digits - 1).max(0) as usize, mantissa);
        let m = m.trim_end_matches('0').trim_end_matches('.');
        format!("{m}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    } else {
        let decimals = (digits - 1 - exp).max(0) as usize;
        let s = format!("{x:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    }
}

/// One tenant's alerts.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct AlertState {
    alerts: BTreeMap<String, Alert>,
}

impl AlertState {
    /// One alert.
    pub fn get(&self, alert_id: &str) -> Option<&Alert> {
        self.alerts.get(alert_id)
    }

    /// Newest first, filtered by status and agent when not empty, at most `limit`.
    pub fn list(&self, status: &str, agent: &str, limit: usize) -> Vec<&Alert> {
        let mut out: Vec<&Alert> = self
            .alerts
            .values()
            .filter(|a| status.is_empty() || a.status == status)
            .filter(|a| agent.is_empty() || a.agent_name == agent)
            .collect();
        out.sort_by(|a, b| {
            b.fired_at
                .total_cmp(&a.fired_at)
                .then(b.offset.cmp(&a.offset))
        });
        out.truncate(limit);
        out
    }

    /// Checks an event.
    pub fn check(&self, event: &Event) -> Result<(), String> {
        let f = Fields(&event.body);
        match event.op() {
            "fire" => {
                let a = alert_of(&f, 0)?;
                if self.alerts.contains_key(&a.alert_id) {
                    return Err(format!("alert '{}' exists", a.alert_id));
                }
                Ok(())
            }
            "resolve" | "ack" => {
                let id = f.str("alert_id")?;
                f.f64("ts")?;
                let a = self
                    .alerts
                    .get(id)
                    .ok_or_else(|| format!("no alert '{id}'"))?;
                match (event.op(), a.status.as_str()) {
                    ("resolve", "firing") | ("ack", "firing" | "resolved") => Ok(()),
                    (op, status) => Err(format!(
                        "alert '{id}' is {status}: it cannot be {}",
                        if op == "resolve" {
                            "resolved"
                        } else {
                            "acknowledged"
                        }
                    )),
                }
            }
            other => Err(format!("unknown alert op '{other}'")),
        }
    }

    /// Applies a checked event.
    pub fn apply(&mut self, event: &Event, offset: u64) -> Result<(), String> {
        let f = Fields(&event.body);
        if event.op() != "fire" {
            self.check(event)?;
        }
        match event.op() {
            "fire" => {
                // Built once and checked here.
                let a = alert_of(&f, offset)?;
                if self.alerts.contains_key(&a.alert_id) {
                    return Err(format!("alert '{}' exists", a.alert_id));
                }
                self.alerts.insert(a.alert_id.clone(), a);
            }
            op => {
                let ts = f.f64("ts")?;
                let by = f.opt_str("by")?.unwrap_or("").to_string();
                if let Some(a) = self.alerts.get_mut(f.str("alert_id")?) {
                    if op == "resolve" {
                        a.status = "resolved".to_string();
                        a.resolved_at = Some(ts);
                    } else {
                        a.status = "acked".to_string();
                        a.acked_at = Some(ts);
                        a.acked_by = by;
                    }
                }
            }
        }
        Ok(())
    }
}

fn alert_of(f: &Fields<'_>, offset: u64) -> Result<Alert, String> {
    let agent_name = f.str("agent_name")?.to_string();
    check_name("an agent name", &agent_name)?;
    let metric = f.str("metric")?.to_string();
    check_name("a metric", &metric)?;
    let operator = f.str("operator")?.to_string();
    if !OPERATORS.contains(&operator.as_str()) {
        return Err(format!(
            "operator '{operator}' is not one of {}",
            OPERATORS.join(", ")
        ));
    }
    Ok(Alert {
        alert_id: f.str("alert_id")?.to_string(),
        rule_id: f.opt_str("rule_id")?.unwrap_or("").to_string(),
        rule_name: f.opt_str("rule_name")?.unwrap_or("").to_string(),
        agent_name,
        metric,
        value: f.f64("value")?,
        threshold: f.f64("threshold")?,
        operator,
        status: "firing".to_string(),
        fired_at: f.f64("ts")?,
        resolved_at: None,
        acked_at: None,
        acked_by: String::new(),
        message: f.str("message")?.to_string(),
        offset,
    })
}

/// Builders of alert events.
pub mod events {
    use super::*;

    fn event(body: Value) -> Event {
        Event::from_value(Family::Alert, body)
    }

    /// Fires an alert; an empty message becomes the reference's default.
    #[allow(clippy::too_many_arguments)]
    pub fn fire(
        alert_id: &str,
        rule_name: &str,
        agent: &str,
        metric: &str,
        operator: &str,
        threshold: f64,
        value: f64,
        message: &str,
        now: f64,
    ) -> Result<Event, String> {
        let message = if message.is_empty() {
            default_message(agent, metric, operator, threshold, value)
        } else {
            message.to_string()
        };
        let e = event(json!({
            "op": "fire", "alert_id": alert_id, "rule_id": "", "rule_name": rule_name,
            "agent_name": agent, "metric": metric, "operator": operator,
            "threshold": threshold, "value": value, "message": message, "ts": now,
        }));
        alert_of(&Fields(&e.body), 0)?;
        Ok(e)
    }

    /// Resolves a firing alert.
    pub fn resolve(alert_id: &str, now: f64) -> Event {
        event(json!({"op": "resolve", "alert_id": alert_id, "ts": now}))
    }

    /// Acknowledges a firing or resolved alert.
    pub fn ack(alert_id: &str, by: &str, now: f64) -> Event {
        event(json!({"op": "ack", "alert_id": alert_id, "by": by, "ts": now}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_transitions_follow_the_reference() {
        // Proves resolve only from firing, ack from firing or resolved, and the default text.
        let mut s = AlertState::default();
        let e = events::fire("a1", "r", "bot", "latency", "gt", 100.0, 123.456, "", 1.0).unwrap();
        assert_eq!(e.body["message"], "bot.latency gt 100.0 (value=123.5)");
        s.apply(&e, 0).unwrap();
        s.apply(&events::resolve("a1", 2.0), 1).unwrap();
        assert!(s.check(&events::resolve("a1", 3.0)).is_err());
        s.apply(&events::ack("a1", "ops", 4.0), 2).unwrap();
        assert!(s.check(&events::ack("a1", "ops", 5.0)).is_err());
        assert_eq!(s.list("acked", "", 10).len(), 1);
        assert_eq!(significant(0.000012345, 4), "1.234e-05");
        assert_eq!(significant(1234567.0, 4), "1.235e+06");
    }
}
