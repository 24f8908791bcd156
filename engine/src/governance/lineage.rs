//! The lineage graph of one tenant: nodes (kinds validated; names and metadata in erasable
//! slots), edges between known nodes (relations validated), traces upstream and downstream,
//! impact analysis, subgraphs, and `delete-subject`, which removes a data subject's nodes with
//! their edges and erases every slot that named or described them (the chains stay valid).
//! Pure.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde_json::{json, Map, Value};

use super::event::{check_name, Event, Family, Fields};

/// Node kinds (the reference declares them and accepts anything: W14).
pub const KINDS: [&str; 8] = [
    "source",
    "transform",
    "sink",
    "agent",
    "tool",
    "dataset",
    "artifact",
    "run",
];
/// Edge relations.
pub const RELATIONS: [&str; 8] = [
    "derived_from",
    "produced_by",
    "consumed_by",
    "uses",
    "feeds",
    "depends_on",
    "forked_from",
    "archived_to",
];

/// Shown for a name or metadata whose slot was erased.
pub const REDACTED: &str = "[REDACTED]";

/// A node.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Node {
    /// Id.
    pub node_id: String,
    /// One of [`KINDS`].
    pub kind: String,
    /// Its name (`None` once erased).
    pub name: Option<String>,
    /// The run it belongs to (may be empty).
    pub run_id: String,
    /// The agent (may be empty).
    pub agent_name: String,
    /// Unix seconds.
    pub ts: f64,
    /// Metadata (`None` once erased).
    pub metadata: Option<Map<String, Value>>,
    /// Offset of its record.
    pub offset: u64,
}

impl Node {
    /// The reference's shape.
    pub fn to_json(&self) -> Value {
        json!({
            "node_id": self.node_id,
            "kind": self.kind,
            "name": self.name.as_deref().unwrap_or(REDACTED),
            "run_id": self.run_id,
            "agent_name": self.agent_name,
            "ts": self.ts,
            "metadata": self.metadata.as_ref().map_or(Value::String(REDACTED.into()), |m| Value::Object(m.clone())),
        })
    }
}

/// An edge.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Edge {
    /// Id.
    pub edge_id: String,
    /// From.
    pub source_id: String,
    /// To.
    pub target_id: String,
    /// One of [`RELATIONS`].
    pub relation: String,
    /// Unix seconds.
    pub ts: f64,
    /// Metadata (`None` once erased).
    pub metadata: Option<Map<String, Value>>,
    /// Offset of its record.
    pub offset: u64,
}

impl Edge {
    /// The reference's shape.
    pub fn to_json(&self) -> Value {
        json!({
            "edge_id": self.edge_id,
            "source_id": self.source_id,
            "target_id": self.target_id,
            "relation": self.relation,
            "ts": self.ts,
            "metadata": self.metadata.as_ref().map_or(Value::String(REDACTED.into()), |m| Value::Object(m.clone())),
        })
    }
}

/// One tenant's lineage graph.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct LineageState {
    nodes: BTreeMap<String, Node>,
    edges: BTreeMap<String, Edge>,
    /// (record offset, slot index) of every slot to erase: the names and metadata of deleted
    /// subjects' nodes and edges, and the subject name of each `delete-subject`.
    retired: Vec<(u64, u16)>,
}

fn metadata_of(slot: Option<&Option<Vec<u8>>>) -> Result<Option<Map<String, Value>>, String> {
    match slot {
        None => Ok(Some(Map::new())),
        Some(None) => Ok(None),
        Some(Some(bytes)) if bytes.is_empty() => Ok(Some(Map::new())),
        Some(Some(bytes)) => serde_json::from_slice(bytes)
            .map(Some)
            .map_err(|e| format!("lineage metadata is not a JSON object: {e}")),
    }
}

impl LineageState {
    /// A node.
    pub fn node(&self, node_id: &str) -> Option<&Node> {
        self.nodes.get(node_id)
    }

    /// Every node, oldest first.
    pub fn nodes(&self) -> Vec<&Node> {
        let mut v: Vec<&Node> = self.nodes.values().collect();
        v.sort_by_key(|n| n.offset);
        v
    }

    /// Every edge, oldest first.
    pub fn edges(&self) -> Vec<&Edge> {
        let mut v: Vec<&Edge> = self.edges.values().collect();
        v.sort_by_key(|e| e.offset);
        v
    }

    /// Nodes named exactly `name`.
    pub fn named(&self, name: &str) -> Vec<&Node> {
        self.nodes
            .values()
            .filter(|n| n.name.as_deref() == Some(name))
            .collect()
    }

    /// Slots to erase.
    pub fn retired(&self) -> &[(u64, u16)] {
        &self.retired
    }

    fn walk(&self, start: &str, forward: bool) -> Vec<&Node> {
        let mut seen = BTreeSet::new();
        let mut order = Vec::new();
        let mut queue = VecDeque::from([start.to_string()]);
        seen.insert(start.to_string());
        while let Some(id) = queue.pop_front() {
            for e in self.edges() {
                let (from, to) = if forward {
                    (&e.source_id, &e.target_id)
                } else {
                    (&e.target_id, &e.source_id)
                };
                if *from == id && seen.insert(to.clone()) {
                    queue.push_back(to.clone());
                    if let Some(n) = self.nodes.get(to) {
                        order.push(n);
                    }
                }
            }
        }
        order
    }

    /// Everything `node` derives from (BFS against the edges), the start excluded.
    pub fn upstream(&self, node: &str) -> Vec<&Node> {
        self.walk(node, false)
    }

    /// Everything derived from `node` (BFS along the edges), the start excluded.
    pub fn downstream(&self, node: &str) -> Vec<&Node> {
        self.walk(node, true)
    }

    /// The node, everything upstream and downstream of it, and the edges among them.
    pub fn subgraph(&self, node: &str) -> (Vec<&Node>, Vec<&Edge>) {
        let mut ids: BTreeSet<&str> = BTreeSet::new();
        let mut nodes = Vec::new();
        if let Some(n) = self.nodes.get(node) {
            nodes.push(n);
        }
        nodes.extend(self.upstream(node));
        nodes.extend(self.downstream(node));
        nodes.retain(|n| ids.insert(n.node_id.as_str()));
        let edges = self
            .edges()
            .into_iter()
            .filter(|e| ids.contains(e.source_id.as_str()) && ids.contains(e.target_id.as_str()))
            .collect();
        (nodes, edges)
    }

    /// Checks an event (with the slot contents of its record).
    pub fn check(&self, event: &Event, slots: &[Option<Vec<u8>>]) -> Result<(), String> {
        let f = Fields(&event.body);
        match event.op() {
            "add-node" => {
                let n = node_of(&f, slots, 0)?;
                if self.nodes.contains_key(&n.node_id) {
                    return Err(format!("node '{}' exists", n.node_id));
                }
                Ok(())
            }
            "add-edge" => {
                let e = edge_of(&f, slots, 0)?;
                if self.edges.contains_key(&e.edge_id) {
                    return Err(format!("edge '{}' exists", e.edge_id));
                }
                for end in [&e.source_id, &e.target_id] {
                    if !self.nodes.contains_key(end) {
                        return Err(format!("no node '{end}': an edge joins known nodes"));
                    }
                }
                Ok(())
            }
            "fork" => {
                let (parent, new) = fork_ids(&f)?;
                if self.nodes.contains_key(&run_node(&new)) {
                    return Err(format!("run '{new}' exists"));
                }
                if parent == new {
                    return Err("a run cannot be forked into itself".to_string());
                }
                f.f64("ts")?;
                Ok(())
            }
            "archive" => {
                archive_of(&f)?;
                f.f64("ts")?;
                Ok(())
            }
            "delete-subject" => {
                for id in ids_of(&f)? {
                    if !self.nodes.contains_key(&id) {
                        return Err(format!("no node '{id}'"));
                    }
                }
                f.f64("ts")?;
                Ok(())
            }
            other => Err(format!("unknown lineage op '{other}'")),
        }
    }

    /// Applies a checked event.
    pub fn apply(
        &mut self,
        event: &Event,
        slots: &[Option<Vec<u8>>],
        offset: u64,
    ) -> Result<(), String> {
        self.check(event, slots)?;
        let f = Fields(&event.body);
        match event.op() {
            "add-node" => {
                let n = node_of(&f, slots, offset)?;
                self.nodes.insert(n.node_id.clone(), n);
            }
            "add-edge" => {
                let e = edge_of(&f, slots, offset)?;
                self.edges.insert(e.edge_id.clone(), e);
            }
            "fork" => {
                let (parent, new) = fork_ids(&f)?;
                let ts = f.f64("ts")?;
                let mut meta = Map::new();
                for key in ["from_step", "steps_copied", "at_offset", "overrides"] {
                    if let Some(v) = f.value(key) {
                        meta.insert(key.to_string(), v.clone());
                    }
                }
                let run = |id: &str, metadata: Map<String, Value>| Node {
                    node_id: run_node(id),
                    kind: "run".to_string(),
                    name: Some(id.to_string()),
                    run_id: id.to_string(),
                    agent_name: String::new(),
                    ts,
                    metadata: Some(metadata),
                    offset,
                };
                let parent_node = run_node(&parent);
                if !self.nodes.contains_key(&parent_node) {
                    self.nodes
                        .insert(parent_node.clone(), run(&parent, Map::new()));
                }
                self.nodes.insert(run_node(&new), run(&new, meta));
                let edge_id = format!("fork:{new}");
                self.edges.insert(
                    edge_id.clone(),
                    Edge {
                        edge_id,
                        source_id: parent_node,
                        target_id: run_node(&new),
                        relation: "forked_from".to_string(),
                        ts,
                        metadata: Some(Map::new()),
                        offset,
                    },
                );
            }
            "archive" => {
                let (run_id, uri) = archive_of(&f)?;
                let ts = f.f64("ts")?;
                let parent_node = run_node(&run_id);
                if !self.nodes.contains_key(&parent_node) {
                    self.nodes.insert(
                        parent_node.clone(),
                        Node {
                            node_id: parent_node.clone(),
                            kind: "run".to_string(),
                            name: Some(run_id.clone()),
                            run_id: run_id.clone(),
                            agent_name: String::new(),
                            ts,
                            metadata: Some(Map::new()),
                            offset,
                        },
                    );
                }
                let mut meta = Map::new();
                for key in ["sha256", "bytes_written"] {
                    if let Some(v) = f.value(key) {
                        meta.insert(key.to_string(), v.clone());
                    }
                }
                let node_id = archive_node(&uri);
                self.nodes.insert(
                    node_id.clone(),
                    Node {
                        node_id: node_id.clone(),
                        kind: "artifact".to_string(),
                        name: Some(uri.clone()),
                        run_id: run_id.clone(),
                        agent_name: String::new(),
                        ts,
                        metadata: Some(meta),
                        offset,
                    },
                );
                self.edges.insert(
                    node_id.clone(),
                    Edge {
                        edge_id: node_id.clone(),
                        source_id: parent_node,
                        target_id: node_id,
                        relation: "archived_to".to_string(),
                        ts,
                        metadata: Some(Map::new()),
                        offset,
                    },
                );
            }
            _ => {
                let ids: BTreeSet<String> = ids_of(&f)?.into_iter().collect();
                let gone: Vec<String> = self
                    .edges
                    .values()
                    .filter(|e| ids.contains(&e.source_id) || ids.contains(&e.target_id))
                    .map(|e| e.edge_id.clone())
                    .collect();
                for id in gone {
                    if let Some(e) = self.edges.remove(&id) {
                        self.retired.push((e.offset, 0));
                    }
                }
                for id in &ids {
                    if let Some(n) = self.nodes.remove(id) {
                        self.retired.push((n.offset, 0));
                        self.retired.push((n.offset, 1));
                    }
                }
                self.retired.push((offset, 0));
            }
        }
        Ok(())
    }
}

/// The lineage node id of an archive (`archive_run` adds `run:<run>` → `archive:<uri>`).
pub fn archive_node(uri: &str) -> String {
    format!("archive:{uri}")
}

fn archive_of(f: &Fields<'_>) -> Result<(String, String), String> {
    let run = f.str("run_id")?;
    let uri = f.str("uri")?;
    if run.is_empty() || uri.is_empty() {
        return Err("an archive names a run and a URI".to_string());
    }
    Ok((run.to_string(), uri.to_string()))
}

/// The lineage node id of a run (forks add `run:<parent>` → `run:<fork>` edges).
pub fn run_node(run_id: &str) -> String {
    format!("run:{run_id}")
}

fn fork_ids(f: &Fields<'_>) -> Result<(String, String), String> {
    let parent = f.str("parent_run_id")?.to_string();
    check_name("a run id", &parent)?;
    let new = f.str("run_id")?.to_string();
    check_name("a run id", &new)?;
    Ok((parent, new))
}

/// The new run id of a `fork` event, if the payload is one (the runs view registers the run
/// from it, even when the fork copied no step).
pub fn forked_run(event: &Event) -> Option<String> {
    (event.op() == "fork").then(|| Fields(&event.body).str("run_id").ok().map(str::to_string))?
}

fn ids_of(f: &Fields<'_>) -> Result<Vec<String>, String> {
    match f.value("node_ids") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| "'node_ids' must be an array of strings".to_string()),
        _ => Err("'node_ids' must be an array of strings".to_string()),
    }
}

fn node_of(f: &Fields<'_>, slots: &[Option<Vec<u8>>], offset: u64) -> Result<Node, String> {
    let kind = f.str("kind")?.to_string();
    if !KINDS.contains(&kind.as_str()) {
        return Err(format!(
            "node kind '{kind}' is not one of {}",
            KINDS.join(", ")
        ));
    }
    let node_id = f.str("node_id")?.to_string();
    check_name("a node id", &node_id)?;
    let name = match slots.first() {
        Some(Some(bytes)) => Some(
            String::from_utf8(bytes.clone())
                .map_err(|_| "a node name must be UTF-8".to_string())?,
        ),
        Some(None) => None,
        None => return Err("a node carries its name in slot 0".to_string()),
    };
    if let Some(n) = &name {
        check_name("a node name", n)?;
    }
    Ok(Node {
        node_id,
        kind,
        name,
        run_id: f.opt_str("run_id")?.unwrap_or("").to_string(),
        agent_name: f.opt_str("agent_name")?.unwrap_or("").to_string(),
        ts: f.f64("ts")?,
        metadata: metadata_of(slots.get(1))?,
        offset,
    })
}

fn edge_of(f: &Fields<'_>, slots: &[Option<Vec<u8>>], offset: u64) -> Result<Edge, String> {
    let relation = f.str("relation")?.to_string();
    if !RELATIONS.contains(&relation.as_str()) {
        return Err(format!(
            "relation '{relation}' is not one of {}",
            RELATIONS.join(", ")
        ));
    }
    Ok(Edge {
        edge_id: f.str("edge_id")?.to_string(),
        source_id: f.str("source_id")?.to_string(),
        target_id: f.str("target_id")?.to_string(),
        relation,
        ts: f.f64("ts")?,
        metadata: metadata_of(slots.first())?,
        offset,
    })
}

/// Builders of lineage events: each returns the event and its slots.
pub mod events {
    use super::*;

    fn event(body: Value) -> Event {
        Event::from_value(Family::Lineage, body)
    }

    /// A node: slot 0 is its name, slot 1 its metadata.
    pub fn add_node(
        node_id: &str,
        kind: &str,
        name: &str,
        run_id: &str,
        agent: &str,
        metadata: &Map<String, Value>,
        now: f64,
    ) -> Result<(Event, Vec<Vec<u8>>), String> {
        let e = event(json!({
            "op": "add-node", "node_id": node_id, "kind": kind, "run_id": run_id,
            "agent_name": agent, "ts": now,
        }));
        let slots = vec![
            name.as_bytes().to_vec(),
            serde_json::to_vec(metadata).unwrap_or_default(),
        ];
        let probe: Vec<Option<Vec<u8>>> = slots.iter().cloned().map(Some).collect();
        node_of(&Fields(&e.body), &probe, 0)?;
        Ok((e, slots))
    }

    /// An edge: slot 0 is its metadata.
    pub fn add_edge(
        edge_id: &str,
        source: &str,
        target: &str,
        relation: &str,
        metadata: &Map<String, Value>,
        now: f64,
    ) -> Result<(Event, Vec<Vec<u8>>), String> {
        let e = event(json!({
            "op": "add-edge", "edge_id": edge_id, "source_id": source, "target_id": target,
            "relation": relation, "ts": now,
        }));
        let slots = vec![serde_json::to_vec(metadata).unwrap_or_default()];
        let probe: Vec<Option<Vec<u8>>> = slots.iter().cloned().map(Some).collect();
        edge_of(&Fields(&e.body), &probe, 0)?;
        Ok((e, slots))
    }

    /// A fork of run `parent` into run `run_id` (written by `Ledger::fork`, in the same atomic
    /// batch as the copied steps): the runs view registers the new run, the lineage view adds
    /// `run:<parent>` → `run:<run_id>` (`forked_from`) with the origin as the node's metadata.
    #[allow(clippy::too_many_arguments)]
    pub fn fork(
        run_id: &str,
        parent: &str,
        from_step: i64,
        steps_copied: u64,
        at_offset: u64,
        overrides: Value,
        now: f64,
    ) -> Event {
        event(json!({
            "op": "fork", "run_id": run_id, "parent_run_id": parent, "from_step": from_step,
            "steps_copied": steps_copied, "at_offset": at_offset, "overrides": overrides,
            "ts": now,
        }))
    }

    /// An archive of run `run_id` written to `uri` (recorded by `Ledger::archive_run` once
    /// the file is durable): an `artifact` node `archive:<uri>` and a `run:<run_id>` →
    /// `archive:<uri>` edge (`archived_to`), so that erasures can list the run's archives.
    pub fn archive(run_id: &str, uri: &str, sha256: &str, bytes_written: u64, now: f64) -> Event {
        event(json!({
            "op": "archive", "run_id": run_id, "uri": uri, "sha256": sha256,
            "bytes_written": bytes_written, "ts": now,
        }))
    }

    /// Deletes a data subject's nodes (resolved from its name by the caller); the name travels
    /// in slot 0 and is erased with the rest.
    pub fn delete_subject(name: &str, node_ids: &[String], now: f64) -> (Event, Vec<Vec<u8>>) {
        (
            event(json!({"op": "delete-subject", "node_ids": node_ids, "ts": now})),
            vec![name.as_bytes().to_vec()],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(
        s: &mut LineageState,
        (e, slots): (Event, Vec<Vec<u8>>),
        offset: u64,
    ) -> Result<(), String> {
        let slots: Vec<Option<Vec<u8>>> = slots.into_iter().map(Some).collect();
        s.apply(&e, &slots, offset)
    }

    #[test]
    fn traces_impact_and_delete_subject() {
        // Proves validated kinds and relations, edges only between known nodes, BFS traces,
        // and that deleting a subject removes its nodes and edges and retires their slots.
        let m = Map::new();
        let mut s = LineageState::default();
        assert!(events::add_node("x", "spaceship", "x", "", "", &m, 0.0).is_err());
        apply(
            &mut s,
            events::add_node("a", "source", "alice-data", "", "", &m, 1.0).unwrap(),
            1,
        )
        .unwrap();
        apply(
            &mut s,
            events::add_node("b", "transform", "clean", "", "", &m, 2.0).unwrap(),
            2,
        )
        .unwrap();
        apply(
            &mut s,
            events::add_node("c", "sink", "report", "", "", &m, 3.0).unwrap(),
            3,
        )
        .unwrap();
        assert!(apply(
            &mut s,
            events::add_edge("e0", "a", "zz", "feeds", &m, 4.0).unwrap(),
            4
        )
        .is_err());
        assert!(events::add_edge("e0", "a", "b", "likes", &m, 4.0).is_err());
        apply(
            &mut s,
            events::add_edge("e1", "a", "b", "feeds", &m, 5.0).unwrap(),
            5,
        )
        .unwrap();
        apply(
            &mut s,
            events::add_edge("e2", "b", "c", "feeds", &m, 6.0).unwrap(),
            6,
        )
        .unwrap();
        let ids = |v: Vec<&Node>| v.iter().map(|n| n.node_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(s.downstream("a")), ["b", "c"]);
        assert_eq!(ids(s.upstream("c")), ["b", "a"]);
        assert_eq!(s.subgraph("b").1.len(), 2);
        let targets: Vec<String> = s
            .named("alice-data")
            .iter()
            .map(|n| n.node_id.clone())
            .collect();
        apply(
            &mut s,
            events::delete_subject("alice-data", &targets, 7.0),
            7,
        )
        .unwrap();
        assert!(s.node("a").is_none());
        assert_eq!(s.edges().len(), 1);
        assert_eq!(s.retired(), &[(5, 0), (1, 0), (1, 1), (7, 0)]);
    }
}
