//! Objects for the tests, in the style of Linkerd's `mk_pod`: the envelope
//! (apiVersion, kind, metadata, `regionRef`) built here once, the spec given
//! as the JSON a user would write in YAML, so CRD defaults apply as they do
//! for `kubectl apply` and each test shows only what it is about.

use serde_json::{Value, json};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::api::{PartitionDrill, RegionMirror, RegionMirrorSpec, ZoneSpec};

/// A RegionMirror named `name` (no namespace: the API picks the one it is
/// created in) with `spec`.
pub fn region(name: &str, spec: Value) -> RegionMirror {
    RegionMirror::new(name, region_spec(spec))
}

/// A region spec from JSON; panics with serde's message on a bad one.
pub fn region_spec(spec: Value) -> RegionMirrorSpec {
    serde_json::from_value(spec).expect("test region spec deserializes")
}

/// The spec most tests need: stream `EVENTS` on `events.>`, one replica
/// (zones of one server), and `zones`.
pub fn events_spec(zones: Value) -> Value {
    json!({
        "stream": {"name": "EVENTS", "subjects": ["events.>"], "replicas": 1},
        "zones": zones,
    })
}

/// A PartitionDrill named `name` on region `region`; `spec` is the rest of it.
pub fn drill(name: &str, region: &str, spec: Value) -> PartitionDrill {
    let mut spec = spec;
    if spec.is_null() {
        spec = json!({});
    }
    spec["regionRef"] = json!({"name": region});
    PartitionDrill::new(
        name,
        serde_json::from_value(spec).expect("test drill spec deserializes"),
    )
}

/// A zone as a spec lists it.
pub fn zone(spec: Value) -> ZoneSpec {
    serde_json::from_value(spec).expect("test zone deserializes")
}

/// The label a user puts on a Secret that an external zone may use
/// (`natsregion.io/external-credentials: "true"`).
pub fn external_opt_in() -> Option<std::collections::BTreeMap<String, String>> {
    use crate::meta::labels::{EXTERNAL_CREDENTIALS, EXTERNAL_CREDENTIALS_VALUE};
    Some(std::collections::BTreeMap::from([(
        EXTERNAL_CREDENTIALS.to_string(),
        EXTERNAL_CREDENTIALS_VALUE.to_string(),
    )]))
}

/// A credentials Secret in the format a region's `credentials.secretName`
/// names (keys `user` and `password`), labelled for use by external zones
/// ([`external_opt_in`]) as a user would label one for them.
pub fn credentials_secret(name: &str, user: &str, password: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: external_opt_in(),
            ..Default::default()
        },
        data: Some(
            [("user", user), ("password", password)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    }
}

/// A Secret holding only a CA certificate (`ca.crt`), as `external.caSecret`
/// reads it (labelled, [`external_opt_in`]).
pub fn ca_secret(name: &str, ca_pem: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: external_opt_in(),
            ..Default::default()
        },
        string_data: Some(std::collections::BTreeMap::from([(
            crate::tls::CA_KEY.to_string(),
            ca_pem.to_string(),
        )])),
        ..Default::default()
    }
}

/// A certificate Secret in cert-manager's format (`tls.crt`, `tls.key`, `ca.crt`).
pub fn tls_secret(name: &str, cert: &str, key: &str, ca: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".to_string()),
        data: Some(
            [
                (crate::tls::CERT_KEY, cert),
                (crate::tls::KEY_KEY, key),
                (crate::tls::CA_KEY, ca),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
            .collect(),
        ),
        ..Default::default()
    }
}

/// Region `name` (source `a`, mirror `b`) with `tls.mode: Secrets` whose
/// certificates are all valid under `tls.caSecret`, but whose mirror zone's
/// Secret carries a `ca.crt` that did not sign the source's certificate: b's
/// leafnode link would refuse the source. Returns the region and the Secrets
/// to create first, in namespace `ns`.
pub fn region_with_untrusted_mirror(ns: &str, name: &str) -> (RegionMirror, Vec<Secret>) {
    use crate::operator::region::names;
    let now = jiff::Timestamp::now();
    let day = std::time::Duration::from_secs(86_400);
    let right = crate::tls::issue_ca("right", now, day).expect("CA");
    let wrong = crate::tls::issue_ca("wrong", now, day).expect("CA");
    let mut secrets = vec![ca_secret(&format!("{name}-ca"), &right.cert)];
    for (zone, source, trusts) in [("a", true, &right), ("b", false, &wrong)] {
        let dns = names::certificate_names(ns, name, zone, source, false);
        let cert = crate::tls::issue_server(&right, zone, &dns, now, day).expect("certificate");
        secrets.push(tls_secret(
            &format!("{name}-{zone}-cert"),
            &cert.cert,
            &cert.key,
            &trusts.cert,
        ));
    }
    let region = self::region(
        name,
        json!({
            "stream": {"name": "EVENTS", "subjects": ["events.>"], "replicas": 1},
            "tls": {
                "mode": "Secrets",
                "caSecret": format!("{name}-ca"),
                "zoneSecrets": [
                    {"zone": "a", "secretName": format!("{name}-a-cert")},
                    {"zone": "b", "secretName": format!("{name}-b-cert")},
                ],
            },
            "zones": [
                {"name": "a", "role": "source", "servers": 1},
                {"name": "b", "role": "mirror", "servers": 1},
            ],
        }),
    );
    (region, secrets)
}

/// A drill file of a small, fast local drill: region and drill `name`, two
/// zones of one server (leafnode redial every second), a Toxiproxy cut held
/// `hold_seconds`, `messages` a phase at `rate` a second.
pub fn two_zone_drill_file(name: &str, hold_seconds: u32, messages: u32, rate: u32) -> String {
    format!(
        r#"apiVersion: natsregion.io/v1alpha1
kind: RegionMirror
metadata: {{name: {name}}}
spec:
  stream: {{name: EVENTS, subjects: ["events.>"], replicas: 1}}
  leafnode: {{reconnectIntervalSeconds: 1}}
  zones:
    - {{name: a, role: source, servers: 1}}
    - {{name: b, role: mirror, servers: 1}}
---
apiVersion: natsregion.io/v1alpha1
kind: PartitionDrill
metadata: {{name: {name}}}
spec:
  regionRef: {{name: {name}}}
  fault: {{backend: toxiproxy, holdSeconds: {hold_seconds}, deadlineSeconds: 60}}
  workload: {{messagesPerPhase: {messages}, ratePerSecond: {rate}}}
  timeouts: {{stepSeconds: 30, catchUpSeconds: 10}}
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_fill_the_envelope_and_keep_the_defaults() {
        let r = region(
            "east",
            events_spec(json!([{"name": "a", "role": "source"}, {"name": "b", "role": "mirror"}])),
        );
        assert_eq!(r.metadata.name.as_deref(), Some("east"));
        assert_eq!(r.spec.zones[0].servers, 3);
        let d = drill("d", "east", json!({"fault": {"holdSeconds": 3}}));
        assert_eq!(d.spec.region_ref.name, "east");
        assert_eq!(d.spec.fault.hold_seconds, 3);
        assert_eq!(drill("d", "east", Value::Null).spec.region_ref.name, "east");
        assert_eq!(zone(json!({"name": "j", "role": "mirror"})).name, "j");
    }
}
