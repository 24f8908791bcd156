//! The writer service (`docs/protocol.md`): it owns a writable [`Ledger`] and serves requests
//! from a Unix domain socket. Connections are tasks on a small tokio runtime; each task builds
//! its appends' records and queues them straight to the log's sequencer, so concurrent clients
//! share group commits as in-process threads do.
//! Stopping (the handle from [`Server::stop_handle`]) lets every connection finish the request
//! it is serving, then closes the ledger cleanly and removes `serve.json` and the socket.

use std::io::ErrorKind;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::protocol::{self, Request, VERSION};
use super::{ServiceInfo, INFO_FILE};
use crate::ledger::{Built, Ledger, LedgerError, StepReceipt, StepRequest};
use crate::log::{Durability, RecordInput};

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

/// Removes `serve.json` and the socket when dropped: a service that stops, fails to start its
/// runtime, or is dropped without running leaves neither behind.
#[derive(Debug)]
struct Cleanup {
    info: PathBuf,
    socket: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.info);
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// A running writer service.
#[derive(Debug)]
pub struct Server {
    // Dropped first (fields drop in order), so the files go before the writer lock does.
    cleanup: Cleanup,
    ledger: Ledger,
    listener: UnixListener,
    http: Option<HttpListener>,
    options: ServerOptions,
    stop: Arc<AtomicBool>,
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
            cleanup: Cleanup {
                info: dir.join(INFO_FILE),
                socket: options.socket.clone(),
            },
            ledger,
            listener,
            http,
            options,
            stop: Arc::new(AtomicBool::new(false)),
        })
    }

    /// A flag that stops the service when set.
    pub fn stop_handle(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Serves until stopped; then lets the connections finish the requests in hand, closes
    /// the ledger and removes `serve.json` and the socket.
    ///
    /// Connections are tasks on a two-thread tokio runtime; their appends go straight to the
    /// log's sequencer (`Log::append_batch_then`), so requests from all connections share
    /// group commits and no request holds a thread while it waits.
    pub fn run(self) -> std::io::Result<()> {
        let Server {
            cleanup,
            ledger,
            listener,
            http,
            options,
            stop,
        } = self;
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("meshflow-serve")
            .enable_io()
            .enable_time()
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                drop(cleanup);
                return Err(e);
            }
        };
        let appends = Appends::new();
        // Held until serve.json and the socket are gone, so that the writer lock is released
        // only after them: a successor cannot lose its own files to this cleanup.
        let keep = ledger.clone();
        let max = options.max_message_bytes;
        let served = runtime.block_on(async move {
            // The stop flag, set from a signal handler or another thread, becomes a watch
            // every task can wait on.
            let (stop_tx, stopped) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(POLL).await;
                }
                let _ = stop_tx.send(true);
            });
            let http_task = match http {
                None => None,
                Some(h) => {
                    let state = super::http::AppState {
                        ledger: ledger.clone(),
                        appends: appends.clone(),
                        keys: Arc::new(h.keys),
                        metrics: Arc::default(),
                    };
                    let app = super::http::router(state, max);
                    let tcp = tokio::net::TcpListener::from_std(h.tcp)?;
                    let mut stopped = stopped.clone();
                    let stopped = async move {
                        let _ = stopped.wait_for(|s| *s).await;
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
            let socket = accept_loop(listener, ledger, appends, stopped, max).await;
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
        drop(cleanup);
        drop(keep);
        served
    }
}

/// Appends in flight through the service (socket and HTTP) at most; more are refused as
/// `busy` (nothing written) rather than queued without bound.
const IN_FLIGHT_MAX: usize = 2048;

/// The service's appends: each connection's task builds its batch's records and frames (so
/// building runs on every runtime thread) and queues them straight to the log's sequencer,
/// which groups the batches of all connections into shared commits and wakes each task with
/// its receipts. No thread is held while a batch waits for its commit.
#[derive(Clone)]
pub(crate) struct Appends {
    permits: Arc<tokio::sync::Semaphore>,
}

impl Appends {
    fn new() -> Appends {
        Appends {
            permits: Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT_MAX)),
        }
    }

    /// Appends `requests` as one atomic batch for `handle`'s tenant; the receipts, in order,
    /// once durable (`Sync`) or sequenced (`Buffered`).
    pub(crate) async fn append(
        &self,
        handle: Ledger,
        requests: Vec<StepRequest>,
        durability: Durability,
    ) -> Result<Vec<StepReceipt>, SubmitError> {
        let _permit = self
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| SubmitError::Busy)?;
        let log = handle
            .log()
            .ok_or(SubmitError::Ledger(LedgerError::ReadOnly))?;
        let (built, records): (Vec<Built>, Vec<RecordInput>) = handle
            .build(&requests)
            .map_err(SubmitError::Ledger)?
            .into_iter()
            .unzip();
        let (reply, receipts) = tokio::sync::oneshot::channel();
        log.append_batch_then(records, durability, move |r| {
            let _ = reply.send(r);
        })
        .map_err(|e| SubmitError::Ledger(e.into()))?;
        let result = receipts.await.unwrap_or(Err(crate::Error::Closed));
        let answer = match result {
            Ok(receipts) => built
                .into_iter()
                .zip(receipts)
                .map(|(b, r)| b.receipt(&r))
                .collect::<Result<Vec<_>, _>>(),
            Err(crate::Error::Rejected { reason })
                if reason.starts_with(crate::ledger::admission::DUPLICATE) =>
            {
                // A retry: the original receipts are read back from the log.
                tokio::task::spawn_blocking(move || handle.resolve_retry(&requests, &built))
                    .await
                    .unwrap_or_else(|_| {
                        Err(LedgerError::Log(crate::Error::Poisoned {
                            reason: "resolving a retried step failed".to_string(),
                        }))
                    })
            }
            Err(crate::Error::Rejected { reason }) => Err(LedgerError::Conflict { reason }),
            Err(e) => Err(e.into()),
        };
        answer.map_err(SubmitError::Ledger)
    }
}

/// Why an append got no receipts.
pub(crate) enum SubmitError {
    /// The ledger refused or failed it (invalid steps, a conflict, the log's own errors).
    Ledger(LedgerError),
    /// Too many appends are in flight: nothing was written, retry.
    Busy,
}

impl SubmitError {
    /// The protocol's error kind and message.
    pub(crate) fn kind_and_message(&self) -> (&'static str, String) {
        match self {
            SubmitError::Ledger(e) => (protocol::error_kind(e), e.to_string()),
            SubmitError::Busy => (
                "busy",
                "the writer service is busy; nothing was written, retry".to_string(),
            ),
        }
    }
}

async fn accept_loop(
    listener: UnixListener,
    ledger: Ledger,
    appends: Appends,
    mut stopped: tokio::sync::watch::Receiver<bool>,
    max: usize,
) -> std::io::Result<()> {
    let listener = tokio::net::UnixListener::from_std(listener)?;
    let mut connections = Vec::new();
    loop {
        let accepted = tokio::select! {
            _ = stopped.wait_for(|s| *s) => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let ledger = ledger.clone();
                let appends = appends.clone();
                let stopped = stopped.clone();
                connections.push(tokio::spawn(async move {
                    serve_connection(stream, &ledger, &appends, stopped, max).await;
                }));
                connections.retain(|c| !c.is_finished());
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // Out of descriptors and the like: the listener itself is fine; try again shortly.
            Err(_) => tokio::time::sleep(POLL).await,
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

/// What the next message on a connection is.
enum Incoming {
    /// A whole request body.
    Message(Vec<u8>),
    /// The peer closed the connection between messages.
    Closed,
    /// The prefix announced more than the limit.
    TooLarge(usize),
}

/// Reads the next message. The body buffer grows with the bytes that actually arrive, so a
/// prefix announcing a large body reserves nothing until the body comes.
async fn next_message<R>(reader: &mut R, max: usize) -> std::io::Result<Incoming>
where
    R: tokio::io::AsyncBufRead + Unpin,
{
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    if reader.fill_buf().await?.is_empty() {
        return Ok(Incoming::Closed);
    }
    let mut prefix = [0u8; 4];
    reader.read_exact(&mut prefix).await?;
    let len = protocol::body_len(prefix);
    if len > max {
        return Ok(Incoming::TooLarge(len));
    }
    let mut body = Vec::with_capacity(len.min(64 << 10));
    let wanted = u64::try_from(len).unwrap_or(u64::MAX);
    (&mut *reader).take(wanted).read_to_end(&mut body).await?;
    if body.len() < len {
        return Err(ErrorKind::UnexpectedEof.into());
    }
    Ok(Incoming::Message(body))
}

async fn serve_connection(
    mut stream: tokio::net::UnixStream,
    ledger: &Ledger,
    appends: &Appends,
    mut stopped: tokio::sync::watch::Receiver<bool>,
    max: usize,
) {
    use tokio::io::AsyncWriteExt;
    let (read, mut write) = stream.split();
    let mut read = tokio::io::BufReader::with_capacity(64 << 10, read);
    loop {
        // Stopping: a request not fully received is abandoned (nothing of it was written),
        // so a stalled client cannot hold the shutdown up.
        let incoming = tokio::select! {
            biased;
            incoming = next_message(&mut read, max) => incoming,
            _ = stopped.wait_for(|s| *s) => return,
        };
        let body = match incoming {
            Ok(Incoming::Message(body)) => body,
            Ok(Incoming::Closed) | Err(_) => return,
            Ok(Incoming::TooLarge(len)) => {
                let refusal = protocol::error(
                    "too_large",
                    &format!("a request of {len} bytes is over the limit of {max}"),
                );
                let _ = write.write_all(&protocol::encode(&refusal)).await;
                return;
            }
        };
        let response = if *stopped.borrow() {
            protocol::encode(&protocol::error(
                "shutting_down",
                "the writer service is stopping; nothing was written",
            ))
        } else {
            respond(&body, ledger, appends).await
        };
        if write.write_all(&response).await.is_err() {
            return;
        }
    }
}

/// The encoded response to one request body.
async fn respond(body: &[u8], ledger: &Ledger, appends: &Appends) -> Vec<u8> {
    let request = match protocol::parse_request(body) {
        Ok(r) => r,
        Err(refusal) => return protocol::encode(&refusal.response()),
    };
    match request {
        Request::Ping => protocol::encode(&json!({
            "ok": true,
            "protocol": VERSION,
            "pid": std::process::id(),
            "log": ledger.dir().display().to_string(),
        })),
        Request::Sync => {
            let ledger = ledger.clone();
            protocol::encode(
                &match tokio::task::spawn_blocking(move || ledger.sync()).await {
                    Ok(Ok(())) => json!({"ok": true}),
                    Ok(Err(e)) => protocol::ledger_error(&e),
                    Err(_) => protocol::error("error", "the sync failed"),
                },
            )
        }
        Request::Fork {
            tenant,
            run_id,
            from_step,
            at_offset,
            new_run_id,
            overrides,
        } => {
            let handle = match ledger.with_tenant(&tenant) {
                Ok(h) => h,
                Err(e) => return protocol::encode(&protocol::ledger_error(&e)),
            };
            let forked = tokio::task::spawn_blocking(move || match at_offset {
                Some(offset) => {
                    handle.fork_at_offset(&run_id, offset, new_run_id.as_deref(), &overrides)
                }
                None => handle.fork(
                    &run_id,
                    from_step.unwrap_or(-1),
                    new_run_id.as_deref(),
                    &overrides,
                ),
            })
            .await;
            protocol::encode(&match forked {
                Ok(Ok(r)) => json!({
                    "ok": true, "run_id": r.run_id, "parent_run_id": r.parent_run_id,
                    "steps_copied": r.steps_copied, "offset": r.offset,
                }),
                Ok(Err(e)) => protocol::ledger_error(&e),
                Err(_) => protocol::error("error", "the fork failed"),
            })
        }
        Request::Erase {
            tenant,
            run_id,
            mode,
            with_forks,
            by,
            reason,
        } => {
            let handle = match ledger.with_tenant(&tenant) {
                Ok(h) => h,
                Err(e) => return protocol::encode(&protocol::ledger_error(&e)),
            };
            let erased = tokio::task::spawn_blocking(move || match mode.as_str() {
                "delete-run" => handle.delete_run(&run_id, &by, &reason),
                "purge-tenant" => handle.purge_tenant(&by, &reason),
                _ => handle.anonymize_run(&run_id, with_forks, &by, &reason),
            })
            .await;
            protocol::encode(&match erased {
                Ok(Ok(r)) => json!({
                    "ok": true, "runs": r.runs, "slots_erased": r.slots_erased,
                    "offsets": r.offsets, "archives": r.archives,
                }),
                Ok(Err(e)) => protocol::ledger_error(&e),
                Err(_) => protocol::error("error", "the erasure failed"),
            })
        }
        Request::Event {
            tenant,
            event,
            slots,
        } => {
            let handle = match ledger.with_tenant(&tenant) {
                Ok(h) => h,
                Err(e) => return protocol::encode(&protocol::ledger_error(&e)),
            };
            protocol::encode(&match tokio::task::spawn_blocking(move || {
                handle.append_event_with_slots(&event, slots)
            })
            .await
            {
                Ok(Ok(offset)) => json!({"ok": true, "offset": offset}),
                Ok(Err(e)) => protocol::ledger_error(&e),
                Err(_) => protocol::error("error", "the event could not be appended"),
            })
        }
        Request::Append {
            tenant,
            durability,
            steps,
        } => {
            let handle = match ledger.with_tenant(&tenant) {
                Ok(h) => h,
                Err(e) => return protocol::encode(&protocol::ledger_error(&e)),
            };
            match appends.append(handle, steps, durability).await {
                Ok(receipts) => protocol::encode(&protocol::AppendResponse(&receipts)),
                Err(e) => {
                    let (kind, message) = e.kind_and_message();
                    protocol::encode(&protocol::error(kind, &message))
                }
            }
        }
    }
}

/// The socket a service for `dir` listens on by default.
pub fn default_socket(dir: &Path) -> PathBuf {
    dir.join(super::DEFAULT_SOCKET)
}
