//! Packaging: the Helm chart, its CRDs, its values schema, and the example
//! manifests, checked with the real `helm` from the tools cache and a real
//! kube-apiserver (testenv::ControlPlane) using server-side dry-run apply.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::{Scope, pinned_kind};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, ResourceExt};
use natsregion::api::validate::{self, msg};
use natsregion::api::{PartitionDrill, RegionMirror};
use natsregion::testenv::ControlPlane;
use serde_json::{Value, json};

#[path = "packaging/readme.rs"]
mod readme;

const MANAGER: &str = "natsregion-packaging-test";
/// The release namespace the chart is rendered for.
const RELEASE_NS: &str = "natsregion-system";
/// The test API server's Kubernetes version (tools/install.sh
/// KUBERNETES_VERSION), for `helm template`'s capabilities: a helm built with
/// `go install` otherwise assumes v1.20.
const KUBE_VERSION: &str = "1.37.2";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn chart() -> PathBuf {
    root().join("charts/natsregion")
}

fn helm(args: &[&str]) -> Output {
    let bin = natsregion::tools::binary("helm").unwrap_or_else(|e| panic!("{e}"));
    Command::new(&bin)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `helm template` with `--set` pairs; the rendered output or helm's stderr.
fn template(sets: &[&str]) -> Result<String, String> {
    let chart = chart();
    let mut args = vec![
        "template",
        "natsregion",
        chart.to_str().unwrap(),
        "--namespace",
        RELEASE_NS,
        "--kube-version",
        KUBE_VERSION,
    ];
    for set in sets {
        args.extend(["--set", set]);
    }
    let out = helm(&args);
    if out.status.success() {
        Ok(text(&out.stdout))
    } else {
        Err(text(&out.stderr))
    }
}

/// Every non-empty document of a YAML stream, as JSON values.
fn documents(yaml: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_yaml_ng::Deserializer::from_str(yaml)
        .map(|doc| Value::deserialize(doc).expect("YAML document parses"))
        .filter(|v| !v.is_null())
        .collect()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Every `.rs` file under `dir`.
fn rust_sources(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out
}

fn kind_of(object: &Value) -> &str {
    object["kind"].as_str().unwrap_or_default()
}

fn find<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| kind_of(o) == kind).collect()
}

// ------------------------------------------------------------- no API server

/// Every option of the chart on, watching every namespace (what only a
/// cluster-wide install renders: the aggregated ClusterRoles).
const EVERY_OPTION_CLUSTER_WIDE: &[&str] = &[
    "replicas=2",
    "image.repository=registry.example.com/natsregion",
    "image.tag=v9.9.9",
    "imagePullSecrets[0].name=pull",
    "serviceMonitor.enabled=true",
    "podMonitor.enabled=true",
    "podMonitor.labels.release=kps",
    "zoneMetrics.exporterImage=registry.example.com/prometheus-nats-exporter:0.17.3",
    "zoneMetrics.podMonitor.enabled=true",
    "prometheusRule.enabled=true",
    "grafanaDashboard.enabled=true",
    "logFormat=text",
    "logLevel=debug",
    "leaderElection.leaseName=ops-lease",
    "leaderElection.leaseNamespace=natsregion-system",
    "maxConcurrentReconciles=16",
    "statusRefreshSeconds=10",
    "defaultNatsImage=nats:2.14.9",
    "extraArgs[0]=--metrics-addr=0.0.0.0:8080",
    "rbac.aggregateToDefaultRoles=true",
    "helmTest.enabled=true",
    "priorityClassName=system-cluster-critical",
];

/// The same, watching one namespace.
fn every_option_one_namespace() -> Vec<&'static str> {
    let mut sets = EVERY_OPTION_CLUSTER_WIDE.to_vec();
    sets.push("watchNamespace=team-a");
    sets
}

/// Every flag of `natsregion run` is set by the chart (a value, or the env
/// variable the flag reads), so nothing the operator offers is out of a
/// chart user's reach; `extraArgs` passes anything more.
#[test]
fn every_operator_flag_is_reachable_from_values() {
    let help = Command::new(env!("CARGO_BIN_EXE_natsregion"))
        .args(["run", "--help"])
        .output()
        .expect("natsregion run --help");
    assert!(help.status.success());
    let help = text(&help.stdout);
    // `--flag <VALUE>` lines, each with the `[env: NAME=]` its description
    // (the lines up to the next flag) may name.
    let mut flags: Vec<(String, Option<String>)> = Vec::new();
    for line in help.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("--") {
            let flag = rest.split([' ', '=', '<']).next().unwrap().to_string();
            flags.push((flag, None));
        } else if line.starts_with('-') {
            flags.push(("-".into(), None));
        }
        if let (Some(last), Some(env)) = (flags.last_mut(), line.split("[env: ").nth(1)) {
            last.1 = Some(env.split(['=', ']']).next().unwrap().to_string());
        }
    }
    flags.retain(|(f, _)| f != "help" && f != "-");
    assert!(flags.len() >= 10, "flags parsed from:\n{help}");
    let mut set: BTreeSet<String> = BTreeSet::new();
    for sets in [
        EVERY_OPTION_CLUSTER_WIDE.to_vec(),
        every_option_one_namespace(),
    ] {
        let objects = documents(&template(&sets).expect("renders"));
        let container = &deployment(&objects)["spec"]["template"]["spec"]["containers"][0];
        for a in args(deployment(&objects)) {
            if let Some(flag) = a.strip_prefix("--") {
                set.insert(flag.split('=').next().unwrap().to_string());
            }
        }
        for e in container["env"].as_array().unwrap() {
            set.insert(format!("env:{}", e["name"].as_str().unwrap()));
        }
    }
    for (flag, env) in &flags {
        let by_env = env
            .as_ref()
            .is_some_and(|e| set.contains(&format!("env:{e}")));
        assert!(
            set.contains(flag) || by_env,
            "`natsregion run --{flag}` has no value in the chart (add one to values.yaml and \
             templates/deployment.yaml); the chart sets: {set:?}"
        );
    }
    // extraArgs come last, after the values' flags.
    let objects = documents(&template(&["extraArgs[0]=--status-refresh-seconds=5"]).unwrap());
    let a = args(deployment(&objects));
    assert_eq!(a.last(), Some(&"--status-refresh-seconds=5"), "{a:?}");
    assert!(template(&["extraArgs[0]=status-refresh-seconds"]).is_err());
}

/// NOTES.txt, shown after `helm install`, names no file the chart lacks (it
/// is installed from a chart, not a checkout), and the manifests it gives
/// inline are valid.
#[test]
fn notes_name_no_file_the_chart_lacks_and_their_manifests_are_valid() {
    let notes = read(&chart().join("templates/NOTES.txt"));
    for word in notes.split_whitespace() {
        let word = word.trim_matches(|c: char| !(c.is_ascii_alphanumeric() || "./-_".contains(c)));
        if [".yaml", ".yml", ".json"].iter().any(|e| word.ends_with(e)) {
            assert!(
                chart().join(word).exists(),
                "NOTES.txt names {word}, which the chart does not have"
            );
        }
    }
    for line in notes.lines() {
        if let Some(file) = line.split("-f ").nth(1) {
            let file = file.split_whitespace().next().unwrap();
            assert_eq!(
                file, "-",
                "NOTES.txt applies {file}, which the chart does not have"
            );
        }
    }
    let manifests = notes_manifests(&notes);
    assert_eq!(manifests.len(), 2, "a region and a drill");
    let region: RegionMirror = serde_json::from_value(manifests[0].clone()).unwrap();
    validate::region(&region, None).unwrap_or_else(|e| panic!("NOTES.txt region: {e}"));
    let drill: PartitionDrill = serde_json::from_value(manifests[1].clone()).unwrap();
    validate::drill(&drill, &region).unwrap_or_else(|e| panic!("NOTES.txt drill: {e}"));
}

/// The manifests NOTES.txt pipes to `kubectl apply -f -` (its heredocs).
fn notes_manifests(notes: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut lines = notes.lines();
    while let Some(line) = lines.next() {
        if line.trim_end().ends_with("<<'EOF'") {
            let indent = line.len() - line.trim_start().len();
            let body: Vec<&str> = lines
                .by_ref()
                .take_while(|l| l.trim() != "EOF")
                .map(|l| l.get(indent..).unwrap_or(""))
                .collect();
            out.extend(documents(&body.join("\n")));
        }
    }
    out
}

/// The rendered monitoring objects: (PrometheusRule, dashboard JSON).
fn monitoring(sets: &[&str]) -> (Option<Value>, Option<Value>) {
    let objects = documents(&template(sets).expect("renders"));
    let rule = find(&objects, "PrometheusRule")
        .first()
        .map(|v| (*v).clone());
    let dashboard = find(&objects, "ConfigMap").first().map(|cm| {
        serde_json::from_str(
            cm["data"]["natsregion.json"]
                .as_str()
                .expect("dashboard key"),
        )
        .expect("dashboard is JSON")
    });
    (rule, dashboard)
}

/// Every `natsregion_*` name in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("natsregion_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

/// Series the operator exports, from its own registry's exposition: each
/// name with the names of its labels.
fn exported_label_names() -> BTreeMap<String, BTreeSet<String>> {
    use natsregion::operator::metrics::{Metrics, OpenFault};
    let metrics = Metrics::default();
    // Touch every family once so each appears in the exposition.
    metrics.reconciled("c", Duration::from_millis(1));
    metrics.failed("c", "r");
    metrics.drill_verdict("drill", "passed");
    metrics.fault_injected("b");
    metrics.fault_healed("b");
    metrics.drill_catch_up(1.0);
    metrics.set_region_lag("ns", "r", &[("z".to_string(), Some(1))]);
    metrics.mirror_resumed("ns", "r", "z");
    let t = jiff::Timestamp::from_second(1).unwrap();
    metrics.set_drill_faults(
        "ns",
        "d",
        &[OpenFault {
            backend: "b".into(),
            injected_at: t,
            deadline: t,
        }],
    );
    metrics.set_region_state("ns", "r", "ready");
    metrics.reconcile_failing("c", "ns", "o", "r");
    let mut out = BTreeMap::new();
    for line in metrics.encode().lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (name, labels) = series_parts(line.rsplit_once(' ').unwrap().0);
        out.insert(name, labels.into_keys().collect());
    }
    out
}

/// `name{k="v",...}` as the name and its labels (values without `,` or `"`).
fn series_parts(series: &str) -> (String, BTreeMap<String, String>) {
    let (name, rest) = series.split_once('{').unwrap_or((series, "}"));
    let labels = rest
        .trim_end_matches('}')
        .split(',')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or_else(|| panic!("label {kv}"));
            (k.trim().to_string(), v.trim_matches('"').to_string())
        })
        .collect();
    (name.to_string(), labels)
}

/// `promtool check rules` on `groups` (a Prometheus rules file's content).
fn promtool_check(groups: &Value, what: &str) {
    let promtool = natsregion::tools::binary("promtool").unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yaml");
    std::fs::write(&file, serde_yaml_ng::to_string(groups).unwrap()).unwrap();
    let out = Command::new(&promtool)
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", promtool.display()));
    assert!(
        out.status.success(),
        "promtool check rules ({what}) failed:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn monitoring_is_off_by_default_and_its_rules_and_dashboard_are_valid() {
    assert_eq!(monitoring(&[]), (None, None), "both off by default");
    let (rule, dashboard) = monitoring(&[
        "prometheusRule.enabled=true",
        "grafanaDashboard.enabled=true",
        "prometheusRule.labels.release=kps",
    ]);
    let rule = rule.expect("a PrometheusRule");
    assert_eq!(rule["metadata"]["labels"]["release"], "kps");
    promtool_check(&rule["spec"], "the chart's PrometheusRule");
    let exported = exported_label_names();
    let rules = rule["spec"]["groups"][0]["rules"].as_array().unwrap();
    let alerts: BTreeSet<&str> = rules.iter().filter_map(|r| r["alert"].as_str()).collect();
    assert_eq!(
        alerts,
        BTreeSet::from([
            "NatsRegionDrillFailed",
            "NatsRegionFaultOpenPastDeadline",
            "NatsRegionMirrorLagHigh",
            "NatsRegionReconcileErrors",
        ])
    );
    for r in rules {
        for name in metric_names(r["expr"].as_str().unwrap()) {
            assert!(
                exported.contains_key(&name),
                "rule uses {name}, not exported: {exported:?}"
            );
        }
    }

    // The dashboard: Grafana's JSON model, every panel placed and queried,
    // every query valid PromQL (checked by promtool as recording rules, with
    // Grafana's interval variables filled in) over series the operator exports.
    let d = dashboard.expect("a dashboard");
    assert_eq!(d["uid"], "natsregion");
    assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(d["schemaVersion"].as_u64().is_some());
    let panels = d["panels"].as_array().expect("panels");
    let ids: BTreeSet<u64> = panels
        .iter()
        .map(|p| p["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
    let mut records = Vec::new();
    let mut used = BTreeSet::new();
    for p in panels {
        let title = p["title"].as_str().expect("title");
        for k in ["x", "y", "w", "h"] {
            assert!(p["gridPos"][k].is_u64(), "{title}: gridPos.{k}");
        }
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        for t in targets {
            let expr = t["expr"].as_str().expect("expr");
            for name in metric_names(expr) {
                assert!(
                    exported.contains_key(&name),
                    "{title} uses {name}, not exported"
                );
                used.insert(name);
            }
            // A series with a label the dashboard has a variable for is
            // filtered by that variable, so choosing one filters every panel.
            for name in metric_names(expr) {
                for (label, variable) in FILTERS {
                    if exported[&name].contains(label) {
                        let filter = format!("{label}=~\"${variable}\"");
                        assert!(
                            expr.contains(&filter),
                            "{title}: {name} has a {label} label but is not filtered by {filter}: {expr}"
                        );
                    }
                }
            }
            let expr = expr
                .replace("$__rate_interval", "5m")
                .replace("$__range", "6h")
                .replace("$namespace", ".*")
                .replace("$region", ".*")
                .replace("$drill", ".*");
            records.push(json!({"record": format!("dashboard:panel{}:{}", p["id"], records.len()), "expr": expr}));
        }
    }
    for wanted in [
        "natsregion_mirror_lag_messages",
        "natsregion_drill_catch_up_seconds_bucket",
        "natsregion_drill_verdicts_total",
        "natsregion_faults_open",
        "natsregion_fault_deadline_timestamp_seconds",
        "natsregion_region_state",
        "natsregion_reconcile_failing",
        "natsregion_reconcile_failures_total",
    ] {
        assert!(used.contains(wanted), "the dashboard shows {wanted}");
    }
    promtool_check(
        &json!({"groups": [{"name": "dashboard", "rules": records}]}),
        "the dashboard's queries",
    );

    // Its variables: each lists the values of its label from a series that
    // has it, narrowed by the variables before it.
    let variables: BTreeMap<&str, &Value> = d["templating"]["list"]
        .as_array()
        .expect("templating")
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), v))
        .collect();
    for (label, variable) in FILTERS {
        let v = variables
            .get(variable)
            .unwrap_or_else(|| panic!("no ${variable} variable"));
        assert_eq!(v["type"], "query");
        assert_eq!(v["datasource"]["uid"], "${datasource}");
        let query = v["query"]["query"].as_str().expect("a query");
        let inner = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(&format!(", {label})")))
            .unwrap_or_else(|| panic!("${variable}: {query}"));
        let series = metric_names(inner);
        assert_eq!(series.len(), 1, "{query}");
        assert!(
            exported.get(&series[0]).is_some_and(|l| l.contains(label)),
            "${variable} reads {label} from {}, which has no such label",
            series[0]
        );
        if variable != "namespace" {
            assert!(inner.contains("namespace=~\"$namespace\""), "{query}");
        }
    }
}

/// Labels the dashboard has a variable for, and the variable.
const FILTERS: [(&str, &str); 3] = [
    ("namespace", "namespace"),
    ("region", "region"),
    ("drill", "drill"),
];

/// The chart's alert rules, rendered by helm, pass the promtool unit tests
/// shipped beside the chart (`charts/natsregion/tests/alerts_test.yaml`):
/// each alert fires in the case it is named for (a fault stuck since the
/// operator's start, the first drill failure after it, a permanent reconcile
/// error) and stays quiet in one that looks alike. The cases' series are the
/// operator's: names and label names it exports, and a counter a case starts
/// at 0 is one a freshly started operator exports at 0.
#[test]
fn alerts_fire_in_the_cases_they_are_named_for() {
    let (rule, _) = monitoring(&["prometheusRule.enabled=true"]);
    let rule = rule.expect("a PrometheusRule");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rules.yaml"),
        serde_yaml_ng::to_string(&rule["spec"]).unwrap(),
    )
    .unwrap();
    let cases_file = chart().join("tests/alerts_test.yaml");
    let cases = read(&cases_file);
    let tests = dir.path().join("alerts_test.yaml");
    std::fs::write(&tests, &cases).unwrap();
    let promtool = natsregion::tools::binary("promtool").unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(&promtool)
        .args(["test", "rules"])
        .arg(&tests)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", promtool.display()));
    assert!(
        out.status.success(),
        "promtool test rules {} failed:\n{}{}",
        cases_file.display(),
        text(&out.stdout),
        text(&out.stderr)
    );

    let cases: Value = serde_yaml_ng::from_str(&cases).unwrap();
    let exported = exported_label_names();
    let fresh = natsregion::operator::metrics::Metrics::default().encode();
    let (mut fires, mut quiet) = (BTreeSet::new(), BTreeSet::new());
    for case in cases["tests"].as_array().expect("tests") {
        let name = case["name"].as_str().expect("every case has a name");
        for input in case["input_series"].as_array().expect("input_series") {
            let series = input["series"].as_str().unwrap();
            let (metric, labels) = series_parts(series);
            let keys: BTreeSet<String> = labels.keys().cloned().collect();
            assert_eq!(
                exported.get(&metric),
                Some(&keys),
                "{name}: {series} is not a series the operator exports"
            );
            let values = input["values"].as_str().unwrap();
            if metric.ends_with("_total") && values.starts_with('0') {
                assert!(
                    fresh.contains(&format!("{series} 0")),
                    "{name}: {series} starts at 0, but a fresh operator does not export it:\n{fresh}"
                );
            }
        }
        for t in case["alert_rule_test"].as_array().into_iter().flatten() {
            let alert = t["alertname"].as_str().unwrap().to_string();
            if t["exp_alerts"].as_array().is_some_and(|a| a.is_empty()) {
                quiet.insert(alert);
            } else {
                fires.insert(alert);
            }
        }
    }
    let alerts: BTreeSet<String> = rule["spec"]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["alert"].as_str().map(String::from))
        .collect();
    assert_eq!(fires, alerts, "every alert has a case where it fires");
    assert!(
        quiet.is_superset(&alerts),
        "every alert has a case where it stays quiet: {quiet:?}"
    );
}

#[test]
fn helm_lint_passes() {
    let chart = chart();
    for sets in [
        vec![],
        EVERY_OPTION_CLUSTER_WIDE.to_vec(),
        every_option_one_namespace(),
    ] {
        let mut args = vec!["lint", "--strict", chart.to_str().unwrap()];
        for set in &sets {
            args.extend(["--set", set]);
        }
        let out = helm(&args);
        assert!(
            out.status.success(),
            "helm lint {sets:?} failed:\n{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
}

#[test]
fn chart_crds_are_the_generated_crds() {
    let names = |dir: &Path| -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("list {}: {e}", dir.display()))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    let generated = root().join("crds");
    let shipped = chart().join("crds");
    assert_eq!(
        names(&generated),
        names(&shipped),
        "charts/natsregion/crds must hold exactly the files of crds/: run `make crds`"
    );
    for name in names(&generated) {
        let a = std::fs::read(generated.join(&name)).unwrap();
        let b = std::fs::read(shipped.join(&name)).unwrap();
        assert!(
            a == b,
            "charts/natsregion/crds/{name} differs from crds/{name}: run `make crds` and commit both"
        );
    }
}

/// The kubelet must not kill a stopping operator before it has healed its
/// drills' cuts, stopped its controllers (at most `run::STOP_LIMIT`) and
/// handed the Lease over.
#[test]
fn the_pods_grace_period_outlasts_the_operators_stop_budget() {
    use natsregion::operator::drill::SHUTDOWN_HEAL;
    use natsregion::operator::run::STOP_LIMIT;
    assert!(SHUTDOWN_HEAL < STOP_LIMIT);
    let objects = documents(&template(&[]).expect("renders"));
    let grace = deployment(&objects)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("the chart sets terminationGracePeriodSeconds");
    assert!(
        Duration::from_secs(grace) >= STOP_LIMIT + Duration::from_secs(5),
        "grace {grace}s, stop budget {STOP_LIMIT:?}"
    );
}

#[test]
fn values_schema_rejects_bad_values() {
    template(&[]).expect("default values render");
    // (value, what helm's schema error must name)
    let bad = [
        (vec!["replicas=two"], "/replicas"),
        (vec!["replicas=0"], "/replicas"),
        (vec!["logFormat=xml"], "/logFormat"),
        (vec!["logLevel=loud"], "/logLevel"),
        (
            vec!["resumeStalledMirrorsAfterSeconds=-1"],
            "/resumeStalledMirrorsAfterSeconds",
        ),
        (vec!["replicaCount=2"], "replicaCount"),
        (vec!["image.pullPolicy=Sometimes"], "/image/pullPolicy"),
        (vec!["metrics.port=80"], "/metrics/port"),
        (vec!["watchNamespace=Team_A"], "/watchNamespace"),
        (
            vec!["terminationGracePeriodSeconds=10"],
            "/terminationGracePeriodSeconds",
        ),
        (
            vec!["serviceMonitor.enabled=yes"],
            "/serviceMonitor/enabled",
        ),
        (
            vec!["replicas=2", "leaderElection.enabled=false"],
            "/leaderElection/enabled",
        ),
    ];
    for (sets, names) in bad {
        match template(&sets) {
            Ok(_) => panic!("helm template accepted {sets:?}"),
            Err(stderr) => assert!(
                stderr.contains(names),
                "{sets:?}: the error should name {names}:\n{stderr}"
            ),
        }
    }
}

#[test]
fn kind_cluster_and_e2e_match_the_examples() {
    // Each zone of examples/region.yaml is pinned to a topology zone that a
    // kind worker carries.
    let cluster = documents(&read(&root().join("kind/cluster.yaml")));
    let nodes = cluster[0]["nodes"].as_array().expect("kind nodes");
    assert_eq!(cluster[0]["networking"]["disableDefaultCNI"], true);
    let worker_zones: BTreeSet<&str> = nodes
        .iter()
        .filter(|n| n["role"] == "worker")
        .filter_map(|n| n["labels"]["topology.kubernetes.io/zone"].as_str())
        .collect();
    assert_eq!(worker_zones.len(), 3, "{nodes:?}");
    let region = documents(&read(&root().join("examples/region.yaml")));
    for zone in region[0]["spec"]["zones"].as_array().unwrap() {
        let topology = zone["scheduling"]["topologyZone"].as_str().unwrap();
        assert!(
            worker_zones.contains(topology),
            "{topology} has no kind worker"
        );
    }
    // The names the steps script waits on are the examples' names.
    let script = read(&root().join("kind/steps.sh"));
    let drill = documents(&read(&root().join("examples/drill.yaml")));
    let region_name = region[0]["metadata"]["name"].as_str().unwrap();
    let drill_name = drill[0]["metadata"]["name"].as_str().unwrap();
    assert!(script.contains(&format!("\nregion={region_name}\n")));
    assert!(script.contains(&format!("\ndrill={drill_name}\n")));
    assert_eq!(drill[0]["spec"]["regionRef"]["name"], region_name);
    // The drill runs through the CLI, from a file of both examples.
    assert!(
        script.contains("\"$natsregion\" drill "),
        "steps.sh runs natsregion drill"
    );
    assert!(script.contains("region_file=${REGION_FILE:-$root/examples/region.yaml}"));
    assert!(script.contains("drill_file=${DRILL_FILE:-$root/examples/drill.yaml}"));
    assert!(script.contains("{ cat \"$region_file\"; echo ---; cat \"$drill_file\"; }"));
    assert!(!script.contains("apply -f \"$drill_file\""));
}

// ----------------------------------------------------------- real API server

async fn plane() -> (ControlPlane, Client) {
    let started = Instant::now();
    let plane = ControlPlane::start()
        .await
        .unwrap_or_else(|e| panic!("control plane: {e}"));
    eprintln!("control plane ready in {:?}", started.elapsed());
    let client = plane.client().await.expect("client");
    (plane, client)
}

/// Installs a CRD for real and waits until it is served.
async fn install_crd(client: &Client, crd: &CustomResourceDefinition) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = crd.name_any();
    crds.patch(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(crd),
    )
    .await
    .unwrap_or_else(|e| panic!("apply CRD {name}: {e}"));
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(crds, &name, conditions::is_crd_established()),
    )
    .await
    .unwrap_or_else(|_| panic!("{name} not Established within 30s"))
    .expect("watch CRD");
}

/// The CRDs the Helm way: from the chart's crds/ directory.
async fn install_chart_crds(client: &Client) {
    let dir = chart().join("crds");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "{files:?}");
    for file in files {
        let crd: CustomResourceDefinition =
            serde_yaml_ng::from_str(&read(&file)).expect("CRD parses");
        install_crd(client, &crd).await;
    }
}

async fn create_namespace(client: &Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
}

/// Server-side apply of one object (dry run unless `for_real`), resolving its
/// kind through discovery, with strict field validation. Namespaced objects
/// without a namespace go to `default`.
async fn apply(
    client: &Client,
    object: &Value,
    for_real: bool,
) -> Result<DynamicObject, kube::Error> {
    let api_version = object["apiVersion"].as_str().expect("apiVersion");
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind_of(object));
    let (resource, caps) = pinned_kind(client, &gvk)
        .await
        .unwrap_or_else(|e| panic!("discover {gvk:?}: {e}"));
    let api: Api<DynamicObject> = match caps.scope {
        Scope::Cluster => Api::all_with(client.clone(), &resource),
        Scope::Namespaced => {
            let ns = object["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default");
            Api::namespaced_with(client.clone(), ns, &resource)
        }
    };
    let name = object["metadata"]["name"].as_str().expect("metadata.name");
    // Strict: an unknown or misspelt field is an error, as with kubectl.
    let mut params = PatchParams::apply(MANAGER).force().validation_strict();
    if !for_real {
        params = params.dry_run();
    }
    api.patch(name, &params, &Patch::Apply(object)).await
}

async fn apply_all_dry_run(client: &Client, objects: &[Value], what: &str) {
    for object in objects {
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        apply(client, object, false).await.unwrap_or_else(|e| {
            panic!(
                "{what}: the API server refused {} {name}: {e}",
                kind_of(object)
            )
        });
    }
}

/// A stand-in for the Prometheus Operator's CRD, so a ServiceMonitor can be
/// applied: same group, version, kind and scope; the schema is open.
fn service_monitor_crd() -> CustomResourceDefinition {
    prometheus_operator_crd("ServiceMonitor", "servicemonitors")
}

fn prometheus_operator_crd(kind: &str, plural: &str) -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.monitoring.coreos.com")},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase(), "listKind": format!("{kind}List")},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}],
        },
    }))
    .unwrap()
}

fn deployment(objects: &[Value]) -> &Value {
    let found = find(objects, "Deployment");
    assert_eq!(found.len(), 1, "one Deployment");
    found[0]
}

fn args(deployment: &Value) -> Vec<&str> {
    deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect()
}

fn assert_hardened(deployment: &Value) {
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{pod}");
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let container = &pod["containers"][0];
    let sc = &container["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true, "{sc}");
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
    assert!(container["resources"]["requests"]["cpu"].is_string());
    assert!(container["resources"]["requests"]["memory"].is_string());
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
}

/// The operator resumes stalled mirrors by default (10 s, the binary's own
/// default); `resumeStalledMirrorsAfterSeconds: 0` turns it off.
#[test]
fn resume_of_stalled_mirrors_is_on_by_default_and_0_turns_it_off() {
    let on = documents(&template(&[]).unwrap());
    let a = args(deployment(&on));
    assert!(
        a.contains(&"--resume-stalled-mirrors-after-seconds=10"),
        "{a:?}"
    );
    let off = documents(&template(&["resumeStalledMirrorsAfterSeconds=0"]).unwrap());
    let a = args(deployment(&off));
    assert!(
        a.contains(&"--resume-stalled-mirrors-after-seconds=0"),
        "{a:?}"
    );
}

/// The Toxiproxy API policy is on by default and names exactly the pods the
/// chart's Deployment runs, in the namespace the pod reads from the downward
/// API; off, no policy is asked for.
#[test]
fn toxiproxy_api_policy_names_the_operators_own_pods() {
    use natsregion::operator::context::OperatorPods;
    let objects = documents(&template(&[]).unwrap());
    let deploy = deployment(&objects);
    let a = args(deploy);
    assert!(a.contains(&"--toxiproxy-api-network-policy=true"), "{a:?}");
    let labels = a
        .iter()
        .find_map(|a| a.strip_prefix("--operator-pod-labels="))
        .expect("the operator's pod labels");
    let pods = OperatorPods::parse(RELEASE_NS, labels).unwrap();
    let selector: BTreeMap<String, String> =
        serde_json::from_value(deploy["spec"]["selector"]["matchLabels"].clone()).unwrap();
    assert_eq!(pods.labels, selector);
    let pod_labels: BTreeMap<String, String> =
        serde_json::from_value(deploy["spec"]["template"]["metadata"]["labels"].clone()).unwrap();
    assert!(
        pods.labels
            .iter()
            .all(|(k, v)| pod_labels.get(k) == Some(v)),
        "{pod_labels:?}"
    );
    let env = deploy["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap();
    assert!(
        env.iter().any(|e| e["name"] == "POD_NAMESPACE"
            && e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"),
        "--operator-namespace comes from POD_NAMESPACE: {env:?}"
    );

    let objects = documents(&template(&["toxiproxy.apiNetworkPolicy=false"]).unwrap());
    let a = args(deployment(&objects));
    assert!(a.contains(&"--toxiproxy-api-network-policy=false"), "{a:?}");
    assert!(
        !a.iter().any(|a| a.starts_with("--operator-pod-labels")),
        "{a:?}"
    );
    assert!(template(&["toxiproxy.apiNetworkPolicy=maybe"]).is_err());
}

#[tokio::test]
async fn chart_applies_to_the_api_server() {
    let (_plane, client) = plane().await;
    install_chart_crds(&client).await;
    install_crd(&client, &service_monitor_crd()).await;
    install_crd(
        &client,
        &prometheus_operator_crd("PrometheusRule", "prometheusrules"),
    )
    .await;
    install_crd(
        &client,
        &prometheus_operator_crd("PodMonitor", "podmonitors"),
    )
    .await;
    for ns in [RELEASE_NS, "team-a"] {
        create_namespace(&client, ns).await;
    }

    // Default values: cluster-wide RBAC, one replica, leader election on.
    let objects = documents(&template(&[]).expect("default values render"));
    apply_all_dry_run(&client, &objects, "default values").await;
    let kinds: BTreeSet<&str> = objects.iter().map(kind_of).collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
            "Service",
            "Deployment",
            "Pod",
        ]),
        "default values render these kinds (the Pod is the helm test) and no ServiceMonitor"
    );
    assert_eq!(
        find(&objects, "ClusterRole").len(),
        3,
        "the operator's, and the two aggregated into view and edit"
    );
    // The manifests NOTES.txt gives, as the API server takes them.
    let notes = read(&chart().join("templates/NOTES.txt"));
    for manifest in notes_manifests(&notes) {
        apply(&client, &manifest, false)
            .await
            .unwrap_or_else(|e| panic!("NOTES.txt's {}: {e}", kind_of(&manifest)));
    }
    let deploy = deployment(&objects);
    assert_hardened(deploy);
    assert_eq!(deploy["spec"]["replicas"], 1);
    let a = args(deploy);
    assert_eq!(a[0], "run");
    assert!(a.contains(&"--leader-election=true"), "{a:?}");
    assert!(a.contains(&"--lease-namespace=natsregion-system"), "{a:?}");
    assert!(
        a.contains(&"--default-nats-image=nats:2.14.9-alpine"),
        "{a:?}"
    );
    assert!(a.contains(&"--log-format=json"), "{a:?}");
    assert!(!a.iter().any(|x| x.starts_with("--namespace")), "{a:?}");

    // Every option on, cluster-wide.
    let objects = documents(&template(EVERY_OPTION_CLUSTER_WIDE).expect("every option renders"));
    apply_all_dry_run(&client, &objects, "every option on, cluster-wide").await;
    assert_eq!(find(&objects, "ClusterRole").len(), 3);
    assert_eq!(find(&objects, "Pod").len(), 1, "the helm test");
    let monitors = find(&objects, "PodMonitor");
    assert_eq!(monitors.len(), 2, "the operator's and the zones'");
    let zones = monitors
        .iter()
        .find(|m| m["metadata"]["name"] == "natsregion-zones")
        .expect("the zones' PodMonitor");
    // It selects what the operator labels a zone's pods with, on the port
    // its exporter sidecar serves.
    let zone_pod_labels = natsregion::operator::region::object_meta::zone_labels("east", "b");
    let zone_selector: BTreeMap<String, String> =
        serde_json::from_value(zones["spec"]["selector"]["matchLabels"].clone()).unwrap();
    assert!(
        zone_selector
            .iter()
            .all(|(k, v)| zone_pod_labels.get(k) == Some(v)),
        "{zone_selector:?} vs {zone_pod_labels:?}"
    );
    assert_eq!(zones["spec"]["namespaceSelector"]["any"], true);
    assert_eq!(zones["spec"]["podMetricsEndpoints"][0]["port"], "metrics");
    assert!(
        args(deployment(&objects)).contains(
            &"--nats-exporter-image=registry.example.com/prometheus-nats-exporter:0.17.3"
        )
    );
    assert!(
        template(&["zoneMetrics.podMonitor.enabled=true"])
            .is_err_and(|e| e.contains("needs zoneMetrics.exporterImage")),
        "a zones' PodMonitor without the exporter is refused"
    );
    let monitors: Vec<&Value> = monitors
        .into_iter()
        .filter(|m| m["metadata"]["name"] == "natsregion")
        .collect();
    let selector: BTreeMap<String, String> =
        serde_json::from_value(monitors[0]["spec"]["selector"]["matchLabels"].clone()).unwrap();
    let pod_labels: BTreeMap<String, String> = serde_json::from_value(
        deployment(&objects)["spec"]["template"]["metadata"]["labels"].clone(),
    )
    .unwrap();
    assert!(
        selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)),
        "the PodMonitor selects the operator's pods: {selector:?} {pod_labels:?}"
    );
    assert_eq!(
        monitors[0]["spec"]["podMetricsEndpoints"][0]["port"],
        "metrics"
    );
    let a = args(deployment(&objects));
    assert!(a.contains(&"--max-concurrent-reconciles=16"), "{a:?}");
    assert!(a.contains(&"--status-refresh-seconds=10"), "{a:?}");

    // Every option on, one namespace only: two replicas, another image, a ServiceMonitor.
    let objects =
        documents(&template(&every_option_one_namespace()).expect("non-default values render"));
    apply_all_dry_run(&client, &objects, "non-default values").await;
    assert!(
        find(&objects, "ClusterRole").is_empty(),
        "nothing cluster-wide"
    );
    assert!(find(&objects, "ClusterRoleBinding").is_empty());
    assert_eq!(find(&objects, "ServiceMonitor").len(), 1);
    assert_eq!(find(&objects, "PrometheusRule").len(), 1);
    assert_eq!(
        find(&objects, "ConfigMap").len(),
        1,
        "the Grafana dashboard"
    );
    let watch_roles: Vec<_> = find(&objects, "Role")
        .into_iter()
        .filter(|r| r["metadata"]["namespace"] == "team-a")
        .collect();
    assert_eq!(watch_roles.len(), 1, "a Role in the watched namespace");
    let deploy = deployment(&objects);
    assert_hardened(deploy);
    assert_eq!(deploy["spec"]["replicas"], 2);
    assert_eq!(
        deploy["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example.com/natsregion:v9.9.9"
    );
    let a = args(deploy);
    assert!(a.contains(&"--namespace=team-a"), "{a:?}");
    assert!(a.contains(&"--lease-name=ops-lease"), "{a:?}");
    assert!(a.contains(&"--log-format=text"), "{a:?}");
}

/// The chart's RBAC, installed for real, grants the operator's service account
/// what the operator uses and nothing more (asked through SubjectAccessReview).
#[tokio::test]
async fn chart_rbac_is_least_privilege() {
    let (mut plane, client) = plane().await;
    install_chart_crds(&client).await;
    for ns in [RELEASE_NS, "team-a", "team-b"] {
        create_namespace(&client, ns).await;
    }
    let user = format!("system:serviceaccount:{RELEASE_NS}:natsregion");
    let reviews: Api<SubjectAccessReview> = Api::all(client.clone());
    let can =
        |ns: &'static str, group: &'static str, resource: &'static str, verb: &'static str| {
            let reviews = reviews.clone();
            let user = user.clone();
            async move {
                let (resource, subresource) = match resource.split_once('/') {
                    Some((r, s)) => (r, Some(s.to_string())),
                    None => (resource, None),
                };
                let review = SubjectAccessReview {
                    spec: SubjectAccessReviewSpec {
                        user: Some(user),
                        groups: Some(vec!["system:serviceaccounts".into()]),
                        resource_attributes: Some(ResourceAttributes {
                            namespace: Some(ns.into()),
                            group: Some(group.into()),
                            resource: Some(resource.into()),
                            subresource,
                            verb: Some(verb.into()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                let answer = reviews
                    .create(&PostParams::default(), &review)
                    .await
                    .expect("SubjectAccessReview");
                answer.status.map(|s| s.allowed).unwrap_or(false)
            }
        };

    // Watch one namespace: the rules hold there and nowhere else.
    let objects = documents(&template(&["watchNamespace=team-a"]).unwrap());
    for object in objects.iter().filter(|o| {
        matches!(
            kind_of(o),
            "ServiceAccount" | "Role" | "RoleBinding" | "ClusterRole" | "ClusterRoleBinding"
        )
    }) {
        apply(&client, object, true)
            .await
            .unwrap_or_else(|e| panic!("apply {}: {e}", kind_of(object)));
    }
    let allowed = [
        ("team-a", "natsregion.io", "regionmirrors", "watch"),
        ("team-a", "natsregion.io", "partitiondrills", "patch"),
        ("team-a", "natsregion.io", "regionmirrors/status", "patch"),
        (
            "team-a",
            "natsregion.io",
            "partitiondrills/finalizers",
            "update",
        ),
        ("team-a", "apps", "statefulsets", "create"),
        ("team-a", "apps", "deployments", "delete"),
        ("team-a", "networking.k8s.io", "networkpolicies", "create"),
        ("team-a", "policy", "poddisruptionbudgets", "patch"),
        ("team-a", "", "secrets", "get"),
        ("team-a", "", "pods", "list"),
        ("team-a", "", "persistentvolumeclaims", "get"),
        ("team-a", "events.k8s.io", "events", "create"),
        (RELEASE_NS, "coordination.k8s.io", "leases", "create"),
    ];
    let denied = [
        ("team-b", "natsregion.io", "regionmirrors", "list"),
        ("team-b", "", "secrets", "get"),
        ("team-a", "natsregion.io", "regionmirrors", "delete"),
        ("team-a", "natsregion.io", "regionmirrors", "create"),
        ("team-a", "", "pods", "delete"),
        ("team-a", "", "persistentvolumeclaims", "delete"),
        ("team-a", "", "pods/exec", "create"),
        ("team-a", "", "secrets", "update"),
        ("team-a", "rbac.authorization.k8s.io", "roles", "create"),
        ("team-a", "coordination.k8s.io", "leases", "delete"),
        (RELEASE_NS, "", "secrets", "get"),
    ];
    for (ns, group, resource, verb) in allowed {
        assert!(
            can(ns, group, resource, verb).await,
            "the operator needs {verb} {group}/{resource} in {ns}"
        );
    }
    for (ns, group, resource, verb) in denied {
        assert!(
            !can(ns, group, resource, verb).await,
            "the operator must not get {verb} {group}/{resource} in {ns}"
        );
    }

    // Cluster-wide: the aggregated ClusterRoles fold RegionMirrors and
    // PartitionDrills into the built-in view and edit roles (the cluster's
    // role aggregation controller, in kube-controller-manager, does it), so
    // a namespace's viewers read them and its editors manage them.
    plane
        .start_controller_manager()
        .await
        .unwrap_or_else(|e| panic!("kube-controller-manager: {e}"));
    let objects = documents(&template(&[]).unwrap());
    for object in find(&objects, "ClusterRole") {
        apply(&client, object, true)
            .await
            .unwrap_or_else(|e| panic!("apply ClusterRole: {e}"));
    }
    for (user, role) in [("alice", "view"), ("bob", "edit")] {
        let binding = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": format!("{user}-{role}"), "namespace": "team-b"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        });
        apply(&client, &binding, true)
            .await
            .unwrap_or_else(|e| panic!("bind {user} to {role}: {e}"));
    }
    let user_can =
        |user: &'static str, ns: &'static str, resource: &'static str, verb: &'static str| {
            let reviews = reviews.clone();
            async move {
                let review = SubjectAccessReview {
                    spec: SubjectAccessReviewSpec {
                        user: Some(user.into()),
                        resource_attributes: Some(ResourceAttributes {
                            namespace: Some(ns.into()),
                            group: Some("natsregion.io".into()),
                            resource: Some(resource.into()),
                            verb: Some(verb.into()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                reviews
                    .create(&PostParams::default(), &review)
                    .await
                    .expect("SubjectAccessReview")
                    .status
                    .is_some_and(|s| s.allowed)
            }
        };
    let granted = [
        ("alice", "regionmirrors", "list"),
        ("alice", "partitiondrills", "watch"),
        ("bob", "regionmirrors", "create"),
        ("bob", "partitiondrills", "delete"),
        ("bob", "partitiondrills", "patch"),
    ];
    let deadline = Instant::now() + Duration::from_secs(60);
    for (user, resource, verb) in granted {
        while !user_can(user, "team-b", resource, verb).await {
            assert!(
                Instant::now() < deadline,
                "{user} cannot {verb} {resource} in team-b within 60 s: the chart's ClusterRoles are not aggregated"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    for (user, ns, resource, verb) in [
        ("alice", "team-b", "regionmirrors", "create"),
        ("alice", "team-b", "partitiondrills", "delete"),
        ("bob", "team-a", "regionmirrors", "list"),
        ("carol", "team-b", "regionmirrors", "list"),
    ] {
        assert!(
            !user_can(user, ns, resource, verb).await,
            "{user} must not {verb} {resource} in {ns}"
        );
    }
}

// ------------------------------------------------------------------ examples

const EXAMPLES: [&str; 9] = [
    "region.yaml",
    "region-cert-manager.yaml",
    "drill.yaml",
    "drill-scheduled.yaml",
    "drill-toxiproxy.yaml",
    "region-external.yaml",
    "drill-local.yaml",
    "drill-local-sources.yaml",
    "region-sources.yaml",
];

fn example(name: &str) -> Vec<Value> {
    documents(&read(&root().join("examples").join(name)))
}

#[test]
fn examples_pass_the_local_validator() {
    let region: RegionMirror = serde_json::from_value(example("region.yaml").remove(0)).unwrap();
    validate::region(&region, None).expect("region.yaml");
    let external: RegionMirror =
        serde_json::from_value(example("region-external.yaml").remove(0)).unwrap();
    validate::region(&external, None).expect("region-external.yaml");
    let sources: RegionMirror =
        serde_json::from_value(example("region-sources.yaml").remove(0)).unwrap();
    validate::region(&sources, None).expect("region-sources.yaml");
    assert!(sources.spec.is_sources());
    // The region first; cert-manager's Issuers and Certificates follow it.
    let cert_manager = example("region-cert-manager.yaml");
    let with_secrets: RegionMirror = serde_json::from_value(cert_manager[0].clone()).unwrap();
    validate::region(&with_secrets, None).expect("region-cert-manager.yaml");
    assert_eq!(
        with_secrets.spec.tls.mode,
        natsregion::api::TlsMode::Secrets
    );
    let named: BTreeSet<String> = cert_manager[1..]
        .iter()
        .filter(|d| d["kind"] == "Certificate")
        .map(|d| d["spec"]["secretName"].as_str().unwrap().to_string())
        .collect();
    let wanted: BTreeSet<String> = with_secrets
        .spec
        .tls
        .zone_secrets
        .iter()
        .map(|z| z.secret_name.clone())
        .chain(with_secrets.spec.tls.ca_secret.clone())
        .collect();
    assert_eq!(
        named, wanted,
        "every Secret the region names is a Certificate's"
    );
    // Each zone's Certificate lists exactly the names the operator checks for.
    for zone in &with_secrets.spec.zones {
        let secret = with_secrets.spec.tls.zone_secret(&zone.name).unwrap();
        let cert = cert_manager[1..]
            .iter()
            .find(|d| d["kind"] == "Certificate" && d["spec"]["secretName"] == secret)
            .unwrap();
        let listed: Vec<String> = serde_json::from_value(cert["spec"]["dnsNames"].clone()).unwrap();
        let names = natsregion::operator::region::names::certificate_names(
            "shop",
            "orders",
            &zone.name,
            zone.is_source(),
            false,
        );
        assert_eq!(listed, names, "zone {}", zone.name);
    }
    for file in ["drill.yaml", "drill-scheduled.yaml", "drill-toxiproxy.yaml"] {
        let drill: PartitionDrill = serde_json::from_value(example(file).remove(0)).unwrap();
        validate::drill(&drill, &region).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
    // The local files, as `natsregion drill --local` reads them.
    for file in ["drill-local.yaml", "drill-local-sources.yaml"] {
        let text = read(&root().join("examples").join(file));
        natsregion::cli::drill_file::parse(file, &text).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
    let listed: BTreeSet<String> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let known: BTreeSet<String> = EXAMPLES.iter().map(|s| s.to_string()).collect();
    assert_eq!(listed, known, "a new example needs adding to EXAMPLES");
}

type Mutation = fn(&mut Value);

/// A good example made bad: (file, rule broken, how).
fn broken_examples() -> Vec<(&'static str, &'static str, Mutation)> {
    vec![
        // Region-wide rules.
        ("region.yaml", msg::ONE_SOURCE, |r| {
            r["spec"]["zones"][0]["role"] = json!("mirror")
        }),
        ("region.yaml", msg::UNIQUE_ZONE_NAMES, |r| {
            r["spec"]["zones"][2]["name"] = json!("west");
            r["spec"]["zones"][2]["domain"] = json!("north");
        }),
        ("region.yaml", msg::UNIQUE_DOMAINS, |r| {
            r["spec"]["zones"][1]["domain"] = json!("east")
        }),
        ("region.yaml", msg::LIMITS_RETENTION, |r| {
            r["spec"]["stream"]["retention"] = json!("WorkQueue")
        }),
        ("region.yaml", msg::REPLICAS_FIT, |r| {
            r["spec"]["zones"][0]["servers"] = json!(1)
        }),
        // Stream fields.
        ("region.yaml", msg::STREAM_NAME, |r| {
            r["spec"]["stream"]["name"] = json!("events.qa")
        }),
        ("region.yaml", msg::SUBJECTS, |r| {
            r["spec"]["stream"]["subjects"] = json!(["events qa"])
        }),
        ("region.yaml", msg::SYNC_INTERVAL, |r| {
            r["spec"]["stream"]["syncInterval"] = json!("2 minutes")
        }),
        ("region.yaml", msg::RECONNECT, |r| {
            r["spec"]["leafnode"]["reconnectIntervalSeconds"] = json!(0)
        }),
        // Zone fields.
        ("region.yaml", msg::ZONE_NAME, |r| {
            r["spec"]["zones"][1]["name"] = json!("West")
        }),
        ("region.yaml", msg::SERVERS, |r| {
            r["spec"]["zones"][1]["servers"] = json!(10)
        }),
        ("region.yaml", msg::STORAGE_SIZE, |r| {
            r["spec"]["zones"][1]["storage"]["size"] = json!("1GB")
        }),
        // External zones.
        ("region-external.yaml", msg::EXTERNAL_DOMAIN, |r| {
            r["spec"]["zones"][1]
                .as_object_mut()
                .unwrap()
                .remove("domain");
        }),
        ("region-external.yaml", msg::EXTERNAL_URL, |r| {
            r["spec"]["zones"][1]["external"]["url"] = json!("https://nats.dc2.example.com")
        }),
        ("region-external.yaml", msg::DOMAIN, |r| {
            r["spec"]["zones"][1]["domain"] = json!("dc2.eu")
        }),
        // Drill steps and faults.
        ("drill.yaml", msg::PARTITION_HEALED, |d| {
            d["spec"]["steps"] = json!(["produce", "partition", "produce", "verify"])
        }),
        ("drill.yaml", msg::VERIFY_LAST, |d| {
            d["spec"]["steps"] = json!(["produce"])
        }),
        ("drill.yaml", msg::HOLD_BEFORE_DEADLINE, |d| {
            d["spec"]["fault"]["holdSeconds"] = json!(400)
        }),
        ("drill.yaml", msg::FAULT_DEADLINE, |d| {
            d["spec"]["fault"]["deadlineSeconds"] = json!(7200)
        }),
        ("drill.yaml", msg::PAYLOAD, |d| {
            d["spec"]["workload"]["payloadBytes"] = json!(16)
        }),
        ("drill.yaml", msg::CATCH_UP_TIMEOUT, |d| {
            d["spec"]["timeouts"]["catchUpSeconds"] = json!(0)
        }),
        ("drill.yaml", msg::REGION_REF, |d| {
            d["spec"]["regionRef"]["name"] = json!("")
        }),
        // Schedules.
        ("drill-scheduled.yaml", msg::SCHEDULE, |d| {
            d["spec"]["schedule"] = json!("0 3 * *")
        }),
        ("drill-scheduled.yaml", msg::HISTORY_LIMIT, |d| {
            d["spec"]["historyLimit"] = json!(0)
        }),
        // Toxics.
        ("drill-toxiproxy.yaml", msg::TOXIC_LATENCY, |d| {
            d["spec"]["fault"]["toxics"][0]
                .as_object_mut()
                .unwrap()
                .remove("latencyMillis");
        }),
        ("drill-toxiproxy.yaml", msg::TOXIC_BANDWIDTH, |d| {
            d["spec"]["fault"]["toxics"][1]["rateKilobytesPerSecond"] = json!(0)
        }),
    ]
}

fn refusal(result: Result<DynamicObject, kube::Error>, what: &str) -> String {
    match result {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{what}: {status:?}");
            status.message
        }
        other => panic!("{what}: expected a 422 refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn examples_apply_and_broken_examples_are_refused() {
    let (_plane, client) = plane().await;
    install_chart_crds(&client).await;

    // region-cert-manager.yaml lives in its own namespace; cert-manager's
    // kinds are not installed here, so only natsregion's objects are applied.
    create_namespace(&client, "shop").await;
    for file in EXAMPLES {
        let ours: Vec<Value> = example(file)
            .into_iter()
            .filter(|d| {
                d["apiVersion"]
                    .as_str()
                    .is_some_and(|v| v.starts_with("natsregion.io/"))
            })
            .collect();
        apply_all_dry_run(&client, &ours, file).await;
    }

    for (file, message, mutate) in broken_examples() {
        let mut object = example(file).remove(0);
        mutate(&mut object);
        let error = refusal(apply(&client, &object, false).await, file);
        assert!(
            error.contains(message),
            "{file}: expected the message {message:?}, got: {error}"
        );
    }

    // Transition rules need a stored object: the region for real, then edits.
    let region = example("region.yaml").remove(0);
    apply(&client, &region, true)
        .await
        .expect("store region.yaml");
    let transitions: [(&str, Mutation); 2] = [
        (msg::SOURCE_ZONE_IMMUTABLE, |r| {
            r["spec"]["zones"][0]["role"] = json!("mirror");
            r["spec"]["zones"][1]["role"] = json!("source");
        }),
        (msg::STREAM_NAME_IMMUTABLE, |r| {
            r["spec"]["stream"]["name"] = json!("qa2")
        }),
    ];
    for (message, mutate) in transitions {
        let mut edited = region.clone();
        mutate(&mut edited);
        let error = refusal(apply(&client, &edited, false).await, "edited region.yaml");
        assert!(
            error.contains(message),
            "expected {message:?}, got: {error}"
        );
    }
}

// ---------------------------------------------------------------- image build

/// The image build cannot run here (no container engine), so what it relies
/// on is checked instead: the build context (.dockerignore) holds everything
/// cargo reads, and the image's user is the one the chart runs as.
/// The shipped binary holds no test environment and no benchmark: both are
/// compiled only with the `testkit` feature, which the tests turn on (the
/// dev-dependency on this crate) and the release build never does.
/// `tools/images.sh` checks the built operator binary itself.
#[test]
fn test_environment_and_benchmarks_are_only_in_the_testkit_feature() {
    let lib = read(&root().join("src/lib.rs"));
    for module in ["testenv", "bench"] {
        assert!(
            lib.contains(&format!("#[cfg(feature = \"testkit\")]\npub mod {module};")),
            "src/lib.rs must gate `pub mod {module};` behind the testkit feature"
        );
    }
    let manifest: toml_like::Manifest = toml_like::parse(&read(&root().join("Cargo.toml")));
    assert!(
        !manifest.default_features.iter().any(|f| f == "testkit"),
        "testkit must not be a default feature"
    );
    assert_eq!(
        manifest.bench_required_features,
        ["testkit"],
        "natsregion-bench is built only with the testkit feature"
    );
    // Nothing that ships reaches into them.
    let files = rust_sources(&root().join("src"));
    let src = root().join("src");
    for file in files {
        let rel = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if rel.starts_with("testenv")
            || rel.starts_with("bench")
            || rel == "bin/natsregion-bench.rs"
        {
            continue;
        }
        let text = read(&file);
        for used in [
            "crate::testenv",
            "crate::bench",
            "natsregion::testenv",
            "natsregion::bench",
        ] {
            assert!(
                !text.contains(used),
                "src/{rel} uses {used}, which only the testkit feature has"
            );
        }
    }
}

/// Just enough of Cargo.toml for the test above (no TOML crate for one check).
mod toml_like {
    pub struct Manifest {
        pub default_features: Vec<String>,
        pub bench_required_features: Vec<String>,
    }

    fn list(line: &str) -> Vec<String> {
        line.split_once('=')
            .map(|(_, v)| v)
            .unwrap_or_default()
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split(',')
            .map(|s| s.trim().trim_matches('"').to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }

    pub fn parse(text: &str) -> Manifest {
        let mut section = String::new();
        let mut bin = String::new();
        let mut m = Manifest {
            default_features: Vec::new(),
            bench_required_features: Vec::new(),
        };
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line.to_string();
                bin.clear();
            } else if section == "[[bin]]" && line.starts_with("name") {
                bin = list(line).join("");
            } else if section == "[features]" && line.starts_with("default") {
                m.default_features = list(line);
            } else if bin == "natsregion-bench" && line.starts_with("required-features") {
                m.bench_required_features = list(line);
            }
        }
        m
    }
}

#[test]
fn dockerfile_build_context_and_user_match_the_crate_and_chart() {
    let dockerfile = read(&root().join("Dockerfile"));
    let ignore = read(&root().join(".dockerignore"));
    let kept: BTreeSet<&str> = ignore
        .lines()
        .filter_map(|l| l.trim().strip_prefix('!'))
        .collect();
    assert_eq!(
        kept,
        BTreeSet::from(["Cargo.toml", "Cargo.lock", "build.rs", "src/"]),
        "the build context is Cargo.toml, Cargo.lock, build.rs and src/"
    );
    // The context has no .git: the commit for --version comes in as an argument.
    assert!(
        dockerfile.contains("COPY build.rs")
            && dockerfile.contains("ARG NATSREGION_COMMIT")
            && dockerfile.contains("ENV NATSREGION_COMMIT=$NATSREGION_COMMIT"),
        "the Dockerfile copies build.rs and passes NATSREGION_COMMIT to it"
    );
    let manifest = read(&root().join("Cargo.toml"));
    for key in ["build =", "[[bench]]", "[[example]]", "path = \"../"] {
        assert!(
            !manifest.contains(key),
            "Cargo.toml has {key:?}: check the Docker build context"
        );
    }
    let files = rust_sources(&root().join("src"));
    let src = root().join("src").canonicalize().unwrap();
    for file in files {
        // The testkit feature's modules are not built into the image.
        let rel = file.strip_prefix(root().join("src")).unwrap_or(&file);
        if rel.starts_with("testenv") || rel.starts_with("bench") {
            continue;
        }
        let code = read(&file);
        for (i, _) in code.match_indices("include_") {
            let rest = &code[i..];
            let Some(arg) = rest
                .strip_prefix("include_str!(\"")
                .or_else(|| rest.strip_prefix("include_bytes!(\""))
            else {
                continue;
            };
            let target = file.parent().unwrap().join(&arg[..arg.find('"').unwrap()]);
            let target = target.canonicalize().unwrap_or(target);
            assert!(
                target.starts_with(&src),
                "{} includes {}, outside src/: the Docker build context lacks it",
                file.display(),
                target.display()
            );
        }
    }
    // Builds the crate's binary, statically, into a distroless nonroot image.
    assert!(dockerfile.contains("--bin natsregion"));
    assert!(dockerfile.contains("-unknown-linux-musl"));
    assert!(dockerfile.contains("FROM gcr.io/distroless/static:nonroot"));
    assert!(dockerfile.contains("USER 65532:65532"));
    let objects = documents(&template(&[]).unwrap());
    let pod = &deployment(&objects)["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(pod["securityContext"]["runAsGroup"], 65532);
}

// ------------------------------------------------------- the operator itself

/// A kubeconfig for `token` against the test API server.
fn kubeconfig(url: &str, token: &str) -> String {
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "test", "cluster": {"server": url, "insecure-skip-tls-verify": true}}],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "operator", "namespace": "default"}}],
        "current-context": "test",
    });
    serde_yaml_ng::to_string(&config).unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn http_status(url: &str) -> Option<u16> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    client
        .get(url)
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

/// Polls `check` every 250 ms until it holds or `limit` passes.
async fn eventually<F, Fut>(limit: Duration, what: &str, log: &Path, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < limit,
            "{what} not seen within {limit:?}; operator log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!("{what}: {:?}", started.elapsed());
}

/// The operator binary started exactly as the chart's Deployment starts it
/// (its args, its environment) under the chart's ServiceAccount with the
/// chart's RBAC installed for real: the flags parse, the probes answer on the
/// chart's paths, it takes the Lease the chart grants, it reconciles the
/// examples, it logs JSON, and the API server never refuses it anything.
#[tokio::test]
async fn operator_runs_with_the_chart_args_and_rbac() {
    run_operator_as_the_chart_does(&[], "default").await;
}

/// The same with `watchNamespace` and two replicas: only Roles in that
/// namespace, regions elsewhere are left alone, and the second replica is
/// ready but waits for the Lease.
#[tokio::test]
async fn operator_watching_one_namespace_runs_with_roles_only() {
    run_operator_as_the_chart_does(&["watchNamespace=team-a", "replicas=2"], "team-a").await;
}

/// Starts the operator binary with a container's args and env (downward-API
/// values filled in for `pod_name`), the metrics port moved to a free
/// loopback port. Returns the process, that port, its log and its args.
fn spawn_operator(
    container: &Value,
    kubeconfig: &Path,
    dir: &Path,
    pod_name: &str,
) -> (tokio::process::Child, u16, PathBuf, Vec<String>) {
    let port = free_port();
    let log = dir.join(format!("{pod_name}.log"));
    let args: Vec<String> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .map(|a| match a.strip_prefix("--metrics-addr=") {
            Some(_) => format!("--metrics-addr=127.0.0.1:{port}"),
            None => a,
        })
        .collect();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_natsregion"));
    command
        .args(&args)
        .env_clear()
        .env("KUBECONFIG", kubeconfig)
        .stdout(std::fs::File::create(dir.join(format!("{pod_name}.out"))).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true);
    for var in container["env"].as_array().unwrap() {
        let name = var["name"].as_str().unwrap();
        let value = match var["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            Some("metadata.name") => pod_name.to_string(),
            Some("metadata.namespace") => RELEASE_NS.to_string(),
            Some(other) => panic!("unexpected fieldRef {other}"),
            None => var["value"].as_str().unwrap().to_string(),
        };
        command.env(name, value);
    }
    let child = command.spawn().expect("start the operator");
    (child, port, log, args)
}

async fn run_operator_as_the_chart_does(sets: &[&str], ns: &'static str) {
    use k8s_openapi::api::apps::v1::StatefulSet;
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::ServiceAccount;

    let (plane, client) = plane().await;
    install_chart_crds(&client).await;
    create_namespace(&client, RELEASE_NS).await;
    if ns != "default" {
        create_namespace(&client, ns).await;
    }
    let objects = documents(&template(sets).unwrap());
    for object in objects.iter().filter(|o| {
        matches!(
            kind_of(o),
            "ServiceAccount" | "Role" | "RoleBinding" | "ClusterRole" | "ClusterRoleBinding"
        )
    }) {
        apply(&client, object, true)
            .await
            .unwrap_or_else(|e| panic!("apply {}: {e}", kind_of(object)));
    }
    let deploy = deployment(&objects);
    let pod = &deploy["spec"]["template"]["spec"];
    let account = pod["serviceAccountName"].as_str().unwrap();
    let token = Api::<ServiceAccount>::namespaced(client.clone(), RELEASE_NS)
        .create_token_request(
            account,
            &PostParams::default(),
            &TokenRequest {
                spec: Some(TokenRequestSpec {
                    expiration_seconds: Some(3600),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await
        .expect("token for the chart's ServiceAccount")
        .status
        .expect("token status")
        .token
        .expect("token");

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kubeconfig");
    std::fs::write(&config, kubeconfig(plane.url(), &token)).unwrap();

    // The container's args and env, with the pod's downward-API values filled in
    // and the metrics port moved to a free loopback port.
    let container = &pod["containers"][0];
    let (mut operator, port, log, args) =
        spawn_operator(container, &config, dir.path(), "natsregion-7d9f-abcde");

    // Probes, on the chart's paths and port name.
    let base = format!("http://127.0.0.1:{port}");
    let probe = |probe: &str| {
        let path = container[probe]["httpGet"]["path"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(container[probe]["httpGet"]["port"], "metrics");
        format!("{base}{path}")
    };
    for url in [
        probe("livenessProbe"),
        probe("readinessProbe"),
        format!("{base}/metrics"),
    ] {
        eventually(Duration::from_secs(60), &url, &log, || {
            let url = url.clone();
            async move { http_status(&url).await == Some(200) }
        })
        .await;
    }

    // The chart's `helm test` Pod: its command, with its ServiceAccount, on
    // the Service the chart makes for the metrics port.
    run_helm_test_pod(&objects, &config, port).await;

    // The Lease the chart's Role allows, held by this pod.
    let leases: Api<Lease> = Api::namespaced(client.clone(), RELEASE_NS);
    let lease_name = args
        .iter()
        .find_map(|a| a.strip_prefix("--lease-name="))
        .unwrap()
        .to_string();
    eventually(Duration::from_secs(60), "the leader Lease", &log, || {
        let leases = leases.clone();
        let lease_name = lease_name.clone();
        async move {
            leases
                .get_opt(&lease_name)
                .await
                .ok()
                .flatten()
                .and_then(|l| l.spec?.holder_identity)
                .is_some_and(|h| h.starts_with("natsregion-7d9f-abcde"))
        }
    })
    .await;

    // With replicas > 1 the other pods wait for the Lease, and are ready while
    // they wait (or a rollout would never become Available).
    let replicas = deploy["spec"]["replicas"].as_i64().unwrap();
    let mut standbys = Vec::new();
    for i in 1..replicas {
        let (standby, port, standby_log, _) = spawn_operator(
            container,
            &config,
            dir.path(),
            &format!("natsregion-7d9f-standby{i}"),
        );
        let url = format!("http://127.0.0.1:{port}/readyz");
        eventually(
            Duration::from_secs(60),
            "a standby's /readyz",
            &standby_log,
            || {
                let url = url.clone();
                async move { http_status(&url).await == Some(200) }
            },
        )
        .await;
        standbys.push((standby, standby_log));
    }

    // The examples are reconciled: a StatefulSet per zone, a status on the
    // drill; region-external.yaml's Secret does not exist, which the operator
    // reports with a Warning Event (so events.k8s.io is exercised too).
    for file in ["region.yaml", "drill.yaml", "region-external.yaml"] {
        let mut object = example(file).remove(0);
        object["metadata"]["namespace"] = json!(ns);
        apply(&client, &object, true)
            .await
            .unwrap_or_else(|e| panic!("create {file}: {e}"));
    }
    // A region outside the watched namespace, which must be left alone.
    let elsewhere = (ns != "default").then_some("default");
    if let Some(other) = elsewhere {
        let mut object = example("region.yaml").remove(0);
        object["metadata"]["namespace"] = json!(other);
        apply(&client, &object, true)
            .await
            .expect("create region.yaml elsewhere");
    }
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    eventually(
        Duration::from_secs(90),
        "a StatefulSet per zone",
        &log,
        || {
            let statefulsets = statefulsets.clone();
            async move {
                let names: BTreeSet<String> = statefulsets
                    .list(&Default::default())
                    .await
                    .map(|l| l.items.iter().map(|s| s.name_any()).collect())
                    .unwrap_or_default();
                ["qa-east", "qa-west", "qa-north"]
                    .iter()
                    .all(|n| names.contains(*n))
            }
        },
    )
    .await;
    let drills: Api<PartitionDrill> = Api::namespaced(client.clone(), ns);
    eventually(
        Duration::from_secs(90),
        "a status on the drill",
        &log,
        || {
            let drills = drills.clone();
            async move {
                drills
                    .get("qa-drill")
                    .await
                    .is_ok_and(|d| d.status.is_some_and(|s| s.observed_generation.is_some()))
            }
        },
    )
    .await;
    // The Warning Event went through (events.k8s.io: create, patch).
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
    eventually(Duration::from_secs(60), "a Warning Event", &log, || {
        let events = events.clone();
        async move {
            events.list(&Default::default()).await.is_ok_and(|l| {
                l.items
                    .iter()
                    .any(|e| e.type_.as_deref() == Some("Warning"))
            })
        }
    })
    .await;
    // A few more reconciles (status writes, retries) before reading the log.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        operator.try_wait().unwrap().is_none(),
        "the operator exited; log:\n{}",
        read(&log)
    );
    if let Some(other) = elsewhere {
        let untouched = Api::<StatefulSet>::namespaced(client.clone(), other)
            .list(&Default::default())
            .await
            .expect("list StatefulSets");
        assert!(
            untouched.items.is_empty(),
            "the operator reconciled a region outside {ns}"
        );
    }
    let holder = leases
        .get(&lease_name)
        .await
        .unwrap()
        .spec
        .and_then(|s| s.holder_identity)
        .unwrap_or_default();
    assert!(
        holder.starts_with("natsregion-7d9f-abcde"),
        "the first replica keeps the Lease, not {holder}"
    );
    let mut logs = vec![log];
    for (mut standby, standby_log) in standbys {
        standby.start_kill().unwrap();
        let _ = standby.wait().await;
        assert!(
            !read(&standby_log).contains("became leader"),
            "a standby led while the leader was alive"
        );
        logs.push(standby_log);
    }
    operator.start_kill().unwrap();
    let _ = operator.wait().await;

    for log in &logs {
        check_log(log);
    }
}

/// Runs the command of the chart's `helm test` Pod as that Pod would (its
/// args, its ServiceAccount's token), reaching the operator on
/// `operator_port` instead of through the Service its URL names; it passes.
/// Pointed at a port nothing answers on, it fails.
async fn run_helm_test_pod(objects: &[Value], kubeconfig: &Path, operator_port: u16) {
    let pods = find(objects, "Pod");
    assert_eq!(pods.len(), 1, "one helm test Pod");
    let pod = pods[0];
    assert_eq!(pod["metadata"]["annotations"]["helm.sh/hook"], "test");
    assert_eq!(
        pod["spec"]["serviceAccountName"],
        deployment(objects)["spec"]["template"]["spec"]["serviceAccountName"],
        "the test uses the operator's ServiceAccount (the token here is that one's)"
    );
    let service = find(objects, "Service")[0];
    let url = format!(
        "http://{}.{}.svc:{}/readyz",
        service["metadata"]["name"].as_str().unwrap(),
        service["metadata"]["namespace"].as_str().unwrap(),
        service["spec"]["ports"][0]["port"]
    );
    let args: Vec<String> = pod["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert!(
        args.contains(&format!("--ready-url={url}")),
        "the test reaches the operator through its metrics Service: {args:?}"
    );
    let run = |port: u16| {
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace(&url, &format!("http://127.0.0.1:{port}/readyz")))
            .collect();
        let kubeconfig = kubeconfig.to_path_buf();
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_natsregion"))
                .args(&args)
                .env_clear()
                .env("KUBECONFIG", kubeconfig)
                .output()
                .await
                .expect("run natsregion check")
        }
    };
    let out = run(operator_port).await;
    assert!(
        out.status.success(),
        "the helm test fails on a working install:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(
        text(&out.stdout).matches("ok: ").count(),
        3,
        "{}",
        text(&out.stdout)
    );
    let out = run(free_port()).await;
    assert!(
        !out.status.success() && text(&out.stderr).contains("does not answer"),
        "the helm test passes with no operator:\n{}",
        text(&out.stderr)
    );
}

/// Every line is JSON (the chart's logFormat) and none reports a refusal.
fn check_log(log: &Path) {
    let text = read(log);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            serde_json::from_str::<Value>(line).is_ok(),
            "logFormat json, but this line is not JSON: {line}"
        );
        let lower = line.to_lowercase();
        assert!(
            !lower.contains("forbidden") && !lower.contains("\"code\":403"),
            "the chart's RBAC refused the operator something: {line}"
        );
    }
}

// ------------------------------------------------------------ kind/e2e.sh flow

/// What the stand-in `natsregion drill` ends with: its exit code and the
/// drill status its JUnit and verdict table are rendered from (with the
/// product's own writers, so the script reads the real formats).
struct DrillStub {
    exit: i32,
    phase: &'static str,
    verdict: &'static str,
    claims: Vec<(&'static str, &'static str, &'static str)>,
}

impl DrillStub {
    fn status(&self) -> natsregion::api::PartitionDrillStatus {
        let claims: Vec<Value> = self
            .claims
            .iter()
            .map(|(claim, verdict, message)| {
                json!({"claim": claim, "verdict": verdict, "message": message})
            })
            .collect();
        serde_json::from_value(json!({
            "phase": self.phase,
            "verdict": self.verdict,
            "claims": claims,
        }))
        .expect("a drill status")
    }
}

/// One run of kind/e2e.sh with stand-ins.
struct E2eRun {
    code: i32,
    /// The stand-ins' calls in order, one per line.
    calls: String,
    /// The script's stdout and stderr.
    output: String,
    /// The drill file the script gave `natsregion drill`.
    drill_file: Option<String>,
    out_dir: PathBuf,
    _dir: tempfile::TempDir,
}

/// Runs kind/e2e.sh with stand-ins for docker, kind, kubectl and helm that
/// record their arguments, and for the natsregion CLI (NATSREGION_BIN) that
/// records its arguments and kubeconfig, keeps the drill file it was given,
/// writes `drill`'s JUnit, report and SVG, prints its verdict table and
/// exits with `drill.exit`.
fn run_e2e_with_stubs(drill: &DrillStub) -> E2eRun {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let calls = dir.path().join("calls");
    let state = dir.path().join("cluster-exists");
    let out_dir = dir.path().join("out");
    let status = drill.status();
    let suite = natsregion::cli::junit::Suite {
        name: "qa-drill on qa".into(),
        status: &status,
        seconds: 42.0,
    };
    let junit = dir.path().join("stub-junit.xml");
    std::fs::write(&junit, natsregion::cli::junit::render(&[suite]).unwrap()).unwrap();
    let table = dir.path().join("stub-table.txt");
    let table_text =
        natsregion::drill::report::status_table("qa-drill", "qa", "networkpolicy", &status, 42.0);
    std::fs::write(&table, table_text).unwrap();
    let seen_file = dir.path().join("drill-file-seen.yaml");
    let stub = |name: &str, body: &str| {
        let path = bin.join(name);
        std::fs::write(
            &path,
            format!(
                "#!/usr/bin/env bash\necho \"{name} $*\" >> '{}'\n{body}\nexit 0\n",
                calls.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    let state = state.display();
    stub(
        "kind",
        &format!(
            r#"case "$1 $2" in
  "get clusters") [ -e '{state}' ] && echo natsregion ;;
  "get kubeconfig") printf 'apiVersion: v1\nkind: Config\ncurrent-context: kind-%s\n' "${{4:-kind}}" ;;
  "create cluster") touch '{state}' ;;
  "delete cluster") rm -f '{state}' ;;
esac"#
        ),
    );
    stub("docker", "");
    stub("helm", "");
    stub("kubectl", "");
    stub(
        "natsregion",
        &format!(
            r#"echo "natsregion kubeconfig $(grep current-context "${{KUBECONFIG:-/nonexistent}}")" >> '{calls}'
[ "$1" = drill ] || exit 2
cp "$2" '{seen}'
report= junit=
while [ $# -gt 0 ]; do
  case $1 in
    --report) report=$2; shift ;;
    --junit) junit=$2; shift ;;
  esac
  shift
done
[ -n "$report" ] && echo '{{}}' > "$report" && echo '<svg/>' > "${{report%.json}}.svg"
[ -n "$junit" ] && cp '{junit}' "$junit"
cat '{table}'
exit {exit}"#,
            calls = calls.display(),
            seen = seen_file.display(),
            junit = junit.display(),
            table = table.display(),
            exit = drill.exit,
        ),
    );
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let out = Command::new("bash")
        .arg(root().join("kind/e2e.sh"))
        .env("PATH", path)
        .env("NATSREGION_BIN", bin.join("natsregion"))
        .env("OUT_DIR", &out_dir)
        .env_remove("KEEP_CLUSTER")
        .env_remove("KUBECONFIG")
        .output()
        .expect("run kind/e2e.sh");
    E2eRun {
        code: out.status.code().unwrap_or(-1),
        calls: std::fs::read_to_string(&calls).unwrap_or_default(),
        output: format!("{}{}", text(&out.stdout), text(&out.stderr)),
        drill_file: std::fs::read_to_string(&seen_file).ok(),
        out_dir,
        _dir: dir,
    }
}

const ALL_PASSED: [(&str, &str, &str); 4] = [
    (
        "local-consumption",
        "Passed",
        "consumers inside each zone kept up",
    ),
    (
        "no-loss-after-heal",
        "Passed",
        "all 3000 acked messages mirrored",
    ),
    (
        "independent-progress",
        "Passed",
        "each zone progressed on its own",
    ),
    (
        "zone-join",
        "Passed",
        "joiner caught up without producer changes",
    ),
];

fn passed_stub() -> DrillStub {
    DrillStub {
        exit: 0,
        phase: "Succeeded",
        verdict: "Passed",
        claims: ALL_PASSED.to_vec(),
    }
}

#[test]
fn e2e_script_runs_the_documented_steps_and_judges_the_claims() {
    let run = run_e2e_with_stubs(&passed_stub());
    let (code, calls) = (run.code, &run.calls);
    assert_eq!(
        code, 0,
        "all four claims passed; calls:\n{calls}\noutput:\n{}",
        run.output
    );
    let root = root().display().to_string();
    let out = run.out_dir.display();
    let expected = [
        format!("kind create cluster --name natsregion --config {root}/kind/cluster.yaml"),
        "calico.yaml".to_string(),
        "kind get kubeconfig --name natsregion".to_string(),
        "docker build -t natsregion:dev --build-arg NATSREGION_COMMIT=".to_string(),
        format!(" {root}\n"),
        "kind load docker-image natsregion:dev --name natsregion".to_string(),
        format!("helm upgrade --install natsregion {root}/charts/natsregion"),
        format!("apply -f {root}/examples/region.yaml"),
        "wait --for=condition=Ready regionmirror/qa".to_string(),
        format!("--namespace default --report {out}/e2e.json --junit {out}/e2e.xml"),
        "natsregion kubeconfig current-context: kind-natsregion".to_string(),
        "kind delete cluster --name natsregion".to_string(),
    ];
    let mut at = 0;
    for step in &expected {
        let found = calls[at..]
            .find(step.as_str())
            .unwrap_or_else(|| panic!("{step:?} missing or out of order in:\n{calls}"));
        at += found;
    }
    // The drill goes through the CLI only: no kubectl apply of it, no polling.
    for line in calls.lines().filter(|l| l.starts_with("kubectl ")) {
        assert!(
            !line.contains("drill.yaml") && !line.contains("{.status"),
            "the drill must run through natsregion drill, not kubectl: {line}"
        );
    }
    assert_eq!(
        calls
            .lines()
            .filter(|l| l.starts_with("natsregion drill "))
            .count(),
        1,
        "{calls}"
    );
    // The file it got is one the CLI accepts: the examples' region and drill.
    let file = run
        .drill_file
        .as_deref()
        .expect("natsregion drill got a file");
    let (region, drill) = natsregion::cli::drill_file::parse("e2e drill file", file)
        .unwrap_or_else(|e| panic!("the CLI would refuse e2e.sh's drill file: {e}\n{file}"));
    let region_example = documents(&read(&crate::root().join("examples/region.yaml")));
    let drill_example = documents(&read(&crate::root().join("examples/drill.yaml")));
    assert_eq!(
        serde_json::to_value(&region).unwrap()["spec"],
        serde_json::to_value(
            serde_json::from_value::<RegionMirror>(region_example[0].clone()).unwrap()
        )
        .unwrap()["spec"]
    );
    assert_eq!(
        serde_json::to_value(&drill).unwrap()["spec"],
        serde_json::to_value(
            serde_json::from_value::<PartitionDrill>(drill_example[0].clone()).unwrap()
        )
        .unwrap()["spec"]
    );
    // The CLI's verdict table and files are what the run leaves.
    assert!(run.output.contains("PASS"), "{}", run.output);
    assert!(
        run.output.contains("passed: all four claims held"),
        "{}",
        run.output
    );
    for f in ["e2e.json", "e2e.svg", "e2e.xml"] {
        assert!(run.out_dir.join(f).exists(), "{f} not in {out}");
    }
    // The values the script installs the chart with pass the chart's schema.
    let helm_line = calls.lines().find(|l| l.starts_with("helm ")).unwrap();
    let words: Vec<&str> = helm_line.split_whitespace().collect();
    let sets: Vec<&str> = words
        .windows(2)
        .filter(|w| w[0] == "--set")
        .map(|w| w[1])
        .collect();
    assert!(sets.contains(&"image.pullPolicy=Never"), "{sets:?}");
    template(&sets).unwrap_or_else(|e| panic!("e2e.sh's helm values {sets:?}: {e}"));

    // Anything short of four passed claims fails the run with the reason
    // shown, and the cluster goes anyway: failed claims (exit 1), a drill the
    // CLI could not run (exit 2), and a "pass" judging only three claims.
    let mut one_failed = ALL_PASSED.to_vec();
    one_failed[1] = (
        "no-loss-after-heal",
        "Failed",
        "17 acked messages missing on west after the heal",
    );
    let cases = [
        (
            DrillStub {
                exit: 1,
                phase: "Failed",
                verdict: "Failed",
                claims: one_failed,
            },
            vec![
                "17 acked messages missing on west after the heal",
                "FAILED: drill qa-drill ran and not every claim passed",
            ],
        ),
        (
            DrillStub {
                exit: 2,
                phase: "Errored",
                verdict: "NotRun",
                claims: vec![],
            },
            vec!["FAILED: natsregion drill could not run or follow drill qa-drill (exit 2"],
        ),
        (
            DrillStub {
                claims: ALL_PASSED[..3].to_vec(),
                ..passed_stub()
            },
            vec!["3 claims judged", "expected all four passed"],
        ),
    ];
    for (stub, reasons) in &cases {
        let run = run_e2e_with_stubs(stub);
        let what = format!("exit {} {} {:?}", stub.exit, stub.phase, stub.claims);
        assert_ne!(run.code, 0, "{what} must fail the run:\n{}", run.output);
        for reason in reasons {
            assert!(
                run.output.contains(reason),
                "{what}: the output should show {reason:?}:\n{}",
                run.output
            );
        }
        assert!(
            run.calls.contains("kind delete cluster --name natsregion"),
            "the cluster is deleted on failure too:\n{}",
            run.calls
        );
        assert!(
            run.calls.contains("logs deploy/natsregion"),
            "diagnostics on failure:\n{}",
            run.calls
        );
    }
}

// ------------------------------------------------------ helm install for real

/// `helm` against the test API server, with its own config and cache dirs.
fn helm_on(plane: &ControlPlane, home: &Path, args: &[&str]) -> Output {
    let bin = natsregion::tools::binary("helm").unwrap_or_else(|e| panic!("{e}"));
    Command::new(&bin)
        .args(args)
        .arg("--kubeconfig")
        .arg(plane.kubeconfig_path())
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()))
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// `helm install`, `upgrade` and `uninstall` against a real API server: Helm
/// installs the CRDs from crds/ before the templates, the values switch RBAC
/// from cluster-wide to one namespace, and uninstalling keeps the CRDs (and so
/// every region and drill), as Helm does.
#[tokio::test]
async fn helm_installs_upgrades_and_uninstalls_the_chart() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::rbac::v1::{ClusterRole, Role};

    let (plane, client) = plane().await;
    create_namespace(&client, "team-a").await;
    let home = tempfile::tempdir().unwrap();
    let chart = chart();
    let chart = chart.to_str().unwrap();
    let started = Instant::now();
    let install = helm_on(
        &plane,
        home.path(),
        &[
            "install",
            "natsregion",
            chart,
            "--namespace",
            RELEASE_NS,
            "--create-namespace",
        ],
    );
    assert_ok(&install, "helm install");
    eprintln!("helm install: {:?}", started.elapsed());

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for name in [
        "regionmirrors.natsregion.io",
        "partitiondrills.natsregion.io",
    ] {
        let crd = crds
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let shipped: CustomResourceDefinition =
            serde_yaml_ng::from_str(&read(&chart_path(&format!("crds/{name}.yaml")))).unwrap();
        // The server fills in defaults elsewhere; the schemas (CEL rules
        // included) must be exactly the shipped ones.
        let schemas = |c: &CustomResourceDefinition| -> Vec<_> {
            c.spec
                .versions
                .iter()
                .map(|v| (v.name.clone(), v.schema.clone()))
                .collect()
        };
        assert_eq!(
            schemas(&crd),
            schemas(&shipped),
            "{name} as installed by helm"
        );
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), RELEASE_NS);
    let deployment = deployments.get("natsregion").await.expect("Deployment");
    assert_eq!(deployment.spec.replicas, Some(1));
    let cluster_roles: Api<ClusterRole> = Api::all(client.clone());
    assert!(cluster_roles.get_opt("natsregion").await.unwrap().is_some());

    let upgrade = helm_on(
        &plane,
        home.path(),
        &[
            "upgrade",
            "natsregion",
            chart,
            "--namespace",
            RELEASE_NS,
            "--set",
            "watchNamespace=team-a",
            "--set",
            "replicas=2",
        ],
    );
    assert_ok(&upgrade, "helm upgrade");
    let deployment = deployments.get("natsregion").await.expect("Deployment");
    assert_eq!(deployment.spec.replicas, Some(2));
    assert!(
        cluster_roles.get_opt("natsregion").await.unwrap().is_none(),
        "the upgrade to one namespace removes the ClusterRole"
    );
    let roles: Api<Role> = Api::namespaced(client.clone(), "team-a");
    assert!(roles.get_opt("natsregion").await.unwrap().is_some());

    // A bad value fails the install before anything is written.
    let bad = helm_on(
        &plane,
        home.path(),
        &[
            "upgrade",
            "natsregion",
            chart,
            "--namespace",
            RELEASE_NS,
            "--set",
            "logFormat=xml",
        ],
    );
    assert!(!bad.status.success(), "logFormat=xml must be refused");
    assert!(
        text(&bad.stderr).contains("/logFormat"),
        "{}",
        text(&bad.stderr)
    );

    let uninstall = helm_on(
        &plane,
        home.path(),
        &["uninstall", "natsregion", "--namespace", RELEASE_NS],
    );
    assert_ok(&uninstall, "helm uninstall");
    assert!(deployments.get_opt("natsregion").await.unwrap().is_none());
    assert!(roles.get_opt("natsregion").await.unwrap().is_none());
    assert!(
        crds.get_opt("regionmirrors.natsregion.io")
            .await
            .unwrap()
            .is_some(),
        "Helm keeps CRDs on uninstall"
    );
}

fn chart_path(relative: &str) -> PathBuf {
    chart().join(relative)
}
