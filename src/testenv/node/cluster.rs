//! What a user does on the node, shared by the one-node cluster test
//! (tests/cluster_node) and `natsregion-bench cluster-catchup`: the chart
//! installed with Helm, the example region applied and awaited, example
//! drills applied and awaited, the region's leafnode proxy changed and its
//! roll awaited. Objects are read as JSON, the way a user's kubectl reads
//! status; errors are messages (the callers report them, the node is still
//! dropped and swept).

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, LogParams, Patch, PatchParams};
use kube::discovery::ApiResource;
use serde_json::{Value, json};

use super::{Node, apply_all};
use crate::operator::region::names;

pub type Outcome<T = ()> = Result<T, String>;

/// The example region's name (examples/region.yaml).
pub const REGION: &str = "qa";
/// Where the region and its drills live.
pub const NS: &str = "default";
/// Where the chart installs the operator.
pub const OPERATOR_NS: &str = "natsregion-system";
/// The operator's pods.
pub const OPERATOR_SELECTOR: &str = "app.kubernetes.io/name=natsregion";
/// The example region's zones.
pub const ZONES: [&str; 3] = ["east", "west", "north"];

/// How long a drill may take from apply to a terminal phase.
pub const DRILL_TIMEOUT: Duration = Duration::from_secs(420);
const TERMINAL: [&str; 4] = ["Succeeded", "Failed", "Aborted", "Errored"];

pub fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

pub fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// The repository's own file, as a user would `kubectl apply -f` it.
pub fn example(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn region_resource() -> ApiResource {
    resource("natsregion.io", "v1alpha1", "RegionMirror", "regionmirrors")
}

pub fn drill_resource() -> ApiResource {
    resource(
        "natsregion.io",
        "v1alpha1",
        "PartitionDrill",
        "partitiondrills",
    )
}

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: format!("{group}/{version}"),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// The object as JSON, or `None` when it does not exist.
pub async fn get_json(
    client: &Client,
    ns: &str,
    res: &ApiResource,
    name: &str,
) -> Outcome<Option<Value>> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, res);
    let obj = api.get_opt(name).await.map_err(err)?;
    Ok(obj.map(|o| serde_json::to_value(o).expect("object serializes")))
}

pub async fn delete(client: &Client, ns: &str, res: &ApiResource, name: &str) -> Outcome {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, res);
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(err(e)),
    }
}

/// Polls `check` until it returns `Some`, failing after `timeout` with the
/// last thing it reported.
pub async fn wait_for<T, F, Fut>(
    what: &str,
    timeout: Duration,
    mut check: F,
) -> Outcome<(T, Duration)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Outcome<Result<T, String>>>,
{
    let started = Instant::now();
    let mut last;
    loop {
        match check().await {
            Ok(Ok(v)) => return Ok((v, started.elapsed())),
            Ok(Err(why)) => last = why,
            Err(e) => last = format!("error: {e}"),
        }
        if started.elapsed() > timeout {
            return Err(format!("{what}: not within {timeout:?} (last: {last})"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `status.conditions[type=Ready].status == "True"`.
pub fn is_ready(obj: &Value) -> bool {
    condition(obj, "Ready").is_some_and(|c| c["status"] == "True")
}

pub fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

/// `helm ARGS --kubeconfig <the node's>`, run in the repository (charts/
/// is relative to it); its stdout.
pub fn helm(node: &Node, args: &[&str]) -> Outcome<String> {
    let helm = crate::tools::binary("helm").map_err(err)?;
    let out = std::process::Command::new(helm)
        .args(args)
        .arg("--kubeconfig")
        .arg(node.kubeconfig_path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .map_err(err)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "helm {}: {}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// README step 3: `helm install` of charts/natsregion with the locally
/// assembled image `natsregion:dev` (pull policy Never), waited for.
pub fn install_operator(node: &Node) -> Outcome {
    helm(
        node,
        &[
            "install",
            "natsregion",
            "charts/natsregion",
            "--namespace",
            OPERATOR_NS,
            "--create-namespace",
            "--set",
            "image.repository=natsregion",
            "--set",
            "image.tag=dev",
            "--set",
            "image.pullPolicy=Never",
            "--wait",
            "--timeout",
            "180s",
        ],
    )
    .map(|_| ())
}

/// The operator pod once it is Ready (readiness probe passed).
pub async fn ready_operator_pod(client: &Client, timeout: Duration) -> Outcome<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), OPERATOR_NS);
    let (pod, _) = wait_for("the operator pod Ready", timeout, || {
        let pods = pods.clone();
        async move {
            let list = pods
                .list(&ListParams::default().labels(OPERATOR_SELECTOR))
                .await
                .map_err(err)?;
            let ready = list.items.into_iter().find(|p| {
                p.metadata.deletion_timestamp.is_none()
                    && p.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|cs| {
                            cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                        })
            });
            Ok(ready.ok_or_else(|| "no Ready operator pod".to_string()))
        }
    })
    .await?;
    Ok(pod)
}

/// examples/region.yaml, adapted where one node forces it: the node is in
/// topology zone `zone-a` only, so the mirror zones' pins to `zone-b` and
/// `zone-c` are dropped (their pods would never schedule); east keeps its pin.
pub fn region_manifest() -> Value {
    let mut region = example("region.yaml");
    region["metadata"]["namespace"] = NS.into();
    for zone in region["spec"]["zones"].as_array_mut().expect("zones") {
        if zone["name"] != "east" {
            zone.as_object_mut().expect("zone").remove("scheduling");
        }
    }
    region
}

/// `kubectl apply` of [`region_manifest`].
pub async fn apply_region(client: &Client) -> Outcome {
    apply_all(client, &[region_manifest()]).await.map_err(err)
}

/// Waits for the region Ready with both mirrors in sync; how long it took.
pub async fn wait_region_ready(client: &Client, timeout: Duration) -> Outcome<Duration> {
    let (_, took) = wait_for("RegionMirror qa Ready", timeout, || {
        let client = client.clone();
        async move {
            let r = get_json(&client, NS, &region_resource(), REGION).await?;
            Ok(match r {
                Some(r) if is_ready(&r) && r["status"]["mirrorsInSync"] == "2/2" => Ok(()),
                Some(r) => Err(format!(
                    "status {}",
                    serde_json::to_string(&r["status"]["conditions"]).unwrap_or_default()
                )),
                None => Err("not found".into()),
            })
        }
    })
    .await?;
    Ok(took)
}

/// Sets the region's `spec.leafnode.proxy` and waits until every zone's
/// StatefulSet is on a new revision, fully rolled and ready; how long the
/// roll took. The region's readiness is the caller's to wait for.
pub async fn set_leafnode_proxy(client: &Client, proxy: &str) -> Outcome<Duration> {
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    let before: Vec<Option<String>> = futures::future::join_all(ZONES.iter().map(|z| {
        let sts = sts.clone();
        async move {
            sts.get(&names::statefulset(REGION, z))
                .await
                .ok()
                .and_then(|s| s.status?.update_revision)
        }
    }))
    .await;
    let started = Instant::now();
    Api::<DynamicObject>::namespaced_with(client.clone(), NS, &region_resource())
        .patch(
            REGION,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"leafnode": {"proxy": proxy}}})),
        )
        .await
        .map_err(err)?;
    for (zone, old) in ZONES.iter().zip(before) {
        let name = names::statefulset(REGION, zone);
        let sts = sts.clone();
        wait_for(
            &format!("zone {zone} rolled"),
            Duration::from_secs(600),
            || {
                let (sts, name, old) = (sts.clone(), name.clone(), old.clone());
                async move {
                    let s = sts
                        .get(&name)
                        .await
                        .map_err(err)?
                        .status
                        .ok_or("no status")?;
                    let rolled = s.update_revision.is_some()
                        && s.update_revision != old
                        && s.current_revision == s.update_revision
                        && s.updated_replicas == Some(3)
                        && s.ready_replicas == Some(3);
                    Ok(if rolled {
                        Ok(())
                    } else {
                        Err(format!("{s:?}"))
                    })
                }
            },
        )
        .await?;
    }
    Ok(started.elapsed())
}

/// An example drill under another name, in [`NS`].
pub fn drill_manifest(file: &str, name: &str) -> Value {
    let mut d = example(file);
    d["metadata"]["name"] = name.into();
    d["metadata"]["namespace"] = NS.into();
    d
}

/// Applies `drill`, waits for a terminal phase, returns the object and the
/// wall time from apply to verdict.
pub async fn run_drill(client: &Client, drill: Value) -> Outcome<(Value, Duration)> {
    let name = drill["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    apply_all(client, &[drill]).await.map_err(err)?;
    until_ended(client, &name).await
}

/// Waits for `name` to end (a terminal phase); the drill, as JSON.
pub async fn drill_ended(client: &Client, name: &str) -> Outcome<Value> {
    Ok(until_ended(client, name).await?.0)
}

/// The drill once in a terminal phase, and how long that took; a timeout
/// names the phase and step it was in.
async fn until_ended(client: &Client, name: &str) -> Outcome<(Value, Duration)> {
    wait_for(&format!("drill {name} to finish"), DRILL_TIMEOUT, || {
        let client = client.clone();
        async move {
            let d = get_json(&client, NS, &drill_resource(), name)
                .await?
                .ok_or("drill gone")?;
            let phase = d["status"]["phase"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            Ok(if TERMINAL.contains(&phase.as_str()) {
                Ok(d)
            } else {
                Err(format!("phase {phase} step {}", d["status"]["currentStep"]))
            })
        }
    })
    .await
}

/// Each claim of a drill's status: name, verdict, message.
pub fn claims(d: &Value) -> Vec<(String, String, String)> {
    d["status"]["claims"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["claim"].as_str().unwrap_or_default().to_string(),
                c["verdict"].as_str().unwrap_or_default().to_string(),
                c["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// A drill's phase, verdict, message and claims, one claim a line.
pub fn describe(d: &Value) -> String {
    let s = &d["status"];
    let mut out = format!(
        "phase {} verdict {} message {}",
        s["phase"], s["verdict"], s["message"]
    );
    for (claim, verdict, message) in claims(d) {
        out.push_str(&format!("\n    {claim}: {verdict}: {message}"));
    }
    out
}

pub fn expect_all_passed(d: &Value) -> Outcome {
    let all = claims(d);
    if d["status"]["phase"] == "Succeeded"
        && all.len() == 4
        && all.iter().all(|(_, v, _)| v == "Passed")
    {
        Ok(())
    } else {
        Err(format!(
            "drill did not pass all four claims: {}",
            describe(d)
        ))
    }
}

/// Deletes drill `name` and waits until it is gone.
pub async fn remove_drill(client: &Client, name: &str) -> Outcome {
    delete(client, NS, &drill_resource(), name).await?;
    wait_for(
        &format!("drill {name} deleted"),
        Duration::from_secs(120),
        || {
            let client = client.clone();
            let name = name.to_string();
            async move {
                Ok(
                    match get_json(&client, NS, &drill_resource(), &name).await? {
                        None => Ok(()),
                        Some(_) => Err("still there".to_string()),
                    },
                )
            }
        },
    )
    .await?;
    Ok(())
}

/// The lines of the current logs of the pods matching `selector` in `ns`
/// that contain `needle`, each prefixed with its pod's name.
pub async fn pod_log_lines(
    client: &Client,
    ns: &str,
    selector: &str,
    needle: &str,
) -> Outcome<Vec<String>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut found = Vec::new();
    for pod in pods
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(err)?
    {
        let name = pod.metadata.name.unwrap_or_default();
        let log = pods.logs(&name, &LogParams::default()).await.map_err(err)?;
        found.extend(
            log.lines()
                .filter(|l| l.contains(needle))
                .map(|l| format!("{name}: {l}")),
        );
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_region_keeps_only_the_source_pin() {
        let r = region_manifest();
        assert_eq!(r["metadata"]["namespace"], NS);
        let pinned: Vec<&str> = r["spec"]["zones"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|z| z.get("scheduling").is_some())
            .map(|z| z["name"].as_str().unwrap())
            .collect();
        assert_eq!(pinned, ["east"]);
    }

    #[test]
    fn a_drill_manifest_is_renamed_into_the_namespace() {
        let d = drill_manifest("drill-toxiproxy.yaml", "x");
        assert_eq!(d["metadata"]["name"], "x");
        assert_eq!(d["metadata"]["namespace"], NS);
        assert_eq!(d["spec"]["fault"]["backend"], "toxiproxy");
    }
}
