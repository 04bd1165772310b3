//! Sparse weight streams: the relative positions and cluster indices of the kept weights, bit-packed or
//! canonical-Huffman coded, decoded on the fly (no tables in memory beyond a few hundred bytes of stack).
//!
//! Bits are read most significant first within each byte. A fixed-width field of `w` bits is written most
//! significant bit first. Canonical Huffman codes are assigned in order of (code length, symbol), as in DEFLATE,
//! and read bit by bit.

use crate::error::{Error, Result};

/// Longest Huffman code the format allows.
pub const MAX_CODE_BITS: usize = 15;

/// Reads bits MSB-first through a 64-bit window refilled a byte at a time, so that a field of up to 16 bits costs
/// a shift and a mask rather than a loop over bits.
#[derive(Clone)]
pub(crate) struct BitReader<'a> {
    bytes: &'a [u8],
    next: usize,
    /// Unread bits, left-aligned (the next bit is bit 63).
    window: u64,
    /// Number of valid bits in `window`.
    count: u32,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        BitReader {
            bytes,
            next: 0,
            window: 0,
            count: 0,
        }
    }

    // Out of line: called once every few symbols, and inlining it at every read site costs ~2 KB of code.
    #[inline(never)]
    fn refill(&mut self) {
        // Fast path: one 8-byte load fills the window to at least 57 bits. The bits loaded past the whole bytes
        // counted are the stream's own next bits, so loading them again later ORs identical values.
        if let Some(chunk) = self.bytes.get(self.next..self.next + 8) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            self.window |= u64::from_be_bytes(b) >> self.count;
            let whole = (63 - self.count) / 8;
            self.next += whole as usize;
            self.count += 8 * whole;
            return;
        }
        while self.count <= 56 {
            let Some(&b) = self.bytes.get(self.next) else {
                return;
            };
            self.window |= u64::from(b) << (56 - self.count);
            self.next += 1;
            self.count += 8;
        }
    }

    /// The next `width` bits (1..=16) without consuming them, zero-padded past the end, and how many are real.
    #[inline(always)]
    fn peek(&mut self, width: u32) -> (u32, u32) {
        if self.count < width {
            self.refill();
        }
        ((self.window >> (64 - width)) as u32, self.count.min(width))
    }

    #[inline(always)]
    fn consume(&mut self, width: u32) {
        self.window <<= width;
        self.count -= width;
    }

    /// One bit, or `None` past the end.
    #[inline(always)]
    #[cfg(test)]
    pub(crate) fn bit(&mut self) -> Option<u32> {
        self.bits(1)
    }

    /// `width` bits (1..=16) as an unsigned value, or `None` past the end.
    #[inline(always)]
    pub(crate) fn bits(&mut self, width: u32) -> Option<u32> {
        let (v, real) = self.peek(width);
        if real < width {
            return None;
        }
        self.consume(width);
        Some(v)
    }
}

/// Bits resolved by one lookup in [`Huffman::fast`]; longer codes fall back to the canonical search.
const FAST_BITS: usize = 8;

/// A canonical Huffman decoding table built from code lengths on the stack.
pub(crate) struct Huffman {
    /// For every `FAST_BITS`-bit prefix: `length << 8 | symbol` of the code it starts with, or 0 when that code
    /// is longer than `FAST_BITS` (or unused). 512 bytes that replace a search over code lengths per symbol.
    fast: [u16; 1 << FAST_BITS],
    /// First canonical code of each length.
    first: [u16; MAX_CODE_BITS + 1],
    /// Codes of each length.
    counts: [u16; MAX_CODE_BITS + 1],
    /// Index in `symbols` of the first symbol of each length.
    offsets: [u16; MAX_CODE_BITS + 1],
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
        let (mut first, mut offsets) = ([0u16; MAX_CODE_BITS + 1], [0u16; MAX_CODE_BITS + 1]);
        let (mut code, mut index) = (0u32, 0u16);
        for len in 1..=MAX_CODE_BITS {
            first[len] = code as u16;
            offsets[len] = index;
            index += counts[len];
            code = (code + u32::from(counts[len])) << 1;
        }
        let mut slots = offsets;
        let mut symbols = [0u8; 256];
        let mut fast = [0u16; 1 << FAST_BITS];
        for (s, &l) in lengths.iter().enumerate() {
            if l != 0 {
                let len = usize::from(l);
                let slot = &mut slots[len];
                if len <= FAST_BITS {
                    // The code is first[len] + its rank among codes of its length; every prefix it starts maps to it.
                    let code = usize::from(first[len]) + usize::from(*slot - offsets[len]);
                    let from = code << (FAST_BITS - len);
                    let to = (code + 1) << (FAST_BITS - len);
                    for e in fast.get_mut(from..to)? {
                        *e = (len as u16) << 8 | s as u16;
                    }
                }
                symbols[usize::from(*slot)] = s as u8;
                *slot += 1;
            }
        }
        Some(Huffman {
            fast,
            first,
            counts,
            offsets,
            symbols,
        })
    }

    /// Decodes one symbol, or `None` on a code that is not in the table or past the end of the stream.
    #[inline(always)]
    pub(crate) fn decode(&self, r: &mut BitReader) -> Option<u32> {
        let (bits, real) = r.peek(MAX_CODE_BITS as u32);
        let e = self.fast[(bits >> (MAX_CODE_BITS - FAST_BITS)) as usize & ((1 << FAST_BITS) - 1)];
        if e != 0 {
            let len = u32::from(e >> 8);
            if len > real {
                return None;
            }
            r.consume(len);
            return Some(u32::from(e & 0xFF));
        }
        for len in FAST_BITS + 1..=MAX_CODE_BITS {
            let code = bits >> (MAX_CODE_BITS - len);
            let d = code.wrapping_sub(u32::from(self.first[len]));
            if d < u32::from(self.counts[len]) {
                if len as u32 > real {
                    return None;
                }
                r.consume(len as u32);
                return self
                    .symbols
                    .get(usize::from(self.offsets[len]) + d as usize)
                    .map(|&s| u32::from(s));
            }
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

/// Where a sparse layer's entries come from during a run: straight from its streams, or from arrays decoded into
/// the caller's arena just before the layer runs ([`crate::StreamDecoding`]).
// Lives on the stack for one layer; the decoder state is inline because there is no heap to box it in.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Source<'a> {
    /// Decoding the streams as the kernel goes.
    Stream(Entries<'a>),
    /// Little-endian u32 positions and u8 indices, decoded ahead.
    Decoded {
        positions: &'a [u8],
        indices: &'a [u8],
        next: usize,
    },
}

impl Source<'_> {
    /// The next weight as (linear position, cluster index).
    #[inline(always)]
    pub(crate) fn next_entry(&mut self, layer: u16) -> Result<Option<(usize, usize)>> {
        match self {
            Source::Stream(e) => e.next_entry(layer),
            Source::Decoded {
                positions,
                indices,
                next,
            } => {
                let (Some(p), Some(&i)) =
                    (positions.get(4 * *next..4 * *next + 4), indices.get(*next))
                else {
                    return Ok(None);
                };
                *next += 1;
                Ok(Some((
                    u32::from_le_bytes([p[0], p[1], p[2], p[3]]) as usize,
                    usize::from(i),
                )))
            }
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
