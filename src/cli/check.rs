//! `natsregion check`: what the chart's `helm test` Pod runs, in the
//! operator's own image (no other image needed where no registry is
//! reachable). Checks that both CRDs are served (a list of each, in the
//! namespace given) and, when given, that the operator's `/readyz` answers.

use std::time::Duration;

use kube::Api;
use kube::api::ListParams;

use crate::api::{PartitionDrill, RegionMirror};

#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    /// Namespace to list in; `None`: every namespace.
    pub namespace: Option<String>,
    /// The operator's readiness URL (through its metrics Service).
    pub ready_url: Option<String>,
}

/// One line per check passed; the first failure, said for a person.
pub async fn run(client: kube::Client, opts: &CheckOptions) -> Result<Vec<String>, String> {
    let mut passed = Vec::new();
    let one = ListParams::default().limit(1);
    let (regions, drills): (Api<RegionMirror>, Api<PartitionDrill>) = match &opts.namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client, ns),
        ),
        None => (Api::all(client.clone()), Api::all(client)),
    };
    let scope = opts.namespace.as_deref().unwrap_or("every namespace");
    regions.list(&one).await.map_err(|e| {
        format!("RegionMirrors cannot be listed in {scope} (is the CRD installed?): {e}")
    })?;
    passed.push(format!("RegionMirrors are served ({scope})"));
    drills.list(&one).await.map_err(|e| {
        format!("PartitionDrills cannot be listed in {scope} (is the CRD installed?): {e}")
    })?;
    passed.push(format!("PartitionDrills are served ({scope})"));
    if let Some(url) = &opts.ready_url {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        let status = http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("the operator's {url} does not answer: {e}"))?
            .status();
        if !status.is_success() {
            return Err(format!(
                "the operator's {url} answers {status}: it is not ready (see its log)"
            ));
        }
        passed.push(format!("the operator is ready ({url})"));
    }
    Ok(passed)
}
