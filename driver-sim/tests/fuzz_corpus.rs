//! Replays every fuzz corpus input (`fuzz/corpus/<target>/`) through the same bodies the
//! fuzz targets run, so CI catches regressions without a fuzzing run or nightly Rust.
use std::path::Path;

use conch_driver_sim::fuzzing;

fn replay(target: &str, body: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a corpus entry").path())
        .collect();
    files.sort();
    assert!(files.len() >= 10, "{target}: only {} corpus inputs", files.len());
    for file in files {
        let data = std::fs::read(&file).expect("a corpus file");
        let outcome = std::panic::catch_unwind(|| body(&data));
        assert!(outcome.is_ok(), "{target}: {} fails", file.display());
    }
}

#[test]
fn schedule_corpus() {
    replay("schedule", fuzzing::schedule);
}

#[test]
fn decode_corpus() {
    replay("decode", fuzzing::decode);
}

#[test]
fn machine_inputs_corpus() {
    replay("machine_inputs", fuzzing::machine_inputs);
}

#[test]
fn txn_corpus() {
    replay("txn", fuzzing::txn);
}

#[test]
fn fault_plan_corpus() {
    replay("fault_plan", fuzzing::fault_plan);
}
