//! The file system behind a trait, so the log can run on real files ([`FileStorage`]) or on an
//! in-memory store that fails chosen operations and produces crash images
//! ([`faulty::FaultyStorage`]).
//!
//! A `Storage` is one directory holding flat files. Writes are positional (`pwrite`); files are
//! never written through a map, because a full disk under a writable map is SIGBUS.

pub mod faulty;
mod file;
mod mapped;

use std::fmt;
use std::io;
use std::sync::Arc;

pub use file::FileStorage;
pub use mapped::Mapped;

/// How to open a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Existing file, read only.
    Read,
    /// Existing file, read and write.
    ReadWrite,
    /// Create a file that must not exist yet, read and write.
    CreateNew,
    /// Create the file if missing, read and write.
    CreateOrOpen,
}

/// A directory of files.
pub trait Storage: Send + Sync + fmt::Debug {
    /// Opens `name` in the directory.
    fn open(&self, name: &str, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>>;
    /// Names of the files in the directory.
    fn list(&self) -> io::Result<Vec<String>>;
    /// Whether `name` exists.
    fn exists(&self, name: &str) -> io::Result<bool>;
    /// Removes `name`.
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Makes the directory's entries (created and removed files) durable.
    fn sync_dir(&self) -> io::Result<()>;
    /// Takes the exclusive writer lock; the guard releases it when dropped.
    fn lock_writer(&self) -> Result<Box<dyn WriterLock>, LockError>;
    /// A short description for messages (the directory path).
    fn describe(&self) -> String;
}

/// A held writer lock.
pub trait WriterLock: Send + Sync + fmt::Debug {}

/// Why the writer lock could not be taken.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds it; its recorded pid when readable.
    Held(Option<u32>),
    /// The lock file could not be opened or written.
    Io(io::Error),
}

/// One open file.
#[expect(
    clippy::len_without_is_empty,
    reason = "files are sized, never tested for emptiness"
)]
pub trait StorageFile: Send + Sync + fmt::Debug {
    /// Current length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Fills `buf` from `pos`; an error if the file is shorter.
    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()>;
    /// Writes all of `buf` at `pos`.
    fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()>;
    /// Truncates or extends the file.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes written data durable (fdatasync).
    fn sync_data(&self) -> io::Result<()>;
    /// A read-only view of `len` bytes from `pos` (a memory map for real files).
    fn map(&self, pos: u64, len: u64) -> io::Result<Mapped>;
}
