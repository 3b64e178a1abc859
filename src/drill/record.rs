//! What the producer and the consumers record, in fixed-size entries: memory per
//! tracked message is constant (no per-message heap allocation).

use bytes::Bytes;
use xxhash_rust::xxh3::xxh3_64;

/// Unique id of a published message: which writer, and its counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MsgId {
    pub writer: u32,
    pub counter: u64,
}

impl std::fmt::Display for MsgId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.writer, self.counter)
    }
}

/// Length of the id prefix every payload starts with: 8 hex digits of writer, 16 of counter.
pub const ID_PREFIX: usize = 24;

/// Builds the payload for `id`: the id in ASCII, then filler derived from the
/// counter so that payloads differ and a swapped body changes the hash.
pub fn payload(id: MsgId, size: usize) -> Bytes {
    let size = size.max(ID_PREFIX);
    let mut buf = Vec::with_capacity(size);
    buf.extend_from_slice(format!("{:08x}{:016x}", id.writer, id.counter).as_bytes());
    let mut x = id.counter.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(id.writer);
    while buf.len() < size {
        // xorshift: cheap, deterministic filler
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf.push(b'a' + (x % 26) as u8);
    }
    Bytes::from(buf)
}

/// Hash recorded on both sides; a consumer hashes what it received.
pub fn hash(payload: &[u8]) -> u64 {
    xxh3_64(payload)
}

/// Reads the id back from a payload; `None` for a message the drill did not write.
pub fn parse_id(payload: &[u8]) -> Option<MsgId> {
    let prefix = std::str::from_utf8(payload.get(..ID_PREFIX)?).ok()?;
    Some(MsgId {
        writer: u32::from_str_radix(&prefix[..8], 16).ok()?,
        counter: u64::from_str_radix(&prefix[8..], 16).ok()?,
    })
}

/// `Nats-Msg-Id` header value, so the stream drops a retried publish.
pub fn msg_id_header(id: MsgId) -> String {
    format!("nr-{}-{}", id.writer, id.counter)
}

/// One publish attempt. `seq == 0` means no PubAck came back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sent {
    pub id: MsgId,
    pub hash: u64,
    pub seq: u64,
    /// Index of the step that published it.
    pub phase: u16,
}

impl Sent {
    pub fn acked(&self) -> bool {
        self.seq != 0
    }
}

/// One message a zone's consumer read and acked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Read {
    pub id: MsgId,
    pub hash: u64,
    pub stream_seq: u64,
    /// Milliseconds since the drill started, to place it in a phase.
    pub at_ms: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips_its_id_and_hash_depends_on_body() {
        let id = MsgId {
            writer: 7,
            counter: 123_456,
        };
        let p = payload(id, 128);
        assert_eq!(p.len(), 128);
        assert_eq!(parse_id(&p), Some(id));
        let other = payload(
            MsgId {
                writer: 7,
                counter: 123_457,
            },
            128,
        );
        assert_ne!(hash(&p), hash(&other));
        assert_eq!(parse_id(b"not ours"), None);
        assert_eq!(msg_id_header(id), "nr-7-123456");
    }

    #[test]
    fn records_stay_small() {
        assert!(std::mem::size_of::<Sent>() <= 40);
        assert!(std::mem::size_of::<Read>() <= 40);
    }
}
