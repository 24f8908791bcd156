//! `meshflow serve`: the writer service on a Unix socket (and the HTTP API with `--http`),
//! until SIGTERM or SIGINT.

use std::io::Write;

use anyhow::{Context, Result};
use meshflow_engine::service::http::ApiKeys;
use meshflow_engine::service::server::{default_socket, HttpOptions, Server, ServerOptions};

use crate::args::{Cli, ServeArgs, UsageError};

/// `meshflow serve [--socket PATH]`
pub fn run(cli: &Cli, args: &ServeArgs) -> Result<u8> {
    let keys = ApiKeys::parse(&std::env::var("MESHFLOW_API_KEYS").unwrap_or_default())
        .map_err(|e| UsageError(format!("MESHFLOW_API_KEYS: {e}")))?;
    if let Some(addr) = args.http {
        if keys.is_empty() && !addr.ip().is_loopback() {
            return Err(UsageError(format!(
                "no API keys are configured (MESHFLOW_API_KEYS), so the HTTP API listens on \
                 loopback only, not on {addr}"
            ))
            .into());
        }
    }
    let ledger = super::ledger::open_write_waiting(cli, 0.0)?;
    let socket = args
        .socket
        .clone()
        .unwrap_or_else(|| default_socket(&cli.db));
    let tls = args.tls_cert.clone().zip(args.tls_key.clone());
    let http = args.http.map(|addr| HttpOptions {
        addr,
        keys: keys.clone(),
        tls,
    });
    let server = Server::start(
        ledger,
        ServerOptions {
            socket: socket.clone(),
            max_message_bytes: args.max_message_bytes,
            http,
        },
    )
    .with_context(|| format!("starting the writer service on {}", socket.display()))?;
    let stop = server.stop_handle();
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())
            .context("installing the signal handler")?;
    }
    {
        let info = meshflow_engine::service::ServiceInfo::read(&cli.db);
        let http = info.and_then(|i| i.http);
        let mut out = std::io::stdout().lock();
        if cli.json {
            let value = serde_json::json!({"serving": cli.db.display().to_string(),
                                           "socket": socket.display().to_string(),
                                           "http": http,
                                           "api_keys": !keys.is_empty(),
                                           "pid": std::process::id()});
            writeln!(out, "{value}")?;
        } else {
            writeln!(
                out,
                "serving {} on {} (pid {}); stop with SIGTERM or Ctrl-C",
                cli.db.display(),
                socket.display(),
                std::process::id()
            )?;
            if let Some(addr) = &http {
                if keys.is_empty() {
                    writeln!(out, "HTTP API on {addr} (no API keys: loopback only)")?;
                } else {
                    writeln!(out, "HTTP API on {addr} (API keys required)")?;
                }
            }
        }
        out.flush()?;
    }
    server.run().context("serving")?;
    Ok(0)
}
