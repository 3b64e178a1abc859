//! `natsregion-bench catchup-rate`: how fast a mirror takes a backlog across a
//! slow leafnode link once its consumer exists (issue 24 item 4).
//!
//! The region is [`resume`]'s (1-server source zone, Toxiproxy in every
//! leafnode link, 3-server mirror zone, R3 mirror). Toxics go on both
//! directions of every mirror-zone link, as a drill's `fault.toxics` do. Each
//! run purges the source, publishes the backlog while no mirror exists, then
//! creates a fresh mirror (a new name each run, so no consumer of an earlier
//! run is reused) and polls its stream info: the clock starts at the first
//! stored message (the consumer exists and delivers) and stops when the
//! mirror holds the whole backlog. The bytes on the wire are what the
//! Toxiproxy process wrote over the same interval (`wchar` of
//! `/proc/<pid>/io`: both directions of every link, after TLS and the
//! leafnode's own compression; its metrics count a link only once it closes).
//! Payloads are random unless `compressible`: leafnode links compress
//! (nats-server's `s2_auto` by default), and a repeated byte would measure
//! the compressor, not the link.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::api::{Toxic, ToxicType};

use super::resume::{self, MIRROR_ZONE, ResumeRegion};
use super::{BenchError, median};
use crate::nats::connect::ZoneClient;

/// What to measure.
#[derive(Clone, Debug)]
pub struct RateOptions {
    /// Latency toxic, each direction (0: none).
    pub latency_ms: u32,
    /// Bandwidth toxic in Toxiproxy's KB/s (1000 bytes), each direction (0: none).
    pub rate_kb: u32,
    pub payloads: Vec<usize>,
    pub backlogs: Vec<u64>,
    pub runs: usize,
    /// A combination whose backlog exceeds this many payload bytes is skipped.
    pub max_backlog_bytes: u64,
    /// Bodies of one repeated byte instead of random bytes.
    pub compressible: bool,
}

/// Subject of the backlog (the resume region's stream captures `events.>`).
const SUBJECT: &str = "events.backlog";
/// Poll period of the mirror's stream info.
const POLL: Duration = Duration::from_millis(20);

/// One poll of the mirror.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Seconds from the mirror's creation to the middle of the info request.
    pub at: f64,
    /// Messages the mirror had stored.
    pub msgs: u64,
    /// Bytes the Toxiproxy process had written.
    pub wire: Option<f64>,
}

/// Rates over the steady part of one run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    pub msgs_per_s: f64,
    pub payload_bytes_per_s: f64,
    pub wire_bytes_per_s: Option<f64>,
    /// From the mirror's creation to its first stored message and to caught up.
    pub first_s: f64,
    pub total_s: f64,
}

/// The share of the backlog stored before the clock starts. Stored counts
/// trail the link by the mirror's own pipeline (R3 replication before a
/// message counts), so the first stored message comes after bytes are
/// already through; from a tenth on, the count moves at the link's pace.
pub const STEADY_FROM: f64 = 0.1;

/// The rate from the first sample at [`STEADY_FROM`] of `backlog` to the
/// first at the whole backlog. `None` without two distinct such samples
/// (a backlog stored between two polls).
pub fn rate(samples: &[Sample], backlog: u64, payload: usize) -> Option<Rate> {
    let first = samples.iter().find(|s| s.msgs > 0)?;
    let from = ((backlog as f64 * STEADY_FROM).ceil() as u64).max(1);
    let lo = samples.iter().find(|s| s.msgs >= from)?;
    let hi = samples.iter().find(|s| s.msgs >= backlog)?;
    let span = hi.at - lo.at;
    let msgs = hi.msgs.checked_sub(lo.msgs)?;
    if msgs == 0 || span <= 0.0 {
        return None;
    }
    Some(Rate {
        msgs_per_s: msgs as f64 / span,
        payload_bytes_per_s: (msgs * payload as u64) as f64 / span,
        wire_bytes_per_s: match (lo.wire, hi.wire) {
            (Some(a), Some(b)) if b >= a => Some((b - a) / span),
            _ => None,
        },
        first_s: first.at,
        total_s: hi.at,
    })
}

/// The `key: 1234` figure of a `/proc/<pid>/io` text.
pub fn proc_io_field(text: &str, key: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|v| v as f64)
}

/// Bytes process `pid` has written so far (sockets included).
fn written_bytes(pid: Option<u32>) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{}/io", pid?)).ok()?;
    proc_io_field(&text, "wchar")
}

/// `len` bytes no compressor can shrink (xorshift64*; the seed varies per
/// run so no two runs send the same bytes).
pub fn random_bytes(len: usize, seed: u64) -> Bytes {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

/// The slowest of the answers to `<api>.INFO` through each client (all
/// asked at once), in seconds; `None` if one gave no answer in 30 s.
async fn slowest_answer(clients: &[ZoneClient], api: &str) -> Option<f64> {
    let asks = clients.iter().map(|c| async move {
        let start = Instant::now();
        let ask = c.client.request(format!("{api}.INFO"), "".into());
        match tokio::time::timeout(Duration::from_secs(30), ask).await {
            Ok(Ok(_)) => Some(start.elapsed().as_secs_f64()),
            _ => None,
        }
    });
    let waits: Option<Vec<f64>> = futures::future::join_all(asks).await.into_iter().collect();
    waits?.into_iter().reduce(f64::max)
}

/// The compression the source zone's leafnode links use, from its `/leafz`.
async fn leaf_compression(http: &reqwest::Client, monitors: &[String]) -> Vec<String> {
    let mut modes = Vec::new();
    for m in monitors {
        let Ok(r) = http.get(format!("{m}/leafz")).send().await else {
            continue;
        };
        let Ok(v) = r.json::<serde_json::Value>().await else {
            continue;
        };
        for leaf in v["leafs"].as_array().into_iter().flatten() {
            modes.push(format!(
                "{} rtt {}",
                leaf["compression"].as_str().unwrap_or("?"),
                leaf["rtt"].as_str().unwrap_or("?")
            ));
        }
    }
    modes
}

/// One payload size and backlog.
#[derive(Clone, Debug)]
pub struct RateFigure {
    pub payload: usize,
    pub backlog: u64,
    pub rates: Vec<Rate>,
    /// Runs that did not catch up, or caught up before a second poll.
    pub untimed: usize,
    /// Per run, the slowest answer to `$JS.<source>.API.INFO` through the
    /// mirror zone's servers once half the backlog was stored (seconds;
    /// the request waits behind the backlog on the leader's link).
    pub api_waits: Vec<f64>,
    /// Polls whose mirror info carried an `error`, and the first one's text.
    pub errors: usize,
    pub error: Option<String>,
}

impl RateFigure {
    fn med(&self, f: impl Fn(&Rate) -> Option<f64>) -> Option<f64> {
        let v: Vec<f64> = self.rates.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| median(&v))
    }
}

/// The toxics of `opts`, in a drill's order (latency, then bandwidth).
pub fn toxics(opts: &RateOptions) -> Vec<Toxic> {
    let mut t = Vec::new();
    if opts.latency_ms > 0 {
        t.push(Toxic {
            type_: ToxicType::Latency,
            latency_millis: Some(opts.latency_ms.into()),
            jitter_millis: None,
            rate_kilobytes_per_second: None,
        });
    }
    if opts.rate_kb > 0 {
        t.push(Toxic {
            type_: ToxicType::Bandwidth,
            latency_millis: None,
            jitter_millis: None,
            rate_kilobytes_per_second: Some(opts.rate_kb.into()),
        });
    }
    t
}

pub fn describe_toxics(opts: &RateOptions) -> String {
    let mut parts = Vec::new();
    if opts.compressible {
        parts.push("compressible payloads".to_string());
    }
    if opts.latency_ms > 0 {
        parts.push(format!("latency {} ms", opts.latency_ms));
    }
    if opts.rate_kb > 0 {
        parts.push(format!("bandwidth {} KB/s", opts.rate_kb));
    }
    if parts.is_empty() {
        "no toxics".into()
    } else {
        parts.join(" + ") + " (each direction)"
    }
}

pub async fn run(opts: &RateOptions) -> Result<Vec<RateFigure>, BenchError> {
    println!(
        "== mirror catch-up rate once its consumer exists: {}; {} run(s) per size; 1-server source, Toxiproxy, 3-server mirror zone, R3 mirror",
        describe_toxics(opts),
        opts.runs
    );
    let (region, drill) = resume::spec(5)?;
    let local = ResumeRegion::start(&region, &drill, false).await?;
    let result = measure(&local, &region, opts).await;
    let stopped = local.stop().await;
    let figures = result?;
    stopped?;
    Ok(figures)
}

async fn measure(
    local: &ResumeRegion,
    region: &crate::api::RegionMirror,
    opts: &RateOptions,
) -> Result<Vec<RateFigure>, BenchError> {
    let e = |what: &'static str| move |err: String| BenchError(format!("{what}: {err}"));
    let source = local.connect("a").await?;
    let mirror = local.connect(MIRROR_ZONE).await?;
    let base = resume::stream_config(region, MIRROR_ZONE)?;
    // The mirror `start` made is not measured; each run makes its own.
    mirror
        .js
        .delete_stream(&base.name)
        .await
        .map_err(|x| e("delete the first mirror")(x.to_string()))?;
    local
        .faults()
        .backend
        .apply_toxics(MIRROR_ZONE, &toxics(opts))
        .await
        .map_err(|x| e("toxics")(x.to_string()))?;
    let http = reqwest::Client::new();
    let toxiproxy = local.faults().toxiproxy_pid();
    let wire = || written_bytes(toxiproxy);
    let per_server = local.connect_each(MIRROR_ZONE).await;
    let api = base
        .mirror
        .as_ref()
        .and_then(|m| m.external.as_ref())
        .map(|x| x.api_prefix.clone())
        .ok_or_else(|| BenchError("the mirror config has no external API".into()))?;
    let source_name = crate::plan::source_stream_config(&region.spec).name;
    let mut figures = Vec::new();
    let mut serial = 0;
    for &payload in &opts.payloads {
        for &backlog in &opts.backlogs {
            if backlog * payload as u64 > opts.max_backlog_bytes {
                println!("  {payload} B x {backlog}: skipped (over --max-backlog-mib)");
                continue;
            }
            let mut fig = RateFigure {
                payload,
                backlog,
                rates: Vec::new(),
                untimed: 0,
                api_waits: Vec::new(),
                errors: 0,
                error: None,
            };
            // A bound on one run: the backlog at a tenth of the cap, or 60 s.
            let cap = if opts.rate_kb > 0 {
                opts.rate_kb as f64 * 1000.0
            } else {
                f64::INFINITY
            };
            let bound =
                Duration::from_secs_f64((backlog as f64 * payload as f64 / cap * 10.0).max(60.0));
            for run in 1..=opts.runs {
                serial += 1;
                source
                    .js
                    .get_stream(&source_name)
                    .await
                    .map_err(|x| e("source stream")(x.to_string()))?
                    .purge()
                    .await
                    .map_err(|x| e("purge the source")(x.to_string()))?;
                // One buffer, a distinct slice per message.
                let pool = if opts.compressible {
                    Bytes::from(vec![b'x'; payload * backlog as usize])
                } else {
                    random_bytes(payload * backlog as usize, serial)
                };
                let body = |i: u64| {
                    let at = (i as usize - 1) * payload;
                    pool.slice(at..at + payload)
                };
                super::publish::plain_publish(&source.js, SUBJECT, backlog, body, None).await?;
                let mut config = base.clone();
                config.name = format!("{}_RATE{serial}", base.name);
                mirror
                    .js
                    .create_stream(config.clone())
                    .await
                    .map_err(|x| e("create the mirror")(x.to_string()))?;
                let created = Instant::now();
                let mut samples = Vec::new();
                let mut probe = None;
                let mut probed = false;
                let mut links = Vec::new();
                while created.elapsed() < bound {
                    let sent = created.elapsed().as_secs_f64();
                    let info = match crate::nats::api::stream_info(&mirror.js, &config.name).await {
                        Ok(Ok(Some(info))) => info,
                        Ok(Ok(None)) => return Err(e("mirror info")("no such stream".into())),
                        Ok(Err(x)) => return Err(e("mirror info")(x.to_string())),
                        Err(x) => return Err(e("mirror info")(x.to_string())),
                    };
                    let wire = wire();
                    let msgs = info.info.state.messages;
                    if let Some(err) = info.mirror_error() {
                        fig.errors += 1;
                        fig.error.get_or_insert_with(|| err.to_string());
                    }
                    samples.push(Sample {
                        at: (sent + created.elapsed().as_secs_f64()) / 2.0,
                        msgs,
                        wire,
                    });
                    if msgs >= backlog {
                        break;
                    }
                    if !probed && msgs >= backlog / 2 {
                        probed = true;
                        probe = slowest_answer(&per_server, &api).await;
                        // s2_auto picks a level from the measured RTT, which
                        // a queue in front of a slow link inflates.
                        links = leaf_compression(&http, &local.source_monitors).await;
                    }
                    tokio::time::sleep(POLL).await;
                }
                let rate = rate(&samples, backlog, payload);
                fig.api_waits.extend(probe);
                match rate {
                    Some(r) => {
                        println!(
                            "  {payload} B x {backlog} run {run}: first message {:.2}s, caught up {:.2}s; {:.0} msgs/s, payload {:.1} KB/s, wire {}; source API at half {}",
                            r.first_s,
                            r.total_s,
                            r.msgs_per_s,
                            r.payload_bytes_per_s / 1000.0,
                            kb(r.wire_bytes_per_s),
                            probe
                                .map(|p| format!("{p:.2}s"))
                                .unwrap_or_else(|| "-".into()),
                        );
                        fig.rates.push(r);
                    }
                    None => {
                        println!(
                            "  {payload} B x {backlog} run {run}: not timed ({} polls, last {:?}, bound {:.0}s)",
                            samples.len(),
                            samples.last(),
                            bound.as_secs_f64()
                        );
                        fig.untimed += 1;
                    }
                }
                if !links.is_empty() {
                    println!("    leafnode links at half: {}", links.join(", "));
                }
                mirror
                    .js
                    .delete_stream(&config.name)
                    .await
                    .map_err(|x| e("delete the mirror")(x.to_string()))?;
            }
            figures.push(fig);
        }
    }
    Ok(figures)
}

fn kb(v: Option<f64>) -> String {
    v.map(|b| format!("{:.1} KB/s", b / 1000.0))
        .unwrap_or_else(|| "-".into())
}

/// Medians of each size, and the wire rate's ratio to the bandwidth cap.
pub fn table(opts: &RateOptions, figures: &[RateFigure]) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    let _ = writeln!(t, "{}; medians", describe_toxics(opts));
    let _ = writeln!(
        t,
        "{:>8} {:>8} {:>5} {:>9} {:>10} {:>12} {:>12} {:>8} {:>9} {:>9}",
        "payload",
        "backlog",
        "runs",
        "first",
        "msgs/s",
        "payload KB/s",
        "wire KB/s",
        "wire/cap",
        "total",
        "API wait"
    );
    for f in figures {
        let wire = f.med(|r| r.wire_bytes_per_s);
        let ratio = match wire {
            Some(w) if opts.rate_kb > 0 => format!("{:.2}", w / (opts.rate_kb as f64 * 1000.0)),
            _ => "-".into(),
        };
        let secs = |v: Option<f64>| v.map(|s| format!("{s:.2}s")).unwrap_or_else(|| "-".into());
        let num = |v: Option<f64>, div: f64| {
            v.map(|x| format!("{:.1}", x / div))
                .unwrap_or_else(|| "-".into())
        };
        let _ = writeln!(
            t,
            "{:>8} {:>8} {:>5} {:>9} {:>10} {:>12} {:>12} {:>8} {:>9} {:>9}",
            format!("{} B", f.payload),
            f.backlog,
            format!("{}/{}", f.rates.len(), f.rates.len() + f.untimed),
            secs(f.med(|r| Some(r.first_s))),
            num(f.med(|r| Some(r.msgs_per_s)), 1.0),
            num(f.med(|r| Some(r.payload_bytes_per_s)), 1000.0),
            num(wire, 1000.0),
            ratio,
            secs(f.med(|r| Some(r.total_s))),
            secs((!f.api_waits.is_empty()).then(|| median(&f.api_waits))),
        );
        if let Some(err) = &f.error {
            let _ = writeln!(t, "{:>17} mirror error in {} poll(s): {err}", "", f.errors);
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: f64, msgs: u64, wire: f64) -> Sample {
        Sample {
            at,
            msgs,
            wire: Some(wire),
        }
    }

    /// Nothing, a first message late (the pipeline), 10 % at 1.0 s, all at 3.0 s.
    fn samples() -> Vec<Sample> {
        vec![
            sample(0.3, 0, 0.0),
            sample(0.6, 5, 300_000.0),
            sample(1.0, 200, 400_000.0),
            sample(2.0, 1100, 900_000.0),
            sample(3.0, 2000, 1_400_000.0),
        ]
    }

    #[test]
    fn the_rate_starts_once_a_tenth_is_stored() {
        let r = rate(&samples(), 2000, 1000).expect("timed");
        // 1800 messages in 2 s, not 1995 in 2.4 s.
        assert_eq!(r.msgs_per_s, 900.0);
        assert_eq!(r.payload_bytes_per_s, 900_000.0);
        assert_eq!(r.wire_bytes_per_s, Some(500_000.0));
        assert_eq!((r.first_s, r.total_s), (0.6, 3.0));
    }

    #[test]
    fn a_backlog_stored_between_two_polls_is_not_timed() {
        let s = vec![sample(0.3, 0, 0.0), sample(0.5, 2000, 1.0)];
        assert_eq!(rate(&s, 2000, 128), None);
        assert_eq!(rate(&samples()[..4], 2000, 128), None, "never caught up");
        // A counter that went backwards gives no wire rate.
        let mut s = samples();
        s[4].wire = Some(0.0);
        assert_eq!(rate(&s, 2000, 128).expect("timed").wire_bytes_per_s, None);
    }

    #[test]
    fn written_bytes_are_read_from_proc_io() {
        let io = "rchar: 10\nwchar: 2048\nsyscr: 1\nwrite_bytes: 7\n";
        assert_eq!(proc_io_field(io, "wchar"), Some(2048.0));
        assert_eq!(proc_io_field(io, "write_bytes"), Some(7.0));
        assert_eq!(proc_io_field(io, "cancelled_write_bytes"), None);
    }

    #[test]
    fn random_payloads_differ_and_have_the_length_asked() {
        let a = random_bytes(1000, 1);
        assert_eq!(a.len(), 1000);
        assert_ne!(a, random_bytes(1000, 2));
        // No long run of one byte (a compressor's easy case).
        let distinct: std::collections::HashSet<u8> = a.iter().copied().collect();
        assert!(distinct.len() > 200, "{}", distinct.len());
    }

    #[test]
    fn the_table_gives_the_ratio_to_the_cap() {
        let opts = RateOptions {
            latency_ms: 80,
            rate_kb: 512,
            payloads: vec![1024],
            backlogs: vec![2000],
            runs: 1,
            max_backlog_bytes: u64::MAX,
            compressible: false,
        };
        assert_eq!(toxics(&opts).len(), 2);
        let fig = RateFigure {
            payload: 1000,
            backlog: 2000,
            rates: vec![rate(&samples(), 2000, 1000).expect("timed")],
            untimed: 1,
            api_waits: vec![1.5],
            errors: 2,
            error: Some("stalled".into()),
        };
        let t = table(&opts, &[fig]);
        // 500 KB/s on the wire against 512 KB/s.
        assert!(t.contains("0.98") && t.contains("1/2"), "{t}");
        assert!(
            t.contains("1.50s") && t.contains("error in 2 poll(s): stalled"),
            "{t}"
        );
        assert!(t.starts_with("latency 80 ms + bandwidth 512 KB/s"), "{t}");
    }
}
