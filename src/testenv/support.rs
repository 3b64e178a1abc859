//! What the integration tests share instead of each writing its own: a
//! control plane with the CRDs, and polling until a condition holds. Test
//! helpers panic with what they waited for and the last answer, which is what
//! a failing test should say.

use std::time::{Duration, Instant};

use super::ControlPlane;

/// A control plane with both CRDs applied and Established, and a client.
pub async fn plane_with_crds() -> (ControlPlane, kube::Client) {
    ControlPlane::start_with_crds()
        .await
        .unwrap_or_else(|e| panic!("control plane with CRDs: {e}"))
}

/// Calls `check` every `every` until it returns `Ok`; panics after `within`
/// with `what` and the last `Err`.
pub async fn poll<T>(
    what: &str,
    within: Duration,
    every: Duration,
    mut check: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let start = Instant::now();
    loop {
        match check().await {
            Ok(v) => return v,
            Err(e) if start.elapsed() > within => {
                panic!("{what} not reached within {within:?}: {e}")
            }
            Err(_) => tokio::time::sleep(every).await,
        }
    }
}

/// [`poll`] every 200 ms, the pace of the API-server tests.
pub async fn eventually<T>(
    what: &str,
    within: Duration,
    check: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    poll(what, within, Duration::from_millis(200), check).await
}
