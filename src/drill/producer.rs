//! The drill's producer: unique ids, payload hash, `Nats-Msg-Id` for the
//! stream's de-duplication, a bounded window of in-flight PubAcks, and a log of
//! every attempt (attempted) and every PubAck (acked).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::header::NATS_MESSAGE_ID;
use async_nats::jetstream;
use async_nats::{HeaderMap, Subject};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::checker::SentLog;
use super::record::{ID_PREFIX, MsgId, msg_id_header, write_payload};

/// Payloads cut from one allocation: one malloc per this many messages,
/// unless that would take more than [`MAX_BLOCK_BYTES`].
const PAYLOADS_PER_BLOCK: usize = 64;
const MAX_BLOCK_BYTES: usize = 64 * 1024;

/// The headers and body of `id`'s publish: its `Nats-Msg-Id` (so the stream
/// drops a retried publish) and the payload derived from the id, cut from
/// `block` (refilled when it runs out; a block is freed once every payload
/// cut from it has been sent).
pub fn outgoing(id: MsgId, payload_bytes: usize, block: &mut BytesMut) -> (HeaderMap, Bytes) {
    let mut headers = HeaderMap::new();
    // The standard name needs no parsing; the value's String is moved in, not copied.
    headers.insert(NATS_MESSAGE_ID, msg_id_header(id));
    let size = payload_bytes.max(ID_PREFIX);
    if block.capacity() < size {
        *block =
            BytesMut::with_capacity((size * PAYLOADS_PER_BLOCK).min(MAX_BLOCK_BYTES).max(size));
    }
    write_payload(id, size, block);
    (headers, block.split().freeze())
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProducerSettings {
    pub subject: String,
    pub payload_bytes: usize,
    /// 0: as fast as the ack window allows.
    pub rate_per_second: u64,
    /// PubAcks awaited at once.
    pub window: usize,
}

/// What a phase of publishing achieved.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseStats {
    pub attempted: u64,
    pub acked: u64,
    pub failed: u64,
    pub seconds: f64,
}

impl PhaseStats {
    pub fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.acked as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// The producer's connection as seen from outside: claim 4 shows it did not
/// change while a zone joined.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProducerIdentity {
    pub server_id: String,
    pub client_id: u64,
    pub connects: u64,
    pub subject: String,
}

pub struct Producer {
    client: async_nats::Client,
    js: jetstream::Context,
    settings: ProducerSettings,
    log: Arc<Mutex<SentLog>>,
}

impl Producer {
    /// Publishes under `log`'s writer id with `log`'s payload size, recording
    /// every attempt and PubAck there (the zones' consumers judge against it).
    pub fn new(
        client: async_nats::Client,
        js: jetstream::Context,
        log: Arc<Mutex<SentLog>>,
        settings: ProducerSettings,
    ) -> Self {
        Self {
            client,
            js,
            settings,
            log,
        }
    }

    pub fn settings(&self) -> &ProducerSettings {
        &self.settings
    }

    /// Shared view of everything attempted so far.
    pub fn log(&self) -> Arc<Mutex<SentLog>> {
        self.log.clone()
    }

    pub fn identity(&self) -> ProducerIdentity {
        let info = self.client.server_info();
        ProducerIdentity {
            server_id: info.server_id,
            client_id: info.client_id,
            connects: self
                .client
                .statistics()
                .connects
                .load(std::sync::atomic::Ordering::Relaxed),
            subject: self.settings.subject.clone(),
        }
    }

    /// Publishes `count` messages tagged with `phase`, calling `progress(done)`
    /// now and then. Failures are recorded, never retried with a new id.
    pub async fn publish(
        &self,
        phase: u16,
        count: u64,
        progress: &(dyn Fn(u64) + Sync),
    ) -> PhaseStats {
        let start = Instant::now();
        let mut stats = PhaseStats::default();
        self.log.lock().expect("producer log").abandon_unsettled();
        let mut in_flight = FuturesUnordered::new();
        // One Subject for the phase: each publish then clones a refcount, not a String.
        let subject = Subject::from(self.settings.subject.as_str());
        let mut block = BytesMut::new();
        let interval = (self.settings.rate_per_second > 0)
            .then(|| Duration::from_secs_f64(1.0 / self.settings.rate_per_second as f64));
        for i in 0..count {
            if let Some(interval) = interval {
                let due = start + interval.mul_f64(i as f64);
                // Drain acks while waiting for the next slot, so the window never stalls the rate.
                while Instant::now() < due {
                    tokio::select! {
                        Some(done) = in_flight.next(), if !in_flight.is_empty() => self.settle(done, &mut stats),
                        _ = tokio::time::sleep_until(due.into()) => {}
                    }
                }
            }
            while in_flight.len() >= self.settings.window.max(1) {
                if let Some(done) = in_flight.next().await {
                    self.settle(done, &mut stats);
                }
            }
            let id = self.log.lock().expect("producer log").attempt(phase);
            let (headers, body) = outgoing(id, self.settings.payload_bytes, &mut block);
            let index = id.counter;
            stats.attempted += 1;
            match self
                .js
                .publish_with_headers(subject.clone(), headers, body)
                .await
            {
                Ok(ack) => in_flight.push(async move {
                    (
                        index,
                        ack.await.map(|a| a.sequence).map_err(|e| e.to_string()),
                    )
                }),
                Err(e) => self.settle((index, Err(e.to_string())), &mut stats),
            }
            if i % 256 == 0 {
                progress(i);
            }
        }
        while let Some(done) = in_flight.next().await {
            self.settle(done, &mut stats);
        }
        progress(count);
        stats.seconds = start.elapsed().as_secs_f64();
        stats
    }

    fn settle(&self, (counter, result): (u64, Result<u64, String>), stats: &mut PhaseStats) {
        let mut log = self.log.lock().expect("producer log");
        match result {
            Ok(seq) => {
                log.settle(counter, Some(seq));
                stats.acked += 1;
            }
            Err(e) => {
                log.settle(counter, None);
                tracing::debug!(error = %e, "publish not acked");
                stats.failed += 1;
            }
        }
    }
}
