//! FIFO: a child starts only when fewer than `max` keys of its contest are older.
use crate::record::Start;

/// Starts that jumped the queue.
pub fn queue_jumps(starts: &[Start], max: usize) -> impl Iterator<Item = &Start> {
    starts.iter().filter(move |s| s.lower >= max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_with_max_older_keys_is_caught() {
        let s = |lower| Start { client: 0, rev: 1, lower, key_rev: Some(1), at: 0 };
        assert_eq!(queue_jumps(&[s(0), s(1), s(2)], 2).count(), 1);
    }
}
