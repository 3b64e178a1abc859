//! `RegionMirror`: one NATS region made of zones, each zone its own cluster,
//! wired with leafnodes and JetStream domains (see docs/architecture.md).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::validate::msg;

/// A region: one source zone that owns the stream producers write to, and
/// mirror zones that each hold a mirror of it and serve their own consumers.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "natsregion.io",
    version = "v1alpha1",
    kind = "RegionMirror",
    namespaced,
    status = "RegionMirrorStatus",
    shortname = "rmirror",
    category = "natsregion",
    cel,
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message(msg::REGION_NAME),
    validation = Rule::new("self.spec.zones.all(z, size(self.metadata.name) + size(z.name) <= 51)").message(msg::NAMES_FIT),
    printcolumn = r#"{"name":"Source","type":"string","jsonPath":".status.sourceZone"}"#,
    printcolumn = r#"{"name":"Zones Ready","type":"string","jsonPath":".status.zonesReady"}"#,
    printcolumn = r#"{"name":"In Sync","type":"string","jsonPath":".status.mirrorsInSync"}"#,
    printcolumn = r#"{"name":"Max Lag","type":"integer","jsonPath":".status.maxLag"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(
    validation = Rule::new("self.zones.filter(z, z.role == 'source').size() == 1").message(msg::ONE_SOURCE),
    validation = Rule::new("self.zones.all(a, self.zones.filter(b, b.name == a.name).size() == 1)").message(msg::UNIQUE_ZONE_NAMES),
    validation = Rule::new("self.zones.all(a, self.zones.filter(b, (has(b.domain) ? b.domain : b.name) == (has(a.domain) ? a.domain : a.name)).size() == 1)").message(msg::UNIQUE_DOMAINS),
    validation = Rule::new("self.zones.size() < 2 || self.stream.retention == 'Limits'").message(msg::LIMITS_RETENTION),
    validation = Rule::new("self.zones.all(z, z.role != 'source' || has(z.external) || self.stream.replicas <= z.servers)").message(msg::REPLICAS_FIT),
    validation = Rule::new("self.zones.filter(z, z.role == 'source').size() != 1 || oldSelf.zones.filter(o, o.role == 'source').size() != 1 || self.zones.exists(z, z.role == 'source' && oldSelf.zones.exists(o, o.role == 'source' && o.name == z.name))").message(msg::SOURCE_ZONE_IMMUTABLE),
    validation = Rule::new("self.stream.name == oldSelf.stream.name").message(msg::STREAM_NAME_IMMUTABLE),
    validation = Rule::new("self.topology == oldSelf.topology").message(msg::TOPOLOGY_IMMUTABLE),
    validation = Rule::new("self.topology != 'sources' || self.stream.subjects.all(s, s.contains('{zone}'))").message(msg::SOURCES_SUBJECTS),
    validation = Rule::new("self.topology == 'sources' || self.stream.subjects.all(s, !s.contains('{zone}'))").message(msg::ZONE_TOKEN_WITHOUT_SOURCES),
    validation = Rule::new("self.topology != 'sources' || self.stream.subjects.all(s, !s.contains('{zone}') || ((s.startsWith('{zone}') || s.split('{zone}')[0].endsWith('.')) && (s.split('{zone}')[1] == '' || s.split('{zone}')[1].startsWith('.')) && size(s.split('{zone}')[0].split('.')) == size(self.stream.subjects[0].split('{zone}')[0].split('.'))))").message(msg::SOURCES_ZONE_TOKEN),
    validation = Rule::new("self.zones.all(a, a.name != 'toxiproxy' && !self.zones.exists(b, b.name == a.name + '-client' || b.name == a.name + '-leaf' || b.name == a.name + '-config' || b.name == a.name + '-tls'))").message(msg::ZONE_NAMES_CLASH),
    validation = Rule::new("!has(self.tls) || self.tls.mode != 'Secrets' || self.zones.all(z, has(z.external) || (has(self.tls.zoneSecrets) && self.tls.zoneSecrets.exists(s, s.zone == z.name)))").message(msg::TLS_ZONE_SECRET_MISSING),
    validation = Rule::new("!has(self.tls) || !has(self.tls.zoneSecrets) || self.tls.zoneSecrets.all(s, !self.zones.exists(z, z.name == s.zone && has(z.external)))").message(msg::TLS_ZONE_SECRET_EXTERNAL)
)]
#[serde(rename_all = "camelCase")]
pub struct RegionMirrorSpec {
    /// `mirror`: producers write to the source zone, every other zone holds a
    /// mirror. `sources`: every zone is writable (a local stream per zone,
    /// subjects carrying `{zone}`) and every zone holds an aggregate sourcing
    /// all zones' local streams; the source zone is then the leafnode hub.
    /// Cannot change after creation.
    #[serde(default)]
    pub topology: Topology,
    /// NATS server image for the zones the operator manages.
    #[serde(default = "default_image")]
    #[schemars(length(max = 256))]
    pub image: String,
    /// The source stream, and through it every mirror.
    pub stream: StreamSpec,
    /// Application account credentials. Generated into `<region>-credentials` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<CredentialsSpec>,
    /// Leafnode links from mirror zones to the source zone.
    #[serde(default)]
    pub leafnode: LeafnodeSpec,
    /// TLS on every link of the managed zones (client, routes, leafnodes).
    /// On by default with a CA the operator generates for the region.
    #[serde(default)]
    pub tls: TlsSpec,
    /// The zones. Exactly one has role `source`.
    #[schemars(length(min = 1, max = 16))]
    pub zones: Vec<ZoneSpec>,
    /// What happens to a managed zone's data (its PersistentVolumeClaims)
    /// when the region, or the zone, is deleted. `Retain` (default) keeps
    /// them: a region or zone created again under the same names finds its
    /// data; delete the claims (label `natsregion.io/region=<region>`) to
    /// free the storage. `Delete` deletes them, and with them the data.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// What deleting a region (or removing a zone) does to the zones' data.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeletionPolicy {
    /// The PersistentVolumeClaims stay (and the data on them).
    #[default]
    Retain,
    /// The PersistentVolumeClaims are deleted with the StatefulSets: the data is gone.
    Delete,
}

impl DeletionPolicy {
    /// The StatefulSet's `persistentVolumeClaimRetentionPolicy.whenDeleted`.
    pub fn when_deleted(self) -> &'static str {
        match self {
            DeletionPolicy::Retain => "Retain",
            DeletionPolicy::Delete => "Delete",
        }
    }
}

/// How the zones of a region share the stream (docs/architecture.md).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Topology {
    /// One writable source stream, mirrored into every other zone.
    #[default]
    Mirror,
    /// Every zone writes its own local stream; every zone's aggregate sources all of them.
    Sources,
}

pub fn default_image() -> String {
    "nats:2.14.9-alpine".to_string()
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StreamSpec {
    /// Stream name, the same in every zone. Subjects may contain dots; the name may not.
    #[x_kube(validation = Rule::new("self.matches('^[^.*>[:space:]]+$')").message(msg::STREAM_NAME))]
    #[schemars(length(min = 1, max = 64))]
    pub name: String,
    /// Subjects the source stream captures. With `topology: sources` each
    /// must contain `{zone}`, which becomes the zone's name in that zone's
    /// local stream (for example `orders.{zone}.>`).
    #[x_kube(
        validation = Rule::new("self.size() >= 1 && self.all(s, s.size() >= 1 && !s.matches('[[:space:]]'))").message(msg::SUBJECTS),
        validation = Rule::new("self.all(s, s.size() == 0 || s.matches('^[^.*>]+([.]([^.*>]+|[*]))*([.]>)?$'))").message(msg::SUBJECT_TOKENS),
        validation = Rule::new("self.all(s, !s.startsWith('$') && !s.startsWith('_INBOX'))").message(msg::SUBJECT_RESERVED)
    )]
    #[schemars(length(max = 32), inner(length(max = 256)))]
    pub subjects: Vec<String>,
    #[serde(default)]
    pub storage: StorageType,
    /// Replicas of the stream inside each zone.
    #[serde(default = "default_replicas")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 5").message(msg::REPLICAS))]
    pub replicas: i32,
    #[serde(default)]
    pub retention: Retention,
    /// Maximum message age in seconds; absent or 0 keeps messages forever.
    /// At most [`MAX_AGE_SECONDS`] (100 years), so the nanoseconds NATS is
    /// sent fit an i64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 3155760000").message(msg::MAX_AGE))]
    pub max_age_seconds: Option<i64>,
    /// Maximum stream size in bytes; absent or -1 is unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= -1").message(msg::MAX_BYTES))]
    pub max_bytes: Option<i64>,
    /// Window in which a repeated `Nats-Msg-Id` is dropped as a duplicate.
    #[serde(default = "default_duplicate_window")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 86400").message(msg::DUPLICATE_WINDOW))]
    pub duplicate_window_seconds: i64,
    /// How often JetStream fsyncs (`2m` by default, `always` to sync every write).
    /// Acked writes newer than this can vanish after a power loss; every drill report records it.
    #[serde(default = "default_sync_interval")]
    #[x_kube(validation = Rule::new("self == 'always' || self.matches('^([1-9][0-9]{0,5}ms|[1-2][0-9]{6}ms|3[0-5][0-9]{5}ms|3600000ms|[1-9][0-9]{0,2}s|[1-2][0-9]{3}s|3[0-5][0-9]{2}s|3600s|[1-9]m|[1-5][0-9]m|60m|1h)$')").message(msg::SYNC_INTERVAL))]
    #[schemars(length(max = 16))]
    pub sync_interval: String,
}

/// The longest `stream.maxAgeSeconds` (100 years of 365.25 days); the CRD
/// rule spells the same number. NATS takes the age in nanoseconds as an i64,
/// which this fits with room to spare.
pub const MAX_AGE_SECONDS: i64 = 3_155_760_000;

impl StreamSpec {
    /// `maxAgeSeconds` as the Duration NATS is sent; zero keeps messages forever.
    pub fn max_age(&self) -> std::time::Duration {
        seconds_for_nats(self.max_age_seconds.unwrap_or(0), MAX_AGE_SECONDS)
    }
    /// `duplicateWindowSeconds` as the Duration NATS is sent (at least 1 s).
    pub fn duplicate_window(&self) -> std::time::Duration {
        seconds_for_nats(self.duplicate_window_seconds.max(1), MAX_AGE_SECONDS)
    }
}

/// Seconds from the spec as a Duration whose nanoseconds fit an i64 (the
/// NATS wire format), never wrapped: the CRD refuses values outside
/// `0..=max`, and one that got past it anyway is held at `max`, so a stream
/// keeps its messages longer, never shorter (18446744273 s would otherwise
/// wrap to about 199 s in nanoseconds and purge every zone).
pub fn seconds_for_nats(seconds: i64, max: i64) -> std::time::Duration {
    let max = max.clamp(0, i64::MAX / 1_000_000_000);
    std::time::Duration::from_secs(seconds.clamp(0, max).unsigned_abs())
}

fn default_replicas() -> i32 {
    3
}
fn default_duplicate_window() -> i64 {
    120
}
fn default_sync_interval() -> String {
    "2m".to_string()
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StorageType {
    #[default]
    File,
    Memory,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Retention {
    #[default]
    Limits,
    WorkQueue,
    Interest,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSpec {
    /// Secret with keys `user` and `password` for the application account.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LeafnodeSpec {
    /// How often a mirror zone redials the source zone after losing it. After a
    /// heal the mirror catches up within about twice this interval plus the
    /// time to send what it missed.
    #[serde(default = "default_reconnect")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 60").message(msg::RECONNECT))]
    pub reconnect_interval_seconds: i32,
    /// `toxiproxy` routes every managed mirror zone's leafnode remote through
    /// a Toxiproxy the operator deploys for the region (`<region>-toxiproxy`),
    /// which `toxiproxy` drills need to cut links. Changes the region's wiring
    /// (the zones' configuration, hence a rolling restart).
    #[serde(default)]
    pub proxy: LeafnodeProxy,
}

impl Default for LeafnodeSpec {
    fn default() -> Self {
        Self {
            reconnect_interval_seconds: default_reconnect(),
            proxy: LeafnodeProxy::default(),
        }
    }
}

/// What sits between mirror zones and the source zone's leafnode listener.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum LeafnodeProxy {
    /// Mirror zones dial the source zone's leafnode Service.
    #[default]
    None,
    /// Mirror zones dial a per-region Toxiproxy, one proxy per source server.
    Toxiproxy,
}

/// nats-server's own default for a leafnode remote (`reconnect: 1s`):
/// after a heal each server redials within this plus up to as much jitter.
fn default_reconnect() -> i32 {
    1
}

/// Where the certificates of the managed zones come from.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.mode == 'Secrets' || (!has(self.caSecret) && (!has(self.zoneSecrets) || size(self.zoneSecrets) == 0))").message(msg::TLS_SECRETS_ONLY),
    validation = Rule::new("self.mode != 'Secrets' || has(self.caSecret)").message(msg::TLS_CA_SECRET),
    validation = Rule::new("self.renewBeforeDays < self.validityDays").message(msg::TLS_RENEW_BEFORE),
    validation = Rule::new("!has(self.zoneSecrets) || self.zoneSecrets.all(a, self.zoneSecrets.filter(b, b.zone == a.zone).size() == 1)").message(msg::TLS_ZONE_SECRET_TWICE)
)]
pub struct TlsSpec {
    #[serde(default)]
    pub mode: TlsMode,
    /// `Generated`: lifetime of each zone's server certificate (the CA lives ten times as long).
    #[serde(default = "default_validity_days")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 3650").message(msg::TLS_VALIDITY))]
    pub validity_days: i32,
    /// `Generated`: a certificate is reissued this many days before it expires.
    #[serde(default = "default_renew_before_days")]
    #[x_kube(validation = Rule::new("self >= 1").message(msg::TLS_RENEW_BEFORE))]
    pub renew_before_days: i32,
    /// `Secrets`: Secret whose `ca.crt` every zone trusts (the CA that signed the zones' certificates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub ca_secret: Option<String>,
    /// `Secrets`: one Secret per managed zone in cert-manager's format
    /// (`tls.crt`, `tls.key`, `ca.crt`). An entry may name a zone the region
    /// does not have yet (a drill's temporary zone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub zone_secrets: Vec<ZoneTlsSecret>,
}

impl Default for TlsSpec {
    fn default() -> Self {
        Self {
            mode: TlsMode::default(),
            validity_days: default_validity_days(),
            renew_before_days: default_renew_before_days(),
            ca_secret: None,
            zone_secrets: Vec::new(),
        }
    }
}

impl TlsSpec {
    pub fn enabled(&self) -> bool {
        self.mode != TlsMode::Disabled
    }
    /// The Secret the user named for zone `zone` (`Secrets` mode).
    pub fn zone_secret(&self, zone: &str) -> Option<&str> {
        self.zone_secrets
            .iter()
            .find(|s| s.zone == zone)
            .map(|s| s.secret_name.as_str())
    }
}

fn default_validity_days() -> i32 {
    90
}
fn default_renew_before_days() -> i32 {
    30
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsMode {
    /// The operator generates a CA for the region (`<region>-ca`) and a
    /// certificate per zone (`<region>-<zone>-tls`), and renews them.
    #[default]
    Generated,
    /// The user names the Secrets (for example cert-manager Certificates).
    Secrets,
    /// Plaintext links. Only for networks you trust.
    Disabled,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ZoneTlsSecret {
    #[schemars(length(min = 1, max = 40))]
    pub zone: String,
    /// Secret with keys `tls.crt`, `tls.key` and `ca.crt`.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.external) || has(self.domain)").message(msg::EXTERNAL_DOMAIN))]
pub struct ZoneSpec {
    /// Lowercase DNS label; names the zone's StatefulSet and Services.
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$') && self.size() <= 40").message(msg::ZONE_NAME))]
    #[schemars(length(max = 40))]
    pub name: String,
    pub role: ZoneRole,
    /// NATS servers in the zone's cluster.
    #[serde(default = "default_servers")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 9").message(msg::SERVERS))]
    pub servers: i32,
    #[serde(default)]
    pub storage: ZoneStorage,
    #[serde(default)]
    pub scheduling: Scheduling,
    /// JetStream domain of the zone; defaults to the zone name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9_-]+$')").message(msg::DOMAIN))]
    #[schemars(length(min = 1, max = 40))]
    pub domain: Option<String>,
    /// A zone the operator does not manage (for example in another cluster):
    /// no objects are created for it, only its streams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalZone>,
}

fn default_servers() -> i32 {
    3
}

impl ZoneSpec {
    pub fn domain(&self) -> &str {
        self.domain.as_deref().unwrap_or(&self.name)
    }
    pub fn is_source(&self) -> bool {
        self.role == ZoneRole::Source
    }
}

impl RegionMirrorSpec {
    pub fn source_zone(&self) -> Option<&ZoneSpec> {
        self.zones.iter().find(|z| z.is_source())
    }
    pub fn mirror_zones(&self) -> impl Iterator<Item = &ZoneSpec> {
        self.zones.iter().filter(|z| !z.is_source())
    }
    pub fn zone(&self, name: &str) -> Option<&ZoneSpec> {
        self.zones.iter().find(|z| z.name == name)
    }
    pub fn is_sources(&self) -> bool {
        self.topology == Topology::Sources
    }
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum ZoneRole {
    Source,
    Mirror,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ZoneStorage {
    /// Size of each server's JetStream volume.
    #[serde(default = "default_storage_size")]
    #[x_kube(validation = Rule::new("self.matches('^[1-9][0-9]{0,5}(Mi|Gi|Ti)$')").message(msg::STORAGE_SIZE))]
    #[schemars(length(max = 16))]
    pub size: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub class_name: Option<String>,
}

impl Default for ZoneStorage {
    fn default() -> Self {
        Self {
            size: default_storage_size(),
            class_name: None,
        }
    }
}

fn default_storage_size() -> String {
    "1Gi".to_string()
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Scheduling {
    /// Node labels the zone's servers require (label values: 63 characters at most).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 32, "additionalProperties" = {"type": "string", "maxLength": 63}))]
    pub node_selector: BTreeMap<String, String>,
    /// Pin the zone's servers to nodes whose `topology.kubernetes.io/zone` label has this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub topology_zone: Option<String>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.caSecret) || self.url.startsWith('tls://')").message(msg::EXTERNAL_CA_NEEDS_TLS))]
pub struct ExternalZone {
    /// Client URL of the zone, `nats://host:port` or `tls://host:port`.
    #[x_kube(validation = Rule::new("self.matches('^(nats|tls)://[^/[:space:]]+:[0-9]+$')").message(msg::EXTERNAL_URL))]
    #[schemars(length(max = 512))]
    pub url: String,
    /// Secret with keys `user` and `password` for the zone; defaults to the region's credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub credentials_secret: Option<String>,
    /// Secret whose `ca.crt` signed the zone's certificate, for a `tls://` URL;
    /// without it the zone's certificate must chain to the system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub ca_secret: Option<String>,
}

// ---------------------------------------------------------------- status

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RegionMirrorStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_zone: Option<String>,
    /// `ready/total` zones, for the printer column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zones_ready: Option<String>,
    /// `in-sync/total` mirror zones, for the printer column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirrors_in_sync: Option<String>,
    /// Largest mirror lag in messages, computed from both sides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lag: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<ZoneStatus>,
    /// The generated CA and zone certificates (`tls.mode: Generated`): when
    /// they expire, and a rotation of the CA under way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsStatus>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TlsStatus {
    /// When the CA that signs the zones' certificates expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_not_after: Option<Time>,
    /// During a rotation: when the new CA, trusted but not signing yet, expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_ca_not_after: Option<Time>,
    /// During a rotation: its step and what it waits for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<String>,
    /// When each managed zone's certificate expires.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<ZoneCertificateStatus>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ZoneCertificateStatus {
    pub zone: String,
    pub not_after: Time,
}

/// What one zone looks like from the outside, read from its servers.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ZoneStatus {
    pub name: String,
    pub role: String,
    pub domain: String,
    pub servers: i32,
    pub ready_servers: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_leader: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_leader: Option<String>,
    /// Stream replicas that are current with the leader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seq: Option<i64>,
    /// Source last sequence minus this mirror's last sequence. The server's own
    /// `lag` stays 0 while a mirror is cut off, so it is not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<i64>,
    /// Milliseconds since the mirror last heard from the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_millis: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `topology: sources`: the zone's aggregate, one entry per zone of the
    /// spec it sources. The zone's `lastSeq` is then the aggregate's and its
    /// `lag` the largest of these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<SourceStatus>,
}

/// How far a zone's aggregate has come in one zone's local stream.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SourceStatus {
    /// The zone whose local stream this source is.
    pub zone: String,
    /// That zone's local stream last sequence minus the newest of its
    /// sequences the aggregate holds. The server's own source `lag` stays put
    /// while a link is cut, so it is not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag: Option<i64>,
    /// Milliseconds since the aggregate last heard from that local stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_millis: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
