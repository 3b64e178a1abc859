use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::api::RegionMirror;

fn region(zones: serde_json::Value) -> RegionMirror {
    let mut r = RegionMirror::new(
        "east",
        serde_json::from_value(json!({
            "stream": {"name": "EVENTS", "subjects": ["events.>"]},
            "zones": zones,
        }))
        .unwrap(),
    );
    r.metadata.namespace = Some("ns1".into());
    r.metadata.uid = Some("uid-1".into());
    r
}

fn three() -> RegionMirror {
    region(json!([
        {"name": "a", "role": "source"},
        {"name": "b", "role": "mirror", "servers": 1,
         "storage": {"size": "5Gi", "className": "fast"},
         "scheduling": {"nodeSelector": {"disk": "ssd"}, "topologyZone": "eu-1b"}},
        {"name": "c", "role": "mirror"},
    ]))
}

fn valid(region: &RegionMirror, image: &str) -> ValidatedRegion {
    crate::operator::region::validated::fixture(region, image)
}

#[test]
fn every_managed_zone_gets_its_objects_with_labels_and_owner() {
    let r = three();
    let children = region_children(&valid(&r, "nats:test")).unwrap();
    assert_eq!(children.len(), 3);
    let names = |kind| -> Vec<String> { children.iter().flat_map(|c| c.names_of(kind)).collect() };
    assert_eq!(
        names(ChildKind::Service),
        vec![
            "east-a",
            "east-a-client",
            "east-a-leaf",
            "east-b",
            "east-b-client",
            "east-c",
            "east-c-client"
        ]
    );
    assert_eq!(
        names(ChildKind::StatefulSet),
        vec!["east-a", "east-b", "east-c"]
    );
    assert_eq!(
        names(ChildKind::ConfigMap),
        vec!["east-a-config", "east-b-config", "east-c-config"]
    );
    assert_eq!(
        names(ChildKind::PodDisruptionBudget),
        vec!["east-a", "east-b", "east-c"]
    );
    for c in &children {
        for (kind, meta) in c.metas() {
            assert!(ChildKind::ALL.contains(&kind), "{kind:?} is pruned");
            let l = meta.labels.as_ref().unwrap();
            assert_eq!(l[crate::meta::labels::REGION], "east");
            assert_eq!(l[crate::meta::labels::ZONE], c.zone);
            assert_eq!(l[crate::meta::labels::MANAGED_BY], "natsregion");
            let owner = &meta.owner_references.as_ref().unwrap()[0];
            assert_eq!(
                (owner.kind.as_str(), owner.uid.as_str()),
                ("RegionMirror", "uid-1")
            );
            assert_eq!(owner.controller, Some(true));
            assert_eq!(meta.namespace.as_deref(), Some("ns1"));
        }
    }
}

/// The exporter sidecar: only when the operator is given its image, reading
/// the server's monitoring port on localhost and serving on `metrics`; the
/// server container is unchanged and stays first (probes, preStop).
#[test]
fn exporter_sidecar_runs_only_with_an_image() {
    let r = three();
    let sts = |valid: &ValidatedRegion| {
        let b = zone_children(valid, r.spec.zone("b").unwrap()).unwrap();
        serde_json::to_value(&b.statefulset).unwrap()["spec"]["template"]["spec"].clone()
    };
    let plain = sts(&valid(&r, "nats:test"));
    assert_eq!(plain["containers"].as_array().unwrap().len(), 1);
    let mut with = valid(&r, "nats:test");
    with.exporter_image = Some("registry.local/prometheus-nats-exporter:0.17".into());
    let pod = sts(&with);
    let containers = pod["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[0], plain["containers"][0]);
    let e = &containers[1];
    assert_eq!(e["image"], "registry.local/prometheus-nats-exporter:0.17");
    assert_eq!(
        e["ports"],
        json!([{"name": "metrics", "containerPort": EXPORTER_PORT}])
    );
    let args: Vec<&str> = e["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args.last(), Some(&"http://localhost:8222"), "{args:?}");
    assert!(args.contains(&"-jsz=all"), "{args:?}");
    assert_eq!(e["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(e["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
}

#[test]
fn statefulset_follows_the_zone_spec() {
    let r = three();
    let b = zone_children(&valid(&r, "nats:test"), r.spec.zone("b").unwrap()).unwrap();
    let sts = serde_json::to_value(&b.statefulset).unwrap();
    let spec = &sts["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(spec["serviceName"], "east-b");
    assert_eq!(spec["podManagementPolicy"], "Parallel");
    let vct = &spec["volumeClaimTemplates"][0]["spec"];
    assert_eq!(vct["resources"]["requests"]["storage"], "5Gi");
    assert_eq!(vct["storageClassName"], "fast");
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["nodeSelector"]["disk"], "ssd");
    assert_eq!(pod["nodeSelector"]["topology.kubernetes.io/zone"], "eu-1b");
    let c = &pod["containers"][0];
    assert_eq!(c["image"], "nats:test");
    assert_eq!(
        c["readinessProbe"]["httpGet"]["path"],
        "/healthz?js-enabled-only=true"
    );
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], 8222);
    assert_eq!(
        c["lifecycle"]["preStop"]["exec"]["command"],
        json!(["nats-server", "--signal", "ldm=1"])
    );
    // Locked down: non-root, read-only root filesystem, no capabilities,
    // the runtime's default seccomp profile, no privilege escalation.
    let pod_sc = &pod["securityContext"];
    assert_eq!(pod_sc["runAsNonRoot"], true);
    assert_eq!(pod_sc["runAsUser"], 1000);
    assert_eq!(
        pod_sc["fsGroup"], 1000,
        "the data volume is writable by the servers"
    );
    assert_eq!(pod_sc["seccompProfile"]["type"], "RuntimeDefault");
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert!(sc["capabilities"].get("add").is_none());
    // The certificate Secret, mounted read-only, its files for the group only.
    let tls = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "tls")
        .expect("tls volume");
    assert_eq!(tls["secret"]["secretName"], "east-b-tls");
    assert_eq!(tls["secret"]["defaultMode"], 0o440);
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "tls")
        .expect("tls mount");
    assert_eq!(mount["mountPath"], "/etc/nats-tls");
    assert_eq!(mount["readOnly"], true);
    let env: BTreeMap<String, serde_json::Value> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), e.clone()))
        .collect();
    assert_eq!(
        env["NATS_APP_PASSWORD_RAW"]["valueFrom"]["secretKeyRef"]["name"],
        "east-credentials"
    );
    assert_eq!(
        env["NATS_LEAF_URL_0"]["value"],
        "\"nats-leaf://$(NATS_APP_USER_RAW):$(NATS_APP_PASSWORD_RAW)@east-a-leaf.ns1.svc:7422\""
    );
    assert!(b.leafnode.is_none());
    assert_eq!(
        serde_json::to_value(&b.pdb).unwrap()["spec"]["maxUnavailable"],
        1
    );
}

#[test]
fn configs_hold_no_secret_and_name_the_pods() {
    let r = three();
    let (files, _) = config_files(&valid(&r, "nats:test"), r.spec.zone("a").unwrap()).unwrap();
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        vec!["east-a-0.conf", "east-a-1.conf", "east-a-2.conf"]
    );
    let a0 = &files["east-a-0.conf"];
    assert!(a0.contains("password: $NATS_APP_PASSWORD"), "{a0}");
    assert!(
        a0.contains("nats-route://east-a-1.east-a.ns1.svc:6222"),
        "{a0}"
    );
    assert!(
        a0.contains("\"east-a-leaf.ns1.svc:7422\""),
        "advertise: {a0}"
    );
    assert!(a0.contains("lame_duck_duration: \"30s\""), "{a0}");
    let (files, _) = config_files(&valid(&r, "nats:test"), r.spec.zone("c").unwrap()).unwrap();
    assert!(files["east-c-0.conf"].contains("$NATS_LEAF_URL_0"));
}

#[test]
fn config_hash_moves_with_the_config_only() {
    let r = three();
    let zone = r.spec.zone("a").unwrap().clone();
    let a = zone_children(&valid(&r, "nats:1"), &zone).unwrap();
    let same = zone_children(&valid(&r, "nats:2"), &zone).unwrap();
    let mut changed = r.clone();
    changed.spec.stream.sync_interval = "always".into();
    let b = zone_children(&valid(&changed, "nats:1"), &zone).unwrap();
    let hash = |c: &ZoneChildren| {
        c.statefulset
            .spec
            .template
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .as_ref()
            .unwrap()[CONFIG_HASH]
            .clone()
    };
    assert_eq!(hash(&a), hash(&same));
    assert_ne!(hash(&a), hash(&b));
}

#[test]
fn external_zones_get_no_objects() {
    let r = region(json!([
        {"name": "a", "role": "source", "domain": "a", "external": {"url": "nats://x:4222"}},
        {"name": "b", "role": "mirror", "domain": "b", "external": {"url": "nats://y:4222"}},
    ]));
    assert!(region_children(&valid(&r, "nats")).unwrap().is_empty());
    // A managed mirror of an external source has no leafnode address to dial.
    let r = region(json!([
        {"name": "a", "role": "source", "domain": "a", "external": {"url": "nats://x:4222"}},
        {"name": "b", "role": "mirror"},
    ]));
    let e = region_children(&valid(&r, "nats")).unwrap_err();
    assert_eq!(e.reason(), "InvalidConfiguration");
    assert!(e.is_permanent());
}

#[test]
fn the_rendered_config_is_valid_for_nats_server() {
    let bin = crate::tools::binary("nats-server").expect("nats-server (tools/install.sh nats)");
    let r = three();
    let dir = tempfile::tempdir().unwrap();
    // The server loads the mounted certificate files while it checks the config.
    let tls_dir = dir.path().join("tls");
    crate::tls::write_test_files(&tls_dir).unwrap();
    for zone in ["a", "c"] {
        let (files, _) = config_files(&valid(&r, "nats:test"), r.spec.zone(zone).unwrap()).unwrap();
        let path = dir.path().join("server.conf");
        let text = &files[&format!("east-{zone}-0.conf")];
        assert!(
            text.contains(super::TLS_DIR),
            "zone {zone} runs TLS: {text}"
        );
        std::fs::write(
            &path,
            text.replace(super::TLS_DIR, &tls_dir.to_string_lossy()),
        )
        .unwrap();
        let out = std::process::Command::new(&bin)
            .arg("-c")
            .arg(&path)
            .arg("-t")
            .env("NATS_APP_USER", "\"app\"")
            .env("NATS_APP_PASSWORD", "\"12k\"")
            .env("NATS_SYS_USER", "\"sys\"")
            .env("NATS_SYS_PASSWORD", "\"yes\"")
            .env(
                "NATS_LEAF_URL_0",
                "\"nats-leaf://app:12k@east-a-leaf.ns1.svc:7422\"",
            )
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "zone {zone}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn adding_a_zone_changes_nothing_producers_use() {
    let before = three();
    let mut after = three();
    after
        .spec
        .zones
        .push(serde_json::from_value(json!({"name": "d", "role": "mirror"})).unwrap());
    let old = region_children(&valid(&before, "nats:test")).unwrap();
    let new = region_children(&valid(&after, "nats:test")).unwrap();
    assert_eq!(new.len(), 4);
    // Every existing zone's objects are identical: no roll, no Service change.
    assert_eq!(old[..], new[..3]);
    assert_eq!(new[3].zone, "d");
}
