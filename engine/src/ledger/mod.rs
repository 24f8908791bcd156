//! The ledger: step records and their per-run audit chains, over the log.
//!
//! This layer is being built (issue 3). So far it holds [`legacy_v1`], the reference MeshFlow
//! ledger's entry hash, used to import and verify existing MeshFlow ledgers.

pub mod legacy_v1;
pub mod record;
pub mod step;
