//! Each in-cluster run's full report (JSON) and timeline (SVG), kept in a
//! ConfigMap owned by the drill (so it goes with the drill), at most
//! `historyLimit` of them. A ConfigMap holds at most 1 MiB: a report that
//! does not fit as text is gzipped, and one that does not fit even then loses
//! its timeline picture, then has its longest lists cut, with the ConfigMap
//! annotated and the JSON carrying a top-level `truncated` list saying what.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Resource, ResourceExt};

use crate::api::PartitionDrill;
use crate::meta::labels;

pub const JSON_KEY: &str = "report.json";
pub const SVG_KEY: &str = "timeline.svg";
/// Marks a drill's report ConfigMaps (the value is the drill's name).
pub const REPORT_LABEL: &str = "natsregion.io/report-of";
/// `gzip` when the keys are in `binaryData` as `<key>.gz`.
pub const ENCODING_ANNOTATION: &str = "natsregion.io/report-encoding";
/// Present when the report had to be cut to fit; says what was cut.
pub const TRUNCATED_ANNOTATION: &str = "natsregion.io/report-truncated";
/// The run's start (RFC 3339), for ordering and pruning.
pub const STARTED_ANNOTATION: &str = "natsregion.io/run-started";

/// What a ConfigMap may hold (1 MiB) less room for metadata.
pub const BUDGET: usize = 1024 * 1024 - 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ReportStoreError {
    #[error("report does not serialize: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("gzip: {0}")]
    Gzip(#[from] std::io::Error),
    #[error("{what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("ConfigMap {0} holds no {JSON_KEY}")]
    Missing(String),
}

/// The stored form of one report.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Encoded {
    pub data: BTreeMap<String, String>,
    pub binary_data: BTreeMap<String, Vec<u8>>,
    pub annotations: BTreeMap<String, String>,
}

impl Encoded {
    fn size(&self) -> usize {
        self.data
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
            + self
                .binary_data
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
    }
}

fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut e = GzEncoder::new(Vec::new(), Compression::best());
    e.write_all(bytes)?;
    e.finish()
}

fn gunzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    GzDecoder::new(bytes).read_to_end(&mut out)?;
    Ok(out)
}

fn gzipped(json: &[u8], svg: Option<&str>) -> std::io::Result<Encoded> {
    let mut e = Encoded::default();
    e.binary_data.insert(format!("{JSON_KEY}.gz"), gzip(json)?);
    if let Some(svg) = svg {
        e.binary_data
            .insert(format!("{SVG_KEY}.gz"), gzip(svg.as_bytes())?);
    }
    e.annotations
        .insert(ENCODING_ANNOTATION.into(), "gzip".into());
    Ok(e)
}

/// Cuts every array longer than `keep` to its first `keep` items, noting
/// each cut as `path: kept K of N`.
fn cut_arrays(v: &mut serde_json::Value, keep: usize, path: &str, notes: &mut Vec<String>) {
    match v {
        serde_json::Value::Array(items) => {
            if items.len() > keep {
                notes.push(format!("{path}: kept {keep} of {}", items.len()));
                items.truncate(keep);
            }
            for (i, item) in items.iter_mut().enumerate() {
                cut_arrays(item, keep, &format!("{path}[{i}]"), notes);
            }
        }
        serde_json::Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                cut_arrays(item, keep, &format!("{path}.{k}"), notes);
            }
        }
        _ => {}
    }
}

/// The report as it will be stored, within [`BUDGET`] (or `budget` in tests).
pub fn encode(
    report: &serde_json::Value,
    svg: &str,
    budget: usize,
) -> Result<Encoded, ReportStoreError> {
    let json = serde_json::to_vec(report)?;
    if json.len() + svg.len() + JSON_KEY.len() + SVG_KEY.len() <= budget {
        let mut e = Encoded::default();
        e.data.insert(
            JSON_KEY.into(),
            String::from_utf8(json).expect("serde_json writes UTF-8"),
        );
        e.data.insert(SVG_KEY.into(), svg.to_string());
        return Ok(e);
    }
    let e = gzipped(&json, Some(svg))?;
    if e.size() <= budget {
        return Ok(e);
    }
    let e = gzipped(&json, None)?;
    if e.size() <= budget {
        return Ok(with_note(
            e,
            format!("{SVG_KEY} dropped ({} bytes)", svg.len()),
        ));
    }
    // Halve the longest lists until it fits; the figures and verdicts (all
    // scalars) survive any cut.
    let mut keep = 10_000usize;
    loop {
        let mut cut = report.clone();
        let mut notes = vec![format!("{SVG_KEY} dropped ({} bytes)", svg.len())];
        cut_arrays(&mut cut, keep, "$", &mut notes);
        if let serde_json::Value::Object(map) = &mut cut {
            map.insert("truncated".into(), serde_json::json!(notes));
        }
        let e = gzipped(&serde_json::to_vec(&cut)?, None)?;
        if e.size() <= budget || keep == 0 {
            let summary = format!("{} cut(s); see `truncated` in {JSON_KEY}", notes.len());
            return Ok(with_note(e, summary));
        }
        keep /= 2;
    }
}

fn with_note(mut e: Encoded, note: String) -> Encoded {
    e.annotations.insert(TRUNCATED_ANNOTATION.into(), note);
    e
}

impl crate::drill::retry::Transient for ReportStoreError {
    fn is_transient(&self) -> bool {
        matches!(self, ReportStoreError::Kube { source, .. } if source.is_transient())
    }
}

/// A report read back.
#[derive(Clone, Debug)]
pub struct Stored {
    pub name: String,
    pub json: Vec<u8>,
    pub svg: Option<String>,
    pub truncated: Option<String>,
}

/// Decodes a report ConfigMap written by [`store`].
pub fn decode(cm: &ConfigMap) -> Result<Stored, ReportStoreError> {
    let name = cm.name_any();
    let gz = cm
        .annotations()
        .get(ENCODING_ANNOTATION)
        .is_some_and(|e| e == "gzip");
    let (json, svg) = if gz {
        let bin = cm.binary_data.clone().unwrap_or_default();
        let json = bin
            .get(&format!("{JSON_KEY}.gz"))
            .ok_or_else(|| ReportStoreError::Missing(name.clone()))?;
        let svg = match bin.get(&format!("{SVG_KEY}.gz")) {
            Some(s) => Some(String::from_utf8_lossy(&gunzip(&s.0)?).into_owned()),
            None => None,
        };
        (gunzip(&json.0)?, svg)
    } else {
        let data = cm.data.clone().unwrap_or_default();
        let json = data
            .get(JSON_KEY)
            .ok_or_else(|| ReportStoreError::Missing(name.clone()))?;
        (json.clone().into_bytes(), data.get(SVG_KEY).cloned())
    };
    Ok(Stored {
        name,
        json,
        svg,
        truncated: cm.annotations().get(TRUNCATED_ANNOTATION).cloned(),
    })
}

/// The ConfigMap name for the run of `drill` that started at `started`:
/// stable, so status can name it before it is written.
pub fn name(drill: &str, started: jiff::Timestamp) -> String {
    let suffix = format!("-report-{}", started.as_second());
    let keep = 253 - suffix.len();
    let base: String = drill.chars().take(keep).collect();
    format!("{}{suffix}", base.trim_end_matches(['-', '.']))
}

/// Writes one run's report and removes the oldest beyond the drill's
/// `historyLimit`.
pub async fn store(
    client: &kube::Client,
    drill: &PartitionDrill,
    cm_name: &str,
    started: jiff::Timestamp,
    report: &serde_json::Value,
    svg: &str,
) -> Result<(), ReportStoreError> {
    let ns = drill.namespace().unwrap_or_default();
    let drill_name = drill.name_any();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let encoded = encode(report, svg, BUDGET)?;
    let mut annotations = encoded.annotations;
    annotations.insert(STARTED_ANNOTATION.into(), started.to_string());
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(cm_name.to_string()),
            namespace: Some(ns.clone()),
            labels: Some(BTreeMap::from([
                (REPORT_LABEL.to_string(), label_value(&drill_name)),
                (
                    labels::MANAGED_BY.to_string(),
                    labels::MANAGED_BY_VALUE.to_string(),
                ),
            ])),
            annotations: Some(annotations),
            owner_references: drill.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        data: (!encoded.data.is_empty()).then_some(encoded.data),
        binary_data: (!encoded.binary_data.is_empty()).then(|| {
            encoded
                .binary_data
                .into_iter()
                .map(|(k, v)| (k, ByteString(v)))
                .collect()
        }),
        ..Default::default()
    };
    match api.create(&PostParams::default(), &cm).await {
        Ok(_) => {}
        // The same run stored twice (a retried final write): keep the first.
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(source) => {
            return Err(ReportStoreError::Kube {
                what: format!("create ConfigMap {cm_name}"),
                source,
            });
        }
    }
    prune(&api, drill).await
}

/// Label values are at most 63 characters; longer drill names are cut
/// (the ConfigMap's owner reference is what ties it to the drill).
fn label_value(name: &str) -> String {
    let v: String = name.chars().take(63).collect();
    v.trim_end_matches(['-', '.', '_']).to_string()
}

/// The final status stored with the run of `drill` that started at
/// `started`, when its report was stored: the run's outcome, even where the
/// status write that should have followed it never landed. `None` when
/// there is no such report or it cannot be read.
pub async fn final_status(
    client: &kube::Client,
    namespace: &str,
    drill: &str,
    started: jiff::Timestamp,
) -> Option<crate::api::PartitionDrillStatus> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let cm = api.get_opt(&name(drill, started)).await.ok()??;
    let stored = decode(&cm).ok()?;
    let report: serde_json::Value = serde_json::from_slice(&stored.json).ok()?;
    let status: crate::api::PartitionDrillStatus =
        serde_json::from_value(report.get("status")?.clone()).ok()?;
    status.phase.is_finished().then_some(status)
}

/// Every report ConfigMap of `drill`, oldest first.
pub async fn list(
    client: &kube::Client,
    namespace: &str,
    drill: &str,
) -> Result<Vec<ConfigMap>, ReportStoreError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    list_in(&api, drill).await
}

async fn list_in(api: &Api<ConfigMap>, drill: &str) -> Result<Vec<ConfigMap>, ReportStoreError> {
    let selector = format!("{REPORT_LABEL}={}", label_value(drill));
    let mut items = api
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|source| ReportStoreError::Kube {
            what: format!("list report ConfigMaps of drill {drill}"),
            source,
        })?
        .items;
    let started = |cm: &ConfigMap| {
        cm.annotations()
            .get(STARTED_ANNOTATION)
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
    };
    items.sort_by_key(|cm| (started(cm), cm.name_any()));
    Ok(items)
}

async fn prune(api: &Api<ConfigMap>, drill: &PartitionDrill) -> Result<(), ReportStoreError> {
    let uid = drill.uid();
    let items: Vec<ConfigMap> = list_in(api, &drill.name_any())
        .await?
        .into_iter()
        // Only this drill's (a cut label may match another long name).
        .filter(|cm| {
            cm.owner_references()
                .iter()
                .any(|o| Some(&o.uid) == uid.as_ref())
        })
        .collect();
    let limit = drill.spec.history_limit.max(1) as usize;
    for cm in items.iter().take(items.len().saturating_sub(limit)) {
        match api.delete(&cm.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(source) => {
                return Err(ReportStoreError::Kube {
                    what: format!("delete old report {}", cm.name_any()),
                    source,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(e: Encoded) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some("r".into()),
                annotations: Some(e.annotations),
                ..Default::default()
            },
            data: Some(e.data),
            binary_data: Some(
                e.binary_data
                    .into_iter()
                    .map(|(k, v)| (k, ByteString(v)))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn small_reports_are_text_and_large_ones_gzip() {
        let report = serde_json::json!({"drill": "d", "ids": (0..100).collect::<Vec<_>>()});
        let e = encode(&report, "<svg/>", BUDGET).unwrap();
        assert!(e.binary_data.is_empty());
        let back = decode(&cm(e)).unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&back.json).unwrap(),
            report
        );
        assert_eq!(back.svg.as_deref(), Some("<svg/>"));

        // Compressible, over the budget as text: gzipped, nothing cut.
        let report = serde_json::json!({"ids": vec!["same id"; 20_000]});
        let e = encode(&report, &"<g/>".repeat(10_000), 100_000).unwrap();
        assert_eq!(e.annotations[ENCODING_ANNOTATION], "gzip");
        assert!(!e.annotations.contains_key(TRUNCATED_ANNOTATION));
        let back = decode(&cm(e)).unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&back.json).unwrap(),
            report
        );
        assert!(back.svg.unwrap().starts_with("<g/>"));
    }

    #[test]
    fn reports_too_large_even_gzipped_are_cut_with_a_marker() {
        // Incompressible ids: too large for 20 kB whatever the encoding.
        let ids: Vec<String> = (0..50_000u64)
            .map(|i| format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&i.to_le_bytes())))
            .collect();
        let report = serde_json::json!({"verdict": "Failed", "evidence": {"lost": ids}});
        let e = encode(&report, "<svg/>", 20_000).unwrap();
        assert!(e.size() <= 20_000, "{}", e.size());
        assert!(e.annotations[TRUNCATED_ANNOTATION].contains("truncated"));
        let back = decode(&cm(e)).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&back.json).unwrap();
        assert_eq!(v["verdict"], "Failed", "scalars survive");
        let notes = v["truncated"].as_array().unwrap();
        assert!(
            notes
                .iter()
                .any(|n| n.as_str().unwrap().starts_with("$.evidence.lost: kept"))
        );
        assert!(back.svg.is_none());
    }

    #[test]
    fn names_fit_and_follow_the_run() {
        let t = jiff::Timestamp::from_second(1_700_000_000).unwrap();
        assert_eq!(name("qa-drill", t), "qa-drill-report-1700000000");
        assert!(name(&"d".repeat(300), t).len() <= 253);
    }
}
