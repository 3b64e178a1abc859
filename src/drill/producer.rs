//! The drill's producer: unique ids, payload hash, `Nats-Msg-Id` for the
//! stream's de-duplication, a bounded window of in-flight PubAcks, and a log of
//! every attempt (attempted) and every PubAck (acked).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream;
use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::checker::SentLog;
use super::record::{MsgId, Sent, hash, msg_id_header, payload};

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
    writer: u32,
    log: Arc<Mutex<SentLog>>,
}

impl Producer {
    pub fn new(
        client: async_nats::Client,
        js: jetstream::Context,
        writer: u32,
        settings: ProducerSettings,
    ) -> Self {
        Self {
            client,
            js,
            settings,
            writer,
            log: Arc::new(Mutex::new(SentLog::new(writer))),
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
        let mut in_flight = FuturesUnordered::new();
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
            let (index, id, body) = {
                let mut log = self.log.lock().expect("producer log");
                let id = MsgId {
                    writer: self.writer,
                    counter: log.entries.len() as u64 + 1,
                };
                let body = payload(id, self.settings.payload_bytes);
                log.entries.push(Sent {
                    id,
                    hash: hash(&body),
                    seq: 0,
                    phase,
                });
                (log.entries.len() - 1, id, body)
            };
            stats.attempted += 1;
            let mut headers = HeaderMap::new();
            headers.insert("Nats-Msg-Id", msg_id_header(id).as_str());
            match self
                .js
                .publish_with_headers(self.settings.subject.clone(), headers, body)
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

    fn settle(&self, (index, result): (usize, Result<u64, String>), stats: &mut PhaseStats) {
        match result {
            Ok(seq) => {
                self.log.lock().expect("producer log").entries[index].seq = seq;
                stats.acked += 1;
            }
            Err(e) => {
                tracing::debug!(error = %e, "publish not acked");
                stats.failed += 1;
            }
        }
    }
}
