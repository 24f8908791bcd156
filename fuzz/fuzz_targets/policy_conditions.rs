//! Fuzz target: policy conditions parsed, rules added and contexts evaluated from arbitrary JSON; never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| meshflow_suite::fuzz::policy_conditions(data));
