//! JUnit XML for CI systems: one test suite per drill run, one test case per
//! claim. A failed claim is a `<failure>` whose message is the claim's
//! reason; an inconclusive claim is an `<error>` (the drill could not judge
//! it, which CI must not show as green); a claim no step exercised is
//! `<skipped>`. A run that judged no claim at all (a precondition failed, or
//! it was aborted) gets one `drill` case carrying the run's message.

use std::io::Cursor;
use std::path::Path;

use quick_xml::Writer;
use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::name::QName;

use crate::api::{DrillPhase, PartitionDrillStatus, Verdict};

/// One run of a drill, as a test suite.
pub struct Suite<'a> {
    /// Suite name, e.g. `qa-drill on qa`.
    pub name: String,
    pub status: &'a PartitionDrillStatus,
    pub seconds: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum JunitError {
    #[error("cannot build JUnit XML: {0}")]
    Xml(#[from] std::io::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// XML 1.0 forbids most control characters even when escaped; evidence and
/// server messages may carry them.
fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t' | '\r'))
        .collect()
}

/// What one test case ends with.
enum Outcome {
    Passed,
    Failure { message: String, detail: String },
    Error { message: String, detail: String },
    Skipped { message: String },
}

struct Case {
    name: String,
    outcome: Outcome,
}

fn cases(status: &PartitionDrillStatus) -> Vec<Case> {
    let mut out: Vec<Case> = status
        .claims
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let detail = c
                .evidence
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join("\n");
            let outcome = match c.verdict {
                Verdict::Passed => Outcome::Passed,
                Verdict::Failed => Outcome::Failure {
                    message: c.message.clone(),
                    detail,
                },
                Verdict::Inconclusive => Outcome::Error {
                    message: c.message.clone(),
                    detail,
                },
                Verdict::NotRun => Outcome::Skipped {
                    message: c.message.clone(),
                },
            };
            Case {
                name: format!("{} {}", i + 1, c.claim.title()),
                outcome,
            }
        })
        .collect();
    if out.is_empty() {
        let message = status.message.clone().unwrap_or_else(|| {
            format!("the drill ended {:?} without judging a claim", status.phase)
        });
        let outcome = match status.phase {
            DrillPhase::Succeeded => Outcome::Passed,
            DrillPhase::Failed => Outcome::Failure {
                message,
                detail: String::new(),
            },
            _ => Outcome::Error {
                message,
                detail: String::new(),
            },
        };
        out.push(Case {
            name: "drill".into(),
            outcome,
        });
    }
    out
}

#[derive(Default)]
struct Counts {
    tests: usize,
    failures: usize,
    errors: usize,
    skipped: usize,
}

impl Counts {
    fn of(cases: &[Case]) -> Self {
        let mut c = Counts {
            tests: cases.len(),
            ..Default::default()
        };
        for case in cases {
            match case.outcome {
                Outcome::Passed => {}
                Outcome::Failure { .. } => c.failures += 1,
                Outcome::Error { .. } => c.errors += 1,
                Outcome::Skipped { .. } => c.skipped += 1,
            }
        }
        c
    }

    fn add(&mut self, o: &Counts) {
        self.tests += o.tests;
        self.failures += o.failures;
        self.errors += o.errors;
        self.skipped += o.skipped;
    }

    fn attrs<'a>(&self, e: BytesStart<'a>) -> BytesStart<'a> {
        e.with_attributes([
            ("tests", self.tests.to_string().as_str()),
            ("failures", self.failures.to_string().as_str()),
            ("errors", self.errors.to_string().as_str()),
            ("skipped", self.skipped.to_string().as_str()),
        ])
    }
}

type W = Writer<Cursor<Vec<u8>>>;

/// An attribute whose value keeps its line breaks: a parser turns a raw
/// newline in an attribute into a space, so it is written as a reference.
fn attribute<'a>(key: &'a str, value: &str) -> Attribute<'a> {
    let escaped = quick_xml::escape::escape(clean(value))
        .replace('\n', "&#10;")
        .replace('\r', "&#13;")
        .replace('\t', "&#9;");
    Attribute {
        key: QName(key),
        value: escaped.into(),
    }
}

fn text_element(w: &mut W, tag: &str, attrs: &[(&str, &str)], body: &str) -> std::io::Result<()> {
    let mut start = BytesStart::new(tag);
    for (k, v) in attrs {
        start.push_attribute(attribute(k, v));
    }
    if body.is_empty() {
        return w.write_event(Event::Empty(start));
    }
    w.write_event(Event::Start(start))?;
    w.write_event(Event::Text(BytesText::new(body)))?;
    w.write_event(Event::End(BytesEnd::new(tag)))
}

fn suite(w: &mut W, s: &Suite<'_>, cases: &[Case], counts: &Counts) -> std::io::Result<()> {
    let time = format!("{:.3}", s.seconds);
    let timestamp = s
        .status
        .started_at
        .as_ref()
        .map(|t| t.0.to_string())
        .unwrap_or_default();
    let name = clean(&s.name);
    let start = counts.attrs(BytesStart::new("testsuite")).with_attributes([
        ("name", name.as_str()),
        ("time", time.as_str()),
        ("timestamp", timestamp.as_str()),
    ]);
    w.write_event(Event::Start(start))?;
    w.write_event(Event::Start(BytesStart::new("properties")))?;
    let phase = format!("{:?}", s.status.phase);
    let verdict = format!("{:?}", s.status.verdict);
    let catch_up = s
        .status
        .totals
        .catch_up_seconds
        .map(|c| format!("{c:.3}"))
        .unwrap_or_default();
    for (k, v) in [
        ("phase", phase.as_str()),
        ("verdict", verdict.as_str()),
        ("catchUpSeconds", catch_up.as_str()),
    ] {
        w.write_event(Event::Empty(
            BytesStart::new("property").with_attributes([("name", k), ("value", v)]),
        ))?;
    }
    w.write_event(Event::End(BytesEnd::new("properties")))?;
    for case in cases {
        let name = clean(&case.name);
        let start = BytesStart::new("testcase").with_attributes([
            ("name", name.as_str()),
            ("classname", name_of_class(&s.name).as_str()),
        ]);
        if matches!(case.outcome, Outcome::Passed) {
            w.write_event(Event::Empty(start))?;
            continue;
        }
        w.write_event(Event::Start(start))?;
        match &case.outcome {
            Outcome::Passed => {}
            Outcome::Failure { message, detail } => text_element(
                w,
                "failure",
                &[("message", message), ("type", "ClaimFailed")],
                &clean(detail),
            )?,
            Outcome::Error { message, detail } => text_element(
                w,
                "error",
                &[("message", message), ("type", "Inconclusive")],
                &clean(detail),
            )?,
            Outcome::Skipped { message } => {
                text_element(w, "skipped", &[("message", message)], "")?
            }
        }
        w.write_event(Event::End(BytesEnd::new("testcase")))?;
    }
    w.write_event(Event::End(BytesEnd::new("testsuite")))
}

/// CI systems group test cases by class; one class per drill.
fn name_of_class(suite: &str) -> String {
    let drill = suite.split_whitespace().next().unwrap_or("drill");
    clean(&format!("natsregion.drill.{drill}"))
}

/// One suite per run of a local campaign (or the one run).
pub fn suites(reports: &[crate::drill::engine::DrillReport]) -> Vec<Suite<'_>> {
    let many = reports.len() > 1;
    reports
        .iter()
        .enumerate()
        .map(|(i, r)| Suite {
            name: if many {
                format!("{} on {} run {}", r.drill, r.region, i + 1)
            } else {
                format!("{} on {}", r.drill, r.region)
            },
            status: &r.status,
            seconds: r.wall_seconds,
        })
        .collect()
}

/// The JUnit document for these runs.
pub fn render(suites: &[Suite<'_>]) -> Result<String, JunitError> {
    let mut w = Writer::new_with_indent(Cursor::new(Vec::new()), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let all: Vec<(Vec<Case>, Counts)> = suites
        .iter()
        .map(|s| {
            let c = cases(s.status);
            let n = Counts::of(&c);
            (c, n)
        })
        .collect();
    let mut total = Counts::default();
    for (_, n) in &all {
        total.add(n);
    }
    let time = format!("{:.3}", suites.iter().map(|s| s.seconds).sum::<f64>());
    let start = total
        .attrs(BytesStart::new("testsuites"))
        .with_attributes([("name", "natsregion drill"), ("time", time.as_str())]);
    w.write_event(Event::Start(start))?;
    for (s, (c, n)) in suites.iter().zip(&all) {
        suite(&mut w, s, c, n)?;
    }
    w.write_event(Event::End(BytesEnd::new("testsuites")))?;
    let bytes = w.into_inner().into_inner();
    // Every piece written above is a Rust string, so the document is UTF-8.
    Ok(String::from_utf8(bytes).expect("UTF-8") + "\n")
}

/// Writes the document to `path`, its directory created.
pub fn write(suites: &[Suite<'_>], path: &Path) -> Result<(), JunitError> {
    let xml = render(suites)?;
    let err = |source| JunitError::Write {
        path: path.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    std::fs::write(path, xml).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Claim, ClaimResult};
    use quick_xml::Reader;

    fn claim(claim: Claim, verdict: Verdict, message: &str) -> ClaimResult {
        ClaimResult {
            claim,
            verdict,
            message: message.into(),
            evidence: [("lost".to_string(), "3 <ids 7 & 9>".to_string())].into(),
        }
    }

    /// (element, attributes) of every start or empty element, parsed back.
    fn parse(xml: &str) -> Vec<(String, Vec<(String, String)>)> {
        let mut r = Reader::from_str(xml);
        let mut out = Vec::new();
        loop {
            match r.read_event().expect("well-formed XML") {
                Event::Eof => return out,
                Event::Start(e) | Event::Empty(e) => {
                    let attrs = e
                        .attributes()
                        .map(|a| {
                            let a = a.expect("attribute");
                            (
                                a.key.into_inner().to_string(),
                                a.normalized_value(quick_xml::XmlVersion::Explicit1_0)
                                    .expect("value")
                                    .to_string(),
                            )
                        })
                        .collect();
                    out.push((e.name().into_inner().to_string(), attrs));
                }
                _ => {}
            }
        }
    }

    fn attr<'a>(e: &'a (String, Vec<(String, String)>), k: &str) -> &'a str {
        &e.1.iter().find(|(n, _)| n == k).expect(k).1
    }

    #[test]
    fn one_case_per_claim_with_failures_errors_and_skips() {
        let status = PartitionDrillStatus {
            phase: DrillPhase::Failed,
            verdict: Verdict::Failed,
            claims: vec![
                claim(Claim::LocalConsumption, Verdict::Passed, "ok"),
                claim(
                    Claim::NoLossAfterHeal,
                    Verdict::Failed,
                    "zone b: 3 lost <\"prefix\"> & \u{1b}[31mred\nsecond line",
                ),
                claim(
                    Claim::IndependentProgress,
                    Verdict::Inconclusive,
                    "no ack floor",
                ),
                claim(
                    Claim::ZoneJoin,
                    Verdict::NotRun,
                    "no add-temporary-zone step",
                ),
            ],
            ..Default::default()
        };
        let xml = render(&[Suite {
            name: "d on r".into(),
            status: &status,
            seconds: 12.5,
        }])
        .unwrap();
        let els = parse(&xml);
        let root = &els[0];
        assert_eq!(root.0, "testsuites");
        assert_eq!(
            (
                attr(root, "tests"),
                attr(root, "failures"),
                attr(root, "errors"),
                attr(root, "skipped")
            ),
            ("4", "1", "1", "1")
        );
        let cases: Vec<_> = els.iter().filter(|e| e.0 == "testcase").collect();
        assert_eq!(cases.len(), 4);
        let failure = els.iter().find(|e| e.0 == "failure").unwrap();
        assert_eq!(
            attr(failure, "message"),
            "zone b: 3 lost <\"prefix\"> & [31mred\nsecond line"
        );
        assert!(xml.contains("3 &lt;ids 7 &amp; 9&gt;"), "{xml}");
        assert!(
            els.iter()
                .any(|e| e.0 == "error" && attr(e, "message") == "no ack floor")
        );
        assert!(els.iter().any(|e| e.0 == "skipped"));
    }

    #[test]
    fn a_run_without_claims_is_one_case() {
        let status = PartitionDrillStatus {
            phase: DrillPhase::Failed,
            message: Some("precondition failed: RegionMirror r does not exist".into()),
            ..Default::default()
        };
        let xml = render(&[Suite {
            name: "d on r".into(),
            status: &status,
            seconds: 0.1,
        }])
        .unwrap();
        let els = parse(&xml);
        let f = els.iter().find(|e| e.0 == "failure").unwrap();
        assert!(attr(f, "message").contains("does not exist"));
        assert_eq!(els.iter().filter(|e| e.0 == "testcase").count(), 1);
    }
}
