//! conchd's runs: a won tick starts the job under the shim with the session's deadlines;
//! its exit becomes the tick's result.
use super::*;

impl Conchd {
    pub(super) fn start_run(&mut self, now: Now, name: String, tick: i64, rev: Revision) {
        let (Some(state), Some(term_at), Some(kill_at), Some(lease)) =
            (self.jobs.get(&name), self.session.term_at(), self.session.kill_at(), self.session.lease())
        else {
            return;
        };
        self.next_child += 1;
        let child = ChildId(self.next_child);
        let running_key = (state.job.spec.overlap == Overlap::Skip).then(|| running_key(&name));
        let env = vec![
            ("CONCH_NAME".to_string(), name.clone()),
            ("CONCH_REV".to_string(), rev.to_string()),
            ("CONCH_TICK".to_string(), rfc3339(tick)),
            ("CONCH_LEASE".to_string(), lease.to_string()),
        ];
        let spec = SpawnSpec {
            child,
            argv: state.job.spec.cmd.clone(),
            env,
            term_at,
            kill_at,
            kill_after: self.cfg.kill_after,
            // A run's keys live on the claim lease and the daemon's session: the shim
            // of one run must never free them for the others.
            lease: None,
            output_label: Some(name.clone()),
        };
        let mut supervisor = Supervisor::new(child);
        supervisor.spawn(now.mono, spec, &mut self.out);
        let ttl_deadline = now.mono.plus(state.job.run_ttl);
        let run = Run {
            name,
            tick,
            rev,
            supervisor,
            started_wall_ms: now.wall_ms,
            started: now.mono,
            ttl_deadline,
            outcome: None,
            running_key,
            lease,
        };
        self.runs.insert(child, run);
    }

    pub(super) fn on_child_exit(&mut self, now: Now, child: ChildId, status: ChildStatus) {
        let Some(mut run) = self.runs.remove(&child) else { return };
        run.supervisor.handle_exit(now.mono, status, &mut self.out);
        let (exit, default_outcome) = match status {
            ChildStatus::Exited(code) => (code, "exited"),
            ChildStatus::Signaled(sig) => (128 + sig, "signaled"),
            ChildStatus::Vanished => (ExitCode::LOST.0, "lost"),
        };
        let outcome = run.outcome.unwrap_or(default_outcome);
        let ran = now.mono.since(run.started);
        self.stats.note_run(&run.name, outcome, ran, exit, now.wall_ms);
        let result = RunResult {
            node: self.cfg.node.clone(),
            exit,
            outcome: outcome.to_string(),
            started: rfc3339_ms(run.started_wall_ms),
            duration: short_duration(ran),
            tick: rfc3339(run.tick),
            rev: run.rev.0,
        };
        // A job that failed is a warning (`journalctl -p warning` finds it); a clean run is news.
        let level = if exit == 0 { Event::info("run-end") } else { Event::warn("run-end") };
        self.out.log(
            level.with("job", &run.name).with("tick", rfc3339(run.tick)).with("outcome", outcome).with("exit", exit),
        );
        if let Some(key) = run.running_key.take() {
            let lease = run.lease;
            self.send_write(now, Write::Release { key, create_rev: run.rev, lease, since: now.mono });
        }
        let value = serde_json::to_vec(&result).unwrap_or_default();
        // A RunResult is strings, numbers and options: serde_json has nothing to refuse.
        debug_assert!(!value.is_empty(), "a run result serialised to nothing");
        self.send_write(now, Write::Result { name: run.name, tick: run.tick, value });
        self.maybe_finish(now);
    }
}
