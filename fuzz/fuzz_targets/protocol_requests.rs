//! Fuzz target: the writer protocol's request parser on arbitrary bytes; never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| meshflow_suite::fuzz::protocol_requests(data));
