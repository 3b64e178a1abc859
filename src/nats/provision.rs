//! Idempotent provisioning of the source stream and of the mirrors.
//!
//! Each call compares what the zone has with what is wanted and reports what
//! it did. Settings the server cannot change in place (a mirror's settings,
//! the storage type, retention to or from WorkQueue) are never forced: the
//! call answers `Outcome::NeedsRecreate` and leaves the stream alone, because
//! recreating loses data (a source) or re-syncs everything (a mirror). Only
//! `recreate_mirror`, called on purpose, deletes anything.

use std::time::Duration;

use async_nats::jetstream::stream::{Config, External, RetentionPolicy};
use async_nats::jetstream::{self, Context};
use serde_json::{Map, Value};

use super::api::{self, Answer, ApiError, NoAnswer, StreamInfo, code};
use crate::api::validate::msg;

/// What a provisioning call did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Created,
    /// Editable settings were changed in place; `fields` names them.
    Updated {
        fields: Vec<String>,
    },
    Unchanged,
    /// The stream differs in a way the server cannot edit in place. Nothing was
    /// touched; `reason` says what differs and what recreating costs.
    NeedsRecreate {
        reason: String,
    },
    /// `recreate_mirror` deleted the mirror and created it anew.
    Recreated,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ProvisionError {
    #[error(
        "{field} {name:?} would be rejected by the server: {}",
        msg::STREAM_NAME
    )]
    InvalidStreamName { field: &'static str, name: String },
    #[error(
        "stream {stream}: the configuration has no mirror section; ensure_mirror needs mirror.name and mirror.external.api"
    )]
    NotAMirror { stream: String },
    #[error("stream {stream}: mirror.external.api {api:?} {reason}")]
    InvalidMirrorApi {
        stream: String,
        api: String,
        reason: String,
    },
    #[error(
        "stream {stream}: {replicas} replicas but the zone has {servers} servers: {}",
        msg::REPLICAS_FIT
    )]
    ReplicasExceedServers {
        stream: String,
        replicas: usize,
        servers: usize,
    },
    #[error(
        "stream {stream}: the zone cannot place {replicas} replicas ({reason}): lower stream.replicas or raise zones[].servers"
    )]
    ReplicasUnplaceable {
        stream: String,
        replicas: usize,
        reason: String,
    },
    #[error(
        "source stream {stream} does not exist in the source zone (asked through {api}): create it first, or set stream.name to the source's stream"
    )]
    SourceStreamMissing { stream: String, api: String },
    #[error(
        "source stream {stream} has {retention} retention: {}",
        msg::LIMITS_RETENTION
    )]
    SourceNotLimits { stream: String, retention: String },
    #[error(
        "source stream {stream} could not be reached through {api} ({reason}): mirror.external.api must be $JS.<source zone's domain>.API (check zones[].domain) and the mirror zone's leafnode link to the source zone must be up"
    )]
    SourceUnreachable {
        stream: String,
        api: String,
        reason: String,
    },
    #[error(
        "stream {stream}: stream.subjects {subjects:?} overlap another stream in the zone ({reason}); change stream.subjects or remove the other stream"
    )]
    SubjectsOverlap {
        stream: String,
        subjects: Vec<String>,
        reason: String,
    },
    #[error("stream {stream}: the server refused to {op} it: {reason}")]
    Rejected {
        op: &'static str,
        stream: String,
        reason: String,
    },
    #[error("stream {stream}: JetStream did not answer the {op} request ({reason})")]
    NoAnswer {
        op: &'static str,
        stream: String,
        reason: String,
    },
}

/// Checks a stream name the way the server does (docs/architecture.md fact 5), so the
/// refusal names the field instead of surfacing a server error.
pub fn check_stream_name(field: &'static str, name: &str) -> Result<(), ProvisionError> {
    let bad = name.is_empty()
        || name.len() > 255
        || name
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '.' | '*' | '>' | '/' | '\\'));
    if bad {
        Err(ProvisionError::InvalidStreamName {
            field,
            name: name.to_string(),
        })
    } else {
        Ok(())
    }
}

/// Creates the source stream, or updates its editable settings, or leaves it.
/// One of a zone's streams (`plan::zone_streams`), created or edited as its
/// kind allows: a mirror cannot be edited in place, the others can.
pub async fn ensure_zone_stream(
    js: &Context,
    stream: &crate::plan::ZoneStream,
    servers: usize,
) -> Result<Outcome, ProvisionError> {
    use crate::plan::StreamKind;
    match stream.kind {
        StreamKind::Mirror => ensure_mirror(js, &stream.config, servers).await,
        StreamKind::Source | StreamKind::Local | StreamKind::Aggregate => {
            ensure_source_stream(js, &stream.config, servers).await
        }
    }
}

/// `zone_servers` is the zone's server count (0 when unknown: not checked).
pub async fn ensure_source_stream(
    js: &Context,
    config: &Config,
    zone_servers: usize,
) -> Result<Outcome, ProvisionError> {
    check_stream_name("stream.name", &config.name)?;
    check_replicas(config, zone_servers)?;
    let wanted = wire_config(config)?;
    match lookup(js, &wanted.name).await? {
        None => create(js, &wanted).await,
        Some(current) => reconcile(js, &wanted, &current).await,
    }
}

/// Creates the mirror stream in a mirror zone, or updates its editable
/// settings, or reports that its mirror settings changed (`NeedsRecreate`).
/// Before creating, asks the source zone through the mirror's own API prefix
/// whether the source stream exists and keeps Limits retention; this also
/// proves that prefix and the leafnode link reach the source.
pub async fn ensure_mirror(
    js: &Context,
    config: &Config,
    zone_servers: usize,
) -> Result<Outcome, ProvisionError> {
    let wanted = checked_mirror(config, zone_servers)?;
    match lookup(js, &wanted.name).await? {
        None => {
            check_source(js, &wanted).await?;
            create(js, &wanted).await
        }
        Some(current) => reconcile(js, &wanted, &current).await,
    }
}

/// Deletes the mirror (if present) and creates it with `config`: every message
/// is copied again from the source. The source is checked first, so a mirror
/// is never deleted when it could not be created again.
pub async fn recreate_mirror(
    js: &Context,
    config: &Config,
    zone_servers: usize,
) -> Result<Outcome, ProvisionError> {
    let wanted = checked_mirror(config, zone_servers)?;
    check_source(js, &wanted).await?;
    match api::call::<Value>(
        js,
        format!("STREAM.DELETE.{}", wanted.name),
        &serde_json::json!({}),
    )
    .await
    {
        Ok(Answer::Ok(_)) => {}
        Ok(Answer::Err(e)) if e.err_code == code::STREAM_NOT_FOUND => {}
        Ok(Answer::Err(e)) => return Err(rejected("delete", &wanted.name, e)),
        Err(e) => return Err(no_answer("delete", &wanted.name, e)),
    }
    create(js, &wanted).await.map(|outcome| match outcome {
        Outcome::Created => Outcome::Recreated,
        other => other,
    })
}

fn checked_mirror(config: &Config, zone_servers: usize) -> Result<Config, ProvisionError> {
    check_stream_name("stream.name", &config.name)?;
    let Some(mirror) = &config.mirror else {
        return Err(ProvisionError::NotAMirror {
            stream: config.name.clone(),
        });
    };
    check_stream_name("mirror.name", &mirror.name)?;
    check_replicas(config, zone_servers)?;
    let wanted = wire_config(config)?;
    if let Some(external) = wanted.mirror.as_ref().and_then(|m| m.external.as_ref()) {
        let api = &external.api_prefix;
        // The seed documents put a URL here; such a mirror never syncs.
        let reason = if api.contains("://") {
            Some("is a URL, but it must be a subject prefix: $JS.<source zone's domain>.API")
        } else if api.is_empty()
            || api
                .chars()
                .any(|c| c.is_whitespace() || c == '*' || c == '>')
            || api.ends_with('.')
        {
            Some("is not a valid subject prefix; use $JS.<source zone's domain>.API")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(ProvisionError::InvalidMirrorApi {
                stream: wanted.name,
                api: api.clone(),
                reason: reason.to_string(),
            });
        }
    }
    Ok(wanted)
}

fn check_replicas(config: &Config, zone_servers: usize) -> Result<(), ProvisionError> {
    let replicas = config.num_replicas.max(1);
    if zone_servers > 0 && replicas > zone_servers {
        return Err(ProvisionError::ReplicasExceedServers {
            stream: config.name.clone(),
            replicas,
            servers: zone_servers,
        });
    }
    Ok(())
}

/// The config as the server stores it: a mirror's `domain` becomes the
/// `external.api` prefix it stands for (what clients do before sending).
fn wire_config(config: &Config) -> Result<Config, ProvisionError> {
    let mut wire = config.clone();
    let sources = wire
        .mirror
        .iter_mut()
        .chain(wire.sources.iter_mut().flatten());
    for source in sources {
        if let Some(domain) = source.domain.take() {
            if let Some(external) = &source.external {
                return Err(ProvisionError::InvalidMirrorApi {
                    stream: config.name.clone(),
                    api: external.api_prefix.clone(),
                    reason: format!("is set together with domain {domain:?}; set only one of them"),
                });
            }
            source.external = Some(External {
                api_prefix: format!("$JS.{domain}.API"),
                delivery_prefix: None,
            });
        }
    }
    Ok(wire)
}

async fn lookup(js: &Context, stream: &str) -> Result<Option<StreamInfo>, ProvisionError> {
    match api::stream_info(js, stream).await {
        Ok(Ok(info)) => Ok(info),
        Ok(Err(e)) => Err(rejected("look up", stream, e)),
        Err(e) => Err(no_answer("look up", stream, e)),
    }
}

async fn check_source(js: &Context, wanted: &Config) -> Result<(), ProvisionError> {
    let Some(mirror) = &wanted.mirror else {
        return Ok(());
    };
    let prefix = mirror
        .external
        .as_ref()
        .map_or("$JS.API", |e| e.api_prefix.as_str());
    let source_js = jetstream::ContextBuilder::new()
        .api_prefix(prefix)
        .timeout(Duration::from_secs(5))
        .build(js.client());
    let unreachable = |reason: String| ProvisionError::SourceUnreachable {
        stream: mirror.name.clone(),
        api: prefix.to_string(),
        reason,
    };
    match api::stream_info(&source_js, &mirror.name).await {
        Err(e) => Err(unreachable(e.to_string())),
        Ok(Err(e)) => Err(unreachable(e.to_string())),
        Ok(Ok(None)) => Err(ProvisionError::SourceStreamMissing {
            stream: mirror.name.clone(),
            api: prefix.to_string(),
        }),
        Ok(Ok(Some(source))) => match source.info.config.retention {
            RetentionPolicy::Limits => Ok(()),
            other => Err(ProvisionError::SourceNotLimits {
                stream: mirror.name.clone(),
                retention: format!("{other:?}"),
            }),
        },
    }
}

async fn create(js: &Context, wanted: &Config) -> Result<Outcome, ProvisionError> {
    match api::call::<Value>(js, format!("STREAM.CREATE.{}", wanted.name), wanted).await {
        Ok(Answer::Ok(_)) => Ok(Outcome::Created),
        // Someone created it between our look-up and create: compare with theirs.
        Ok(Answer::Err(e)) if e.err_code == code::STREAM_NAME_EXISTS => {
            match lookup(js, &wanted.name).await? {
                Some(current) => Box::pin(reconcile(js, wanted, &current)).await,
                None => Err(rejected("create", &wanted.name, e)),
            }
        }
        Ok(Answer::Err(e)) => Err(refused("create", wanted, e)),
        Err(e) => Err(no_answer("create", &wanted.name, e)),
    }
}

async fn reconcile(
    js: &Context,
    wanted: &Config,
    current: &StreamInfo,
) -> Result<Outcome, ProvisionError> {
    let current_cfg = current.raw.get("config").cloned().unwrap_or(Value::Null);
    let wanted_map = normalize(&to_value(wanted));
    let current_map = normalize(&current_cfg);
    let diffs = differences(&wanted_map, &current_map);
    if diffs.is_empty() {
        return Ok(Outcome::Unchanged);
    }
    if let Some(reason) = frozen(&wanted.name, &diffs, &wanted_map, &current_map) {
        return Ok(Outcome::NeedsRecreate { reason });
    }
    match api::call::<Value>(js, format!("STREAM.UPDATE.{}", wanted.name), wanted).await {
        Ok(Answer::Ok(updated)) => {
            // The server fills in defaults we may not know about; if it stored
            // exactly what it had, nothing changed whatever the diff said.
            let after = normalize(updated.get("config").unwrap_or(&Value::Null));
            if after == current_map {
                tracing::debug!(stream = %wanted.name, ?diffs, "update was a no-op: differences came from server defaults");
                Ok(Outcome::Unchanged)
            } else {
                Ok(Outcome::Updated {
                    fields: diffs.into_iter().map(|d| d.key).collect(),
                })
            }
        }
        Ok(Answer::Err(e)) if not_editable(&e) => Ok(Outcome::NeedsRecreate {
            reason: format!(
                "the server cannot change {} in place: {}; {}",
                wanted.name,
                e.description,
                recreate_cost(wanted.mirror.is_some())
            ),
        }),
        Ok(Answer::Err(e)) => Err(refused("update", wanted, e)),
        Err(e) => Err(no_answer("update", &wanted.name, e)),
    }
}

fn not_editable(e: &ApiError) -> bool {
    e.err_code == code::STREAM_MIRROR_NOT_UPDATABLE
        || (e.err_code == code::STREAM_INVALID_CONFIG
            && e.description.to_lowercase().contains("can not"))
}

fn recreate_cost(mirror: bool) -> &'static str {
    if mirror {
        "delete and recreate the mirror (recreate_mirror); it then copies every message from the source again"
    } else {
        "recreating the stream deletes every message in it, so do it by hand if that is intended"
    }
}

fn refused(op: &'static str, wanted: &Config, e: ApiError) -> ProvisionError {
    match e.err_code {
        code::CLUSTER_NO_PEERS | code::STREAM_REPLICAS_NOT_SUPPORTED => {
            ProvisionError::ReplicasUnplaceable {
                stream: wanted.name.clone(),
                replicas: wanted.num_replicas.max(1),
                reason: e.description,
            }
        }
        code::STREAM_SUBJECT_OVERLAP => ProvisionError::SubjectsOverlap {
            stream: wanted.name.clone(),
            subjects: wanted.subjects.clone(),
            reason: e.description,
        },
        _ => rejected(op, &wanted.name, e),
    }
}

fn rejected(op: &'static str, stream: &str, e: ApiError) -> ProvisionError {
    ProvisionError::Rejected {
        op,
        stream: stream.to_string(),
        reason: e.to_string(),
    }
}

fn no_answer(op: &'static str, stream: &str, e: NoAnswer) -> ProvisionError {
    ProvisionError::NoAnswer {
        op,
        stream: stream.to_string(),
        reason: e.to_string(),
    }
}

fn to_value(config: &Config) -> Value {
    serde_json::to_value(config).unwrap_or(Value::Null)
}

// ------------------------------------------------------------- comparison

/// Limits where the server stores -1 for "unlimited" and clients send 0.
const UNLIMITED_AS_MINUS_ONE: [&str; 5] = [
    "max_msgs",
    "max_bytes",
    "max_msgs_per_subject",
    "max_msg_size",
    "max_consumers",
];

/// Settings the server fills in when the request leaves them out; a config
/// that does not mention them accepts the server's choice.
const SERVER_DEFAULTED: [&str; 4] = [
    "duplicate_window",
    "subjects",
    "metadata",
    "consumer_limits",
];

/// A config reduced to what it means: server-owned metadata, explicit
/// defaults and empty values are dropped, so two configs the server treats
/// alike compare equal.
fn normalize(config: &Value) -> Map<String, Value> {
    let mut map = config.as_object().cloned().unwrap_or_default();
    if let Some(Value::Object(metadata)) = map.get_mut("metadata") {
        metadata.retain(|k, _| !k.starts_with("_nats."));
    }
    for key in UNLIMITED_AS_MINUS_ONE {
        if map.get(key).and_then(Value::as_i64) == Some(-1) {
            map.remove(key);
        }
    }
    let defaults = [
        ("num_replicas", Value::from(1)),
        ("compression", Value::from("none")),
        ("persist_mode", Value::from("default")),
    ];
    for (key, default) in defaults {
        if map.get(key) == Some(&default) {
            map.remove(key);
        }
    }
    prune_empty(&mut map);
    map
}

fn prune_empty(map: &mut Map<String, Value>) {
    for value in map.values_mut() {
        prune_value(value);
    }
    map.retain(|_, v| !is_empty(v));
}

fn prune_value(value: &mut Value) {
    match value {
        Value::Object(inner) => prune_empty(inner),
        Value::Array(items) => items.iter_mut().for_each(prune_value),
        _ => {}
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

#[derive(Clone, Debug, PartialEq)]
struct Diff {
    key: String,
    wanted: Option<Value>,
    current: Option<Value>,
}

fn differences(wanted: &Map<String, Value>, current: &Map<String, Value>) -> Vec<Diff> {
    let mut keys: Vec<&String> = wanted.keys().chain(current.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|key| wanted.get(*key) != current.get(*key))
        .filter(|key| wanted.contains_key(*key) || !SERVER_DEFAULTED.contains(&key.as_str()))
        .map(|key| Diff {
            key: key.clone(),
            wanted: wanted.get(key).cloned(),
            current: current.get(key).cloned(),
        })
        .collect()
}

/// Why the differences cannot be applied in place, if they cannot.
fn frozen(
    stream: &str,
    diffs: &[Diff],
    wanted: &Map<String, Value>,
    current: &Map<String, Value>,
) -> Option<String> {
    let cost = recreate_cost(wanted.contains_key("mirror"));
    for diff in diffs {
        match diff.key.as_str() {
            "mirror" => {
                let detail = match (&diff.current, &diff.wanted) {
                    (None, Some(_)) => {
                        format!("stream {stream} exists in this zone but is not a mirror")
                    }
                    (Some(_), None) => format!(
                        "stream {stream} is a mirror in this zone, but a plain stream is wanted"
                    ),
                    _ => {
                        let changes =
                            leaf_changes("mirror", current.get("mirror"), wanted.get("mirror"));
                        format!(
                            "mirror settings of {stream} differ ({})",
                            changes.join("; ")
                        )
                    }
                };
                return Some(format!(
                    "{detail}; a mirror's settings cannot be edited in place: {cost}"
                ));
            }
            "storage" => {
                return Some(format!(
                    "stream.storage of {stream} is {} on the server but {} is wanted; the storage type cannot be changed in place: {cost}",
                    show(diff.current.as_ref()),
                    show(diff.wanted.as_ref())
                ));
            }
            "retention" => {
                let involves_work_queue = [&diff.current, &diff.wanted]
                    .iter()
                    .any(|v| v.as_ref().and_then(Value::as_str) == Some("workqueue"));
                if involves_work_queue {
                    return Some(format!(
                        "stream.retention of {stream} is {} on the server but {} is wanted; retention cannot change to or from WorkQueue in place: {cost}",
                        show(diff.current.as_ref()),
                        show(diff.wanted.as_ref())
                    ));
                }
            }
            _ => {}
        }
    }
    None
}

/// `path: current on the server, wanted` for every leaf that differs.
fn leaf_changes(path: &str, current: Option<&Value>, wanted: Option<&Value>) -> Vec<String> {
    match (current, wanted) {
        (Some(Value::Object(c)), Some(Value::Object(w))) => {
            let mut keys: Vec<&String> = c.keys().chain(w.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter()
                .flat_map(|k| leaf_changes(&format!("{path}.{k}"), c.get(k), w.get(k)))
                .collect()
        }
        (c, w) if c == w => Vec::new(),
        (c, w) => vec![format!(
            "{path}: {} on the server, {} wanted",
            show(c),
            show(w)
        )],
    }
}

fn show(value: Option<&Value>) -> String {
    value.map_or_else(|| "unset".to_string(), Value::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_nats::jetstream::stream::Source;
    use serde_json::json;

    #[test]
    fn stream_names_the_server_rejects_are_refused_with_the_field() {
        for bad in ["EVENTS.REGION", "A B", "X*", "Y>", "", "a/b"] {
            let err = check_stream_name("stream.name", bad).unwrap_err();
            assert!(err.to_string().starts_with("stream.name"), "{err}");
            assert!(err.to_string().contains("EVENTS_REGION"), "{err}");
        }
        check_stream_name("stream.name", "EVENTS_REGION").unwrap();
    }

    #[test]
    fn server_defaults_compare_equal_to_unset_fields() {
        let wanted = Config {
            name: "S".into(),
            subjects: vec!["s.>".into()],
            num_replicas: 1,
            ..Default::default()
        };
        let current = json!({
            "name": "S", "subjects": ["s.>"], "retention": "limits", "storage": "file", "discard": "old",
            "max_msgs": -1, "max_bytes": -1, "max_msgs_per_subject": -1, "max_msg_size": -1, "max_consumers": -1,
            "max_age": 0, "num_replicas": 1, "duplicate_window": 120_000_000_000u64, "compression": "none",
            "sealed": false, "deny_delete": false, "allow_direct": false, "consumer_limits": {},
            "metadata": {"_nats.req.level": "0", "_nats.ver": "2.14.9"}
        });
        assert!(differences(&normalize(&to_value(&wanted)), &normalize(&current)).is_empty());
    }

    #[test]
    fn a_changed_limit_is_an_editable_difference() {
        let wanted = Config {
            name: "S".into(),
            max_age: Duration::from_secs(60),
            ..Default::default()
        };
        let current = json!({"name": "S", "retention": "limits", "storage": "file", "discard": "old", "max_age": 0});
        let diffs = differences(&normalize(&to_value(&wanted)), &normalize(&current));
        assert_eq!(
            diffs.iter().map(|d| d.key.as_str()).collect::<Vec<_>>(),
            ["max_age"]
        );
        assert_eq!(
            frozen(
                "S",
                &diffs,
                &normalize(&to_value(&wanted)),
                &normalize(&current)
            ),
            None
        );
    }

    #[test]
    fn a_changed_mirror_prefix_needs_a_recreate_and_names_the_field() {
        let mirror = |api: &str| Source {
            name: "ORDERS".into(),
            external: Some(External {
                api_prefix: api.into(),
                delivery_prefix: None,
            }),
            ..Default::default()
        };
        let wanted = Config {
            name: "ORDERS".into(),
            mirror: Some(mirror("$JS.b.API")),
            ..Default::default()
        };
        let current = Config {
            name: "ORDERS".into(),
            mirror: Some(mirror("$JS.a.API")),
            ..Default::default()
        };
        let (w, c) = (
            normalize(&to_value(&wanted)),
            normalize(&to_value(&current)),
        );
        let reason = frozen("ORDERS", &differences(&w, &c), &w, &c).unwrap();
        assert!(
            reason
                .contains(r#"mirror.external.api: "$JS.a.API" on the server, "$JS.b.API" wanted"#),
            "{reason}"
        );
        assert!(reason.contains("recreate_mirror"), "{reason}");
    }

    #[test]
    fn a_mirror_domain_is_sent_as_its_api_prefix() {
        let config = Config {
            name: "ORDERS".into(),
            mirror: Some(Source {
                name: "ORDERS".into(),
                domain: Some("src".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let wire = wire_config(&config).unwrap();
        let mirror = wire.mirror.unwrap();
        assert_eq!(mirror.domain, None);
        assert_eq!(mirror.external.unwrap().api_prefix, "$JS.src.API");
    }

    #[test]
    fn a_url_as_mirror_api_is_refused() {
        let config = Config {
            name: "ORDERS".into(),
            mirror: Some(Source {
                name: "ORDERS".into(),
                external: Some(External {
                    api_prefix: "nats://a:4222".into(),
                    delivery_prefix: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let err = checked_mirror(&config, 3).unwrap_err();
        assert!(
            matches!(err, ProvisionError::InvalidMirrorApi { .. }),
            "{err}"
        );
    }
}
