//! Small helpers the scenarios share: applying YAML, reading objects as
//! JSON (the tests read status the way a user's kubectl does), waiting.

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, LogParams};
use kube::discovery::ApiResource;
use serde_json::Value;

pub type Outcome<T = ()> = Result<T, String>;

pub fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
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

pub fn helm(node: &natsregion::testenv::node::Node, args: &[&str]) -> Outcome<String> {
    let helm = natsregion::tools::binary("helm").map_err(err)?;
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

pub fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}
