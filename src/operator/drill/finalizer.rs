//! The heal finalizer: added before the first fault, removed once every
//! fault is healed, so a drill cannot be deleted with a cut still open.

use super::*;

pub(super) async fn set_finalizers(
    api: &Api<PartitionDrill>,
    drill: &PartitionDrill,
    finalizers: Vec<String>,
) -> Result<()> {
    let name = drill.name_any();
    // resourceVersion makes this a compare-and-swap: a concurrent change
    // makes it fail and the next reconcile sees the new list.
    let patch = serde_json::json!({
        "metadata": {
            "finalizers": finalizers,
            "resourceVersion": drill.resource_version(),
        }
    });
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(Error::kube(format!("update finalizers of drill {name}"), e)),
    }
}

pub(super) async fn add_finalizer(api: &Api<PartitionDrill>, drill: &PartitionDrill) -> Result<()> {
    if has_finalizer(drill) {
        return Ok(());
    }
    let mut f = drill.finalizers().to_vec();
    f.push(FINALIZER.to_string());
    set_finalizers(api, drill, f).await
}

pub(super) async fn remove_finalizer(
    api: &Api<PartitionDrill>,
    drill: &PartitionDrill,
) -> Result<()> {
    if !has_finalizer(drill) {
        return Ok(());
    }
    let f = drill
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    set_finalizers(api, drill, f).await
}
