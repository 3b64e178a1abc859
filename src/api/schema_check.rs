//! The structural checks the API server makes before any CEL rule, made
//! locally from the CRD's own OpenAPI v3 schema (`RegionMirror::crd()`,
//! `PartitionDrill::crd()`), so a local drill file is refused where
//! `kubectl apply` (strict field validation) would refuse it: unknown
//! fields, types, enums, lengths, item counts, bounds, required fields.
//! Serde alone would drop a misspelt `holdSecond` and use the default.
//! Pure: a schema and a value in, the violations out.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use kube::CustomResourceExt;
use serde_json::Value;

use super::validate::SpecError;
use super::{PartitionDrill, RegionMirror};

/// The schema of the CRD's single version.
pub fn crd_schema<K: CustomResourceExt>() -> JSONSchemaProps {
    K::crd()
        .spec
        .versions
        .into_iter()
        .next()
        .and_then(|v| v.schema)
        .and_then(|s| s.open_api_v3_schema)
        .expect("the CRD has a schema")
}

/// A RegionMirror as written (before defaults) against its CRD's schema, as
/// the API server checks it with strict field validation.
pub fn region(value: &Value) -> Result<(), SpecError> {
    check::<RegionMirror>("RegionMirror", value)
}

/// A PartitionDrill as written against its CRD's schema.
pub fn drill(value: &Value) -> Result<(), SpecError> {
    check::<PartitionDrill>("PartitionDrill", value)
}

fn check<K: CustomResourceExt>(kind: &'static str, value: &Value) -> Result<(), SpecError> {
    let errors = violations(&crd_schema::<K>(), value);
    if errors.is_empty() {
        return Ok(());
    }
    Err(SpecError::Rules {
        kind,
        name: value["metadata"]["name"]
            .as_str()
            .unwrap_or("(unnamed)")
            .to_string(),
        errors,
    })
}

/// Every violation of `schema` in `value`, each as `<path>: <what>`, the
/// path spelt as the API server spells it (`spec.zones[3].name`).
/// `metadata` is left to the API server's own ObjectMeta checks.
pub fn violations(schema: &JSONSchemaProps, value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(schema, value, "", &mut out);
    out
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn walk(schema: &JSONSchemaProps, value: &Value, path: &str, out: &mut Vec<String>) {
    let at = if path.is_empty() { "<root>" } else { path };
    if value.is_null() {
        if schema.nullable != Some(true) {
            out.push(format!("{at}: must not be null"));
        }
        return;
    }
    if let Some(want) = schema.type_.as_deref() {
        let got = type_name(value);
        let fits = got == want || (want == "number" && got == "integer");
        if !fits {
            out.push(format!("{at}: must be of type {want}, not {got}"));
            return;
        }
    }
    if let Some(allowed) = &schema.enum_
        && !allowed.iter().any(|a| a.0 == *value)
    {
        let names: Vec<String> = allowed.iter().map(|a| a.0.to_string()).collect();
        out.push(format!(
            "{at}: unsupported value {value}: supported values: {}",
            names.join(", ")
        ));
    }
    match value {
        Value::String(s) => {
            // The API server counts characters (runes), not bytes.
            let n = s.chars().count() as i64;
            if let Some(max) = schema.max_length.filter(|max| n > *max) {
                out.push(format!(
                    "{at}: too long: may not be more than {max} characters"
                ));
            }
            if let Some(min) = schema.min_length.filter(|min| n < *min) {
                out.push(format!(
                    "{at}: too short: must be at least {min} characters"
                ));
            }
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            if let Some(max) = schema.maximum.filter(|max| x > *max) {
                out.push(format!("{at}: must be less than or equal to {max}"));
            }
            if let Some(min) = schema.minimum.filter(|min| x < *min) {
                out.push(format!("{at}: must be greater than or equal to {min}"));
            }
        }
        Value::Array(items) => {
            let n = items.len() as i64;
            if let Some(max) = schema.max_items.filter(|max| n > *max) {
                out.push(format!(
                    "{at}: too many: {n}: must have at most {max} items"
                ));
            }
            if let Some(min) = schema.min_items.filter(|min| n < *min) {
                out.push(format!(
                    "{at}: too few: {n}: must have at least {min} items"
                ));
            }
            if let Some(JSONSchemaPropsOrArray::Schema(item)) = &schema.items {
                for (i, v) in items.iter().enumerate() {
                    walk(item, v, &format!("{path}[{i}]"), out);
                }
            }
        }
        Value::Object(fields) => object(schema, fields, path, out),
        Value::Bool(_) | Value::Null => {}
    }
}

fn object(
    schema: &JSONSchemaProps,
    fields: &serde_json::Map<String, Value>,
    path: &str,
    out: &mut Vec<String>,
) {
    let at = if path.is_empty() { "<root>" } else { path };
    if let Some(max) = schema
        .max_properties
        .filter(|max| fields.len() as i64 > *max)
    {
        out.push(format!(
            "{at}: too many: {}: must have at most {max} entries",
            fields.len()
        ));
    }
    for name in schema.required.iter().flatten() {
        if !fields.contains_key(name) {
            out.push(format!("{}: required value", join(path, name)));
        }
    }
    let preserve = schema.x_kubernetes_preserve_unknown_fields == Some(true);
    for (name, v) in fields {
        let field = join(path, name);
        // Every object has these; the API server checks them itself
        // (ObjectMeta against its own type), not against the CRD's schema.
        if path.is_empty() && matches!(name.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        match (&schema.properties, &schema.additional_properties) {
            (Some(props), _) if props.contains_key(name) => walk(&props[name], v, &field, out),
            (_, Some(JSONSchemaPropsOrBool::Schema(each))) => walk(each, v, &field, out),
            (_, Some(JSONSchemaPropsOrBool::Bool(true))) => {}
            // A schema that lists no properties says nothing about them.
            (None, None) => {}
            _ if preserve => {}
            _ => out.push(format!("{field}: unknown field")),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn region(spec: Value) -> Value {
        json!({
            "apiVersion": "natsregion.io/v1alpha1", "kind": "RegionMirror",
            "metadata": {"name": "east", "labels": {"any": "thing"}},
            "spec": spec,
        })
    }

    fn good_spec() -> Value {
        json!({
            "stream": {"name": "EVENTS", "subjects": ["events.>"], "maxAgeSeconds": 60},
            "zones": [
                {"name": "a", "role": "source", "scheduling": {"nodeSelector": {"disk": "ssd"}}},
                {"name": "b", "role": "mirror"},
            ],
        })
    }

    fn region_violations(spec: Value) -> Vec<String> {
        violations(&crd_schema::<RegionMirror>(), &region(spec))
    }

    #[test]
    fn a_good_region_has_none() {
        assert_eq!(region_violations(good_spec()), Vec::<String>::new());
    }

    #[test]
    fn unknown_fields_are_named_with_their_path() {
        let mut spec = good_spec();
        spec["stream"]["maxAgeSecond"] = json!(60);
        spec["zones"][1]["sever"] = json!(1);
        assert_eq!(
            region_violations(spec),
            [
                "spec.stream.maxAgeSecond: unknown field",
                "spec.zones[1].sever: unknown field"
            ]
        );
        let drill = json!({
            "apiVersion": "natsregion.io/v1alpha1", "kind": "PartitionDrill",
            "metadata": {"name": "d"},
            "spec": {"regionRef": {"name": "east"}, "fault": {"holdSecond": 30}},
        });
        assert_eq!(
            violations(&crd_schema::<PartitionDrill>(), &drill),
            ["spec.fault.holdSecond: unknown field"]
        );
    }

    #[test]
    fn counts_lengths_types_enums_and_required_fields() {
        let mut spec = good_spec();
        let zone = |i: usize| json!({"name": format!("z{i}"), "role": "mirror"});
        spec["zones"] = Value::Array((0..17).map(zone).collect());
        spec["image"] = json!("x".repeat(257));
        spec["stream"]["replicas"] = json!("3");
        spec["stream"]["storage"] = json!("Disk");
        spec["stream"].as_object_mut().unwrap().remove("name");
        spec["stream"]["maxBytes"] = json!(1.5);
        let v = region_violations(spec);
        for want in [
            "spec.zones: too many: 17: must have at most 16 items",
            "spec.image: too long: may not be more than 256 characters",
            "spec.stream.replicas: must be of type integer, not string",
            "spec.stream.storage: unsupported value \"Disk\": supported values: \"File\", \"Memory\"",
            "spec.stream.name: required value",
            "spec.stream.maxBytes: must be of type integer, not number",
        ] {
            assert!(v.iter().any(|e| e == want), "missing {want:?} in {v:#?}");
        }
        assert_eq!(v.len(), 6, "{v:#?}");
    }

    #[test]
    fn absent_optional_values_may_be_null_and_required_ones_not() {
        let mut spec = good_spec();
        spec["stream"]["maxAgeSeconds"] = Value::Null;
        assert_eq!(region_violations(spec.clone()), Vec::<String>::new());
        spec["zones"] = Value::Null;
        assert_eq!(region_violations(spec), ["spec.zones: must not be null"]);
    }

    #[test]
    fn maps_check_their_values() {
        let mut spec = good_spec();
        spec["zones"][0]["scheduling"]["nodeSelector"]["disk"] = json!(1);
        assert_eq!(
            region_violations(spec),
            ["spec.zones[0].scheduling.nodeSelector.disk: must be of type string, not integer"]
        );
    }

    /// Every string, list and map a user writes has a bound, which the API
    /// server needs to cost the CEL rules and this walker enforces.
    #[test]
    fn every_spec_string_list_and_map_is_bounded() {
        fn bounded(s: &JSONSchemaProps, path: &str, out: &mut Vec<String>) {
            match s.type_.as_deref() {
                Some("string") if s.max_length.is_none() && s.enum_.is_none() => {
                    out.push(format!("{path}: string without maxLength"))
                }
                Some("array") if s.max_items.is_none() => {
                    out.push(format!("{path}: list without maxItems"))
                }
                Some("object")
                    if s.additional_properties.is_some() && s.max_properties.is_none() =>
                {
                    out.push(format!("{path}: map without maxProperties"))
                }
                _ => {}
            }
            for (k, p) in s.properties.iter().flatten() {
                bounded(p, &format!("{path}.{k}"), out);
            }
            if let Some(JSONSchemaPropsOrArray::Schema(i)) = &s.items {
                bounded(i, &format!("{path}[]"), out);
            }
            if let Some(JSONSchemaPropsOrBool::Schema(v)) = &s.additional_properties {
                bounded(v, &format!("{path}{{}}"), out);
            }
        }
        let mut out = Vec::new();
        for (kind, schema) in [
            ("RegionMirror", crd_schema::<RegionMirror>()),
            ("PartitionDrill", crd_schema::<PartitionDrill>()),
        ] {
            let spec = &schema.properties.as_ref().unwrap()["spec"];
            bounded(spec, &format!("{kind} spec"), &mut out);
        }
        assert!(out.is_empty(), "{out:#?}");
    }
}
