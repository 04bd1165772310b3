//! Sparse weight streams: the relative positions and cluster indices of the kept weights, bit-packed or
//! canonical-Huffman coded, decoded on the fly (no tables in memory beyond a few hundred bytes of stack).
//!
//! Bits are read most significant first within each byte. A fixed-width field of `w` bits is written most
//! significant bit first. Canonical Huffman codes are assigned in order of (code length, symbol), as in DEFLATE,
//! and read bit by bit.

use crate::error::{Error, Result};

/// Longest Huffman code the format allows.
pub const MAX_CODE_BITS: usize = 15;

/// Reads bits MSB-first.
#[derive(Clone)]
pub(crate) struct BitReader<'a> {
    bytes: &'a [u8],
    byte: usize,
    bit: u32,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        BitReader {
            bytes,
            byte: 0,
            bit: 0,
        }
    }

    /// One bit, or `None` past the end.
    #[inline(always)]
    pub(crate) fn bit(&mut self) -> Option<u32> {
        let b = *self.bytes.get(self.byte)?;
        let v = u32::from(b >> (7 - self.bit)) & 1;
        self.bit += 1;
        if self.bit == 8 {
            self.bit = 0;
            self.byte += 1;
        }
        Some(v)
    }

    /// `width` bits (1..=16) as an unsigned value, or `None` past the end.
    #[inline(always)]
    pub(crate) fn bits(&mut self, width: u32) -> Option<u32> {
        let mut v = 0;
        for _ in 0..width {
            v = (v << 1) | self.bit()?;
        }
        Some(v)
    }
}

/// A canonical Huffman decoding table built from code lengths on the stack.
pub(crate) struct Huffman {
    counts: [u16; MAX_CODE_BITS + 1],
    symbols: [u8; 256],
}

impl Huffman {
    /// Builds the table for `lengths[s]` = code length of symbol `s` (0: unused). Fails on lengths over
    /// [`MAX_CODE_BITS`], more than 256 symbols, or an over-subscribed code (Kraft sum above 1).
    pub(crate) fn new(lengths: &[u8]) -> Option<Huffman> {
        if lengths.len() > 256 {
            return None;
        }
        let mut counts = [0u16; MAX_CODE_BITS + 1];
        for &l in lengths {
            if usize::from(l) > MAX_CODE_BITS {
                return None;
            }
            counts[usize::from(l)] += 1;
        }
        counts[0] = 0;
        let mut left: i32 = 1;
        for &c in &counts[1..] {
            left = left * 2 - i32::from(c);
            if left < 0 {
                return None;
            }
        }
        let mut offsets = [0u16; MAX_CODE_BITS + 2];
        for len in 1..=MAX_CODE_BITS {
            offsets[len + 1] = offsets[len] + counts[len];
        }
        let mut symbols = [0u8; 256];
        for (s, &l) in lengths.iter().enumerate() {
            if l != 0 {
                let slot = &mut offsets[usize::from(l)];
                symbols[usize::from(*slot)] = s as u8;
                *slot += 1;
            }
        }
        Some(Huffman { counts, symbols })
    }

    /// Decodes one symbol, or `None` on a code that is not in the table or past the end of the stream.
    #[inline(always)]
    pub(crate) fn decode(&self, r: &mut BitReader) -> Option<u32> {
        let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
        for len in 1..=MAX_CODE_BITS {
            code |= r.bit()? as i32;
            let count = i32::from(self.counts[len]);
            if code - first < count {
                return self
                    .symbols
                    .get((index + code - first) as usize)
                    .map(|&s| u32::from(s));
            }
            index += count;
            first = (first + count) << 1;
            code <<= 1;
        }
        None
    }
}

/// How one stream's symbols are coded.
#[derive(Clone, Copy)]
pub(crate) enum Coding<'a> {
    /// Fixed-width fields of this many bits.
    Packed(u32),
    /// Canonical Huffman with these code lengths (one per symbol).
    Huffman(&'a [u8]),
}

/// A decoder for one stream.
// The Huffman variant carries its 290-byte table inline: boxing it would need a heap, which the runtime has not.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Symbols<'a> {
    Packed(BitReader<'a>, u32),
    Huffman(BitReader<'a>, Huffman),
}

impl<'a> Symbols<'a> {
    pub(crate) fn new(coding: Coding<'a>, bytes: &'a [u8]) -> Option<Self> {
        Some(match coding {
            Coding::Packed(w) => Symbols::Packed(BitReader::new(bytes), w),
            Coding::Huffman(lengths) => {
                Symbols::Huffman(BitReader::new(bytes), Huffman::new(lengths)?)
            }
        })
    }

    #[inline(always)]
    pub(crate) fn next(&mut self) -> Option<u32> {
        match self {
            Symbols::Packed(r, w) => r.bits(*w),
            Symbols::Huffman(r, h) => h.decode(r),
        }
    }
}

/// The kept weights of a sparse layer as (linear position, cluster index), in increasing position order.
///
/// Position symbols: `g < MAX` places a weight `g` positions after the previous one's successor;
/// `g == MAX` (= 2^bits − 1) is a filler that skips `MAX` positions and carries no weight.
pub(crate) struct Entries<'a> {
    positions: Symbols<'a>,
    indices: Symbols<'a>,
    filler: u32,
    next: usize,
    remaining_symbols: u32,
    limit: usize,
    codebook_len: u32,
}

impl<'a> Entries<'a> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        positions: Symbols<'a>,
        indices: Symbols<'a>,
        position_bits: u32,
        symbols: u32,
        limit: usize,
        codebook_len: u32,
    ) -> Self {
        Entries {
            positions,
            indices,
            filler: (1 << position_bits) - 1,
            next: 0,
            remaining_symbols: symbols,
            limit,
            codebook_len,
        }
    }

    /// The next weight, `Ok(None)` at the end, `Err` if the streams are inconsistent.
    #[inline(always)]
    pub(crate) fn next_entry(&mut self, layer: u16) -> Result<Option<(usize, usize)>> {
        let bad = Error::CorruptStream { layer };
        loop {
            if self.remaining_symbols == 0 {
                return Ok(None);
            }
            self.remaining_symbols -= 1;
            let g = self.positions.next().ok_or(bad)?;
            if g == self.filler {
                self.next = self.next.checked_add(g as usize).ok_or(bad)?;
                continue;
            }
            let p = self.next.checked_add(g as usize).ok_or(bad)?;
            if p >= self.limit {
                return Err(bad);
            }
            self.next = p + 1;
            let i = self.indices.next().ok_or(bad)?;
            if i >= self.codebook_len {
                return Err(bad);
            }
            return Ok(Some((p, i as usize)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_codes_decode_in_length_then_symbol_order() {
        // Lengths: A=2, B=1, C=3, D=3 → B=0, A=10, C=110, D=111.
        let h = Huffman::new(&[2, 1, 3, 3]).unwrap();
        // Bits: 0 | 10 | 110 | 111 | 0 → 0101 1011 10(pad 000000)
        let bytes = [0b0101_1011, 0b1000_0000];
        let mut r = BitReader::new(&bytes);
        let got: [u32; 5] = core::array::from_fn(|_| h.decode(&mut r).unwrap());
        assert_eq!(got, [1, 0, 2, 3, 1]);
    }

    #[test]
    fn over_subscribed_and_too_long_codes_are_refused() {
        assert!(Huffman::new(&[1, 1, 1]).is_none());
        assert!(Huffman::new(&[16, 1]).is_none());
        assert!(Huffman::new(&[1]).is_some());
    }

    #[test]
    fn bit_reader_reads_msb_first_and_stops_at_the_end() {
        let mut r = BitReader::new(&[0b1010_0000]);
        assert_eq!(r.bits(3), Some(0b101));
        assert_eq!(r.bits(5), Some(0));
        assert_eq!(r.bit(), None);
    }

    #[test]
    fn fillers_skip_without_weights() {
        // 2-bit positions (filler = 3), 1-bit indices: symbols 3 (skip 3), 1 (weight at 4), 0 (weight at 5).
        let pos = [0b1101_0000];
        let idx = [0b1000_0000];
        let mut e = Entries::new(
            Symbols::new(Coding::Packed(2), &pos).unwrap(),
            Symbols::new(Coding::Packed(1), &idx).unwrap(),
            2,
            3,
            10,
            2,
        );
        assert_eq!(e.next_entry(0), Ok(Some((4, 1))));
        assert_eq!(e.next_entry(0), Ok(Some((5, 0))));
        assert_eq!(e.next_entry(0), Ok(None));
    }
}
