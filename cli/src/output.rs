//! Printing: errors as one line on stderr (JSON with `--json`).

use meshflow_engine::Error;

/// Prints an error the way SPEC.md §8 says.
pub fn print_error(error: &anyhow::Error, json: bool) {
    let kind = error
        .downcast_ref::<Error>()
        .map_or("error", Error::kind_name);
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
