//! Judges what the producer and the consumers recorded, and nothing else:
//! lost = acked − read, duplicated = an id read more than once by one durable
//! consumer, reordered = a zone's stream sequence n does not carry the id and
//! hash the source acked at sequence n (holes show up as lost). Messages of
//! other writers (earlier runs, other traffic) are counted, never judged.

use super::record::{MsgId, Read, Sent};

/// How many example ids a finding keeps; counts are always complete.
pub const EXAMPLES: usize = 20;

/// Everything one writer attempted, indexed by counter − 1.
#[derive(Clone, Debug, Default)]
pub struct SentLog {
    pub writer: u32,
    pub entries: Vec<Sent>,
}

impl SentLog {
    pub fn new(writer: u32) -> Self {
        Self {
            writer,
            entries: Vec::new(),
        }
    }
    pub fn get(&self, id: MsgId) -> Option<&Sent> {
        if id.writer != self.writer || id.counter == 0 {
            return None;
        }
        self.entries.get(usize::try_from(id.counter - 1).ok()?)
    }
    pub fn attempted(&self) -> u64 {
        self.entries.len() as u64
    }
    pub fn acked(&self) -> u64 {
        self.entries.iter().filter(|s| s.acked()).count() as u64
    }
}

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
    pub fn clean(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.reordered == 0 && self.unexpected == 0
    }
}

fn push_example<T>(list: &mut Vec<T>, item: impl FnOnce() -> T) {
    if list.len() < EXAMPLES {
        list.push(item());
    }
}

/// Checks one zone's reads against everything written.
pub fn check_zone(zone: &str, logs: &[SentLog], reads: &[Read]) -> ZoneCheck {
    let mut out = ZoneCheck {
        zone: zone.to_string(),
        read: reads.len() as u64,
        ..Default::default()
    };
    // One saturating counter per attempted message: constant memory per message.
    let mut seen: Vec<Vec<u8>> = logs.iter().map(|l| vec![0u8; l.entries.len()]).collect();
    for r in reads {
        let found = logs
            .iter()
            .enumerate()
            .find_map(|(i, l)| l.get(r.id).map(|s| (i, s)));
        let Some((log, sent)) = found else {
            if logs.iter().any(|l| l.writer == r.id.writer) {
                out.unexpected += 1;
            } else {
                out.foreign += 1;
            }
            continue;
        };
        let slot = &mut seen[log][(r.id.counter - 1) as usize];
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
            expected: acked_at(logs, r.stream_seq),
            got: format!("{} (hash {:016x})", r.id, r.hash),
        });
    }
    for (log, counts) in logs.iter().zip(&seen) {
        let read_acked = |(s, c): &(&Sent, &u8)| s.acked() && **c > 0;
        let pairs = || log.entries.iter().zip(counts);
        let first_read = pairs().position(|p| read_acked(&p));
        let last_read = pairs().rposition(|p| read_acked(&p));
        for (i, (sent, &count)) in pairs().enumerate() {
            if sent.acked() {
                out.expected += 1;
                if count == 0 {
                    out.lost += 1;
                    push_example(&mut out.lost_ids, || sent.id.to_string());
                    match (first_read, last_read) {
                        (Some(f), _) if i < f => out.lost_prefix += 1,
                        (_, Some(l)) if i > l => out.lost_suffix += 1,
                        (Some(_), Some(_)) => out.lost_middle += 1,
                        _ => out.lost_prefix += 1,
                    }
                }
            }
        }
    }
    out
}

/// The id the source acked at `seq`, for a readable mismatch report.
fn acked_at(logs: &[SentLog], seq: u64) -> Option<String> {
    logs.iter()
        .flat_map(|l| &l.entries)
        .find(|s| s.seq == seq)
        .map(|s| format!("{} (hash {:016x})", s.id, s.hash))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::record::{hash, payload};

    fn log(n: u64) -> SentLog {
        let mut l = SentLog::new(1);
        for c in 1..=n {
            let id = MsgId {
                writer: 1,
                counter: c,
            };
            l.entries.push(Sent {
                id,
                hash: hash(&payload(id, 64)),
                seq: c,
                phase: 0,
            });
        }
        l
    }

    fn reads_of(l: &SentLog) -> Vec<Read> {
        l.entries
            .iter()
            .map(|s| Read {
                id: s.id,
                hash: s.hash,
                stream_seq: s.seq,
                at_ms: 0,
            })
            .collect()
    }

    #[test]
    fn a_complete_ordered_read_is_clean() {
        let l = log(100);
        let c = check_zone("a", std::slice::from_ref(&l), &reads_of(&l));
        assert!(c.clean(), "{c:?}");
        assert_eq!((c.expected, c.read), (100, 100));
    }

    #[test]
    fn missing_messages_are_lost_with_their_ids() {
        let l = log(10);
        let mut reads = reads_of(&l);
        reads.retain(|r| r.id.counter != 4 && r.id.counter != 7);
        let c = check_zone("b", std::slice::from_ref(&l), &reads);
        assert_eq!(c.lost, 2);
        assert_eq!(c.lost_ids, vec!["1-4", "1-7"]);
        assert_eq!(c.reordered, 0);
    }

    #[test]
    fn loss_is_split_into_prefix_middle_and_suffix() {
        let l = log(10);
        let mut reads = reads_of(&l);
        reads.retain(|r| ![1, 2, 5, 9, 10].contains(&r.id.counter));
        let c = check_zone("b", std::slice::from_ref(&l), &reads);
        assert_eq!(
            (c.lost, c.lost_prefix, c.lost_middle, c.lost_suffix),
            (5, 2, 1, 2)
        );
        let none = check_zone("b", std::slice::from_ref(&l), &[]);
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
        let c = check_zone("a", std::slice::from_ref(&l), &reads);
        assert_eq!((c.foreign, c.unexpected), (1, 0));
        assert!(c.clean(), "{c:?}");
    }

    #[test]
    fn an_id_read_twice_is_duplicated() {
        let l = log(5);
        let mut reads = reads_of(&l);
        reads.push(reads[2]);
        let c = check_zone("a", std::slice::from_ref(&l), &reads);
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
        let c = check_zone("b", std::slice::from_ref(&l), &reads);
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

    #[test]
    fn a_corrupted_body_is_caught_by_its_hash() {
        let l = log(3);
        let mut reads = reads_of(&l);
        reads[0].hash ^= 1;
        let c = check_zone("b", std::slice::from_ref(&l), &reads);
        assert_eq!(c.reordered, 1);
    }

    #[test]
    fn unacked_but_stored_is_recovered_not_lost_and_foreign_is_unexpected() {
        let mut l = log(3);
        l.entries[2].seq = 0;
        let mut reads = reads_of(&l);
        reads[2].stream_seq = 3;
        reads.push(Read {
            id: MsgId {
                writer: 1,
                counter: 9,
            },
            hash: 0,
            stream_seq: 4,
            at_ms: 0,
        });
        let c = check_zone("a", std::slice::from_ref(&l), &reads);
        assert_eq!(
            (c.expected, c.lost, c.recovered, c.unexpected),
            (2, 0, 1, 1)
        );
        assert!(!c.clean());
    }
}
