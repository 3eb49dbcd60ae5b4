//! Fuzz target `txn`: the body is `conch_driver_sim::fuzzing::txn` (shared with the corpus replay test).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| conch_driver_sim::fuzzing::txn(data));
