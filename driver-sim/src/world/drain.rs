//! A client's side of the drain contract: one input in, its outputs performed in poll
//! order, then the inputs performing them made (a child started or killed), each with
//! its own drain; never an input into the machine while its outputs are carried out.
use conch_core::shim_rules::ShimInput;
use conch_core::{ChildStatus, Input, Output};

use super::{Ev, World};

impl World {
    /// Feeds one input to client `i`'s machine (if it runs), then drains it.
    pub(super) fn feed(&mut self, i: usize, input: Input) {
        let now = self.clock(i);
        if let Some(m) = self.clients[i].machine.as_mut() {
            m.machine().handle_input(now, input);
        }
        self.pump(i);
    }

    /// Queues an input the world made for client `i`'s machine while performing its
    /// outputs; the drain in progress (or the next [`World::pump`]) feeds it.
    pub(super) fn queue_input(&mut self, i: usize, input: Input) {
        if self.clients[i].machine.is_some() {
            self.clients[i].inbox.push_back(input);
        }
    }

    /// Drains a client's outputs and performs them in poll order, then feeds the inputs
    /// that performing them made (each followed by its own drain), then schedules its timer.
    pub(super) fn pump(&mut self, i: usize) {
        let mut timeout = None;
        for _ in 0..conch_core::drive::DRAIN_OUTPUTS_MAX {
            let mut outputs = Vec::new();
            timeout = match self.clients[i].machine.as_mut() {
                Some(m) => conch_core::drain(m.machine(), |o| outputs.push(o)),
                None => {
                    self.clients[i].inbox.clear();
                    return;
                }
            };
            for o in outputs {
                self.perform(i, o);
                if self.clients[i].machine.is_none() {
                    self.clients[i].inbox.clear();
                    return;
                }
            }
            let Some(input) = self.clients[i].inbox.pop_front() else { break };
            let now = self.clock(i);
            if let Some(m) = self.clients[i].machine.as_mut() {
                m.machine().handle_input(now, input);
            }
        }
        // One live timer per client: re-arm only when the instant changes (most inputs
        // leave it where it was, and stale timers would crowd the queue).
        let c = &mut self.clients[i];
        let when = timeout.map(|t| c.host.sim_time_of(t).max(self.now));
        if when != c.timer_at {
            c.timer_gen += 1;
            c.timer_at = when;
            let gen = c.timer_gen;
            if let Some(when) = when {
                self.at(when, Ev::Timer(i, gen));
            }
        }
    }

    fn perform(&mut self, i: usize, output: Output) {
        let inc = self.clients[i].incarnation;
        if let Output::Log(event) = &output {
            if event.kind == "acquired" {
                self.note_acquired(event);
            }
            if event.kind == "backoff" {
                self.run_cycle_again(i, event);
                self.cycle_ended(i);
            }
        }
        if self.clients[i].awaiting_exit.is_some() {
            self.note_after_fence(i, &output);
        }
        match output {
            Output::Etcd { id, request } => self.send(i, inc, id, request),
            Output::Watch { id, key, start_rev, prefix } => self.open_watch(i, inc, id, key, start_rev, prefix),
            Output::CancelWatch(id) => {
                self.clients[i].watches.remove(&id);
            }
            Output::Spawn(spec) => self.spawn(i, spec),
            Output::Deadlines { child, term_at, kill_at } => {
                let now = self.clients[i].host.mono(self.now);
                if let Some(c) = self.clients[i].host.children.get_mut(&child) {
                    c.told_kill_at = kill_at.as_nanos();
                    c.told_term_at = term_at.as_nanos();
                    c.rules.handle_input(now, ShimInput::Deadlines { term_at, kill_at });
                    let gen = c.gen;
                    self.cycle_deadlines(i, gen, term_at.as_nanos());
                    self.schedule_shim(i, child);
                }
            }
            Output::Terminate { child, kill_at } => {
                let now = self.clients[i].host.mono(self.now);
                if let Some(c) = self.clients[i].host.children.get_mut(&child) {
                    c.rules.handle_input(now, ShimInput::Terminate { kill_at });
                    let gen = c.gen;
                    self.cycle_stop_ordered(i, gen);
                    self.shim_perform(i, child);
                }
            }
            Output::KillGroup(child) => self.child_gone(i, child, ChildStatus::Signaled(9)),
            Output::RunHook(spec) => self.run_hook(i, spec),
            Output::KillHook(id) => self.kill_hook(i, id),
            Output::SignalGroup { .. } | Output::Print(_) | Output::Prepare => {}
            Output::Exit(code) => {
                self.trace("exit", format_args!("\"client\":{i},\"code\":{}", code.0));
                self.run_exited(i, code.0);
                self.clean_exits.insert((i, inc));
                let c = &mut self.clients[i];
                c.machine = None;
                c.watches.clear();
                if !self.stopping {
                    let delay = 500_000_000 + self.rng.next_u64() % 1_000_000_000;
                    self.at(self.now + delay, Ev::Start(i));
                }
            }
            Output::Log(event) if event.kind == "lost" || event.kind == "etcd-failed" => {
                let reason = event.field("reason").map(str::to_string);
                let reason = reason.unwrap_or_else(|| event.kind.to_string());
                self.trace("lost", format_args!("\"client\":{i},\"reason\":\"{reason}\""));
                self.cycle_lost(i);
                let record = self.loss_record(i, &event, reason);
                // 70 is for a hold lost while the child ran (a loss after it exited by
                // itself, in the on-lose hook, keeps the child's code).
                if record.truth.acquired && !self.clients[i].host.children.is_empty() {
                    self.run_lost_holding(i);
                }
                self.out.losses.push(record);
            }
            Output::Log(event) if event.kind == "skipped-late" => self.late_skip_record(i, &event),
            Output::Log(event) if self.opts.trace => {
                let fields: Vec<String> = event
                    .fields
                    .iter()
                    .map(|(k, v)| format!("\"{k}\":{}", serde_json::Value::String(v.clone())))
                    .collect();
                let sep = if fields.is_empty() { "" } else { "," };
                self.trace("log", format_args!("\"client\":{i},\"kind\":\"{}\"{sep}{}", event.kind, fields.join(",")));
            }
            Output::Log(_) => {}
        }
    }
}
