//! Publish rate on a local 3-server zone: the drill's `Producer` against a
//! plain async-nats loop with the same ack window, and against the same loop
//! with a unique `Nats-Msg-Id` per message, in alternating rounds. The second
//! ratio leaves out the server's duplicate-window work, so it is the
//! producer's own (client-side) overhead; the producer's per-message client
//! work is also timed without a server.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_nats::jetstream;
use async_nats::{HeaderMap, Subject};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::goals::{GoalRow, render};
use super::{BenchError, err, median};
use crate::api::RegionMirror;
use crate::drill::producer::{Producer, ProducerSettings, outgoing};
use crate::drill::record::{MsgId, msg_id_header, payload};
use crate::drill::sent::SentLog;
use crate::fault::DirectNetwork;
use crate::local::{LocalRegion, LocalRegionOptions};
use crate::nats::connect::{ConnectSettings, connect};

pub const PUBLISH_REGION: &str = r#"
apiVersion: natsregion.io/v1alpha1
kind: RegionMirror
metadata: {name: bench}
spec:
  stream: {name: BENCH, subjects: ["bench.>"], replicas: 3}
  zones:
    - {name: src, role: source, servers: 3}
"#;

pub const SUBJECT: &str = "bench.publish";
pub const WINDOW: usize = 256;
pub const PAYLOAD_BYTES: usize = 128;

#[derive(Clone, Debug)]
pub struct PublishFigure {
    pub messages: u64,
    /// Acked messages per second of each round.
    pub producer: Vec<f64>,
    pub plain: Vec<f64>,
    /// The plain loop with a unique `Nats-Msg-Id` header per message.
    pub plain_msg_id: Vec<f64>,
    /// CPU time of this process (all its threads; the servers are other
    /// processes) per acked message of each round, in microseconds: the
    /// client side's cost, less disturbed by other load than the rates.
    pub producer_cpu_us: Vec<f64>,
    pub plain_cpu_us: Vec<f64>,
    pub plain_msg_id_cpu_us: Vec<f64>,
    pub client_work: ClientWork,
}

impl PublishFigure {
    /// Producer / plain: everything the drill's publishing costs.
    pub fn ratio_plain(&self) -> f64 {
        median(&self.producer) / median(&self.plain)
    }
    /// Producer / plain with the same header: the producer's own overhead,
    /// the server's duplicate tracking left out.
    pub fn ratio_msg_id(&self) -> f64 {
        median(&self.producer) / median(&self.plain_msg_id)
    }
}

/// Goal of issue 11: the producer's rate over plain publishing.
pub const RATIO_GOAL: f64 = 0.95;

impl PublishFigure {
    /// The row of issue 11's table this benchmark measures.
    pub fn goal_rows(&self) -> Vec<GoalRow> {
        vec![GoalRow::new(
            "drill producer vs plain async-nats publish",
            format!(
                "{:.2} ({:.0} vs {:.0} msgs/s); vs plain + Nats-Msg-Id {:.2} ({:.0}); CPU/msg {:.1} / {:.1} / {:.1} us",
                self.ratio_plain(),
                median(&self.producer),
                median(&self.plain),
                self.ratio_msg_id(),
                median(&self.plain_msg_id),
                median(&self.producer_cpu_us),
                median(&self.plain_cpu_us),
                median(&self.plain_msg_id_cpu_us),
            ),
            format!(">= {RATIO_GOAL}"),
            Some(self.ratio_plain() >= RATIO_GOAL),
        )]
    }
}

/// The publish benchmark's closing table.
pub fn table(f: &PublishFigure) -> String {
    render(&f.goal_rows())
}

/// Nanoseconds per message of the producer's work outside the client library,
/// timed without a server.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientWork {
    /// `SentLog::attempt` and `settle` through the log's Mutex.
    pub log_ns: f64,
    /// Headers and payload (`producer::outgoing`).
    pub message_ns: f64,
}

/// Measures the producer's client work, then the three publish loops on a
/// local zone it starts and stops.
pub async fn run(n: u64, rounds: usize) -> Result<PublishFigure, BenchError> {
    println!(
        "== 2. publish rate, {n} messages x {rounds} rotating rounds, window {WINDOW}, {PAYLOAD_BYTES}-byte bodies"
    );
    let client_work = client_work(200_000);
    println!(
        "  producer client work, no server: log {:.0} ns/msg, headers + payload {:.0} ns/msg",
        client_work.log_ns, client_work.message_ns
    );
    let (region, local) = start_bench_region().await?;
    let result = publish_rounds(&local, &region, n, rounds, client_work).await;
    let stopped = local.stop().await;
    let figure = result?;
    stopped.map_err(|e| BenchError(format!("stopping the region: {e}")))?;
    Ok(figure)
}

fn client_work(n: u64) -> ClientWork {
    let log = Mutex::new(SentLog::new(1, PAYLOAD_BYTES));
    let start = Instant::now();
    for _ in 0..n {
        let id = log.lock().expect("log").attempt(0);
        let counter = std::hint::black_box(id.counter);
        log.lock().expect("log").settle(counter, Some(counter));
    }
    let log_ns = start.elapsed().as_nanos() as f64 / n as f64;
    let start = Instant::now();
    let mut block = bytes::BytesMut::new();
    for counter in 1..=n {
        std::hint::black_box(outgoing(
            MsgId { writer: 1, counter },
            PAYLOAD_BYTES,
            &mut block,
        ));
    }
    let message_ns = start.elapsed().as_nanos() as f64 / n as f64;
    ClientWork { log_ns, message_ns }
}

/// Connects to the local zone and creates the bench stream.
/// The one-zone region of [`PUBLISH_REGION`], started locally.
pub async fn start_bench_region() -> Result<(RegionMirror, LocalRegion), BenchError> {
    let region: RegionMirror = serde_yaml_ng::from_str(PUBLISH_REGION)
        .map_err(|e| BenchError(format!("bench region: {e}")))?;
    let local = LocalRegion::start(
        &region.spec,
        Arc::new(DirectNetwork),
        LocalRegionOptions::default(),
    )
    .await
    .map_err(|e| BenchError(format!("local region: {e}")))?;
    Ok((region, local))
}

pub async fn bench_stream(
    local: &LocalRegion,
    region: &RegionMirror,
) -> Result<crate::nats::connect::ZoneClient, BenchError> {
    let zone = local.source_zone();
    let app = &local.credentials().app;
    let endpoint = zone.endpoint(app, local.ca_pem().map(str::to_string));
    let settings = ConnectSettings {
        client_name: "natsregion-bench".into(),
        ..Default::default()
    };
    let conn = connect(&endpoint, &settings)
        .await
        .map_err(|e| err("connect")(e.to_string()))?;
    conn.js
        .create_stream(crate::plan::source_stream_config(&region.spec))
        .await
        .map_err(|e| err("create stream")(e.to_string()))?;
    Ok(conn)
}

/// One contestant of a round.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Loop {
    Producer,
    Plain,
    PlainMsgId,
}

async fn publish_rounds(
    local: &LocalRegion,
    region: &RegionMirror,
    n: u64,
    rounds: usize,
    client_work: ClientWork,
) -> Result<PublishFigure, BenchError> {
    let conn = bench_stream(local, region).await?;
    let body = fixed_body();
    // Warm-up: stream leader elected, connection buffers grown.
    plain_publish(&conn.js, SUBJECT, (n / 10).max(500), |_| body.clone(), None).await?;

    let mut figure = PublishFigure {
        messages: n,
        producer: Vec::new(),
        plain: Vec::new(),
        plain_msg_id: Vec::new(),
        producer_cpu_us: Vec::new(),
        plain_cpu_us: Vec::new(),
        plain_msg_id_cpu_us: Vec::new(),
        client_work,
    };
    let order = [Loop::Producer, Loop::Plain, Loop::PlainMsgId];
    for round in 0..rounds {
        // Rotate which goes first so drift (store growth) hits all alike.
        for k in 0..order.len() {
            // A fresh writer per round and loop: new Nats-Msg-Ids, nothing de-duplicated.
            let writer = 100 + (round * order.len() + k) as u32;
            let cpu = cpu_seconds();
            let contestant = order[(round + k) % order.len()];
            let rate = match contestant {
                Loop::Producer => {
                    let producer = Producer::new(
                        conn.client.clone(),
                        conn.js.clone(),
                        Arc::new(Mutex::new(SentLog::new(writer, PAYLOAD_BYTES))),
                        ProducerSettings {
                            subject: SUBJECT.into(),
                            payload_bytes: PAYLOAD_BYTES,
                            rate_per_second: 0,
                            window: WINDOW,
                        },
                    );
                    let stats = producer.publish(0, n, &|_| {}).await;
                    if stats.acked != n {
                        return Err(BenchError(format!(
                            "producer round {round}: {} of {n} acked ({} failed)",
                            stats.acked, stats.failed
                        )));
                    }
                    stats.rate()
                }
                Loop::Plain => plain_publish(&conn.js, SUBJECT, n, |_| body.clone(), None).await?,
                Loop::PlainMsgId => {
                    plain_publish(&conn.js, SUBJECT, n, |_| body.clone(), Some(writer)).await?
                }
            };
            let cpu_us = (cpu_seconds() - cpu) * 1e6 / n as f64;
            let (rates, cpus) = match contestant {
                Loop::Producer => (&mut figure.producer, &mut figure.producer_cpu_us),
                Loop::Plain => (&mut figure.plain, &mut figure.plain_cpu_us),
                Loop::PlainMsgId => (&mut figure.plain_msg_id, &mut figure.plain_msg_id_cpu_us),
            };
            rates.push(rate);
            cpus.push(cpu_us);
        }
        println!(
            "  round {}: producer {:>6.0} msgs/s ({:.1} us CPU/msg), plain async-nats {:>6.0} ({:.1}), plain + Nats-Msg-Id {:>6.0} ({:.1})",
            round + 1,
            figure.producer[round],
            figure.producer_cpu_us[round],
            figure.plain[round],
            figure.plain_cpu_us[round],
            figure.plain_msg_id[round],
            figure.plain_msg_id_cpu_us[round],
        );
    }
    println!(
        "  median: producer {:.0}, plain {:.0}, plain + Nats-Msg-Id {:.0} msgs/s; producer/plain {:.2} (goal >= {RATIO_GOAL}), producer/(plain + Nats-Msg-Id) {:.2}",
        median(&figure.producer),
        median(&figure.plain),
        median(&figure.plain_msg_id),
        figure.ratio_plain(),
        figure.ratio_msg_id(),
    );
    println!(
        "  bench process CPU per message: producer {:.2} us, plain {:.2} us, plain + Nats-Msg-Id {:.2} us",
        median(&figure.producer_cpu_us),
        median(&figure.plain_cpu_us),
        median(&figure.plain_msg_id_cpu_us),
    );
    Ok(figure)
}

/// User + system CPU seconds of this process so far, every thread included.
pub fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return f64::NAN;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// The body every plain publish sends (the producer's size, built once).
pub fn fixed_body() -> Bytes {
    payload(
        MsgId {
            writer: 0,
            counter: 1,
        },
        PAYLOAD_BYTES,
    )
}

/// The baseline: `jetstream::Context::publish` of `body(counter)`, at most
/// `WINDOW` PubAcks awaited at once, on `subject` (the bench stream's
/// [`SUBJECT`] unless another stream is the target); with `msg_ids`, each message carries the
/// `Nats-Msg-Id` the producer would give it as that writer. Returns acked
/// messages per second.
pub async fn plain_publish(
    js: &jetstream::Context,
    subject: &str,
    n: u64,
    body: impl Fn(u64) -> Bytes,
    msg_ids: Option<u32>,
) -> Result<f64, BenchError> {
    let subject = Subject::from(subject);
    let start = Instant::now();
    let mut in_flight = FuturesUnordered::new();
    let mut acked = 0u64;
    let settle = |r: Result<jetstream::publish::PublishAck, String>, acked: &mut u64| {
        r.map(|_| *acked += 1).map_err(err("plain publish ack"))
    };
    for counter in 1..=n {
        while in_flight.len() >= WINDOW {
            if let Some(r) = in_flight.next().await {
                settle(r, &mut acked)?;
            }
        }
        let sent = match msg_ids {
            None => js.publish(subject.clone(), body(counter)).await,
            Some(writer) => {
                let mut headers = HeaderMap::new();
                headers.insert(
                    async_nats::header::NATS_MESSAGE_ID,
                    msg_id_header(MsgId { writer, counter }),
                );
                js.publish_with_headers(subject.clone(), headers, body(counter))
                    .await
            }
        };
        let ack = sent.map_err(|e| err("plain publish")(e.to_string()))?;
        in_flight.push(async move { ack.await.map_err(|e| e.to_string()) });
    }
    while let Some(r) = in_flight.next().await {
        settle(r, &mut acked)?;
    }
    Ok(acked as f64 / start.elapsed().as_secs_f64())
}
