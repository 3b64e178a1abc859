//! Samples every zone's stream last sequence a few times a second: the picture
//! of the drill (source vs mirrors, partition window) and the max lag.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream;

use crate::nats::state::last_seq;

/// Last sequence of one zone over time: `(milliseconds since start, last_seq)`.
pub type Series = Vec<(u32, u64)>;

#[derive(Clone, Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Timeline {
    pub source_zone: String,
    pub zones: BTreeMap<String, Series>,
    /// Partition windows `(cut_ms, heal_ms)`.
    pub partitions: Vec<(u32, u32)>,
    /// Named moments (step starts) for the picture.
    pub marks: Vec<(u32, String)>,
    /// When a zone lagged for a known reason: `(zone, cause, from_ms, to_ms)`.
    pub windows: Vec<(String, LagCause, u32, u32)>,
}

/// Why a mirror is behind the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum LagCause {
    /// A partition cut it off (until it caught up after the heal).
    CutOff,
    /// It joined mid-drill and is copying the history.
    Backfill,
}

/// Largest lag of one zone, by cause; `steady` is replication delay outside
/// any window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LagByCause {
    pub cut_off: u64,
    pub backfill: u64,
    pub steady: u64,
}

impl Timeline {
    /// Largest `source − mirror` per mirror zone and cause, over samples taken
    /// at the same tick, so a drill's "max lag" means one thing.
    pub fn lag_by_cause(&self) -> BTreeMap<String, LagByCause> {
        let mut out = BTreeMap::new();
        for (zone, series) in self.lag_series() {
            let lag: &mut LagByCause = out.entry(zone.clone()).or_default();
            for (t, behind) in series {
                let cause = self
                    .windows
                    .iter()
                    .find(|(z, _, from, to)| *z == zone && (*from..=*to).contains(&t))
                    .map(|w| w.1);
                let slot = match cause {
                    Some(LagCause::CutOff) => &mut lag.cut_off,
                    Some(LagCause::Backfill) => &mut lag.backfill,
                    None => &mut lag.steady,
                };
                *slot = (*slot).max(behind);
            }
        }
        out
    }

    /// `source − mirror` over time per mirror zone, from samples taken at the
    /// same tick (the picture's lag panel and [`Self::lag_by_cause`]).
    pub fn lag_series(&self) -> BTreeMap<String, Series> {
        let mut out = BTreeMap::new();
        let Some(source) = self.zones.get(&self.source_zone) else {
            return out;
        };
        for (zone, series) in &self.zones {
            if *zone == self.source_zone {
                continue;
            }
            let lag: &mut Series = out.entry(zone.clone()).or_default();
            let mut src = source.iter().peekable();
            for &(t, seq) in series {
                while src.next_if(|&&(ts, _)| ts < t).is_some() {}
                let Some(&&(ts, s)) = src.peek() else { break };
                if ts == t {
                    lag.push((t, s.saturating_sub(seq)));
                }
            }
        }
        out
    }
}

/// Zones the sampler watches; the engine adds the temporary zone when it joins.
pub type Watched = Arc<Mutex<Vec<(String, jetstream::Context)>>>;

pub struct Sampler {
    timeline: Arc<Mutex<Timeline>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    pub fn start(
        source_zone: &str,
        stream: &str,
        watched: Watched,
        epoch: Instant,
        every: Duration,
    ) -> Self {
        let timeline = Arc::new(Mutex::new(Timeline {
            source_zone: source_zone.to_string(),
            ..Default::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let (timeline, stop, stream) = (timeline.clone(), stop.clone(), stream.to_string());
            async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    let t = epoch.elapsed().as_millis() as u32;
                    let zones = watched.lock().expect("watched").clone();
                    let reads = zones.iter().map(|(name, js)| {
                        let stream = stream.clone();
                        async move { (name.clone(), last_seq(js, &stream).await.ok()) }
                    });
                    let seqs = futures::future::join_all(reads).await;
                    let mut tl = timeline.lock().expect("timeline");
                    for (zone, seq) in seqs {
                        if let Some(seq) = seq {
                            tl.zones.entry(zone).or_default().push((t, seq));
                        }
                    }
                }
            }
        });
        Self {
            timeline,
            stop,
            task,
        }
    }

    pub fn mark(&self, at_ms: u32, label: impl Into<String>) {
        self.timeline
            .lock()
            .expect("timeline")
            .marks
            .push((at_ms, label.into()));
    }

    pub fn partition(&self, cut_ms: u32, heal_ms: u32) {
        self.timeline
            .lock()
            .expect("timeline")
            .partitions
            .push((cut_ms, heal_ms));
    }

    pub fn window(&self, zone: &str, cause: LagCause, from_ms: u32, to_ms: u32) {
        self.timeline.lock().expect("timeline").windows.push((
            zone.to_string(),
            cause,
            from_ms,
            to_ms,
        ));
    }

    pub fn snapshot(&self) -> Timeline {
        self.timeline.lock().expect("timeline").clone()
    }

    pub async fn finish(self) -> Timeline {
        self.stop.store(true, Ordering::Relaxed);
        let _ = tokio::time::timeout(Duration::from_secs(2), self.task).await;
        self.timeline.lock().expect("timeline").clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_split_by_cause() {
        let mut tl = Timeline {
            source_zone: "a".into(),
            ..Default::default()
        };
        tl.zones.insert(
            "a".into(),
            vec![(0, 10), (250, 100), (500, 200), (750, 3000), (1000, 3000)],
        );
        tl.zones.insert(
            "b".into(),
            vec![(0, 5), (250, 100), (500, 100), (750, 3000), (1000, 3000)],
        );
        tl.zones
            .insert("joiner".into(), vec![(750, 0), (1000, 3000)]);
        tl.windows.push(("b".into(), LagCause::CutOff, 250, 600));
        tl.windows
            .push(("joiner".into(), LagCause::Backfill, 700, 1000));
        let lag = tl.lag_by_cause();
        assert_eq!(
            lag["b"],
            LagByCause {
                cut_off: 100,
                backfill: 0,
                steady: 5
            }
        );
        assert_eq!(lag["joiner"].backfill, 3000);
        assert_eq!(lag["joiner"].cut_off, 0);
    }
}
