//! One connection per etcd member and failover between them, carried out for the core's
//! [`Endpoints`] machine (which decides: which member is pinned, when a call is tried
//! again elsewhere).
//!
//! Every unary call goes through [`Pool::call`]; the keepalive stream and the watches ask
//! [`Pool::pinned`] where to open, report their failures with [`Pool::report`], and move
//! when [`Pool::switched`] changes. A member given up is forgotten: its channel is dropped,
//! so a later return to it dials afresh instead of waiting out a reconnect backoff.
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use conch_core::{Endpoints, EtcdError, EtcdRequest, EtcdResponse, Next, Outcome};
use etcd_client::Client;
use tokio::sync::watch;

use crate::calls::call;
use crate::clock::now;
use crate::connect::{connect_one, EtcdConfig};

/// The members of one etcd cluster as this process sees them.
#[derive(Clone)]
pub struct Pool {
    shared: Arc<Shared>,
}

struct Shared {
    config: EtcdConfig,
    state: Mutex<State>,
    /// Counts switches; streams wait on it to move.
    switched: watch::Sender<u64>,
}

struct State {
    machine: Endpoints,
    clients: Vec<Option<Client>>,
}

impl Pool {
    /// A pool over `config`'s endpoints; nothing is dialled yet.
    pub fn new(config: EtcdConfig) -> Pool {
        let count = config.endpoints.len();
        let state = State { machine: Endpoints::new(count), clients: vec![None; count.max(1)] };
        let (switched, _) = watch::channel(0);
        Pool { shared: Arc::new(Shared { config, state: Mutex::new(state), switched }) }
    }

    /// How to reach etcd.
    pub fn config(&self) -> &EtcdConfig {
        &self.shared.config
    }

    /// The endpoint in use now.
    pub fn pinned(&self) -> usize {
        self.state().machine.pinned()
    }

    /// The URL of an endpoint (for log lines).
    pub fn url(&self, endpoint: usize) -> &str {
        self.shared.config.endpoints.get(endpoint).map_or("?", String::as_str)
    }

    /// Changes whenever the pin moves.
    pub fn switched(&self) -> watch::Receiver<u64> {
        self.shared.switched.subscribe()
    }

    /// Feeds the outcome of something done on `endpoint` to the machine.
    pub fn report(&self, endpoint: usize, outcome: Outcome) {
        let mut state = self.state();
        let switch = state.machine.handle_outcome(now(), endpoint, outcome);
        self.after(&mut state, switch);
    }

    /// The client of `endpoint`, dialled (and, with `--user`, authenticated) on first use
    /// within `timeout`. A failure is the answer to hand on.
    pub async fn client(&self, endpoint: usize, timeout: Duration) -> Result<Client, EtcdResponse> {
        if let Some(client) = self.state().clients.get(endpoint).and_then(Clone::clone) {
            return Ok(client);
        }
        let url = self.url(endpoint).to_string();
        let client = connect_one(&self.shared.config, &url, timeout).await.map_err(EtcdResponse::Error)?;
        if let Some(slot) = self.state().clients.get_mut(endpoint) {
            *slot = Some(client.clone());
        }
        Ok(client)
    }

    /// One call, failing over between members within `budget` as the machine says.
    pub async fn call(&self, request: EtcdRequest, budget: Duration) -> EtcdResponse {
        let mut attempt = self.state().machine.begin(now(), budget);
        loop {
            if !attempt.delay.is_zero() {
                tokio::time::sleep(attempt.delay).await;
            }
            let response = match self.client(attempt.endpoint, attempt.timeout).await {
                Ok(client) => call(client, request.clone(), attempt.timeout).await,
                Err(failure) => failure,
            };
            let outcome = outcome_of(&response);
            let next = {
                let mut state = self.state();
                let (next, switch) = state.machine.attempt_done(now(), attempt, outcome);
                self.after(&mut state, switch);
                next
            };
            match next {
                Next::Deliver => return response,
                Next::Retry(again) => attempt = again,
            }
        }
    }

    /// Carries out a switch (forget the old member's channel, wake the streams) and logs
    /// the machine's events.
    fn after(&self, state: &mut State, switch: Option<conch_core::Switch>) {
        if let Some(switch) = switch {
            if let Some(slot) = state.clients.get_mut(switch.from) {
                *slot = None;
            }
            self.shared.switched.send_modify(|n| *n += 1);
        }
        while let Some(event) = state.machine.poll_event() {
            let event = match switch {
                Some(s) => event.with("from_url", self.url(s.from)).with("to_url", self.url(s.to)),
                None => event,
            };
            crate::log::log_event(&event);
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned lock still holds sound data.
        self.shared.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Sorts an answer into the machine's outcomes. Only `Unavailable` is the member's fault:
/// an etcd error about the request (lease not found, permission) is an answer.
pub fn outcome_of(response: &EtcdResponse) -> Outcome {
    match response {
        EtcdResponse::Error(error) => error_outcome(error),
        _ => Outcome::Answered,
    }
}

/// The outcome of a stream error (watch or keepalive) on a member.
pub fn stream_outcome(error: &etcd_client::Error) -> Outcome {
    error_outcome(&crate::calls::map_error(error))
}

/// The one place an error's text decides the outcome: etcd says "no leader" in words
/// only, and the driver's own timeouts begin with [`crate::calls::NO_ANSWER`].
pub fn error_outcome(error: &EtcdError) -> Outcome {
    match error {
        EtcdError::Unavailable(why) if why.contains("no leader") => Outcome::NoLeader,
        EtcdError::Unavailable(why) if why.starts_with(crate::calls::NO_ANSWER) => Outcome::TimedOut,
        EtcdError::Unavailable(_) => Outcome::Unavailable,
        _ => Outcome::Answered,
    }
}
