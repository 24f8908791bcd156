//! The writer service's HTTP API (issue 4) through a real HTTP client: every endpoint, atomic
//! NDJSON batches, API keys (401 without or with an unknown key, 403 for a role, 404 for another
//! tenant's run, admin naming a tenant), the body limit (413, a JSON error), and `/metrics` in the
//! Prometheus text format. Nothing refused is written.

use std::sync::atomic::Ordering;

use meshflow_engine::ledger::Ledger;
use meshflow_engine::log::LogOptions;
use meshflow_engine::service::http::ApiKeys;
use meshflow_engine::service::server::{HttpOptions, Server, ServerOptions};
use meshflow_engine::service::ServiceInfo;
use serde_json::{json, Value};

fn step(node: &str) -> String {
    json!({"node_id": node, "node_kind": "llm", "input_task": "t", "output_content": "o",
           "verdict": "commit", "blocked": false, "uncertainty": 0.1, "cost_usd": 0.01,
           "tokens_used": 1, "carbon_gco2": 0.0, "duration_ms": 1.0})
    .to_string()
}

const KEYS: &str =
    "append-key-A=acme:append,read-key-A=acme:read,read-key-B=beta:read,admin-key-1=ops:admin";

struct Service {
    base: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start(dir: &std::path::Path, keys: &str, max: usize) -> Service {
    let ledger = Ledger::open(dir, LogOptions::default(), "default")
        .unwrap()
        .0;
    let server = Server::start(
        ledger,
        ServerOptions {
            socket: dir.join("serve.sock"),
            max_message_bytes: max,
            http: Some(HttpOptions {
                addr: "127.0.0.1:0".parse().unwrap(),
                keys: ApiKeys::parse(keys).unwrap(),
                tls: None,
            }),
        },
    )
    .unwrap();
    let stop = server.stop_handle();
    let thread = std::thread::spawn(move || server.run().unwrap());
    let base = ServiceInfo::read(dir).unwrap().http.unwrap();
    assert!(base.starts_with("http://"), "{base}");
    Service {
        base,
        stop,
        thread: Some(thread),
    }
}

/// (status, body) of a request, whatever the status.
fn call(req: ureq::Request, body: Option<&str>) -> (u16, String) {
    let result = match body {
        Some(b) => req.send_string(b),
        None => req.call(),
    };
    match result {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
        Err(e) => panic!("transport error: {e}"),
    }
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn every_endpoint_answers_and_ndjson_batches_are_atomic() {
    // Proves POST (one JSON step, an NDJSON batch), the reads, /health, /ready and /metrics,
    // and that a batch with one bad line is refused whole, naming the line.
    let dir = tempfile::tempdir().unwrap();
    let svc = start(dir.path(), KEYS, 1 << 20);
    let post = |run: &str, body: &str, ndjson: bool| {
        let req = ureq::post(&format!("{}/v1/runs/{run}/steps", svc.base))
            .set("Authorization", "Bearer append-key-A")
            .set(
                "Content-Type",
                if ndjson {
                    "application/x-ndjson"
                } else {
                    "application/json"
                },
            );
        call(req, Some(body))
    };
    let (code, body) = post("r1", &step("plan"), false);
    assert_eq!(code, 200, "{body}");
    assert_eq!(json_of(&body)["receipts"][0]["step_index"], 0);
    let batch = format!("{}\n{}\n", step("act"), step("report"));
    let (code, body) = post("r1", &batch, true);
    assert_eq!(code, 200, "{body}");
    assert_eq!(json_of(&body)["receipts"][1]["step_index"], 2);
    let bad = format!("{}\n{{\"node_id\": 3}}\n", step("x"));
    let (code, body) = post("r1", &bad, true);
    assert_eq!(code, 400, "{body}");
    assert!(json_of(&body)["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("line 2: "));
    let (code, _) = post(
        "r1",
        &step("x").replace("\"node_id\"", "\"run_id\":\"other\",\"node_id\""),
        false,
    );
    assert_eq!(code, 400, "a run_id that differs from the path");

    let get = |path: &str| {
        call(
            ureq::get(&format!("{}{path}", svc.base)).set("X-API-Key", "read-key-A"),
            None,
        )
    };
    let (code, body) = get("/v1/runs");
    assert_eq!(code, 200);
    assert_eq!(
        json_of(&body)[0]["steps"],
        3,
        "the refused batch wrote nothing"
    );
    let (code, body) = get("/v1/runs/r1");
    assert_eq!(code, 200);
    assert_eq!(json_of(&body).as_array().unwrap().len(), 3);
    let (code, body) = get("/v1/runs/r1/verify");
    assert_eq!(code, 200);
    assert_eq!(json_of(&body)["valid"], true);
    let (code, body) = get("/v1/runs/r1/export");
    assert_eq!(code, 200);
    let env = json_of(&body);
    assert_eq!(env["format"], "meshflow-run-export/1");
    assert!(meshflow_engine::ledger::offline::verify_export(&env).unwrap()[0].valid());
    let (code, body) = get("/traces/r1");
    assert_eq!(code, 200);
    let t = json_of(&body);
    assert_eq!(
        (t["chain_valid"].clone(), t["summary"]["steps"].clone()),
        (json!(true), json!(3))
    );
    assert_eq!(get("/v1/runs/nope").0, 404);
    assert_eq!(
        call(ureq::get(&format!("{}/health", svc.base)), None).0,
        200
    );
    assert_eq!(call(ureq::get(&format!("{}/ready", svc.base)), None).0, 200);

    let (code, text) = get("/metrics");
    assert_eq!(code, 200);
    // The Prometheus text format: comments, or `name{labels} value` with a float value.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "{line}"
            );
        }
    }
    assert!(
        text.contains("meshflow_append_steps_total{tenant=\"acme\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("meshflow_append_latency_seconds_count 2"),
        "{text}"
    );
}

#[test]
fn api_keys_bind_tenants_and_roles() {
    // Proves 401 without a key or with an unknown one, 403 for the wrong role, 404 for another
    // tenant's run, and an admin naming the tenant with X-Meshflow-Tenant.
    let dir = tempfile::tempdir().unwrap();
    let svc = start(dir.path(), KEYS, 1 << 20);
    let url = |p: &str| format!("{}{p}", svc.base);
    let post = |key: Option<&str>| {
        let mut req = ureq::post(&url("/v1/runs/a1/steps")).set("Content-Type", "application/json");
        if let Some(k) = key {
            req = req.set("Authorization", &format!("Bearer {k}"));
        }
        call(req, Some(&step("n")))
    };
    assert_eq!(post(None).0, 401);
    assert_eq!(post(Some("wrong-key-123")).0, 401);
    assert_eq!(post(Some("read-key-A")).0, 403);
    assert_eq!(post(Some("append-key-A")).0, 200);
    let get = |path: &str, key: &str| call(ureq::get(&url(path)).set("X-API-Key", key), None);
    assert_eq!(get("/v1/runs/a1", "append-key-A").0, 403);
    assert_eq!(get("/v1/runs/a1", "read-key-A").0, 200);
    assert_eq!(
        get("/v1/runs/a1", "read-key-B").0,
        404,
        "another tenant's run"
    );
    assert_eq!(get("/v1/runs/a1/export", "read-key-B").0, 404);
    let (_, body) = get("/v1/runs", "read-key-B");
    assert_eq!(json_of(&body), json!([]));
    let admin = call(
        ureq::get(&url("/v1/runs/a1"))
            .set("X-API-Key", "admin-key-1")
            .set("X-Meshflow-Tenant", "acme"),
        None,
    );
    assert_eq!(admin.0, 200);
    assert_eq!(get("/metrics", "append-key-A").0, 403);
    let (code, text) = get("/metrics", "read-key-B");
    assert_eq!(code, 200);
    assert!(
        !text.contains("tenant=\"acme\""),
        "a read key sees only its tenant's series"
    );
    let admin_metrics = call(
        ureq::get(&url("/metrics")).set("X-API-Key", "admin-key-1"),
        None,
    );
    assert!(admin_metrics.1.contains("tenant=\"acme\""));
    assert_eq!(call(ureq::get(&url("/metrics")), None).0, 401);
    assert_eq!(
        call(ureq::get(&url("/health")), None).0,
        200,
        "no key needed"
    );
}

#[test]
fn a_body_over_the_limit_is_413_and_writes_nothing() {
    // Proves the request body limit, that only JSON content types are accepted (415), and that
    // with keys the key is checked before the body is read (an unauthenticated body over the
    // limit is a 401, not a 413). Bodies are small enough to fit the socket's buffers, so the
    // client finishes sending before the answer comes.
    let dir = tempfile::tempdir().unwrap();
    let svc = start(dir.path(), "", 4096);
    let big = step("n").replace("\"t\"", &format!("\"{}\"", "x".repeat(8192)));
    let post_full = |base: &str, content_type: &str, key: Option<&str>, body: &str| {
        let mut req =
            ureq::post(&format!("{base}/v1/runs/r/steps")).set("Content-Type", content_type);
        if let Some(k) = key {
            req = req.set("X-API-Key", k);
        }
        call(req, Some(body))
    };
    let post = |base: &str, content_type: &str, key: Option<&str>, body: &str| {
        post_full(base, content_type, key, body).0
    };
    let (code, body) = post_full(&svc.base, "application/json", None, &big);
    assert_eq!(code, 413);
    assert_eq!(
        json_of(&body)["error"]["kind"],
        "too_large",
        "a JSON error: {body}"
    );
    assert_eq!(post(&svc.base, "text/plain", None, &step("n")), 415);
    let (code, _) = call(ureq::get(&format!("{}/v1/runs/r", svc.base)), None);
    assert_eq!(code, 404, "nothing was written");
    let (code, body) = call(ureq::get(&format!("{}/no/such/route", svc.base)), None);
    assert_eq!(code, 404);
    assert_eq!(
        json_of(&body)["error"]["kind"],
        "not_found",
        "a JSON error: {body}"
    );

    let keyed_dir = tempfile::tempdir().unwrap();
    let keyed = start(keyed_dir.path(), KEYS, 4096);
    assert_eq!(post(&keyed.base, "application/json", None, &big), 401);
    assert_eq!(
        post(&keyed.base, "application/json", Some("append-key-A"), &big),
        413
    );
}

#[test]
fn tls_serves_the_api_to_a_client_that_trusts_the_certificate() {
    // Proves --tls-cert/--tls-key: a TLS handshake with a test certificate, an append and a
    // read over HTTPS; serve.json names the https URL; a plain-HTTP request gets no answer.
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert_file = dir.path().join("cert.pem");
    let key_file = dir.path().join("key.pem");
    std::fs::write(&cert_file, cert.cert.pem()).unwrap();
    std::fs::write(&key_file, cert.key_pair.serialize_pem()).unwrap();
    let db = dir.path().join("db");
    let ledger = Ledger::open(&db, LogOptions::default(), "default")
        .unwrap()
        .0;
    let server = Server::start(
        ledger,
        ServerOptions {
            socket: db.join("serve.sock"),
            max_message_bytes: 1 << 20,
            http: Some(HttpOptions {
                addr: "127.0.0.1:0".parse().unwrap(),
                keys: ApiKeys::parse("tls-test-key=acme:admin").unwrap(),
                tls: Some((cert_file, key_file)),
            }),
        },
    )
    .unwrap();
    let stop = server.stop_handle();
    let thread = std::thread::spawn(move || server.run().unwrap());
    let base = ServiceInfo::read(&db).unwrap().http.unwrap();
    assert!(base.starts_with("https://127.0.0.1:"), "{base}");
    let port = base.rsplit(':').next().unwrap().to_string();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let agent = ureq::AgentBuilder::new()
        .tls_config(std::sync::Arc::new(config))
        .build();
    let url = |p: &str| format!("https://localhost:{port}{p}");
    let (code, body) = call(
        agent
            .post(&url("/v1/runs/t1/steps"))
            .set("X-API-Key", "tls-test-key")
            .set("Content-Type", "application/json"),
        Some(&step("n")),
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = call(
        agent
            .get(&url("/v1/runs/t1"))
            .set("X-API-Key", "tls-test-key"),
        None,
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(json_of(&body).as_array().unwrap().len(), 1);
    let plain = ureq::get(&format!("http://127.0.0.1:{port}/health")).call();
    assert!(plain.is_err(), "plain HTTP is not served on the TLS port");

    stop.store(true, Ordering::Relaxed);
    thread.join().unwrap();
}
