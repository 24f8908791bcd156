//! Anchors: signed checkpoint notes of the whole log (SPEC §4.3). A note records the log's
//! origin (record 0), size and global head; kept by an auditor, it lets a later verification
//! detect what no chain can detect by itself: a consistent rewrite of the log, or a truncation,
//! made after the note was taken. Notes are written to `checkpoints/log-<size>.note` in the log
//! directory, and exports embed the latest one.

use std::path::Path;

use crate::error::Error;
use crate::format::note::{self, Checkpoint, SignerKey};
use crate::log::LogReader;

use super::checkpoint::store;

/// File name of the note for a log of `size` records.
pub fn note_file_name(size: u64) -> String {
    format!("log-{size:020}.note")
}

fn parse_note_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("log-")?.strip_suffix(".note")?;
    (digits.len() == 20).then(|| digits.parse().ok())?
}

/// The checkpoint of the log as it is durable now (`None` for an empty log).
pub fn current(reader: &LogReader) -> Result<Option<Checkpoint>, Error> {
    let snapshot = reader.snapshot()?;
    if snapshot.head.next_offset == 0 {
        return Ok(None);
    }
    let first = reader.get(0)?.ok_or(Error::Closed)?.view().hash();
    Ok(Some(Checkpoint {
        origin: note::origin_for(&first),
        size: snapshot.head.next_offset,
        head: snapshot.head.head_hash,
    }))
}

/// Writes the note of the current log (signed with `key` when given) into the log directory's
/// `checkpoints/` and returns its text and path. An empty log has nothing to checkpoint.
pub fn write_current(
    dir: &Path,
    reader: &LogReader,
    key: Option<&SignerKey>,
) -> Result<(String, std::path::PathBuf), Error> {
    let checkpoint = current(reader)?.ok_or_else(|| Error::InvalidInput {
        reason: "the log is empty: there is nothing to checkpoint".to_string(),
    })?;
    let text = note::write_note(&checkpoint, key);
    let cdir = dir.join(super::checkpoint::DIR);
    let io = |e| {
        Error::io(
            format!("writing a checkpoint note in {}", cdir.display()),
            e,
        )
    };
    store::create_private_dir(&cdir).map_err(io)?;
    let path = cdir.join(note_file_name(checkpoint.size));
    let tmp = cdir.join(format!(
        ".{}.tmp-{}",
        note_file_name(checkpoint.size),
        std::process::id()
    ));
    store::create_private_file(&tmp)
        .and_then(|mut f| {
            std::io::Write::write_all(&mut f, text.as_bytes())?;
            f.sync_all()
        })
        .map_err(io)?;
    std::fs::rename(&tmp, &path).map_err(io)?;
    std::fs::File::open(&cdir)
        .and_then(|d| d.sync_all())
        .map_err(io)?;
    Ok((text, path))
}

/// The newest note in the log directory covering at most `max_size` records, if any.
pub fn latest_note(dir: &Path, max_size: u64) -> Option<String> {
    let cdir = dir.join(super::checkpoint::DIR);
    let newest = std::fs::read_dir(&cdir)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str().and_then(parse_note_file_name))
        .filter(|size| *size <= max_size)
        .max()?;
    std::fs::read_to_string(cdir.join(note_file_name(newest))).ok()
}

/// Checks the log against a trusted checkpoint: same origin, at least as long, and the same
/// global hash at the checkpoint's last record. `Err` says what was detected.
pub fn check_log(reader: &LogReader, trusted: &Checkpoint) -> Result<Result<(), String>, Error> {
    let Some(now) = current(reader)? else {
        return Ok(Err(format!(
            "the log is empty but the checkpoint covers {} record(s): truncated",
            trusted.size
        )));
    };
    if now.origin != trusted.origin {
        return Ok(Err(format!(
            "the log's origin is {}, the checkpoint's {}: another log, or record 0 was rewritten",
            now.origin, trusted.origin
        )));
    }
    if now.size < trusted.size {
        return Ok(Err(format!(
            "the log has {} record(s), fewer than the {} the checkpoint covers: truncated",
            now.size, trusted.size
        )));
    }
    let Some(last) = trusted.size.checked_sub(1) else {
        return Ok(Err("the checkpoint covers no records".to_string()));
    };
    // The stored hash and the hash recomputed from the record must both be the note's: a record
    // whose content (or link) changed under an unchanged stored hash is caught here, and the
    // links before it by verifying the whole log (the caller's job).
    let (stored, recomputed) = reader.get(last)?.map_or(([0; 32], [1; 32]), |r| {
        let view = r.view();
        (view.hash(), view.compute_hash())
    });
    if stored != trusted.head || recomputed != trusted.head {
        return Ok(Err(format!(
            "the global hash at offset {last} differs from the checkpoint's: the log was rewritten"
        )));
    }
    Ok(Ok(()))
}

/// A new Ed25519 key pair for signing notes: (signer key, verifier key) in the signed-note
/// encodings. The seed comes from `rand`'s thread RNG, a ChaCha CSPRNG seeded from the
/// operating system.
pub fn generate_key(name: &str) -> Result<(String, String), Error> {
    use rand::RngCore;
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    note::key_pair(name, &seed).map_err(|reason| Error::InvalidInput { reason })
}
