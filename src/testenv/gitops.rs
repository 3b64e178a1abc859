//! The health checks docs/gitops.md ships (Flux CEL expressions, Argo CD Lua
//! scripts), read from that page and evaluated the way Flux and Argo CD do,
//! so the page and the tests cannot drift.

use serde::Deserialize;

/// The page, as built into the test support: an edit to it is what the
/// tests check next time.
const PAGE: &str = include_str!("../../docs/gitops.md");

/// A Flux health verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Current,
    InProgress,
    Failed,
}

/// One entry of a Kustomization's `spec.healthCheckExprs`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckExpr {
    pub api_version: String,
    pub kind: String,
    pub current: String,
    #[serde(default)]
    pub in_progress: Option<String>,
    #[serde(default)]
    pub failed: Option<String>,
}

/// Every YAML document of the page's YAML blocks.
fn yaml_documents() -> Vec<serde_yaml_ng::Value> {
    let mut out = Vec::new();
    for block in PAGE.split("```yaml\n").skip(1) {
        let yaml = block.split("```").next().unwrap_or_default();
        for doc in serde_yaml_ng::Deserializer::from_str(yaml) {
            out.push(serde_yaml_ng::Value::deserialize(doc).expect("YAML in docs/gitops.md"));
        }
    }
    out
}

/// Every `healthCheckExprs` entry of every Kustomization in the page.
pub fn flux_exprs() -> Vec<HealthCheckExpr> {
    yaml_documents()
        .into_iter()
        .filter(|v| v["kind"].as_str() == Some("Kustomization"))
        .flat_map(|v| {
            serde_yaml_ng::from_value::<Vec<HealthCheckExpr>>(v["spec"]["healthCheckExprs"].clone())
                .expect("healthCheckExprs in docs/gitops.md")
        })
        .collect()
}

/// The Argo CD health script for `kind` (`resource.customizations.health.
/// natsregion.io_<kind>` of the page's `argocd-cm` data).
pub fn argo_script(kind: &str) -> Option<String> {
    let key = format!("resource.customizations.health.natsregion.io_{kind}");
    yaml_documents()
        .iter()
        .find_map(|v| v["data"][key.as_str()].as_str().map(str::to_string))
}

/// The health Argo CD gives `object` with the page's script: its `status`
/// (`Healthy`, `Progressing`, `Degraded`, `Suspended`) and `message`. As in
/// Argo CD, the object is the global `obj`, absent fields are `nil`.
pub fn argo_health(object: &serde_json::Value) -> Result<(String, String), String> {
    use mlua::LuaSerdeExt;
    let kind = object["kind"].as_str().ok_or("object without kind")?;
    let script = argo_script(kind)
        .ok_or_else(|| format!("docs/gitops.md has no Argo CD script for {kind}"))?;
    let lua = mlua::Lua::new();
    let options = mlua::SerializeOptions::new()
        .serialize_none_to_null(false)
        .serialize_unit_to_null(false);
    let obj = lua
        .to_value_with(object, options)
        .map_err(|e| e.to_string())?;
    lua.globals().set("obj", obj).map_err(|e| e.to_string())?;
    let hs: mlua::Table = lua
        .load(script.as_str())
        .eval()
        .map_err(|e| format!("{kind} script: {e}"))?;
    let field = |k: &str| -> Result<String, String> {
        hs.get::<Option<String>>(k)
            .map(Option::unwrap_or_default)
            .map_err(|e| e.to_string())
    };
    Ok((field("status")?, field("message")?))
}

/// [`argo_health`]'s status for a typed object.
pub fn argo_status_of<K: serde::Serialize>(object: &K) -> Result<String, String> {
    argo_health(&serde_json::to_value(object).map_err(|e| e.to_string())?).map(|(s, _)| s)
}

/// The verdict of the page's expressions for `object` (a whole object as the
/// API server returns it). Flux evaluates `inProgress`, `failed`, then
/// `current`; none true is in progress. An expression that cannot be
/// evaluated (a field missing) is an `Err`: Flux keeps waiting.
pub fn flux_health(object: &serde_json::Value) -> Result<Health, String> {
    let kind = object["kind"].as_str().ok_or("object without kind")?;
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let exprs = flux_exprs();
    let check = exprs
        .iter()
        .find(|e| e.kind == kind && e.api_version == api_version)
        .ok_or_else(|| {
            format!("docs/gitops.md has no healthCheckExprs for {api_version} {kind}")
        })?;
    let mut ctx = cel::Context::default();
    for (name, value) in object.as_object().ok_or("object is not a map")? {
        ctx.add_variable(name.as_str(), value)
            .map_err(|e| format!("{name}: {e}"))?;
    }
    let eval = |expr: &str| -> Result<bool, String> {
        let program = cel::Program::compile(expr).map_err(|e| format!("{expr}: {e}"))?;
        match program.execute(&ctx).map_err(|e| format!("{expr}: {e}"))? {
            cel::Value::Bool(b) => Ok(b),
            other => Err(format!("{expr}: not a bool: {other:?}")),
        }
    };
    for (expr, health) in [
        (check.in_progress.as_deref(), Health::InProgress),
        (check.failed.as_deref(), Health::Failed),
        (Some(check.current.as_str()), Health::Current),
    ] {
        if let Some(expr) = expr
            && eval(expr)?
        {
            return Ok(health);
        }
    }
    Ok(Health::InProgress)
}

/// [`flux_health`] of a typed object.
pub fn flux_health_of<K: serde::Serialize>(object: &K) -> Result<Health, String> {
    flux_health(&serde_json::to_value(object).map_err(|e| e.to_string())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_page_has_expressions_for_both_kinds_and_they_compile() {
        let exprs = flux_exprs();
        for kind in ["RegionMirror", "PartitionDrill"] {
            let e = exprs.iter().find(|e| e.kind == kind).expect(kind);
            for expr in [Some(&e.current), e.in_progress.as_ref(), e.failed.as_ref()]
                .into_iter()
                .flatten()
            {
                cel::Program::compile(expr).unwrap_or_else(|err| panic!("{expr}: {err}"));
            }
        }
    }

    #[test]
    fn the_argo_scripts_run_on_objects_with_and_without_status() {
        let mut region = json!({
            "apiVersion": "natsregion.io/v1alpha1", "kind": "RegionMirror",
            "metadata": {"name": "east", "generation": 2}, "spec": {},
        });
        assert_eq!(argo_health(&region).unwrap().0, "Progressing");
        region["status"] = json!({"observedGeneration": 2, "conditions": [
            {"type": "Ready", "status": "False", "reason": "MirrorsBehind", "message": "m"},
            {"type": "Reconciling", "status": "False", "reason": "Reconciled", "message": ""},
            {"type": "Stalled", "status": "False", "reason": "Reconciled", "message": ""},
        ]});
        assert_eq!(
            argo_health(&region).unwrap(),
            ("Degraded".to_string(), "MirrorsBehind: m".to_string())
        );
        let drill = json!({
            "apiVersion": "natsregion.io/v1alpha1", "kind": "PartitionDrill",
            "metadata": {"name": "d", "generation": 1}, "spec": {"suspend": true},
            "status": {"observedGeneration": 1, "phase": "Pending"},
        });
        assert_eq!(argo_health(&drill).unwrap().0, "Suspended");
    }

    #[test]
    fn an_object_without_status_is_not_current() {
        let region = json!({
            "apiVersion": "natsregion.io/v1alpha1", "kind": "RegionMirror",
            "metadata": {"name": "east", "generation": 1}, "spec": {},
        });
        assert!(flux_health(&region).is_err());
    }
}
