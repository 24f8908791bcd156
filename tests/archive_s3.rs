//! `s3://` archives (SPEC §5.5, feature `s3`) against a local S3-compatible server: moto's
//! server (`python3 -m moto.server`, PyPI package `moto[server]`, which `.ci/run` installs),
//! started by the test on a free loopback port. Without moto the test says so and passes, unless
//! `MESHFLOW_REQUIRE_S3_TEST=1` (CI sets it), when it fails.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use meshflow_engine::ledger::{Ledger, LedgerError, StepRequest};
use meshflow_engine::log::{Durability, LogOptions};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `moto_server` on a free port; `None` when it is not installed.
fn start_moto() -> Option<(Server, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let installed = Command::new("python3")
        .args(["-c", "import moto.server"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        let required = std::env::var("MESHFLOW_REQUIRE_S3_TEST").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "moto[server] is required here (MESHFLOW_REQUIRE_S3_TEST=1)"
        );
        eprintln!("skipped: moto is not installed (pip install 'moto[server]')");
        return None;
    }
    let child = Command::new("python3")
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 -m moto.server starts");
    let server = Server(child);
    let endpoint = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while ureq::get(&format!("{endpoint}/")).call().is_err() {
        assert!(Instant::now() < deadline, "moto_server did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    Some((server, endpoint))
}

fn step(run: &str, n: u64) -> StepRequest {
    StepRequest {
        run_id: run.to_string(),
        node_id: format!("node-{n}"),
        node_kind: "llm".to_string(),
        input_task: format!("task {n}"),
        output_content: format!("output {n}"),
        verdict: "commit".to_string(),
        ..StepRequest::default()
    }
}

#[test]
fn s3_archives_are_written_once_with_a_conditional_create() {
    // Proves an s3:// archive holds the run's export byte for byte, a second archive of the
    // run is "already exists" and leaves the object as it was, ids stay one key segment, an
    // unknown run or bucket is a clear error, and an erasure lists the S3 archive.
    let Some((_server, endpoint)) = start_moto() else {
        return;
    };
    std::env::set_var("AWS_ENDPOINT_URL", &endpoint);
    std::env::set_var("AWS_ALLOW_HTTP", "true");
    std::env::set_var("AWS_ACCESS_KEY_ID", "test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    std::env::set_var("AWS_REGION", "us-east-1");
    ureq::put(&format!("{endpoint}/archives")).call().unwrap();
    // Anyone may read the objects back (the test reads them with a plain GET).
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*",
        "Action":"s3:GetObject","Resource":"arn:aws:s3:::archives/*"}]}"#;
    ureq::put(&format!("{endpoint}/archives?policy"))
        .send_string(policy)
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path(), LogOptions::default(), "default")
        .unwrap()
        .0;
    for run in ["A", "../escape"] {
        for n in 0..3 {
            ledger.append(step(run, n), Durability::Sync).unwrap();
        }
    }
    let mut export = Vec::new();
    ledger.export_run("A", &mut export).unwrap();
    let export = String::from_utf8(export).unwrap();
    let r = ledger
        .archive_run("A", "s3://archives/meshflow/runs/")
        .unwrap();
    assert_eq!(r.uri, "s3://archives/meshflow/runs/A.json");
    let url = format!("{endpoint}/archives/meshflow/runs/A.json");
    let stored = ureq::get(&url).call().unwrap().into_string().unwrap();
    assert!(stored == export, "the archive is the export, byte for byte");
    assert_eq!(r.bytes_written, export.len() as u64);

    ledger.append(step("A", 3), Durability::Sync).unwrap();
    match ledger.archive_run("A", "s3://archives/meshflow/runs") {
        Err(LedgerError::Conflict { reason }) => assert!(reason.contains("already exists")),
        other => panic!("{other:?}"),
    }
    let again = ureq::get(&url).call().unwrap().into_string().unwrap();
    assert_eq!(again, stored, "the first archive is untouched");

    let r = ledger.archive_run("../escape", "s3://archives").unwrap();
    assert_eq!(r.uri, "s3://archives/%2E%2E%2Fescape.json");

    assert!(matches!(
        ledger.archive_run("nope", "s3://archives"),
        Err(LedgerError::NotFound { .. })
    ));
    let e = ledger
        .archive_run("A", "s3://no-such-bucket/x")
        .unwrap_err();
    assert!(
        e.to_string().contains("s3://no-such-bucket/x/A.json"),
        "{e}"
    );

    let erased = ledger.anonymize_run("A", false, "dpo", "request").unwrap();
    assert_eq!(
        erased.archives,
        vec!["s3://archives/meshflow/runs/A.json".to_string()]
    );
}
