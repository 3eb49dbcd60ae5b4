//! Fuzz target `fault_plan`: the body is `conch_driver_sim::fuzzing::fault_plan` (shared with the corpus replay test).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| conch_driver_sim::fuzzing::fault_plan(data));
