//! Fuzz target: recovery of a log whose last segment holds arbitrary bytes must open (cutting a
//! torn tail) or fail with a typed error, never panic; an opened log must verify or fail typed.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| meshflow_suite::fuzz::segment_recovery(data));
