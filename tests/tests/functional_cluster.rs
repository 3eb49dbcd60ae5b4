//! The functional tester's cluster on its own: three members, ids known, a black-holed
//! member really cut off (it loses its leader, the others elect one), a delayed leader
//! still leads, a removed member comes back as a new one, HashKV agrees.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::time::Duration;

use conch_tests::cluster::{Cluster, Timings};
use nix::sys::signal::Signal;

#[test]
fn isolation_remove_and_readd_on_a_real_cluster() {
    let mut c = Cluster::start(3, Timings::default()).unwrap();
    for i in 0..3 {
        assert_eq!(c.status(i).unwrap().id, c.members[i].id, "member {i}'s id");
    }
    let leader = c.wait_leader(Duration::from_secs(10)).unwrap();
    // Cut the leader off: it steps down (CheckQuorum), the other two elect a new one.
    c.net.isolate(leader);
    let cut = conch_tests::wait_until(Duration::from_secs(6), || {
        let lost = c.status(leader).is_some_and(|s| s.leader == 0);
        let others = (0..3)
            .filter(|i| *i != leader)
            .all(|i| c.status(i).is_some_and(|s| s.leader != 0 && s.leader != c.members[leader].id));
        lost && others
    });
    let statuses: Vec<_> = (0..3).map(|i| c.status(i)).collect();
    if !cut {
        for i in 0..3 {
            println!("m{i} id {:x}\n{}", c.members[i].id, c.log_tail(i, 30));
        }
    }
    assert!(cut, "leader m{leader} not isolated: {statuses:?}");
    c.net.heal_all();
    c.wait_health(Duration::from_secs(30)).unwrap();
    // A follower replaced by a new member.
    let leader = c.wait_leader(Duration::from_secs(10)).unwrap();
    let f = (leader + 1) % 3;
    let old = c.members[f].id;
    c.stop(f, Signal::SIGQUIT);
    c.remove(f).unwrap();
    c.add_back(f).unwrap();
    c.wait_health(Duration::from_secs(30)).unwrap();
    assert_ne!(c.members[f].id, old);
    assert_eq!(c.status(f).unwrap().id, c.members[f].id);
    c.hashkv_equal(Duration::from_secs(10)).unwrap();
}

/// The premise of the loss-deadline checker: with two of three members stopped, the one
/// left has no leader and renews no lease.
#[test]
fn a_lone_member_renews_no_lease() {
    let mut c = Cluster::start(3, Timings::default()).unwrap();
    let out = c.etcdctl_any(&["lease", "grant", "30"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let lease = text.split_whitespace().nth(1).unwrap().to_string();
    let leader = c.wait_leader(Duration::from_secs(10)).unwrap();
    let lone = (leader + 1) % 3;
    for i in (0..3).filter(|i| *i != lone) {
        c.stop(i, Signal::SIGTERM);
    }
    std::thread::sleep(Duration::from_secs(3));
    let status = c.status(lone);
    let renew = c.etcdctl(lone, &["lease", "keep-alive", "--once", &lease]);
    println!("lone m{lone}: {status:?}; keep-alive: {renew:?}");
    assert_eq!(status.map(|s| s.leader), Some(0), "{status:?}");
    assert!(!renew.status.success(), "a lone member renewed a lease: {renew:?}");
}
