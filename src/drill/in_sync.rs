//! Waiting until every mirror (or aggregate) holds what its source does:
//! the catch-up figure is the time this wait returns after the heal.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

/// Each link's (head, position): the source's last sequence and what the
/// stream fed from it holds; `None` where a read failed.
pub type Positions = BTreeMap<String, (Option<u64>, Option<u64>)>;

/// How long one round of position reads may take. A stream whose leader
/// is being stepped down (the resume after a heal does that) answers no
/// stream info until a successor is elected, and waiting out the 5 s
/// request timeout would add those seconds to the catch-up figure. A round
/// that takes longer is dropped and read again.
pub const ROUND_TIMEOUT: Duration = Duration::from_secs(1);

/// Between two rounds.
const EVERY: Duration = Duration::from_millis(100);

/// Reads positions with `read` until every link is at its head or `limit`
/// passes; returns whether they all were, and each link's lag. The last
/// round (at the limit) is waited for however long it takes, so a slow
/// answer is never counted as lag.
pub async fn poll<F, Fut>(limit: Duration, mut read: F) -> (bool, BTreeMap<String, u64>)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Positions>,
{
    let deadline = Instant::now() + limit;
    loop {
        let last_round = Instant::now() >= deadline;
        let positions = if last_round {
            read().await
        } else {
            match tokio::time::timeout(ROUND_TIMEOUT, read()).await {
                Ok(p) => p,
                Err(_) => continue,
            }
        };
        let lags: BTreeMap<String, u64> = positions
            .iter()
            .map(|(link, (head, at))| {
                (
                    link.clone(),
                    head.unwrap_or(0).saturating_sub(at.unwrap_or(0)),
                )
            })
            .collect();
        let synced =
            lags.values().all(|l| *l == 0) && positions.values().all(|(_, at)| at.is_some());
        if synced || last_round {
            return (synced, lags);
        }
        tokio::time::sleep(EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn at(head: u64, position: u64) -> Positions {
        BTreeMap::from([("a->b".to_string(), (Some(head), Some(position)))])
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_that_never_answers_does_not_hold_the_wait() {
        let calls = AtomicUsize::new(0);
        let started = tokio::time::Instant::now();
        let wait = poll(Duration::from_secs(60), || {
            let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                if first {
                    // A stream without a leader: no answer before the
                    // request timeout.
                    std::future::pending::<()>().await;
                }
                at(5, 5)
            }
        });
        let (synced, lags) = tokio::time::timeout(Duration::from_secs(5), wait)
            .await
            .expect("a hung read held the wait past a request timeout");
        assert!(synced);
        assert_eq!(lags["a->b"], 0);
        assert!(
            started.elapsed() <= ROUND_TIMEOUT + EVERY,
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn lag_is_what_the_source_holds_beyond_the_stream_and_an_unread_position_is_not_synced() {
        let (synced, lags) = poll(Duration::ZERO, || async { at(7, 4) }).await;
        assert!(!synced);
        assert_eq!(lags["a->b"], 3);
        let unread = || async { BTreeMap::from([("a->b".to_string(), (Some(0), None))]) };
        let (synced, _) = poll(Duration::ZERO, unread).await;
        assert!(
            !synced,
            "a stream whose position could not be read is not in sync"
        );
    }
}
