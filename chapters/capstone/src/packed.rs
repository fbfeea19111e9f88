//! How the service stores a large value in Redis and on disk: compressed above a threshold, with a
//! header that says how, until when, and what the bytes must add up to.
//!
//! The source's advanced system compresses values above a size (1 KB) and pickles what it stores. A
//! pickle runs code when it is read, so a cache file anybody could write becomes a way in; and a
//! value with no checksum is believed however it was cut short. Here a stored value is plain bytes
//! (the rendered page) behind a fixed header:
//!
//! | bytes | what |
//! |---|---|
//! | 4 | `CCv1`, so a file of anything else is refused |
//! | 1 | the codec: 0 raw, 1 LZ4 |
//! | 8 | the expiry, Unix milliseconds (the disk layer's own TTL; Redis keeps its own) |
//! | 4 | CRC-32 of the codec, the expiry and the payload |
//! | rest | the payload: the value, or its LZ4 block with the value's length in front |
//!
//! LZ4 rather than zlib: it decompresses at several GB/s, so a hit pays little for it, and a
//! rendered page shrinks several times all the same. Values below the threshold stay raw: a few
//! hundred bytes gain little and would pay the codec on every hit.

use thiserror::Error;

/// The first bytes of every stored value.
const MAGIC: &[u8; 4] = b"CCv1";
/// Magic, codec, expiry and checksum.
pub const HEADER: usize = 4 + 1 + 8 + 4;
/// No value the service stores is larger: a length prefix above it is corrupt, not a reason to
/// allocate gigabytes.
const LARGEST: usize = 16 << 20;

/// How the payload is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// The value itself.
    Raw = 0,
    /// An LZ4 block, the value's length in front.
    Lz4 = 1,
}

/// Why stored bytes give no value.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum Unpacked {
    /// Past its expiry.
    #[error("expired")]
    Expired,
    /// Not a value this service wrote, or damaged since.
    #[error("corrupt: {0}")]
    Corrupt(&'static str),
}

/// `value` packed to expire at `expires_at_ms`, compressed if it is at least `threshold` bytes
/// and compression makes it smaller.
pub fn pack(value: &[u8], expires_at_ms: u64, threshold: usize) -> Vec<u8> {
    let compressed = (value.len() >= threshold)
        .then(|| lz4_flex::compress_prepend_size(value))
        .filter(|compressed| compressed.len() < value.len());
    let (codec, payload) = match &compressed {
        Some(compressed) => (Codec::Lz4, compressed.as_slice()),
        None => (Codec::Raw, value),
    };
    let mut packed = Vec::with_capacity(HEADER + payload.len());
    packed.extend_from_slice(MAGIC);
    packed.push(codec as u8);
    packed.extend_from_slice(&expires_at_ms.to_le_bytes());
    packed.extend_from_slice(&checksum(codec as u8, expires_at_ms, payload).to_le_bytes());
    packed.extend_from_slice(payload);
    packed
}

/// CRC-32 of the codec, the expiry and the payload: a flipped bit in any of them is caught (in
/// the expiry it could otherwise keep a page alive for years).
fn checksum(codec: u8, expires_at_ms: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&[codec]);
    hasher.update(&expires_at_ms.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// The codec of packed bytes, if they have a header.
pub fn codec_of(packed: &[u8]) -> Option<Codec> {
    match packed.get(4) {
        Some(0) => Some(Codec::Raw),
        Some(1) => Some(Codec::Lz4),
        _ => None,
    }
}

/// The value in `packed` and its expiry, if it is whole, ours, and not expired at `now_ms`.
pub fn unpack(packed: &[u8], now_ms: u64) -> Result<(Vec<u8>, u64), Unpacked> {
    if packed.len() < HEADER || &packed[..4] != MAGIC {
        return Err(Unpacked::Corrupt("no header"));
    }
    let expires_at_ms = u64::from_le_bytes(packed[5..13].try_into().expect("8 bytes"));
    let checksum = u32::from_le_bytes(packed[13..17].try_into().expect("4 bytes"));
    let payload = &packed[HEADER..];
    if self::checksum(packed[4], expires_at_ms, payload) != checksum {
        return Err(Unpacked::Corrupt("checksum mismatch"));
    }
    if now_ms >= expires_at_ms {
        return Err(Unpacked::Expired);
    }
    let value = match codec_of(packed) {
        Some(Codec::Raw) => Ok(payload.to_vec()),
        Some(Codec::Lz4) => {
            let length = payload
                .get(..4)
                .map(|prefix| u32::from_le_bytes(prefix.try_into().expect("4 bytes")) as usize);
            match length {
                Some(length) if length <= LARGEST => lz4_flex::decompress_size_prepended(payload)
                    .map_err(|_| Unpacked::Corrupt("not an LZ4 block")),
                _ => Err(Unpacked::Corrupt("length out of range")),
            }
        }
        None => Err(Unpacked::Corrupt("unknown codec")),
    }?;
    Ok((value, expires_at_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_value_is_compressed_and_a_small_one_is_not() {
        let page = "<li>green tea</li>".repeat(200).into_bytes();
        let packed = pack(&page, 2_000, 1_024);
        assert_eq!(codec_of(&packed), Some(Codec::Lz4));
        assert!(
            packed.len() * 4 < page.len(),
            "a repetitive page of {} bytes packed to {} bytes: expected at least 4x smaller",
            page.len(),
            packed.len()
        );
        assert_eq!(unpack(&packed, 1_000).unwrap(), (page, 2_000));
        let small = b"{\"id\":1}".to_vec();
        let packed = pack(&small, 2_000, 1_024);
        assert_eq!(codec_of(&packed), Some(Codec::Raw));
        assert_eq!(unpack(&packed, 1_000).unwrap(), (small, 2_000));
    }

    #[test]
    fn expired_and_damaged_values_give_nothing() {
        let page = "<p>news</p>".repeat(500).into_bytes();
        let packed = pack(&page, 2_000, 64);
        assert_eq!(unpack(&packed, 2_000), Err(Unpacked::Expired));
        let mut flipped = packed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(
            unpack(&flipped, 1_000),
            Err(Unpacked::Corrupt("checksum mismatch"))
        );
        assert_eq!(
            unpack(&packed[..packed.len() / 2], 1_000),
            Err(Unpacked::Corrupt("checksum mismatch")),
            "a value cut short must be refused"
        );
        let mut later = packed.clone();
        later[12] ^= 0x40; // the expiry's top byte: years later
        assert_eq!(
            unpack(&later, 1_000),
            Err(Unpacked::Corrupt("checksum mismatch")),
            "a damaged expiry must be refused"
        );
        assert_eq!(
            unpack(b"\x80\x04pickle", 1_000),
            Err(Unpacked::Corrupt("no header"))
        );
    }
}
