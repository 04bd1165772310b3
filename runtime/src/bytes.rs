//! Bounds-checked little-endian reading of a byte slice. Every read returns `Error::Truncated` instead of
//! panicking, so no input can crash the reader.

use crate::error::{Error, Result, Section};

/// A cursor over a byte slice.
#[derive(Clone, Copy)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    section: Section,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8], section: Section) -> Self {
        Reader {
            bytes,
            pos: 0,
            section,
        }
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(Error::Overflow)?;
        let out = self.bytes.get(self.pos..end).ok_or(Error::Truncated {
            section: self.section,
            needed: end,
            available: self.bytes.len(),
        })?;
        self.pos = end;
        Ok(out)
    }

    /// Skips to the next multiple of 4.
    pub(crate) fn align4(&mut self) -> Result<()> {
        let pad = (4 - self.pos % 4) % 4;
        self.take(pad).map(|_| ())
    }

    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn i32(&mut self) -> Result<i32> {
        let b = self.take(4)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// `n` 4-byte values, as raw bytes (`4n` long).
    pub(crate) fn words(&mut self, n: usize) -> Result<&'a [u8]> {
        self.take(n.checked_mul(4).ok_or(Error::Overflow)?)
    }

    /// A `u32` that must fit in `usize` and lie in `lo..=hi`.
    pub(crate) fn u32_in(&mut self, field: &'static str, lo: u32, hi: u32) -> Result<u32> {
        let v = self.u32()?;
        if v < lo || v > hi {
            return Err(Error::InvalidValue {
                section: self.section,
                field,
                value: u64::from(v),
            });
        }
        Ok(v)
    }
}

/// The i-th little-endian `f32` of `words` (caller guarantees `4i + 4 <= len`; out of range reads give 0).
#[cfg(not(feature = "integer-only"))]
#[inline(always)]
pub(crate) fn f32_at(words: &[u8], i: usize) -> f32 {
    match words.get(4 * i..4 * i + 4) {
        Some(b) => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        None => 0.0,
    }
}

/// The i-th little-endian `i32` of `words` (out of range reads give 0).
#[inline(always)]
pub(crate) fn i32_at(words: &[u8], i: usize) -> i32 {
    match words.get(4 * i..4 * i + 4) {
        Some(b) => i32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        None => 0,
    }
}

/// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), as zlib and PNG compute it.
pub fn crc32(bytes: &[u8]) -> u32 {
    !crc32_update(!0, bytes)
}

/// Continues a CRC-32 over `bytes` from the running (uninverted) `state`: `crc32(a ++ b)` is
/// `!crc32_update(crc32_update(!0, a), b)`. What [`crate::Model::verify`] uses to check a file region by region in
/// one pass.
pub(crate) fn crc32_update(state: u32, bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    let mut c = state;
    for &b in bytes {
        c = TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        let (a, b) = b"1234567890".split_at(4);
        assert_eq!(!crc32_update(crc32_update(!0, a), b), crc32(b"1234567890"));
    }

    #[test]
    fn reads_past_the_end_are_errors() {
        let mut r = Reader::new(&[1, 2, 3], Section::Header);
        assert_eq!(r.u16().unwrap(), 0x0201);
        assert_eq!(
            r.u32(),
            Err(Error::Truncated {
                section: Section::Header,
                needed: 6,
                available: 3
            })
        );
        assert!(r.take(usize::MAX).is_err());
    }
}
