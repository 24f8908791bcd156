//! The writer service (`docs/protocol.md`): it owns a writable [`Ledger`] and serves requests
//! from a Unix domain socket. Connections are tasks on a small tokio runtime; appends from all
//! of them go to one driver thread and the log's pipelined appender, so concurrent clients share
//! group commits as in-process threads do.
//! Stopping (the handle from [`Server::stop_handle`]) lets every connection finish the request
//! it is serving, then closes the ledger cleanly and removes `serve.json` and the socket.

use std::io::ErrorKind;
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
/// How long a stopping service waits for the requests in hand.
const DRAIN: Duration = Duration::from_secs(10);

/// The HTTP API's bound socket, keys and TLS.
struct HttpListener {
    tcp: std::net::TcpListener,
    keys: super::http::ApiKeys,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl std::fmt::Debug for HttpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpListener")
            .field("tcp", &self.tcp)
            .field("keys", &self.keys)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// How the service is set up.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The socket to listen on.
    pub socket: PathBuf,
    /// The largest request accepted, in bytes (socket messages and HTTP bodies).
    pub max_message_bytes: usize,
    /// The HTTP API, if it is served.
    pub http: Option<HttpOptions>,
}

/// The HTTP API's address and keys.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Where to listen (`127.0.0.1:8080`; port 0 picks a free one).
    pub addr: std::net::SocketAddr,
    /// The API keys; with none, only a loopback address is allowed.
    pub keys: super::http::ApiKeys,
    /// PEM certificate chain and private key: serve HTTPS instead of HTTP.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// A TLS server configuration from PEM files (certificate chain, private key).
fn tls_acceptor(cert: &Path, key: &Path) -> std::io::Result<tokio_rustls::TlsAcceptor> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls;
    let bad = |what: &Path, e: &dyn std::fmt::Display| {
        std::io::Error::new(ErrorKind::InvalidInput, format!("{}: {e}", what.display()))
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(cert, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(cert, &e))?;
    if certs.is_empty() {
        return Err(bad(cert, &"no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, &e))?;
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| bad(cert, &e))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| bad(cert, &e))?;
    Ok(tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)))
}

/// TLS connections for the HTTP server: a task accepts TCP connections and runs each TLS
/// handshake as its own task (a handshake that fails or takes over 10 s drops that connection
/// only, and a slow one delays no other), handing finished streams over a channel.
struct TlsListener {
    ready: tokio::sync::mpsc::Receiver<(TlsStream, std::net::SocketAddr)>,
    local: std::net::SocketAddr,
}

type TlsStream = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;

impl TlsListener {
    fn start(
        tcp: tokio::net::TcpListener,
        acceptor: tokio_rustls::TlsAcceptor,
    ) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, ready) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let Ok((stream, addr)) = tcp.accept().await else {
                    tokio::time::sleep(POLL).await;
                    continue;
                };
                let (acceptor, sender) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let handshake = acceptor.accept(stream);
                    if let Ok(Ok(tls)) =
                        tokio::time::timeout(Duration::from_secs(10), handshake).await
                    {
                        let _ = sender.send((tls, addr)).await;
                    }
                });
                if tx.is_closed() {
                    return;
                }
            }
        });
        Ok(TlsListener { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accepting task ended: wait forever (the server stops on its shutdown signal).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// A running writer service.
#[derive(Debug)]
pub struct Server {
    ledger: Ledger,
    listener: UnixListener,
    http: Option<HttpListener>,
    options: ServerOptions,
    stop: Arc<AtomicBool>,
    dir: PathBuf,
}

impl Server {
    /// Binds the socket (mode 0600) and writes `serve.json`. A socket file nobody answers on is
    /// a leftover of a crash and is replaced; one that answers means a service already runs.
    pub fn start(ledger: Ledger, options: ServerOptions) -> std::io::Result<Server> {
        let dir = ledger.dir().to_path_buf();
        if let Ok(meta) = std::fs::symlink_metadata(&options.socket) {
            use std::os::unix::fs::FileTypeExt;
            if !meta.file_type().is_socket() {
                return Err(std::io::Error::new(
                    ErrorKind::AlreadyExists,
                    format!(
                        "{} exists and is not a socket; it is left alone",
                        options.socket.display()
                    ),
                ));
            }
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
        let http = match &options.http {
            None => None,
            Some(h) => {
                if h.keys.is_empty() && !h.addr.ip().is_loopback() {
                    return Err(std::io::Error::new(
                        ErrorKind::InvalidInput,
                        format!(
                            "no API keys are configured (MESHFLOW_API_KEYS): the HTTP API listens \
                             on loopback only, not on {}",
                            h.addr
                        ),
                    ));
                }
                let tls = match &h.tls {
                    Some((cert, key)) => Some(tls_acceptor(cert, key)?),
                    None => None,
                };
                let tcp = std::net::TcpListener::bind(h.addr)?;
                tcp.set_nonblocking(true)?;
                Some(HttpListener {
                    tcp,
                    keys: h.keys.clone(),
                    tls,
                })
            }
        };
        let info = ServiceInfo {
            pid: std::process::id(),
            socket: std::fs::canonicalize(&options.socket)?,
            http: match &http {
                Some(h) => Some(format!(
                    "{}://{}",
                    if h.tls.is_some() { "https" } else { "http" },
                    h.tcp.local_addr()?
                )),
                None => None,
            },
            started_at: crate::ledger::time::now_iso8601(),
        };
        info.write(&dir)?;
        Ok(Server {
            ledger,
            listener,
            http,
            options,
            stop: Arc::new(AtomicBool::new(false)),
            dir,
        })
    }

    /// A flag that stops the service when set.
    pub fn stop_handle(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Serves until stopped; then lets the connections finish the requests in hand, closes
    /// the ledger and removes `serve.json` and the socket.
    ///
    /// Connections are tasks on a two-thread tokio runtime; their appends go to one driver
    /// thread that submits every waiting request to the log's pipelined appender at once, so
    /// requests from all connections share group commits and no request holds a thread.
    pub fn run(self) -> std::io::Result<()> {
        let Server {
            ledger,
            listener,
            http,
            options,
            stop,
            dir,
        } = self;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("meshflow-serve")
            .enable_io()
            .enable_time()
            .build()?;
        let (jobs, queue) = crossbeam_channel::bounded::<Job>(4096);
        let driver_ledger = ledger.clone();
        // Held until serve.json and the socket are gone, so that the writer lock is released
        // only after them: a successor cannot lose its own files to this cleanup.
        let keep = ledger.clone();
        let driver = std::thread::Builder::new()
            .name("meshflow-append".to_string())
            .spawn(move || drive(&driver_ledger, &queue))?;
        let max = options.max_message_bytes;
        let served = runtime.block_on(async move {
            let http_task = match http {
                None => None,
                Some(h) => {
                    let state = super::http::AppState {
                        ledger: ledger.clone(),
                        jobs: jobs.clone(),
                        keys: Arc::new(h.keys),
                        metrics: Arc::default(),
                    };
                    let app = super::http::router(state, max);
                    let tcp = tokio::net::TcpListener::from_std(h.tcp)?;
                    let stop = stop.clone();
                    let stopped = async move {
                        while !stop.load(Ordering::Relaxed) {
                            tokio::time::sleep(POLL).await;
                        }
                    };
                    Some(match h.tls {
                        None => tokio::spawn(async move {
                            axum::serve(tcp, app).with_graceful_shutdown(stopped).await
                        }),
                        Some(acceptor) => {
                            let listener = TlsListener::start(tcp, acceptor)?;
                            tokio::spawn(async move {
                                axum::serve(listener, app)
                                    .with_graceful_shutdown(stopped)
                                    .await
                            })
                        }
                    })
                }
            };
            let socket = accept_loop(listener, ledger, jobs, stop, max).await;
            if let Some(task) = http_task {
                let abort = task.abort_handle();
                match tokio::time::timeout(DRAIN, task).await {
                    Ok(Ok(result)) => result?,
                    Ok(Err(e)) if e.is_cancelled() => {}
                    Ok(Err(e)) => return Err(std::io::Error::other(e)),
                    Err(_) => abort.abort(),
                }
            }
            socket
        });
        runtime.shutdown_timeout(Duration::from_secs(5));
        let _ = driver.join();
        let _ = std::fs::remove_file(dir.join(INFO_FILE));
        let _ = std::fs::remove_file(&options.socket);
        drop(keep);
        served
    }
}

/// One append request on its way to the driver thread.
pub(crate) struct Job {
    pub(crate) handle: Ledger,
    pub(crate) requests: Vec<StepRequest>,
    pub(crate) durability: Durability,
    pub(crate) reply: tokio::sync::oneshot::Sender<Value>,
}

async fn accept_loop(
    listener: UnixListener,
    ledger: Ledger,
    jobs: crossbeam_channel::Sender<Job>,
    stop: Arc<AtomicBool>,
    max: usize,
) -> std::io::Result<()> {
    let listener = tokio::net::UnixListener::from_std(listener)?;
    let mut connections = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match tokio::time::timeout(POLL, listener.accept()).await {
            Err(_elapsed) => {}
            Ok(Ok((stream, _))) => {
                let ledger = ledger.clone();
                let jobs = jobs.clone();
                let stop = stop.clone();
                connections.push(tokio::spawn(async move {
                    serve_connection(stream, &ledger, &jobs, &stop, max).await;
                }));
                connections.retain(|c| !c.is_finished());
            }
            Ok(Err(e)) if e.kind() == ErrorKind::Interrupted => {}
            Ok(Err(e)) => return Err(e),
        }
    }
    // Let the connections finish the requests in hand, within a bound.
    let drain = async {
        for c in &mut connections {
            let _ = c.await;
        }
    };
    if tokio::time::timeout(DRAIN, drain).await.is_err() {
        for c in &connections {
            c.abort();
        }
    }
    Ok(())
}

/// Reads exactly `buf.len()` bytes; `Ok(false)` when the peer closed before the first byte, or
/// when `stop` is set while waiting for it. Each `read` is cancel-safe, so polling the stop
/// flag between them loses nothing.
async fn read_full(
    stream: &mut tokio::net::UnixStream,
    buf: &mut [u8],
    stop: &AtomicBool,
) -> std::io::Result<bool> {
    use tokio::io::AsyncReadExt;
    let mut got = 0;
    while got < buf.len() {
        let dst = buf.get_mut(got..).unwrap_or(&mut []);
        match tokio::time::timeout(POLL, stream.read(dst)).await {
            Err(_elapsed) => {
                // Stopping: a request not fully received is abandoned (nothing of it was
                // written), so a stalled client cannot hold the shutdown up.
                if stop.load(Ordering::Relaxed) {
                    return Ok(false);
                }
            }
            Ok(Ok(0)) if got == 0 => return Ok(false),
            Ok(Ok(0)) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(Ok(n)) => got += n,
            Ok(Err(e)) if e.kind() == ErrorKind::Interrupted => {}
            Ok(Err(e)) => return Err(e),
        }
    }
    Ok(true)
}

async fn serve_connection(
    mut stream: tokio::net::UnixStream,
    ledger: &Ledger,
    jobs: &crossbeam_channel::Sender<Job>,
    stop: &AtomicBool,
    max: usize,
) {
    use tokio::io::AsyncWriteExt;
    loop {
        let mut prefix = [0u8; 4];
        match read_full(&mut stream, &mut prefix, stop).await {
            Ok(true) => {}
            Ok(false) | Err(_) => return,
        }
        let len = protocol::body_len(prefix);
        if len > max {
            let refusal = protocol::error(
                "too_large",
                &format!("a request of {len} bytes is over the limit of {max}"),
            );
            let _ = stream.write_all(&protocol::encode(&refusal)).await;
            return;
        }
        let mut body = vec![0u8; len];
        if !matches!(read_full(&mut stream, &mut body, stop).await, Ok(true)) {
            return;
        }
        let response = if stop.load(Ordering::Relaxed) {
            protocol::error(
                "shutting_down",
                "the writer service is stopping; nothing was written",
            )
        } else {
            match serde_json::from_slice::<Value>(&body) {
                Err(e) => protocol::error("invalid_input", &format!("not a JSON object: {e}")),
                Ok(request) => match prepare(&request, ledger) {
                    Prepared::Done(response) => response,
                    Prepared::Sync => {
                        let ledger = ledger.clone();
                        match tokio::task::spawn_blocking(move || ledger.sync()).await {
                            Ok(Ok(())) => json!({"ok": true}),
                            Ok(Err(e)) => protocol::ledger_error(&e),
                            Err(_) => protocol::error("error", "the sync failed"),
                        }
                    }
                    Prepared::Append(handle, requests, durability) => {
                        let (reply, answer) = tokio::sync::oneshot::channel();
                        let job = Job {
                            handle,
                            requests,
                            durability,
                            reply,
                        };
                        if let Err(e) = jobs.try_send(job) {
                            // Never block a runtime thread on a full queue.
                            match e {
                                crossbeam_channel::TrySendError::Full(_) => protocol::error(
                                    "busy",
                                    "the writer service is busy; nothing was written, retry",
                                ),
                                crossbeam_channel::TrySendError::Disconnected(_) => {
                                    protocol::error(
                                        "shutting_down",
                                        "the writer service is stopping",
                                    )
                                }
                            }
                        } else {
                            answer.await.unwrap_or_else(|_| {
                                protocol::error("shutting_down", "the writer service stopped")
                            })
                        }
                    }
                },
            }
        };
        if stream
            .write_all(&protocol::encode(&response))
            .await
            .is_err()
        {
            return;
        }
    }
}

/// The driver thread: takes every waiting append, submits them all to the pipelined appender
/// (one channel message to the sequencer per transport batch), then answers each in order.
fn drive(ledger: &Ledger, queue: &crossbeam_channel::Receiver<Job>) {
    let Some(log) = ledger.log() else {
        return;
    };
    let mut appender = log.appender();
    while let Ok(first) = queue.recv() {
        let mut waiting = vec![first];
        while waiting.len() < 1024 {
            match queue.try_recv() {
                Ok(job) => waiting.push(job),
                Err(_) => break,
            }
        }
        let mut submitted = Vec::with_capacity(waiting.len());
        for job in waiting {
            let built = match job.handle.build(&job.requests) {
                Ok(b) => b,
                Err(e) => {
                    let _ = job.reply.send(protocol::ledger_error(&e));
                    continue;
                }
            };
            let (built, records): (Vec<_>, Vec<_>) = built.into_iter().unzip();
            match appender.submit_batch(records, job.durability) {
                Ok(()) => submitted.push((job, built)),
                Err(e) => {
                    let _ = job.reply.send(protocol::ledger_error(&e.into()));
                }
            }
        }
        if let Err(e) = appender.send_pending() {
            for (job, _) in submitted.drain(..) {
                let _ = job
                    .reply
                    .send(protocol::ledger_error(&crate::ledger::LedgerError::Log(
                        crate::Error::Poisoned {
                            reason: e.to_string(),
                        },
                    )));
            }
        }
        for (job, built) in submitted {
            let response = match appender.next_receipts() {
                Ok(receipts) => built
                    .into_iter()
                    .zip(receipts)
                    .map(|(b, r)| b.receipt(&r).map(|r| protocol::receipt_json(&r)))
                    .collect::<Result<Vec<_>, _>>()
                    .map(|receipts| json!({"ok": true, "receipts": receipts}))
                    .unwrap_or_else(|e| protocol::ledger_error(&e)),
                Err(crate::Error::Rejected { reason })
                    if reason.starts_with(crate::ledger::admission::DUPLICATE) =>
                {
                    match job.handle.resolve_retry(&job.requests, &built) {
                        Ok(receipts) => json!({
                            "ok": true,
                            "receipts": receipts.iter().map(protocol::receipt_json).collect::<Vec<_>>(),
                        }),
                        Err(e) => protocol::ledger_error(&e),
                    }
                }
                Err(crate::Error::Rejected { reason }) => {
                    protocol::ledger_error(&crate::ledger::LedgerError::Conflict { reason })
                }
                Err(e) => protocol::ledger_error(&e.into()),
            };
            let _ = job.reply.send(response);
        }
    }
}

/// What a request needs: an answer now, an append for the driver thread, or a sync.
enum Prepared {
    Done(Value),
    Sync,
    Append(Ledger, Vec<StepRequest>, Durability),
}

/// Checks a request and answers it, or turns an append into work for the driver thread.
fn prepare(request: &Value, ledger: &Ledger) -> Prepared {
    if request.get("v").and_then(Value::as_u64) != Some(VERSION) {
        return Prepared::Done(protocol::error(
            "unsupported_version",
            &format!("this service speaks protocol version {VERSION}"),
        ));
    }
    let tenant = match request.get("tenant") {
        None => "default",
        Some(Value::String(t)) => t.as_str(),
        Some(_) => {
            return Prepared::Done(protocol::error("invalid_input", "tenant must be a string"))
        }
    };
    match request.get("op").and_then(Value::as_str) {
        Some("sync") => Prepared::Sync,
        Some("ping") => Prepared::Done(json!({
            "ok": true,
            "protocol": VERSION,
            "pid": std::process::id(),
            "log": ledger.dir().display().to_string(),
        })),
        Some("append") => match append_request(request, ledger, tenant) {
            Ok((handle, requests, durability)) => Prepared::Append(handle, requests, durability),
            Err(refusal) => Prepared::Done(refusal),
        },
        Some(other) => Prepared::Done(protocol::error(
            "invalid_input",
            &format!("unknown op '{other}'"),
        )),
        None => Prepared::Done(protocol::error("invalid_input", "a request names its op")),
    }
}

/// The handle, steps and durability of an append request, or the refusal to send.
fn append_request(
    request: &Value,
    ledger: &Ledger,
    tenant: &str,
) -> Result<(Ledger, Vec<StepRequest>, Durability), Value> {
    let handle = ledger
        .with_tenant(tenant)
        .map_err(|e| protocol::ledger_error(&e))?;
    let durability = match request.get("durability").and_then(Value::as_str) {
        None | Some("sync") => Durability::Sync,
        Some("buffered") => Durability::Buffered,
        Some(other) => {
            return Err(protocol::error(
                "invalid_input",
                &format!("durability '{other}' is not sync or buffered"),
            ))
        }
    };
    let Some(lines) = request.get("lines").and_then(Value::as_array) else {
        return Err(protocol::error(
            "invalid_input",
            "an append carries 'lines', an array",
        ));
    };
    let mut steps = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        let Some(text) = line.as_str() else {
            return Err(protocol::error(
                "invalid_input",
                &format!("line {}: not a string", i + 1),
            ));
        };
        match StepRequest::from_json(text) {
            Ok(step) => steps.push(step),
            Err(e) => {
                return Err(protocol::error(
                    "invalid_input",
                    &format!("line {}: {e}", i + 1),
                ))
            }
        }
    }
    Ok((handle, steps, durability))
}

/// The socket a service for `dir` listens on by default.
pub fn default_socket(dir: &Path) -> PathBuf {
    dir.join(super::DEFAULT_SOCKET)
}
