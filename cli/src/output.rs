//! Printing: errors as one line on stderr (JSON with `--json`).

use meshflow_engine::ledger::LedgerError;
use meshflow_engine::Error;

/// Prints an error the way SPEC.md §8 says.
pub fn print_error(error: &anyhow::Error, json: bool) {
    let remote = error
        .downcast_ref::<meshflow_engine::service::client::ClientError>()
        .map(|e| match e {
            meshflow_engine::service::client::ClientError::Remote { kind, .. } => kind.clone(),
            _ => "io".to_string(),
        });
    let kind = match error.downcast_ref::<LedgerError>() {
        Some(LedgerError::NotFound { .. }) => "not_found",
        Some(LedgerError::Conflict { .. }) => "conflict",
        Some(LedgerError::Invalid { .. }) => "invalid_input",
        Some(LedgerError::ReadOnly) => "read_only",
        Some(LedgerError::Log(e)) => e.kind_name(),
        Some(_) => "error",
        None => error
            .downcast_ref::<Error>()
            .map_or("error", Error::kind_name),
    };
    let kind = remote.as_deref().unwrap_or(kind);
    let message = error
        .chain()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ");
    if json {
        let value = serde_json::json!({"error": {"kind": kind, "message": message}});
        eprintln!("{value}");
    } else {
        eprintln!("error: {message}");
    }
}

/// Creates `path` (refusing an existing file) and writes `bytes` to it, durably.
pub fn write_new_file(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::io::Write;
    let mut file = create_new(path)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// Creates `path` for writing; an existing file is an error (nothing is overwritten).
pub fn create_new(path: &std::path::Path) -> anyhow::Result<std::fs::File> {
    use anyhow::Context;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    // Exports hold personal data: readable by their owner only, like the log's own files.
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).with_context(|| {
        format!(
            "creating {} (an existing file is never overwritten)",
            path.display()
        )
    })
}
