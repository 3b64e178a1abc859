//! A JetStream API answer that is late, a request nobody answered for a
//! moment, a dropped connection: on a busy machine these happen to healthy
//! regions. They are retried within a bounded budget; a budget that runs out
//! ends the drill as inconclusive (a fault of the drill's reach, not of the
//! region), never as a failed claim.

use std::future::Future;
use std::time::Instant;

pub use crate::backoff::Backoff;

/// Whether an error may go away by asking again.
pub trait Transient {
    fn is_transient(&self) -> bool;
}

/// The budget ran out on an error that stayed transient.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{what}: {last} (still failing after {attempts} attempts over {seconds:.0}s)")]
pub struct Exhausted {
    pub what: String,
    pub last: String,
    pub attempts: u32,
    pub seconds: f64,
}

/// How a retried call ended without success.
#[derive(Debug)]
pub enum Retried<E> {
    /// The error says something about the region; asking again would not help.
    Permanent(E),
    Exhausted(Exhausted),
}

/// Calls `op` until it succeeds, fails permanently, or `backoff`'s budget is spent.
pub async fn retry<T, E, F, Fut>(what: &str, backoff: Backoff, mut op: F) -> Result<T, Retried<E>>
where
    E: Transient + std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let started = Instant::now();
    let mut attempt = 0u32;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if !e.is_transient() => return Err(Retried::Permanent(e)),
            Err(e) => {
                let delay = backoff.delay(attempt);
                attempt += 1;
                if started.elapsed() + delay >= backoff.budget {
                    return Err(Retried::Exhausted(Exhausted {
                        what: what.to_string(),
                        last: e.to_string(),
                        attempts: attempt,
                        seconds: started.elapsed().as_secs_f64(),
                    }));
                }
                tracing::debug!(what, attempt, error = %e, "transient; retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Words async-nats and the JetStream API use for a request that did not get
/// through, whatever call made it. Typed kinds differ per call in async-nats;
/// their messages share these.
pub fn looks_transient(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "timed out",
        "timeout",
        "no responders",
        "disconnected",
        "connection closed",
        "broken pipe",
        "connection reset",
        "jetstream not ready",
    ]
    .iter()
    .any(|w| m.contains(w))
}

impl Transient for crate::nats::provision::ProvisionError {
    fn is_transient(&self) -> bool {
        use crate::nats::provision::ProvisionError as P;
        // Through the source's domain, "no responders" is configuration (a
        // wrong domain, a link that never came up), which the precondition
        // must name; inside the zone it is a moment without a meta leader.
        match self {
            P::NoAnswer { reason, .. } => looks_transient(reason),
            P::SourceUnreachable { reason, .. } => {
                looks_transient(reason) && !reason.contains("no responders")
            }
            _ => false,
        }
    }
}

impl Transient for crate::nats::state::StateError {
    fn is_transient(&self) -> bool {
        matches!(self, crate::nats::state::StateError::NoAnswer { .. })
            || matches!(self, crate::nats::state::StateError::Api { reason, .. } if looks_transient(reason))
    }
}

/// The API server did not answer, or answered that it is overloaded or
/// failing. A refusal (the object or its namespace gone, forbidden, invalid)
/// will not change by asking again.
impl Transient for kube::Error {
    fn is_transient(&self) -> bool {
        !matches!(self, kube::Error::Api(s) if (400..500).contains(&s.code) && s.code != 429)
    }
}

impl Transient for super::consumer::ConsumerError {
    fn is_transient(&self) -> bool {
        looks_transient(&self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    #[derive(Debug)]
    struct E(bool);
    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "e{}", self.0)
        }
    }
    impl Transient for E {
        fn is_transient(&self) -> bool {
            self.0
        }
    }

    const FAST: Backoff = Backoff {
        first: Duration::from_millis(1),
        max_delay: Duration::from_millis(4),
        budget: Duration::from_millis(200),
    };

    #[tokio::test]
    async fn transient_errors_are_retried_until_success() {
        let calls = AtomicU32::new(0);
        let r: Result<u32, _> = retry("x", FAST, || async {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            if n < 3 { Err(E(true)) } else { Ok(n) }
        })
        .await;
        assert_eq!(r.ok(), Some(3));
    }

    #[tokio::test]
    async fn permanent_errors_return_at_once() {
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = retry("x", FAST, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(E(false))
        })
        .await;
        assert!(matches!(r, Err(Retried::Permanent(E(false)))));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_budget_bounds_a_transient_error() {
        let r: Result<(), _> = retry("stream info", FAST, || async { Err(E(true)) }).await;
        match r {
            Err(Retried::Exhausted(e)) => {
                assert!(e.attempts > 3, "{e:?}");
                assert!(e.seconds < 0.3, "{e:?}");
                assert!(e.to_string().starts_with("stream info: etrue"), "{e}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn timeouts_and_missing_responders_look_transient() {
        assert!(looks_transient("request timed out: deadline has elapsed"));
        assert!(looks_transient("no responders"));
        assert!(!looks_transient("stream not found"));
    }
}
