//! The `natsregion` binary as a user and a CI job run it: progress in a log
//! file, kubectl-style flags against a real API server, `validate`,
//! `completion` and `--version`.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use natsregion::api::validate::msg;
use natsregion::api::{PartitionDrill, RegionMirror};
use natsregion::testenv::fixtures;
use natsregion::testenv::support::{eventually, plane_with_crds};

const BIN: &str = env!("CARGO_BIN_EXE_natsregion");

fn natsregion(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run natsregion")
}

/// The CLI started in the background with its output captured; killed if
/// the test ends first.
fn spawn_cli(cmd: &mut tokio::process::Command) -> tokio::process::Child {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A small, fast local drill: two zones of one server, a 3 s cut.
fn fast_drill() -> String {
    fixtures::two_zone_drill_file("cli", 3, 200, 400)
}

/// Issue 25 item 4: with stderr in a file (CI), each step is a plain line and
/// a heartbeat names the current step. No flag the CLI lacked before: the
/// interval comes from the environment, so this fails on the lines alone.
#[test]
fn a_local_drill_logged_to_a_file_prints_steps_and_heartbeats() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("drill.yaml");
    std::fs::write(&file, fast_drill()).unwrap();
    let (out, err) = (dir.path().join("out.log"), dir.path().join("err.log"));
    let status = Command::new(BIN)
        .args(["drill", "--local"])
        .arg(&file)
        .env("NATSREGION_HEARTBEAT", "1s")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .status()
        .expect("run natsregion");
    let (stdout, stderr) = (
        std::fs::read_to_string(&out).unwrap(),
        std::fs::read_to_string(&err).unwrap(),
    );
    assert!(status.success(), "{status}\n{stderr}\n{stdout}");
    let (_, drill) = natsregion::cli::drill_file::parse("x", &fast_drill()).unwrap();
    let steps = drill.spec.steps();
    for (i, step) in steps.iter().enumerate() {
        let line = format!("] step {}/{}: {}", i + 1, steps.len(), step.name());
        assert!(stderr.contains(&line), "no {line:?} in\n{stderr}");
    }
    assert!(
        stderr.lines().any(|l| l.contains("] still at step ")),
        "no heartbeat in\n{stderr}"
    );
    // Progress stays on stderr: stdout is the verdict table alone.
    assert!(stdout.starts_with("drill cli on region cli"), "{stdout}");
    assert!(!stdout.contains("step 1/"), "{stdout}");
}

/// A kubeconfig whose current context points at nothing, and a context
/// `right` for `plane` with namespace `default`.
fn two_context_kubeconfig(plane: &natsregion::testenv::ControlPlane, path: &Path) {
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "nowhere", "cluster": {"server": "https://127.0.0.1:1", "insecure-skip-tls-verify": true}},
            {"name": "test", "cluster": {"server": plane.url(), "insecure-skip-tls-verify": true}},
        ],
        "users": [{"name": "admin", "user": {"token": plane.token()}}],
        "contexts": [
            {"name": "wrong", "context": {"cluster": "nowhere", "user": "admin", "namespace": "default"}},
            {"name": "right", "context": {"cluster": "test", "user": "admin", "namespace": "default"}},
        ],
        "current-context": "wrong",
    });
    std::fs::write(path, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
}

/// Issue 25 item 5: `--kubeconfig FILE --context X -n NS -o json` reach the
/// cluster and namespace they name. The test plays the operator (it writes
/// the drill's status), so only the API server is needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_flags_pick_the_cluster_and_namespace_and_o_prints_the_result() {
    let (plane, client) = plane_with_crds().await;
    let ns = "cli-flags";
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await
        .unwrap();
    let region = fixtures::region(
        "east",
        fixtures::events_spec(json!([
            {"name": "a", "role": "source", "servers": 1},
            {"name": "b", "role": "mirror", "servers": 1},
        ])),
    );
    Api::<RegionMirror>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &region)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    two_context_kubeconfig(&plane, &kubeconfig);
    let file = dir.path().join("drill.yaml");
    let drill = fixtures::drill("ci", "east", json!({"fault": {"backend": "toxiproxy"}}));
    std::fs::write(&file, serde_yaml_ng::to_string(&drill).unwrap()).unwrap();
    let kc = kubeconfig.to_str().unwrap();
    let f = file.to_str().unwrap();

    // The current context is the wrong one: without --context, no cluster.
    let out = tokio::task::spawn_blocking({
        let (kc, f) = (kc.to_string(), f.to_string());
        move || natsregion(&["drill", &f, "--kubeconfig", &kc, "-n", "cli-flags"])
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    // A namespace in the file that --namespace contradicts is pointed out.
    let elsewhere = dir.path().join("elsewhere.yaml");
    let mut other = drill.clone();
    other.metadata.namespace = Some("default".into());
    std::fs::write(&elsewhere, serde_yaml_ng::to_string(&other).unwrap()).unwrap();
    let out = natsregion(&[
        "drill",
        elsewhere.to_str().unwrap(),
        "--kubeconfig",
        kc,
        "--context",
        "right",
        "-n",
        ns,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("in namespace default but --namespace says cli-flags"),
        "{}",
        text(&out.stderr)
    );

    let child = spawn_cli(
        tokio::process::Command::new(BIN)
            .args(["drill", f, "--kubeconfig", kc, "--context", "right"])
            .args([
                "-n",
                ns,
                "-o",
                "json",
                "--timeout",
                "2m",
                "--heartbeat",
                "1s",
            ]),
    );
    let drills: Api<PartitionDrill> = Api::namespaced(client.clone(), ns);
    play_the_operator(&drills, "ci").await;
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the CLI ends once the drill completed")
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{}\n{stderr}\n{stdout}", out.status);
    let result: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{stdout}"));
    assert_eq!(result["verdict"], "Passed", "{stdout}");
    assert_eq!(result["claimsPassed"], "4/4", "{stdout}");
    assert!(stderr.contains("drill cli-flags/ci applied"), "{stderr}");
    assert!(stderr.contains("] step 1/"), "{stderr}");
    // Only the namespace -n named holds the drill, not the context's default.
    let default: Api<PartitionDrill> = Api::namespaced(client.clone(), "default");
    assert!(default.get_opt("ci").await.unwrap().is_none());

    // A region the cluster lacks is created from the file and waited for
    // until Ready (a watch now, no polling); -o yaml prints the same result.
    let mut west = region.clone();
    west.metadata.name = Some("west".into());
    let mut drill = fixtures::drill(
        "ci-west",
        "west",
        json!({"fault": {"backend": "toxiproxy"}}),
    );
    drill.metadata.namespace = Some(ns.into());
    let both = dir.path().join("both.yaml");
    std::fs::write(
        &both,
        format!(
            "{}---\n{}",
            serde_yaml_ng::to_string(&west).unwrap(),
            serde_yaml_ng::to_string(&drill).unwrap()
        ),
    )
    .unwrap();
    let child = spawn_cli(
        tokio::process::Command::new(BIN)
            .args(["drill", both.to_str().unwrap(), "--kubeconfig", kc])
            .args(["--context", "right", "-o", "yaml", "--timeout", "2m"]),
    );
    let regions: Api<RegionMirror> = Api::namespaced(client.clone(), ns);
    eventually(
        "the CLI's region west",
        Duration::from_secs(60),
        async || {
            regions
                .get_opt("west")
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "not yet".to_string())
        },
    )
    .await;
    // Not Ready yet: the CLI must not apply the drill.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(drills.get_opt("ci-west").await.unwrap().is_none());
    regions
        .patch_status(
            "west",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": [{
                "type": "Ready", "status": "True", "reason": "Converged", "message": "ready",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }]}})),
        )
        .await
        .unwrap();
    play_the_operator(&drills, "ci-west").await;
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the CLI ends once the drill completed")
        .unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{}\n{stderr}\n{stdout}", out.status);
    assert!(stderr.contains("waiting for it to be Ready"), "{stderr}");
    let result: serde_json::Value = serde_yaml_ng::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not YAML ({e}):\n{stdout}"));
    assert_eq!(result["verdict"], "Passed", "{stdout}");
}

/// What the operator would write while it runs drill `name`: a first step,
/// then the verdict and `Completed` for the drill's generation.
async fn play_the_operator(drills: &Api<PartitionDrill>, name: &str) {
    let created = eventually(
        &format!("the CLI's drill {name}"),
        Duration::from_secs(60),
        async || {
            drills
                .get_opt(name)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| "not yet".to_string())
        },
    )
    .await;
    let patch = |status: serde_json::Value| async move {
        drills
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await
            .unwrap()
    };
    patch(json!({"phase": "Running", "stepIndex": 0, "currentStep": "produce"})).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    patch(json!({
        "phase": "Succeeded",
        "verdict": "Passed",
        "claimsPassed": "4/4",
        "conditions": [{
            "type": "Completed", "status": "True", "reason": "Finished", "message": "done",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
            "observedGeneration": created.metadata.generation,
        }],
    }))
    .await;
}

#[test]
fn validate_passes_the_examples_and_refuses_with_the_crd_message() {
    let examples: Vec<String> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.ends_with(".yaml"))
        .collect();
    let mut args = vec!["validate"];
    args.extend(examples.iter().map(String::as_str));
    let out = natsregion(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert_eq!(
        text(&out.stdout).matches(": valid (").count(),
        examples.len()
    );

    let dir = tempfile::tempdir().unwrap();
    let local = std::fs::read_to_string(root().join("examples/drill-local.yaml")).unwrap();
    let bad = dir.path().join("bad.yaml");
    // Two refusals in one file, both reported: a CEL rule and the schema.
    std::fs::write(
        &bad,
        local
            .replace("name: EVENTS_REGION", "name: EVENTS.REGION")
            .replace("holdSeconds: 6", "holdSecond: 6"),
    )
    .unwrap();
    let out = natsregion(&["validate", bad.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains(msg::STREAM_NAME), "{stdout}");
    assert!(
        stdout.contains("spec.fault.holdSecond: unknown field"),
        "{stdout}"
    );
    assert!(stdout.contains("bad.yaml"), "{stdout}");

    // A drill checked against its region in another file: the capacity plan.
    let region = dir.path().join("region.yaml");
    std::fs::write(
        &region,
        local.split("---").next().unwrap().replace(
            "syncInterval: 2m",
            "syncInterval: 2m\n    maxBytes: 1048576",
        ),
    )
    .unwrap();
    let drill = dir.path().join("drill.yaml");
    std::fs::write(&drill, local.split("---").nth(1).unwrap()).unwrap();
    let out = natsregion(&[
        "validate",
        region.to_str().unwrap(),
        drill.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("PartitionDrill demo: the drill writes about"),
        "{}",
        text(&out.stdout)
    );

    let out = natsregion(&[
        "validate",
        dir.path().join("missing.yaml").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot read"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn completion_and_version() {
    let out = natsregion(&["completion", "bash"]);
    assert!(out.status.success());
    let script = text(&out.stdout);
    for sub in [
        "drill",
        "validate",
        "completion",
        "crd",
        "--kubeconfig",
        "--context",
    ] {
        assert!(script.contains(sub), "bash completion lacks {sub}");
    }
    let out = natsregion(&["--version"]);
    let version = text(&out.stdout);
    let commit = version
        .split("(commit ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no commit in {version:?}"));
    assert!(version.starts_with(&format!("natsregion {} ", env!("CARGO_PKG_VERSION"))));
    assert!(
        commit == "unknown" || (commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{version:?}"
    );
}
