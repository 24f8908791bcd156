//! Fuzz target: the legacy import's row decoding (gzip+base64 outputs) and the legacy-v1 entry hash on arbitrary fields; never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| meshflow_suite::fuzz::legacy_rows(data));
