//! What the producer and the consumers record, in fixed-size entries: memory per
//! tracked message is constant (no per-message heap allocation).

use bytes::{BufMut, Bytes, BytesMut};
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
    let mut buf = BytesMut::with_capacity(size.max(ID_PREFIX));
    write_payload(id, size, &mut buf);
    buf.freeze()
}

/// Appends [`payload`]`(id, size)` to `buf`, so a producer can cut many
/// payloads from one allocation.
pub fn write_payload(id: MsgId, size: usize, buf: &mut BytesMut) {
    let size = size.max(ID_PREFIX);
    buf.reserve(size);
    push_hex(buf, u64::from(id.writer), 8);
    push_hex(buf, id.counter, 16);
    let mut x = id.counter.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(id.writer);
    let mut left = size - ID_PREFIX;
    while left > 0 {
        // xorshift: cheap, deterministic filler, one step per 8 bytes (a
        // payload is built for every publish and for every read checked)
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let n = left.min(8);
        buf.extend(x.to_le_bytes()[..n].iter().map(|b| b'a' + b % 26));
        left -= n;
    }
}

/// `v`'s lowest `digits` hex digits, as `{:0digits$x}` writes them, without
/// formatting machinery: every publish and every checked read builds a payload.
fn push_hex(buf: &mut BytesMut, v: u64, digits: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in (0..digits).rev() {
        buf.put_u8(HEX[((v >> (i * 4)) & 0xf) as usize]);
    }
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
        assert_eq!(
            &p[..ID_PREFIX],
            format!("{:08x}{:016x}", 7, 123_456).as_bytes()
        );
        // Cut from a shared buffer, a payload is the same bytes.
        let mut buf = BytesMut::new();
        write_payload(
            MsgId {
                writer: 7,
                counter: 123_457,
            },
            128,
            &mut buf,
        );
        write_payload(id, 128, &mut buf);
        assert_eq!(buf.split_off(128).freeze(), p);
        assert_eq!(payload(id, 3).len(), ID_PREFIX, "at least the id");
        assert_eq!(msg_id_header(id), "nr-7-123456");
    }

    #[test]
    fn records_stay_small() {
        assert!(std::mem::size_of::<Sent>() <= 40);
        assert!(std::mem::size_of::<Read>() <= 40);
    }
}
