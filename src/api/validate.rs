//! Validation shared by the API server and the local runtime.
//!
//! Every rule lives once, as CEL in the CRD schema; the local runtime evaluates
//! the very same rules with kube's client-side CEL, so a bad file is refused
//! with the message the API server would give. Rules that need two objects
//! (a drill against its region) cannot be CEL and are checked here in code.

use kube::core::cel::ValidationErrors;

use super::{PartitionDrill, RegionMirror, Step};

/// Messages of the CEL rules: each says what to change.
/// The longest region and zone names together: `<region>-<zone>` names the
/// zone's StatefulSet, whose pods' `controller-revision-hash` label (a label
/// value, at most 63 characters) is that name, '-' and a 10-character hash.
/// The CRD rule spells the same number.
pub const MAX_REGION_AND_ZONE_NAME: usize = 63 - 11 - 1;

/// What the operator appends to `<region>-<zone>` for a zone's other objects
/// (operator::region::names): a zone named `<z><suffix>` next to zone `<z>`
/// would share their names. The CRD rule behind `msg::ZONE_NAMES_CLASH`
/// spells the same list.
pub const ZONE_OBJECT_SUFFIXES: [&str; 4] = ["-client", "-leaf", "-config", "-tls"];
/// Zone names taken by the region's own objects (`<region>-toxiproxy`).
pub const RESERVED_ZONE_NAMES: [&str; 1] = ["toxiproxy"];

/// Whether zones `a` and `b` would give objects the same name.
pub fn zone_names_clash(a: &str, b: &str) -> bool {
    let extends = |long: &str, short: &str| {
        ZONE_OBJECT_SUFFIXES
            .iter()
            .any(|s| long.strip_prefix(short) == Some(s))
    };
    RESERVED_ZONE_NAMES.contains(&a)
        || RESERVED_ZONE_NAMES.contains(&b)
        || extends(a, b)
        || extends(b, a)
}

pub mod msg {
    pub const REGION_NAME: &str = "metadata.name of a RegionMirror names its Services and StatefulSets, so it must be a DNS label: lowercase letters, digits and '-', starting with a letter and ending with a letter or digit";
    pub const NAMES_FIT: &str = "metadata.name and a zones[].name are too long together: a zone's StatefulSet is named <region>-<zone>, and its pods carry a controller-revision-hash label of that name plus 11 characters, which Kubernetes limits to 63; keep the two names at 51 characters together or fewer (shorten the region or the zone name)";
    pub const ONE_SOURCE: &str = "exactly one zone must have role: source (the zone producers write to; with topology: sources, the leafnode hub every other zone dials); give every other zone role: mirror";
    pub const UNIQUE_ZONE_NAMES: &str = "zones[].name must be unique: rename the repeated zone";
    pub const UNIQUE_DOMAINS: &str = "zones[].domain must be unique across zones (it defaults to the zone name): set a distinct domain on each zone";
    pub const LIMITS_RETENTION: &str = "stream.retention must be Limits when the region has mirror zones: WorkQueue and Interest streams cannot be mirrored without loss";
    pub const REPLICAS_FIT: &str = "stream.replicas must not exceed the source zone's servers: lower stream.replicas or raise its servers (mirror zones keep at most one replica per server)";
    pub const SOURCE_ZONE_IMMUTABLE: &str = "the source zone cannot change: keep the zone with role: source under its name and role (the mirrors and local streams are bound to its stream, domain and leafnode Service; a zone's role cannot change either); to move the source, create a new RegionMirror";
    pub const STREAM_NAME_IMMUTABLE: &str =
        "stream.name cannot change: the mirrors are bound to it; create a new RegionMirror instead";
    pub const TOPOLOGY_IMMUTABLE: &str = "topology cannot change: the zones' streams are built for it (mirrors cannot become sources); create a new RegionMirror with the other topology";
    pub const SOURCES_SUBJECTS: &str = "with topology: sources every stream.subjects entry must contain {zone} (for example orders.{zone}.>): each zone's local stream captures its own zone's subjects, and streams with the same subjects in several zones would each capture every zone's writes";
    pub const SOURCES_ZONE_TOKEN: &str = "with topology: sources every stream.subjects entry must have {zone} as a whole token at the same position (for example orders.{zone}.> and payments.{zone}.created): then two zones' subjects always differ in that token, so no zone's local stream captures another zone's writes; with {zone} inside a token (orders-{zone}.>) or at different positions ({zone}.> and *.foo.{zone}) two zones' subjects can overlap";
    pub const ZONE_NAMES_CLASH: &str = "zone names clash: a zone named <z>-client, <z>-leaf, <z>-config or <z>-tls next to a zone <z> would share names with zone <z>'s client Service, leafnode Service, ConfigMap or certificate Secret (<region>-<z>-client and so on), and a zone named toxiproxy with the region's Toxiproxy (<region>-toxiproxy): rename the longer zone (or the zone toxiproxy)";
    pub const ZONE_TOKEN_WITHOUT_SOURCES: &str = "stream.subjects contains {zone}, which only topology: sources replaces: set topology: sources or write the subjects out";
    pub const STREAM_NAME: &str = "stream.name must not contain '.', '*', '>' or whitespace (subjects may contain dots, the stream name may not): use for example EVENTS_REGION";
    pub const SUBJECTS: &str =
        "stream.subjects must list at least one subject, none empty or containing whitespace";
    pub const SUBJECT_TOKENS: &str = "each stream.subjects entry must be non-empty tokens separated by single dots (no leading, trailing or doubled dot), a literal first token, '*' and '>' only as whole tokens and '>' only last: for example orders.*.created or orders.> (a subject starting with a wildcard, such as > or *.x, would capture the JetStream API and _INBOX replies)";
    pub const SUBJECT_RESERVED: &str = "stream.subjects must not start with '$' or '_INBOX' ($JS, $SYS, $KV and other '$' subjects and _INBOX replies belong to NATS itself): capture your application's subjects, for example orders.>";
    pub const REPLICAS: &str = "stream.replicas must be between 1 and 5";
    pub const MAX_AGE: &str = "stream.maxAgeSeconds must be 0 (keep forever) or a number of seconds up to 3155760000 (100 years)";
    pub const MAX_BYTES: &str =
        "stream.maxBytes must be -1 (unlimited) or a positive number of bytes";
    pub const DUPLICATE_WINDOW: &str = "stream.duplicateWindowSeconds must be between 1 and 86400";
    pub const SYNC_INTERVAL: &str = "stream.syncInterval must be 'always' or a duration of at most 1h such as 250ms, 10s, 2m or 1h (whole numbers, no leading zero)";
    pub const RECONNECT: &str = "leafnode.reconnectIntervalSeconds must be between 1 and 60";
    pub const EXTERNAL_DOMAIN: &str = "an external zone must set domain: the operator cannot configure that zone, so it must be told its JetStream domain";
    pub const ZONE_NAME: &str = "zone name must be a lowercase DNS label of at most 40 characters (it names the zone's StatefulSet and Services)";
    pub const SERVERS: &str = "servers must be between 1 and 9";
    pub const DOMAIN: &str = "zones[].domain may contain only letters, digits, '_' and '-' (it becomes part of the $JS.<domain>.API subject)";
    pub const STORAGE_SIZE: &str = "zones[].storage.size must be a quantity of at least 1Mi in Mi, Gi or Ti, such as 512Mi or 10Gi (JetStream needs room for its file store; 0 leaves it none)";
    pub const EXTERNAL_URL: &str =
        "zones[].external.url must look like nats://host:4222 or tls://host:4222";
    pub const TLS_ZONE_SECRET_MISSING: &str = "tls.mode Secrets needs a tls.zoneSecrets entry (zone, secretName) for every managed zone: add one for each zone without one, or set tls.mode to Generated to have the operator issue the certificates";
    pub const TLS_ZONE_SECRET_EXTERNAL: &str = "tls.zoneSecrets names an external zone: the operator does not configure its servers; remove the entry and give the zone zones[].external.caSecret instead";
    pub const TLS_ZONE_SECRET_TWICE: &str =
        "tls.zoneSecrets names a zone twice: keep one entry per zone";
    pub const TLS_SECRETS_ONLY: &str = "tls.caSecret and tls.zoneSecrets are only read with tls.mode Secrets: set mode: Secrets or remove them";
    pub const TLS_CA_SECRET: &str = "tls.mode Secrets needs tls.caSecret: name the Secret whose ca.crt signed the zones' certificates";
    pub const TLS_VALIDITY: &str = "tls.validityDays must be between 1 and 3650";
    pub const TLS_RENEW_BEFORE: &str = "tls.renewBeforeDays must be at least 1 and less than tls.validityDays (a certificate is renewed that many days before it expires; 0 would let it expire first)";
    pub const EXTERNAL_CA_NEEDS_TLS: &str = "zones[].external.caSecret is only used with a tls:// URL: change the url to tls://host:port or remove caSecret";
    pub const PARTITION_HEALED: &str = "steps must contain as many heal steps as partition steps: a drill never leaves a partition behind";
    pub const VERIFY_LAST: &str = "steps must end with verify: the claims are judged there";
    pub const SCHEDULE: &str = "schedule must be a cron expression with 5 fields (minute 0-59, hour 0-23, day of month 1-31, month 1-12 or JAN-DEC, day of week 0-7 or SUN-SAT), each a number, a range a-b with a <= b, */n, a-b/n or a comma-separated list of these, for example '0 3 * * *' or '*/15 8-18 * * MON-FRI'";
    pub const SCHEDULE_NEVER: &str = "schedule names a date that never occurs (day 30 or 31 of February, or day 31 of a 30-day month, with day of week *): pick a day the month has, or name the weekday";
    pub const DRILL_NAME: &str = "metadata.name of a PartitionDrill must be a DNS label of at most 63 characters (lowercase letters, digits and '-', starting with a letter): it becomes a label value and part of the drill's NATS durable consumer names, which may not contain '.'";
    pub const SUSPEND_SCHEDULE: &str = "suspend pauses a schedule and this drill has none: set spec.schedule too, or leave suspend out (a drill without a schedule runs once when created, and again when its spec changes)";
    pub const HISTORY_LIMIT: &str = "historyLimit must be between 1 and 50";
    pub const REGION_REF: &str = "regionRef.name must name a RegionMirror in the drill's namespace";
    pub const FAULT_DEADLINE: &str = "fault.deadlineSeconds must be between 10 and 3600";
    pub const FAULT_HOLD: &str = "fault.holdSeconds must be between 1 and 3600";
    pub const HOLD_BEFORE_DEADLINE: &str = "fault.holdSeconds must be shorter than fault.deadlineSeconds: the deadline removes the fault";
    pub const TOXIC_LATENCY: &str = "a latency toxic needs latencyMillis >= 0";
    pub const TOXIC_BANDWIDTH: &str = "a bandwidth toxic needs rateKilobytesPerSecond >= 1";
    pub const MESSAGES: &str = "workload.messagesPerPhase must be between 1 and 10000000";
    pub const RATE: &str = "workload.ratePerSecond must be between 0 (unthrottled) and 1000000";
    pub const PAYLOAD: &str = "workload.payloadBytes must be between 32 and 1048576";
    pub const STEP_TIMEOUT: &str = "timeouts.stepSeconds must be between 5 and 3600";
    pub const CATCH_UP_TIMEOUT: &str = "timeouts.catchUpSeconds must be between 1 and 3600";
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    #[error("{kind} {name} is invalid: {}", join(.errors))]
    Rules {
        kind: &'static str,
        name: String,
        errors: Vec<String>,
    },
    #[error("PartitionDrill {drill}: {message}")]
    Drill { drill: String, message: String },
}

fn join(errors: &[String]) -> String {
    errors.join("; ")
}

fn rules_error(kind: &'static str, name: Option<&str>, errors: ValidationErrors) -> SpecError {
    SpecError::Rules {
        kind,
        name: name.unwrap_or("(unnamed)").to_string(),
        errors: errors.iter().map(|e| e.to_string()).collect(),
    }
}

/// Runs the CRD's CEL rules on a drill: the checks that need no region.
/// The schedule is then parsed as the operator runs it ([`schedule`]), which
/// also refuses the rare pattern the CEL rule cannot see never fires.
pub fn drill_rules(drill: &PartitionDrill) -> Result<(), SpecError> {
    drill
        .validate_cel()
        .map_err(|e| rules_error("PartitionDrill", drill.metadata.name.as_deref(), e))?;
    if let Some(pattern) = &drill.spec.schedule {
        schedule(pattern).map_err(|message| SpecError::Drill {
            drill: drill.metadata.name.clone().unwrap_or_default(),
            message,
        })?;
    }
    Ok(())
}

/// A drill's `schedule` as the operator runs it: exactly five fields, and a
/// time it fires at. Every 5-field pattern that fires at all fires within
/// eight years (29 February included), so none found from 2000 to 2008
/// means never; without this check a never-firing schedule ran the drill once
/// and then failed.
pub fn schedule(pattern: &str) -> Result<croner::Cron, String> {
    use croner::parser::{CronParser, Seconds, Year};
    let parser = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build();
    let cron = parser.parse(pattern).map_err(|e| {
        format!(
            "schedule {pattern:?} is not a cron expression croner runs ({e}): {}",
            msg::SCHEDULE
        )
    })?;
    let from = jiff::civil::date(2000, 1, 1).to_zoned(jiff::tz::TimeZone::UTC);
    let fires = from
        .as_ref()
        .ok()
        .and_then(|from| cron.find_next_occurrence(from, true).ok())
        .is_some_and(|next| next.year() < 2008);
    if fires {
        Ok(cron)
    } else {
        Err(format!(
            "schedule {pattern:?} never fires: {}",
            msg::SCHEDULE_NEVER
        ))
    }
}

/// Runs the CRD's CEL rules on a region, with `old` for the transition rules.
pub fn region(region: &RegionMirror, old: Option<&RegionMirror>) -> Result<(), SpecError> {
    let checked = match old {
        Some(old) => region.validate_cel_update(old),
        None => region.validate_cel(),
    };
    checked.map_err(|e| rules_error("RegionMirror", region.metadata.name.as_deref(), e))
}

/// Runs the CRD's CEL rules on a drill, then the checks that need its region.
pub fn drill(drill: &PartitionDrill, region: &RegionMirror) -> Result<(), SpecError> {
    drill_rules(drill)?;
    let name = drill.metadata.name.clone().unwrap_or_default();
    let fail = |message: String| {
        Err(SpecError::Drill {
            drill: name.clone(),
            message,
        })
    };
    let spec = &drill.spec;
    let region_name = region.metadata.name.as_deref().unwrap_or_default();
    if spec.region_ref.name != region_name {
        return fail(format!(
            "regionRef.name is {:?} but the region given is {region_name:?}: point regionRef.name at it",
            spec.region_ref.name
        ));
    }
    for zone in &spec.fault.zones {
        match region.spec.zone(zone) {
            None => {
                return fail(format!(
                    "fault.zones names {zone:?}, which is not a zone of region {region_name}: use one of {}",
                    zone_names(region)
                ));
            }
            Some(z) if z.is_source() => {
                return fail(format!(
                    "fault.zones names the source zone {zone:?}: list the mirror zones to cut from it"
                ));
            }
            Some(_) => {}
        }
    }
    if let Some(zone) = &spec.workload.pause_zone
        && region.spec.zone(zone).is_none()
    {
        return fail(format!(
            "workload.pauseZone {zone:?} is not a zone of region {region_name}: use one of {}",
            zone_names(region)
        ));
    }
    let steps = spec.steps();
    if steps.contains(&Step::AddTemporaryZone)
        && region.spec.zone(&spec.temporary_zone.name).is_some()
    {
        return fail(format!(
            "temporaryZone.name {:?} is already a zone of the region: choose another name",
            spec.temporary_zone.name
        ));
    }
    if steps.contains(&Step::AddTemporaryZone)
        && let Some(z) = region
            .spec
            .zones
            .iter()
            .find(|z| zone_names_clash(&z.name, &spec.temporary_zone.name))
    {
        return fail(format!(
            "temporaryZone.name {:?} and zone {:?} of the region: {}",
            spec.temporary_zone.name,
            z.name,
            msg::ZONE_NAMES_CLASH
        ));
    }
    if steps.contains(&Step::AddTemporaryZone)
        && region.spec.tls.mode == crate::api::TlsMode::Secrets
        && region
            .spec
            .tls
            .zone_secret(&spec.temporary_zone.name)
            .is_none()
    {
        return fail(format!(
            "temporaryZone.name {:?} has no certificate: the region's tls.mode is Secrets, so add a tls.zoneSecrets entry for that zone to the region, or drop the add-temporary-zone step",
            spec.temporary_zone.name
        ));
    }
    if steps.contains(&Step::AddTemporaryZone)
        && region_name.len() + spec.temporary_zone.name.len() > MAX_REGION_AND_ZONE_NAME
    {
        return fail(format!(
            "temporaryZone.name {:?} is too long for region {region_name:?}: {}",
            spec.temporary_zone.name,
            msg::NAMES_FIT
        ));
    }
    if steps.contains(&Step::Partition) && region.spec.mirror_zones().next().is_none() {
        return fail("the region has no mirror zone to cut: add a zone with role: mirror or drop the partition step".to_string());
    }
    if let Some(message) = cut_outlasts_deadline(spec) {
        return fail(message);
    }
    let mut open = 0;
    for step in &steps {
        match step {
            Step::Partition if open > 0 => {
                return fail(
                    "steps partition twice without a heal in between: add a heal step".to_string(),
                );
            }
            Step::Partition => open += 1,
            Step::Heal if open == 0 => {
                return fail(
                    "a heal step comes before any partition: move it after the partition"
                        .to_string(),
                );
            }
            Step::Heal => open -= 1,
            _ => {}
        }
    }
    Ok(())
}

/// What the heal step does on top of the hold before the cut is removed:
/// waits up to 5 s for the writing zones' consumers, reads every link's
/// position and probes across the cut.
pub const HEAL_CHECKS_SECONDS: f64 = 10.0;

/// Why a cut would outlast its deadline, if it would: from each partition to
/// its heal the cut stays for the hold or for the phases published in
/// between at the workload's rate, whichever is longer, plus the heal's own
/// checks. A deadline shorter than that removes the cut before the heal, and
/// claim 1 could only end Inconclusive. An unthrottled rate (0) cannot be
/// timed in advance: the drill then says at the heal if the cut ended early.
pub fn cut_outlasts_deadline(spec: &crate::api::PartitionDrillSpec) -> Option<String> {
    let rate = spec.workload.rate_per_second;
    let deadline = spec.fault.deadline_seconds as f64;
    let hold = spec.fault.hold_seconds as f64;
    let mut phases = None::<u32>;
    let mut longest = 0u32;
    for step in spec.steps() {
        match (step, phases.as_mut()) {
            (Step::Partition, _) => phases = Some(0),
            (Step::Heal, Some(n)) => {
                longest = longest.max(*n);
                phases = None;
            }
            (Step::Produce | Step::PauseConsumer | Step::BuildBacklog, Some(n)) => *n += 1,
            _ => {}
        }
    }
    let publishing = if rate > 0 {
        f64::from(longest) * spec.workload.messages_per_phase as f64 / rate as f64
    } else {
        0.0
    };
    let needed = hold.max(publishing) + HEAL_CHECKS_SECONDS;
    if needed <= deadline {
        return None;
    }
    let why = if publishing > hold {
        format!(
            "the steps between partition and heal publish {longest} phase(s) of {} messages at {rate}/s, about {publishing:.0} s",
            spec.workload.messages_per_phase
        )
    } else {
        format!("fault.holdSeconds is {hold:.0}")
    };
    Some(format!(
        "{why}; with the heal's own checks (about {HEAL_CHECKS_SECONDS:.0} s) the cut must last about {needed:.0} s, longer than fault.deadlineSeconds {deadline:.0}, which would remove it before the heal and leave claim 1 unjudged: raise fault.deadlineSeconds to at least {:.0}, or publish less between partition and heal",
        needed.ceil()
    ))
}

fn zone_names(region: &RegionMirror) -> String {
    region
        .spec
        .zones
        .iter()
        .map(|z| z.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(
        fault: serde_json::Value,
        workload: serde_json::Value,
        steps: &str,
    ) -> crate::api::PartitionDrillSpec {
        serde_json::from_value(serde_json::json!({
            "regionRef": {"name": "east"},
            "fault": fault,
            "workload": workload,
            "steps": steps.split(',').map(str::trim).collect::<Vec<_>>(),
        }))
        .expect("drill spec")
    }

    const STEPS: &str = "produce, partition, produce, produce, heal, wait-for-catch-up, verify";

    #[test]
    fn a_cut_that_cannot_last_until_its_heal_is_refused_with_the_figures() {
        // Two phases of 1000 at 100/s: 20 s of publishing, 30 s with the checks.
        let slow = spec(
            serde_json::json!({"holdSeconds": 5, "deadlineSeconds": 25}),
            serde_json::json!({"messagesPerPhase": 1000, "ratePerSecond": 100}),
            STEPS,
        );
        let m = cut_outlasts_deadline(&slow).expect("refused");
        assert!(
            m.contains("2 phase(s) of 1000 messages at 100/s")
                && m.contains("fault.deadlineSeconds 25")
                && m.contains("at least 30"),
            "{m}"
        );
        // The same with room, or unthrottled (not timed in advance): accepted.
        let roomy = spec(
            serde_json::json!({"holdSeconds": 5, "deadlineSeconds": 30}),
            serde_json::json!({"messagesPerPhase": 1000, "ratePerSecond": 100}),
            STEPS,
        );
        assert_eq!(cut_outlasts_deadline(&roomy), None);
        let unthrottled = spec(
            serde_json::json!({"holdSeconds": 5, "deadlineSeconds": 20}),
            serde_json::json!({"messagesPerPhase": 1000000, "ratePerSecond": 0}),
            STEPS,
        );
        assert_eq!(cut_outlasts_deadline(&unthrottled), None);
        // A hold that leaves the heal no time before the deadline.
        let tight = spec(
            serde_json::json!({"holdSeconds": 9, "deadlineSeconds": 10}),
            serde_json::json!({}),
            "partition, heal, verify",
        );
        let m = cut_outlasts_deadline(&tight).expect("refused");
        assert!(
            m.contains("fault.holdSeconds is 9") && m.contains("at least 19"),
            "{m}"
        );
        // Phases outside the partition do not count.
        let outside = spec(
            serde_json::json!({"holdSeconds": 5, "deadlineSeconds": 20}),
            serde_json::json!({"messagesPerPhase": 100000, "ratePerSecond": 100}),
            "produce, partition, heal, produce, verify",
        );
        assert_eq!(cut_outlasts_deadline(&outside), None);
    }

    #[test]
    fn schedules_are_read_as_the_operator_runs_them() {
        for fires in [
            "0 3 * * *",
            "0 0 29 2 *",
            "*/15 8-18 * * MON-FRI",
            "0 0 31 4 1",
        ] {
            assert!(schedule(fires).is_ok(), "{fires}");
        }
        // The CEL rule sees no month range; croner finds no day in it.
        let e = schedule("0 0 31 4-4 *").unwrap_err();
        assert!(e.contains(msg::SCHEDULE_NEVER), "{e}");
        for bad in ["99 * * * *", "0 3 * * * *", "0 3 * * * * 2030"] {
            let e = schedule(bad).unwrap_err();
            assert!(e.contains(msg::SCHEDULE), "{bad}: {e}");
        }
    }

    #[test]
    fn zone_names_clash_on_the_operators_suffixes() {
        for (a, b) in [
            ("b", "b-client"),
            ("a-leaf", "a"),
            ("c", "c-config"),
            ("d", "d-tls"),
        ] {
            assert!(zone_names_clash(a, b), "{a} {b}");
        }
        assert!(zone_names_clash("toxiproxy", "a"));
        for (a, b) in [("b", "b-mirror"), ("b", "bb-client"), ("b-client", "c")] {
            assert!(!zone_names_clash(a, b), "{a} {b}");
        }
        // The CRD rule spells the same suffixes and reserved names.
        let crd = serde_json::to_string(&<RegionMirror as kube::CustomResourceExt>::crd()).unwrap();
        for s in ZONE_OBJECT_SUFFIXES.iter().chain(&RESERVED_ZONE_NAMES) {
            assert!(crd.contains(&format!("'{s}'")), "the CRD rule lacks {s}");
        }
    }

    #[test]
    fn a_temporary_zone_that_clashes_with_a_zone_is_refused() {
        let region = RegionMirror::new(
            "east",
            serde_json::from_value(serde_json::json!({
                "stream": {"name": "E", "subjects": ["e.>"]},
                "zones": [{"name": "a", "role": "source"}, {"name": "b", "role": "mirror"}],
            }))
            .unwrap(),
        );
        let mut d = PartitionDrill::new(
            "d",
            serde_json::from_value(serde_json::json!({"regionRef": {"name": "east"}})).unwrap(),
        );
        d.spec.temporary_zone.name = "b-leaf".into();
        let e = drill(&d, &region).unwrap_err().to_string();
        assert!(
            e.contains(msg::ZONE_NAMES_CLASH) && e.contains("\"b\""),
            "{e}"
        );
        d.spec.temporary_zone.name = "joiner".into();
        drill(&d, &region).expect("no clash");
    }

    #[test]
    fn the_default_drill_fits_its_default_deadline() {
        let d: crate::api::PartitionDrillSpec =
            serde_json::from_value(serde_json::json!({"regionRef": {"name": "east"}})).unwrap();
        assert_eq!(cut_outlasts_deadline(&d), None);
    }
}
