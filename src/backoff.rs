//! The one backoff policy: exponential delays capped per wait, and a total
//! budget for callers that give up (the drill's JetStream calls) or none (the
//! controllers' requeue after a failed reconcile).

use std::time::Duration;

/// Exponential backoff bounded by a total budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max_delay: Duration,
    /// No new attempt starts after this much time since the first.
    pub budget: Duration,
}

impl Backoff {
    /// For JetStream API calls during setup and steps: with the 5 s request
    /// timeout, at least 6 attempts over 30 s; the slowest answer seen on a
    /// loaded 2-core machine was under 10 s.
    pub const JETSTREAM: Backoff = Backoff {
        first: Duration::from_millis(250),
        max_delay: Duration::from_secs(2),
        budget: Duration::from_secs(30),
    };

    /// A drill run's report and last status: they carry the verdict, so they
    /// are written through an API outage of up to two minutes.
    pub const FINAL_WRITE: Backoff = Backoff {
        first: Duration::from_millis(500),
        max_delay: Duration::from_secs(10),
        budget: Duration::from_secs(120),
    };

    /// Between reconciles of one object that keeps failing: 5 s doubling to
    /// at most 5 minutes, for as long as it fails (the controller has no budget).
    pub const RECONCILE: Backoff = Backoff {
        first: Duration::from_secs(5),
        max_delay: Duration::from_secs(300),
        budget: Duration::MAX,
    };

    /// The wait before retry `attempt` (0 for the first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        self.first
            .saturating_mul(2u32.saturating_pow(attempt.min(16)))
            .min(self.max_delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_and_cap() {
        let b = Backoff::JETSTREAM;
        assert_eq!(b.delay(0), Duration::from_millis(250));
        assert_eq!(b.delay(2), Duration::from_secs(1));
        assert_eq!(b.delay(9), Duration::from_secs(2));
        let r = Backoff::RECONCILE;
        assert_eq!(r.delay(0), Duration::from_secs(5));
        assert_eq!(r.delay(1), Duration::from_secs(10));
        assert_eq!(r.delay(3), Duration::from_secs(40));
        assert_eq!(r.delay(29), Duration::from_secs(300));
        assert_eq!(r.delay(u32::MAX), Duration::from_secs(300));
    }
}
