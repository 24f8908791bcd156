//! The writer service (`docs/protocol.md`): it owns a writable [`Ledger`] and serves requests
//! from a Unix domain socket, one thread per connection. Appends from all connections meet in
//! the log's sequencer, so concurrent clients share group commits as in-process threads do.
//! Stopping (the handle from [`Server::stop_handle`]) lets every connection finish the request
//! it is serving, then closes the ledger cleanly and removes `serve.json` and the socket.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::protocol::{self, VERSION};
use super::{ServiceInfo, INFO_FILE};
use crate::ledger::{Ledger, StepRequest};
use crate::log::Durability;

/// How long a blocked accept or read waits before looking at the stop flag again.
const POLL: Duration = Duration::from_millis(50);

/// How the service is set up.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The socket to listen on.
    pub socket: PathBuf,
    /// The largest request accepted, in bytes.
    pub max_message_bytes: usize,
}

/// A running writer service.
#[derive(Debug)]
pub struct Server {
    ledger: Ledger,
    listener: UnixListener,
    options: ServerOptions,
    stop: Arc<AtomicBool>,
    dir: PathBuf,
}

impl Server {
    /// Binds the socket (mode 0600) and writes `serve.json`. A socket file nobody answers on is
    /// a leftover of a crash and is replaced; one that answers means a service already runs.
    pub fn start(ledger: Ledger, options: ServerOptions) -> std::io::Result<Server> {
        let dir = ledger.dir().to_path_buf();
        if options.socket.exists() {
            if UnixStream::connect(&options.socket).is_ok() {
                return Err(std::io::Error::new(
                    ErrorKind::AddrInUse,
                    format!("a service already listens on {}", options.socket.display()),
                ));
            }
            std::fs::remove_file(&options.socket)?;
        }
        let listener = UnixListener::bind(&options.socket)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&options.socket, std::fs::Permissions::from_mode(0o600))?;
        }
        listener.set_nonblocking(true)?;
        let info = ServiceInfo {
            pid: std::process::id(),
            socket: std::fs::canonicalize(&options.socket)?,
            http: None,
            started_at: crate::ledger::time::now_iso8601(),
        };
        info.write(&dir)?;
        Ok(Server {
            ledger,
            listener,
            options,
            stop: Arc::new(AtomicBool::new(false)),
            dir,
        })
    }

    /// A flag that stops the service when set.
    pub fn stop_handle(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Serves until stopped; then waits for the connections to finish the request in hand,
    /// closes the ledger and removes `serve.json` and the socket.
    pub fn run(self) -> std::io::Result<()> {
        let mut workers = Vec::new();
        while !self.stop.load(Ordering::Relaxed) {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    let ledger = self.ledger.clone();
                    let stop = self.stop.clone();
                    let max = self.options.max_message_bytes;
                    workers.push(std::thread::spawn(move || {
                        serve_connection(stream, &ledger, &stop, max);
                    }));
                    workers.retain(|w| !w.is_finished());
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        for w in workers {
            let _ = w.join();
        }
        let _ = std::fs::remove_file(self.dir.join(INFO_FILE));
        let _ = std::fs::remove_file(&self.options.socket);
        drop(self.ledger);
        Ok(())
    }
}

/// Reads exactly `buf.len()` bytes; `Ok(false)` when the peer closed before the first byte, or
/// when `stop` was set while waiting for it.
fn read_full(stream: &mut impl Read, buf: &mut [u8], stop: &AtomicBool) -> std::io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        let dst = buf.get_mut(got..).unwrap_or(&mut []);
        match stream.read(dst) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if got == 0 && stop.load(Ordering::Relaxed) {
                    return Ok(false);
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn serve_connection(stream: UnixStream, ledger: &Ledger, stop: &AtomicBool, max: usize) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(POLL));
    // Reads through a buffer (a request's prefix and body usually arrive in one read).
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut stream = std::io::BufReader::with_capacity(64 << 10, stream);
    loop {
        let mut prefix = [0u8; 4];
        match read_full(&mut stream, &mut prefix, stop) {
            Ok(true) => {}
            Ok(false) | Err(_) => return,
        }
        let len = protocol::body_len(prefix);
        if len > max {
            let _ = writer.write_all(&protocol::encode(&protocol::error(
                "too_large",
                &format!("a request of {len} bytes is over the limit of {max}"),
            )));
            return;
        }
        let mut body = vec![0u8; len];
        let never = AtomicBool::new(false);
        if !matches!(read_full(&mut stream, &mut body, &never), Ok(true)) {
            return;
        }
        let response = if stop.load(Ordering::Relaxed) {
            protocol::error(
                "shutting_down",
                "the writer service is stopping; nothing was written",
            )
        } else {
            match serde_json::from_slice::<Value>(&body) {
                Ok(request) => handle(&request, ledger),
                Err(e) => protocol::error("invalid_input", &format!("not a JSON object: {e}")),
            }
        };
        if writer.write_all(&protocol::encode(&response)).is_err() {
            return;
        }
    }
}

/// Answers one request.
pub fn handle(request: &Value, ledger: &Ledger) -> Value {
    if request.get("v").and_then(Value::as_u64) != Some(VERSION) {
        return protocol::error(
            "unsupported_version",
            &format!("this service speaks protocol version {VERSION}"),
        );
    }
    let tenant = request
        .get("tenant")
        .and_then(Value::as_str)
        .unwrap_or("default");
    match request.get("op").and_then(Value::as_str) {
        Some("ping") => json!({
            "ok": true,
            "protocol": VERSION,
            "pid": std::process::id(),
            "log": ledger.dir().display().to_string(),
        }),
        Some("append") => append(request, ledger, tenant),
        Some(other) => protocol::error("invalid_input", &format!("unknown op '{other}'")),
        None => protocol::error("invalid_input", "a request names its op"),
    }
}

fn append(request: &Value, ledger: &Ledger, tenant: &str) -> Value {
    let handle = match ledger.with_tenant(tenant) {
        Ok(h) => h,
        Err(e) => return protocol::ledger_error(&e),
    };
    let durability = match request.get("durability").and_then(Value::as_str) {
        None | Some("sync") => Durability::Sync,
        Some("buffered") => Durability::Buffered,
        Some(other) => {
            return protocol::error(
                "invalid_input",
                &format!("durability '{other}' is not sync or buffered"),
            )
        }
    };
    let Some(lines) = request.get("lines").and_then(Value::as_array) else {
        return protocol::error("invalid_input", "an append carries 'lines', an array");
    };
    let mut steps = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        let Some(text) = line.as_str() else {
            return protocol::error("invalid_input", &format!("line {}: not a string", i + 1));
        };
        match StepRequest::from_json(text) {
            Ok(step) => steps.push(step),
            Err(e) => return protocol::error("invalid_input", &format!("line {}: {e}", i + 1)),
        }
    }
    match handle.append_batch(steps, durability) {
        Ok(receipts) => json!({
            "ok": true,
            "receipts": receipts.iter().map(protocol::receipt_json).collect::<Vec<_>>(),
        }),
        Err(e) => protocol::ledger_error(&e),
    }
}

/// The socket a service for `dir` listens on by default.
pub fn default_socket(dir: &Path) -> PathBuf {
    dir.join(super::DEFAULT_SOCKET)
}
