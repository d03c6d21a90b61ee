//! Capped exponential backoff with jitter, for reconnects now and per-object retries later.

use std::time::Duration;

use rand::Rng;

/// Delays that double from `initial` up to `max`, each with up to 20 % jitter so that many
/// clients retrying at once spread out.
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    /// A backoff starting at `initial`, never above `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            current: initial,
        }
    }

    /// The next delay to wait.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        let jitter = rand::rng().random_range(0.0..0.2);
        base.mul_f64(1.0 - jitter)
    }

    /// Back to the initial delay, after a success.
    pub fn reset(&mut self) {
        self.current = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_should_double_up_to_the_cap_and_reset() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        let delays: Vec<Duration> = (0..5).map(|_| b.next_delay()).collect();
        let bounds = [100, 200, 400, 500, 500];
        for (d, max) in delays.iter().zip(bounds) {
            assert!(*d <= Duration::from_millis(max), "{d:?} > {max}ms");
            assert!(
                *d >= Duration::from_millis(max * 8 / 10),
                "{d:?} < 80% of {max}ms"
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
