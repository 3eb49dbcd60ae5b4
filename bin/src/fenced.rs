//! `conch put`, `conch del`, `conch txn`: the guard from the child's environment, the txn
//! from stdin, checked before any etcd call (exit 64); and what a wrapper passes on to its
//! child so those commands reach the same etcd.
use conch_core::fenced::{self, TXN_TEXT_MAX};
use conch_core::{EtcdRequest, Sabotage};

use crate::cli::GlobalArgs;
use crate::host::Host;

/// A checked fenced write.
#[derive(Debug)]
pub struct FencedRun {
    /// The one transaction to send.
    pub request: EtcdRequest,
    /// Print the answer as `etcdctl txn` does (`conch txn`).
    pub print: bool,
    /// The hold's key, for the message when it is gone.
    pub key: String,
}

/// What to write: `put`, `del` or `txn`.
pub enum What {
    /// `conch put KEY VALUE`.
    Put(String, String),
    /// `conch del KEY [--prefix]`.
    Del(String, bool),
    /// `conch txn` (stdin).
    Txn,
}

/// Checks the environment first (outside a conch child nothing else matters), then the input.
pub fn validate(what: What, host: &dyn Host) -> Result<FencedRun, String> {
    let guard = fenced::guard_from_env(host.var("CONCH_KEY").as_deref(), host.var("CONCH_REV").as_deref())?;
    let key = guard.key.clone();
    let (txn, print) = match what {
        What::Put(k, v) => (fenced::put(&k, v.as_bytes())?, false),
        What::Del(k, prefix) => (fenced::del(&k, prefix)?, false),
        What::Txn => {
            let text = host.read_stdin(TXN_TEXT_MAX).map_err(|e| format!("txn: {e}"))?;
            (fenced::parse_txn(&text)?, true)
        }
    };
    Ok(FencedRun { request: fenced::request(guard, txn, Sabotage::None), print, key })
}

/// Makes the flags that reach etcd the child's defaults too (`CONCH_ENDPOINTS` & co.), so
/// `conch put` in the child talks to the cluster its wrapper holds in. Called in `main`
/// before any thread exists. `--user` is not passed on: a password given as a flag stays
/// out of the child's environment (give it as `CONCH_USER` for the child to inherit it).
pub fn export_for_child(global: &GlobalArgs) {
    let pairs = [
        ("CONCH_ENDPOINTS", Some(&global.endpoints)),
        ("CONCH_DIAL_TIMEOUT", Some(&global.dial_timeout)),
        ("CONCH_CACERT", global.cacert.as_ref()),
        ("CONCH_CERT", global.cert.as_ref()),
        ("CONCH_KEY_FILE", global.key.as_ref()),
    ];
    for (name, value) in pairs {
        if let Some(value) = value {
            std::env::set_var(name, value);
        }
    }
}
