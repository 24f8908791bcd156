//! The policy view: rules, the decision log and the default action of one tenant, built from
//! `policy` events (`docs/governance-events.md` §2). Evaluation is deny-overrides (W12): any
//! matching enabled `deny` rule wins; otherwise the highest-priority match; no match gives the
//! tenant's default action (allow unless set to deny). Pure: no I/O, no clock.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::event::{check_name, Event, Family, Fields};
use crate::ledger::export::python_float;

/// What a rule does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Action {
    /// Allow.
    Allow,
    /// Deny (overrides every other match).
    Deny,
    /// Allow, and log.
    Log,
    /// Allow, and alert.
    Alert,
}

impl Action {
    /// Parses `allow`, `deny`, `log` or `alert`.
    pub fn parse(text: &str) -> Result<Action, String> {
        match text {
            "allow" => Ok(Action::Allow),
            "deny" => Ok(Action::Deny),
            "log" => Ok(Action::Log),
            "alert" => Ok(Action::Alert),
            other => Err(format!(
                "action '{other}' is not one of allow, deny, log, alert"
            )),
        }
    }

    /// The action's name.
    pub fn name(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
            Action::Log => "log",
            Action::Alert => "alert",
        }
    }
}

/// A condition operator (the reference's ten).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Op {
    /// Equal as text.
    Eq,
    /// Not equal as text.
    Neq,
    /// One of a list.
    In,
    /// None of a list.
    NotIn,
    /// Greater, as numbers.
    Gt,
    /// Less, as numbers.
    Lt,
    /// Greater or equal, as numbers.
    Gte,
    /// Less or equal, as numbers.
    Lte,
    /// The rule's value is a substring of the context's, as text.
    Contains,
    /// The key is present (even with a null value).
    Exists,
}

impl Op {
    const ALL: [(Op, &'static str); 10] = [
        (Op::Eq, "eq"),
        (Op::Neq, "neq"),
        (Op::In, "in"),
        (Op::NotIn, "not_in"),
        (Op::Gt, "gt"),
        (Op::Lt, "lt"),
        (Op::Gte, "gte"),
        (Op::Lte, "lte"),
        (Op::Contains, "contains"),
        (Op::Exists, "exists"),
    ];

    /// Parses an operator name.
    pub fn parse(text: &str) -> Result<Op, String> {
        Op::ALL
            .iter()
            .find(|(_, n)| *n == text)
            .map(|(o, _)| *o)
            .ok_or_else(|| {
                format!("operator '{text}' is not one of eq, neq, in, not_in, gt, lt, gte, lte, contains, exists")
            })
    }

    /// The operator's name.
    pub fn name(self) -> &'static str {
        Op::ALL
            .iter()
            .find(|(o, _)| *o == self)
            .map_or("eq", |(_, n)| n)
    }
}

/// One condition of a rule: `context[field] op value`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Condition {
    /// The context key.
    pub field: String,
    /// The operator.
    pub op: Op,
    /// The rule's value (for `in` / `not_in`: an array, or text split on commas).
    pub value: Value,
}

impl Condition {
    /// Parses `{"field", "op", "value"}`.
    pub fn from_json(v: &Value) -> Result<Condition, String> {
        let obj = v
            .as_object()
            .ok_or_else(|| "a condition must be an object {field, op, value}".to_string())?;
        if let Some(k) = obj
            .keys()
            .find(|k| !["field", "op", "value"].contains(&k.as_str()))
        {
            return Err(format!("unknown condition field '{k}'"));
        }
        let field = obj
            .get("field")
            .and_then(Value::as_str)
            .ok_or("'field' must be a string")?
            .to_string();
        check_name("a condition's field", &field)?;
        let op = obj
            .get("op")
            .and_then(Value::as_str)
            .ok_or("'op' must be a string")?;
        Ok(Condition {
            field,
            op: Op::parse(op)?,
            value: obj.get("value").cloned().unwrap_or(Value::Null),
        })
    }

    /// The condition as JSON.
    pub fn to_json(&self) -> Value {
        json!({"field": self.field, "op": self.op.name(), "value": self.value})
    }

    /// Whether `context` satisfies the condition (reference §5.1 semantics).
    pub fn matches(&self, context: &Map<String, Value>) -> bool {
        let Some(actual) = context.get(&self.field) else {
            return false;
        };
        if self.op == Op::Exists {
            return true;
        }
        let Some(text) = py_str(actual) else {
            // A null value matches nothing but `exists`.
            return false;
        };
        let text = text.as_ref();
        match self.op {
            Op::Exists => true,
            Op::Eq => py_str(&self.value).is_some_and(|v| v == text),
            Op::Neq => py_str(&self.value).is_none_or(|v| v != text),
            Op::In => in_list(&self.value, text),
            Op::NotIn => !in_list(&self.value, text),
            Op::Contains => py_str(&self.value).is_some_and(|v| text.contains(v.as_ref())),
            Op::Gt | Op::Lt | Op::Gte | Op::Lte => {
                let (Some(a), Some(b)) = (py_float(actual), py_float(&self.value)) else {
                    return false;
                };
                match self.op {
                    Op::Gt => a > b,
                    Op::Lt => a < b,
                    Op::Gte => a >= b,
                    _ => a <= b,
                }
            }
        }
    }
}

/// A value as Python's `str()` gives it (the reference compares text); `None` for null.
/// Text is borrowed: evaluating a rule allocates only for numbers and booleans.
fn py_str(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Bool(true) => Some(Cow::Borrowed("True")),
        Value::Bool(false) => Some(Cow::Borrowed("False")),
        Value::Number(n) => Some(Cow::Owned(match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => python_float(f),
            _ => n.to_string(),
        })),
        other => Some(Cow::Owned(other.to_string())),
    }
}

/// Whether `text` is in the list an `in` / `not_in` value stands for.
fn in_list(v: &Value, text: &str) -> bool {
    match v {
        Value::Array(items) => items.iter().any(|i| py_str(i).is_some_and(|s| s == text)),
        Value::String(s) => s.split(',').any(|p| p.trim() == text),
        other => py_str(other).is_some_and(|s| s == text),
    }
}

/// A value as Python's `float()` gives it; `None` where Python raises.
fn py_float(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        Value::String(s) => s.trim().replace('_', "").parse::<f64>().ok(),
        _ => None,
    }
}

/// A policy rule.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Rule {
    /// The rule's id (UUID v4 unless given).
    pub rule_id: String,
    /// The rule's unique name in its tenant.
    pub name: String,
    /// Free text.
    pub description: String,
    /// The framework it belongs to (`custom` by default).
    pub framework: String,
    /// Higher first.
    pub priority: i64,
    /// What it does.
    pub action: Action,
    /// All must hold (an empty list matches everything).
    pub conditions: Vec<Condition>,
    /// Disabled rules are listed but never evaluated.
    pub enabled: bool,
    /// Unix seconds.
    pub created_at: f64,
    /// The log offset of the event that added it (the last tie-break of the order).
    pub offset: u64,
}

impl Rule {
    /// The reference's record shape.
    pub fn to_json(&self) -> Value {
        json!({
            "rule_id": self.rule_id,
            "name": self.name,
            "description": self.description,
            "framework": self.framework,
            "priority": self.priority,
            "action": self.action.name(),
            "conditions": self.conditions.iter().map(Condition::to_json).collect::<Vec<_>>(),
            "enabled": self.enabled,
            "created_at": self.created_at,
        })
    }

    fn matches(&self, context: &Map<String, Value>) -> bool {
        self.conditions.iter().all(|c| c.matches(context))
    }
}

/// A logged decision.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Decision {
    /// The decision's id.
    pub decision_id: String,
    /// The rule that decided (empty when none matched).
    pub rule_id: String,
    /// Its name.
    pub rule_name: String,
    /// The action decided.
    pub action: String,
    /// The caller's key for what was decided.
    pub context_key: String,
    /// Why.
    pub reason: String,
    /// Unix seconds.
    pub ts: f64,
}

impl Decision {
    /// The reference's record shape.
    pub fn to_json(&self) -> Value {
        json!({
            "decision_id": self.decision_id,
            "rule_id": self.rule_id,
            "rule_name": self.rule_name,
            "action": self.action,
            "context_key": self.context_key,
            "reason": self.reason,
            "ts": self.ts,
        })
    }
}

/// The outcome of an evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The action decided.
    pub action: Action,
    /// The deciding rule's id and name (empty when none matched).
    pub rule_id: String,
    /// The deciding rule's name.
    pub rule_name: String,
    /// Why (the reference's wording).
    pub reason: String,
    /// Whether a rule matched.
    pub matched: bool,
}

impl Verdict {
    /// As JSON: `{action, rule_id, rule_name, reason, matched}`.
    pub fn to_json(&self) -> Value {
        json!({
            "action": self.action.name(),
            "rule_id": self.rule_id,
            "rule_name": self.rule_name,
            "reason": self.reason,
            "matched": self.matched,
        })
    }
}

/// The order rules are listed and evaluated in: priority (descending), then `created_at`,
/// then offset.
fn list_order(a: &Rule, b: &Rule) -> std::cmp::Ordering {
    b.priority
        .cmp(&a.priority)
        .then(a.created_at.total_cmp(&b.created_at))
        .then(a.offset.cmp(&b.offset))
}

/// One tenant's policy state.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct PolicyState {
    rules: BTreeMap<String, Rule>,
    names: BTreeMap<String, String>,
    decisions: Vec<Decision>,
    default_deny: bool,
}

impl PolicyState {
    /// The rule with this id, or else this name.
    pub fn rule(&self, id_or_name: &str) -> Option<&Rule> {
        self.rules
            .get(id_or_name)
            .or_else(|| self.names.get(id_or_name).and_then(|id| self.rules.get(id)))
    }

    /// The rules, priority first (descending), then oldest first; `framework` filters when
    /// not empty.
    pub fn list(&self, framework: &str, enabled_only: bool) -> Vec<&Rule> {
        let mut rules: Vec<&Rule> = self
            .rules
            .values()
            .filter(|r| framework.is_empty() || r.framework == framework)
            .filter(|r| r.enabled || !enabled_only)
            .collect();
        rules.sort_by(|a, b| list_order(a, b));
        rules
    }

    /// The logged decisions, newest first, at most `limit`.
    pub fn decisions(&self, limit: usize) -> Vec<&Decision> {
        self.decisions.iter().rev().take(limit).collect()
    }

    /// Whether no match means deny.
    pub fn default_deny(&self) -> bool {
        self.default_deny
    }

    /// Evaluates `context` (deny-overrides): the first matching enabled `deny` rule in list
    /// order wins; otherwise the first match; otherwise the default.
    pub fn evaluate(&self, context: &Map<String, Value>, framework: &str) -> Verdict {
        // One pass, no sorting: the first deny and the first match in list order.
        let before = |a: &Rule, b: &Rule| list_order(a, b) == std::cmp::Ordering::Less;
        let mut first: Option<&Rule> = None;
        let mut first_deny: Option<&Rule> = None;
        for rule in self.rules.values() {
            if !rule.enabled || (!framework.is_empty() && rule.framework != framework) {
                continue;
            }
            let earlier_than = |slot: Option<&Rule>| slot.is_none_or(|s| before(rule, s));
            let wanted =
                earlier_than(first) || (rule.action == Action::Deny && earlier_than(first_deny));
            if !wanted || !rule.matches(context) {
                continue;
            }
            if earlier_than(first) {
                first = Some(rule);
            }
            if rule.action == Action::Deny && earlier_than(first_deny) {
                first_deny = Some(rule);
            }
        }
        let winner = first_deny.or(first);
        match winner {
            Some(rule) => Verdict {
                action: rule.action,
                rule_id: rule.rule_id.clone(),
                rule_name: rule.name.clone(),
                reason: format!("matched rule '{}' ({})", rule.name, rule.framework),
                matched: true,
            },
            None => {
                let action = if self.default_deny {
                    Action::Deny
                } else {
                    Action::Allow
                };
                Verdict {
                    action,
                    rule_id: String::new(),
                    rule_name: String::new(),
                    reason: format!("no rules matched — default {}", action.name()),
                    matched: false,
                }
            }
        }
    }

    /// Checks `event` against this state: `Err` is the refusal (a conflict or invalid event).
    pub fn check(&self, event: &Event) -> Result<(), String> {
        let f = Fields(&event.body);
        match event.op() {
            "add" => {
                let rule = rule_of(&f, 0)?;
                if self.names.contains_key(&rule.name) {
                    return Err(format!("a policy rule named '{}' exists", rule.name));
                }
                if self.rules.contains_key(&rule.rule_id) {
                    return Err(format!("a policy rule with id '{}' exists", rule.rule_id));
                }
                Ok(())
            }
            "enable" | "disable" | "delete" => {
                let key = f.str("rule")?;
                self.rule(key)
                    .map(|_| ())
                    .ok_or_else(|| format!("no policy rule '{key}'"))
            }
            "decision" => decision_of(&f).map(|_| ()),
            "default" => default_of(&f).map(|_| ()),
            other => Err(format!("unknown policy op '{other}'")),
        }
    }

    /// Applies a checked event at `offset`.
    pub fn apply(&mut self, event: &Event, offset: u64) -> Result<(), String> {
        let f = Fields(&event.body);
        if event.op() != "add" {
            self.check(event)?;
        }
        match event.op() {
            "add" => {
                // Built once and checked here (the most frequent event of the view).
                let rule = rule_of(&f, offset)?;
                if self.names.contains_key(&rule.name) || self.rules.contains_key(&rule.rule_id) {
                    return self.check(event);
                }
                self.names.insert(rule.name.clone(), rule.rule_id.clone());
                self.rules.insert(rule.rule_id.clone(), rule);
            }
            op @ ("enable" | "disable" | "delete") => {
                let key = f.str("rule")?;
                let id = self
                    .rule(key)
                    .map(|r| r.rule_id.clone())
                    .ok_or_else(|| format!("no policy rule '{key}'"))?;
                if op == "delete" {
                    if let Some(rule) = self.rules.remove(&id) {
                        self.names.remove(&rule.name);
                    }
                } else if let Some(rule) = self.rules.get_mut(&id) {
                    rule.enabled = op == "enable";
                }
            }
            "decision" => self.decisions.push(decision_of(&f)?),
            "default" => self.default_deny = default_of(&f)?,
            _ => {}
        }
        Ok(())
    }
}

fn rule_of(f: &Fields<'_>, offset: u64) -> Result<Rule, String> {
    let name = f.str("name")?.to_string();
    check_name("a rule name", &name)?;
    let rule_id = f.str("rule_id")?.to_string();
    check_name("a rule id", &rule_id)?;
    let conditions = match f.value("conditions") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(Condition::from_json)
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("'conditions' must be an array".to_string()),
    };
    Ok(Rule {
        rule_id,
        name,
        description: f.opt_str("description")?.unwrap_or("").to_string(),
        framework: f.opt_str("framework")?.unwrap_or("custom").to_string(),
        priority: f.i64("priority")?,
        action: Action::parse(f.str("action")?)?,
        conditions,
        enabled: f.bool("enabled")?,
        created_at: f.f64("created_at")?,
        offset,
    })
}

fn decision_of(f: &Fields<'_>) -> Result<Decision, String> {
    Ok(Decision {
        decision_id: f.str("decision_id")?.to_string(),
        rule_id: f.opt_str("rule_id")?.unwrap_or("").to_string(),
        rule_name: f.opt_str("rule_name")?.unwrap_or("").to_string(),
        action: Action::parse(f.str("action")?)?.name().to_string(),
        context_key: f.opt_str("context_key")?.unwrap_or("").to_string(),
        reason: f.opt_str("reason")?.unwrap_or("").to_string(),
        ts: f.f64("ts")?,
    })
}

fn default_of(f: &Fields<'_>) -> Result<bool, String> {
    match Action::parse(f.str("action")?)? {
        Action::Allow => Ok(false),
        Action::Deny => Ok(true),
        other => Err(format!(
            "the default action is allow or deny, not {}",
            other.name()
        )),
    }
}

/// Builders of policy events (the engine fills ids and times; apply reads only the event).
pub mod events {
    use super::*;

    fn event(body: Value) -> Event {
        Event::from_value(Family::Policy, body)
    }

    /// A new rule. Checks the fields here, so a bad rule is refused before anything is sent.
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        rule_id: &str,
        name: &str,
        action: &str,
        conditions: &[Condition],
        priority: i64,
        framework: &str,
        description: &str,
        enabled: bool,
        now: f64,
    ) -> Result<Event, String> {
        let e = event(json!({
            "op": "add",
            "rule_id": rule_id,
            "name": name,
            "description": description,
            "framework": framework,
            "priority": priority,
            "action": action,
            "conditions": conditions.iter().map(Condition::to_json).collect::<Vec<_>>(),
            "enabled": enabled,
            "created_at": now,
        }));
        rule_of(&Fields(&e.body), 0)?;
        Ok(e)
    }

    /// Enables, disables or deletes the rule with this id or name.
    pub fn change(op: &str, rule: &str) -> Event {
        event(json!({"op": op, "rule": rule}))
    }

    /// A logged decision.
    pub fn decision(decision_id: &str, verdict: &Verdict, context_key: &str, now: f64) -> Event {
        event(json!({
            "op": "decision",
            "decision_id": decision_id,
            "rule_id": verdict.rule_id,
            "rule_name": verdict.rule_name,
            "action": verdict.action.name(),
            "context_key": context_key,
            "reason": verdict.reason,
            "ts": now,
        }))
    }

    /// Sets what no match means (`allow` or `deny`).
    pub fn default_action(action: &str) -> Result<Event, String> {
        let e = event(json!({"op": "default", "action": action}));
        default_of(&Fields(&e.body))?;
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(field: &str, op: &str, value: Value) -> Condition {
        Condition {
            field: field.into(),
            op: Op::parse(op).unwrap(),
            value,
        }
    }

    fn add(state: &mut PolicyState, name: &str, action: &str, prio: i64, c: &[Condition]) {
        let e = events::add(
            &format!("id-{name}"),
            name,
            action,
            c,
            prio,
            "custom",
            "",
            true,
            1.0,
        )
        .unwrap();
        state.apply(&e, 0).unwrap();
    }

    fn ctx(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn a28_deny_overrides_and_no_match_allows_with_the_reference_reason() {
        // Proves A28 and W12: a matching deny wins; with no match the reason is the reference's.
        let mut s = PolicyState::default();
        add(&mut s, "log-all", "log", 100, &[]);
        add(
            &mut s,
            "deny-big",
            "deny",
            10,
            &[cond("amount", "gt", json!(100))],
        );
        add(&mut s, "allow-all", "allow", 0, &[]);
        let v = s.evaluate(&ctx(json!({"amount": 150})), "");
        assert_eq!((v.action, v.rule_name.as_str()), (Action::Deny, "deny-big"));
        let v = s.evaluate(&ctx(json!({"amount": 5})), "");
        assert_eq!((v.action, v.rule_name.as_str()), (Action::Log, "log-all"));
        let empty = PolicyState::default();
        let v = empty.evaluate(&ctx(json!({})), "");
        assert_eq!(v.action, Action::Allow);
        assert_eq!(v.reason, "no rules matched — default allow");
        assert!(!v.matched);
    }

    #[test]
    fn a29_operators_follow_the_reference() {
        // Proves A29: `in` on "a, b", `gt` on text, `exists` on a null value, empty conditions.
        let c = ctx(json!({"k": "b", "n": "abc", "z": null, "x": 3, "t": true}));
        assert!(cond("k", "in", json!("a, b")).matches(&c));
        assert!(!cond("k", "not_in", json!("a, b")).matches(&c));
        assert!(cond("k", "in", json!(["a,b", "b"])).matches(&c));
        assert!(!cond("n", "gt", json!(1)).matches(&c));
        assert!(cond("z", "exists", Value::Null).matches(&c));
        assert!(!cond("z", "eq", Value::Null).matches(&c));
        assert!(!cond("missing", "neq", json!("q")).matches(&c));
        assert!(cond("x", "gte", json!("3")).matches(&c));
        assert!(cond("x", "eq", json!("3")).matches(&c));
        assert!(cond("t", "eq", json!("True")).matches(&c));
        assert!(cond("n", "contains", json!("bc")).matches(&c));
        let mut s = PolicyState::default();
        add(&mut s, "all", "alert", 0, &[]);
        assert!(s.evaluate(&c, "").matched);
    }

    proptest::proptest! {
        #[test]
        fn one_pass_evaluation_equals_the_sorted_list_reading(
            rules in proptest::collection::vec((0i64..4, 0u8..4, 0u8..3, any_bool(), 0u8..3), 0..30),
            k in 0u8..3,
        ) {
            // Proves evaluate's single pass picks what the listed order says: the first
            // matching deny, else the first match.
            let mut s = PolicyState::default();
            for (i, (prio, action, value, enabled, at)) in rules.iter().enumerate() {
                let action = ["allow", "deny", "log", "alert"][usize::from(*action)];
                let c = [cond("k", "eq", json!(value.to_string()))];
                let e = events::add(&format!("id{i}"), &format!("r{i}"), action, &c, *prio,
                    "custom", "", *enabled, f64::from(*at)).unwrap();
                s.apply(&e, i as u64).unwrap();
            }
            let context = ctx(json!({"k": k.to_string()}));
            let listed = s.list("", true);
            let matching: Vec<&&Rule> = listed.iter().filter(|r| r.matches(&context)).collect();
            let expected = matching
                .iter()
                .find(|r| r.action == Action::Deny)
                .or_else(|| matching.first())
                .map(|r| r.rule_id.clone())
                .unwrap_or_default();
            proptest::prop_assert_eq!(s.evaluate(&context, "").rule_id, expected);
        }
    }

    fn any_bool() -> impl proptest::strategy::Strategy<Value = bool> {
        proptest::bool::ANY
    }

    #[test]
    fn names_are_unique_and_changes_need_the_rule() {
        // Proves the checks the sequencer runs: a reused name, an unknown rule, a bad default.
        let mut s = PolicyState::default();
        add(&mut s, "r", "allow", 0, &[]);
        let again = events::add("id-2", "r", "deny", &[], 0, "custom", "", true, 2.0).unwrap();
        assert!(s.check(&again).unwrap_err().contains("exists"));
        assert!(s
            .check(&events::change("enable", "nope"))
            .unwrap_err()
            .contains("no policy rule"));
        assert!(events::default_action("log").is_err());
        s.apply(&events::change("disable", "r"), 1).unwrap();
        assert!(!s.rule("r").unwrap().enabled);
        assert!(!s.evaluate(&ctx(json!({})), "").matched);
        s.apply(&events::default_action("deny").unwrap(), 2)
            .unwrap();
        let v = s.evaluate(&ctx(json!({})), "");
        assert_eq!(
            (v.action, v.reason.as_str()),
            (Action::Deny, "no rules matched — default deny")
        );
        s.apply(&events::change("delete", "id-r"), 3).unwrap();
        assert!(s.rule("r").is_none());
        s.apply(&again, 4).unwrap();
        assert_eq!(s.rule("r").unwrap().action, Action::Deny);
    }
}
