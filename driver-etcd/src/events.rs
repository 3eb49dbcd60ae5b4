//! What the driver's tasks send the event loop: an [`Input`] for the machine, or news of
//! a keepalive stream that `keepalive` turns into inputs. A leaf, so the tasks' modules
//! and the loop (`run`) do not import each other.
use conch_core::{EtcdResponse, Input};
use etcd_client::LeaseKeeper;

/// Everything that can wake the loop.
#[derive(Debug)]
pub enum DriverEvent {
    /// An input for the machine (an etcd answer, a watch event, a child's or hook's news).
    Input(Input),
    /// News from a keepalive stream of some generation.
    KeepAlive(u64, StreamNews),
}

/// What a stream task reports to the event loop.
#[derive(Debug)]
pub enum StreamNews {
    /// The stream is open; later keepalives go through this keeper.
    Opened(LeaseKeeper),
    /// One answer, in order.
    Answer(EtcdResponse),
    /// The stream failed or ended.
    Closed(String),
}
