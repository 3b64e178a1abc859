//! Names and in-cluster addresses of a region's child objects. One place, so
//! the builders, the pruning and the NATS dialing agree.

/// StatefulSet, its headless Service (route DNS) and the PodDisruptionBudget.
pub fn statefulset(region: &str, zone: &str) -> String {
    format!("{region}-{zone}")
}
pub fn headless_service(region: &str, zone: &str) -> String {
    statefulset(region, zone)
}
pub fn pdb(region: &str, zone: &str) -> String {
    statefulset(region, zone)
}
pub fn client_service(region: &str, zone: &str) -> String {
    format!("{region}-{zone}-client")
}
/// Only the source zone has one: mirror zones dial it.
pub fn leafnode_service(region: &str, zone: &str) -> String {
    format!("{region}-{zone}-leaf")
}
pub fn config_map(region: &str, zone: &str) -> String {
    format!("{region}-{zone}-config")
}
/// The application credentials the operator generates when the spec names none.
pub fn generated_credentials(region: &str) -> String {
    format!("{region}-credentials")
}
/// The system account's user; always generated (users never need it).
pub fn system_credentials(region: &str) -> String {
    format!("{region}-system-credentials")
}
/// Pod `i` of the zone; also its nats `server_name` (unique in the namespace).
pub fn pod(region: &str, zone: &str, i: i32) -> String {
    format!("{}-{i}", statefulset(region, zone))
}
/// Stable DNS name of pod `i` through the headless Service.
pub fn pod_host(namespace: &str, region: &str, zone: &str, i: i32) -> String {
    format!(
        "{}.{}.{namespace}.svc",
        pod(region, zone, i),
        headless_service(region, zone)
    )
}
pub fn client_host(namespace: &str, region: &str, zone: &str) -> String {
    format!("{}.{namespace}.svc", client_service(region, zone))
}
pub fn leafnode_host(namespace: &str, region: &str, zone: &str) -> String {
    format!("{}.{namespace}.svc", leafnode_service(region, zone))
}
/// The region's Toxiproxy (`leafnode.proxy: toxiproxy`).
pub fn toxiproxy_name(region: &str) -> String {
    format!("{region}-toxiproxy")
}
/// `<region>-toxiproxy.<ns>.svc`.
pub fn toxiproxy_host(namespace: &str, region: &str) -> String {
    format!("{}.{namespace}.svc", toxiproxy_name(region))
}
/// The region's CA, generated (`tls.mode: Generated`).
pub fn ca_secret(region: &str) -> String {
    format!("{region}-ca")
}
/// Zone `zone`'s server certificate, generated (`tls.mode: Generated`).
pub fn zone_tls_secret(region: &str, zone: &str) -> String {
    format!("{}-tls", statefulset(region, zone))
}
/// The DNS name of a zone's certificate its cluster authorizes routes by
/// (`plan::TlsFiles::route_identity`): the wildcard for its pods, which no
/// other zone's or region's certificate carries.
pub fn route_identity(namespace: &str, region: &str, zone: &str) -> String {
    format!("*.{}.{namespace}.svc", headless_service(region, zone))
}
/// Every name a managed zone's servers are dialed at: each pod through the
/// headless Service (routes, the operator), the client Service, and for the
/// source zone its leafnode Service and, when mirrors dial through it, the
/// region's Toxiproxy (TLS passes through it untouched).
pub fn certificate_names(
    namespace: &str,
    region: &str,
    zone: &str,
    source: bool,
    toxiproxy: bool,
) -> Vec<String> {
    let headless = format!("{}.{namespace}.svc", headless_service(region, zone));
    let mut out = vec![
        // One wildcard covers every pod, so scaling the zone needs no new certificate.
        route_identity(namespace, region, zone),
        headless,
        client_host(namespace, region, zone),
    ];
    if source {
        out.push(leafnode_host(namespace, region, zone));
        if toxiproxy {
            out.push(toxiproxy_host(namespace, region));
        }
    }
    out
}

/// Why a managed zone may be unreachable from where the operator runs: the
/// zones' addresses above are in-cluster DNS names, which an operator started
/// outside the cluster (`natsregion run` on a laptop against kind) cannot
/// resolve. `None` inside a pod (the kubelet sets `KUBERNETES_SERVICE_HOST`).
pub fn outside_cluster_hint() -> Option<&'static str> {
    outside_cluster_hint_for(std::env::var_os("KUBERNETES_SERVICE_HOST").is_some())
}

fn outside_cluster_hint_for(in_pod: bool) -> Option<&'static str> {
    (!in_pod).then_some(
        "the operator runs outside the cluster (KUBERNETES_SERVICE_HOST is unset) and reaches \
         managed zones only at in-cluster DNS names (<service>.<namespace>.svc); run it in the \
         cluster (helm install charts/natsregion)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_a_pod_the_operator_says_why_managed_zones_are_unreachable() {
        assert!(outside_cluster_hint_for(true).is_none());
        let hint = outside_cluster_hint_for(false).expect("a hint outside a pod");
        assert!(hint.contains("outside the cluster"), "{hint}");
        assert!(hint.contains(".svc"), "{hint}");
    }

    /// The CRD refuses zone pairs that would share these names
    /// (`validate::ZONE_OBJECT_SUFFIXES`); a new suffix here must join it.
    #[test]
    fn zone_object_names_extend_the_statefulset_by_the_refused_suffixes() {
        use crate::api::validate::{RESERVED_ZONE_NAMES, ZONE_OBJECT_SUFFIXES};
        let base = statefulset("east", "b");
        for name in [
            client_service("east", "b"),
            leafnode_service("east", "b"),
            config_map("east", "b"),
            zone_tls_secret("east", "b"),
        ] {
            let suffix = name.strip_prefix(&base).expect("extends <region>-<zone>");
            assert!(ZONE_OBJECT_SUFFIXES.contains(&suffix), "{name}");
        }
        let region_object = toxiproxy_name("east");
        let zone = region_object.strip_prefix("east-").unwrap();
        assert!(RESERVED_ZONE_NAMES.contains(&zone), "{region_object}");
    }

    #[test]
    fn leafnode_host_is_the_leaf_service() {
        assert_eq!(leafnode_host("ns1", "east", "a"), "east-a-leaf.ns1.svc");
    }
}
