//! A drill file: a multi-document YAML with one RegionMirror and one
//! PartitionDrill, exactly what a user would `kubectl apply`. A local drill
//! needs both; a drill run in a cluster may leave the region out when it
//! already exists there (the CI case: `natsregion drill examples/drill.yaml`).

use std::path::Path;

use serde::Deserialize;

use crate::api::{PartitionDrill, RegionMirror, schema_check, validate};

#[derive(Debug, thiserror::Error)]
pub enum DrillFileError {
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    #[error("{path}: document {index} is not valid YAML for a natsregion resource: {message}")]
    Parse {
        path: String,
        index: usize,
        message: String,
    },
    #[error(
        "{path}: document {index} has kind {kind:?}; expected RegionMirror or PartitionDrill (apiVersion natsregion.io/v1alpha1)"
    )]
    UnknownKind {
        path: String,
        index: usize,
        kind: String,
    },
    #[error(
        "{path}: needs exactly one RegionMirror and one PartitionDrill, found {regions} and {drills}"
    )]
    Count {
        path: String,
        regions: usize,
        drills: usize,
    },
    #[error(
        "{path}: needs one PartitionDrill and at most one RegionMirror (leave the region out when it exists in the cluster), found {regions} and {drills}"
    )]
    ClusterCount {
        path: String,
        regions: usize,
        drills: usize,
    },
    #[error(transparent)]
    Invalid(#[from] validate::SpecError),
    /// The drill would write more than the region holds (`plan::capacity`).
    #[error("{path}: PartitionDrill {drill}: {message}")]
    TooLarge {
        path: String,
        drill: String,
        message: String,
    },
}

/// The drill-vs-region checks: the CRDs' rules, then whether the region can
/// take what the drill writes.
fn check_together(
    path: &str,
    drill: &PartitionDrill,
    region: &RegionMirror,
) -> Result<(), DrillFileError> {
    validate::drill(drill, region)?;
    crate::plan::capacity::check(drill, region).map_err(|message| DrillFileError::TooLarge {
        path: path.into(),
        drill: drill.metadata.name.clone().unwrap_or_default(),
        message,
    })
}

#[derive(Deserialize)]
struct TypeMeta {
    #[serde(default)]
    kind: String,
    #[serde(default, rename = "apiVersion")]
    api_version: String,
}

/// Parses and validates a drill file with the CRDs' own rules.
pub fn load(path: &Path) -> Result<(RegionMirror, PartitionDrill), DrillFileError> {
    let (p, text) = read(path)?;
    parse(&p, &text)
}

fn read(path: &Path) -> Result<(String, String), DrillFileError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| DrillFileError::Read {
        path: p.clone(),
        message: e.to_string(),
    })?;
    Ok((p, text))
}

pub fn parse(path: &str, text: &str) -> Result<(RegionMirror, PartitionDrill), DrillFileError> {
    let (mut regions, mut drills) = documents(path, text)?;
    if regions.len() != 1 || drills.len() != 1 {
        return Err(DrillFileError::Count {
            path: path.into(),
            regions: regions.len(),
            drills: drills.len(),
        });
    }
    let (region, drill) = (regions.remove(0), drills.remove(0));
    validate::region(&region, None)?;
    check_together(path, &drill, &region)?;
    Ok((region, drill))
}

/// A drill file for a cluster run: the drill, and the region when the file
/// has one (validated here). A drill without its region is validated against
/// the cluster's copy with [`validate::drill`] once that is read.
pub struct ClusterDrillFile {
    pub region: Option<RegionMirror>,
    pub drill: PartitionDrill,
}

pub fn load_for_cluster(path: &Path) -> Result<ClusterDrillFile, DrillFileError> {
    let (p, text) = read(path)?;
    parse_for_cluster(&p, &text)
}

pub fn parse_for_cluster(path: &str, text: &str) -> Result<ClusterDrillFile, DrillFileError> {
    let (mut regions, mut drills) = documents(path, text)?;
    if regions.len() > 1 || drills.len() != 1 {
        return Err(DrillFileError::ClusterCount {
            path: path.into(),
            regions: regions.len(),
            drills: drills.len(),
        });
    }
    let drill = drills.remove(0);
    let region = regions.pop();
    match &region {
        Some(region) => {
            validate::region(region, None)?;
            check_together(path, &drill, region)?;
        }
        // The rules that need no region hold already; the rest wait for it.
        None => validate::drill_rules(&drill)?,
    }
    Ok(ClusterDrillFile { region, drill })
}

type Documents = (Vec<RegionMirror>, Vec<PartitionDrill>);

fn documents(path: &str, text: &str) -> Result<Documents, DrillFileError> {
    let mut regions = Vec::new();
    let mut drills = Vec::new();
    for (index, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        match document(path, index, doc)? {
            Document::Empty => {}
            Document::Region(r) => regions.push(*r),
            Document::Drill(d) => drills.push(*d),
            Document::Other { api_version, kind } => {
                return Err(DrillFileError::UnknownKind {
                    path: path.into(),
                    index,
                    kind: format!("{api_version} {kind}"),
                });
            }
        }
    }
    Ok((regions, drills))
}

enum Document {
    Empty,
    Region(Box<RegionMirror>),
    Drill(Box<PartitionDrill>),
    Other { api_version: String, kind: String },
}

/// One YAML document, through the CRD's schema (strict, as the API server
/// with field validation) and then serde.
fn document(
    path: &str,
    index: usize,
    doc: serde_yaml_ng::Deserializer,
) -> Result<Document, DrillFileError> {
    let parse_err = |e: serde_yaml_ng::Error| DrillFileError::Parse {
        path: path.into(),
        index,
        message: e.to_string(),
    };
    let value = serde_yaml_ng::Value::deserialize(doc).map_err(parse_err)?;
    if value.is_null() {
        return Ok(Document::Empty);
    }
    let meta: TypeMeta = serde_yaml_ng::from_value(value.clone()).map_err(parse_err)?;
    // The schema first, as the API server with strict field validation:
    // serde alone would ignore a misspelt field and use its default.
    let as_json = || {
        serde_json::to_value(&value).map_err(|e| DrillFileError::Parse {
            path: path.into(),
            index,
            message: e.to_string(),
        })
    };
    Ok(match (meta.kind.as_str(), meta.api_version.as_str()) {
        ("RegionMirror", "natsregion.io/v1alpha1") => {
            schema_check::region(&as_json()?)?;
            Document::Region(Box::new(
                serde_yaml_ng::from_value(value).map_err(parse_err)?,
            ))
        }
        ("PartitionDrill", "natsregion.io/v1alpha1") => {
            schema_check::drill(&as_json()?)?;
            Document::Drill(Box::new(
                serde_yaml_ng::from_value(value).map_err(parse_err)?,
            ))
        }
        _ => Document::Other {
            api_version: meta.api_version,
            kind: meta.kind,
        },
    })
}

/// What `natsregion validate` found in one file.
#[derive(Debug, Default)]
pub struct FileCheck {
    pub path: String,
    pub regions: usize,
    pub drills: usize,
    /// Documents of other APIs (a GitOps folder mixes kinds): not checked.
    pub skipped: usize,
    /// One line per refusal, each naming the file and what to change.
    pub refusals: Vec<String>,
}

/// The checks `natsregion validate` runs on `(path, text)` files: every
/// document through the CRD schema and the CEL rules, and each drill against
/// its region (the rules that need both, and `plan::capacity`) when one of
/// the files holds that region; the rest of a drill's rules otherwise. Each
/// document is checked even after another one was refused.
pub fn check_files(files: &[(String, String)]) -> Vec<FileCheck> {
    let mut checks = Vec::new();
    let mut regions: Vec<RegionMirror> = Vec::new();
    let mut drills: Vec<(usize, PartitionDrill)> = Vec::new();
    for (path, text) in files {
        let mut check = FileCheck {
            path: path.clone(),
            ..Default::default()
        };
        let refuse = |e| refusal_line(path, e);
        for (index, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
            match document(path, index, doc) {
                Ok(Document::Empty) => {}
                Ok(Document::Region(r)) => {
                    check.regions += 1;
                    match validate::region(&r, None) {
                        Ok(()) => regions.push(*r),
                        Err(e) => check.refusals.push(refuse(e.into())),
                    }
                }
                Ok(Document::Drill(d)) => {
                    check.drills += 1;
                    drills.push((checks.len(), *d));
                }
                Ok(Document::Other { api_version, kind }) => {
                    if api_version.starts_with("natsregion.io/") || api_version.is_empty() {
                        check.refusals.push(refuse(DrillFileError::UnknownKind {
                            path: path.clone(),
                            index,
                            kind: format!("{api_version} {kind}"),
                        }));
                    } else {
                        check.skipped += 1;
                    }
                }
                // A document that does not parse may hide the rest of the
                // stream's boundaries; report it and go on with the next.
                Err(e) => check.refusals.push(refuse(e)),
            }
        }
        checks.push(check);
    }
    for (file, drill) in drills {
        let path = checks[file].path.clone();
        let region = regions.iter().find(|r| {
            r.metadata.name == Some(drill.spec.region_ref.name.clone())
                && (r.metadata.namespace.is_none()
                    || drill.metadata.namespace.is_none()
                    || r.metadata.namespace == drill.metadata.namespace)
        });
        let result = match region {
            Some(region) => check_together(&path, &drill, region),
            None => validate::drill_rules(&drill).map_err(DrillFileError::from),
        };
        if let Err(e) = result {
            checks[file].refusals.push(refusal_line(&path, e));
        }
    }
    checks
}

fn refusal_line(path: &str, e: DrillFileError) -> String {
    match e {
        // The CRD rules' messages name the object and the field, not the file.
        DrillFileError::Invalid(e) => format!("{path}: {e}"),
        e => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
apiVersion: natsregion.io/v1alpha1
kind: RegionMirror
metadata: {name: demo}
spec:
  stream: {name: EVENTS, subjects: ["events.>"]}
  zones:
    - {name: a, role: source}
    - {name: b, role: mirror}
---
apiVersion: natsregion.io/v1alpha1
kind: PartitionDrill
metadata: {name: d}
spec:
  regionRef: {name: demo}
"#;

    #[test]
    fn a_good_file_loads_with_defaults() {
        let (r, d) = parse("x.yaml", GOOD).unwrap();
        assert_eq!(r.spec.zones[0].servers, 3);
        assert_eq!(d.spec.workload.messages_per_phase, 1000);
    }

    #[test]
    fn a_bad_stream_name_is_refused_with_the_crd_message() {
        let bad = GOOD.replace("name: EVENTS", "name: EVENTS.REGION");
        let e = parse("x.yaml", &bad).unwrap_err().to_string();
        assert!(e.contains(validate::msg::STREAM_NAME), "{e}");
    }

    #[test]
    fn a_drill_cutting_the_source_names_the_field() {
        let bad = GOOD.replace(
            "regionRef: {name: demo}",
            "regionRef: {name: demo}\n  fault: {zones: [a]}",
        );
        let e = parse("x.yaml", &bad).unwrap_err().to_string();
        assert!(e.contains("fault.zones"), "{e}");
    }

    #[test]
    fn a_drill_that_would_evict_the_streams_data_is_refused_with_the_figures() {
        let big = GOOD
            .replace(
                "name: EVENTS,",
                "name: EVENTS, maxBytes: 104857600,",
            )
            .replace(
                "regionRef: {name: demo}",
                "regionRef: {name: demo}\n  workload: {messagesPerPhase: 100000, payloadBytes: 1024}",
            );
        let e = parse("x.yaml", &big).unwrap_err().to_string();
        assert!(
            e.contains(
                "x.yaml: PartitionDrill d: the drill writes about 540.7 MiB into stream EVENTS"
            ),
            "{e}"
        );
        assert!(e.contains("whose maxBytes is 100.0 MiB"), "{e}");
        assert!(e.contains("evict at least 440.7 MiB"), "{e}");
        assert!(e.contains("lower workload.messagesPerPhase"), "{e}");
        let e = parse_for_cluster("x.yaml", &big).err().unwrap().to_string();
        assert!(e.contains("into stream EVENTS"), "{e}");
    }

    #[test]
    fn a_cluster_drill_file_may_leave_the_region_out() {
        let only_drill = GOOD.split("---").nth(1).unwrap();
        let file = parse_for_cluster("x.yaml", only_drill).unwrap();
        assert!(file.region.is_none());
        assert_eq!(file.drill.spec.region_ref.name, "demo");
        // Local mode cannot: it has to start the region itself.
        assert!(matches!(
            parse("x.yaml", only_drill),
            Err(DrillFileError::Count {
                regions: 0,
                drills: 1,
                ..
            })
        ));
    }

    #[test]
    fn a_cluster_drill_file_with_its_region_checks_them_together() {
        let bad = GOOD.replace(
            "regionRef: {name: demo}",
            "regionRef: {name: demo}\n  fault: {zones: [a]}",
        );
        let e = parse_for_cluster("x.yaml", &bad).err().unwrap().to_string();
        assert!(e.contains("fault.zones"), "{e}");
        let two = format!("{GOOD}\n---\n{}", GOOD.split("---").next().unwrap());
        let e = parse_for_cluster("x.yaml", &two).err().unwrap().to_string();
        assert!(e.contains("at most one RegionMirror"), "{e}");
    }

    #[test]
    fn names_too_long_together_are_refused_with_the_limit() {
        let renamed = |n: usize| {
            let name = format!("demo{}", "x".repeat(n));
            GOOD.replace("name: demo}", &format!("name: {name}}}"))
                .replace(
                    "metadata: {name: demo}",
                    &format!("metadata: {{name: {name}}}"),
                )
        };
        // 52 + 1 characters for zone a.
        let e = parse("x.yaml", &renamed(48)).unwrap_err().to_string();
        assert!(e.contains(validate::msg::NAMES_FIT), "{e}");
        // The drill's temporary zone joins the region under the same rule:
        // 30 + 30 characters, where the region's own zones fit.
        let long_joiner = renamed(26).replace(
            "regionRef: {name: demo",
            &format!(
                "temporaryZone: {{name: j{}}}\n  regionRef: {{name: demo",
                "x".repeat(29)
            ),
        );
        let e = parse("x.yaml", &long_joiner).unwrap_err().to_string();
        assert!(
            e.contains("temporaryZone.name") && e.contains(validate::msg::NAMES_FIT),
            "{e}"
        );
    }

    #[test]
    fn misspelt_fields_and_too_many_zones_are_refused_as_the_api_server_would() {
        let typo = GOOD.replace(
            "regionRef: {name: demo}",
            "regionRef: {name: demo}\n  fault: {holdSecond: 30}",
        );
        let e = parse("x.yaml", &typo).unwrap_err().to_string();
        assert!(e.contains("spec.fault.holdSecond: unknown field"), "{e}");
        let zones: String = (0..17)
            .map(|i| format!("\n    - {{name: z{i}, role: mirror}}"))
            .collect();
        let many = GOOD.replace("\n    - {name: b, role: mirror}", &zones);
        let e = parse("x.yaml", &many).unwrap_err().to_string();
        assert!(
            e.contains("spec.zones: too many: 18: must have at most 16 items"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_drill_is_counted() {
        let only_region = GOOD.split("---").next().unwrap();
        assert!(matches!(
            parse("x.yaml", only_region),
            Err(DrillFileError::Count {
                regions: 1,
                drills: 0,
                ..
            })
        ));
    }
}
