//! The writer service in-process (issue 4, first increment): clients on many threads append
//! through the Unix socket and share the ledger; errors come back typed and write nothing; the
//! server stops cleanly and removes its discovery file and socket.

use std::sync::atomic::Ordering;

use meshflow_engine::ledger::Ledger;
use meshflow_engine::log::LogOptions;
use meshflow_engine::service::client::{Client, ClientError};
use meshflow_engine::service::server::{Server, ServerOptions};
use meshflow_engine::service::{protocol, ServiceInfo};
use serde_json::json;

fn line(run: &str, step_id: &str) -> String {
    json!({"run_id": run, "step_id": step_id, "node_id": "n", "node_kind": "llm",
           "input_task": "t", "output_content": "o", "verdict": "commit", "blocked": false,
           "uncertainty": 0.1, "cost_usd": 0.01, "tokens_used": 1, "carbon_gco2": 0.0,
           "duration_ms": 1.0})
    .to_string()
}

fn start(
    dir: &std::path::Path,
) -> (
    std::thread::JoinHandle<()>,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let ledger = Ledger::open(dir, LogOptions::default(), "default")
        .unwrap()
        .0;
    let server = Server::start(
        ledger,
        ServerOptions {
            socket: dir.join("serve.sock"),
            max_message_bytes: 1 << 20,
            http: None,
        },
    )
    .unwrap();
    let stop = server.stop_handle();
    (std::thread::spawn(move || server.run().unwrap()), stop)
}

#[test]
fn many_clients_append_through_the_socket_and_every_chain_verifies() {
    // Proves concurrent clients (16 threads × 50 single-step appends, 4 tenants) all land, in
    // per-run order, with valid chains, and that discovery finds the service through serve.json.
    let dir = tempfile::tempdir().unwrap();
    let (server, stop) = start(dir.path());
    let info = ServiceInfo::read(dir.path()).unwrap();
    assert_eq!(info.pid, std::process::id());
    std::thread::scope(|scope| {
        for t in 0..16 {
            let dir = dir.path();
            scope.spawn(move || {
                let mut client = Client::discover(dir).expect("a running service");
                let tenant = format!("tenant-{}", t % 4);
                for n in 0..50 {
                    let receipts = client
                        .append(
                            &tenant,
                            &[line(&format!("run-{t}"), &format!("s-{t}-{n}"))],
                            true,
                        )
                        .unwrap();
                    assert_eq!(receipts[0].step_index, n);
                }
            });
        }
    });
    stop.store(true, Ordering::Relaxed);
    server.join().unwrap();
    assert!(
        ServiceInfo::read(dir.path()).is_none(),
        "serve.json removed"
    );
    assert!(!dir.path().join("serve.sock").exists(), "socket removed");
    assert!(Client::discover(dir.path()).is_none());
    let ledger = Ledger::open_read_only(dir.path(), LogOptions::default(), "tenant-1").unwrap();
    let (_, chains) = ledger.verify_all().unwrap();
    assert_eq!(chains.len(), 4, "tenant-1 has runs 1, 5, 9, 13");
    assert!(chains.iter().all(|c| c.valid && c.steps_verified == 50));
}

#[test]
fn refused_requests_say_why_and_write_nothing() {
    // Proves a bad line (named by number), a conflict, a wrong version, an unknown op and an
    // oversized message are typed errors, the connection survives the first four, and nothing
    // is written by any of them.
    let dir = tempfile::tempdir().unwrap();
    let (server, stop) = start(dir.path());
    let mut client = Client::discover(dir.path()).unwrap();
    client.append("default", &[line("r", "s1")], true).unwrap();
    let kind = |e: ClientError| match e {
        ClientError::Remote { kind, message } => (kind, message),
        other => panic!("expected a refusal, got {other}"),
    };
    let bad = vec![line("r", "s2"), "{\"run_id\": 5}".to_string()];
    let (k, m) = kind(client.append("default", &bad, true).unwrap_err());
    assert_eq!(k, "invalid_input");
    assert!(m.starts_with("line 2: "), "{m}");
    let changed = line("r", "s1").replace("\"o\"", "\"other\"");
    let (k, _) = kind(client.append("default", &[changed], true).unwrap_err());
    assert_eq!(k, "conflict");
    let (k, _) = kind(client.request(&json!({"v": 2, "op": "ping"})).unwrap_err());
    assert_eq!(k, "unsupported_version");
    let (k, _) = kind(
        client
            .request(&json!({"v": 1, "op": "frobnicate"}))
            .unwrap_err(),
    );
    assert_eq!(k, "invalid_input");
    assert!(
        client.request(&protocol::ping_request()).is_ok(),
        "still connected"
    );
    let huge =
        vec![line("r", &"x".repeat(100)).replace("\"t\"", &format!("\"{}\"", "y".repeat(2 << 20)))];
    let (k, _) = kind(client.append("default", &huge, true).unwrap_err());
    assert_eq!(k, "too_large");
    stop.store(true, Ordering::Relaxed);
    server.join().unwrap();
    let ledger = Ledger::open_read_only(dir.path(), LogOptions::default(), "default").unwrap();
    assert_eq!(ledger.get_run("r").unwrap().len(), 1, "only the first step");
}

#[test]
fn a_stalled_client_does_not_hold_up_the_stop_and_other_files_are_never_replaced() {
    // Proves a client that sent half a request cannot keep the service from stopping, that a
    // non-socket file where the socket should go is refused (not deleted), and that a buffered
    // append through the service becomes visible after the client's sync.
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let (server, stop) = start(dir.path());
    let mut client = Client::discover(dir.path()).unwrap();
    client
        .append("default", &[line("b", "b-1")], false)
        .unwrap();
    client.sync().unwrap();
    let reader = Ledger::open_read_only(dir.path(), LogOptions::default(), "default").unwrap();
    assert_eq!(
        reader.get_run("b").unwrap().len(),
        1,
        "durable and visible after sync"
    );
    let mut stalled =
        std::os::unix::net::UnixStream::connect(dir.path().join("serve.sock")).unwrap();
    stalled.write_all(&[9, 0]).unwrap(); // two bytes of a length prefix, then nothing
    std::thread::sleep(std::time::Duration::from_millis(100));
    let started = std::time::Instant::now();
    stop.store(true, Ordering::Relaxed);
    server.join().unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    let other = tempfile::tempdir().unwrap();
    let precious = other.path().join("data.jsonl");
    std::fs::write(&precious, "keep me").unwrap();
    let ledger = Ledger::open(other.path(), LogOptions::default(), "default")
        .unwrap()
        .0;
    let refused = Server::start(
        ledger,
        ServerOptions {
            socket: precious.clone(),
            max_message_bytes: 1 << 20,
            http: None,
        },
    );
    assert!(refused.is_err());
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me");
}

#[test]
fn discovery_ignores_a_socket_that_serves_another_log() {
    // Proves a stale serve.json pointing at a socket now served for another log is not used.
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let (server, stop) = start(b.path());
    let info = ServiceInfo::read(b.path()).unwrap();
    std::fs::create_dir_all(a.path()).unwrap();
    info.write(a.path()).unwrap(); // a's serve.json names b's socket
    assert!(Client::discover(a.path()).is_none());
    assert!(Client::discover(b.path()).is_some());
    stop.store(true, Ordering::Relaxed);
    server.join().unwrap();
}
