//! conchd's claims: the claim transaction of a tick (with the running key under
//! `--overlap skip`), its answer, and the sweep of a running key an ambiguous claim may
//! have left.
use super::*;

impl Conchd {
    pub(super) fn claim(&mut self, now: Now, name: String, tick: i64) {
        // A clock stepped back reaches a tick again: one we run (or claim) is ours already.
        // Claiming it anew would find our own claim and take it for an orphan, sweeping the
        // live run's running key (found by the simulator's cron-skip-overlap: the next tick
        // of a skip job then started beside the run).
        if self.running_tick(&name, tick) {
            return;
        }
        let Some(claim_lease) = self.fresh_lease(now, true) else {
            self.waiting_claims.push((name, tick));
            return;
        };
        let (Some(state), Some(session)) = (self.jobs.get(&name), self.session.lease()) else { return };
        let claim = Claim {
            host: self.cfg.node.clone(),
            pid: self.cfg.pid,
            started: self.cfg.started.clone(),
            cmd: Some(cmd_field(&state.job.spec.cmd)),
            tick: rfc3339(tick),
            session: Some(session.to_string()),
        };
        let running = (state.job.spec.overlap == Overlap::Skip).then(|| (running_key(&name), session));
        let running_lease = running.as_ref().map(|(_, lease)| *lease);
        let claim = match serde_json::to_vec(&claim) {
            Ok(claim) => claim,
            // A Claim is strings, numbers and options: serde_json has nothing to refuse.
            // Were it ever to, skipping the tick beats claiming it with an empty value.
            Err(e) => {
                debug_assert!(false, "a claim cannot be serialised: {e}");
                self.out.log(Event::error("claim-unserialisable").with("job", &name).with("error", e));
                return;
            }
        };
        let request = match self.sabotage {
            Sabotage::ClaimWithoutCompare => {
                EtcdRequest::Put { key: fire_key(&name, tick), value: claim, lease: Some(claim_lease) }
            }
            _ => EtcdRequest::Claim { fire_key: fire_key(&name, tick), claim, claim_lease, running },
        };
        let id = self.out.request(request);
        let up_to = self.claimed_up_to.entry(name.clone()).or_insert(i64::MIN);
        let first = tick > *up_to;
        *up_to = (*up_to).max(tick);
        self.claims.insert(id, InFlight { name, tick, running: running_lease, claim_lease, first });
    }

    pub(super) fn on_claimed(&mut self, now: Now, claim: InFlight, response: EtcdResponse) {
        let InFlight { name, tick, running, first, .. } = claim;
        let tick_text = rfc3339(tick);
        let session_changed = running.is_some_and(|l| self.session.lease() != Some(l) || !self.session_up);
        match response {
            EtcdResponse::Claimed { won: true, rev, .. } if session_changed => {
                // Won on a session that is gone since: its running key went with that lease,
                // and a run now would not be covered by it. A zombie, like a lost answer.
                self.stats.note_claimed();
                self.out.log(
                    Event::warn("claim-abandoned")
                        .with("job", &name)
                        .with("tick", &tick_text)
                        .with("rev", rev)
                        .with("why", "session replaced"),
                );
            }
            EtcdResponse::Claimed { won: true, rev, .. } | EtcdResponse::Written { rev } if self.stopping => {
                // Won while stopping (the answer crossed the signal): a run started now would
                // outlive the shutdown. The tick stays claimed and unrun, like a zombie.
                self.stats.note_claimed();
                self.out
                    .log(Event::warn("claim-abandoned").with("job", &name).with("tick", &tick_text).with("rev", rev));
            }
            EtcdResponse::Claimed { won: true, rev, .. } | EtcdResponse::Written { rev } => {
                self.won(now, name, tick, rev, None);
            }
            EtcdResponse::Claimed { won: false, existing: Some(value), rev } => {
                let ours = serde_json::from_slice::<Claim>(&value).is_ok_and(|c| self.made(&c));
                if ours && first && !session_changed && !self.stopping {
                    // The claim is ours and no other claim of this tick was ever sent: the
                    // driver's first attempt was applied but its answer lost, and the retry
                    // on another endpoint found it. The tick is won (nobody else can claim
                    // it, and nothing of ours ran it), with the running key in place.
                    self.won(now, name, tick, rev, Some("retry found our claim"));
                } else if ours {
                    // Ours from an earlier claim of this tick (a clock stepped back), or on a
                    // session gone since, or while stopping: running it could not be proven
                    // safe. A zombie; its running key, if it put one, is swept.
                    self.out.log(Event::warn("claim-orphaned").with("job", &name).with("tick", &tick_text));
                    self.sweep(now, name, tick, running, false);
                } else {
                    self.stats.note_lost();
                }
            }
            EtcdResponse::Claimed { won: false, existing: None, .. } => {
                self.stats.note_skipped_overlap();
                self.out.log(Event::info("skipped-overlap").with("job", &name).with("tick", &tick_text));
                // Nothing of ours runs: if the running key is ours it is a ghost (an attempt
                // of an earlier claim etcd applied after we had our answer); left alone, it
                // would skip every tick for as long as our session lives. Found by the
                // functional tester (BLACKHOLE_PEER_PORT_TX_RX_LEADER, MOVE_LEADER).
                let ghost = running.filter(|l| self.session.lease() == Some(*l) && self.job_idle(&name));
                self.sweep(now, name, tick, ghost, true);
            }
            EtcdResponse::Error(EtcdError::Unavailable(why)) => {
                // It may have been applied: then a running key of ours is there, for a run
                // that will never start.
                self.out
                    .log(Event::warn("claim-failed").with("job", &name).with("tick", &tick_text).with("error", why));
                self.sweep(now, name, tick, running, false);
            }
            other => {
                self.out.log(
                    Event::warn("claim-failed")
                        .with("job", &name)
                        .with("tick", &tick_text)
                        .with("answer", format!("{other:?}")),
                );
            }
        }
    }

    /// A won tick: counted, logged (with `why` when not a plain win), run.
    fn won(&mut self, now: Now, name: String, tick: i64, rev: Revision, why: Option<&str>) {
        self.stats.note_claimed();
        let event = Event::info("claimed").with("job", &name).with("tick", rfc3339(tick)).with("rev", rev);
        self.out.log(match why {
            Some(why) => event.with("why", why),
            None => event,
        });
        self.start_run(now, name, tick, rev);
    }

    /// Reads the running key on `running` and releases it if it is ours: of `tick` (an
    /// ambiguous claim), or of an earlier tick when `stale` (a ghost; see writes.rs).
    fn sweep(&mut self, now: Now, name: String, tick: i64, running: Option<LeaseId>, stale: bool) {
        // `claim` never claims a tick we run, so no sweep can reach a live run's key.
        debug_assert!(!self.running_tick(&name, tick), "sweeping the running key of a live run");
        if let Some(lease) = running.filter(|_| self.sabotage != Sabotage::NoWriteRetry) {
            self.send_write(now, Write::Sweep { name, tick, lease, since: now.mono, stale });
        }
    }

    /// Whether no run of `name` is live and no claim of it is in flight.
    pub(super) fn job_idle(&self, name: &str) -> bool {
        !self.runs.values().any(|r| r.name == name) && !self.claims.values().any(|c| c.name == name)
    }

    /// Whether `tick` of `name` is ours already: running, or its claim on its way.
    fn running_tick(&self, name: &str, tick: i64) -> bool {
        self.runs.values().any(|r| r.name == name && r.tick == tick)
            || self.claims.values().any(|c| c.name == name && c.tick == tick)
    }
}
