//! conch's deterministic simulator. So far: [`etcd::SimEtcd`], an MVCC store faithful to
//! etcd for the subset conch uses, checked against a real etcd by a differential test
//! (`tests/tests/sim_etcd_differential.rs`). The network, hosts, faults and checkers of
//! the simulator build on it.

pub mod etcd;
pub mod world;
