//! Judges what the producer and the consumers recorded, and nothing else:
//! lost = acked − read, duplicated = an id read more than once by one durable
//! consumer, reordered = a zone's stream sequence n does not carry the id and
//! hash the source acked at sequence n (holes show up as lost). An aggregate
//! of the sources topology interleaves several writers at sequences of its
//! own, so there reordered = a writer's message read after one it was acked
//! later than, or with another body. Messages of other writers (earlier runs,
//! other traffic) are counted, never judged.

use super::record::{MsgId, Read};

/// How many example ids a finding keeps; counts are always complete.
pub const EXAMPLES: usize = 20;

pub use super::sent::SentLog;
use super::sent::Settled;

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Mismatch {
    pub stream_seq: u64,
    /// What the source acked at that sequence (`None`: nothing acked there).
    pub expected: Option<String>,
    pub got: String,
}

/// Findings for one zone's consumer.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ZoneCheck {
    pub zone: String,
    /// The sources topology: the zone whose writes these are (each aggregate
    /// is judged once per writing zone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Acked messages the zone should have read.
    pub expected: u64,
    pub read: u64,
    pub lost: u64,
    pub lost_ids: Vec<String>,
    /// `lost` split by where the holes sit among the acked messages (in
    /// publish order): before the first one read, between reads, after the
    /// last one read. Nothing read at all counts as prefix.
    pub lost_prefix: u64,
    pub lost_middle: u64,
    pub lost_suffix: u64,
    /// Read, but only after the catch-up timeout ran out (during its grace):
    /// late, not lost. Set by the engine, which knows when that was.
    pub late: u64,
    pub duplicated: u64,
    pub duplicated_ids: Vec<String>,
    pub reordered: u64,
    pub reordered_examples: Vec<Mismatch>,
    /// Carries this run's writer id, but that message was never attempted.
    pub unexpected: u64,
    /// Written by another writer (an earlier run, other traffic): not judged.
    pub foreign: u64,
    /// Read although its publish got no PubAck (it did reach the stream).
    pub recovered: u64,
}

impl ZoneCheck {
    /// "zone b", and whose writes, for messages.
    pub fn label(&self) -> String {
        match &self.origin {
            Some(origin) => format!("zone {} (the writes of zone {origin})", self.zone),
            None => format!("zone {}", self.zone),
        }
    }

    pub fn clean(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.reordered == 0 && self.unexpected == 0
    }
}

fn push_example<T>(list: &mut Vec<T>, item: impl FnOnce() -> T) {
    if list.len() < EXAMPLES {
        list.push(item());
    }
}

/// Two bits per attempted message: read 0, 1, 2, or 3 and more times.
#[derive(Clone, Debug, Default)]
struct ReadCounts {
    bytes: Vec<u8>,
}

impl ReadCounts {
    fn get(&self, i: usize) -> u8 {
        self.bytes
            .get(i / 4)
            .map_or(0, |b| (b >> ((i % 4) * 2)) & 3)
    }
    /// Counts one more read (saturating at 3) and returns the new count.
    fn bump(&mut self, i: usize) -> u8 {
        if self.bytes.len() <= i / 4 {
            self.bytes.resize(i / 4 + 1, 0);
        }
        let n = (self.get(i) + 1).min(3);
        let shift = (i % 4) * 2;
        self.bytes[i / 4] = (self.bytes[i / 4] & !(3 << shift)) | (n << shift);
        n
    }
}

/// What in-order means for the stream a zone reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Order {
    /// The source or a mirror of it: sequence n holds what the source acked at n.
    #[default]
    SameSequence,
    /// An aggregate: the writer's messages in the order they were acked, at
    /// whatever sequences the aggregate gave them. `last` is the highest
    /// acked sequence read so far.
    WriterOrder { last: u64 },
}

/// One zone's reads judged as they arrive, so nothing per read is kept:
/// two bits per attempted message, the counts, and capped examples. A read
/// whose publish has not settled yet (its PubAck is still on its way) waits
/// in `deferred`, at most the producer's ack window; reads are judged in
/// the order they were read.
#[derive(Clone, Debug, Default)]
pub struct ZoneTally {
    counts: ReadCounts,
    out: ZoneCheck,
    deferred: std::collections::VecDeque<Read>,
    order: Order,
}

impl ZoneTally {
    pub fn new(zone: &str) -> Self {
        Self {
            out: ZoneCheck {
                zone: zone.to_string(),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// The tally of one writing zone's messages in `zone`'s aggregate.
    pub fn aggregate(zone: &str, origin: &str) -> Self {
        let mut tally = Self::new(zone);
        tally.out.origin = Some(origin.to_string());
        tally.order = Order::WriterOrder { last: 0 };
        tally
    }

    /// Reads recorded so far, whoever wrote them.
    pub fn read(&self) -> u64 {
        self.out.read
    }

    /// Judges one read against what `log` knows now.
    pub fn observe(&mut self, log: &SentLog, r: Read) {
        // Reads wait in publish order for PubAcks that settle in about that
        // order: judge those that settled meanwhile, so the queue stays short.
        while let Some(first) = self.deferred.front()
            && log.settled(first.id.counter) != Settled::InFlight
        {
            let first = self.deferred.pop_front().expect("front exists");
            let settled = log.settled(first.id.counter);
            self.judge_first(log, first, settled);
        }
        self.out.read += 1;
        if r.id.writer != log.writer {
            self.out.foreign += 1;
            return;
        }
        if r.id.counter == 0 || r.id.counter > log.attempted() {
            self.out.unexpected += 1;
            return;
        }
        let n = self.counts.bump((r.id.counter - 1) as usize);
        if n == 2 {
            self.out.duplicated += 1;
            push_example(&mut self.out.duplicated_ids, || r.id.to_string());
        }
        if n > 1 {
            return;
        }
        match log.settled(r.id.counter) {
            Settled::InFlight => self.deferred.push_back(r),
            // Behind a read still waiting: judged after it, in read order.
            _ if !self.deferred.is_empty() => self.deferred.push_back(r),
            settled => self.judge_first(log, r, settled),
        }
    }

    fn judge_first(&mut self, log: &SentLog, r: Read, settled: Settled) {
        let published = log.hash_of(r.id);
        let mut expected = None;
        match (settled, &mut self.order) {
            (Settled::Acked(seq), Order::SameSequence)
                if seq == r.stream_seq && published == r.hash =>
            {
                return;
            }
            (Settled::Acked(seq), Order::WriterOrder { last }) => {
                if seq > *last && published == r.hash {
                    *last = seq;
                    return;
                }
                expected = Some(if published == r.hash {
                    format!("a message acked after sequence {last} (this one was acked at {seq})")
                } else {
                    format!("{} (hash {published:016x})", r.id)
                });
                *last = (*last).max(seq);
            }
            (Settled::Acked(_), Order::SameSequence) => {}
            // Stored without a PubAck: it reached the stream.
            _ => {
                self.out.recovered += 1;
                if published == r.hash {
                    return;
                }
            }
        }
        self.out.reordered += 1;
        // `expected` is filled in by `finish`: the PubAck for that sequence
        // may still be on its way.
        push_example(&mut self.out.reordered_examples, || Mismatch {
            stream_seq: r.stream_seq,
            expected,
            got: format!("{} (hash {:016x})", r.id, r.hash),
        });
    }

    /// The findings: deferred reads judged on the final log (a publish
    /// still unsettled now never got its PubAck), then what was never read.
    pub fn finish(mut self, log: &SentLog) -> ZoneCheck {
        for r in std::mem::take(&mut self.deferred) {
            let settled = match log.settled(r.id.counter) {
                Settled::InFlight => Settled::Failed,
                s => s,
            };
            self.judge_first(log, r, settled);
        }
        let read_acked = |counter: u64| self.counts.get((counter - 1) as usize) > 0;
        let acked = || {
            log.iter()
                .filter(|&(_, seq)| seq != 0)
                .map(|(id, _)| id.counter)
        };
        let first_read = acked().find(|&c| read_acked(c));
        let last_read = acked().filter(|&c| read_acked(c)).last();
        let mut out = self.out.clone();
        if self.order == Order::SameSequence {
            for m in &mut out.reordered_examples {
                m.expected = log
                    .acked_at(m.stream_seq)
                    .map(|id| format!("{id} (hash {:016x})", log.hash_of(id)));
            }
        }
        for counter in acked() {
            out.expected += 1;
            if read_acked(counter) {
                continue;
            }
            out.lost += 1;
            push_example(&mut out.lost_ids, || {
                MsgId {
                    writer: log.writer,
                    counter,
                }
                .to_string()
            });
            match (first_read, last_read) {
                (Some(f), _) if counter < f => out.lost_prefix += 1,
                (_, Some(l)) if counter > l => out.lost_suffix += 1,
                (Some(_), Some(_)) => out.lost_middle += 1,
                _ => out.lost_prefix += 1,
            }
        }
        out
    }

    /// How many acked messages of `phases` this zone has read.
    pub fn read_acked_in(&self, log: &SentLog, phases: &[u16]) -> u64 {
        log.iter()
            .filter(|&(id, seq)| {
                seq != 0
                    && phases.contains(&log.phase_of(id.counter))
                    && self.counts.get((id.counter - 1) as usize) > 0
            })
            .count() as u64
    }

    /// Heap bytes held, for the benchmark's per-message figure.
    pub fn heap_bytes(&self) -> usize {
        self.counts.bytes.capacity() + self.deferred.capacity() * std::mem::size_of::<Read>()
    }
}

/// Checks one zone's recorded reads against everything written (the
/// streaming tally over a finished history).
pub fn check_zone(zone: &str, log: &SentLog, reads: &[Read]) -> ZoneCheck {
    let mut tally = ZoneTally::new(zone);
    for r in reads {
        tally.observe(log, *r);
    }
    tally.finish(log)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::record::{hash, payload};

    fn log(n: u64) -> SentLog {
        let mut l = SentLog::new(1, 64);
        for c in 1..=n {
            l.attempt(0);
            l.settle(c, Some(c));
        }
        l
    }

    fn reads_of(l: &SentLog) -> Vec<Read> {
        l.iter()
            .map(|(id, seq)| Read {
                id,
                hash: hash(&payload(id, 64)),
                stream_seq: seq,
                at_ms: 0,
            })
            .collect()
    }

    #[test]
    fn a_complete_ordered_read_is_clean() {
        let l = log(100);
        let c = check_zone("a", &l, &reads_of(&l));
        assert!(c.clean(), "{c:?}");
        assert_eq!((c.expected, c.read), (100, 100));
    }

    #[test]
    fn missing_messages_are_lost_with_their_ids() {
        let l = log(10);
        let mut reads = reads_of(&l);
        reads.retain(|r| r.id.counter != 4 && r.id.counter != 7);
        let c = check_zone("b", &l, &reads);
        assert_eq!(c.lost, 2);
        assert_eq!(c.lost_ids, vec!["1-4", "1-7"]);
        assert_eq!(c.reordered, 0);
    }

    #[test]
    fn loss_is_split_into_prefix_middle_and_suffix() {
        let l = log(10);
        let mut reads = reads_of(&l);
        reads.retain(|r| ![1, 2, 5, 9, 10].contains(&r.id.counter));
        let c = check_zone("b", &l, &reads);
        assert_eq!(
            (c.lost, c.lost_prefix, c.lost_middle, c.lost_suffix),
            (5, 2, 1, 2)
        );
        let none = check_zone("b", &l, &[]);
        assert_eq!((none.lost, none.lost_prefix), (10, 10));
    }

    #[test]
    fn other_writers_are_foreign_not_unexpected() {
        let l = log(3);
        let mut reads = reads_of(&l);
        reads.push(Read {
            id: MsgId {
                writer: 2,
                counter: 1,
            },
            hash: 0,
            stream_seq: 4,
            at_ms: 0,
        });
        let c = check_zone("a", &l, &reads);
        assert_eq!((c.foreign, c.unexpected), (1, 0));
        assert!(c.clean(), "{c:?}");
    }

    #[test]
    fn an_id_read_twice_is_duplicated() {
        let l = log(5);
        let mut reads = reads_of(&l);
        reads.push(reads[2]);
        let c = check_zone("a", &l, &reads);
        assert_eq!(c.duplicated, 1);
        assert_eq!(c.duplicated_ids, vec!["1-3"]);
        assert_eq!(c.lost, 0);
    }

    #[test]
    fn swapped_sequences_are_reordered() {
        let l = log(5);
        let mut reads = reads_of(&l);
        let (a, b) = (reads[1].stream_seq, reads[2].stream_seq);
        reads[1].stream_seq = b;
        reads[2].stream_seq = a;
        let c = check_zone("b", &l, &reads);
        assert_eq!(c.reordered, 2);
        assert_eq!(c.reordered_examples[0].stream_seq, 3);
        assert_eq!(
            c.reordered_examples[0]
                .expected
                .as_deref()
                .map(|s| s.starts_with("1-3")),
            Some(true)
        );
    }

    /// An aggregate: the writer's reads at the aggregate's own sequences,
    /// interleaved with another writer's.
    fn aggregate_reads(l: &SentLog, order: &[usize]) -> Vec<Read> {
        let mine = reads_of(l);
        let mut out = Vec::new();
        for (i, &k) in order.iter().enumerate() {
            let mut r = mine[k];
            r.stream_seq = 100 + 2 * i as u64;
            out.push(r);
            let other = payload(
                MsgId {
                    writer: 9,
                    counter: i as u64 + 1,
                },
                64,
            );
            out.push(Read {
                id: MsgId {
                    writer: 9,
                    counter: i as u64 + 1,
                },
                hash: hash(&other),
                stream_seq: 101 + 2 * i as u64,
                at_ms: 0,
            });
        }
        out
    }

    fn check_aggregate(l: &SentLog, reads: &[Read]) -> ZoneCheck {
        let mut tally = ZoneTally::aggregate("b", "a");
        for r in reads {
            tally.observe(l, *r);
        }
        tally.finish(l)
    }

    #[test]
    fn an_aggregate_judges_one_writer_by_its_ack_order_at_any_sequences() {
        let l = log(4);
        let c = check_aggregate(&l, &aggregate_reads(&l, &[0, 1, 2, 3]));
        assert!(c.clean(), "{c:?}");
        assert_eq!(
            (c.expected, c.foreign, c.origin.as_deref()),
            (4, 4, Some("a"))
        );

        let c = check_aggregate(&l, &aggregate_reads(&l, &[0, 2, 1, 3]));
        assert_eq!(c.reordered, 1, "{c:?}");
        let first = &c.reordered_examples[0];
        assert!(first.got.starts_with("1-2"), "{first:?}");
        assert!(
            first
                .expected
                .as_deref()
                .unwrap()
                .contains("after sequence 3"),
            "{first:?}"
        );

        let mut reads = aggregate_reads(&l, &[0, 1, 3]);
        reads[2].hash ^= 1;
        let c = check_aggregate(&l, &reads);
        assert_eq!((c.reordered, c.lost, c.lost_middle), (1, 1, 1), "{c:?}");
    }

    #[test]
    fn a_corrupted_body_is_caught_by_its_hash() {
        let l = log(3);
        let mut reads = reads_of(&l);
        reads[0].hash ^= 1;
        let c = check_zone("b", &l, &reads);
        assert_eq!(c.reordered, 1);
    }

    #[test]
    fn unacked_but_stored_is_recovered_not_lost_and_foreign_is_unexpected() {
        let mut l = SentLog::new(1, 64);
        for c in 1..=3 {
            l.attempt(0);
            l.settle(c, (c < 3).then_some(c));
        }
        let mut reads = reads_of(&l);
        reads[2].stream_seq = 3;
        reads[2].hash = hash(&payload(reads[2].id, 64));
        reads.push(Read {
            id: MsgId {
                writer: 1,
                counter: 9,
            },
            hash: 0,
            stream_seq: 4,
            at_ms: 0,
        });
        let c = check_zone("a", &l, &reads);
        assert_eq!(
            (c.expected, c.lost, c.recovered, c.unexpected),
            (2, 0, 1, 1)
        );
        assert!(!c.clean());
    }

    /// The checker as it was before it streamed: every read kept, judged at
    /// the end against fully stored attempts. The streaming tally must find
    /// exactly what it finds.
    mod reference {
        use super::super::{Mismatch, ZoneCheck, push_example};
        use crate::drill::record::{Read, Sent};

        pub fn check_zone(zone: &str, writer: u32, entries: &[Sent], reads: &[Read]) -> ZoneCheck {
            let mut out = ZoneCheck {
                zone: zone.to_string(),
                read: reads.len() as u64,
                ..Default::default()
            };
            let get = |r: &Read| {
                (r.id.writer == writer && r.id.counter > 0)
                    .then(|| entries.get((r.id.counter - 1) as usize))
                    .flatten()
            };
            let mut seen = vec![0u8; entries.len()];
            for r in reads {
                let Some(sent) = get(r) else {
                    if r.id.writer == writer {
                        out.unexpected += 1;
                    } else {
                        out.foreign += 1;
                    }
                    continue;
                };
                let slot = &mut seen[(r.id.counter - 1) as usize];
                *slot = slot.saturating_add(1);
                if *slot == 2 {
                    out.duplicated += 1;
                    push_example(&mut out.duplicated_ids, || r.id.to_string());
                }
                if *slot > 1 {
                    continue;
                }
                if !sent.acked() {
                    out.recovered += 1;
                    if sent.hash == r.hash {
                        continue;
                    }
                } else if sent.seq == r.stream_seq && sent.hash == r.hash {
                    continue;
                }
                out.reordered += 1;
                push_example(&mut out.reordered_examples, || Mismatch {
                    stream_seq: r.stream_seq,
                    expected: entries
                        .iter()
                        .find(|s| s.seq == r.stream_seq)
                        .map(|s| format!("{} (hash {:016x})", s.id, s.hash)),
                    got: format!("{} (hash {:016x})", r.id, r.hash),
                });
            }
            let read_acked = |i: usize| entries[i].acked() && seen[i] > 0;
            let first = (0..entries.len()).find(|&i| read_acked(i));
            let last = (0..entries.len()).rev().find(|&i| read_acked(i));
            for (i, sent) in entries.iter().enumerate() {
                if sent.acked() {
                    out.expected += 1;
                    if seen[i] == 0 {
                        out.lost += 1;
                        push_example(&mut out.lost_ids, || sent.id.to_string());
                        match (first, last) {
                            (Some(f), _) if i < f => out.lost_prefix += 1,
                            (_, Some(l)) if i > l => out.lost_suffix += 1,
                            (Some(_), Some(_)) => out.lost_middle += 1,
                            _ => out.lost_prefix += 1,
                        }
                    }
                }
            }
            out
        }
    }

    /// xorshift64*: deterministic random histories without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
        fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }
    }

    #[test]
    fn the_streaming_tally_judges_random_histories_like_the_recorded_checker() {
        use crate::drill::record::Sent;
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for trial in 0..400 {
            let n = 1 + rng.below(150);
            let size = 32 + rng.below(64) as usize;
            // The server stores most publishes (a sequence each); a stored
            // publish's PubAck may still be lost on the way back.
            let mut entries = Vec::new();
            let mut next_seq = 1 + rng.below(1000);
            let mut stored = Vec::new();
            for counter in 1..=n {
                let id = MsgId { writer: 1, counter };
                let mut seq = 0;
                if rng.chance(93) {
                    stored.push((id, next_seq));
                    if rng.chance(90) {
                        seq = next_seq;
                    }
                    next_seq += 1;
                }
                let phase = (counter * 3 / n.max(1)) as u16;
                entries.push(Sent {
                    id,
                    hash: hash(&payload(id, size)),
                    seq,
                    phase,
                });
            }
            // A zone's reads: the stored messages in order, some lost, some
            // twice, some corrupted or at a swapped sequence, and strangers.
            let mut reads = Vec::new();
            for &(id, seq) in &stored {
                if rng.chance(6) {
                    continue;
                }
                let mut r = Read {
                    id,
                    hash: hash(&payload(id, size)),
                    stream_seq: seq,
                    at_ms: 0,
                };
                if rng.chance(3) {
                    r.hash ^= 1;
                }
                if rng.chance(3) {
                    r.stream_seq += 1;
                }
                reads.push(r);
                if rng.chance(4) {
                    reads.push(r);
                }
                if rng.chance(2) {
                    reads.push(r);
                    reads.push(r);
                }
                if rng.chance(3) {
                    reads.push(Read {
                        id: MsgId {
                            writer: 2,
                            counter: id.counter,
                        },
                        ..r
                    });
                }
                if rng.chance(2) {
                    reads.push(Read {
                        id: MsgId {
                            writer: 1,
                            counter: n + 1 + rng.below(9),
                        },
                        ..r
                    });
                }
            }
            let want = reference::check_zone("z", 1, &entries, &reads);
            // The streaming side sees settles out of order and reads before
            // their PubAck settled.
            let mut log = SentLog::new(1, size);
            for e in &entries {
                assert_eq!(log.attempt(e.phase), e.id);
            }
            let mut settles: Vec<&Sent> = entries.iter().collect();
            for i in (1..settles.len()).rev() {
                settles.swap(i, rng.below(i as u64 + 1) as usize);
            }
            let mut tally = ZoneTally::new("z");
            let mut reads_left = reads.iter();
            for s in settles {
                log.settle(s.id.counter, (s.seq != 0).then_some(s.seq));
                for r in reads_left.by_ref().take(rng.below(3) as usize) {
                    tally.observe(&log, *r);
                }
            }
            for r in reads_left {
                tally.observe(&log, *r);
            }
            let mut got = tally.finish(&log);
            let mut want = want;
            // Deferred reads are judged later, so examples may come in another order.
            for c in [&mut got, &mut want] {
                c.reordered_examples
                    .sort_by(|a, b| (a.stream_seq, &a.got).cmp(&(b.stream_seq, &b.got)));
            }
            if want.reordered > EXAMPLES as u64 {
                got.reordered_examples.clear();
                want.reordered_examples.clear();
            }
            assert_eq!(got, want, "trial {trial}");
        }
    }
}
