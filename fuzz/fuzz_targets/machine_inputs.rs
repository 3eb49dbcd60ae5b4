//! Fuzz target `machine_inputs`: the body is `conch_driver_sim::fuzzing::machine_inputs` (shared with the corpus replay test).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| conch_driver_sim::fuzzing::machine_inputs(data));
