//! `legacy-v1`: the entry hash of the reference MeshFlow ledger (reference §2), bit for bit, so
//! existing MeshFlow ledgers can be imported and their chains verified.
//!
//! The hash is SHA-256 (lower-case hex) of Python's `json.dumps(obj, sort_keys=True)` of a
//! nine-key object: `blocked` (a JSON boolean), `input_task` and `output_content` (cut to their
//! first 200 Unicode code points), `node_id`, `prev_hash`, `run_id`, `step_id`, `timestamp` and
//! `verdict`. Python's defaults apply: separators `", "` and `": "`, and `ensure_ascii`: every
//! character outside `' '..='~'` is escaped (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, else
//! `\uXXXX` in lower-case hex, astral characters as UTF-16 surrogate pairs). It covers none of
//! the other fields (reference weakness W4); meshflow's own per-run chain covers every field.

use sha2::{Digest, Sha256};

use crate::format::hex;

/// The fields the legacy hash covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegacyFields<'a> {
    /// Run id.
    pub run_id: &'a str,
    /// Step id.
    pub step_id: &'a str,
    /// Node id.
    pub node_id: &'a str,
    /// Input task (only its first 200 code points are hashed).
    pub input_task: &'a str,
    /// Output content (only its first 200 code points are hashed).
    pub output_content: &'a str,
    /// Verdict.
    pub verdict: &'a str,
    /// Whether the step was blocked.
    pub blocked: bool,
    /// Timestamp as stored (ISO 8601 text).
    pub timestamp: &'a str,
    /// The previous step's entry hash (`""` for a run's first step).
    pub prev_hash: &'a str,
}

/// Code points hashed of `input_task` and `output_content`.
const TEXT_CODE_POINTS_MAX: usize = 200;

/// Appends `text` as a JSON string the way Python's `json.dumps(ensure_ascii=True)` writes it.
fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

fn first_code_points(text: &str, count: usize) -> &str {
    match text.char_indices().nth(count) {
        Some((byte, _)) => text.get(..byte).unwrap_or(text),
        None => text,
    }
}

/// The canonical text the legacy hash is taken over (keys sorted, Python separators).
pub fn canonical_text(f: &LegacyFields<'_>) -> String {
    let mut out = String::with_capacity(256);
    let fields: [(&str, Option<&str>); 9] = [
        ("blocked", None),
        (
            "input_task",
            Some(first_code_points(f.input_task, TEXT_CODE_POINTS_MAX)),
        ),
        ("node_id", Some(f.node_id)),
        (
            "output_content",
            Some(first_code_points(f.output_content, TEXT_CODE_POINTS_MAX)),
        ),
        ("prev_hash", Some(f.prev_hash)),
        ("run_id", Some(f.run_id)),
        ("step_id", Some(f.step_id)),
        ("timestamp", Some(f.timestamp)),
        ("verdict", Some(f.verdict)),
    ];
    out.push('{');
    for (i, (key, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        push_json_string(&mut out, key);
        out.push_str(": ");
        match value {
            Some(text) => push_json_string(&mut out, text),
            None => out.push_str(if f.blocked { "true" } else { "false" }),
        }
    }
    out.push('}');
    out
}

/// The legacy entry hash: lower-case hex SHA-256 of [`canonical_text`].
pub fn entry_hash(f: &LegacyFields<'_>) -> String {
    hex(&Sha256::digest(canonical_text(f).as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a1() -> LegacyFields<'static> {
        LegacyFields {
            run_id: "A",
            step_id: "A-s0",
            node_id: "n0",
            input_task: "task",
            output_content: "output",
            verdict: "commit",
            blocked: false,
            timestamp: "2026-05-21T00:00:00+00:00",
            prev_hash: "",
        }
    }

    #[test]
    fn reference_vectors_a1_a2_chain() {
        // Proves bit-compatibility with the reference's vectors A1 and A2 (reference §2).
        let h1 = entry_hash(&a1());
        assert_eq!(
            h1,
            "73f1e40d57d609139fd2ab941906e354363f0357bd786aa2709cacf1af32dc15"
        );
        let a2 = LegacyFields {
            step_id: "A-s1",
            node_id: "n1",
            prev_hash: &h1,
            ..a1()
        };
        assert_eq!(
            entry_hash(&a2),
            "b4e748bd55d165b13b56e650400c17bff12786377f3f4c61086215ec76fdd981"
        );
        assert_eq!(
            canonical_text(&a1()),
            "{\"blocked\": false, \"input_task\": \"task\", \"node_id\": \"n0\", \
             \"output_content\": \"output\", \"prev_hash\": \"\", \"run_id\": \"A\", \
             \"step_id\": \"A-s0\", \"timestamp\": \"2026-05-21T00:00:00+00:00\", \
             \"verdict\": \"commit\"}"
        );
    }

    #[test]
    fn reference_vector_a3_unicode_truncation_and_blocked() {
        // Proves the 200-code-point cut, \\u escapes, surrogate pairs and `true` (vector A3).
        let input = format!("{}{}", "é".repeat(150), "😀".repeat(100));
        let output = "x".repeat(500);
        let f = LegacyFields {
            run_id: "run-ü",
            step_id: "s-1",
            node_id: "node",
            input_task: &input,
            output_content: &output,
            verdict: "reject",
            blocked: true,
            timestamp: "2026-06-01T12:00:00.123456+00:00",
            prev_hash: "",
        };
        assert_eq!(
            entry_hash(&f),
            "afcec7ec17291afa84de0f8dc319f40fee851bf05d9983adc4be72ce8ce88b7c"
        );
    }

    #[test]
    fn escapes_match_python_ensure_ascii() {
        // Proves the escaping of quotes, backslashes, controls, DEL and non-ASCII, as Python
        // prints {"a": "\x7f\x01\"\\/é😀\n"}.
        let mut out = String::new();
        push_json_string(&mut out, "\u{7f}\u{1}\"\\/é😀\n");
        assert_eq!(out, "\"\\u007f\\u0001\\\"\\\\/\\u00e9\\ud83d\\ude00\\n\"");
    }
}
