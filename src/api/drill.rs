//! `PartitionDrill`: a one-shot (optionally scheduled) experiment against a
//! RegionMirror: traffic, a cut between zones, a heal, and four verdicts.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::validate::msg;

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "natsregion.io",
    version = "v1alpha1",
    kind = "PartitionDrill",
    namespaced,
    status = "PartitionDrillStatus",
    shortname = "pdrill",
    category = "natsregion",
    cel,
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 63").message(msg::DRILL_NAME),
    printcolumn = r#"{"name":"Region","type":"string","jsonPath":".spec.regionRef.name"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Step","type":"string","jsonPath":".status.currentStep"}"#,
    printcolumn = r#"{"name":"Verdict","type":"string","jsonPath":".status.verdict"}"#,
    printcolumn = r#"{"name":"Claims","type":"string","description":"claims passed / judged","jsonPath":".status.claimsPassed"}"#,
    printcolumn = r#"{"name":"Catch-up","type":"number","description":"seconds the mirrors took to catch up after the heal","jsonPath":".status.totals.catchUpSeconds"}"#,
    printcolumn = r#"{"name":"Last success","type":"date","description":"when the last run whose every claim passed finished","jsonPath":".status.lastSuccessTime"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(
    validation = Rule::new("!has(self.steps) || self.steps.filter(s, s == 'partition').size() == self.steps.filter(s, s == 'heal').size()").message(msg::PARTITION_HEALED),
    validation = Rule::new("!has(self.steps) || self.steps.size() == 0 || self.steps[self.steps.size() - 1] == 'verify'").message(msg::VERIFY_LAST),
    validation = Rule::new("self.fault.holdSeconds < self.fault.deadlineSeconds").message(msg::HOLD_BEFORE_DEADLINE),
    validation = Rule::new("!has(self.suspend) || !self.suspend || has(self.schedule)").message(msg::SUSPEND_SCHEDULE)
)]
#[serde(rename_all = "camelCase")]
pub struct PartitionDrillSpec {
    /// The RegionMirror (same namespace) to drill.
    pub region_ref: RegionRef,
    #[serde(default)]
    pub fault: FaultSpec,
    #[serde(default)]
    pub workload: WorkloadSpec,
    /// Steps to run in order. Absent: the default sequence, which checks all four claims.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub steps: Option<Vec<Step>>,
    #[serde(default)]
    pub timeouts: Timeouts,
    /// The zone started mid-drill to prove a new zone joins without producer changes.
    #[serde(default)]
    pub temporary_zone: TemporaryZone,
    /// Cron schedule (5 fields, UTC) to run the drill again; absent runs it once.
    /// Each field within its bounds (minute 0-59, hour 0-23, day of month
    /// 1-31 or `?`, month 1-12 or JAN-DEC, day of week 0-7 or SUN-SAT or
    /// `?`) as numbers, `a-b` ranges, `*/n` or `a-b/n` steps and lists; a
    /// date that never occurs (31 February) is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(
        validation = Rule::new("self.matches('(?i)^ *([*]|([*]/0*[1-9][0-9]{0,3}|0*([0-9]|[1-5][0-9])-0*([0-9]|[1-5][0-9])(/0*[1-9][0-9]{0,3})?|0*([0-9]|[1-5][0-9]))(,([*]/0*[1-9][0-9]{0,3}|0*([0-9]|[1-5][0-9])-0*([0-9]|[1-5][0-9])(/0*[1-9][0-9]{0,3})?|0*([0-9]|[1-5][0-9])))*) +([*]|([*]/0*[1-9][0-9]{0,3}|0*([0-9]|1[0-9]|2[0-3])-0*([0-9]|1[0-9]|2[0-3])(/0*[1-9][0-9]{0,3})?|0*([0-9]|1[0-9]|2[0-3]))(,([*]/0*[1-9][0-9]{0,3}|0*([0-9]|1[0-9]|2[0-3])-0*([0-9]|1[0-9]|2[0-3])(/0*[1-9][0-9]{0,3})?|0*([0-9]|1[0-9]|2[0-3])))*) +([*]|[?]|([*]/0*[1-9][0-9]{0,3}|0*([1-9]|[12][0-9]|3[01])-0*([1-9]|[12][0-9]|3[01])(/0*[1-9][0-9]{0,3})?|0*([1-9]|[12][0-9]|3[01]))(,([*]/0*[1-9][0-9]{0,3}|0*([1-9]|[12][0-9]|3[01])-0*([1-9]|[12][0-9]|3[01])(/0*[1-9][0-9]{0,3})?|0*([1-9]|[12][0-9]|3[01])))*) +([*]|([*]/0*[1-9][0-9]{0,3}|(0*([1-9]|1[0-2])|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)-(0*([1-9]|1[0-2])|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)(/0*[1-9][0-9]{0,3})?|(0*([1-9]|1[0-2])|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC))(,([*]/0*[1-9][0-9]{0,3}|(0*([1-9]|1[0-2])|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)-(0*([1-9]|1[0-2])|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)(/0*[1-9][0-9]{0,3})?|(0*([1-9]|1[0-2])|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)))*) +([*]|[?]|([*]/0*[1-9][0-9]{0,3}|(0*[0-7]|SUN|MON|TUE|WED|THU|FRI|SAT)-(0*[0-7]|SUN|MON|TUE|WED|THU|FRI|SAT)(/0*[1-9][0-9]{0,3})?|(0*[0-7]|SUN|MON|TUE|WED|THU|FRI|SAT))(,([*]/0*[1-9][0-9]{0,3}|(0*[0-7]|SUN|MON|TUE|WED|THU|FRI|SAT)-(0*[0-7]|SUN|MON|TUE|WED|THU|FRI|SAT)(/0*[1-9][0-9]{0,3})?|(0*[0-7]|SUN|MON|TUE|WED|THU|FRI|SAT)))*) *$')").message(msg::SCHEDULE),
        validation = Rule::new("self.replace(' ', ',').split(',').all(p, !p.matches('^[0-9A-Za-z]+-[0-9A-Za-z]+') || (p.split('/')[0].split('-')[0].matches('^[0-9]+$') ? int(p.split('/')[0].split('-')[0]) : (p.split('/')[0].split('-')[0].upperAscii() in {'JAN': 1, 'FEB': 2, 'MAR': 3, 'APR': 4, 'MAY': 5, 'JUN': 6, 'JUL': 7, 'AUG': 8, 'SEP': 9, 'OCT': 10, 'NOV': 11, 'DEC': 12, 'SUN': 0, 'MON': 1, 'TUE': 2, 'WED': 3, 'THU': 4, 'FRI': 5, 'SAT': 6} ? {'JAN': 1, 'FEB': 2, 'MAR': 3, 'APR': 4, 'MAY': 5, 'JUN': 6, 'JUL': 7, 'AUG': 8, 'SEP': 9, 'OCT': 10, 'NOV': 11, 'DEC': 12, 'SUN': 0, 'MON': 1, 'TUE': 2, 'WED': 3, 'THU': 4, 'FRI': 5, 'SAT': 6}[p.split('/')[0].split('-')[0].upperAscii()] : -1)) <= (p.split('/')[0].split('-')[1].matches('^[0-9]+$') ? int(p.split('/')[0].split('-')[1]) : (p.split('/')[0].split('-')[1].upperAscii() in {'JAN': 1, 'FEB': 2, 'MAR': 3, 'APR': 4, 'MAY': 5, 'JUN': 6, 'JUL': 7, 'AUG': 8, 'SEP': 9, 'OCT': 10, 'NOV': 11, 'DEC': 12, 'SUN': 0, 'MON': 1, 'TUE': 2, 'WED': 3, 'THU': 4, 'FRI': 5, 'SAT': 6} ? {'JAN': 1, 'FEB': 2, 'MAR': 3, 'APR': 4, 'MAY': 5, 'JUN': 6, 'JUL': 7, 'AUG': 8, 'SEP': 9, 'OCT': 10, 'NOV': 11, 'DEC': 12, 'SUN': 0, 'MON': 1, 'TUE': 2, 'WED': 3, 'THU': 4, 'FRI': 5, 'SAT': 6}[p.split('/')[0].split('-')[1].upperAscii()] : -1)))").message(msg::SCHEDULE),
        validation = Rule::new("!self.matches('(?i)^ *[^ ]+ +[^ ]+ +(0*3[01](-0*3[01])?(,0*3[01](-0*3[01])?)* +(0*2|FEB)(,(0*2|FEB))*|0*31(,0*31)* +(0*[2469]|0*11|FEB|APR|JUN|SEP|NOV)(,(0*[2469]|0*11|FEB|APR|JUN|SEP|NOV))*) +[*?] *$')").message(msg::SCHEDULE_NEVER)
    )]
    #[schemars(length(max = 64))]
    pub schedule: Option<String>,
    /// With a schedule: no new run starts while true (a run already going is
    /// not stopped by it; the abort annotation does that). Times that came
    /// due while suspended collapse into one run, for the latest, once false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suspend: bool,
    /// Past results kept in status when scheduled.
    #[serde(default = "default_history_limit")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 50").message(msg::HISTORY_LIMIT))]
    pub history_limit: i32,
}

fn default_history_limit() -> i32 {
    5
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RegionRef {
    #[x_kube(validation = Rule::new("self.size() >= 1").message(msg::REGION_REF))]
    #[schemars(length(max = 253))]
    pub name: String,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum FaultBackend {
    /// A network-level cut: NetworkPolicies in a cluster; network namespaces
    /// with packet filters in the local runtime (needs root).
    #[default]
    NetworkPolicy,
    /// Leafnode links routed through Toxiproxy, cut by disabling the proxy.
    Toxiproxy,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FaultSpec {
    #[serde(default)]
    pub backend: FaultBackend,
    /// Zones cut from the source zone; empty means every mirror zone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(max = 40)))]
    pub zones: Vec<String>,
    /// Hard deadline: a fault older than this is removed whatever else happens.
    #[serde(default = "default_fault_deadline")]
    #[x_kube(validation = Rule::new("self >= 10 && self <= 3600").message(msg::FAULT_DEADLINE))]
    pub deadline_seconds: i32,
    /// Least time a partition stays on before a heal step removes it, so that a
    /// link that leaks around the cut has time to show it (mirror sequence moving).
    #[serde(default = "default_hold")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 3600").message(msg::FAULT_HOLD))]
    pub hold_seconds: i32,
    /// Toxics applied to the leafnode links for the whole drill (toxiproxy backend only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub toxics: Vec<Toxic>,
}

impl Default for FaultSpec {
    fn default() -> Self {
        Self {
            backend: FaultBackend::default(),
            zones: Vec::new(),
            deadline_seconds: default_fault_deadline(),
            hold_seconds: default_hold(),
            toxics: Vec::new(),
        }
    }
}

fn default_fault_deadline() -> i32 {
    300
}
fn default_hold() -> i32 {
    8
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.type != 'latency' || (has(self.latencyMillis) && self.latencyMillis >= 0)").message(msg::TOXIC_LATENCY),
    validation = Rule::new("self.type != 'bandwidth' || (has(self.rateKilobytesPerSecond) && self.rateKilobytesPerSecond >= 1)").message(msg::TOXIC_BANDWIDTH)
)]
pub struct Toxic {
    #[serde(rename = "type")]
    pub type_: ToxicType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_millis: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_millis: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_kilobytes_per_second: Option<i64>,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum ToxicType {
    Latency,
    Bandwidth,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadSpec {
    /// Messages published in each `produce` step.
    #[serde(default = "default_messages")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 10000000").message(msg::MESSAGES))]
    pub messages_per_phase: i64,
    /// Publish rate; 0 publishes as fast as acks come back.
    #[serde(default = "default_rate")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 1000000").message(msg::RATE))]
    pub rate_per_second: i64,
    /// Payload size in bytes, including the id and hash header.
    #[serde(default = "default_payload")]
    #[x_kube(validation = Rule::new("self >= 32 && self <= 1048576").message(msg::PAYLOAD))]
    pub payload_bytes: i64,
    /// Zone whose consumer the `pause-consumer` step pauses; defaults to the source zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 40))]
    pub pause_zone: Option<String>,
}

impl Default for WorkloadSpec {
    fn default() -> Self {
        Self {
            messages_per_phase: default_messages(),
            rate_per_second: default_rate(),
            payload_bytes: default_payload(),
            pause_zone: None,
        }
    }
}

fn default_messages() -> i64 {
    1000
}
fn default_rate() -> i64 {
    1000
}
fn default_payload() -> i64 {
    128
}

/// One step of a drill.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Publish one phase of messages and let every zone's consumer read them.
    Produce,
    /// Cut the chosen zones from the source zone and prove the cut holds.
    Partition,
    /// Remove every fault and prove nothing is left behind.
    Heal,
    /// Wait until every mirror's last sequence equals the source's.
    WaitForCatchUp,
    /// Pause one zone's consumer for a phase of traffic and watch the others.
    PauseConsumer,
    /// Pause the consumers of the zones the next partition cuts and publish
    /// one phase: they resume once the cut holds, so claim 1 watches them
    /// drain a backlog while cut off instead of resting on "no errors".
    BuildBacklog,
    /// Start a new zone mid-drill and watch it backfill and follow.
    AddTemporaryZone,
    /// Drain every consumer and judge the four claims.
    Verify,
}

impl Step {
    /// The sequence that checks all four claims.
    pub const DEFAULT: [Step; 10] = [
        Step::Produce,
        Step::PauseConsumer,
        Step::BuildBacklog,
        Step::Partition,
        Step::Produce,
        Step::Heal,
        Step::WaitForCatchUp,
        Step::AddTemporaryZone,
        Step::Produce,
        Step::Verify,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Step::Produce => "produce",
            Step::Partition => "partition",
            Step::Heal => "heal",
            Step::WaitForCatchUp => "wait-for-catch-up",
            Step::PauseConsumer => "pause-consumer",
            Step::BuildBacklog => "build-backlog",
            Step::AddTemporaryZone => "add-temporary-zone",
            Step::Verify => "verify",
        }
    }
}

impl PartitionDrillSpec {
    pub fn steps(&self) -> Vec<Step> {
        self.steps.clone().unwrap_or_else(|| Step::DEFAULT.to_vec())
    }
}

/// A count from the spec as the unsigned number the engine uses, never
/// wrapped: the CRD rules keep these positive, and a negative one that got
/// past them anyway counts as 0 instead of as 2^64 minus it.
pub fn spec_count(n: impl Into<i64>) -> u64 {
    u64::try_from(n.into()).unwrap_or(0)
}

/// Seconds from the spec as a Duration (see [`spec_count`]).
pub fn spec_seconds(n: impl Into<i64>) -> std::time::Duration {
    std::time::Duration::from_secs(spec_count(n))
}

impl FaultSpec {
    pub fn hold(&self) -> std::time::Duration {
        spec_seconds(self.hold_seconds)
    }
    pub fn deadline(&self) -> std::time::Duration {
        spec_seconds(self.deadline_seconds)
    }
}

impl Timeouts {
    pub fn step(&self) -> std::time::Duration {
        spec_seconds(self.step_seconds)
    }
    pub fn catch_up(&self) -> std::time::Duration {
        spec_seconds(self.catch_up_seconds)
    }
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Timeouts {
    /// Longest any one step may take.
    #[serde(default = "default_step_timeout")]
    #[x_kube(validation = Rule::new("self >= 5 && self <= 3600").message(msg::STEP_TIMEOUT))]
    pub step_seconds: i32,
    /// Longest the mirrors may take to catch up after the heal before claim 2 fails.
    #[serde(default = "default_catch_up")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 3600").message(msg::CATCH_UP_TIMEOUT))]
    pub catch_up_seconds: i32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            step_seconds: default_step_timeout(),
            catch_up_seconds: default_catch_up(),
        }
    }
}

fn default_step_timeout() -> i32 {
    120
}
fn default_catch_up() -> i32 {
    60
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TemporaryZone {
    #[serde(default = "default_temp_name")]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$') && self.size() <= 40").message(msg::ZONE_NAME))]
    #[schemars(length(max = 40))]
    pub name: String,
    #[serde(default = "default_temp_servers")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 9").message(msg::SERVERS))]
    pub servers: i32,
    /// Keep the zone after the drill instead of removing it.
    #[serde(default)]
    pub keep: bool,
}

impl Default for TemporaryZone {
    fn default() -> Self {
        Self {
            name: default_temp_name(),
            servers: default_temp_servers(),
            keep: false,
        }
    }
}

fn default_temp_name() -> String {
    "joiner".to_string()
}
fn default_temp_servers() -> i32 {
    1
}

// ---------------------------------------------------------------- status

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DrillPhase {
    #[default]
    Pending,
    Running,
    /// Faults are being removed after a failure, abort or restart.
    Healing,
    Succeeded,
    Failed,
    Aborted,
    /// The drill itself could not finish (zones did not answer within the
    /// retry budget, a step timed out): nothing failed about the region
    /// unless a claim says so.
    Errored,
}

impl DrillPhase {
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            DrillPhase::Succeeded | DrillPhase::Failed | DrillPhase::Aborted | DrillPhase::Errored
        )
    }
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Verdict {
    #[default]
    NotRun,
    Passed,
    Failed,
    /// Evidence was missing (not observed, or the drill could not finish):
    /// neither a pass nor a fault of the region.
    Inconclusive,
}

/// The four claims a drill judges.
#[derive(
    JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
#[serde(rename_all = "kebab-case")]
pub enum Claim {
    /// 1: a cross-zone partition does not disturb consumption inside a zone.
    LocalConsumption,
    /// 2: after the heal nothing is lost, duplicated or reordered, and the mirror catches up.
    NoLossAfterHeal,
    /// 3: each zone's consumer progress is independent of the others.
    IndependentProgress,
    /// 4: a new zone joins without any change to producers.
    ZoneJoin,
}

impl Claim {
    pub const ALL: [Claim; 4] = [
        Claim::LocalConsumption,
        Claim::NoLossAfterHeal,
        Claim::IndependentProgress,
        Claim::ZoneJoin,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Claim::LocalConsumption => "partition does not disturb local consumption",
            Claim::NoLossAfterHeal => {
                "after heal: nothing lost, duplicated or reordered; mirror caught up"
            }
            Claim::IndependentProgress => "zones progress independently",
            Claim::ZoneJoin => "a new zone joins without producer changes",
        }
    }
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClaimResult {
    pub claim: Claim,
    pub verdict: Verdict,
    /// One line a person can act on: why it passed or failed.
    pub message: String,
    /// The figures the verdict rests on.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub evidence: BTreeMap<String, String>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FaultRecord {
    /// Backend-specific name of the fault (proxy, rule set or NetworkPolicy).
    pub id: String,
    pub backend: String,
    pub zones: Vec<String>,
    pub injected_at: Time,
    /// After this the fault is removed whatever else happens.
    pub deadline: Time,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healed_at: Option<Time>,
    /// Written (and read back by the API server) before the backend was
    /// asked to cut: the cut may or may not have landed. Whoever finds it
    /// unhealed removes every fault object of the drill's backend, so an
    /// operator killed between the cut and its record leaves nothing behind.
    /// The backend's own record replaces it once the cut returns.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub intent: bool,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DrillTotals {
    /// Every publish call.
    pub attempted: i64,
    /// Publishes that got a PubAck.
    pub acked: i64,
    /// Messages read, summed over zones.
    pub read: i64,
    /// Acked messages still unread when the final check ended (after the
    /// catch-up grace, if there was one), summed over zones.
    pub lost: i64,
    /// Acked messages read only after `timeouts.catchUpSeconds` ran out,
    /// during the grace after it, summed over zones: late, not lost.
    #[serde(default)]
    pub late: i64,
    pub duplicated: i64,
    /// Mirror sequences whose id or hash differ from the source's (holes included).
    pub reordered: i64,
    /// Acked messages absent from a zone's stored stream (the audit), summed
    /// over zones; a message read and later lost from storage counts here.
    #[serde(default)]
    pub stored_missing: i64,
    /// Stored messages whose id, sequence or payload differ from what was
    /// acked, or that nobody acked (the audit), summed over zones.
    #[serde(default)]
    pub stored_altered: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch_up_seconds: Option<f64>,
    /// Largest `source - mirror` of a mirror while a partition cut it off.
    pub max_lag: i64,
    /// Largest lag of the joining zone while it backfilled history: a
    /// different cause, so never mixed into `maxLag`.
    #[serde(default)]
    pub max_backfill_lag: i64,
}

/// What one run of a drill owns, so runs on one region never judge each
/// other's messages.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunScope {
    /// Writer id of this run's producer (in every payload and `Nats-Msg-Id`).
    pub writer: i64,
    /// First source sequence this run's consumers and checks look at.
    pub first_sequence: i64,
    /// Messages the source stream held before this run (earlier runs, other traffic).
    pub held_before: i64,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DrillRun {
    pub started_at: Time,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    pub phase: DrillPhase,
    pub verdict: Verdict,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_claims: Vec<Claim>,
    /// ConfigMap holding this run's report and timeline (see `status.report`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PartitionDrillStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default)]
    pub phase: DrillPhase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step: Option<String>,
    /// Index into the step list of the step running now (or last run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_index: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    #[serde(default)]
    pub verdict: Verdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<ClaimResult>,
    /// Claims passed out of those judged (`4/4`), filled by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims_passed: Option<String>,
    /// ConfigMap (owned by the drill) with this run's full JSON report
    /// (`report.json`) and timeline (`timeline.svg`), gzipped as `*.gz` in
    /// `binaryData` when large.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<FaultRecord>,
    #[serde(default)]
    pub totals: DrillTotals,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunScope>,
    /// The zones' JetStream `sync_interval` when the drill ran: acked writes
    /// newer than this may not survive a power loss.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
    /// When the last run whose verdict was Passed finished; kept when later
    /// runs fail and when that run leaves the history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<DrillRun>,
}

impl PartitionDrillStatus {
    /// The drill holds its region: it runs, heals, or has a fault open.
    pub fn holds_region(&self) -> bool {
        matches!(self.phase, DrillPhase::Running | DrillPhase::Healing)
            || self.faults.iter().any(|f| f.healed_at.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_counts_and_seconds_never_wrap() {
        // `-1i32 as u64` is 18446744073709551615: a timeout that never ends.
        assert_eq!(spec_count(-1i32), 0);
        assert_eq!(spec_count(i64::MIN), 0);
        assert_eq!(spec_count(3600i32), 3600);
        let mut fault = FaultSpec {
            hold_seconds: -8,
            ..FaultSpec::default()
        };
        assert_eq!(fault.hold(), std::time::Duration::ZERO);
        fault.hold_seconds = 8;
        assert_eq!(fault.hold(), std::time::Duration::from_secs(8));
    }
}
