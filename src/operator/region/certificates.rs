//! The region's certificates (`spec.tls`): with `Generated`, a CA kept in
//! `<region>-ca` (generated once) and one server certificate per managed zone
//! in `<region>-<zone>-tls`, reissued when its names change, when the CA
//! changed, or `renewBeforeDays` before it expires; with `Secrets`, the
//! user's Secrets, checked before any zone is configured to use them.
//!
//! Every Secret is in cert-manager's format (`tls.crt`, `tls.key`, `ca.crt`),
//! so the StatefulSets mount either kind the same way.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;

use super::names;
use super::object_meta::{meta, region_labels};
use super::secrets::{Found, Secrets};
use crate::api::{LeafnodeProxy, RegionMirror, TlsMode, ZoneSpec};
use crate::operator::error::{Error, Result};
use crate::operator::ssa;
use crate::tls::{self, CA_KEY, CERT_KEY, CertKeyPem, KEY_KEY};

const DAY: Duration = Duration::from_secs(86_400);

/// What the builders and the operator's connections need of the region's TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionTls {
    /// PEM of the CA every managed zone trusts and is verified with.
    pub ca: String,
    /// Per managed zone: the Secret its pods mount and a fingerprint of the
    /// certificate in it, so a renewed certificate rolls the zone's pods onto it.
    pub zone_secrets: BTreeMap<String, ZoneCertificate>,
    /// `Generated`: the CA itself, so a drill's temporary zone can get a
    /// certificate of the region's CA.
    pub issuer: Option<CertKeyPem>,
    /// Per external zone with `external.caSecret`: the CA its URL is verified with.
    pub external_cas: BTreeMap<String, String>,
    /// Managed mirror zones whose leafnode link cannot trust the source
    /// zone's certificate, with why: shown as the zone's error, and a drill
    /// refuses to start on such a region.
    pub untrusted: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneCertificate {
    pub secret: String,
    pub fingerprint: String,
}

impl ZoneCertificate {
    fn new(secret: &str, cert_pem: &str) -> Self {
        Self {
            secret: secret.to_string(),
            fingerprint: format!("{:016x}", xxhash_rust::xxh3::xxh3_64(cert_pem.as_bytes())),
        }
    }
}

impl RegionTls {
    /// The CA a zone is verified with: the region's for a managed zone, the
    /// zone's own for an external one (`None`: plaintext or the system's roots).
    pub fn ca_for(&self, zone: &ZoneSpec) -> Option<&str> {
        match &zone.external {
            Some(_) => self.external_cas.get(&zone.name).map(String::as_str),
            None => Some(&self.ca),
        }
    }
}

/// The names zone `zone`'s certificate must carry.
pub fn zone_names(region: &RegionMirror, namespace: &str, zone: &ZoneSpec) -> Vec<String> {
    names::certificate_names(
        namespace,
        &region.name_any(),
        &zone.name,
        zone.is_source(),
        region.spec.leafnode.proxy == LeafnodeProxy::Toxiproxy,
    )
}

/// Reads (or issues) the region's certificates. `None`: `tls.mode: Disabled`
/// and no external zone with a CA.
pub async fn ensure(
    client: &kube::Client,
    secrets: &Secrets<'_>,
    region: &RegionMirror,
) -> Result<Option<RegionTls>> {
    let ns = region
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let mut external_cas = BTreeMap::new();
    for zone in &region.spec.zones {
        if let Some(secret) = zone.external.as_ref().and_then(|e| e.ca_secret.as_ref()) {
            let s = require(secrets, secret, "zones[].external.caSecret").await?;
            super::secrets::require_external_opt_in(&s, &ns, secret, "zones[].external.caSecret")?;
            let ca = key(&s, secret, CA_KEY, "zones[].external.caSecret")?;
            check_certs(&ca, secret, "zones[].external.caSecret")?;
            external_cas.insert(zone.name.clone(), ca);
        }
    }
    let managed: Vec<&ZoneSpec> = region
        .spec
        .zones
        .iter()
        .filter(|z| z.external.is_none())
        .collect();
    let (ca, zone_secrets, issuer, untrusted) = match region.spec.tls.mode {
        TlsMode::Disabled if external_cas.is_empty() => return Ok(None),
        TlsMode::Disabled => (String::new(), BTreeMap::new(), None, BTreeMap::new()),
        // Only external zones: no server of the region to give a certificate.
        TlsMode::Generated if managed.is_empty() => {
            (String::new(), BTreeMap::new(), None, BTreeMap::new())
        }
        // One CA signs and is trusted by every zone: nothing to cross-check.
        TlsMode::Generated => {
            let (ca, zones) = generated(client, secrets, region, &ns, &managed).await?;
            (ca.cert.clone(), zones, Some(ca), BTreeMap::new())
        }
        TlsMode::Secrets => {
            let (ca, zones, mounted) = user_secrets(secrets, region, &ns, &managed).await?;
            let untrusted = untrusted_links(region, &ns, &mounted, Timestamp::now());
            (ca, zones, None, untrusted)
        }
    };
    Ok(Some(RegionTls {
        ca,
        zone_secrets,
        issuer,
        external_cas,
        untrusted,
    }))
}

async fn generated(
    client: &kube::Client,
    api: &Secrets<'_>,
    region: &RegionMirror,
    ns: &str,
    zones: &[&ZoneSpec],
) -> Result<(CertKeyPem, BTreeMap<String, ZoneCertificate>)> {
    let name = region.name_any();
    let spec = &region.spec.tls;
    let validity = DAY * spec.validity_days.max(1) as u32;
    let renew_before = DAY * spec.renew_before_days.max(0) as u32;
    let now = Timestamp::now();
    let ca_name = names::ca_secret(&name);
    let found = api
        .get_or_create(&ca_name, || {
            let ca = tls::issue_ca(
                &format!("natsregion region {ns}/{name}"),
                now,
                validity * 10,
            )
            .map_err(|e| invalid(&ca_name, "generated by the operator", e))?;
            certificate_secret(region, &ca_name, &ca, &ca.cert)
        })
        .await?;
    if let Found::Existing(s) = &found
        && !owned_by(s, region)
    {
        return Err(Error::Certificate {
            secret: ca_name,
            field: "generated by the operator",
            reason: "exists but is not the operator's for this region (no owner reference to it); the operator keeps the region's CA under this name: rename that Secret, or set tls.mode: Secrets".to_string(),
        });
    }
    let ca = CertKeyPem {
        cert: key(
            found.secret(),
            &ca_name,
            CERT_KEY,
            "generated by the operator",
        )?,
        key: key(
            found.secret(),
            &ca_name,
            KEY_KEY,
            "generated by the operator",
        )?,
    };
    let mut zone_secrets = BTreeMap::new();
    for zone in zones {
        let secret = names::zone_tls_secret(&name, &zone.name);
        let wanted = zone_names(region, ns, zone);
        let issue = || {
            tls::issue_server(&ca, &zone.name, &wanted, now, validity)
                .map_err(|e| invalid(&secret, "generated by the operator", e))
        };
        // Logged once stored: a certificate issued for a create that found
        // the Secret already there is dropped.
        let issued = || tracing::info!(region = %name, zone = %zone.name, secret, "issued a zone certificate");
        let found = api
            .get_or_create(&secret, || {
                certificate_secret(region, &secret, &issue()?, &ca.cert)
            })
            .await?;
        let cert = match found {
            Found::Created(s) => {
                issued();
                key(&s, &secret, CERT_KEY, "generated")?
            }
            Found::Existing(s) if still_good(&s, &secret, &ca.cert, &wanted, now, renew_before) => {
                key(&s, &secret, CERT_KEY, "generated")?
            }
            // Renamed, of another CA, or due: reissued in place.
            Found::Existing(_) => {
                let cert = issue()?;
                ssa::apply(
                    client,
                    &certificate_secret(region, &secret, &cert, &ca.cert)?,
                )
                .await?;
                issued();
                cert.cert
            }
        };
        zone_secrets.insert(zone.name.clone(), ZoneCertificate::new(&secret, &cert));
    }
    Ok((ca, zone_secrets))
}

/// A generated zone certificate is kept while it carries exactly the names
/// wanted, chains to the current CA, and is not due for renewal.
fn still_good(
    secret: &Secret,
    name: &str,
    ca: &str,
    wanted: &[String],
    now: Timestamp,
    renew_before: Duration,
) -> bool {
    let Ok(cert) = key(secret, name, CERT_KEY, "generated") else {
        return false;
    };
    let Ok(info) = tls::read_cert(&cert) else {
        return false;
    };
    info.names == wanted
        && !info.renewal_due(now, renew_before)
        && key(secret, name, CA_KEY, "generated").is_ok_and(|c| c == ca)
        && tls::verify_server(ca, &cert, &concrete(&wanted[0]), now).is_ok()
}

/// A name a wildcard covers, to verify it: `*.h` -> `x.h`.
fn concrete(name: &str) -> String {
    match name.strip_prefix("*.") {
        Some(rest) => format!("x.{rest}"),
        None => name.to_string(),
    }
}

async fn user_secrets(
    api: &Secrets<'_>,
    region: &RegionMirror,
    ns: &str,
    zones: &[&ZoneSpec],
) -> Result<(
    String,
    BTreeMap<String, ZoneCertificate>,
    BTreeMap<String, Mounted>,
)> {
    let spec = &region.spec.tls;
    let ca_field = "tls.caSecret";
    let ca_name = spec
        .ca_secret
        .as_deref()
        .ok_or(Error::MissingField("spec.tls.caSecret"))?;
    let ca = key(
        &require(api, ca_name, ca_field).await?,
        ca_name,
        CA_KEY,
        ca_field,
    )?;
    check_certs(&ca, ca_name, ca_field)?;
    let now = Timestamp::now();
    let field = "tls.zoneSecrets[].secretName";
    let mut zone_secrets = BTreeMap::new();
    let mut mounted = BTreeMap::new();
    for zone in zones {
        let secret = spec
            .zone_secret(&zone.name)
            .ok_or(Error::MissingField("spec.tls.zoneSecrets"))?;
        let s = require(api, secret, field).await?;
        let pair = CertKeyPem {
            cert: key(&s, secret, CERT_KEY, field)?,
            key: key(&s, secret, KEY_KEY, field)?,
        };
        tls::inspect::check_pair(&pair, &format!("zone {}", zone.name))
            .map_err(|e| invalid(secret, field, e))?;
        // Every name the zone is dialed at, checked now rather than seen
        // later as handshakes failing between the zones.
        let missing: Vec<String> = zone_names(region, ns, zone)
            .into_iter()
            .filter(|n| tls::verify_server(&ca, &pair.cert, &concrete(n), now).is_err())
            .collect();
        if !missing.is_empty() {
            let why = tls::verify_server(&ca, &pair.cert, &concrete(&missing[0]), now)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            return Err(Error::Certificate {
                secret: secret.to_string(),
                field,
                reason: format!(
                    "the certificate of zone {} is not valid under {ca_name}'s ca.crt for {} ({why}): issue it for those names (a cert-manager Certificate's dnsNames) by that CA",
                    zone.name,
                    missing.join(", ")
                ),
            });
        }
        zone_secrets.insert(zone.name.clone(), ZoneCertificate::new(secret, &pair.cert));
        mounted.insert(
            zone.name.clone(),
            Mounted {
                secret: secret.to_string(),
                cert: pair.cert,
                ca: key(&s, secret, CA_KEY, field)?,
            },
        );
    }
    Ok((ca, zone_secrets, mounted))
}

/// What a zone's pods see in their certificate Secret: their certificate and
/// the CA (`ca.crt`) they verify their peers with.
#[derive(Clone, Debug)]
pub struct Mounted {
    pub secret: String,
    pub cert: String,
    pub ca: String,
}

/// Mirror zones whose leafnode remote would refuse the source's certificate:
/// each verifies it against its own Secret's `ca.crt` for the host it dials
/// (the leafnode Service, or the Toxiproxy Service), exactly as nats-server
/// will. A mismatch would otherwise only show as a mirror that never syncs,
/// with the reason in the servers' logs. Pure.
pub fn untrusted_links(
    region: &RegionMirror,
    namespace: &str,
    mounted: &BTreeMap<String, Mounted>,
    now: Timestamp,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(source) = region.spec.source_zone().filter(|s| s.external.is_none()) else {
        return out;
    };
    let Some(hub) = mounted.get(&source.name) else {
        return out;
    };
    let name = region.name_any();
    let dialed = if region.spec.leafnode.proxy == LeafnodeProxy::Toxiproxy {
        names::toxiproxy_host(namespace, &name)
    } else {
        names::leafnode_host(namespace, &name, &source.name)
    };
    for zone in region.spec.mirror_zones().filter(|z| z.external.is_none()) {
        let Some(m) = mounted.get(&zone.name) else {
            continue;
        };
        if let Err(e) = tls::verify_server(&m.ca, &hub.cert, &dialed, now) {
            out.insert(
                zone.name.clone(),
                format!(
                    "TLS: the leafnode link to source zone {} cannot be trusted ({e}): this zone verifies {dialed} with ca.crt of Secret {}, which did not sign tls.crt of Secret {}; give both Secrets the CA of tls.caSecret",
                    source.name, m.secret, hub.secret
                ),
            );
        }
    }
    out
}

/// A certificate for a drill's temporary zone `zone` (`Generated` only; with
/// `Secrets` the user's `tls.zoneSecrets` entry names it): the Secret, owned by
/// the region here, re-owned by the drill with the zone's other objects.
pub fn temporary_zone_secret(
    tls: &RegionTls,
    region: &RegionMirror,
    namespace: &str,
    zone: &ZoneSpec,
) -> Result<Option<Secret>> {
    let Some(ca) = &tls.issuer else {
        return Ok(None);
    };
    let secret = names::zone_tls_secret(&region.name_any(), &zone.name);
    let validity = DAY * region.spec.tls.validity_days.max(1) as u32;
    let cert = tls::issue_server(
        ca,
        &zone.name,
        &zone_names(region, namespace, zone),
        Timestamp::now(),
        validity,
    )
    .map_err(|e| invalid(&secret, "generated by the operator", e))?;
    certificate_secret(region, &secret, &cert, &ca.cert).map(Some)
}

/// A Secret in cert-manager's format, owned by the region.
pub fn certificate_secret(
    region: &RegionMirror,
    name: &str,
    pair: &CertKeyPem,
    ca: &str,
) -> Result<Secret> {
    Ok(Secret {
        metadata: meta(region, name.to_string(), region_labels(&region.name_any()))?,
        data: Some(BTreeMap::from([
            (
                CERT_KEY.to_string(),
                ByteString(pair.cert.clone().into_bytes()),
            ),
            (
                KEY_KEY.to_string(),
                ByteString(pair.key.clone().into_bytes()),
            ),
            (CA_KEY.to_string(), ByteString(ca.as_bytes().to_vec())),
        ])),
        type_: Some("kubernetes.io/tls".to_string()),
        ..Default::default()
    })
}

fn owned_by(secret: &Secret, region: &RegionMirror) -> bool {
    let uid = region.uid();
    secret
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| Some(&o.uid) == uid.as_ref())
}

async fn require(api: &Secrets<'_>, name: &str, field: &'static str) -> Result<Secret> {
    api.get(name).await?.ok_or_else(|| Error::Certificate {
        secret: name.to_string(),
        field,
        reason: format!(
            "not found: create it (keys {CERT_KEY}, {KEY_KEY}, {CA_KEY}, as cert-manager writes them) or set tls.mode to Generated"
        ),
    })
}

fn key(secret: &Secret, name: &str, key: &str, field: &'static str) -> Result<String> {
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| b.0.clone())
        .ok_or_else(|| Error::Certificate {
            secret: name.to_string(),
            field,
            reason: format!("has no key {key:?}: add it (PEM)"),
        })?;
    String::from_utf8(bytes).map_err(|_| Error::Certificate {
        secret: name.to_string(),
        field,
        reason: format!("key {key:?} is not PEM text"),
    })
}

fn check_certs(pem: &str, name: &str, field: &'static str) -> Result<()> {
    tls::read_cert(pem)
        .map(|_| ())
        .map_err(|e| invalid(name, field, e))
}

fn invalid(secret: &str, field: &'static str, e: tls::TlsError) -> Error {
    Error::Certificate {
        secret: secret.to_string(),
        field,
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mirror_whose_ca_did_not_sign_the_source_is_named_with_the_reason() {
        let region: RegionMirror = serde_json::from_value(serde_json::json!({
            "apiVersion": "natsregion.io/v1alpha1",
            "kind": "RegionMirror",
            "metadata": {"name": "r", "namespace": "ns"},
            "spec": {
                "stream": {"name": "S", "subjects": ["s.>"], "replicas": 1},
                "zones": [
                    {"name": "a", "role": "source", "servers": 1},
                    {"name": "b", "role": "mirror", "servers": 1},
                    {"name": "c", "role": "mirror", "servers": 1},
                ],
            },
        }))
        .unwrap();
        let now = Timestamp::now();
        let (right, wrong) = (
            tls::issue_ca("right", now, DAY).unwrap(),
            tls::issue_ca("wrong", now, DAY).unwrap(),
        );
        let zone = |z: &ZoneSpec, ca: &CertKeyPem| Mounted {
            secret: format!("r-{}-cert", z.name),
            cert: tls::issue_server(&right, &z.name, &zone_names(&region, "ns", z), now, DAY)
                .unwrap()
                .cert,
            ca: ca.cert.clone(),
        };
        let spec = &region.spec;
        let mounted = BTreeMap::from([
            ("a".to_string(), zone(spec.zone("a").unwrap(), &right)),
            ("b".to_string(), zone(spec.zone("b").unwrap(), &wrong)),
            ("c".to_string(), zone(spec.zone("c").unwrap(), &right)),
        ]);
        let untrusted = untrusted_links(&region, "ns", &mounted, now);
        assert_eq!(untrusted.keys().collect::<Vec<_>>(), ["b"], "{untrusted:?}");
        let why = &untrusted["b"];
        assert!(why.starts_with("TLS: "), "{why}");
        assert!(why.contains("UnknownIssuer"), "{why}");
        assert!(
            why.contains("r-a-leaf.ns.svc"),
            "names the host it dials: {why}"
        );
        assert!(
            why.contains("r-b-cert") && why.contains("r-a-cert"),
            "{why}"
        );
    }

    #[test]
    fn a_generated_certificate_is_reissued_when_due_renamed_or_of_another_ca() {
        let mut region = RegionMirror::new(
            "r",
            serde_json::from_value(serde_json::json!({
                "stream": {"name": "S", "subjects": ["s.>"]},
                "zones": [{"name": "a", "role": "source"}],
            }))
            .unwrap(),
        );
        region.metadata.uid = Some("uid-r".to_string());
        let now = Timestamp::now();
        let ca = tls::issue_ca("r", now, 10 * DAY).unwrap();
        let names = vec!["*.r-a.ns.svc".to_string(), "r-a-leaf.ns.svc".to_string()];
        let cert = tls::issue_server(&ca, "a", &names, now, 2 * DAY).unwrap();
        let secret = certificate_secret(&region, "r-a-tls", &cert, &ca.cert).unwrap();
        let good = |names: &[String], ca: &str, at: Timestamp| {
            still_good(&secret, "r-a-tls", ca, names, at, DAY)
        };
        assert!(
            good(&names, &ca.cert, now),
            "fresh, same names, same CA: kept"
        );
        // Within renewBefore of expiry (2 days of life, renewed 1 day before).
        assert!(!good(
            &names,
            &ca.cert,
            now + Duration::from_secs(86_400 + 60)
        ));
        // A name more (the region switched to leafnode.proxy: toxiproxy).
        let more = [names.clone(), vec!["r-toxiproxy.ns.svc".to_string()]].concat();
        assert!(!good(&more, &ca.cert, now));
        // The CA was replaced.
        let other = tls::issue_ca("r", now, 10 * DAY).unwrap();
        assert!(!good(&names, &other.cert, now));
    }
}
