//! The writer service: one process holds the log's writer lock and serves appends from many
//! others over a Unix domain socket (`docs/protocol.md`). [`server::Server`] is the service,
//! [`client::Client`] the library client, [`protocol`] the framing and messages, and
//! [`ServiceInfo`] the `serve.json` file through which clients find a running service.

pub mod client;
pub mod http;
pub mod protocol;
pub mod server;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

/// The discovery file in the log directory.
pub const INFO_FILE: &str = "serve.json";
/// The default socket file in the log directory.
pub const DEFAULT_SOCKET: &str = "serve.sock";

/// What `serve.json` records about a running service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    /// The service's process id.
    pub pid: u32,
    /// Its Unix socket.
    pub socket: PathBuf,
    /// Its HTTP address, if it serves HTTP.
    pub http: Option<String>,
    /// When it started (ISO 8601 UTC).
    pub started_at: String,
}

impl ServiceInfo {
    /// The JSON text of the file.
    pub fn to_json(&self) -> String {
        json!({
            "pid": self.pid,
            "socket": self.socket.display().to_string(),
            "http": self.http,
            "started_at": self.started_at,
        })
        .to_string()
    }

    /// Reads `<dir>/serve.json`; `None` when it is missing or unreadable (no service).
    pub fn read(dir: &Path) -> Option<ServiceInfo> {
        let text = std::fs::read_to_string(dir.join(INFO_FILE)).ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        Some(ServiceInfo {
            pid: u32::try_from(v.get("pid")?.as_u64()?).ok()?,
            socket: PathBuf::from(v.get("socket")?.as_str()?),
            http: v.get("http").and_then(Value::as_str).map(str::to_string),
            started_at: v
                .get("started_at")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        })
    }

    /// Writes `<dir>/serve.json` atomically (temp file, fsync, rename), mode 0600.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        use std::io::Write;
        let tmp = dir.join(format!(".{INFO_FILE}.tmp-{}", std::process::id()));
        let mut f = crate::ledger::checkpoint::store::create_private_file(&tmp)?;
        f.write_all(self.to_json().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(INFO_FILE))?;
        std::fs::File::open(dir)?.sync_all()
    }
}
