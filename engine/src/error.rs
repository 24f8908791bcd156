//! The engine's typed errors. Corruption (bytes on disk that fail a structural or checksum
//! check) is kept apart from verification failures (bytes that are well-formed but whose hashes
//! do not match: tampering), from I/O errors and from caller errors.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Where a corrupt structure was found, and why it is considered corrupt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corruption {
    /// The file the bytes belong to (a segment, `HEAD`, an index), relative to the log directory.
    pub file: String,
    /// Byte position inside that file.
    pub position_bytes: u64,
    /// The log offset of the record concerned, when it is known.
    pub offset: Option<u64>,
    /// What check failed.
    pub reason: String,
}

/// A well-formed record whose hashes do not match: evidence of tampering, exit code 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyFailure {
    /// The file holding the record.
    pub file: String,
    /// Byte position of the record inside that file.
    pub position_bytes: u64,
    /// The record's log offset.
    pub offset: u64,
    /// Which hash or link failed.
    pub reason: String,
}

/// Every error the engine returns.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O error, with what the engine was doing.
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: io::Error,
    },
    /// Bytes on disk fail a structural or checksum check.
    Corrupt(Box<Corruption>),
    /// Bytes are well-formed but a hash, link or commitment does not match.
    Verify(Box<VerifyFailure>),
    /// No log exists at the path (read commands never create one).
    NotFound {
        /// The directory that was looked at.
        path: PathBuf,
    },
    /// Another process holds the writer lock.
    Locked {
        /// The pid recorded by the holder, when it could be read.
        pid: Option<u32>,
    },
    /// A size or count limit would be exceeded; nothing was written.
    LimitExceeded {
        /// Which limit.
        what: &'static str,
        /// The size or count that was asked for.
        actual: u64,
        /// The limit.
        max: u64,
    },
    /// The caller's input is invalid (for example a tenant with control characters).
    InvalidInput {
        /// What was wrong.
        reason: String,
    },
    /// The admission step on the sequencer refused the record; it used no offset.
    Rejected {
        /// Why the admission check refused it.
        reason: String,
    },
    /// The log's format version is newer than this build understands.
    UnsupportedVersion {
        /// The file that carries the version.
        file: String,
        /// The version found.
        version: u32,
    },
    /// An earlier write failed; the writer stopped to keep the log consistent. Reopen it.
    Poisoned {
        /// The failure that stopped the writer.
        reason: String,
    },
    /// The writer has been closed.
    Closed,
}

impl Error {
    /// Wraps an I/O error with what the engine was doing.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Builds a corruption error.
    pub fn corrupt(
        file: impl Into<String>,
        position_bytes: u64,
        offset: Option<u64>,
        reason: impl Into<String>,
    ) -> Self {
        Error::Corrupt(Box::new(Corruption {
            file: file.into(),
            position_bytes,
            offset,
            reason: reason.into(),
        }))
    }

    /// Builds a verification failure.
    pub fn verify(
        file: impl Into<String>,
        position_bytes: u64,
        offset: u64,
        reason: impl Into<String>,
    ) -> Self {
        Error::Verify(Box::new(VerifyFailure {
            file: file.into(),
            position_bytes,
            offset,
            reason: reason.into(),
        }))
    }

    /// A short machine-readable name for the error's kind (used by `--json` output).
    pub fn kind_name(&self) -> &'static str {
        match self {
            Error::Io { .. } => "io",
            Error::Corrupt(_) => "corrupt",
            Error::Verify(_) => "verification_failed",
            Error::NotFound { .. } => "not_found",
            Error::Locked { .. } => "locked",
            Error::LimitExceeded { .. } => "limit_exceeded",
            Error::InvalidInput { .. } => "invalid_input",
            Error::Rejected { .. } => "rejected",
            Error::UnsupportedVersion { .. } => "unsupported_version",
            Error::Poisoned { .. } => "poisoned",
            Error::Closed => "closed",
        }
    }

    /// True when the error reports that a disk or file system ran out of space.
    pub fn is_no_space(&self) -> bool {
        match self {
            Error::Io { source, .. } => source.kind() == io::ErrorKind::StorageFull,
            _ => false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { context, source } if source.kind() == io::ErrorKind::StorageFull => {
                write!(f, "no space left on device while {context}: {source}")
            }
            Error::Io { context, source } => write!(f, "I/O error while {context}: {source}"),
            Error::Corrupt(c) => {
                write!(f, "corrupt data in {} at byte {}", c.file, c.position_bytes)?;
                if let Some(offset) = c.offset {
                    write!(f, " (record offset {offset})")?;
                }
                write!(f, ": {}", c.reason)
            }
            Error::Verify(v) => write!(
                f,
                "verification failed in {} at byte {} (record offset {}): {}",
                v.file, v.position_bytes, v.offset, v.reason
            ),
            Error::NotFound { path } => write!(f, "No ledger found at '{}'.", path.display()),
            Error::Locked { pid: Some(pid) } => write!(f, "log is locked by pid {pid}"),
            Error::Locked { pid: None } => write!(f, "log is locked by another process"),
            Error::LimitExceeded { what, actual, max } => {
                write!(f, "{what} is {actual}, over the limit of {max}")
            }
            Error::InvalidInput { reason } => write!(f, "invalid input: {reason}"),
            Error::Rejected { reason } => write!(f, "rejected: {reason}"),
            Error::UnsupportedVersion { file, version } => {
                write!(
                    f,
                    "{file} has format version {version}, newer than this build supports"
                )
            }
            Error::Poisoned { reason } => {
                write!(
                    f,
                    "the writer stopped after an earlier failure ({reason}); reopen the log"
                )
            }
            Error::Closed => write!(f, "the log writer is closed"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
