//! The CRDs against a real kube-apiserver (testenv::ControlPlane): they
//! install, the schema applies our defaults, status goes through the status
//! subresource, and every CEL message in `validate::msg` is enforced by the
//! API server and by the local validator alike.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use kube::{Resource, ResourceExt};
use natsregion::api::conditions::{Desired, upsert};
use natsregion::api::validate::{self, SpecError, msg};
use natsregion::api::{
    DrillPhase, ExternalZone, PartitionDrill, PartitionDrillStatus, RegionMirror,
    RegionMirrorStatus, Retention, Step, TlsMode, Topology, Toxic, ToxicType, ZoneRole,
    ZoneTlsSecret,
};
use natsregion::testenv::support::plane_with_crds;
use serde_json::json;

const MANAGER: &str = "natsregion";

fn base_region() -> RegionMirror {
    let spec = json!({
        "stream": {"name": "EVENTS_REGION", "subjects": ["events.>"]},
        "zones": [
            {"name": "a", "role": "source"},
            {"name": "b", "role": "mirror"},
            {"name": "c", "role": "mirror"},
        ],
    });
    RegionMirror::new("east", serde_json::from_value(spec).expect("region spec"))
}

fn base_drill() -> PartitionDrill {
    PartitionDrill::new(
        "east-drill",
        serde_json::from_value(json!({"regionRef": {"name": "east"}})).expect("drill spec"),
    )
}

#[tokio::test]
async fn schema_defaults_and_status_subresource() {
    let (plane, client) = plane_with_crds().await;

    // Raw JSON, so the defaults seen below come from the CRD schema and not
    // from serde defaults on our side.
    let region_ar = ApiResource::erase::<RegionMirror>(&());
    let raw: Api<DynamicObject> = Api::default_namespaced_with(client.clone(), &region_ar);
    let region: DynamicObject = serde_json::from_value(json!({
        "apiVersion": region_ar.api_version, "kind": region_ar.kind,
        "metadata": {"name": "east"},
        "spec": {
            "stream": {"name": "EVENTS_REGION", "subjects": ["events.>"]},
            "zones": [{"name": "a", "role": "source"}, {"name": "b", "role": "mirror"}, {"name": "c", "role": "mirror"}],
        },
    }))
    .unwrap();
    let created = raw
        .create(&PostParams::default(), &region)
        .await
        .expect("create RegionMirror");
    let spec = &created.data["spec"];
    assert_eq!(spec["stream"]["replicas"], 3, "{spec}");
    assert_eq!(spec["stream"]["retention"], "Limits");
    assert_eq!(spec["stream"]["storage"], "File");
    assert_eq!(spec["stream"]["syncInterval"], "2m");
    assert_eq!(spec["stream"]["duplicateWindowSeconds"], 120);
    assert_eq!(spec["leafnode"]["reconnectIntervalSeconds"], 1);
    assert_eq!(spec["image"], natsregion::api::default_image());
    for zone in spec["zones"].as_array().unwrap() {
        assert_eq!(zone["servers"], 3, "{zone}");
        assert_eq!(zone["storage"]["size"], "1Gi", "{zone}");
    }

    let drill_ar = ApiResource::erase::<PartitionDrill>(&());
    let raw_drills: Api<DynamicObject> = Api::default_namespaced_with(client.clone(), &drill_ar);
    let drill: DynamicObject = serde_json::from_value(json!({
        "apiVersion": drill_ar.api_version, "kind": drill_ar.kind,
        "metadata": {"name": "east-drill"},
        "spec": {"regionRef": {"name": "east"}},
    }))
    .unwrap();
    let created = raw_drills
        .create(&PostParams::default(), &drill)
        .await
        .expect("create PartitionDrill");
    let spec = &created.data["spec"];
    assert_eq!(spec["fault"]["backend"], "networkPolicy", "{spec}");
    assert_eq!(spec["fault"]["deadlineSeconds"], 300);
    assert_eq!(spec["fault"]["holdSeconds"], 8);
    assert_eq!(spec["workload"]["messagesPerPhase"], 1000);
    assert_eq!(spec["workload"]["payloadBytes"], 128);
    assert_eq!(spec["timeouts"]["stepSeconds"], 120);
    assert_eq!(spec["temporaryZone"]["name"], "joiner");
    assert_eq!(spec["temporaryZone"]["servers"], 1);
    assert_eq!(spec["historyLimit"], 5);
    assert!(
        spec.get("steps").is_none(),
        "absent steps mean the default sequence: {spec}"
    );

    // The typed view of what the server stored must pass our own validation.
    let regions: Api<RegionMirror> = Api::default_namespaced(client.clone());
    let drills: Api<PartitionDrill> = Api::default_namespaced(client.clone());
    let region = regions.get("east").await.expect("typed RegionMirror");
    let drill = drills
        .get("east-drill")
        .await
        .expect("typed PartitionDrill");
    validate::region(&region, None).expect("stored region validates locally");
    validate::drill(&drill, &region).expect("stored drill validates locally");

    // Conditions' times carry whole seconds on the wire.
    let now = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second()).unwrap();
    let mut region_status = RegionMirrorStatus {
        observed_generation: region.metadata.generation,
        source_zone: Some("a".into()),
        zones_ready: Some("3/3".into()),
        mirrors_in_sync: Some("2/2".into()),
        max_lag: Some(0),
        ..Default::default()
    };
    let ready = Desired {
        type_: "Ready",
        status: true,
        reason: "InSync",
        message: "every mirror caught up".into(),
    };
    upsert(
        &mut region_status.conditions,
        ready,
        region.metadata.generation,
        now,
    );
    let after = apply_status(&regions, &region, &region_status).await;
    assert_eq!(after.status.as_ref(), Some(&region_status));
    assert_eq!(
        after.metadata.generation, region.metadata.generation,
        "a status write must not bump generation"
    );
    assert_eq!(after.metadata.generation, Some(1));
    assert_ne!(
        after.metadata.resource_version,
        region.metadata.resource_version
    );

    let drill_status = PartitionDrillStatus {
        observed_generation: drill.metadata.generation,
        phase: DrillPhase::Running,
        current_step: Some("produce".into()),
        step_index: Some(0),
        started_at: Some(Time(now)),
        sync_interval: Some("2m".into()),
        ..Default::default()
    };
    let after = apply_status(&drills, &drill, &drill_status).await;
    assert_eq!(after.status.as_ref(), Some(&drill_status));
    assert_eq!(after.metadata.generation, drill.metadata.generation);
    assert_eq!(after.metadata.generation, Some(1));

    // The status subresource owns status: a write to the main resource
    // cannot change it, and a spec change bumps generation.
    let mut edited = after.clone();
    edited.spec.history_limit = 7;
    edited.status = Some(PartitionDrillStatus::default());
    let replaced = drills
        .replace("east-drill", &PostParams::default(), &edited)
        .await
        .expect("replace drill");
    assert_eq!(replaced.status.as_ref(), Some(&drill_status));
    assert_eq!(replaced.metadata.generation, Some(2));

    // Teardown kills every server and removes the directory.
    let pids = plane.pids();
    let root = plane.log_dir().parent().unwrap().to_path_buf();
    assert_eq!(pids.len(), 2, "etcd and kube-apiserver");
    drop(client);
    drop(plane);
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} survived the drop"
        );
    }
    if std::env::var_os(natsregion::testenv::controlplane::KEEP_ENV).is_none() {
        assert!(!root.exists(), "{} survived the drop", root.display());
    }
}

/// The garbage collector in kube-controller-manager removes what a custom
/// resource owns: the cleanup path for everything the operator and its drills
/// create.
#[tokio::test]
async fn controller_manager_collects_objects_owned_by_a_region() {
    let (mut plane, client) = plane_with_crds().await;
    // Started after the CRDs exist, so its first discovery already sees them.
    let started = Instant::now();
    match plane.start_controller_manager().await {
        Ok(()) => eprintln!("kube-controller-manager healthy in {:?}", started.elapsed()),
        Err(natsregion::testenv::Error::MissingTool(e)) => {
            eprintln!("skipped: {e}");
            return;
        }
        Err(e) => panic!("kube-controller-manager: {e}"),
    }
    let regions: Api<RegionMirror> = Api::default_namespaced(client.clone());
    let region = regions
        .create(&PostParams::default(), &base_region())
        .await
        .expect("create region");
    let owner = region.controller_owner_ref(&()).expect("owner reference");
    let config_maps: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let owned = ConfigMap {
        metadata: ObjectMeta {
            name: Some("east-owned".into()),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        ..Default::default()
    };
    config_maps
        .create(&PostParams::default(), &owned)
        .await
        .expect("create owned ConfigMap");
    regions
        .delete("east", &DeleteParams::background())
        .await
        .expect("delete region");
    let deadline = Instant::now() + Duration::from_secs(45);
    while config_maps
        .get_opt("east-owned")
        .await
        .expect("get ConfigMap")
        .is_some()
    {
        assert!(
            Instant::now() < deadline,
            "owned ConfigMap still there 45s after its region was deleted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "owned ConfigMap collected {:?} after start",
        started.elapsed()
    );
    assert_eq!(plane.pids().len(), 3);
}

/// Server-side apply of `status` alone through the status subresource, as the
/// operator does it; returns what the server stored.
async fn apply_status<K>(api: &Api<K>, object: &K, status: &impl serde::Serialize) -> K
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = json!({"apiVersion": K::api_version(&()), "kind": K::kind(&()), "status": status});
    api.patch_status(
        &object.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .unwrap_or_else(|e| panic!("status apply on {}: {e}", object.name_any()));
    api.get(&object.name_any()).await.expect("read back")
}

/// How one bad object is made from a valid one.
enum Bad {
    /// A region that is invalid on its own.
    Region(fn(&mut RegionMirror)),
    /// A valid region that is an invalid update of `base_region()`.
    RegionUpdate(fn(&mut RegionMirror)),
    /// A drill (against `base_region()`) that is invalid on its own.
    Drill(fn(&mut PartitionDrill)),
}

struct Case {
    name: &'static str,
    message: &'static str,
    bad: Bad,
}

macro_rules! case {
    ($kind:ident, $msg:ident, $mutate:expr) => {
        Case {
            name: stringify!($msg),
            message: msg::$msg,
            bad: Bad::$kind($mutate),
        }
    };
}

/// One mutation per message; each mutation breaks that rule and no other.
fn cases() -> Vec<Case> {
    vec![
        case!(Region, ONE_SOURCE, |r| r.spec.zones[0].role =
            ZoneRole::Mirror),
        case!(Region, UNIQUE_ZONE_NAMES, |r| {
            // A distinct domain, or the default domain would repeat too.
            r.spec.zones[2].name = "b".into();
            r.spec.zones[2].domain = Some("c".into());
        }),
        case!(Region, UNIQUE_DOMAINS, |r| r.spec.zones[1].domain =
            Some("a".into())),
        case!(Region, LIMITS_RETENTION, |r| r.spec.stream.retention =
            Retention::WorkQueue),
        case!(Region, REPLICAS_FIT, |r| r.spec.zones[0].servers = 1),
        case!(RegionUpdate, SOURCE_ZONE_IMMUTABLE, |r| {
            r.spec.zones[0].role = ZoneRole::Mirror;
            r.spec.zones[1].role = ZoneRole::Source;
        }),
        // Renaming the source zone moves the source as surely as a role swap.
        case!(RegionUpdate, SOURCE_ZONE_IMMUTABLE, |r| r.spec.zones[0]
            .name =
            "x".into()),
        case!(RegionUpdate, STREAM_NAME_IMMUTABLE, |r| r
            .spec
            .stream
            .name =
            "EVENTS_OTHER".into()),
        case!(RegionUpdate, TOPOLOGY_IMMUTABLE, |r| {
            r.spec.topology = Topology::Sources;
            r.spec.stream.subjects = vec!["events.{zone}.>".into()];
        }),
        case!(Region, SOURCES_SUBJECTS, |r| r.spec.topology =
            Topology::Sources),
        case!(Region, ZONE_TOKEN_WITHOUT_SOURCES, |r| r
            .spec
            .stream
            .subjects =
            vec!["events.{zone}.>".into()]),
        case!(Region, STREAM_NAME, |r| r.spec.stream.name =
            "EVENTS.REGION".into()),
        case!(Region, SUBJECTS, |r| r.spec.stream.subjects =
            vec!["events region".into()]),
        case!(Region, SUBJECT_TOKENS, |r| r.spec.stream.subjects =
            vec![">".into()]),
        case!(Region, SUBJECT_TOKENS, |r| r.spec.stream.subjects =
            vec!["a..b".into()]),
        case!(Region, SUBJECT_TOKENS, |r| r.spec.stream.subjects =
            vec![".a".into()]),
        case!(Region, SUBJECT_TOKENS, |r| r.spec.stream.subjects =
            vec!["a.".into()]),
        case!(Region, SUBJECT_TOKENS, |r| r.spec.stream.subjects =
            vec!["a.>.b".into()]),
        case!(Region, SUBJECT_TOKENS, |r| r.spec.stream.subjects =
            vec!["a*.b".into()]),
        case!(Region, SUBJECT_TOKENS, |r| r.spec.stream.subjects =
            vec!["*.orders".into()]),
        case!(Region, SUBJECT_RESERVED, |r| r.spec.stream.subjects =
            vec!["$JS.>".into()]),
        case!(Region, SUBJECT_RESERVED, |r| r.spec.stream.subjects =
            vec!["events.>".into(), "_INBOX.>".into()]),
        case!(Region, SUBJECT_RESERVED, |r| r.spec.stream.subjects =
            vec!["$SYS.>".into()]),
        case!(Region, SUBJECT_RESERVED, |r| r.spec.stream.subjects =
            vec!["$KV.bucket.>".into()]),
        case!(Region, SOURCES_ZONE_TOKEN, |r| {
            // Zone b's a.foo.b is also zone a's a.> (and *.foo.{zone}, as
            // any subject starting with a wildcard, breaks SUBJECT_TOKENS).
            r.spec.topology = Topology::Sources;
            r.spec.stream.subjects = vec!["{zone}.>".into(), "a.foo.{zone}".into()];
        }),
        case!(Region, SOURCES_ZONE_TOKEN, |r| {
            // Zone a-b's orders-a-b.> is also zone b's orders-a-{zone}.>.
            r.spec.topology = Topology::Sources;
            r.spec.stream.subjects = vec!["orders-{zone}.>".into(), "orders-a-{zone}.>".into()];
        }),
        case!(Region, ZONE_NAMES_CLASH, |r| r.spec.zones[2].name =
            "b-client".into()),
        case!(Region, ZONE_NAMES_CLASH, |r| r.spec.zones[2].name =
            "a-leaf".into()),
        case!(Region, ZONE_NAMES_CLASH, |r| r.spec.zones[2].name =
            "b-config".into()),
        case!(Region, ZONE_NAMES_CLASH, |r| r.spec.zones[2].name =
            "a-tls".into()),
        case!(Region, ZONE_NAMES_CLASH, |r| r.spec.zones[2].name =
            "toxiproxy".into()),
        case!(Region, REPLICAS, |r| r.spec.stream.replicas = 0),
        case!(Region, MAX_AGE, |r| r.spec.stream.max_age_seconds =
            Some(-1)),
        // 2^64 ns plus about 199 s: wrapped, it purged every zone.
        case!(Region, MAX_AGE, |r| r.spec.stream.max_age_seconds =
            Some(18_446_744_273)),
        case!(Region, MAX_BYTES, |r| r.spec.stream.max_bytes = Some(-2)),
        case!(Region, DUPLICATE_WINDOW, |r| r
            .spec
            .stream
            .duplicate_window_seconds =
            0),
        case!(Region, SYNC_INTERVAL, |r| r.spec.stream.sync_interval =
            "2 minutes".into()),
        case!(Region, SYNC_INTERVAL, |r| r.spec.stream.sync_interval =
            "99999999999h".into()),
        case!(Region, SYNC_INTERVAL, |r| r.spec.stream.sync_interval =
            "61m".into()),
        case!(Region, RECONNECT, |r| r
            .spec
            .leafnode
            .reconnect_interval_seconds = 0),
        case!(Region, EXTERNAL_DOMAIN, |r| {
            r.spec.zones[2].external = Some(ExternalZone {
                url: "nats://c.example:4222".into(),
                credentials_secret: None,
                ca_secret: None,
            })
        }),
        case!(Region, ZONE_NAME, |r| r.spec.zones[1].name =
            "Zone-B".into()),
        case!(Region, REGION_NAME, |r| r.metadata.name =
            Some("east.prod".into())),
        case!(Region, NAMES_FIT, |r| {
            // 20 + 32 characters: each name valid alone, one too many together.
            r.metadata.name = Some(format!("east-{}", "x".repeat(15)));
            r.spec.zones[1].name = "b".repeat(32);
        }),
        case!(Region, SERVERS, |r| r.spec.zones[1].servers = 10),
        case!(Region, DOMAIN, |r| r.spec.zones[1].domain =
            Some("b.east".into())),
        case!(Region, STORAGE_SIZE, |r| r.spec.zones[1].storage.size =
            "1GB".into()),
        case!(Region, STORAGE_SIZE, |r| r.spec.zones[1].storage.size =
            "0Gi".into()),
        case!(Region, STORAGE_SIZE, |r| r.spec.zones[1].storage.size =
            "512Ki".into()),
        case!(Region, EXTERNAL_URL, |r| {
            r.spec.zones[2].domain = Some("c".into());
            r.spec.zones[2].external = Some(ExternalZone {
                url: "http://c.example:4222".into(),
                credentials_secret: None,
                ca_secret: None,
            });
        }),
        case!(Region, EXTERNAL_CA_NEEDS_TLS, |r| {
            r.spec.zones[2].domain = Some("c".into());
            r.spec.zones[2].external = Some(ExternalZone {
                url: "nats://c.example:4222".into(),
                credentials_secret: None,
                ca_secret: Some("c-ca".into()),
            });
        }),
        case!(Region, TLS_ZONE_SECRET_MISSING, |r| {
            user_secrets(r, &["a", "b"]);
        }),
        case!(Region, TLS_ZONE_SECRET_EXTERNAL, |r| {
            r.spec.zones[2].domain = Some("c".into());
            r.spec.zones[2].external = Some(ExternalZone {
                url: "tls://c.example:4222".into(),
                credentials_secret: None,
                ca_secret: None,
            });
            user_secrets(r, &["a", "b", "c"]);
        }),
        case!(Region, TLS_ZONE_SECRET_TWICE, |r| {
            user_secrets(r, &["a", "b", "c", "a"]);
        }),
        case!(Region, TLS_SECRETS_ONLY, |r| r.spec.tls.ca_secret =
            Some("east-ca".into())),
        case!(Region, TLS_CA_SECRET, |r| {
            user_secrets(r, &["a", "b", "c"]);
            r.spec.tls.ca_secret = None;
        }),
        case!(Region, TLS_VALIDITY, |r| r.spec.tls.validity_days = 4000),
        case!(Region, TLS_RENEW_BEFORE, |r| r.spec.tls.renew_before_days =
            90),
        case!(Region, TLS_RENEW_BEFORE, |r| r.spec.tls.renew_before_days =
            0),
        case!(Drill, PARTITION_HEALED, |d| d.spec.steps =
            Some(vec![Step::Produce, Step::Partition, Step::Verify])),
        case!(Drill, VERIFY_LAST, |d| d.spec.steps =
            Some(vec![Step::Produce])),
        case!(Drill, SCHEDULE, |d| d.spec.schedule =
            Some("0 3 * *".into())),
        case!(Drill, SCHEDULE, |d| d.spec.schedule =
            Some("99 * * * *".into())),
        case!(Drill, SCHEDULE, |d| d.spec.schedule =
            Some("0 24 * * *".into())),
        case!(Drill, SCHEDULE, |d| d.spec.schedule =
            Some("0 3 0 * *".into())),
        case!(Drill, SCHEDULE, |d| d.spec.schedule =
            Some("0 3 * 13 *".into())),
        case!(Drill, SCHEDULE, |d| d.spec.schedule =
            Some("0 3 * * 8".into())),
        case!(Drill, SCHEDULE, |d| d.spec.schedule =
            Some("30-10 * * * *".into())),
        case!(Drill, SCHEDULE, |d| d.spec.schedule =
            Some("*/0 * * * *".into())),
        // Names count as their numbers, as croner reads them (SUN is 0).
        case!(Drill, SCHEDULE, |d| d.spec.schedule =
            Some("0 3 * * FRI-MON".into())),
        case!(Drill, SCHEDULE, |d| d.spec.schedule =
            Some("0 3 * dec-jan *".into())),
        case!(Drill, SCHEDULE, |d| d.spec.schedule =
            Some("5/15 * * * *".into())),
        case!(Drill, SCHEDULE_NEVER, |d| d.spec.schedule =
            Some("0 0 31 2 *".into())),
        case!(Drill, SCHEDULE_NEVER, |d| d.spec.schedule =
            Some("0 0 30 feb ?".into())),
        case!(Drill, SCHEDULE_NEVER, |d| d.spec.schedule =
            Some("0 0 31 4,6,9,11 *".into())),
        case!(Drill, DRILL_NAME, |d| d.metadata.name =
            Some("nightly.east".into())),
        case!(Drill, DRILL_NAME, |d| d.metadata.name =
            Some("d".repeat(64))),
        case!(Drill, HISTORY_LIMIT, |d| d.spec.history_limit = 0),
        case!(Drill, SUSPEND_SCHEDULE, |d| d.spec.suspend = true),
        case!(Drill, REGION_REF, |d| d.spec.region_ref.name =
            String::new()),
        case!(Drill, FAULT_DEADLINE, |d| {
            // Keep the hold below the deadline so only the range rule fires.
            d.spec.fault.deadline_seconds = 5;
            d.spec.fault.hold_seconds = 1;
        }),
        case!(Drill, FAULT_HOLD, |d| d.spec.fault.hold_seconds = 0),
        case!(Drill, HOLD_BEFORE_DEADLINE, |d| d.spec.fault.hold_seconds =
            400),
        case!(Drill, TOXIC_LATENCY, |d| d.spec.fault.toxics =
            vec![toxic(ToxicType::Latency)]),
        case!(Drill, TOXIC_BANDWIDTH, |d| {
            d.spec.fault.toxics = vec![Toxic {
                rate_kilobytes_per_second: Some(0),
                ..toxic(ToxicType::Bandwidth)
            }]
        }),
        case!(Drill, MESSAGES, |d| d.spec.workload.messages_per_phase = 0),
        case!(Drill, RATE, |d| d.spec.workload.rate_per_second = -1),
        case!(Drill, PAYLOAD, |d| d.spec.workload.payload_bytes = 16),
        case!(Drill, STEP_TIMEOUT, |d| d.spec.timeouts.step_seconds = 1),
        case!(Drill, CATCH_UP_TIMEOUT, |d| d
            .spec
            .timeouts
            .catch_up_seconds = 0),
        // The temporary zone reuses the zone rules; check they are wired there too.
        case!(Drill, ZONE_NAME, |d| d.spec.temporary_zone.name =
            "Joiner".into()),
        case!(Drill, SERVERS, |d| d.spec.temporary_zone.servers = 0),
    ]
}

/// `tls.mode: Secrets` with the CA Secret and one Secret per zone named.
fn user_secrets(r: &mut RegionMirror, zones: &[&str]) {
    r.spec.tls.mode = TlsMode::Secrets;
    r.spec.tls.ca_secret = Some("east-ca".into());
    r.spec.tls.zone_secrets = zones
        .iter()
        .map(|z| ZoneTlsSecret {
            zone: z.to_string(),
            secret_name: format!("east-{z}-cert"),
        })
        .collect();
}

fn toxic(type_: ToxicType) -> Toxic {
    Toxic {
        type_,
        latency_millis: None,
        jitter_millis: None,
        rate_kilobytes_per_second: None,
    }
}

/// Names of the constants in `validate::msg`, read from the source so that a
/// new rule without a case here fails this test instead of going unchecked.
fn message_names() -> BTreeSet<&'static str> {
    let source = include_str!("../src/api/validate.rs");
    let body = source
        .split("pub mod msg {")
        .nth(1)
        .expect("validate.rs has `pub mod msg`");
    let body = &body[..body.find("\n}").expect("end of mod msg")];
    body.lines()
        .filter_map(|l| l.trim().strip_prefix("pub const ")?.split(':').next())
        .collect()
}

/// All message texts, to check that an error names only the rule we broke.
fn all_messages() -> Vec<&'static str> {
    cases().iter().map(|c| c.message).collect()
}

fn assert_names_only(error: &str, case: &Case, side: &str) {
    assert!(
        error.contains(case.message),
        "{side}: {} was not reported; got: {error}",
        case.name
    );
    for other in all_messages() {
        assert!(
            other == case.message || !error.contains(other),
            "{side}: breaking {} also broke another rule: {error}",
            case.name
        );
    }
}

fn local_error(result: Result<(), SpecError>, case: &Case) -> String {
    match result {
        Err(e @ SpecError::Rules { .. }) => e.to_string(),
        other => panic!(
            "local validator: {} expected a CEL rule error, got {other:?}",
            case.name
        ),
    }
}

fn api_error(result: Result<impl std::fmt::Debug, kube::Error>, case: &Case) -> String {
    match result {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{}: {status:?}", case.name);
            status.message
        }
        other => panic!(
            "API server: {} expected a 422 rejection, got {other:?}",
            case.name
        ),
    }
}

#[tokio::test]
async fn every_cel_message_is_enforced_by_the_api_server_and_locally() {
    let covered: BTreeSet<&str> = cases().iter().map(|c| c.name).collect();
    let declared = message_names();
    let missing: Vec<_> = declared.difference(&covered).copied().collect();
    assert!(
        missing.is_empty(),
        "messages in validate::msg without a bad-object case: {missing:?}"
    );
    assert_eq!(
        declared, covered,
        "reading the message names from validate.rs went wrong"
    );

    let (_plane, client) = plane_with_crds().await;
    let regions: Api<RegionMirror> = Api::default_namespaced(client.clone());
    let drills: Api<PartitionDrill> = Api::default_namespaced(client.clone());
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };

    // The starting points are valid on both sides, or the cases prove nothing.
    validate::region(&base_region(), None).expect("base region validates locally");
    validate::drill(&base_drill(), &base_region()).expect("base drill validates locally");
    let stored = regions
        .create(&PostParams::default(), &base_region())
        .await
        .expect("API server accepts the base region");
    drills
        .create(&dry_run, &base_drill())
        .await
        .expect("API server accepts the base drill");

    // Near misses the new rules must not refuse, on either side.
    let good_regions: [fn(&mut RegionMirror); 8] = [
        |r| r.spec.stream.max_age_seconds = Some(3_155_760_000),
        |r| r.spec.stream.sync_interval = "3600000ms".into(),
        |r| r.spec.stream.sync_interval = "60m".into(),
        |r| r.spec.zones[1].storage.size = "1Mi".into(),
        |r| r.spec.stream.subjects = vec!["orders.*.created".into(), "a.>".into(), "x".into()],
        |r| {
            r.spec.topology = Topology::Sources;
            r.spec.stream.subjects = vec!["orders.{zone}.>".into(), "payments.{zone}".into()];
        },
        |r| r.spec.zones[2].name = "b-mirror".into(),
        |r| r.spec.tls.renew_before_days = 1,
    ];
    for mutate in good_regions {
        let mut good = base_region();
        good.metadata.name = Some("west".into()); // "east" is stored
        mutate(&mut good);
        validate::region(&good, None)
            .unwrap_or_else(|e| panic!("local validator refused {:?}: {e}", good.spec));
        regions
            .create(&dry_run, &good)
            .await
            .unwrap_or_else(|e| panic!("API server refused {:?}: {e}", good.spec));
    }
    for schedule in [
        "0 3 * * *",
        "*/15 8-18 * * MON-FRI",
        "0 0 29 2 *",
        "0 0 30 1,3 *",
        "0 0 31 2 1",
        "5,10-20/5 0 1-31 jan-dec ?",
        "0 3 * * sun-sat",
        "59 23 31 12 7",
    ] {
        let mut good = base_drill();
        good.spec.schedule = Some(schedule.into());
        validate::drill(&good, &base_region())
            .unwrap_or_else(|e| panic!("local validator refused {schedule:?}: {e}"));
        drills
            .create(&dry_run, &good)
            .await
            .unwrap_or_else(|e| panic!("API server refused {schedule:?}: {e}"));
    }

    for case in cases() {
        match case.bad {
            Bad::Region(mutate) => {
                let mut bad = base_region();
                mutate(&mut bad);
                assert_names_only(
                    &local_error(validate::region(&bad, None), &case),
                    &case,
                    "local validator",
                );
                assert_names_only(
                    &api_error(regions.create(&dry_run, &bad).await, &case),
                    &case,
                    "API server",
                );
            }
            Bad::RegionUpdate(mutate) => {
                let mut bad = stored.clone();
                mutate(&mut bad);
                validate::region(&bad, None).unwrap_or_else(|e| {
                    panic!("{}: the new object must be valid by itself: {e}", case.name)
                });
                assert_names_only(
                    &local_error(validate::region(&bad, Some(&stored)), &case),
                    &case,
                    "local validator",
                );
                assert_names_only(
                    &api_error(regions.replace("east", &dry_run, &bad).await, &case),
                    &case,
                    "API server",
                );
            }
            Bad::Drill(mutate) => {
                let mut bad = base_drill();
                mutate(&mut bad);
                assert_names_only(
                    &local_error(validate::drill(&bad, &base_region()), &case),
                    &case,
                    "local validator",
                );
                assert_names_only(
                    &api_error(drills.create(&dry_run, &bad).await, &case),
                    &case,
                    "API server",
                );
            }
        }
    }
}

/// What `kubectl apply` sends by default: server-side field validation
/// Strict. A misspelt field and a list over its maxItems are refused by the
/// API server, and the local drill-file loader refuses the same objects from
/// the same schema (api::schema_check), instead of dropping the typo and
/// running with the default.
#[tokio::test]
async fn strict_field_validation_refuses_what_local_mode_refuses() {
    let (_plane, client) = plane_with_crds().await;
    let strict = PatchParams::apply(MANAGER).validation_strict().dry_run();
    let region_ar = ApiResource::erase::<RegionMirror>(&());
    let drill_ar = ApiResource::erase::<PartitionDrill>(&());
    let regions: Api<DynamicObject> = Api::default_namespaced_with(client.clone(), &region_ar);
    let drills: Api<DynamicObject> = Api::default_namespaced_with(client.clone(), &drill_ar);

    let region = |zones: usize| {
        let zones: Vec<_> = (0..zones)
            .map(|i| json!({"name": format!("z{i}"), "role": if i == 0 { "source" } else { "mirror" }}))
            .collect();
        json!({
            "apiVersion": region_ar.api_version, "kind": region_ar.kind,
            "metadata": {"name": "east"},
            "spec": {"stream": {"name": "EVENTS_REGION", "subjects": ["events.>"]}, "zones": zones},
        })
    };
    let drill = |fault: serde_json::Value| {
        json!({
            "apiVersion": drill_ar.api_version, "kind": drill_ar.kind,
            "metadata": {"name": "east-drill"},
            "spec": {"regionRef": {"name": "east"}, "fault": fault},
        })
    };
    let file = |region: &serde_json::Value, drill: &serde_json::Value| {
        format!(
            "{}---\n{}",
            serde_yaml_ng::to_string(region).unwrap(),
            serde_yaml_ng::to_string(drill).unwrap()
        )
    };
    let local = |text: String| match natsregion::cli::drill_file::parse("x.yaml", &text) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("local mode accepted:\n{text}"),
    };
    let refused = |result: Result<DynamicObject, kube::Error>, what: &str| match result {
        Err(kube::Error::Api(status)) => status.message,
        other => panic!("API server: {what} expected a refusal, got {other:?}"),
    };

    // Both starting points are accepted by both sides.
    let (good_region, good_drill) = (region(3), drill(json!({"holdSeconds": 30})));
    natsregion::cli::drill_file::parse("x.yaml", &file(&good_region, &good_drill))
        .expect("local mode accepts the good file");
    regions
        .patch("east", &strict, &Patch::Apply(&good_region))
        .await
        .expect("API server accepts the good region");
    drills
        .patch("east-drill", &strict, &Patch::Apply(&good_drill))
        .await
        .expect("API server accepts the good drill");

    let typo = drill(json!({"holdSecond": 30}));
    let api = refused(
        drills
            .patch("east-drill", &strict, &Patch::Apply(&typo))
            .await,
        "holdSecond",
    );
    assert!(api.contains("spec.fault.holdSecond"), "API server: {api}");
    let mine = local(file(&good_region, &typo));
    assert!(
        mine.contains("spec.fault.holdSecond: unknown field"),
        "local: {mine}"
    );

    let many = region(17);
    let api = refused(
        regions.patch("east", &strict, &Patch::Apply(&many)).await,
        "17 zones",
    );
    assert!(
        api.contains("spec.zones") && api.contains("must have at most 16 items"),
        "API server: {api}"
    );
    let mine = local(file(&many, &good_drill));
    assert!(
        mine.contains("spec.zones: too many: 17: must have at most 16 items"),
        "local: {mine}"
    );
}
