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
}

impl Timeline {
    /// Largest `source − mirror` over samples taken at the same tick.
    pub fn max_lag(&self) -> u64 {
        let Some(source) = self.zones.get(&self.source_zone) else {
            return 0;
        };
        let mut max = 0;
        for (zone, series) in &self.zones {
            if *zone == self.source_zone {
                continue;
            }
            // Both series are sampled on the same ticks; join on time.
            let mut src = source.iter().peekable();
            for &(t, seq) in series {
                while src.next_if(|&&(ts, _)| ts < t).is_some() {}
                if let Some(&&(ts, s)) = src.peek()
                    && ts == t
                {
                    max = max.max(s.saturating_sub(seq));
                }
            }
        }
        max
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
    fn max_lag_joins_samples_on_time() {
        let mut tl = Timeline {
            source_zone: "a".into(),
            ..Default::default()
        };
        tl.zones
            .insert("a".into(), vec![(0, 0), (250, 100), (500, 200), (750, 300)]);
        tl.zones
            .insert("b".into(), vec![(0, 0), (250, 100), (500, 100), (750, 300)]);
        tl.zones.insert("c".into(), vec![(500, 150)]);
        assert_eq!(tl.max_lag(), 100);
    }
}
