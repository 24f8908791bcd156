//! `meshflow serve`: the writer service on a Unix socket, until SIGTERM or SIGINT.

use std::io::Write;

use anyhow::{Context, Result};
use meshflow_engine::service::server::{default_socket, Server, ServerOptions};

use crate::args::{Cli, ServeArgs};

/// `meshflow serve [--socket PATH]`
pub fn run(cli: &Cli, args: &ServeArgs) -> Result<u8> {
    let ledger = super::ledger::open_write_waiting(cli, 0.0)?;
    let socket = args
        .socket
        .clone()
        .unwrap_or_else(|| default_socket(&cli.db));
    let server = Server::start(
        ledger,
        ServerOptions {
            socket: socket.clone(),
            max_message_bytes: args.max_message_bytes,
        },
    )
    .with_context(|| format!("starting the writer service on {}", socket.display()))?;
    let stop = server.stop_handle();
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())
            .context("installing the signal handler")?;
    }
    {
        let mut out = std::io::stdout().lock();
        if cli.json {
            let value = serde_json::json!({"serving": cli.db.display().to_string(),
                                           "socket": socket.display().to_string(),
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
        }
        out.flush()?;
    }
    server.run().context("serving")?;
    Ok(0)
}
