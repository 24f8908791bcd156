//! The snapshot's ZIP container: deterministic writing (fixed entry times, permissions and
//! compression level), safe file replacement, and bounded reading (entry count and decompressed
//! sizes are limited while reading, whatever the headers claim: a ZIP bomb stops at the limit).

use std::io::{Read, Seek, Write};
use std::path::Path;

use super::{SnapshotManifest, MANIFEST};
use crate::ledger::LedgerError;

/// Entry time of every ZIP entry: the DOS epoch, 1980-01-01 00:00:00.
fn entry_options() -> zip::write::SimpleFileOptions {
    zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(6))
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(0o644)
}

fn zip_error(what: &str, e: impl std::fmt::Display) -> LedgerError {
    LedgerError::Log(crate::Error::io(
        format!("{what} (ZIP)"),
        std::io::Error::other(e.to_string()),
    ))
}

/// Writes `entries` (name, bytes) in order into a ZIP on `out`.
pub(super) fn write<W: Write + Seek>(
    out: W,
    entries: &[(String, &[u8])],
) -> Result<W, LedgerError> {
    let mut zip = zip::ZipWriter::new(out);
    for (name, bytes) in entries {
        zip.start_file(name.as_str(), entry_options())
            .map_err(|e| zip_error("writing a snapshot", e))?;
        zip.write_all(bytes)
            .map_err(|e| zip_error("writing a snapshot", e))?;
    }
    zip.finish().map_err(|e| zip_error("writing a snapshot", e))
}

/// Writes a ZIP of `manifest` as [`MANIFEST`], then the entries of each staged one-entry ZIP,
/// copied compressed as they are.
pub(super) fn write_with_staged<W: Write + Seek>(
    out: W,
    manifest: &[u8],
    staged: &[&[u8]],
) -> Result<W, LedgerError> {
    let mut zip = zip::ZipWriter::new(out);
    zip.start_file(MANIFEST, entry_options())
        .map_err(|e| zip_error("writing a snapshot", e))?;
    zip.write_all(manifest)
        .map_err(|e| zip_error("writing a snapshot", e))?;
    for archive in staged {
        let mut source = zip::ZipArchive::new(std::io::Cursor::new(*archive))
            .map_err(|e| zip_error("staging a snapshot section", e))?;
        for i in 0..source.len() {
            let entry = source
                .by_index_raw(i)
                .map_err(|e| zip_error("staging a snapshot section", e))?;
            zip.raw_copy_file(entry)
                .map_err(|e| zip_error("writing a snapshot", e))?;
        }
    }
    zip.finish().map_err(|e| zip_error("writing a snapshot", e))
}

/// The uncompressed bytes of the only entry of a staged one-entry ZIP.
pub(super) fn read_one(staged: &[u8]) -> Result<Vec<u8>, LedgerError> {
    let mut source = zip::ZipArchive::new(std::io::Cursor::new(staged))
        .map_err(|e| zip_error("reading a staged section", e))?;
    let mut entry = source
        .by_index(0)
        .map_err(|e| zip_error("reading a staged section", e))?;
    let mut bytes = Vec::new();
    entry
        .read_to_end(&mut bytes)
        .map_err(|e| zip_error("reading a staged section", e))?;
    Ok(bytes)
}

/// Writes a file through `fill`: a temporary file beside `path` (create-new), fsynced, then
/// renamed over `path` (`force`) or hard-linked to it (which fails when it exists), and the
/// directory fsynced. On any failure the temporary file is removed and `path` is untouched.
pub(super) fn write_file(
    path: &Path,
    force: bool,
    fill: impl FnOnce(&mut std::fs::File) -> Result<(), LedgerError>,
) -> Result<(), LedgerError> {
    let exists = || LedgerError::Conflict {
        reason: format!("{} already exists (--force replaces it)", path.display()),
    };
    if !force && path.exists() {
        return Err(exists());
    }
    let io = |what: String, e: std::io::Error| LedgerError::Log(crate::Error::io(what, e));
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| LedgerError::Invalid {
            reason: format!("{} names no file", path.display()),
        })?;
    remove_stale_temporaries(&dir);
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        crate::governance::new_id()
    ));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .read(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| io(format!("creating {}", tmp.display()), e))?;
        fill(&mut file)?;
        file.sync_all()
            .map_err(|e| io(format!("syncing {}", tmp.display()), e))?;
        if force {
            std::fs::rename(&tmp, path)
                .map_err(|e| io(format!("renaming to {}", path.display()), e))?;
        } else {
            std::fs::hard_link(&tmp, path).map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => exists(),
                _ => io(format!("linking {}", path.display()), e),
            })?;
        }
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io(format!("syncing {}", dir.display()), e))
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

/// Removes `.<file>.tmp-<pid>-<uuid>` files left in `dir` by snapshot writers that were killed
/// (their pid no longer runs), so an interrupted export leaves nothing behind once the next
/// export into the directory runs.
fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(name) = file.to_str() else {
            continue;
        };
        let Some((_, rest)) = name.strip_prefix('.').and_then(|n| n.rsplit_once(".tmp-")) else {
            continue;
        };
        let Some((pid, uuid)) = rest.split_once('-') else {
            continue;
        };
        let (Ok(pid), true) = (pid.parse::<u32>(), uuid::Uuid::parse_str(uuid).is_ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Bounds on what [`read_zip`] reads.
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    /// Entries at most.
    pub max_entries: usize,
    /// Decompressed bytes of one entry at most.
    pub max_entry_bytes: u64,
    /// Decompressed bytes of all entries at most.
    pub max_total_bytes: u64,
}

impl Default for ReadLimits {
    fn default() -> ReadLimits {
        ReadLimits {
            max_entries: 64,
            max_entry_bytes: 1 << 30,
            max_total_bytes: 4 << 30,
        }
    }
}

/// A snapshot read back: its manifest (and the manifest's exact bytes) and its sections.
#[derive(Debug, Clone)]
pub struct SnapshotFile {
    /// The parsed manifest.
    pub manifest: SnapshotManifest,
    /// `manifest.json` as stored.
    pub manifest_bytes: Vec<u8>,
    /// Every other entry: section name (the entry name without `.json`) and bytes, in order.
    pub sections: Vec<(String, Vec<u8>)>,
}

/// Reads a snapshot ZIP: `manifest.json` must be the first entry and parse; every other entry
/// must be `<name>.json` with a plain name. Limits apply to the bytes actually decompressed.
pub fn read_zip<R: Read + Seek>(input: R, limits: ReadLimits) -> Result<SnapshotFile, LedgerError> {
    let bad = |why: String| LedgerError::Invalid {
        reason: format!("not a readable snapshot: {why}"),
    };
    let mut zip = zip::ZipArchive::new(input).map_err(|e| bad(format!("not a ZIP ({e})")))?;
    if zip.len() > limits.max_entries {
        return Err(bad(format!(
            "{} entries (at most {})",
            zip.len(),
            limits.max_entries
        )));
    }
    let mut total = 0u64;
    let mut entries: Vec<(String, Vec<u8>)> = Vec::with_capacity(zip.len());
    for i in 0..zip.len() {
        let entry = zip
            .by_index(i)
            .map_err(|e| bad(format!("entry {i}: {e}")))?;
        let name = entry.name().to_string();
        if name.contains('/') || name.contains('\\') || name.starts_with('.') {
            return Err(bad(format!("entry name '{name}' is not a plain file name")));
        }
        let budget = limits
            .max_entry_bytes
            .min(limits.max_total_bytes.saturating_sub(total));
        let mut bytes = Vec::new();
        entry
            .take(budget.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| bad(format!("entry '{name}': {e}")))?;
        if bytes.len() as u64 > budget {
            return Err(bad(format!(
                "entry '{name}' decompresses past the limit ({} bytes per entry, {} in all)",
                limits.max_entry_bytes, limits.max_total_bytes
            )));
        }
        total += bytes.len() as u64;
        if entries.iter().any(|(n, _)| *n == name) {
            return Err(bad(format!("entry '{name}' appears twice")));
        }
        entries.push((name, bytes));
    }
    let mut entries = entries.into_iter();
    let (first, manifest_bytes) = entries
        .next()
        .ok_or_else(|| bad("the ZIP is empty".to_string()))?;
    if first != MANIFEST {
        return Err(bad(format!(
            "the first entry is '{first}', not '{MANIFEST}'"
        )));
    }
    let manifest: SnapshotManifest =
        serde_json::from_slice(&manifest_bytes).map_err(|e| bad(format!("{MANIFEST}: {e}")))?;
    let mut sections = Vec::new();
    for (name, bytes) in entries {
        let Some(section) = name.strip_suffix(".json") else {
            return Err(bad(format!("entry '{name}' is not a .json section")));
        };
        sections.push((section.to_string(), bytes));
    }
    Ok(SnapshotFile {
        manifest,
        manifest_bytes,
        sections,
    })
}
