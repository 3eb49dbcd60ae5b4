//! Percentiles over a handful of samples (nearest rank: with 20 samples p99 is the largest;
//! the table says how many there were).

/// The nearest-rank `p`-th percentile (0..=100) of `samples`, `None` when empty.
pub fn percentile(samples: &[f64], p: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank.min(sorted.len()) - 1).copied()
}

/// The median.
pub fn p50(samples: &[f64]) -> Option<f64> {
    percentile(samples, 50.0)
}

/// The 99th percentile.
pub fn p99(samples: &[f64]) -> Option<f64> {
    percentile(samples, 99.0)
}

/// The largest.
pub fn max(samples: &[f64]) -> Option<f64> {
    samples.iter().copied().reduce(f64::max)
}

/// Nanoseconds to milliseconds.
pub fn ms(ns: i128) -> f64 {
    ns as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let s: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(p50(&s), Some(5.0));
        assert_eq!(p99(&s), Some(10.0));
        assert_eq!(percentile(&[3.0], 50.0), Some(3.0));
        assert_eq!(p50(&[]), None);
    }
}
