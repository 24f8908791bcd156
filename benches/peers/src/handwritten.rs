//! The "handwritten" peer: the baseline a team would write by hand instead of adopting an
//! engine. One file; each record is `u32 len (LE) || prev_hash (32) || hash (32) || data`,
//! where `hash = SHA-256(prev_hash || data)` and `data = payload || input || output`. Writes are
//! `pwrite`s of a buffer (`FileExt::write_all_at`) and durability is `File::sync_data`. A clean
//! close appends a 64-byte footer (magic, record count, data end, last record's position, last
//! hash) that a reopen reads instead of scanning; without one (a crash) the reopen scans.
//! Durable appends from several threads share a simple group commit: whoever finds no write in
//! progress writes and syncs everything buffered so far, for itself and the threads behind it.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use memmap2::Mmap;
use sha2::{Digest, Sha256};

use crate::{
    drive_batches, drive_reopens, drive_run_reads, drive_writers, records_result, run_steps,
    split_step, BatchWriter, Peer, PhaseResult, Step, Workload,
};

/// Bytes before a record's data: length, previous hash, hash.
const RECORD_HEADER: u64 = 4 + 32 + 32;
/// The footer's magic.
const FOOTER_MAGIC: [u8; 8] = *b"HWLOGEND";
/// Footer: magic, record count, data end, last record's position, last hash.
const FOOTER_LEN: u64 = 8 + 8 + 8 + 8 + 32;
/// The log's file name within its directory.
const FILE_NAME: &str = "log.hw";

/// The end of the chain: where the next record goes and what it links to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tail {
    /// Bytes of records (the next record's position).
    end: u64,
    /// Records in the log.
    records: u64,
    /// Position of the last record (0 when empty).
    last_pos: u64,
    /// The last record's hash (zeros when empty).
    last_hash: [u8; 32],
}

impl Tail {
    const EMPTY: Tail = Tail {
        end: 0,
        records: 0,
        last_pos: 0,
        last_hash: [0; 32],
    };

    /// Encodes a record of `data` onto `out` and advances the tail past it.
    fn encode(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let len = u32::try_from(data.len()).context("record larger than 4 GiB")?;
        let hash: [u8; 32] = Sha256::new()
            .chain_update(self.last_hash)
            .chain_update(data)
            .finalize()
            .into();
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&self.last_hash);
        out.extend_from_slice(&hash);
        out.extend_from_slice(data);
        self.last_pos = self.end;
        self.end += RECORD_HEADER + u64::from(len);
        self.records += 1;
        self.last_hash = hash;
        Ok(())
    }

    fn footer(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&FOOTER_MAGIC);
        out.extend_from_slice(&self.records.to_le_bytes());
        out.extend_from_slice(&self.end.to_le_bytes());
        out.extend_from_slice(&self.last_pos.to_le_bytes());
        out.extend_from_slice(&self.last_hash);
        out
    }
}

/// Reads a little-endian u64 at `at` in `bytes`.
fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    let field: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(field))
}

/// The record at `pos` of `bytes`: (prev_hash, hash, data), if it lies wholly inside.
fn record_at(bytes: &[u8], pos: u64) -> Option<(&[u8], &[u8], &[u8])> {
    let pos = usize::try_from(pos).ok()?;
    let len: [u8; 4] = bytes.get(pos..pos + 4)?.try_into().ok()?;
    let len = usize::try_from(u32::from_le_bytes(len)).ok()?;
    let prev = bytes.get(pos + 4..pos + 36)?;
    let hash = bytes.get(pos + 36..pos + 68)?;
    let data = bytes.get(pos + 68..pos + 68 + len)?;
    Some((prev, hash, data))
}

/// An open hand-written log.
#[derive(Debug)]
pub struct HwLog {
    file: File,
    tail: Tail,
}

impl HwLog {
    /// The log file in `dir`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(FILE_NAME)
    }

    /// Opens (or creates) the log in `dir` and finds its end: from the footer of a clean close,
    /// else by scanning the records.
    pub fn open(dir: &Path) -> Result<HwLog> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = Self::path(dir);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        let tail = match Self::tail_from_footer(&file)? {
            Some(tail) => tail,
            None => Self::tail_from_scan(&file)?,
        };
        Ok(HwLog { file, tail })
    }

    /// The tail a clean close recorded, checked against the last record's header.
    fn tail_from_footer(file: &File) -> Result<Option<Tail>> {
        let len = file.metadata()?.len();
        if len < FOOTER_LEN {
            return Ok(None);
        }
        let mut footer = [0u8; FOOTER_LEN as usize];
        file.read_exact_at(&mut footer, len - FOOTER_LEN)?;
        if footer.get(..8) != Some(&FOOTER_MAGIC[..]) {
            return Ok(None);
        }
        let fields = (u64_at(&footer, 8), u64_at(&footer, 16), u64_at(&footer, 24));
        let (Some(records), Some(end), Some(last_pos)) = fields else {
            return Ok(None);
        };
        let Some(last_hash) = footer
            .get(32..64)
            .and_then(|h| <[u8; 32]>::try_from(h).ok())
        else {
            return Ok(None);
        };
        if end + FOOTER_LEN != len {
            return Ok(None);
        }
        if records > 0 {
            let mut header = [0u8; RECORD_HEADER as usize];
            file.read_exact_at(&mut header, last_pos)?;
            if header.get(36..68) != Some(&last_hash[..]) {
                return Ok(None);
            }
        }
        Ok(Some(Tail {
            end,
            records,
            last_pos,
            last_hash,
        }))
    }

    /// The tail found by walking the records (after a crash: no footer). Stops at the first
    /// record that does not lie wholly in the file or does not link to the one before.
    fn tail_from_scan(file: &File) -> Result<Tail> {
        if file.metadata()?.len() == 0 {
            return Ok(Tail::EMPTY);
        }
        // SAFETY: the map is read-only and this process does not write the file while it lives;
        // a concurrent writer in another process is not supported by this peer.
        let map = unsafe { Mmap::map(file) }?;
        let mut tail = Tail::EMPTY;
        while let Some((prev, hash, data)) = record_at(&map, tail.end) {
            if prev != tail.last_hash {
                break;
            }
            let Ok(hash) = <[u8; 32]>::try_from(hash) else {
                break;
            };
            tail.last_pos = tail.end;
            tail.end += RECORD_HEADER + data.len() as u64;
            tail.records += 1;
            tail.last_hash = hash;
        }
        Ok(tail)
    }

    /// Records in the log.
    pub fn records(&self) -> u64 {
        self.tail.records
    }

    /// Writes `buf` (records encoded since the last write) at its place before the tail.
    fn write_pending(&self, buf: &[u8]) -> Result<()> {
        let pos = self.tail.end - buf.len() as u64;
        self.file.write_all_at(buf, pos)?;
        Ok(())
    }

    /// Cleanly closes the log: the footer after the records, then `fsync`.
    pub fn close(self) -> Result<()> {
        self.file.write_all_at(&self.tail.footer(), self.tail.end)?;
        self.file.set_len(self.tail.end + FOOTER_LEN)?;
        self.file.sync_all()?;
        Ok(())
    }
}

/// Phase A's writer: a buffer written and `sync_data`ed on every sync.
struct Batches {
    log: HwLog,
    pending: Vec<u8>,
}

impl BatchWriter for Batches {
    fn append(&mut self, step: Step) -> Result<()> {
        self.log.tail.encode(&step.data(), &mut self.pending)
    }

    fn sync(&mut self) -> Result<()> {
        self.log.write_pending(&self.pending)?;
        self.log.file.sync_data()?;
        self.pending.clear();
        Ok(())
    }
}

/// The group-commit state of durable appends from several threads.
struct Group {
    /// The chain's tail, including buffered records.
    tail: Tail,
    /// Records encoded but not yet handed to a writer.
    pending: Vec<u8>,
    /// Records appended (encoded) so far.
    appended: u64,
    /// Records durable so far.
    durable: u64,
    /// Whether a thread is writing and syncing right now.
    writing: bool,
    /// Whether a write or sync failed (the log is then unusable).
    failed: bool,
}

/// A log that threads append to durably, with group commit.
struct Shared {
    file: File,
    group: Mutex<Group>,
    done: Condvar,
}

impl Shared {
    fn lock(&self) -> Result<MutexGuard<'_, Group>> {
        self.group
            .lock()
            .map_err(|_| anyhow!("handwritten log lock poisoned"))
    }

    /// Appends `data` and returns once it is durable.
    fn append_durable(&self, data: &[u8]) -> Result<()> {
        let mut group = self.lock()?;
        let Group { tail, pending, .. } = &mut *group;
        tail.encode(data, pending)?;
        group.appended += 1;
        let mine = group.appended;
        loop {
            if group.failed {
                bail!("an earlier write or sync of the handwritten log failed");
            }
            if group.durable >= mine {
                return Ok(());
            }
            if group.writing {
                group = self
                    .done
                    .wait(group)
                    .map_err(|_| anyhow!("handwritten log lock poisoned"))?;
                continue;
            }
            // Lead a group: write and sync everything buffered so far.
            group.writing = true;
            let buf = std::mem::take(&mut group.pending);
            let pos = group.tail.end - buf.len() as u64;
            let target = group.appended;
            drop(group);
            let outcome = self
                .file
                .write_all_at(&buf, pos)
                .and_then(|()| self.file.sync_data());
            group = self.lock()?;
            group.writing = false;
            match outcome {
                Ok(()) => group.durable = target,
                Err(_) => group.failed = true,
            }
            self.done.notify_all();
            outcome?;
        }
    }
}

/// The hand-written SHA-256-chained log.
#[derive(Debug, Clone, Copy, Default)]
pub struct Handwritten;

impl Peer for Handwritten {
    fn name(&self) -> &'static str {
        "handwritten"
    }

    fn phase_a(&self, dir: &Path, workload: &Workload) -> Result<PhaseResult> {
        let mut writer = Batches {
            log: HwLog::open(dir)?,
            pending: Vec::new(),
        };
        let result = drive_batches(workload, &mut writer)?;
        writer.log.close()?;
        Ok(result)
    }

    fn phase_b(
        &self,
        dir: &Path,
        workload: &Workload,
        writers: u64,
        records: u64,
    ) -> Result<PhaseResult> {
        let log = HwLog::open(dir)?;
        let shared = Shared {
            file: log.file,
            group: Mutex::new(Group {
                tail: log.tail,
                pending: Vec::new(),
                appended: 0,
                durable: 0,
                writing: false,
                failed: false,
            }),
            done: Condvar::new(),
        };
        let result = drive_writers(workload, writers, records, |_| {
            let shared = &shared;
            Ok(move |step: Step| shared.append_durable(&step.data()))
        })?;
        let group = shared
            .group
            .into_inner()
            .map_err(|_| anyhow!("handwritten log lock poisoned"))?;
        HwLog {
            file: shared.file,
            tail: group.tail,
        }
        .close()?;
        Ok(result)
    }

    fn phase_c(&self, dir: &Path) -> Result<PhaseResult> {
        let path = HwLog::path(dir);
        let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let started = Instant::now();
        let tail = HwLog::tail_from_footer(&file)?
            .ok_or_else(|| anyhow!("{} was not cleanly closed", path.display()))?;
        // SAFETY: read-only map of a file nothing writes while the scan runs.
        let map = unsafe { Mmap::map(&file) }?;
        let mut prev_hash = [0u8; 32];
        let mut pos = 0u64;
        let mut count = 0u64;
        while pos < tail.end {
            let (prev, hash, data) = record_at(&map, pos)
                .ok_or_else(|| anyhow!("record at {pos} runs past the end of the file"))?;
            if prev != prev_hash {
                bail!("record {count} at {pos}: previous hash does not match");
            }
            let computed: [u8; 32] = Sha256::new()
                .chain_update(prev_hash)
                .chain_update(data)
                .finalize()
                .into();
            if hash != computed {
                bail!("record {count} at {pos}: hash does not match its content");
            }
            prev_hash = computed;
            pos += RECORD_HEADER + data.len() as u64;
            count += 1;
        }
        if pos != tail.end || count != tail.records || prev_hash != tail.last_hash {
            bail!("the chain does not end where the footer says");
        }
        let secs = started.elapsed().as_secs_f64();
        Ok(records_result("C", count, secs, Vec::new()))
    }

    fn phase_e(&self, dir: &Path) -> Result<PhaseResult> {
        drive_reopens(|| {
            let log = HwLog::open(dir)?;
            Ok((log.records(), log))
        })
    }

    fn phase_d(&self, dir: &Path, workload: &Workload) -> Result<Option<PhaseResult>> {
        // The hand-written log has no index: build one (each record's position) before the
        // clock starts, as meshflow's runs view is loaded before it.
        let path = HwLog::path(dir);
        let file = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let tail = HwLog::tail_from_footer(&file)?
            .ok_or_else(|| anyhow!("{} was not cleanly closed", path.display()))?;
        // SAFETY: read-only map of a file nothing writes while the phase runs.
        let map = unsafe { Mmap::map(&file) }?;
        let mut positions = Vec::with_capacity(usize::try_from(tail.records).unwrap_or(0));
        let mut pos = 0u64;
        while pos < tail.end {
            let (_, _, data) = record_at(&map, pos)
                .ok_or_else(|| anyhow!("record at {pos} runs past the end of the file"))?;
            positions.push(pos);
            pos += RECORD_HEADER + data.len() as u64;
        }
        let result = drive_run_reads(workload, |run| {
            let mut n = 0;
            for seq in run_steps(workload, run) {
                let at = usize::try_from(seq)
                    .ok()
                    .and_then(|i| positions.get(i))
                    .ok_or_else(|| anyhow!("step {seq} is missing"))?;
                let (_, _, data) =
                    record_at(&map, *at).ok_or_else(|| anyhow!("record {seq} is cut"))?;
                std::hint::black_box(split_step(data, workload));
                n += 1;
            }
            Ok(n)
        })?;
        Ok(Some(result))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn small() -> Workload {
        Workload {
            runs: 3,
            steps: 7,
            payload_bytes: 40,
        }
    }

    #[test]
    fn phases_round_trip_and_reopen_reads_the_footer() {
        let dir = tempfile::tempdir().unwrap();
        let a = Handwritten.phase_a(dir.path(), &small()).unwrap();
        assert_eq!(a.records, 21);
        assert_eq!(Handwritten.phase_c(dir.path()).unwrap().records, 21);
        assert_eq!(Handwritten.phase_e(dir.path()).unwrap().records, 21);
        let b = Handwritten
            .phase_b(&dir.path().join("b"), &small(), 4, 20)
            .unwrap();
        assert_eq!(b.records, 20);
        assert_eq!(
            Handwritten.phase_c(&dir.path().join("b")).unwrap().records,
            20
        );
    }

    #[test]
    fn reopen_without_footer_scans_to_the_same_tail() {
        let dir = tempfile::tempdir().unwrap();
        Handwritten.phase_a(dir.path(), &small()).unwrap();
        let clean = HwLog::open(dir.path()).unwrap().tail;
        let file = OpenOptions::new()
            .write(true)
            .open(HwLog::path(dir.path()))
            .unwrap();
        file.set_len(clean.end).unwrap();
        assert_eq!(HwLog::open(dir.path()).unwrap().tail, clean);
        // A torn last record is dropped by the scan.
        file.set_len(clean.end - 3).unwrap();
        let torn = HwLog::open(dir.path()).unwrap().tail;
        assert_eq!(torn.records, clean.records - 1);
        assert_eq!(torn.end, clean.last_pos);
    }

    #[test]
    fn verify_detects_a_flipped_byte() {
        let dir = tempfile::tempdir().unwrap();
        Handwritten.phase_a(dir.path(), &small()).unwrap();
        let path = HwLog::path(dir.path());
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[200] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert!(Handwritten.phase_c(dir.path()).is_err());
    }
}
