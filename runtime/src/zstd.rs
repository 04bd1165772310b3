//! A Zstandard (RFC 8878) frame decoder without allocation, for sparse streams stored zstd-compressed: the
//! compressor may code a stream as zstd of its bit-packed form, and the runtime decodes it into the arena before
//! running the operator.
//!
//! Written here because the runtime has no dependencies (the `zstd` crates wrap the C library or allocate). It
//! decodes what RFC 8878 specifies for single frames without dictionaries: raw, RLE and compressed blocks; raw,
//! RLE, Huffman-compressed and treeless literals (1 or 4 streams); predefined, RLE, FSE-compressed and repeated
//! sequence tables; repeat offsets. It refuses dictionaries, skippable frames and frames whose content size is not
//! declared or differs from the output buffer. The content checksum, if present, is not verified: the `.slim`
//! file's CRC-32 already covers the bytes.
//!
//! Literals are decoded into the unwritten tail of the output buffer, so no scratch memory beyond the ~10 KB of
//! decoding tables (on the stack) is needed. Every read is bounds-checked; corrupt input returns
//! [`Error::CorruptStream`], never a panic.

use crate::error::{Error, Result};

const MAGIC: u32 = 0xFD2F_B528;
const MAX_BLOCK: usize = 128 * 1024;
const HUF_MAX_BITS: u32 = 11;
const HUF_TABLE: usize = 1 << HUF_MAX_BITS;
const LL_MAX_LOG: u32 = 9;
const ML_MAX_LOG: u32 = 9;
const OF_MAX_LOG: u32 = 8;

const LL_BASE: [u32; 36] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 20, 22, 24, 28, 32, 40, 48, 64,
    128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536,
];
const LL_BITS: [u8; 36] = [
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 4, 6, 7, 8, 9, 10, 11,
    12, 13, 14, 15, 16,
];
const ML_BASE: [u32; 53] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27,
    28, 29, 30, 31, 32, 33, 34, 35, 37, 39, 41, 43, 47, 51, 59, 67, 83, 99, 131, 259, 515, 1027,
    2051, 4099, 8195, 16387, 32771, 65539,
];
const ML_BITS: [u8; 53] = [
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
];
const LL_DEFAULT: [i16; 36] = [
    4, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3, 2, 1, 1, 1, 1, 1,
    -1, -1, -1, -1,
];
const ML_DEFAULT: [i16; 53] = [
    1, 4, 3, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1, -1, -1,
];
const OF_DEFAULT: [i16; 29] = [
    1, 1, 1, 1, 1, 1, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, -1, -1, -1, -1, -1,
];

/// Checks that `src` starts a zstd frame declaring `expected` bytes of content, without decoding it.
pub(crate) fn check_header(src: &[u8], expected: usize) -> bool {
    matches!(header(src), Ok((_, size)) if size == expected)
}

/// Decodes the zstd frame in `src` into `dst`, which must be exactly the frame's declared content size.
pub(crate) fn decompress(src: &[u8], dst: &mut [u8], op: u16) -> Result<()> {
    let bad = Error::CorruptStream { op };
    let (mut pos, size) = header(src).map_err(|()| bad)?;
    if size != dst.len() {
        return Err(bad);
    }
    let checksum = src.get(4).is_some_and(|fhd| fhd & 4 != 0);
    let mut state = State::new();
    let mut out = 0usize;
    loop {
        let h = src.get(pos..pos + 3).ok_or(bad)?;
        let h = u32::from(h[0]) | u32::from(h[1]) << 8 | u32::from(h[2]) << 16;
        pos += 3;
        let last = h & 1 != 0;
        let size = (h >> 3) as usize;
        match (h >> 1) & 3 {
            0 => {
                let data = src.get(pos..pos + size).ok_or(bad)?;
                dst.get_mut(out..out + size)
                    .ok_or(bad)?
                    .copy_from_slice(data);
                pos += size;
                out += size;
            }
            1 => {
                let b = *src.get(pos).ok_or(bad)?;
                dst.get_mut(out..out + size).ok_or(bad)?.fill(b);
                pos += 1;
                out += size;
            }
            2 => {
                if size > MAX_BLOCK {
                    return Err(bad);
                }
                let block = src.get(pos..pos + size).ok_or(bad)?;
                out = state.block(block, dst, out).map_err(|()| bad)?;
                pos += size;
            }
            _ => return Err(bad),
        }
        if last {
            break;
        }
    }
    let end = pos + if checksum { 4 } else { 0 };
    if out != dst.len() || end != src.len() {
        return Err(bad);
    }
    Ok(())
}

/// Parses the frame header: (offset of the first block, declared content size).
fn header(src: &[u8]) -> core::result::Result<(usize, usize), ()> {
    let magic = src.get(0..4).ok_or(())?;
    if u32::from_le_bytes([magic[0], magic[1], magic[2], magic[3]]) != MAGIC {
        return Err(());
    }
    let fhd = *src.get(4).ok_or(())?;
    let fcs_flag = fhd >> 6;
    let single = fhd & 0x20 != 0;
    if fhd & 0x08 != 0 || fhd & 3 != 0 {
        return Err(()); // reserved bit, or a dictionary
    }
    let mut pos = 5 + usize::from(!single);
    let fcs_len = match fcs_flag {
        0 if single => 1,
        0 => return Err(()), // content size not declared
        1 => 2,
        2 => 4,
        _ => 8,
    };
    let b = src.get(pos..pos + fcs_len).ok_or(())?;
    let mut v = 0u64;
    for (i, &x) in b.iter().enumerate() {
        v |= u64::from(x) << (8 * i);
    }
    if fcs_len == 2 {
        v += 256;
    }
    pos += fcs_len;
    Ok((pos, usize::try_from(v).map_err(|_| ())?))
}

/// One FSE decoding table.
struct Fse<const N: usize> {
    symbol: [u8; N],
    bits: [u8; N],
    base: [u16; N],
    log: u32,
}

impl<const N: usize> Fse<N> {
    const fn new() -> Self {
        Fse {
            symbol: [0; N],
            bits: [0; N],
            base: [0; N],
            log: 0,
        }
    }

    /// Builds the table from normalized counts (−1 = "less than one").
    fn build(&mut self, norm: &[i16], log: u32) -> core::result::Result<(), ()> {
        let size = 1usize << log;
        if size > N || norm.len() > 256 {
            return Err(());
        }
        let mut next = [0u16; 256];
        let mut high = size;
        for (s, &n) in norm.iter().enumerate() {
            if n == -1 {
                high = high.checked_sub(1).ok_or(())?;
                *self.symbol.get_mut(high).ok_or(())? = s as u8;
                next[s] = 1;
            }
        }
        let step = (size >> 1) + (size >> 3) + 3;
        let mask = size - 1;
        let mut pos = 0usize;
        for (s, &n) in norm.iter().enumerate() {
            if n <= 0 {
                continue;
            }
            next[s] = n as u16;
            for _ in 0..n {
                *self.symbol.get_mut(pos).ok_or(())? = s as u8;
                loop {
                    pos = (pos + step) & mask;
                    if pos < high {
                        break;
                    }
                }
            }
        }
        if pos != 0 {
            return Err(());
        }
        for i in 0..size {
            let s = usize::from(*self.symbol.get(i).ok_or(())?);
            let d = next[s];
            next[s] = d.wrapping_add(1);
            if d == 0 {
                return Err(());
            }
            let nb = log.checked_sub(15 - d.leading_zeros()).ok_or(())?;
            self.bits[i] = nb as u8;
            self.base[i] = ((u32::from(d) << nb) as usize).wrapping_sub(size) as u16;
        }
        self.log = log;
        Ok(())
    }

    /// A one-symbol table (RLE mode).
    fn rle(&mut self, symbol: u8) {
        self.symbol[0] = symbol;
        self.bits[0] = 0;
        self.base[0] = 0;
        self.log = 0;
    }

    /// Reads a table description from the forward bitstream at `src`; returns the bytes used.
    fn read(
        &mut self,
        src: &[u8],
        max_log: u32,
        max_symbol: usize,
    ) -> core::result::Result<usize, ()> {
        let mut r = Forward { src, pos: 0 };
        let log = r.bits(4)? + 5;
        if log > max_log {
            return Err(());
        }
        let mut norm = [0i16; 256];
        let mut remaining = 1i32 << log;
        let mut s = 0usize;
        while remaining > 0 {
            if s > max_symbol {
                return Err(());
            }
            let bits = 32 - (remaining as u32 + 1).leading_zeros();
            let mut val = r.bits(bits)? as i32;
            let lower_mask = (1i32 << (bits - 1)) - 1;
            let threshold = (1i32 << bits) - 1 - (remaining + 1);
            if (val & lower_mask) < threshold {
                r.pos -= 1;
                val &= lower_mask;
            } else if val > lower_mask {
                val -= threshold;
            }
            let proba = val - 1;
            remaining -= proba.abs();
            norm[s] = proba as i16;
            s += 1;
            if proba == 0 {
                loop {
                    let repeat = r.bits(2)?;
                    for _ in 0..repeat {
                        if s > max_symbol {
                            return Err(());
                        }
                        norm[s] = 0;
                        s += 1;
                    }
                    if repeat != 3 {
                        break;
                    }
                }
            }
        }
        if remaining != 0 {
            return Err(());
        }
        self.build(&norm[..s], log)?;
        Ok(r.pos.div_ceil(8))
    }

    fn init(&self, r: &mut Backward) -> usize {
        r.bits(self.log) as usize
    }

    fn peek(&self, state: usize) -> u8 {
        self.symbol.get(state).copied().unwrap_or(0)
    }

    fn update(&self, state: usize, r: &mut Backward) -> usize {
        let nb = u32::from(self.bits.get(state).copied().unwrap_or(0));
        usize::from(self.base.get(state).copied().unwrap_or(0)) + r.bits(nb) as usize
    }
}

/// Little-endian forward bit reader (FSE table descriptions).
struct Forward<'a> {
    src: &'a [u8],
    pos: usize,
}

impl Forward<'_> {
    fn bits(&mut self, n: u32) -> core::result::Result<u32, ()> {
        let mut v = 0u32;
        for k in 0..n {
            let b = self.pos + k as usize;
            let byte = *self.src.get(b / 8).ok_or(())?;
            v |= u32::from((byte >> (b % 8)) & 1) << k;
        }
        self.pos += n as usize;
        Ok(v)
    }
}

/// Backward bit reader: starts below the final byte's marker bit and reads towards the start; bits before the
/// start read as zero (as the format allows for the last state reads), and `remaining` goes negative.
struct Backward<'a> {
    src: &'a [u8],
    remaining: i64,
}

impl<'a> Backward<'a> {
    fn new(src: &'a [u8]) -> core::result::Result<Self, ()> {
        let last = *src.last().ok_or(())?;
        if last == 0 {
            return Err(());
        }
        let marker = 7 - last.leading_zeros() as i64;
        Ok(Backward {
            src,
            remaining: 8 * (src.len() as i64 - 1) + marker,
        })
    }

    fn bits(&mut self, n: u32) -> u64 {
        self.remaining -= i64::from(n);
        let mut v = 0u64;
        for k in 0..i64::from(n) {
            let b = self.remaining + k;
            if b >= 0 {
                let byte = self.src.get((b / 8) as usize).copied().unwrap_or(0);
                v |= u64::from((byte >> (b % 8)) & 1) << k;
            }
        }
        v
    }
}

/// A Huffman decoding table for literals.
struct Huffman {
    symbol: [u8; HUF_TABLE],
    bits: [u8; HUF_TABLE],
    max_bits: u32,
}

impl Huffman {
    /// Reads the tree description; returns the bytes used.
    fn read(&mut self, src: &[u8]) -> core::result::Result<usize, ()> {
        let h = usize::from(*src.first().ok_or(())?);
        let mut weights = [0u8; 256];
        let (count, used) = if h < 128 {
            // FSE-compressed weights: two interleaved states over `h` bytes.
            let data = src.get(1..1 + h).ok_or(())?;
            let mut table: Fse<64> = Fse::new();
            let head = table.read(data, 6, 255)?;
            let mut r = Backward::new(data.get(head..).ok_or(())?)?;
            let mut s1 = table.init(&mut r);
            let mut s2 = table.init(&mut r);
            let mut n = 0usize;
            loop {
                *weights.get_mut(n).ok_or(())? = table.peek(s1);
                n += 1;
                s1 = table.update(s1, &mut r);
                if r.remaining < 0 {
                    *weights.get_mut(n).ok_or(())? = table.peek(s2);
                    n += 1;
                    break;
                }
                *weights.get_mut(n).ok_or(())? = table.peek(s2);
                n += 1;
                s2 = table.update(s2, &mut r);
                if r.remaining < 0 {
                    *weights.get_mut(n).ok_or(())? = table.peek(s1);
                    n += 1;
                    break;
                }
            }
            (n, 1 + h)
        } else {
            // Direct: 4 bits per weight.
            let n = h - 127;
            let data = src.get(1..1 + n.div_ceil(2)).ok_or(())?;
            for i in 0..n {
                let b = data[i / 2];
                weights[i] = if i % 2 == 0 { b >> 4 } else { b & 15 };
            }
            (n, 1 + n.div_ceil(2))
        };
        // The last symbol's weight is implied: the total must reach a power of two.
        let mut total = 0u32;
        for &w in &weights[..count] {
            if w > 11 {
                return Err(());
            }
            if w > 0 {
                total += 1 << (w - 1);
            }
        }
        if total == 0 || count >= 256 {
            return Err(());
        }
        let max_bits = 32 - total.leading_zeros();
        if max_bits > HUF_MAX_BITS {
            return Err(());
        }
        let rest = (1u32 << max_bits) - total;
        if !rest.is_power_of_two() {
            return Err(());
        }
        weights[count] = (rest.trailing_zeros() + 1) as u8;
        let symbols = count + 1;
        let mut nbits = [0u8; 256];
        let mut rank = [0u32; 13];
        for (n, &w) in nbits.iter_mut().zip(&weights).take(symbols) {
            if w > 0 {
                // w ≤ max_bits: the weights' total reached 2^(w−1) at least.
                let b = max_bits + 1 - u32::from(w);
                *n = b as u8;
                rank[b as usize] += 1;
            }
        }
        let mut start = [0u32; 13];
        let mut next = 0u32;
        for b in (1..=max_bits as usize).rev() {
            start[b] = next;
            next += rank[b] << (max_bits - b as u32);
        }
        if next != 1 << max_bits {
            return Err(());
        }
        for (s, &n) in nbits.iter().enumerate().take(symbols) {
            let b = u32::from(n);
            if b == 0 {
                continue;
            }
            let len = 1u32 << (max_bits - b);
            let from = start[b as usize] as usize;
            self.symbol
                .get_mut(from..from + len as usize)
                .ok_or(())?
                .fill(s as u8);
            self.bits[from..from + len as usize].fill(b as u8);
            start[b as usize] += len;
        }
        self.max_bits = max_bits;
        Ok(used)
    }

    /// Decodes one stream of exactly `out.len()` symbols.
    fn stream(&self, src: &[u8], out: &mut [u8]) -> core::result::Result<(), ()> {
        let mut r = Backward::new(src)?;
        let mask = (1usize << self.max_bits) - 1;
        let mut state = r.bits(self.max_bits) as usize;
        for o in out.iter_mut() {
            let s = state & mask;
            *o = self.symbol[s];
            let nb = u32::from(self.bits[s]);
            state = ((s << nb) | r.bits(nb) as usize) & mask;
        }
        if r.remaining != -i64::from(self.max_bits) {
            return Err(());
        }
        Ok(())
    }
}

/// What persists between blocks of a frame.
struct State {
    huffman: Huffman,
    have_huffman: bool,
    ll: Fse<{ 1 << LL_MAX_LOG }>,
    of: Fse<{ 1 << OF_MAX_LOG }>,
    ml: Fse<{ 1 << ML_MAX_LOG }>,
    have_tables: [bool; 3],
    reps: [usize; 3],
}

impl State {
    fn new() -> Self {
        State {
            huffman: Huffman {
                symbol: [0; HUF_TABLE],
                bits: [0; HUF_TABLE],
                max_bits: 0,
            },
            have_huffman: false,
            ll: Fse::new(),
            of: Fse::new(),
            ml: Fse::new(),
            have_tables: [false; 3],
            reps: [1, 4, 8],
        }
    }

    /// Decodes one compressed block into `dst` from `out`; returns the new output position.
    fn block(&mut self, src: &[u8], dst: &mut [u8], out: usize) -> core::result::Result<usize, ()> {
        let (lit_len, used) = self.literals(src, dst, out)?;
        let lit_start = dst.len() - lit_len;
        self.sequences(src.get(used..).ok_or(())?, dst, out, lit_start)
    }

    /// Decodes the literals section into the tail of `dst`; returns (literal count, bytes used).
    fn literals(
        &mut self,
        src: &[u8],
        dst: &mut [u8],
        out: usize,
    ) -> core::result::Result<(usize, usize), ()> {
        let b0 = *src.first().ok_or(())?;
        let kind = b0 & 3;
        let format = (b0 >> 2) & 3;
        let byte = |i: usize| src.get(i).copied().map(u32::from).ok_or(());
        if kind < 2 {
            let (regen, head) = match format {
                0 | 2 => (u32::from(b0 >> 3), 1),
                1 => (u32::from(b0 >> 4) | byte(1)? << 4, 2),
                _ => (u32::from(b0 >> 4) | byte(1)? << 4 | byte(2)? << 12, 3),
            };
            let regen = regen as usize;
            let free = dst.len().checked_sub(out).ok_or(())?;
            if regen > free || regen > MAX_BLOCK {
                return Err(());
            }
            let tail = dst.get_mut(dst.len() - regen..).ok_or(())?;
            return if kind == 0 {
                tail.copy_from_slice(src.get(head..head + regen).ok_or(())?);
                Ok((regen, head + regen))
            } else {
                tail.fill(*src.get(head).ok_or(())?);
                Ok((regen, head + 1))
            };
        }
        let (streams, regen, comp, head) = match format {
            0 | 1 => {
                let h = u32::from(b0) | byte(1)? << 8 | byte(2)? << 16;
                (
                    if format == 0 { 1 } else { 4 },
                    (h >> 4) & 0x3FF,
                    (h >> 14) & 0x3FF,
                    3,
                )
            }
            2 => {
                let h = u32::from(b0) | byte(1)? << 8 | byte(2)? << 16 | byte(3)? << 24;
                (4, (h >> 4) & 0x3FFF, h >> 18, 4)
            }
            _ => {
                let h = u64::from(b0)
                    | u64::from(byte(1)?) << 8
                    | u64::from(byte(2)?) << 16
                    | u64::from(byte(3)?) << 24
                    | u64::from(byte(4)?) << 32;
                (
                    4,
                    ((h >> 4) & 0x3FFFF) as u32,
                    ((h >> 22) & 0x3FFFF) as u32,
                    5,
                )
            }
        };
        let (regen, comp) = (regen as usize, comp as usize);
        let free = dst.len().checked_sub(out).ok_or(())?;
        if regen > free || regen > MAX_BLOCK {
            return Err(());
        }
        let mut data = src.get(head..head + comp).ok_or(())?;
        if kind == 2 {
            let used = self.huffman.read(data)?;
            data = data.get(used..).ok_or(())?;
            self.have_huffman = true;
        } else if !self.have_huffman {
            return Err(());
        }
        let start = dst.len() - regen;
        let tail = dst.get_mut(start..).ok_or(())?;
        if streams == 1 {
            self.huffman.stream(data, tail)?;
        } else {
            let jump = data.get(0..6).ok_or(())?;
            let s1 = usize::from(u16::from_le_bytes([jump[0], jump[1]]));
            let s2 = usize::from(u16::from_le_bytes([jump[2], jump[3]]));
            let s3 = usize::from(u16::from_le_bytes([jump[4], jump[5]]));
            let body = data.get(6..).ok_or(())?;
            let s4 = body.len().checked_sub(s1 + s2 + s3).ok_or(())?;
            let per = regen.div_ceil(4);
            let last = regen.checked_sub(3 * per).ok_or(())?;
            let mut from = 0usize;
            let mut at = 0usize;
            for (k, len) in [s1, s2, s3, s4].into_iter().enumerate() {
                let n = if k == 3 { last } else { per };
                self.huffman.stream(
                    body.get(from..from + len).ok_or(())?,
                    tail.get_mut(at..at + n).ok_or(())?,
                )?;
                from += len;
                at += n;
            }
        }
        Ok((regen, head + comp))
    }

    /// Decodes and executes the sequences section; returns the new output position.
    fn sequences(
        &mut self,
        src: &[u8],
        dst: &mut [u8],
        mut out: usize,
        mut lit: usize,
    ) -> core::result::Result<usize, ()> {
        let byte = |i: usize| src.get(i).copied().map(usize::from).ok_or(());
        let b0 = byte(0)?;
        let (count, mut pos) = match b0 {
            0 => (0, 1),
            1..=127 => (b0, 1),
            128..=254 => (((b0 - 128) << 8) + byte(1)?, 2),
            _ => (byte(1)? + (byte(2)? << 8) + 0x7F00, 3),
        };
        if count > 0 {
            let modes = byte(pos)?;
            pos += 1;
            if modes & 3 != 0 {
                return Err(());
            }
            for (k, shift) in [(0usize, 6u32), (1, 4), (2, 2)] {
                let mode = (modes >> shift) & 3;
                let rest = src.get(pos..).ok_or(())?;
                let used = match (k, mode) {
                    (0, 0) => self.ll.build(&LL_DEFAULT, 6).map(|()| 0)?,
                    (1, 0) => self.of.build(&OF_DEFAULT, 5).map(|()| 0)?,
                    (2, 0) => self.ml.build(&ML_DEFAULT, 6).map(|()| 0)?,
                    (_, 1) => {
                        let s = *rest.first().ok_or(())?;
                        let limit = [35u8, 31, 52][k];
                        if s > limit {
                            return Err(());
                        }
                        match k {
                            0 => self.ll.rle(s),
                            1 => self.of.rle(s),
                            _ => self.ml.rle(s),
                        }
                        1
                    }
                    (0, 2) => self.ll.read(rest, LL_MAX_LOG, 35)?,
                    (1, 2) => self.of.read(rest, OF_MAX_LOG, 31)?,
                    (2, 2) => self.ml.read(rest, ML_MAX_LOG, 52)?,
                    _ => {
                        if !self.have_tables[k] {
                            return Err(());
                        }
                        0
                    }
                };
                self.have_tables[k] = true;
                pos += used;
            }
            let mut r = Backward::new(src.get(pos..).ok_or(())?)?;
            let mut ll_state = self.ll.init(&mut r);
            let mut of_state = self.of.init(&mut r);
            let mut ml_state = self.ml.init(&mut r);
            for i in 0..count {
                let of_code = u32::from(self.of.peek(of_state));
                let ll_code = usize::from(self.ll.peek(ll_state));
                let ml_code = usize::from(self.ml.peek(ml_state));
                if of_code > 31 || ll_code >= LL_BASE.len() || ml_code >= ML_BASE.len() {
                    return Err(());
                }
                let offset_value = (1u64 << of_code) + r.bits(of_code);
                let ml = ML_BASE[ml_code] as usize + r.bits(u32::from(ML_BITS[ml_code])) as usize;
                let ll = LL_BASE[ll_code] as usize + r.bits(u32::from(LL_BITS[ll_code])) as usize;
                let offset = self.offset(offset_value as usize, ll)?;
                if i + 1 < count {
                    ll_state = self.ll.update(ll_state, &mut r);
                    ml_state = self.ml.update(ml_state, &mut r);
                    of_state = self.of.update(of_state, &mut r);
                }
                // Literals, then the match (which may overlap its own output).
                if lit + ll > dst.len() || out > lit {
                    return Err(());
                }
                dst.copy_within(lit..lit + ll, out);
                lit += ll;
                out += ll;
                if offset > out || out + ml > lit {
                    return Err(());
                }
                for j in 0..ml {
                    dst[out + j] = dst[out + j - offset];
                }
                out += ml;
            }
            if r.remaining != 0 {
                return Err(());
            }
        }
        let rest = dst.len() - lit;
        if out + rest > dst.len() || out > lit {
            return Err(());
        }
        dst.copy_within(lit.., out);
        Ok(out + rest)
    }

    /// Resolves an offset value against the repeat offsets (RFC 8878 §3.1.2.5).
    fn offset(&mut self, value: usize, ll: usize) -> core::result::Result<usize, ()> {
        let r = &mut self.reps;
        if value > 3 {
            let o = value - 3;
            *r = [o, r[0], r[1]];
            return Ok(o);
        }
        let idx = value - 1 + usize::from(ll == 0);
        Ok(match idx {
            0 => r[0],
            1 => {
                let o = r[1];
                *r = [o, r[0], r[2]];
                o
            }
            2 => {
                let o = r[2];
                *r = [o, r[0], r[1]];
                o
            }
            _ => {
                let o = r[0].checked_sub(1).filter(|&o| o > 0).ok_or(())?;
                *r = [o, r[0], r[1]];
                o
            }
        })
    }
}
