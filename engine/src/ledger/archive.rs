//! Archives (SPEC §5.5): a run's export envelope (`docs/audit-chain.md` §4.2) written once to a
//! local directory or `file://` URI, never overwritten, read-only, under the run id
//! percent-encoded so that no id can name a path outside the destination.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{Ledger, LedgerError};
use crate::format::hex;

/// What an archive wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveReceipt {
    /// The run.
    pub run_id: String,
    /// `file://` URI of the archive file.
    pub uri: String,
    /// Its size.
    pub bytes_written: u64,
    /// SHA-256 of its bytes, lower-case hex.
    pub sha256: String,
}

/// A run id as a file name: every byte but ASCII letters, digits, `-`, `_` and `~` becomes
/// `%XX`, so `.`, `..`, `/` and control bytes can never leave the directory.
pub fn file_name_of(run_id: &str) -> String {
    let mut out = String::with_capacity(run_id.len() + 5);
    for b in run_id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out.push_str(".json");
    out
}

/// Where an archive goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A local directory (a path or a `file://` URI).
    Dir(PathBuf),
    /// `s3://bucket/prefix` (builds with the `s3` feature only).
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix, without leading or trailing `/` (may be empty).
        prefix: String,
    },
}

/// Parses an archive destination: a path, a `file://` URI, or (with the `s3` feature) an
/// `s3://bucket/prefix` URI. Other schemes are refused.
pub fn parse_destination(destination: &str) -> Result<Destination, LedgerError> {
    let unsupported = |why: &str| LedgerError::Invalid {
        reason: format!("Unsupported archive URI '{destination}': {why}"),
    };
    if let Some(path) = destination.strip_prefix("file://") {
        if path.is_empty() {
            return Err(unsupported("no path"));
        }
        return Ok(Destination::Dir(PathBuf::from(path)));
    }
    if let Some(rest) = destination.strip_prefix("s3://") {
        if !cfg!(feature = "s3") {
            return Err(unsupported(
                "this build has no S3 support (build with the `s3` feature; a local directory \
                 or file:// URI works in every build)",
            ));
        }
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(unsupported("no bucket"));
        }
        let prefix = prefix.trim_matches('/');
        if prefix
            .split('/')
            .any(|seg| seg == "." || seg == ".." || (seg.is_empty() && !prefix.is_empty()))
            || prefix.chars().any(|c| c.is_control())
        {
            return Err(unsupported(
                "the key prefix has an empty, '.' or '..' segment",
            ));
        }
        return Ok(Destination::S3 {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        });
    }
    if let Some((scheme, _)) = destination.split_once("://") {
        return Err(unsupported(&format!(
            "the scheme '{scheme}' is not supported"
        )));
    }
    if destination.is_empty() {
        return Err(unsupported("empty"));
    }
    Ok(Destination::Dir(PathBuf::from(destination)))
}

/// The lineage event that records an archive (so that erasures list it: SPEC §5.4).
pub fn archive_event(receipt: &ArchiveReceipt) -> crate::governance::Event {
    crate::governance::lineage::events::archive(
        &receipt.run_id,
        &receipt.uri,
        &receipt.sha256,
        receipt.bytes_written,
        crate::governance::now_secs(),
    )
}

impl Ledger {
    /// Writes `run`'s archive ([`Ledger::archive_file`]) and records it in the lineage view
    /// ([`archive_event`]), so that a later erasure of the run lists it. Needs a writable
    /// handle; the file is written first, so a crash between the two leaves an archive that is
    /// not listed (never a listed one that does not exist).
    pub fn archive_run(&self, run: &str, destination: &str) -> Result<ArchiveReceipt, LedgerError> {
        self.inner.log.as_ref().ok_or(LedgerError::ReadOnly)?;
        let receipt = self.archive_file(run, destination)?;
        self.append_event(&archive_event(&receipt))?;
        Ok(receipt)
    }

    /// Writes `run`'s export envelope to `<destination>/<percent-encoded run id>.json`, once:
    /// an existing archive is a `Conflict`, and the file is made read-only. The directory is
    /// created (0700) when missing. An unknown run is `NotFound`. Records nothing in the log:
    /// the caller appends [`archive_event`] (the CLI does, through a running `serve`).
    pub fn archive_file(
        &self,
        run: &str,
        destination: &str,
    ) -> Result<ArchiveReceipt, LedgerError> {
        let destination = parse_destination(destination)?;
        let mut bytes = Vec::new();
        self.export_run(run, &mut bytes)?;
        let name = file_name_of(run);
        let uri = match destination {
            Destination::Dir(dir) => write_dir(&dir, &name, &bytes)?,
            Destination::S3 { bucket, prefix } => write_s3(&bucket, &prefix, &name, &bytes)?,
        };
        Ok(ArchiveReceipt {
            run_id: run.to_string(),
            uri,
            bytes_written: bytes.len() as u64,
            sha256: hex(&Sha256::digest(&bytes)),
        })
    }
}

/// Writes a local archive (create-new, read-only) and returns its `file://` URI.
fn write_dir(dir: &Path, name: &str, bytes: &[u8]) -> Result<String, LedgerError> {
    let io = |what: String, e: std::io::Error| LedgerError::Log(crate::Error::io(what, e));
    super::checkpoint::store::create_private_dir(dir)
        .map_err(|e| io(format!("creating {}", dir.display()), e))?;
    let target = dir.join(name);
    write_once(dir, name, bytes).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => LedgerError::Conflict {
            reason: format!("the archive {} already exists", target.display()),
        },
        _ => io(format!("writing the archive {}", target.display()), e),
    })?;
    let absolute = std::fs::canonicalize(&target).unwrap_or(target);
    Ok(format!("file://{}", absolute.display()))
}

/// Writes an S3 archive with a conditional create (`If-None-Match: *`): an existing object is
/// a `Conflict`, never overwritten. Credentials, region and endpoint come from the usual
/// `AWS_*` environment variables (`AWS_ENDPOINT_URL` and `AWS_ALLOW_HTTP=true` for a local
/// S3-compatible server). The request runs on a runtime of its own, on a thread of its own,
/// so a caller inside another async runtime is not disturbed.
#[cfg(feature = "s3")]
fn write_s3(bucket: &str, prefix: &str, name: &str, bytes: &[u8]) -> Result<String, LedgerError> {
    use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};
    let key = if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    };
    let uri = format!("s3://{bucket}/{key}");
    let failed = |why: String| {
        LedgerError::Log(crate::Error::io(
            format!("writing the S3 archive {uri}"),
            std::io::Error::other(why),
        ))
    };
    let path = object_store::path::Path::parse(&key).map_err(|e| failed(e.to_string()))?;
    let store = object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_conditional_put(object_store::aws::S3ConditionalPut::ETagMatch)
        .build()
        .map_err(|e| failed(e.to_string()))?;
    let payload = PutPayload::from(bytes.to_vec());
    let options = PutOptions {
        mode: PutMode::Create,
        ..PutOptions::default()
    };
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| failed(format!("starting the client runtime: {e}")))?;
                runtime
                    .block_on(store.put_opts(&path, payload, options))
                    .map_err(|e| match e {
                        object_store::Error::AlreadyExists { .. } => LedgerError::Conflict {
                            reason: format!("the archive {uri} already exists"),
                        },
                        other => failed(other.to_string()),
                    })
            })
            .join()
            .unwrap_or_else(|_| Err(failed("the S3 client thread panicked".to_string())))
    })?;
    Ok(uri)
}

#[cfg(not(feature = "s3"))]
fn write_s3(bucket: &str, _: &str, _: &str, _: &[u8]) -> Result<String, LedgerError> {
    Err(LedgerError::Invalid {
        reason: format!("Unsupported archive URI 's3://{bucket}': this build has no S3 support"),
    })
}

/// Writes `bytes` as `dir/name` only if it does not exist: a temporary file (read-only, fsynced)
/// is hard-linked to the name, which fails when the name exists, so a crash never leaves a
/// partial archive under the name.
fn write_once(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o400);
        }
        let mut f = options.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::hard_link(&tmp, dir.join(name))?;
        std::fs::File::open(dir)?.sync_all()
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_become_file_names_that_stay_in_the_directory() {
        // Proves percent-encoding keeps separators, dots and control bytes out of names.
        assert_eq!(file_name_of("run-1_a~"), "run-1_a~.json");
        assert_eq!(file_name_of("../etc/passwd"), "%2E%2E%2Fetc%2Fpasswd.json");
        assert_eq!(file_name_of("."), "%2E.json");
        assert_eq!(file_name_of("é"), "%C3%A9.json");
    }

    #[test]
    fn destinations_are_paths_or_file_uris() {
        // Proves the accepted and refused destination forms.
        assert_eq!(
            parse_destination("/tmp/a").unwrap(),
            Destination::Dir(PathBuf::from("/tmp/a"))
        );
        assert_eq!(
            parse_destination("file:///tmp/a").unwrap(),
            Destination::Dir(PathBuf::from("/tmp/a"))
        );
        let mut bad = vec!["http://x/y", "file://", "", "s3://", "s3:///x"];
        if cfg!(feature = "s3") {
            assert_eq!(
                parse_destination("s3://bucket/a/b/").unwrap(),
                Destination::S3 {
                    bucket: "bucket".to_string(),
                    prefix: "a/b".to_string()
                }
            );
            bad.extend(["s3://b/../x", "s3://b/a//c", "s3://b/./x"]);
        } else {
            bad.push("s3://bucket/x");
        }
        for bad in bad {
            let e = parse_destination(bad).unwrap_err().to_string();
            assert!(e.contains("Unsupported archive URI"), "{bad}: {e}");
        }
    }
}
