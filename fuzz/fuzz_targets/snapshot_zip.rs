//! Fuzz target: snapshot ZIP reading (with limits) and verification without a log on arbitrary bytes; never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| meshflow_suite::fuzz::snapshot_zip(data));
