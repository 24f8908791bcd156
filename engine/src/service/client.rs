//! The library client of the writer service (`docs/protocol.md`).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use serde_json::Value;

use super::protocol;
use super::ServiceInfo;
use crate::ledger::StepReceipt;

/// Why a request through the service failed.
#[derive(Debug)]
pub enum ClientError {
    /// The socket failed (the service is gone, or the connection broke).
    Io(std::io::Error),
    /// The service answered something that is not the protocol.
    Protocol(String),
    /// The service refused the request: `kind` as in `docs/protocol.md`.
    Remote {
        /// The error kind (`invalid_input`, `conflict`, …).
        kind: String,
        /// The service's message.
        message: String,
    },
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "writer service: {e}"),
            ClientError::Protocol(why) => write!(f, "writer service protocol error: {why}"),
            ClientError::Remote { message, .. } => write!(f, "{message}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// A connection to a writer service.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
    reader: std::io::BufReader<UnixStream>,
}

impl Client {
    /// Connects to the service listening on `socket`.
    pub fn connect(socket: &Path) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(socket).map_err(ClientError::Io)?;
        let reader = std::io::BufReader::new(stream.try_clone().map_err(ClientError::Io)?);
        Ok(Client { stream, reader })
    }

    /// Connects to the service of the log in `dir`, if one is running: `serve.json` names its
    /// socket and the socket answers a ping. `None` otherwise (no service, or a stale file).
    pub fn discover(dir: &Path) -> Option<Client> {
        let info = ServiceInfo::read(dir)?;
        let mut client = Client::connect(&info.socket).ok()?;
        let pong = client.request(&protocol::ping_request()).ok()?;
        // The socket may now belong to another log's service (a crash left this serve.json).
        let serves = pong
            .get("log")
            .and_then(Value::as_str)
            .and_then(|l| std::fs::canonicalize(l).ok());
        (serves.is_some() && serves == std::fs::canonicalize(dir).ok()).then_some(client)
    }

    /// Sends a request and returns the `ok` response; a refusal is [`ClientError::Remote`].
    pub fn request(&mut self, request: &Value) -> Result<Value, ClientError> {
        let body = self.round_trip(&protocol::encode(request))?;
        let response: Value = serde_json::from_slice(&body)
            .map_err(|e| ClientError::Protocol(format!("response is not JSON: {e}")))?;
        if response.get("ok") == Some(&Value::Bool(true)) {
            return Ok(response);
        }
        let error = response.get("error");
        let field = |k: &str| {
            error
                .and_then(|e| e.get(k))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        Err(ClientError::Remote {
            kind: field("kind"),
            message: field("message"),
        })
    }

    /// Sends one encoded message and returns the response's body.
    fn round_trip(&mut self, message: &[u8]) -> Result<Vec<u8>, ClientError> {
        if let Err(e) = self.stream.write_all(message) {
            // The service may have refused the request before reading all of it (too large)
            // and closed: its answer is still there to read.
            if !matches!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
            ) {
                return Err(ClientError::Io(e));
            }
            return match self.read_body().and_then(|body| {
                serde_json::from_slice::<protocol::AppendReply>(&body)
                    .map_err(|e| ClientError::Protocol(e.to_string()))
            }) {
                Ok(reply) if !reply.ok => Err(remote(reply.error)),
                _ => Err(ClientError::Io(e)),
            };
        }
        self.read_body()
    }

    fn read_body(&mut self) -> Result<Vec<u8>, ClientError> {
        if self.reader.buffer().is_empty() {
            wait_readable(&self.stream).map_err(ClientError::Io)?;
        }
        let mut prefix = [0u8; 4];
        self.reader
            .read_exact(&mut prefix)
            .map_err(ClientError::Io)?;
        let len = protocol::body_len(prefix);
        if len > protocol::MESSAGE_BYTES_MAX.saturating_mul(4) {
            return Err(ClientError::Protocol(format!("a response of {len} bytes")));
        }
        let mut body = Vec::with_capacity(len.min(64 << 10));
        let read = (&mut self.reader)
            .take(u64::try_from(len).unwrap_or(u64::MAX))
            .read_to_end(&mut body)
            .map_err(ClientError::Io)?;
        if read < len {
            return Err(ClientError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        Ok(body)
    }

    /// Makes everything the service has sequenced durable (after `buffered` appends).
    pub fn sync(&mut self) -> Result<(), ClientError> {
        self.request(&serde_json::json!({"v": protocol::VERSION, "op": "sync"}))
            .map(|_| ())
    }

    /// Appends one governance event for `tenant`, durable on return; its offset. A refusal
    /// by the views (a name in use, an unknown rule) is [`ClientError::Remote`] `conflict`.
    pub fn append_event(
        &mut self,
        tenant: &str,
        event: &crate::governance::Event,
        slots: &[Vec<u8>],
    ) -> Result<u64, ClientError> {
        let response = self.request(&protocol::event_request(tenant, event, slots))?;
        response
            .get("offset")
            .and_then(Value::as_u64)
            .ok_or_else(|| ClientError::Protocol("an event response without an offset".into()))
    }

    /// Anonymizes (or deletes) `run_id` of `tenant` through the service.
    pub fn erase(
        &mut self,
        tenant: &str,
        run_id: &str,
        delete: bool,
        with_forks: bool,
        by: &str,
        reason: &str,
    ) -> Result<crate::ledger::erasure::ErasureReceipt, ClientError> {
        let mode = if delete { "delete-run" } else { "anonymize" };
        self.erase_mode(tenant, run_id, mode, with_forks, by, reason)
    }

    fn erase_mode(
        &mut self,
        tenant: &str,
        run_id: &str,
        mode: &str,
        with_forks: bool,
        by: &str,
        reason: &str,
    ) -> Result<crate::ledger::erasure::ErasureReceipt, ClientError> {
        let response = self.request(&protocol::erase_request(
            tenant, run_id, mode, with_forks, by, reason,
        ))?;
        let bad = || ClientError::Protocol("an erase response without its fields".to_string());
        let runs = response
            .get("runs")
            .and_then(Value::as_array)
            .ok_or_else(bad)?
            .iter()
            .map(|r| r.as_str().map(str::to_string).ok_or_else(bad))
            .collect::<Result<_, _>>()?;
        let offsets = response
            .get("offsets")
            .and_then(Value::as_array)
            .ok_or_else(bad)?
            .iter()
            .map(|o| o.as_u64().ok_or_else(bad))
            .collect::<Result<_, _>>()?;
        Ok(crate::ledger::erasure::ErasureReceipt {
            runs,
            slots_erased: response
                .get("slots_erased")
                .and_then(Value::as_u64)
                .ok_or_else(bad)?,
            offsets,
            archives: response
                .get("archives")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|u| u.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// Purges `tenant` (`Ledger::purge_tenant`) through the service.
    pub fn purge_tenant(
        &mut self,
        tenant: &str,
        by: &str,
        reason: &str,
    ) -> Result<crate::ledger::erasure::ErasureReceipt, ClientError> {
        self.erase_mode(tenant, "", "purge-tenant", false, by, reason)
    }

    /// Forks `run_id` of `tenant` (from a step count, or at a log offset) through the service.
    pub fn fork(
        &mut self,
        tenant: &str,
        run_id: &str,
        from_step: Option<i64>,
        at_offset: Option<u64>,
        new_run_id: Option<&str>,
        overrides: &crate::ledger::fork::ForkOverrides,
    ) -> Result<crate::ledger::fork::ForkReceipt, ClientError> {
        let response = self.request(&protocol::fork_request(
            tenant, run_id, from_step, at_offset, new_run_id, overrides,
        ))?;
        let text = |k: &str| {
            response
                .get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| ClientError::Protocol(format!("a fork response without '{k}'")))
        };
        let num = |k: &str| {
            response
                .get(k)
                .and_then(Value::as_u64)
                .ok_or_else(|| ClientError::Protocol(format!("a fork response without '{k}'")))
        };
        Ok(crate::ledger::fork::ForkReceipt {
            run_id: text("run_id")?,
            parent_run_id: text("parent_run_id")?,
            steps_copied: num("steps_copied")?,
            offset: num("offset")?,
        })
    }

    /// Appends `lines` (step JSON objects) as one atomic batch for `tenant`; the receipts, in
    /// order, once durable (`sync`) or sequenced.
    pub fn append(
        &mut self,
        tenant: &str,
        lines: &[String],
        sync: bool,
    ) -> Result<Vec<StepReceipt>, ClientError> {
        let message = protocol::encode(&protocol::AppendRequest {
            tenant,
            lines,
            sync,
        });
        let body = self.round_trip(&message)?;
        let reply: protocol::AppendReply = serde_json::from_slice(&body)
            .map_err(|e| ClientError::Protocol(format!("an append response: {e}")))?;
        if !reply.ok {
            return Err(remote(reply.error));
        }
        if reply.receipts.len() != lines.len() {
            return Err(ClientError::Protocol(
                "an append response without one receipt per line".to_string(),
            ));
        }
        reply
            .receipts
            .into_iter()
            .map(|r| {
                r.into_receipt().ok_or_else(|| {
                    ClientError::Protocol("a receipt whose entry hash is not hex".to_string())
                })
            })
            .collect()
    }
}

/// Waits until `stream` has bytes to read (or is closed). A thread blocked in `read(2)` on a
/// Unix stream socket is woken each time the peer consumes what this side wrote (the kernel's
/// write-space wakeup shares the wait queue); `poll(2)` for input only is not, which saves a
/// context switch per request.
fn wait_readable(stream: &UnixStream) -> std::io::Result<()> {
    use rustix::event::{poll, PollFd, PollFlags};
    let mut fds = [PollFd::new(stream, PollFlags::IN)];
    loop {
        match poll(&mut fds, None) {
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// The refusal an error response carries.
fn remote(error: Option<protocol::ErrorFields>) -> ClientError {
    let error = error.unwrap_or_default();
    ClientError::Remote {
        kind: error.kind,
        message: error.message,
    }
}
