//! An in-memory [`Storage`] for crash and fault tests.
//!
//! Every file keeps two states: `live` (what reads see) and `durable` (what survives a power
//! cut: the state at the last `sync_data`). Directory entries are durable only after
//! `sync_dir`. A countdown fails the N-th mutating operation, after which every mutating
//! operation fails (the process "died"); [`FaultyStorage::crash_image`] then builds the storage
//! a reboot would find. A capacity limit makes writes fail with `StorageFull`.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use rand::{Rng, SeedableRng};

use super::{LockError, Mapped, OpenMode, Storage, StorageFile, WriterLock};

/// What a crash image keeps of writes that were not yet synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Power cut: only synced data and synced directory entries survive.
    DurableOnly,
    /// Process kill: everything written survives (the page cache outlives the process), and
    /// what was not synced stays not durable (a later `DurableOnly` image drops it).
    AllWritten,
    /// Power cut with arbitrary write-back: each unsynced 512-byte sector survives or not,
    /// chosen by a seeded generator.
    TornSectors(u64),
}

#[derive(Debug, Clone)]
enum Pending {
    Write { pos: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Clone, Default)]
struct FileState {
    live: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<Pending>,
}

#[derive(Debug, Default)]
struct State {
    files: BTreeMap<String, FileState>,
    durable_names: Vec<String>,
    ops: u64,
    fail_at_op: Option<u64>,
    crashed: bool,
    capacity_bytes: Option<u64>,
    locked: bool,
}

/// In-memory storage with fault injection and crash images. Cheap to clone (shared state).
#[derive(Debug, Clone, Default)]
pub struct FaultyStorage {
    state: Arc<Mutex<State>>,
}

fn injected(what: &str) -> io::Error {
    io::Error::other(format!("injected fault: {what}"))
}

impl FaultyStorage {
    /// An empty storage with no faults.
    pub fn new() -> FaultyStorage {
        FaultyStorage::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Fails the `n`-th mutating operation from now (0 = the next one) and every one after.
    pub fn fail_after_ops(&self, n: u64) {
        let mut s = self.lock();
        s.fail_at_op = Some(s.ops + n);
    }

    /// Mutating operations performed so far.
    pub fn op_count(&self) -> u64 {
        self.lock().ops
    }

    /// Whether an injected fault has fired.
    pub fn has_crashed(&self) -> bool {
        self.lock().crashed
    }

    /// Limits the total live bytes of all files; writes past it fail with `StorageFull`.
    pub fn set_capacity_bytes(&self, capacity: Option<u64>) {
        self.lock().capacity_bytes = capacity;
    }

    /// The storage a restart would find after a crash now.
    pub fn crash_image(&self, mode: CrashMode) -> FaultyStorage {
        let s = self.lock();
        let mut rng = rand::rngs::StdRng::seed_from_u64(match mode {
            CrashMode::TornSectors(seed) => seed,
            _ => 0,
        });
        if mode == CrashMode::AllWritten {
            // A killed process: the page cache (every written byte and directory entry)
            // survives, but what was not synced is still not durable.
            let state = State {
                files: s.files.clone(),
                durable_names: s.durable_names.clone(),
                ..State::default()
            };
            return FaultyStorage {
                state: Arc::new(Mutex::new(state)),
            };
        }
        let mut files = BTreeMap::new();
        for (name, f) in &s.files {
            if !s.durable_names.contains(name) {
                continue;
            }
            let image = match mode {
                CrashMode::TornSectors(_) => torn_image(f, &mut rng),
                _ => f.durable.clone(),
            };
            files.insert(
                name.clone(),
                FileState {
                    live: image.clone(),
                    durable: image,
                    pending: Vec::new(),
                },
            );
        }
        let durable_names = files.keys().cloned().collect();
        let state = State {
            files,
            durable_names,
            ..State::default()
        };
        FaultyStorage {
            state: Arc::new(Mutex::new(state)),
        }
    }

    /// A copy of a file's live bytes (for tests that inspect or damage files).
    pub fn file_bytes(&self, name: &str) -> Option<Vec<u8>> {
        self.lock().files.get(name).map(|f| f.live.clone())
    }

    /// Replaces a file's live and durable bytes (for tests that damage files).
    pub fn set_file_bytes(&self, name: &str, bytes: Vec<u8>) {
        let mut s = self.lock();
        let f = s.files.entry(name.to_string()).or_default();
        f.live = bytes.clone();
        f.durable = bytes;
        f.pending.clear();
        if !s.durable_names.iter().any(|n| n == name) {
            s.durable_names.push(name.to_string());
        }
    }

    /// Counts a mutating operation, failing it when the countdown says so.
    fn mutate(&self, what: &str) -> io::Result<MutexGuard<'_, State>> {
        let mut s = self.lock();
        if s.crashed {
            return Err(injected(what));
        }
        let op = s.ops;
        s.ops += 1;
        if s.fail_at_op.is_some_and(|at| op >= at) {
            s.crashed = true;
            return Err(injected(what));
        }
        Ok(s)
    }
}

fn torn_image(f: &FileState, rng: &mut rand::rngs::StdRng) -> Vec<u8> {
    let mut image = f.durable.clone();
    for op in &f.pending {
        match op {
            Pending::SetLen(len) => {
                if rng.random_bool(0.5) {
                    image.resize(usize::try_from(*len).unwrap_or(usize::MAX), 0);
                }
            }
            Pending::Write { pos, data } => {
                for (i, sector) in data.chunks(512).enumerate() {
                    if !rng.random_bool(0.5) {
                        continue;
                    }
                    let at = usize::try_from(*pos).unwrap_or(usize::MAX) + i * 512;
                    if image.len() < at + sector.len() {
                        image.resize(at + sector.len(), 0);
                    }
                    if let Some(dst) = image.get_mut(at..at + sector.len()) {
                        dst.copy_from_slice(sector);
                    }
                }
            }
        }
    }
    image
}

#[derive(Debug)]
struct MemFile {
    storage: FaultyStorage,
    name: String,
    writable: bool,
}

#[derive(Debug)]
struct MemLock {
    storage: FaultyStorage,
}
impl WriterLock for MemLock {}
impl Drop for MemLock {
    fn drop(&mut self) {
        self.storage.lock().locked = false;
    }
}

impl MemFile {
    fn with_file<T>(&self, f: impl FnOnce(&FileState) -> io::Result<T>) -> io::Result<T> {
        let s = self.storage.lock();
        let file = s
            .files
            .get(&self.name)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        f(file)
    }
}

impl StorageFile for MemFile {
    fn len(&self) -> io::Result<u64> {
        self.with_file(|f| Ok(f.live.len() as u64))
    }
    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        self.with_file(|f| {
            let at = usize::try_from(pos).map_err(io::Error::other)?;
            let src = f
                .live
                .get(at..at + buf.len())
                .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
            buf.copy_from_slice(src);
            Ok(())
        })
    }
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        if !self.writable {
            return Err(io::Error::from(io::ErrorKind::PermissionDenied));
        }
        let mut s = self.storage.mutate("write")?;
        let at = usize::try_from(pos).map_err(io::Error::other)?;
        let total: u64 = s.files.values().map(|f| f.live.len() as u64).sum();
        let current = s.files.get(&self.name).map_or(0, |f| f.live.len());
        let growth = (at + buf.len()).saturating_sub(current) as u64;
        if s.capacity_bytes.is_some_and(|cap| total + growth > cap) {
            return Err(io::Error::from(io::ErrorKind::StorageFull));
        }
        let file = s
            .files
            .get_mut(&self.name)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        if file.live.len() < at + buf.len() {
            file.live.resize(at + buf.len(), 0);
        }
        if let Some(dst) = file.live.get_mut(at..at + buf.len()) {
            dst.copy_from_slice(buf);
        }
        file.pending.push(Pending::Write {
            pos,
            data: buf.to_vec(),
        });
        Ok(())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut s = self.storage.mutate("set_len")?;
        let file = s
            .files
            .get_mut(&self.name)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        file.live
            .resize(usize::try_from(len).map_err(io::Error::other)?, 0);
        file.pending.push(Pending::SetLen(len));
        Ok(())
    }
    fn sync_data(&self) -> io::Result<()> {
        let mut s = self.storage.mutate("sync")?;
        let file = s
            .files
            .get_mut(&self.name)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        file.durable = file.live.clone();
        file.pending.clear();
        Ok(())
    }
    fn map(&self, pos: u64, len: u64) -> io::Result<Mapped> {
        let mut buf = vec![0u8; usize::try_from(len).map_err(io::Error::other)?];
        self.read_exact_at(&mut buf, pos)?;
        Ok(Mapped::owned(buf))
    }
}

impl Storage for FaultyStorage {
    fn open(&self, name: &str, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        let exists = self.lock().files.contains_key(name);
        match mode {
            OpenMode::Read | OpenMode::ReadWrite if !exists => {
                return Err(io::Error::from(io::ErrorKind::NotFound));
            }
            OpenMode::CreateNew if exists => {
                return Err(io::Error::from(io::ErrorKind::AlreadyExists));
            }
            OpenMode::CreateNew | OpenMode::CreateOrOpen if !exists => {
                let mut s = self.mutate("create")?;
                s.files.insert(name.to_string(), FileState::default());
            }
            _ => {}
        }
        Ok(Arc::new(MemFile {
            storage: self.clone(),
            name: name.to_string(),
            writable: mode != OpenMode::Read,
        }))
    }
    fn list(&self) -> io::Result<Vec<String>> {
        Ok(self.lock().files.keys().cloned().collect())
    }
    fn exists(&self, name: &str) -> io::Result<bool> {
        Ok(self.lock().files.contains_key(name))
    }
    fn remove(&self, name: &str) -> io::Result<()> {
        let mut s = self.mutate("remove")?;
        s.files
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }
    fn sync_dir(&self) -> io::Result<()> {
        let mut s = self.mutate("sync_dir")?;
        s.durable_names = s.files.keys().cloned().collect();
        Ok(())
    }
    fn lock_writer(&self) -> Result<Box<dyn WriterLock>, LockError> {
        let mut s = self.lock();
        if s.locked {
            return Err(LockError::Held(Some(std::process::id())));
        }
        s.locked = true;
        Ok(Box::new(MemLock {
            storage: self.clone(),
        }))
    }
    fn describe(&self) -> String {
        "memory".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_image_keeps_only_synced_bytes() {
        // Proves the DurableOnly image drops unsynced writes and unsynced directory entries.
        let s = FaultyStorage::new();
        let f = s.open("a", OpenMode::CreateNew).unwrap();
        s.sync_dir().unwrap();
        f.write_all_at(b"hello", 0).unwrap();
        f.sync_data().unwrap();
        f.write_all_at(b" world", 5).unwrap();
        let _g = s.open("b", OpenMode::CreateNew).unwrap();
        let image = s.crash_image(CrashMode::DurableOnly);
        assert_eq!(image.file_bytes("a").unwrap(), b"hello");
        assert!(!image.exists("b").unwrap());
        let all = s.crash_image(CrashMode::AllWritten);
        assert_eq!(all.file_bytes("a").unwrap(), b"hello world");
    }

    #[test]
    fn countdown_fails_the_chosen_op_and_all_after() {
        // Proves fail_after_ops stops the n-th mutation and every later one.
        let s = FaultyStorage::new();
        let f = s.open("a", OpenMode::CreateNew).unwrap();
        s.fail_after_ops(1);
        f.write_all_at(b"x", 0).unwrap();
        assert!(f.sync_data().is_err());
        assert!(f.write_all_at(b"y", 1).is_err());
        assert!(s.has_crashed());
    }
}
