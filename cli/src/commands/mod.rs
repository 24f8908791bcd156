//! One module per command group.

pub mod audit;
pub mod bench;
pub mod demo;
pub mod governance;
pub mod governance_more;
pub mod ledger;
pub mod log;
pub mod serve;
pub mod snapshot;
