//! Fuzz target: JSON step lines, export envelopes (offline verification), runs-view checkpoint
//! files and checkpoint notes on arbitrary bytes must give a value or a typed error, never a
//! panic; an accepted step line must round-trip through its canonical encoding.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| meshflow_suite::fuzz::ledger_inputs(data));
