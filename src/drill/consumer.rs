//! One durable pull consumer per zone with explicit acks, recording every
//! message it read with the stream sequence it came from. It can be paused to
//! show that other zones progress on their own.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::checker::{SentLog, ZoneCheck, ZoneTally};
use super::record::{Read, hash, parse_id};

/// A consumer's position as the server sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Position {
    pub ack_floor: u64,
    pub pending: u64,
    pub ack_pending: u64,
}

#[derive(Debug, Default)]
pub struct ReaderStats {
    pub fetch_errors: AtomicU64,
    pub ack_errors: AtomicU64,
    pub reads: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

/// A writer whose messages a reader judges: its log, and for an aggregate
/// of the sources topology the zone it writes in (`None`: the stream holds
/// the writer's messages at the sequences they were acked at).
#[derive(Clone)]
pub struct Writer {
    pub log: Arc<Mutex<SentLog>>,
    pub origin: Option<String>,
}

pub struct ZoneReader {
    pub zone: String,
    consumer: jetstream::consumer::PullConsumer,
    stream: jetstream::stream::Stream,
    durable: String,
    judge: Arc<Judge>,
    stats: Arc<ReaderStats>,
    paused: watch::Sender<bool>,
    /// `true` while the read loop is parked by a pause (no batch in hand).
    idle: watch::Receiver<bool>,
    stop: Arc<AtomicBool>,
    task: Option<JoinHandle<()>>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot create consumer {durable} on stream {stream} in zone {zone}: {message}")]
pub struct ConsumerError {
    pub zone: String,
    pub stream: String,
    pub durable: String,
    pub message: String,
}

impl ZoneReader {
    /// Creates (or binds to) durable `durable` delivering the stream from
    /// `first_seq` (the run's own first sequence: earlier runs' messages are
    /// not this run's to judge) and starts reading, judging each read against
    /// its writer's log as it arrives (reads of no writer listed count as
    /// foreign in the first writer's tally).
    pub async fn start(
        zone: &str,
        js: &jetstream::Context,
        stream_name: &str,
        durable: &str,
        first_seq: u64,
        writers: &[Writer],
        epoch: Instant,
    ) -> Result<Self, ConsumerError> {
        let err = |message: String| ConsumerError {
            zone: zone.into(),
            stream: stream_name.into(),
            durable: durable.into(),
            message,
        };
        let stream = js
            .get_stream(stream_name)
            .await
            .map_err(|e| err(e.to_string()))?;
        let config = pull::Config {
            durable_name: Some(durable.to_string()),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            deliver_policy: jetstream::consumer::DeliverPolicy::ByStartSequence {
                start_sequence: first_seq.max(1),
            },
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 20_000,
            // A crashed drill leaves no consumer behind for long.
            inactive_threshold: Duration::from_secs(600),
            ..Default::default()
        };
        let consumer = stream
            .get_or_create_consumer(durable, config)
            .await
            .map_err(|e| err(e.to_string()))?;
        let (paused, paused_rx) = watch::channel(false);
        let (idle_tx, idle) = watch::channel(false);
        let mut reader = Self {
            zone: zone.to_string(),
            consumer,
            stream,
            durable: durable.to_string(),
            judge: Arc::new(Judge::new(zone, writers)),
            stats: Arc::new(ReaderStats::default()),
            paused,
            idle,
            stop: Arc::new(AtomicBool::new(false)),
            task: None,
        };
        reader.task = Some(tokio::spawn(read_loop(
            reader.consumer.clone(),
            reader.judge.clone(),
            reader.stats.clone(),
            paused_rx,
            idle_tx,
            reader.stop.clone(),
            epoch,
        )));
        Ok(reader)
    }

    /// Pauses and waits until the read loop has finished the batch in hand,
    /// so nothing is read or acked after this returns.
    pub async fn pause(&self) {
        self.paused.send_replace(true);
        let mut idle = self.idle.clone();
        let _ = tokio::time::timeout(Duration::from_secs(5), idle.wait_for(|i| *i)).await;
    }

    pub fn resume(&self) {
        self.paused.send_replace(false);
    }

    pub fn is_paused(&self) -> bool {
        *self.paused.borrow()
    }

    pub fn read_count(&self) -> u64 {
        self.stats.reads.load(Ordering::Relaxed)
    }

    pub fn stats(&self) -> &ReaderStats {
        &self.stats
    }

    /// What this zone's reads showed so far, one check per writer, each
    /// finished on its writer's log as it is now.
    pub fn checks(&self) -> Vec<ZoneCheck> {
        self.judge
            .writers
            .iter()
            .map(|w| {
                let log = w.log.lock().expect("log");
                w.tally.lock().expect("tally").clone().finish(&log)
            })
            .collect()
    }

    /// How many acked messages of `writer`'s `phases` this zone has read.
    pub fn read_acked_in(&self, writer: u32, phases: &[u16]) -> u64 {
        self.judge
            .writers
            .iter()
            .find(|w| w.writer == writer)
            .map_or(0, |w| {
                let log = w.log.lock().expect("log");
                w.tally.lock().expect("tally").read_acked_in(&log, phases)
            })
    }

    /// Ack floor and pending counts as the server sees them.
    pub async fn position(&self) -> Result<Position, String> {
        let info = self.consumer.get_info().await.map_err(|e| e.to_string())?;
        Ok(Position {
            ack_floor: info.ack_floor.stream_sequence,
            pending: info.num_pending,
            ack_pending: info.num_ack_pending as u64,
        })
    }

    /// Stops reading and deletes the durable consumer.
    pub async fn close(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(3), task).await;
        }
        if let Err(e) = self.stream.delete_consumer(&self.durable).await {
            tracing::debug!(zone = %self.zone, error = %e, "consumer not deleted (it expires on its own)");
        }
    }
}

impl Drop for ZoneReader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Where each read is judged: against its writer's log, into that writer's
/// tally for this zone.
struct Judge {
    writers: Vec<Judged>,
}

struct Judged {
    writer: u32,
    log: Arc<Mutex<SentLog>>,
    tally: Mutex<ZoneTally>,
}

impl Judge {
    fn new(zone: &str, writers: &[Writer]) -> Self {
        let writers = writers
            .iter()
            .map(|w| Judged {
                writer: w.log.lock().expect("log").writer,
                log: w.log.clone(),
                tally: Mutex::new(match &w.origin {
                    Some(origin) => ZoneTally::aggregate(zone, origin),
                    None => ZoneTally::new(zone),
                }),
            })
            .collect();
        Self { writers }
    }

    fn read(&self, read: Read) {
        let Some(w) = self
            .writers
            .iter()
            .find(|w| w.writer == read.id.writer)
            .or(self.writers.first())
        else {
            return;
        };
        // Lock order: log, then tally (the producer takes only the log).
        let log = w.log.lock().expect("log");
        w.tally.lock().expect("tally").observe(&log, read);
    }
}

async fn read_loop(
    consumer: jetstream::consumer::PullConsumer,
    judge: Arc<Judge>,
    stats: Arc<ReaderStats>,
    mut paused: watch::Receiver<bool>,
    idle: watch::Sender<bool>,
    stop: Arc<AtomicBool>,
    epoch: Instant,
) {
    let fail = |counter: &AtomicU64, e: String| {
        counter.fetch_add(1, Ordering::Relaxed);
        *stats.last_error.lock().expect("last error") = Some(e);
    };
    while !stop.load(Ordering::Relaxed) {
        if *paused.borrow_and_update() {
            idle.send_replace(true);
            let _ = tokio::time::timeout(Duration::from_millis(200), paused.changed()).await;
            continue;
        }
        idle.send_replace(false);
        let batch = consumer
            .fetch()
            .max_messages(500)
            .expires(Duration::from_millis(300))
            .messages()
            .await;
        let mut batch = match batch {
            Ok(b) => b,
            Err(e) => {
                fail(&stats.fetch_errors, e.to_string());
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        while let Some(msg) = batch.next().await {
            let msg = match msg {
                Ok(m) => m,
                Err(e) => {
                    fail(&stats.fetch_errors, e.to_string());
                    break;
                }
            };
            let Ok(info) = msg.info() else { continue };
            let stream_seq = info.stream_sequence;
            let Some(id) = parse_id(&msg.payload) else {
                // Not ours (someone else writes to the stream): ack and move on.
                let _ = msg.ack().await;
                continue;
            };
            let read = Read {
                id,
                hash: hash(&msg.payload),
                stream_seq,
                at_ms: epoch.elapsed().as_millis() as u32,
            };
            match msg.ack().await {
                Ok(()) => {
                    judge.read(read);
                    stats.reads.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => fail(&stats.ack_errors, e.to_string()),
            }
        }
    }
}
