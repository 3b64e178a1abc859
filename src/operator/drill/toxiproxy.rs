//! The toxiproxy backend as the operator uses it: the proxies already exist,
//! created by whoever wired the mirror zones' leafnode remotes through them
//! (the region controller for `spec.leafnode.proxy: toxiproxy`, see
//! `operator::region::toxiproxy`; or whoever runs external zones), named
//! `<prefix>-<zone>-s<n>`. [`ToxiproxyBackend::adopt`] finds them by name, so
//! any operator process, a restarted one included, can cut, heal, probe,
//! list and shape them.

use crate::api::{LeafnodeProxy, RegionMirror};
use crate::fault::ToxiproxyBackend;
use crate::operator::toxiproxy::api_url;

/// An existing Toxiproxy: its API and the prefix of the proxies to drive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToxiproxyTarget {
    pub api: String,
    pub prefix: String,
}

impl ToxiproxyTarget {
    /// The Toxiproxy the region controller deploys for `region` in `namespace`.
    pub fn in_cluster(namespace: &str, region: &str) -> Self {
        Self {
            api: api_url(namespace, region),
            prefix: region.to_string(),
        }
    }

    /// A backend driving the proxies under the prefix.
    pub fn backend(&self) -> ToxiproxyBackend {
        ToxiproxyBackend::adopt(&self.api, &self.prefix)
    }
}

/// A `toxiproxy` drill needs the region's links to run through a proxy;
/// otherwise disabling proxies cuts nothing and the drill could only report
/// a leak. The message names the field to set.
pub fn precondition(region: &RegionMirror) -> Result<(), String> {
    if region.spec.leafnode.proxy == LeafnodeProxy::Toxiproxy {
        return Ok(());
    }
    Err(format!(
        "fault.backend toxiproxy needs RegionMirror {}'s leafnode links to run through a Toxiproxy: set spec.leafnode.proxy: toxiproxy on the region (or use fault.backend networkPolicy)",
        kube::ResourceExt::name_any(region)
    ))
}

/// Every zone in `zones` has proxies at the target now (the API answers and
/// lists `<prefix>-<zone>-s<n>`), so a cut will not fail half way in.
pub async fn proxies_ready(target: &ToxiproxyTarget, zones: &[String]) -> Result<(), String> {
    let found = target
        .backend()
        .zones()
        .await
        .map_err(|e| format!("the region's Toxiproxy: {e}"))?;
    let missing: Vec<&str> = zones
        .iter()
        .filter(|z| !found.contains(z))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "the Toxiproxy at {} has no proxies (named {}-<zone>-s<n>) for zone(s) {}: their leafnode links do not run through it (yet)",
        target.api,
        target.prefix,
        missing.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_in_cluster_target_is_the_regions_toxiproxy() {
        let t = ToxiproxyTarget::in_cluster("ns", "east");
        assert_eq!(t.api, "http://east-toxiproxy.ns.svc:8474");
        assert_eq!(t.prefix, "east");
    }

    #[test]
    fn a_region_without_the_proxy_is_refused_naming_the_field() {
        let mut region: RegionMirror = serde_json::from_value(serde_json::json!({
            "apiVersion": "natsregion.io/v1alpha1",
            "kind": "RegionMirror",
            "metadata": {"name": "east", "namespace": "ns"},
            "spec": {
                "stream": {"name": "EVENTS", "subjects": ["events.>"]},
                "zones": [{"name": "a", "role": "source"}, {"name": "b", "role": "mirror"}],
            },
        }))
        .unwrap();
        let e = precondition(&region).unwrap_err();
        assert!(e.contains("spec.leafnode.proxy: toxiproxy"), "{e}");
        region.spec.leafnode.proxy = LeafnodeProxy::Toxiproxy;
        assert!(precondition(&region).is_ok());
    }
}
