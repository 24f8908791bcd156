//! Fuzz target: every pure decoder (frames, slots, HEAD, segment headers, index files, erasure
//! payloads) on arbitrary bytes must return a value or a typed error, never panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| meshflow_suite::fuzz::frame_decode(data));
