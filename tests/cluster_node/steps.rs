//! kind/steps.sh, unchanged, on the node: every line a user runs after `kind
//! create cluster` (image load, `helm upgrade --install`, the region applied
//! and waited for with kubectl, the drill through `natsregion drill --report
//! --junit`, the JUnit check). Only the image load differs from kind's: the
//! script calls the `load_operator_image` function its caller exports, here a
//! `ctr import` of the image archive instead of `kind load`.

use std::time::{Duration, Instant};

use crate::scenarios::{Cluster, NS};
use crate::util::{Outcome, drill_resource, err, get_json, secs};
use natsregion::testenv::node::cluster::{
    describe, expect_all_passed, region_manifest, remove_drill,
};

/// The drill examples/drill.yaml names, which the script runs.
const DRILL: &str = "qa-drill";
/// The script waits up to 600 s for the region and the CLI up to 30 minutes
/// for the drill; this bounds the whole run below the latter.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(20 * 60);

pub async fn kind_steps(c: &mut Cluster<'_>) -> Outcome {
    let dir = tempfile::tempdir().map_err(err)?;
    // The one node carries one topology zone: the region as the region
    // scenario applied it (examples/region.yaml without the other zones' pins).
    let region_file = dir.path().join("region.yaml");
    std::fs::write(
        &region_file,
        serde_yaml_ng::to_string(&region_manifest()).map_err(err)?,
    )
    .map_err(err)?;
    let out_dir = dir.path().join("out");
    let load = c
        .node
        .image_load_command("natsregion_dev.tar")
        .map_err(err)?;
    let tools_bin = natsregion::tools::binary("kubectl")
        .map_err(err)?
        .parent()
        .ok_or("kubectl has no directory")?
        .to_path_buf();
    let path = format!(
        "{}:{}",
        tools_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/kind/steps.sh");
    let started = Instant::now();
    let run = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "load_operator_image() {{ {load}; }}; export -f load_operator_image; exec '{script}'"
        ))
        .env("KUBECONFIG", c.node.kubeconfig_path())
        .env("PATH", path)
        .env("NATSREGION_BIN", env!("CARGO_BIN_EXE_natsregion"))
        .env("REGION_FILE", &region_file)
        .env("OUT_DIR", &out_dir)
        .env("NAMESPACE", NS)
        .kill_on_drop(true)
        .output();
    let run = tokio::time::timeout(SCRIPT_TIMEOUT, run)
        .await
        .map_err(|_| format!("kind/steps.sh still running after {}", secs(SCRIPT_TIMEOUT)))?
        .map_err(err)?;
    let took = started.elapsed();
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    println!("kind/steps.sh ({}):\n{output}", run.status);
    if !run.status.success() {
        return Err(format!("kind/steps.sh exited {}", run.status));
    }
    for file in ["e2e.json", "e2e.svg", "e2e.xml"] {
        if !out_dir.join(file).is_file() {
            return Err(format!("kind/steps.sh passed but left no {file}"));
        }
    }
    // The script's verdict, checked again from the object the operator wrote.
    let d = get_json(&c.client, NS, &drill_resource(), DRILL)
        .await?
        .ok_or("the script's drill is gone")?;
    expect_all_passed(&d).map_err(|e| format!("{e}\n{}", describe(&d)))?;
    c.figure(format!(
        "kind/steps.sh (networkPolicy drill): {} in all, catch-up {}s, max lag {}",
        secs(took),
        d["status"]["totals"]["catchUpSeconds"],
        d["status"]["totals"]["maxLag"]
    ));
    remove_drill(&c.client, DRILL).await
}
