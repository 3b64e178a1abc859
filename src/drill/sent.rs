//! Everything one writer attempted, in about one bit per message: a payload is
//! a function of its id (so its hash is recomputed, never stored), a single
//! writer's acked sequences run as counter + offset (only the breaks are
//! kept), and phases are counter ranges.

use std::collections::BTreeMap;

use super::record::{MsgId, Sent, hash, payload};

/// A fixed-size bit set that grows as counters are attempted.
#[derive(Clone, Debug, Default)]
pub struct Bits {
    words: Vec<u64>,
}

impl Bits {
    pub fn get(&self, i: usize) -> bool {
        self.words
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
    pub fn set(&mut self, i: usize) {
        if self.words.len() <= i / 64 {
            self.words.resize(i / 64 + 1, 0);
        }
        self.words[i / 64] |= 1 << (i % 64);
    }
    pub fn bytes(&self) -> usize {
        self.words.capacity() * 8
    }
}

/// What the log knows about one counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    /// Published, no PubAck or error yet.
    InFlight,
    Failed,
    Acked(u64),
}

#[derive(Clone, Debug, Default)]
pub struct SentLog {
    pub writer: u32,
    payload_bytes: usize,
    attempted: u64,
    acked: u64,
    /// Bit `counter - 1` for counters below `folded`: acked.
    acked_bits: Bits,
    /// Acked counter `c` of run `(c0, s0)` (the last with `c0 <= c`) was
    /// acked at `s0 + c - c0`; a failure breaks the run.
    runs: Vec<(u64, u64)>,
    /// Counters settled out of order (acks return unordered), folded into
    /// `runs` once every lower counter has settled; at most the ack window.
    pending: BTreeMap<u64, Option<u64>>,
    /// Every counter `< folded` is settled and folded.
    folded: u64,
    /// `(phase, first counter)`, in counter order.
    phases: Vec<(u16, u64)>,
}

impl SentLog {
    pub fn new(writer: u32, payload_bytes: usize) -> Self {
        Self {
            writer,
            payload_bytes,
            folded: 1,
            ..Default::default()
        }
    }

    pub fn payload_bytes(&self) -> usize {
        self.payload_bytes
    }

    /// Registers the next publish of `phase` and returns its id.
    pub fn attempt(&mut self, phase: u16) -> MsgId {
        self.attempted += 1;
        if self.phases.last().is_none_or(|&(p, _)| p != phase) {
            self.phases.push((phase, self.attempted));
        }
        MsgId {
            writer: self.writer,
            counter: self.attempted,
        }
    }

    /// Records the outcome of `counter`'s publish (`None`: no PubAck).
    pub fn settle(&mut self, counter: u64, seq: Option<u64>) {
        if counter < self.folded || counter == 0 || counter > self.attempted {
            return;
        }
        let seq = seq.filter(|s| *s != 0);
        if counter != self.folded {
            self.pending.insert(counter, seq);
            return;
        }
        // Acks mostly return in order: fold at once, no trip through `pending`.
        self.pending.remove(&counter);
        if let Some(seq) = seq {
            self.fold_ack(counter, seq);
        }
        self.folded += 1;
        self.fold_pending();
    }

    /// Folds the settled counters of `pending` that now follow `folded`.
    fn fold_pending(&mut self) {
        while let Some(seq) = self.pending.remove(&self.folded) {
            if let Some(seq) = seq {
                self.fold_ack(self.folded, seq);
            }
            self.folded += 1;
        }
    }

    fn fold_ack(&mut self, counter: u64, seq: u64) {
        self.acked += 1;
        self.acked_bits.set((counter - 1) as usize);
        let continues = self
            .runs
            .last()
            .is_some_and(|&(c0, s0)| s0 + (counter - c0) == seq);
        if !continues {
            self.runs.push((counter, seq));
        }
    }

    /// Publishes that will never settle (their PubAck future was dropped by a
    /// step timeout) count as failed, so later acks fold instead of piling up.
    pub fn abandon_unsettled(&mut self) {
        for counter in self.folded..=self.attempted {
            self.pending.entry(counter).or_insert(None);
        }
        self.fold_pending();
    }

    pub fn attempted(&self) -> u64 {
        self.attempted
    }

    /// Acked so far (settled in order; the few acks still out of order wait).
    pub fn acked(&self) -> u64 {
        self.acked + self.pending.values().filter(|s| s.is_some()).count() as u64
    }

    pub fn settled(&self, counter: u64) -> Settled {
        if counter >= self.folded {
            return match self.pending.get(&counter) {
                Some(Some(seq)) => Settled::Acked(*seq),
                Some(None) => Settled::Failed,
                None => Settled::InFlight,
            };
        }
        if !self.acked_bits.get((counter - 1) as usize) {
            return Settled::Failed;
        }
        let i = self.runs.partition_point(|&(c0, _)| c0 <= counter) - 1;
        let (c0, s0) = self.runs[i];
        Settled::Acked(s0 + (counter - c0))
    }

    /// The acked sequence of `counter`; 0 when not acked (yet).
    pub fn seq(&self, counter: u64) -> u64 {
        match self.settled(counter) {
            Settled::Acked(seq) => seq,
            _ => 0,
        }
    }

    /// The payload hash `id` was published with.
    pub fn hash_of(&self, id: MsgId) -> u64 {
        hash(&payload(id, self.payload_bytes))
    }

    pub fn phase_of(&self, counter: u64) -> u16 {
        let i = self.phases.partition_point(|&(_, c)| c <= counter);
        self.phases.get(i.wrapping_sub(1)).map_or(0, |&(p, _)| p)
    }

    /// The attempt behind `id`, if this writer made it.
    pub fn get(&self, id: MsgId) -> Option<Sent> {
        if id.writer != self.writer || id.counter == 0 || id.counter > self.attempted {
            return None;
        }
        Some(Sent {
            id,
            hash: self.hash_of(id),
            seq: self.seq(id.counter),
            phase: self.phase_of(id.counter),
        })
    }

    /// Every attempt in counter order, hashes left out (see [`hash_of`](Self::hash_of)).
    pub fn iter(&self) -> impl Iterator<Item = (MsgId, u64)> + '_ {
        (1..=self.attempted).map(|counter| {
            (
                MsgId {
                    writer: self.writer,
                    counter,
                },
                self.seq(counter),
            )
        })
    }

    /// Acked attempts of the given phases.
    pub fn acked_in(&self, phases: &[u16]) -> u64 {
        self.iter()
            .filter(|&(id, seq)| seq != 0 && phases.contains(&self.phase_of(id.counter)))
            .count() as u64
    }

    /// The id acked at `seq`, if any (for readable mismatch reports).
    pub fn acked_at(&self, seq: u64) -> Option<MsgId> {
        let id = |counter| MsgId {
            writer: self.writer,
            counter,
        };
        let in_runs = self
            .runs
            .partition_point(|&(_, s0)| s0 <= seq)
            .checked_sub(1)
            .and_then(|i| {
                let (c0, s0) = self.runs[i];
                let counter = c0 + (seq - s0);
                let end = self.runs.get(i + 1).map_or(self.folded, |&(c, _)| c);
                (counter < end && self.seq(counter) == seq).then(|| id(counter))
            });
        in_runs.or_else(|| {
            self.pending
                .iter()
                .find_map(|(&c, &s)| (s == Some(seq)).then(|| id(c)))
        })
    }

    /// Heap bytes held, for the benchmark's per-message figure.
    pub fn heap_bytes(&self) -> usize {
        self.acked_bits.bytes() + self.runs.capacity() * 16 + self.phases.capacity() * 16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_are_kept_as_runs_broken_by_failures() {
        let mut l = SentLog::new(3, 64);
        for _ in 0..10 {
            l.attempt(0);
        }
        // Acks return out of order; counter 4 failed, so 5.. sit one lower.
        for (c, s) in [(2, Some(2)), (1, Some(1)), (3, Some(3)), (5, Some(4))] {
            l.settle(c, s);
        }
        assert_eq!(l.settled(5), Settled::Acked(4), "pending until 4 settles");
        l.settle(4, None);
        for c in 6..=10 {
            l.settle(c, Some(c - 1));
        }
        assert_eq!(l.runs, vec![(1, 1), (5, 4)]);
        assert_eq!((l.attempted(), l.acked()), (10, 9));
        assert_eq!(l.settled(4), Settled::Failed);
        assert_eq!(l.seq(10), 9);
        assert_eq!(l.acked_at(9).map(|id| id.counter), Some(10));
        assert_eq!(l.acked_at(4).map(|id| id.counter), Some(5));
        assert_eq!(l.acked_at(10), None);
    }

    #[test]
    fn phases_are_counter_ranges() {
        let mut l = SentLog::new(1, 32);
        for p in [0, 0, 1, 1, 1, 3] {
            let id = l.attempt(p);
            l.settle(id.counter, Some(id.counter + 100));
        }
        assert_eq!((l.phase_of(1), l.phase_of(3), l.phase_of(6)), (0, 1, 3));
        assert_eq!(l.acked_in(&[1, 3]), 4);
        let got = l
            .get(MsgId {
                writer: 1,
                counter: 2,
            })
            .unwrap();
        assert_eq!((got.seq, got.phase), (102, 0));
        assert_eq!(got.hash, hash(&payload(got.id, 32)));
    }

    #[test]
    fn unsettled_counters_are_in_flight() {
        let mut l = SentLog::new(1, 32);
        l.attempt(0);
        l.attempt(0);
        l.settle(2, Some(7));
        assert_eq!(l.settled(1), Settled::InFlight);
        assert_eq!(l.settled(2), Settled::Acked(7));
        assert_eq!(l.acked(), 1);
        assert_eq!(l.acked_at(7).map(|i| i.counter), Some(2));
    }
}
