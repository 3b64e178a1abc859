//! Audits what one zone's stream *stores*, independent of what its consumers
//! read: a store can lose acked messages after they were delivered (Jepsen's
//! NATS finding), and only reading the stream itself shows the hole. The core
//! is pure and fed one stored message at a time, so memory is one bit per
//! attempted message plus a fixed number of examples, whatever the stream size.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{DeliverPolicy, pull},
    context::GetStreamErrorKind,
    stream,
};
use futures::StreamExt;

use super::checker::{EXAMPLES, SentLog};
use super::record::{MsgId, Sent, hash, parse_id};

/// The stream's size as stream info reported it when the audit began.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoredState {
    pub messages: u64,
    pub first_seq: u64,
    pub last_seq: u64,
}

impl From<&stream::State> for StoredState {
    fn from(s: &stream::State) -> Self {
        Self {
            messages: s.messages,
            first_seq: s.first_sequence,
            last_seq: s.last_sequence,
        }
    }
}

/// A stored message that is ours but not what the producer was acked for.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredMismatch {
    pub stream_seq: u64,
    /// What the producer was acked for at that sequence (`None`: nothing).
    pub expected: Option<String>,
    pub got: String,
}

/// One zone's stored stream compared with one writer's log.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredAuditResult {
    pub zone: String,
    pub stream: String,
    /// The sources topology: the zone whose writes an aggregate was audited for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// The run's first sequence: what lies below belongs to earlier traffic.
    pub from_seq: u64,
    pub messages: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    /// Stored messages read at `from_seq..=last_seq`, whoever wrote them.
    pub stored_from_run: u64,
    /// Acked messages of this writer at `seq >= from_seq`: what must be stored.
    pub expected: u64,
    pub missing: u64,
    /// Missing before the first acked message found (by acked sequence); all
    /// of `missing` when none was found.
    pub missing_prefix: u64,
    pub missing_middle: u64,
    /// Missing after the last acked message found: a lost tail.
    pub missing_suffix: u64,
    /// "seq 1042 (1-42)": the acked sequence and the id.
    pub missing_examples: Vec<String>,
    /// Acked messages absent where the stream shows they were removed: a
    /// gap in its stored sequences (fewer `messages` than sequences from
    /// `first_seq` to `last_seq`), or below its first sequence, the stream
    /// having gone past them. Not counted in `missing`. Only where messages
    /// sit at the sequences they were acked at (not an aggregate).
    pub removed: u64,
    /// The first removed messages' ids and sequences (the same messages, in order).
    pub removed_ids: Vec<String>,
    pub removed_seqs: Vec<u64>,
    /// This is the stream the writer's PubAcks came from (the source
    /// stream, or a zone's local stream): a removal here is the root of
    /// what every stream fed from it lacks.
    pub acked_here: bool,
    pub altered: u64,
    pub altered_examples: Vec<StoredMismatch>,
    pub added: u64,
    pub added_examples: Vec<String>,
    /// Stored although the publish got no PubAck; not a failure.
    pub recovered: u64,
    /// Other writers' or unparseable messages at `seq >= from_seq`; not a failure.
    pub foreign: u64,
    /// Messages the stream held below `from_seq` (what else it held).
    pub before_run: u64,
}

impl StoredAuditResult {
    pub fn clean(&self) -> bool {
        self.missing == 0 && self.removed == 0 && self.altered == 0 && self.added == 0
    }

    /// "zone b's stored stream EV", and whose writes, for messages.
    pub fn label(&self) -> String {
        let mut s = format!("zone {}'s stored stream", self.zone);
        if !self.stream.is_empty() {
            s.push_str(&format!(" {}", self.stream));
        }
        if let Some(origin) = &self.origin {
            s.push_str(&format!(" (the writes of zone {origin})"));
        }
        s
    }
}

/// The pure audit: call [`observe`](Self::observe) for every stored message in
/// sequence order, then [`finish`](Self::finish) with the stream's state.
pub struct StoredAudit<'a> {
    log: &'a SentLog,
    /// `Some(last acked sequence found)`: an aggregate, where the writer's
    /// messages sit at sequences of the aggregate's own, in ack order.
    writer_order: Option<u64>,
    /// Bit `counter - 1`: that id was found stored.
    seen: Vec<u64>,
    out: StoredAuditResult,
    below_from: u64,
    last_observed: u64,
}

impl<'a> StoredAudit<'a> {
    pub fn new(zone: &str, from_seq: u64, log: &'a SentLog) -> Self {
        Self {
            log,
            writer_order: None,
            seen: vec![0; (log.attempted() as usize).div_ceil(64)],
            out: StoredAuditResult {
                zone: zone.to_string(),
                from_seq,
                ..Default::default()
            },
            below_from: 0,
            last_observed: 0,
        }
    }

    /// The audit of `origin`'s writes in `zone`'s aggregate, read from
    /// `from_seq` (the aggregate's first sequence of the run): every message
    /// the writer got acked must be there once, in ack order.
    pub fn aggregate(zone: &str, origin: &str, from_seq: u64, log: &'a SentLog) -> Self {
        let mut audit = Self::new(zone, from_seq, log);
        audit.writer_order = Some(0);
        audit.out.origin = Some(origin.to_string());
        audit
    }

    /// Judges one stored message.
    pub fn observe(&mut self, stream_seq: u64, payload: &[u8]) {
        debug_assert!(
            stream_seq > self.last_observed,
            "stored messages come in sequence order"
        );
        self.last_observed = stream_seq;
        if stream_seq < self.out.from_seq {
            self.below_from += 1;
            return;
        }
        self.out.stored_from_run += 1;
        let Some(id) = parse_id(payload).filter(|id| id.writer == self.log.writer) else {
            self.out.foreign += 1;
            return;
        };
        let Some(sent) = self.log.get(id) else {
            self.out.added += 1;
            push(&mut self.out.added_examples, || {
                format!("seq {stream_seq} ({id}, never attempted)")
            });
            return;
        };
        let bit = (id.counter - 1) as usize;
        let (word, mask) = (bit / 64, 1u64 << (bit % 64));
        if self.seen[word] & mask != 0 {
            self.out.added += 1;
            push(&mut self.out.added_examples, || {
                format!("seq {stream_seq} ({id}, stored twice)")
            });
            return;
        }
        // Set even when altered: the id is stored, so it is not also missing.
        self.seen[word] |= mask;
        let got = hash(payload);
        let mut expected = None;
        if !sent.acked() {
            self.out.recovered += 1;
            if got == sent.hash {
                return;
            }
        } else if let Some(last) = self.writer_order.as_mut() {
            if sent.seq > *last && got == sent.hash {
                *last = sent.seq;
                return;
            }
            expected = Some(format!("a message acked after sequence {last}"));
            *last = (*last).max(sent.seq);
        } else if sent.seq == stream_seq && got == sent.hash {
            return;
        }
        self.out.altered += 1;
        let log = self.log;
        let expected = expected.or_else(|| acked_at(log, stream_seq));
        push(&mut self.out.altered_examples, || StoredMismatch {
            stream_seq,
            expected,
            got: describe(id, &sent, got),
        });
    }

    pub fn finish(self, state: StoredState) -> StoredAuditResult {
        let Self {
            log,
            seen,
            mut out,
            below_from,
            writer_order,
            ..
        } = self;
        out.messages = state.messages;
        out.first_seq = state.first_seq;
        out.last_seq = state.last_seq;
        // The reader skips what lies below `from_seq`; the count says what it held.
        out.before_run = below_from.max(state.messages.saturating_sub(out.stored_from_run));
        let is_seen = |id: MsgId| {
            let i = (id.counter - 1) as usize;
            seen[i / 64] & (1 << (i % 64)) != 0
        };
        // An aggregate owes every acked message of the run, whatever its sequence.
        let from = if writer_order.is_some() {
            0
        } else {
            out.from_seq
        };
        let owed = || log.iter().filter(move |&(_, seq)| seq != 0 && seq >= from);
        let mut found: Option<(u64, u64)> = None;
        for (id, seq) in owed() {
            if is_seen(id) {
                found = Some(found.map_or((seq, seq), |(lo, hi)| (lo.min(seq), hi.max(seq))));
            }
        }
        // Slots between the first and last sequence the stream holds no
        // message at: what was deleted (or purged, below the first). An
        // absent message the stream still counts as stored is lost instead.
        let gaps = (state.last_seq + 1)
            .saturating_sub(state.first_seq.max(1))
            .saturating_sub(state.messages);
        let passed = |seq: u64| writer_order.is_none() && seq <= state.last_seq;
        let absent_in_range = owed()
            .filter(|&(id, seq)| !is_seen(id) && passed(seq) && seq >= state.first_seq)
            .count() as u64;
        let removal_shown = absent_in_range <= gaps;
        for (id, seq) in owed() {
            out.expected += 1;
            if is_seen(id) {
                continue;
            }
            if passed(seq) && (removal_shown || seq < state.first_seq) {
                out.removed += 1;
                push(&mut out.removed_ids, || id.to_string());
                push(&mut out.removed_seqs, || seq);
                continue;
            }
            out.missing += 1;
            match found {
                Some((_, hi)) if seq > hi => out.missing_suffix += 1,
                Some((lo, _)) if seq > lo => out.missing_middle += 1,
                _ => out.missing_prefix += 1,
            }
            push(&mut out.missing_examples, || format!("seq {seq} ({id})"));
        }
        out
    }
}

fn push<T>(list: &mut Vec<T>, item: impl FnOnce() -> T) {
    if list.len() < EXAMPLES {
        list.push(item());
    }
}

fn describe(id: MsgId, sent: &Sent, got_hash: u64) -> String {
    let mut s = format!("{id} (hash {got_hash:016x}");
    if got_hash != sent.hash {
        s.push_str(&format!(", published {:016x}", sent.hash));
    }
    if sent.acked() {
        s.push_str(&format!(", acked at seq {}", sent.seq));
    } else {
        s.push_str(", not acked");
    }
    s.push(')');
    s
}

fn acked_at(log: &SentLog, seq: u64) -> Option<String> {
    log.acked_at(seq)
        .map(|id| format!("{id} (hash {:016x})", log.hash_of(id)))
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(
        "zone {zone}: auditing stream {stream} took longer than {limit:?} (read up to seq {read_to} of {last_seq})"
    )]
    Timeout {
        zone: String,
        stream: String,
        limit: Duration,
        read_to: u64,
        last_seq: u64,
    },
    #[error("zone {zone}: stream {stream} does not exist")]
    StreamMissing { zone: String, stream: String },
    #[error("zone {zone}: stream {stream}: cannot {what}: {message}")]
    ReadFailed {
        zone: String,
        stream: String,
        what: &'static str,
        message: String,
    },
}

/// Reads every message `zone` stores in `stream` from `from_seq` to the last
/// sequence stream info reported at the start, and audits it against `log`.
/// Messages stored after that info are left for the next audit, so a stream
/// still being written to does not keep the audit running.
pub async fn audit_zone(
    zone: &str,
    js: &jetstream::Context,
    stream: &str,
    from_seq: u64,
    log: &SentLog,
    limit: Duration,
) -> Result<StoredAuditResult, AuditError> {
    let audits = vec![StoredAudit::new(zone, from_seq, log)];
    let mut found = audit_stream(zone, js, stream, from_seq, audits, limit).await?;
    Ok(found.remove(0))
}

/// Like [`audit_zone`], with several audits (one per writer) fed by one read
/// of the stream: an aggregate of the sources topology.
pub async fn audit_stream(
    zone: &str,
    js: &jetstream::Context,
    stream: &str,
    from_seq: u64,
    mut audits: Vec<StoredAudit<'_>>,
    limit: Duration,
) -> Result<Vec<StoredAuditResult>, AuditError> {
    let mut state = StoredState::default();
    let read = read_stored(zone, js, stream, from_seq, &mut audits, &mut state);
    match tokio::time::timeout(limit, read).await {
        Ok(Ok(())) => Ok(audits
            .into_iter()
            .map(|a| {
                let mut out = a.finish(state);
                out.stream = stream.to_string();
                out
            })
            .collect()),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(AuditError::Timeout {
            zone: zone.to_string(),
            stream: stream.to_string(),
            limit,
            read_to: audits.first().map_or(0, |a| a.last_observed),
            last_seq: state.last_seq,
        }),
    }
}

async fn read_stored(
    zone: &str,
    js: &jetstream::Context,
    stream_name: &str,
    from_seq: u64,
    audit: &mut [StoredAudit<'_>],
    state: &mut StoredState,
) -> Result<(), AuditError> {
    let failed = |what: &'static str, e: &dyn std::fmt::Display| AuditError::ReadFailed {
        zone: zone.to_string(),
        stream: stream_name.to_string(),
        what,
        message: e.to_string(),
    };
    let stream = js
        .get_stream(stream_name)
        .await
        .map_err(|e| match e.kind() {
            GetStreamErrorKind::JetStream(j)
                if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
            {
                AuditError::StreamMissing {
                    zone: zone.to_string(),
                    stream: stream_name.to_string(),
                }
            }
            _ => failed("read stream info", &e),
        })?;
    // `get_stream` already fetched info; its state is the snapshot audited.
    *state = StoredState::from(&stream.cached_info().state);
    let start = from_seq.max(state.first_seq).max(1);
    if state.messages == 0 || start > state.last_seq {
        return Ok(());
    }
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            description: Some(format!("natsregion stored-stream audit of zone {zone}")),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: start,
            },
            ..Default::default()
        })
        .await
        .map_err(|e| failed("create the audit consumer", &e))?;
    let name = consumer.cached_info().name.clone();
    let nothing_stored = consumer.cached_info().num_pending == 0;
    let result = if nothing_stored {
        Ok(())
    } else {
        read_ordered(consumer, state.last_seq, audit)
            .await
            .map_err(|e| failed("read stored messages", &e))
    };
    // An ephemeral consumer expires on its own; deleting it just frees it sooner.
    let _ = stream.delete_consumer(&name).await;
    result
}

async fn read_ordered(
    consumer: jetstream::consumer::Consumer<pull::OrderedConfig>,
    last_seq: u64,
    audits: &mut [StoredAudit<'_>],
) -> Result<(), String> {
    let mut messages = consumer.messages().await.map_err(|e| e.to_string())?;
    while let Some(msg) = messages.next().await {
        let msg = msg.map_err(|e| e.to_string())?;
        let info = msg.info().map_err(|e| e.to_string())?;
        let (seq, pending) = (info.stream_sequence, info.pending);
        if seq > last_seq {
            // Stored after the snapshot (holes at the snapshot's tail): not audited.
            break;
        }
        for audit in audits.iter_mut() {
            audit.observe(seq, &msg.payload);
        }
        // Holes mean `last_seq` itself may never arrive; nothing pending is the end.
        if seq == last_seq || pending == 0 {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::record::payload;

    const LEN: usize = 64;

    fn id(counter: u64) -> MsgId {
        MsgId { writer: 1, counter }
    }

    /// `n` messages of writer 1, acked at `offset + counter`.
    fn log(n: u64, offset: u64) -> SentLog {
        log_unacked(n, offset, &[])
    }

    /// Like [`log`], with the publishes of `unacked` never acked.
    fn log_unacked(n: u64, offset: u64, unacked: &[u64]) -> SentLog {
        let mut l = SentLog::new(1, LEN);
        for c in 1..=n {
            l.attempt(0);
            l.settle(c, (!unacked.contains(&c)).then_some(offset + c));
        }
        l
    }

    fn state(messages: u64, first_seq: u64, last_seq: u64) -> StoredState {
        StoredState {
            messages,
            first_seq,
            last_seq,
        }
    }

    /// Audits the stream as the log says it should be, minus `skip`, whose
    /// state still counts the skipped messages as stored: a store that lost
    /// them without a trace.
    fn audit_all_but(l: &SentLog, from_seq: u64, skip: &[u64]) -> StoredAuditResult {
        audit_skipping(l, from_seq, skip, false)
    }

    /// Like [`audit_all_but`], with the skipped messages deleted: the
    /// stream's state shows the gaps.
    fn audit_deleted(l: &SentLog, from_seq: u64, skip: &[u64]) -> StoredAuditResult {
        audit_skipping(l, from_seq, skip, true)
    }

    fn audit_skipping(l: &SentLog, from_seq: u64, skip: &[u64], gaps: bool) -> StoredAuditResult {
        let mut a = StoredAudit::new("z", from_seq, l);
        let (mut stored, mut skipped) = (0, 0);
        for (id, seq) in l.iter() {
            if !skip.contains(&seq) {
                a.observe(seq, &payload(id, LEN));
                stored += 1;
            } else {
                skipped += 1;
            }
        }
        let last = l.iter().last().map_or(0, |(_, seq)| seq);
        let messages = if gaps { stored } else { stored + skipped };
        a.finish(state(messages, from_seq, last))
    }

    #[test]
    fn deleted_messages_are_removed_with_ids_and_sequences_not_missing() {
        let l = log(100, 1000);
        let r = audit_deleted(&l, 1001, &[1001, 1042, 1100]);
        assert!(!r.clean());
        assert_eq!((r.removed, r.missing, r.expected), (3, 0, 100), "{r:?}");
        assert_eq!(r.removed_ids, vec!["1-1", "1-42", "1-100"]);
        assert_eq!(r.removed_seqs, vec![1001, 1042, 1100]);
        // Gone from below the stream's first sequence (a purge) is removed too.
        let mut a = StoredAudit::new("z", 1001, &l);
        for (id, seq) in l.iter().skip(10) {
            a.observe(seq, &payload(id, LEN));
        }
        let r = a.finish(state(90, 1011, 1100));
        assert_eq!((r.removed, r.missing), (10, 0), "{r:?}");
        // More absent than the stream shows gaps: lost, not removed.
        let r = audit_all_but(&l, 1001, &[1042]);
        assert_eq!((r.removed, r.missing), (0, 1), "{r:?}");
        // Past the stream's last sequence: never stored, not removed.
        let mut a = StoredAudit::new("z", 1001, &l);
        for (id, seq) in l.iter().take(90) {
            a.observe(seq, &payload(id, LEN));
        }
        let r = a.finish(state(90, 1001, 1090));
        assert_eq!((r.removed, r.missing, r.missing_suffix), (0, 10, 10));
    }

    #[test]
    fn a_complete_stream_is_clean() {
        let l = log(1000, 0);
        let r = audit_all_but(&l, 1, &[]);
        assert!(r.clean(), "{r:?}");
        assert_eq!((r.expected, r.stored_from_run, r.missing), (1000, 1000, 0));
        assert_eq!((r.foreign, r.before_run, r.recovered), (0, 0, 0));
        assert_eq!((r.messages, r.first_seq, r.last_seq), (1000, 1, 1000));
    }

    #[test]
    fn holes_are_missing_with_sequence_and_id_split_prefix_middle_suffix() {
        let l = log(100, 1000);
        let r = audit_all_but(&l, 1001, &[1001, 1002, 1042, 1077, 1100]);
        assert!(!r.clean());
        assert_eq!(r.missing, 5);
        assert_eq!(
            r.missing_examples,
            vec![
                "seq 1001 (1-1)",
                "seq 1002 (1-2)",
                "seq 1042 (1-42)",
                "seq 1077 (1-77)",
                "seq 1100 (1-100)"
            ]
        );
        assert_eq!(
            (r.missing_prefix, r.missing_middle, r.missing_suffix),
            (2, 2, 1)
        );
        assert_eq!((r.altered, r.added), (0, 0));
    }

    #[test]
    fn counts_stay_complete_when_examples_are_capped() {
        let l = log(500, 0);
        let holes: Vec<u64> = (100..=400).collect();
        let r = audit_all_but(&l, 1, &holes);
        assert_eq!(r.missing, 301);
        assert_eq!(r.missing_middle, 301);
        assert_eq!(r.missing_examples.len(), EXAMPLES);
    }

    #[test]
    fn nothing_stored_is_all_missing_as_prefix() {
        let l = log(10, 0);
        let r = StoredAudit::new("z", 1, &l).finish(state(0, 0, 0));
        assert_eq!((r.missing, r.missing_prefix, r.expected), (10, 10, 10));
    }

    #[test]
    fn an_altered_body_is_caught_by_its_hash() {
        let l = log(3, 0);
        let mut a = StoredAudit::new("z", 1, &l);
        a.observe(1, &payload(id(1), LEN));
        let mut body = payload(id(2), LEN).to_vec();
        body[LEN - 1] ^= 1;
        a.observe(2, &body);
        a.observe(3, &payload(id(3), LEN));
        let r = a.finish(state(3, 1, 3));
        assert_eq!((r.altered, r.missing, r.added), (1, 0, 0));
        let ex = &r.altered_examples[0];
        assert_eq!(ex.stream_seq, 2);
        assert!(
            ex.expected.as_deref().unwrap().starts_with("1-2 "),
            "{ex:?}"
        );
        assert!(ex.got.contains("published"), "{ex:?}");
        assert!(!r.clean());
    }

    #[test]
    fn a_moved_sequence_is_altered() {
        let l = log(4, 0);
        let mut a = StoredAudit::new("z", 1, &l);
        a.observe(1, &payload(id(1), LEN));
        a.observe(2, &payload(id(3), LEN));
        a.observe(3, &payload(id(2), LEN));
        a.observe(4, &payload(id(4), LEN));
        let r = a.finish(state(4, 1, 4));
        assert_eq!((r.altered, r.missing), (2, 0));
        assert_eq!(r.altered_examples[0].stream_seq, 2);
        assert_eq!(
            r.altered_examples[0].expected.as_deref().map(|e| &e[..4]),
            Some("1-2 ")
        );
        assert!(
            r.altered_examples[0].got.contains("1-3 ")
                && r.altered_examples[0].got.contains("seq 3"),
            "{:?}",
            r.altered_examples[0]
        );
    }

    #[test]
    fn never_attempted_and_stored_twice_are_added() {
        let l = log(3, 0);
        let mut a = StoredAudit::new("z", 1, &l);
        for c in 1..=3 {
            a.observe(c, &payload(id(c), LEN));
        }
        a.observe(4, &payload(id(2), LEN));
        a.observe(5, &payload(id(99), LEN));
        a.observe(6, &payload(id(0), LEN));
        let r = a.finish(state(6, 1, 6));
        assert_eq!((r.added, r.missing, r.altered), (3, 0, 0));
        assert_eq!(
            r.added_examples,
            vec![
                "seq 4 (1-2, stored twice)",
                "seq 5 (1-99, never attempted)",
                "seq 6 (1-0, never attempted)"
            ]
        );
        assert!(!r.clean());
    }

    #[test]
    fn foreign_messages_are_counted_not_judged() {
        let l = log(2, 0);
        let mut a = StoredAudit::new("z", 1, &l);
        a.observe(1, &payload(id(1), LEN));
        a.observe(2, &payload(id(2), LEN));
        a.observe(3, b"someone else's traffic");
        a.observe(
            4,
            &payload(
                MsgId {
                    writer: 2,
                    counter: 1,
                },
                LEN,
            ),
        );
        let r = a.finish(state(4, 1, 4));
        assert!(r.clean(), "{r:?}");
        assert_eq!((r.foreign, r.stored_from_run), (2, 4));
    }

    #[test]
    fn stored_without_an_ack_is_recovered_not_a_failure() {
        let l = log_unacked(3, 0, &[3]);
        let mut a = StoredAudit::new("z", 1, &l);
        for c in 1..=3 {
            a.observe(c, &payload(id(c), LEN));
        }
        let r = a.finish(state(3, 1, 3));
        assert!(r.clean(), "{r:?}");
        assert_eq!((r.recovered, r.expected), (1, 2));
        // Unacked and absent is not missing either: it was never promised.
        let r = audit_all_but(&l, 1, &[0]);
        assert_eq!((r.missing, r.recovered, r.expected), (0, 0, 2));
    }

    #[test]
    fn what_lies_before_the_run_is_reported_not_judged() {
        // Earlier traffic at 1..=50 (30 still stored), the run from 51.
        let l = log(10, 50);
        let mut a = StoredAudit::new("z", 51, &l);
        for (id, seq) in l.iter() {
            a.observe(seq, &payload(id, LEN));
        }
        let r = a.finish(state(40, 21, 60));
        assert!(r.clean(), "{r:?}");
        assert_eq!((r.before_run, r.stored_from_run, r.foreign), (30, 10, 0));
        // A reader that also feeds the earlier messages gets the same count.
        let mut a = StoredAudit::new("z", 51, &l);
        for seq in 21..=50 {
            a.observe(seq, &payload(id(seq), LEN));
        }
        for (id, seq) in l.iter() {
            a.observe(seq, &payload(id, LEN));
        }
        let r = a.finish(state(40, 21, 60));
        assert!(r.clean(), "{r:?}");
        assert_eq!((r.before_run, r.stored_from_run), (30, 10));
    }

    #[test]
    fn acks_below_from_seq_are_not_owed() {
        let l = log(10, 0);
        let r = audit_all_but(&l, 6, &[1, 2, 3, 4, 5]);
        assert!(r.clean(), "{r:?}");
        assert_eq!(r.expected, 5);
    }

    #[test]
    fn memory_is_one_bit_per_attempt() {
        let l = log(1000, 0);
        let a = StoredAudit::new("z", 1, &l);
        assert_eq!(a.seen.len(), 16);
    }

    #[test]
    fn result_serializes_in_camel_case() {
        let r = audit_all_but(&log(3, 0), 1, &[2]);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["missingExamples"][0], "seq 2 (1-2)");
        let r = audit_deleted(&log(3, 0), 1, &[2]);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            (&v["removedIds"][0], &v["removedSeqs"][0]),
            (&"1-2".into(), &2.into())
        );
        assert_eq!(v["storedFromRun"], 2);
        assert_eq!(v["beforeRun"], 0);
    }
}
