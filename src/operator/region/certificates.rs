//! The region's certificates (`spec.tls`): with `Generated`, a CA kept in
//! `<region>-ca` and rotated before it expires (`tls::rotation`), and one
//! server certificate per managed zone in `<region>-<zone>-tls`, reissued
//! when its names change, when another CA signs, or `renewBeforeDays` before
//! it expires; with `Secrets`, the user's Secrets, checked before any zone is
//! configured to use them.
//!
//! Every Secret is in cert-manager's format (`tls.crt`, `tls.key`, `ca.crt`),
//! so the StatefulSets mount either kind the same way.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;

use super::names;
use super::object_meta::{meta, region_labels};
use super::secrets::{Found, Secrets};
use crate::api::{
    LeafnodeProxy, RegionMirror, TlsMode, TlsStatus, ZoneCertificateStatus, ZoneSpec,
};
use crate::operator::error::{Error, Result};
use crate::operator::ssa;
use crate::tls::rotation::{self, CaSet, Policy, Step, ZoneView};
use crate::tls::{self, CA_KEY, CERT_KEY, CertKeyPem, KEY_KEY};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Keys of the CA Secret holding a CA introduced by a rotation that does not
/// sign yet (`tls.crt`/`tls.key` is the signing CA, `ca.crt` the bundle).
const NEXT_CERT_KEY: &str = "next.crt";
const NEXT_KEY_KEY: &str = "next.key";

/// Pod template annotation carrying a fingerprint of the zone's certificate
/// and `ca.crt`: a renewed certificate or a changed bundle rolls the pods
/// onto it, and a CA rotation moves on once they all run it.
pub const CERTIFICATE_HASH: &str = "natsregion.io/certificate-hash";

const DAY: Duration = Duration::from_secs(86_400);

/// What the builders and the operator's connections need of the region's TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionTls {
    /// PEM of the CA(s) every managed zone trusts and is verified with: two
    /// while a generated CA is being rotated.
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
    /// `Generated`: when each certificate expires (`ca`, `ca-next` during a
    /// rotation, `zone/<name>`), for the expiry metric.
    pub expiry: BTreeMap<String, Timestamp>,
    /// `Generated`: where a rotation of the CA under way is.
    pub rotation: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneCertificate {
    pub secret: String,
    pub fingerprint: String,
}

impl ZoneCertificate {
    /// The fingerprint covers `ca.crt` too: a CA added to or dropped from
    /// the bundle must roll the pods as a new certificate does.
    fn new(secret: &str, cert_pem: &str, ca_pem: &str) -> Self {
        Self {
            secret: secret.to_string(),
            fingerprint: fingerprint(cert_pem, ca_pem),
        }
    }
}

fn fingerprint(cert_pem: &str, ca_pem: &str) -> String {
    format!(
        "{:016x}",
        xxhash_rust::xxh3::xxh3_64(format!("{cert_pem}\0{ca_pem}").as_bytes())
    )
}

impl RegionTls {
    /// `status.tls`: `None` unless the operator generates the certificates.
    pub fn status(&self) -> Option<TlsStatus> {
        self.issuer.as_ref()?;
        let at = |k: &str| self.expiry.get(k).copied().map(Time);
        Some(TlsStatus {
            ca_not_after: at("ca"),
            next_ca_not_after: at("ca-next"),
            rotation: self.rotation.clone(),
            zones: self
                .expiry
                .iter()
                .filter_map(|(k, t)| {
                    Some(ZoneCertificateStatus {
                        zone: k.strip_prefix("zone/")?.to_string(),
                        not_after: Time(*t),
                    })
                })
                .collect(),
        })
    }

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
    let (mut expiry, mut rotation) = (BTreeMap::new(), None);
    let (ca, zone_secrets, issuer, untrusted) = match region.spec.tls.mode {
        TlsMode::Disabled if external_cas.is_empty() => return Ok(None),
        TlsMode::Disabled => (String::new(), BTreeMap::new(), None, BTreeMap::new()),
        // Only external zones: no server of the region to give a certificate.
        TlsMode::Generated if managed.is_empty() => {
            (String::new(), BTreeMap::new(), None, BTreeMap::new())
        }
        // The CAs sign and are trusted by every zone: nothing to cross-check.
        TlsMode::Generated => {
            let (cas, zones, expires, rotating) =
                generated(client, secrets, region, &ns, &managed).await?;
            (expiry, rotation) = (expires, rotating);
            (cas.bundle, zones, Some(cas.signing), BTreeMap::new())
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
        expiry,
        rotation,
    }))
}

async fn generated(
    client: &kube::Client,
    api: &Secrets<'_>,
    region: &RegionMirror,
    ns: &str,
    zones: &[&ZoneSpec],
) -> Result<(
    CaSet,
    BTreeMap<String, ZoneCertificate>,
    BTreeMap<String, Timestamp>,
    Option<String>,
)> {
    let name = region.name_any();
    let spec = &region.spec.tls;
    let validity = DAY * spec.validity_days.max(1) as u32;
    let policy = Policy {
        validity,
        renew_before: DAY * spec.renew_before_days.max(0) as u32,
    };
    let now = Timestamp::now();
    let ca_name = names::ca_secret(&name);
    let field = "generated by the operator";
    // A new CA's name carries its start, so the old and the new one in a
    // bundle tell apart in `openssl x509` and the servers' logs.
    let new_ca = || {
        tls::issue_ca(
            &format!("natsregion region {ns}/{name} {}", now.as_second()),
            now,
            validity * 10,
        )
        .map_err(|e| invalid(&ca_name, field, e))
    };
    let found = api
        .get_or_create(&ca_name, || {
            ca_secret(region, &ca_name, &CaSet::single(new_ca()?))
        })
        .await?;
    if let Found::Existing(s) = &found
        && !owned_by(s, region)
    {
        return Err(Error::Certificate {
            secret: ca_name,
            field,
            reason: "exists but is not the operator's for this region (no owner reference to it); the operator keeps the region's CA under this name: rename that Secret, or set tls.mode: Secrets".to_string(),
        });
    }
    let stored = read_ca_set(found.secret(), &ca_name)?;

    // Whether the zones' pods rolled matters only while a rotation is under
    // way; the StatefulSets are read only then.
    let rotating = stored.next.is_some() || stored.trusted() > 1;
    let mut views = Vec::new();
    if rotating || rotation::ca_due(&stored.signing, now, policy) {
        let sets: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
        for zone in zones {
            let secret = names::zone_tls_secret(&name, &zone.name);
            let Some(s) = api.get(&secret).await? else {
                continue;
            };
            let (Ok(cert), Ok(ca)) = (
                key(&s, &secret, CERT_KEY, field),
                key(&s, &secret, CA_KEY, field),
            ) else {
                continue;
            };
            let sts_name = names::statefulset(&name, &zone.name);
            let rolled = rotating
                && sets
                    .get_opt(&sts_name)
                    .await
                    .map_err(|e| Error::kube(format!("read StatefulSet {sts_name}"), e))?
                    .is_some_and(|sts| rolled_onto(&sts, &fingerprint(&cert, &ca)));
            views.push(ZoneView {
                zone: zone.name.clone(),
                cert,
                ca,
                rolled,
            });
        }
    }
    let mut step = rotation::decide(&stored, &views, now, policy);
    if step.moves()
        && let Some(drill) = drill_on(client, ns, &name).await?
    {
        step = Step::Held(drill);
    }
    let cas = rotation::apply(&stored, &step, new_ca)?;
    if cas != stored {
        ssa::apply(client, &ca_secret(region, &ca_name, &cas)?).await?;
        tracing::info!(region = %name, step = ?step, "rotating the region's CA");
    } else if let Step::Wait(zones) = &step {
        tracing::debug!(region = %name, ?zones, "CA rotation waits for zones to roll");
    }

    let mut expiry = BTreeMap::new();
    for (label, ca) in [("ca", Some(&cas.signing)), ("ca-next", cas.next.as_ref())] {
        if let Some(info) = ca.and_then(|c| tls::read_cert(&c.cert).ok()) {
            expiry.insert(label.to_string(), info.not_after);
        }
    }
    let mut zone_secrets = BTreeMap::new();
    for zone in zones {
        let secret = names::zone_tls_secret(&name, &zone.name);
        let wanted = zone_names(region, ns, zone);
        let issue = || {
            tls::issue_server(&cas.signing, &zone.name, &wanted, now, validity)
                .map_err(|e| invalid(&secret, field, e))
        };
        // Logged once stored: a certificate issued for a create that found
        // the Secret already there is dropped.
        let issued = || tracing::info!(region = %name, zone = %zone.name, secret, "issued a zone certificate");
        let found = api
            .get_or_create(&secret, || {
                certificate_secret(region, &secret, &issue()?, &cas.bundle)
            })
            .await?;
        let cert = match found {
            Found::Created(s) => {
                issued();
                key(&s, &secret, CERT_KEY, "generated")?
            }
            Found::Existing(s) => match judge(&s, &secret, &cas, &wanted, now, policy.renew_before)
            {
                Verdict::Good => key(&s, &secret, CERT_KEY, "generated")?,
                // Same certificate and key, another trust bundle: only the
                // rotation moved, the certificate is kept.
                Verdict::Retrust(pair) => {
                    ssa::apply(
                        client,
                        &certificate_secret(region, &secret, &pair, &cas.bundle)?,
                    )
                    .await?;
                    pair.cert
                }
                // Renamed, of another CA, or due: reissued in place.
                Verdict::Reissue => {
                    let cert = issue()?;
                    ssa::apply(
                        client,
                        &certificate_secret(region, &secret, &cert, &cas.bundle)?,
                    )
                    .await?;
                    issued();
                    cert.cert
                }
            },
        };
        if let Ok(info) = tls::read_cert(&cert) {
            expiry.insert(format!("zone/{}", zone.name), info.not_after);
        }
        zone_secrets.insert(
            zone.name.clone(),
            ZoneCertificate::new(&secret, &cert, &cas.bundle),
        );
    }
    let rotation = rotation::describe(&cas, &step);
    Ok((cas, zone_secrets, expiry, rotation))
}

/// The drill that holds the region now.
async fn drill_on(client: &kube::Client, ns: &str, region: &str) -> Result<Option<String>> {
    let drills = super::drills::list(client, ns).await?;
    Ok(super::drills::holder(region, &drills).map(|d| d.name_any()))
}

/// The CA Secret's CAs. A Secret of before rotations (no bundle different
/// from `tls.crt`, no `next.*`) reads as a single CA.
fn read_ca_set(secret: &Secret, name: &str) -> Result<CaSet> {
    let field = "generated by the operator";
    let signing = CertKeyPem {
        cert: key(secret, name, CERT_KEY, field)?,
        key: key(secret, name, KEY_KEY, field)?,
    };
    let next = match (
        key(secret, name, NEXT_CERT_KEY, field),
        key(secret, name, NEXT_KEY_KEY, field),
    ) {
        (Ok(cert), Ok(key)) => Some(CertKeyPem { cert, key }),
        _ => None,
    };
    let bundle = key(secret, name, CA_KEY, field).unwrap_or_else(|_| signing.cert.clone());
    Ok(CaSet {
        signing,
        next,
        bundle,
    })
}

/// The CA Secret for `cas`: `tls.crt`/`tls.key` sign, `ca.crt` is the bundle
/// the zones trust, `next.*` a CA introduced but not signing yet.
fn ca_secret(region: &RegionMirror, name: &str, cas: &CaSet) -> Result<Secret> {
    let mut secret = certificate_secret(region, name, &cas.signing, &cas.bundle)?;
    if let (Some(next), Some(data)) = (&cas.next, secret.data.as_mut()) {
        data.insert(
            NEXT_CERT_KEY.to_string(),
            ByteString(next.cert.clone().into_bytes()),
        );
        data.insert(
            NEXT_KEY_KEY.to_string(),
            ByteString(next.key.clone().into_bytes()),
        );
    }
    Ok(secret)
}

/// Every pod of the StatefulSet runs a template with certificate
/// fingerprint `fingerprint`: the template carries it, the controller saw
/// that template, and the rollout onto it is complete.
fn rolled_onto(sts: &StatefulSet, fingerprint: &str) -> bool {
    let carries = sts
        .spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(CERTIFICATE_HASH))
        .is_some_and(|f| f == fingerprint);
    let Some(status) = &sts.status else {
        return false;
    };
    let replicas = sts.spec.replicas.unwrap_or(1);
    carries
        && status.observed_generation == sts.metadata.generation
        && status.updated_replicas == Some(replicas)
        && status.ready_replicas == Some(replicas)
        && status.current_revision.is_some()
        && status.current_revision == status.update_revision
}

enum Verdict {
    Good,
    Retrust(CertKeyPem),
    Reissue,
}

/// A generated zone certificate is kept while it carries exactly the names
/// wanted, is signed by the signing CA and is not due for renewal; its
/// Secret's `ca.crt` must be the bundle, else only that is rewritten.
fn judge(
    secret: &Secret,
    name: &str,
    cas: &CaSet,
    wanted: &[String],
    now: Timestamp,
    renew_before: Duration,
) -> Verdict {
    let (Ok(cert), Ok(key_pem)) = (
        key(secret, name, CERT_KEY, "generated"),
        key(secret, name, KEY_KEY, "generated"),
    ) else {
        return Verdict::Reissue;
    };
    let Ok(info) = tls::read_cert(&cert) else {
        return Verdict::Reissue;
    };
    let good = info.names == wanted
        && !info.renewal_due(now, renew_before)
        && tls::verify_server(
            &cas.signing.cert,
            &cert,
            &rotation::concrete(&wanted[0]),
            now,
        )
        .is_ok();
    match good {
        false => Verdict::Reissue,
        true if key(secret, name, CA_KEY, "generated").is_ok_and(|c| c == cas.bundle) => {
            Verdict::Good
        }
        true => Verdict::Retrust(CertKeyPem { cert, key: key_pem }),
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
            .filter(|n| tls::verify_server(&ca, &pair.cert, &rotation::concrete(n), now).is_err())
            .collect();
        if !missing.is_empty() {
            let why = tls::verify_server(&ca, &pair.cert, &rotation::concrete(&missing[0]), now)
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
        let ca_crt = key(&s, secret, CA_KEY, field)?;
        if let Some(reason) = lacks_route_identity(region, ns, zone, &pair.cert) {
            return Err(Error::Certificate {
                secret: secret.to_string(),
                field,
                reason,
            });
        }
        zone_secrets.insert(
            zone.name.clone(),
            ZoneCertificate::new(secret, &pair.cert, &ca_crt),
        );
        mounted.insert(
            zone.name.clone(),
            Mounted {
                secret: secret.to_string(),
                cert: pair.cert,
                ca: ca_crt,
            },
        );
    }
    Ok((ca, zone_secrets, mounted))
}

/// Why a user's zone certificate cannot authorize the zone's routes, if it
/// cannot: they are authorized by one DNS name matched literally
/// (`names::route_identity`, the pods' wildcard), so a certificate that
/// covers the pods one by one is valid for every name yet refused on every
/// route. Pure.
fn lacks_route_identity(
    region: &RegionMirror,
    namespace: &str,
    zone: &ZoneSpec,
    cert: &str,
) -> Option<String> {
    let identity = names::route_identity(namespace, &region.name_any(), &zone.name);
    let names = tls::read_cert(cert).map(|i| i.names).unwrap_or_default();
    (!names.contains(&identity)).then(|| {
        format!(
            "the certificate of zone {} lacks the DNS name {identity}, by which the zone's servers accept routes from each other only: add it to the certificate's names (a cert-manager Certificate's dnsNames)",
            zone.name
        )
    })
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
    certificate_secret(region, &secret, &cert, &tls.ca).map(Some)
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
        let verdict = |names: &[String], cas: &CaSet, at: Timestamp| {
            judge(&secret, "r-a-tls", cas, names, at, DAY)
        };
        let single = CaSet::single(ca.clone());
        assert!(
            matches!(verdict(&names, &single, now), Verdict::Good),
            "fresh, same names, same CA: kept"
        );
        // Within renewBefore of expiry (2 days of life, renewed 1 day before).
        assert!(matches!(
            verdict(&names, &single, now + Duration::from_secs(86_400 + 60)),
            Verdict::Reissue
        ));
        // A name more (the region switched to leafnode.proxy: toxiproxy).
        let more = [names.clone(), vec!["r-toxiproxy.ns.svc".to_string()]].concat();
        assert!(matches!(verdict(&more, &single, now), Verdict::Reissue));
        // Another CA signs.
        let other = tls::issue_ca("r", now, 10 * DAY).unwrap();
        assert!(matches!(
            verdict(&names, &CaSet::single(other.clone()), now),
            Verdict::Reissue
        ));
        // A rotation added a CA to the bundle: the same certificate and key,
        // only ca.crt rewritten.
        let both = rotation::apply(&single, &Step::Introduce, || Ok::<_, ()>(other)).unwrap();
        assert!(
            matches!(verdict(&names, &both, now), Verdict::Retrust(pair) if pair == cert),
            "kept, with the bundle"
        );
    }

    #[test]
    fn a_user_certificate_must_carry_the_route_identity_literally() {
        let region = RegionMirror::new(
            "r",
            serde_json::from_value(serde_json::json!({
                "stream": {"name": "S", "subjects": ["s.>"]},
                "zones": [{"name": "a", "role": "source", "servers": 2}],
            }))
            .unwrap(),
        );
        let zone = region.spec.zone("a").unwrap();
        let now = Timestamp::now();
        let ca = tls::issue_ca("r", now, DAY).unwrap();
        let issue = |names: &[String]| tls::issue_server(&ca, "a", names, now, DAY).unwrap().cert;
        let wanted = zone_names(&region, "ns", zone);
        assert_eq!(
            lacks_route_identity(&region, "ns", zone, &issue(&wanted)),
            None
        );
        // Each pod named instead of the wildcard: valid for every pod, but
        // no route would be accepted.
        let pods = ["r-a-0.r-a.ns.svc", "r-a-1.r-a.ns.svc", "r-a.ns.svc"].map(String::from);
        let cert = issue(&pods);
        tls::verify_server(&ca.cert, &cert, "r-a-1.r-a.ns.svc", now).unwrap();
        let why = lacks_route_identity(&region, "ns", zone, &cert).expect("refused");
        assert!(why.contains("lacks the DNS name *.r-a.ns.svc"), "{why}");
        assert!(why.contains("dnsNames"), "{why}");
    }

    #[test]
    fn a_zone_rolled_once_every_pod_runs_the_template_with_the_fingerprint() {
        let sts = |annotation: &str, updated: i32, current: &str| -> StatefulSet {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "r-a", "generation": 3},
                "spec": {
                    "replicas": 3,
                    "serviceName": "r-a",
                    "selector": {},
                    "template": {"metadata": {"annotations": {
                        CERTIFICATE_HASH: annotation,
                    }}},
                },
                "status": {
                    "replicas": 3, "observedGeneration": 3, "updatedReplicas": updated,
                    "readyReplicas": 3, "currentRevision": current, "updateRevision": "r-a-2",
                },
            }))
            .unwrap()
        };
        assert!(rolled_onto(&sts("f1", 3, "r-a-2"), "f1"));
        assert!(!rolled_onto(&sts("f0", 3, "r-a-2"), "f1"), "old template");
        assert!(!rolled_onto(&sts("f1", 2, "r-a-1"), "f1"), "mid-rollout");
    }
}
