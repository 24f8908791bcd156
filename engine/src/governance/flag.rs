//! Feature flags of one tenant: definitions (bool, string or number; a default; a rollout
//! percentage) and targeting rules, evaluated as the reference's FlagEvaluator: a disabled
//! flag gives its default; the rollout gate puts an entity in when
//! `int(md5("<flag_id>:<entity>"), 16) % 100 < rollout_pct`; then the rules, highest priority
//! first (then oldest), the first match returning its value; else the default. Pure.

use std::collections::BTreeMap;

use md5::{Digest, Md5};
use serde_json::{json, Map, Value};

use super::event::{check_name, Event, Family, Fields};
use super::policy::{Condition, Op};

/// Flag types.
pub const TYPES: [&str; 3] = ["bool", "string", "number"];

/// A flag definition.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Flag {
    /// Id.
    pub flag_id: String,
    /// Unique name.
    pub name: String,
    /// `bool`, `string` or `number`.
    pub flag_type: String,
    /// Its value when no rule applies.
    pub default_value: Value,
    /// Free text.
    pub description: String,
    /// A disabled flag always gives its default.
    pub enabled: bool,
    /// 0..=100.
    pub rollout_pct: u8,
    /// Unix seconds.
    pub created_at: f64,
    /// Targeting rules, in evaluation order.
    pub rules: Vec<FlagRule>,
}

/// A targeting rule.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FlagRule {
    /// Id.
    pub rule_id: String,
    /// Higher first.
    pub priority: i64,
    /// The condition on the context.
    pub condition: Condition,
    /// What the flag gives when it holds.
    pub return_value: Value,
    /// Unix seconds.
    pub created_at: f64,
    /// Offset of its event (the last tie-break).
    pub offset: u64,
}

impl Flag {
    /// The reference's shape, rules included.
    pub fn to_json(&self) -> Value {
        json!({
            "flag_id": self.flag_id,
            "name": self.name,
            "flag_type": self.flag_type,
            "default_value": self.default_value,
            "description": self.description,
            "enabled": self.enabled,
            "rollout_pct": self.rollout_pct,
            "created_at": self.created_at,
            "rules": self.rules.iter().map(|r| json!({
                "rule_id": r.rule_id,
                "priority": r.priority,
                "condition_key": r.condition.field,
                "condition_op": r.condition.op.name(),
                "condition_value": r.condition.value,
                "return_value": r.return_value,
                "created_at": r.created_at,
            })).collect::<Vec<_>>(),
        })
    }

    /// Evaluates the flag for `context`: `(value, reason)`.
    pub fn evaluate(&self, context: &Map<String, Value>) -> (Value, &'static str) {
        if !self.enabled {
            return (self.default_value.clone(), "disabled");
        }
        let entity = ["entity_id", "agent_name"]
            .iter()
            .find_map(|k| context.get(*k).and_then(Value::as_str))
            .unwrap_or("");
        if !in_rollout(&self.flag_id, entity, self.rollout_pct) {
            return (self.default_value.clone(), "outside rollout");
        }
        match self.rules.iter().find(|r| r.condition.matches(context)) {
            Some(rule) => (rule.return_value.clone(), "rule matched"),
            None => (self.default_value.clone(), "default"),
        }
    }
}

/// The reference's rollout gate: `int(md5("<flag_id>:<entity>").hexdigest(), 16) % 100 < pct`.
pub fn in_rollout(flag_id: &str, entity: &str, pct: u8) -> bool {
    match pct {
        100.. => true,
        0 => false,
        _ => {
            let digest: [u8; 16] = Md5::digest(format!("{flag_id}:{entity}").as_bytes()).into();
            u128::from_be_bytes(digest) % 100 < u128::from(pct)
        }
    }
}

fn typed(flag_type: &str, v: &Value) -> Result<(), String> {
    let ok = match flag_type {
        "bool" => v.is_boolean(),
        "string" => v.is_string(),
        _ => v.is_number(),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{v} is not a {flag_type} value"))
    }
}

/// One tenant's flags.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct FlagState {
    flags: BTreeMap<String, Flag>,
}

impl FlagState {
    /// By name, or else id.
    pub fn get(&self, name_or_id: &str) -> Option<&Flag> {
        self.flags
            .get(name_or_id)
            .or_else(|| self.flags.values().find(|f| f.flag_id == name_or_id))
    }

    /// By name.
    pub fn list(&self) -> Vec<&Flag> {
        self.flags.values().collect()
    }

    /// Checks an event.
    pub fn check(&self, event: &Event) -> Result<(), String> {
        let f = Fields(&event.body);
        match event.op() {
            "define" => {
                let flag = flag_of(&f)?;
                if self.flags.contains_key(&flag.name) {
                    return Err(format!("a flag named '{}' exists", flag.name));
                }
                Ok(())
            }
            "rule" => {
                let key = f.str("flag")?;
                let flag = self.get(key).ok_or_else(|| format!("no flag '{key}'"))?;
                let rule = rule_of(&f, 0)?;
                typed(&flag.flag_type, &rule.return_value)
            }
            other => Err(format!("unknown flag op '{other}'")),
        }
    }

    /// Applies a checked event.
    pub fn apply(&mut self, event: &Event, offset: u64) -> Result<(), String> {
        self.check(event)?;
        let f = Fields(&event.body);
        if event.op() == "define" {
            let flag = flag_of(&f)?;
            self.flags.insert(flag.name.clone(), flag);
        } else {
            let name = self.get(f.str("flag")?).map(|x| x.name.clone());
            let rule = rule_of(&f, offset)?;
            if let Some(flag) = name.and_then(|n| self.flags.get_mut(&n)) {
                flag.rules.push(rule);
                flag.rules.sort_by(|a, b| {
                    b.priority
                        .cmp(&a.priority)
                        .then(a.created_at.total_cmp(&b.created_at))
                        .then(a.offset.cmp(&b.offset))
                });
            }
        }
        Ok(())
    }
}

fn flag_of(f: &Fields<'_>) -> Result<Flag, String> {
    let name = f.str("name")?.to_string();
    check_name("a flag name", &name)?;
    let flag_type = f.str("flag_type")?.to_string();
    if !TYPES.contains(&flag_type.as_str()) {
        return Err(format!(
            "flag type '{flag_type}' is not one of bool, string, number"
        ));
    }
    let default_value = f.value("default_value").cloned().unwrap_or(Value::Null);
    typed(&flag_type, &default_value)?;
    let pct = f.i64("rollout_pct")?;
    let rollout_pct = u8::try_from(pct)
        .ok()
        .filter(|p| *p <= 100)
        .ok_or("rollout_pct must be 0..100")?;
    Ok(Flag {
        flag_id: f.str("flag_id")?.to_string(),
        name,
        flag_type,
        default_value,
        description: f.opt_str("description")?.unwrap_or("").to_string(),
        enabled: f.bool("enabled")?,
        rollout_pct,
        created_at: f.f64("created_at")?,
        rules: Vec::new(),
    })
}

fn rule_of(f: &Fields<'_>, offset: u64) -> Result<FlagRule, String> {
    let op = Op::parse(f.str("condition_op")?)?;
    if op == Op::Exists || op == Op::NotIn {
        return Err(format!(
            "flag rules do not take the operator '{}'",
            op.name()
        ));
    }
    let field = f.str("condition_key")?.to_string();
    check_name("a condition key", &field)?;
    Ok(FlagRule {
        rule_id: f.str("rule_id")?.to_string(),
        priority: f.i64("priority")?,
        condition: Condition {
            field,
            op,
            value: f.value("condition_value").cloned().unwrap_or(Value::Null),
        },
        return_value: f.value("return_value").cloned().unwrap_or(Value::Null),
        created_at: f.f64("created_at")?,
        offset,
    })
}

/// Builders of flag events.
pub mod events {
    use super::*;

    fn event(body: Value) -> Event {
        Event::from_value(Family::Flag, body)
    }

    /// Defines a flag.
    #[allow(clippy::too_many_arguments)]
    pub fn define(
        flag_id: &str,
        name: &str,
        flag_type: &str,
        default_value: Value,
        description: &str,
        enabled: bool,
        rollout_pct: i64,
        now: f64,
    ) -> Result<Event, String> {
        let e = event(json!({
            "op": "define", "flag_id": flag_id, "name": name, "flag_type": flag_type,
            "default_value": default_value, "description": description, "enabled": enabled,
            "rollout_pct": rollout_pct, "created_at": now,
        }));
        flag_of(&Fields(&e.body))?;
        Ok(e)
    }

    /// Adds a targeting rule to the flag with this name or id.
    #[allow(clippy::too_many_arguments)]
    pub fn rule(
        rule_id: &str,
        flag: &str,
        priority: i64,
        key: &str,
        op: &str,
        value: Value,
        return_value: Value,
        now: f64,
    ) -> Result<Event, String> {
        let e = event(json!({
            "op": "rule", "rule_id": rule_id, "flag": flag, "priority": priority,
            "condition_key": key, "condition_op": op, "condition_value": value,
            "return_value": return_value, "created_at": now,
        }));
        rule_of(&Fields(&e.body), 0)?;
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluation_follows_the_reference() {
        // Proves disabled → default, the rollout gate at 0 and 100, rule priority, typing.
        let mut s = FlagState::default();
        s.apply(
            &events::define("f1", "beta", "bool", json!(false), "", true, 100, 1.0).unwrap(),
            0,
        )
        .unwrap();
        s.apply(
            &events::rule(
                "r1",
                "beta",
                1,
                "plan",
                "eq",
                json!("pro"),
                json!(true),
                2.0,
            )
            .unwrap(),
            1,
        )
        .unwrap();
        assert!(
            s.check(
                &events::rule("r2", "beta", 1, "plan", "eq", json!("x"), json!("yes"), 3.0)
                    .unwrap()
            )
            .is_err(),
            "a string for a bool flag"
        );
        let ctx = |v: Value| v.as_object().unwrap().clone();
        let flag = s.get("beta").unwrap();
        assert_eq!(flag.evaluate(&ctx(json!({"plan": "pro"}))).0, json!(true));
        assert_eq!(flag.evaluate(&ctx(json!({"plan": "free"}))).0, json!(false));
        assert!(in_rollout("f", "e", 100) && !in_rollout("f", "e", 0));
        // md5("f1:user-1") = 0x…; the gate is deterministic.
        assert_eq!(
            in_rollout("f1", "user-1", 50),
            in_rollout("f1", "user-1", 50)
        );
    }
}
