//! Sparse weight streams: the relative positions and cluster indices of the kept weights, bit-packed or
//! canonical-Huffman coded, decoded on the fly (no tables in memory beyond a few hundred bytes of stack).
//!
//! Bits are read most significant first within each byte. A fixed-width field of `w` bits is written most
//! significant bit first. Canonical Huffman codes are assigned in order of (code length, symbol), as in DEFLATE,
//! and read bit by bit.

/// Longest Huffman code the format allows.
pub const MAX_CODE_BITS: usize = 15;

/// The bit window: a machine word, so that a 32-bit core (a Cortex-M) shifts one register rather than a pair
/// (measured on the Cortex-M3: a 64-bit window cost about twice the instructions per symbol).
type Window = usize;
/// Bits in [`Window`].
const WINDOW_BITS: u32 = Window::BITS;
/// Bytes in [`Window`].
const WINDOW_BYTES: usize = core::mem::size_of::<Window>();

/// Reads bits MSB-first through a word-sized window refilled a word at a time, so that a field of up to 16 bits
/// costs a shift and a mask rather than a loop over bits. After a refill the window holds at least
/// `WINDOW_BITS − 7` bits (25 on a 32-bit core), enough for any one field or code ([`MAX_CODE_BITS`]).
#[derive(Clone)]
pub(crate) struct BitReader<'a> {
    /// The bytes not loaded into the window yet (a shrinking slice: two registers where a slice and an offset
    /// took three, which the sparse kernels' loops need).
    rest: &'a [u8],
    /// Unread bits, left-aligned (the next bit is the window's top bit).
    window: Window,
    /// Number of valid bits in `window`.
    count: u32,
    /// The OR of every `count` after a drop: its top bit is set once the reader ran past the end.
    seen: u32,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        BitReader {
            rest: bytes,
            window: 0,
            count: 0,
            seen: 0,
        }
    }

    /// Tops the window up. The common case (a whole word left in the stream) is inlined: one load, with the
    /// reader's fields kept in registers by the kernel loop; the stream's last bytes go through
    /// [`refill_tail`], out of line and by value so that it does not pin the reader to memory either.
    #[inline(always)]
    fn refill(&mut self) {
        // One word load fills the window to at least WINDOW_BITS − 7 bits. The bits loaded past the whole bytes
        // counted are the stream's own next bits, so loading them again later ORs identical values.
        if let Some(chunk) = self.rest.get(..WINDOW_BYTES) {
            let mut b = [0u8; WINDOW_BYTES];
            b.copy_from_slice(chunk);
            self.window |= Window::from_be_bytes(b) >> self.count;
            // count < WINDOW_BITS here (refills happen below a field's width): whole < WINDOW_BYTES.
            let whole = (WINDOW_BITS - 1 - self.count) / 8;
            self.rest = self.rest.get(whole as usize..).unwrap_or(&[]);
            self.count += 8 * whole;
        } else {
            (self.rest, self.window, self.count) = refill_tail(self.rest, self.window, self.count);
        }
    }
}

/// The byte-at-a-time refill for the last bytes of a stream: (rest, window, count) after it.
#[inline(never)]
#[cold]
fn refill_tail(mut rest: &[u8], mut window: Window, mut count: u32) -> (&[u8], Window, u32) {
    while count <= WINDOW_BITS - 8 {
        let Some((&b, tail)) = rest.split_first() else {
            break;
        };
        window |= Window::from(b) << (WINDOW_BITS - 8 - count);
        rest = tail;
        count += 8;
    }
    (rest, window, count)
}

/// Bits resolved by one lookup in [`Huffman::fast`]; longer codes fall back to the canonical search.
const FAST_BITS: usize = 8;

/// Where a code's length sits in a [`Huffman::fast`] entry: the top five bits, so that the shift it drives is
/// known to be below 32 and needs no mask (one instruction per symbol on a Cortex-M).
const LENGTH_SHIFT: u16 = 11;

/// A canonical Huffman decoding table built from code lengths on the stack.
pub(crate) struct Huffman {
    /// For every `FAST_BITS`-bit prefix: `length << LENGTH_SHIFT | symbol` of the code it starts with, or 0 when
    /// that code is longer than `FAST_BITS` (or unused). 512 bytes that replace a search over code lengths per
    /// symbol.
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
    /// A table with no codes, for [`Huffman::build`].
    pub(crate) const EMPTY: Huffman = Huffman {
        fast: [0; 1 << FAST_BITS],
        first: [0; MAX_CODE_BITS + 1],
        counts: [0; MAX_CODE_BITS + 1],
        offsets: [0; MAX_CODE_BITS + 1],
        symbols: [0; 256],
    };

    /// Builds the table for `lengths[s]` = code length of symbol `s` (0: unused). Fails on lengths over
    /// [`MAX_CODE_BITS`], more than 256 symbols, or an over-subscribed code (Kraft sum above 1).
    pub(crate) fn new(lengths: &[u8]) -> Option<Huffman> {
        let mut table = Huffman::EMPTY;
        table.build(lengths).then_some(table)
    }

    /// [`Huffman::new`] into an [`Huffman::EMPTY`] table where it lies: false if the lengths are invalid. A
    /// kernel's tables are built this way, since moving one (760 bytes) costs more than building it (measured
    /// on the Cortex-M3: a fifth of the building, copies which `new` makes twice).
    pub(crate) fn build(&mut self, lengths: &[u8]) -> bool {
        if lengths.len() > 256 {
            return false;
        }
        let mut counts = [0u16; MAX_CODE_BITS + 1];
        for &l in lengths {
            if usize::from(l) > MAX_CODE_BITS {
                return false;
            }
            counts[usize::from(l)] += 1;
        }
        counts[0] = 0;
        let mut left: i32 = 1;
        for &c in &counts[1..] {
            left = left * 2 - i32::from(c);
            if left < 0 {
                return false;
            }
        }
        let (mut code, mut index) = (0u32, 0u16);
        for (len, &count) in counts.iter().enumerate().skip(1) {
            self.first[len] = code as u16;
            self.offsets[len] = index;
            index += count;
            code = (code + u32::from(count)) << 1;
        }
        self.counts = counts;
        let mut slots = self.offsets;
        for (s, &l) in lengths.iter().enumerate() {
            if l != 0 {
                let len = usize::from(l);
                let slot = &mut slots[len];
                if len <= FAST_BITS {
                    // The code is first[len] + its rank among codes of its length; every prefix it starts maps to it.
                    let code =
                        usize::from(self.first[len]) + usize::from(*slot - self.offsets[len]);
                    let from = code << (FAST_BITS - len);
                    let to = (code + 1) << (FAST_BITS - len);
                    let Some(entries) = self.fast.get_mut(from..to) else {
                        return false;
                    };
                    for e in entries {
                        *e = (len as u16) << LENGTH_SHIFT | s as u16;
                    }
                }
                self.symbols[usize::from(*slot)] = s as u8;
                *slot += 1;
            }
        }
        true
    }

    /// (length, symbol) of the code longer than `FAST_BITS` that starts the `MAX_CODE_BITS` bits `bits`, or `None`
    /// when no code does. Out of line: codes that long are rare, by construction.
    #[inline(never)]
    fn slow(&self, bits: u32) -> Option<(u32, u32)> {
        for len in FAST_BITS + 1..=MAX_CODE_BITS {
            let code = bits >> (MAX_CODE_BITS - len);
            let d = code.wrapping_sub(u32::from(self.first[len]));
            if d < u32::from(self.counts[len]) {
                return self
                    .symbols
                    .get(usize::from(self.offsets[len]) + d as usize)
                    .map(|&s| (len as u32, u32::from(s)));
            }
        }
        None
    }
}

/// One stream's symbol decoder. The sparse walk is generic over the decoders of its two streams, so each
/// combination of codings gets its own loop without a dispatch per symbol.
pub(crate) trait Decode: Clone {
    /// The next symbol. Past the end of the stream, or on a code not in the table, it returns some symbol and
    /// (when `CHECKED`) [`Decode::corrupt`] turns true: the walk checks that once at the end instead of once per
    /// symbol. Unchecked decoding is for streams validated at load: it reads the same bits with less work.
    fn next<const CHECKED: bool>(&mut self) -> u32;
    /// Whether the decoder ran past the end of its stream or met an invalid code.
    fn corrupt(&self) -> bool;
}

impl BitReader<'_> {
    /// Refills when fewer than `width` bits are in the window; past the end, flags the reader and pretends the
    /// missing bits are zero.
    #[inline(always)]
    fn ensure(&mut self, width: u32) {
        if self.count < width {
            self.refill();
        }
    }

    /// Drops `width` bits, which the caller has looked at. If fewer were left, `count` wraps below zero and its
    /// top bit, kept in `seen`, says so: one OR per symbol instead of a test and a branch. (It cannot wrap back:
    /// that would take 2³¹ bits past the end, while loading bounds a stream to 16 MiB and its symbols to one per
    /// bit, so that at most 15 · 8 · 2²⁴ < 2³¹ bits are ever read.)
    #[inline(always)]
    fn drop_bits<const CHECKED: bool>(&mut self, width: u32) {
        self.window <<= width;
        self.count = self.count.wrapping_sub(width);
        if CHECKED {
            self.seen |= self.count;
        }
    }

    /// Whether more bits were dropped than the stream holds.
    fn overran(&self) -> bool {
        self.seen & (1 << 31) != 0
    }

    /// The top `width` bits of the window (zero-padded).
    #[inline(always)]
    fn top(&self, width: u32) -> u32 {
        (self.window >> (WINDOW_BITS - width)) as u32
    }
}

/// Fixed-width fields.
#[derive(Clone)]
pub(crate) struct Packed<'a> {
    reader: BitReader<'a>,
    width: u32,
}

impl<'a> Packed<'a> {
    /// Fields of `width` bits (1..=8) read from `bytes`.
    pub(crate) fn new(bytes: &'a [u8], width: u32) -> Self {
        Packed {
            reader: BitReader::new(bytes),
            width: width.clamp(1, 16),
        }
    }
}

impl Decode for Packed<'_> {
    #[inline(always)]
    fn next<const CHECKED: bool>(&mut self) -> u32 {
        self.reader.ensure(self.width);
        let v = self.reader.top(self.width);
        self.reader.drop_bits::<CHECKED>(self.width);
        v
    }
    fn corrupt(&self) -> bool {
        self.reader.overran()
    }
}

/// Canonical Huffman codes. The table lives apart from the decoder, so that the decoder is a few words the
/// kernel loop keeps in registers.
#[derive(Clone)]
pub(crate) struct HuffmanCodes<'a, 't> {
    reader: BitReader<'a>,
    table: &'t Huffman,
    bad: bool,
}

impl<'a, 't> HuffmanCodes<'a, 't> {
    /// Codes of `table` read from `bytes`.
    pub(crate) fn new(bytes: &'a [u8], table: &'t Huffman) -> Self {
        HuffmanCodes {
            reader: BitReader::new(bytes),
            table,
            bad: false,
        }
    }
}

impl Decode for HuffmanCodes<'_, '_> {
    #[inline(always)]
    fn next<const CHECKED: bool>(&mut self) -> u32 {
        let r = &mut self.reader;
        // The lookup needs FAST_BITS bits only: refilling for those (not for the longest code) halves the refills.
        r.ensure(FAST_BITS as u32);
        let e = self.table.fast[r.top(FAST_BITS as u32) as usize & ((1 << FAST_BITS) - 1)];
        if e != 0 {
            // Its own drop, so that the shift by a length known to be below 32 needs no mask.
            r.drop_bits::<CHECKED>(u32::from(e >> LENGTH_SHIFT));
            return u32::from(e & 0xFF);
        }
        r.ensure(MAX_CODE_BITS as u32);
        let (len, symbol) = match self.table.slow(r.top(MAX_CODE_BITS as u32)) {
            Some(found) => found,
            None => {
                // Unchecked streams were validated at load: there is nothing to note (and the flag then stays
                // out of the kernels' registers).
                self.bad |= CHECKED;
                (1, 0)
            }
        };
        r.drop_bits::<CHECKED>(len);
        symbol
    }
    fn corrupt(&self) -> bool {
        self.bad || self.reader.overran()
    }
}

/// Symbols already decoded into bytes (zstd-coded or arena-decoded streams).
#[cfg_attr(not(feature = "arena-decoding"), allow(dead_code))]
#[derive(Clone)]
pub(crate) struct Bytes<'a> {
    bytes: &'a [u8],
    next: usize,
}

#[cfg_attr(not(feature = "arena-decoding"), allow(dead_code))]
impl<'a> Bytes<'a> {
    /// One symbol per byte of `bytes`.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Bytes { bytes, next: 0 }
    }
}

impl Decode for Bytes<'_> {
    #[inline(always)]
    fn next<const CHECKED: bool>(&mut self) -> u32 {
        let v = self.bytes.get(self.next).map_or(0, |&b| u32::from(b));
        self.next += 1;
        v
    }
    fn corrupt(&self) -> bool {
        self.next > self.bytes.len()
    }
}

/// What a kernel does with a sparse layer's kept weights, row by row (a row: one output of a dense layer, one
/// output channel of a convolution).
pub(crate) trait Sink {
    /// Kept weights of the current row: at columns `cols` (increasing, each < fan-in), with codebook indices
    /// `indices` (each < codebook size); both slices have the same length. A row may come in several calls.
    fn weights(&mut self, cols: &[u32], indices: &[u8]);
    /// Row `row` is complete: called once for every row, in order, empty rows included.
    fn end_row(&mut self, row: usize);
}

/// The shape of a sparse layer's streams.
#[derive(Clone, Copy)]
pub(crate) struct Layout {
    /// Position symbols, fillers included.
    pub symbols: u32,
    /// Bits per position symbol: the filler symbol is `2^bits − 1`.
    pub position_bits: u32,
    /// Columns per row.
    pub fan_in: usize,
    /// Rows.
    pub rows: usize,
    /// Codebook entries.
    pub codebook_len: u32,
}

/// Kept weights decoded at a time by [`walk`].
const CHUNK: usize = 64;

/// Decodes position symbols into the columns of up to [`CHUNK`] weights (`cols`), noting in `cuts` where rows
/// change (first weight of the new row, the new row), and returns (weights, cuts). Stops after `CHUNK` weights,
/// `CHUNK` cuts or the last symbol. Runs out of line (behind [`Chunked`]), so that its loop has the registers to
/// itself.
#[inline(always)]
fn columns<const CHECKED: bool, P: Decode>(
    positions: &mut P,
    left: &mut u32,
    (col, row): (&mut usize, &mut usize),
    n: usize,
    filler: u32,
    cols: &mut [u32; CHUNK],
    cuts: &mut [(usize, usize); CHUNK],
) -> (usize, usize) {
    let (mut k, mut c) = (0usize, 0usize);
    // Local copies, written back at the end: values whose address is not taken live in registers.
    let (mut x, mut r, mut remaining) = (*col, *row, *left);
    let mut p = positions.clone();
    // x < n ≤ 2^28 and g < 2^16 before each addition: no overflow.
    while remaining > 0 {
        remaining -= 1;
        let g = p.next::<CHECKED>();
        x += g as usize;
        if x >= n {
            let skip = x / n;
            x -= skip * n;
            r = r.saturating_add(skip);
            cuts[c % CHUNK] = (k, r);
            c += 1;
            if c == CHUNK {
                // The cut table is full: finish this symbol and end the chunk.
                if g != filler {
                    cols[k % CHUNK] = x as u32;
                    x += 1;
                    k += 1;
                }
                break;
            }
        }
        if g != filler {
            cols[k % CHUNK] = x as u32;
            x += 1;
            k += 1;
            if k == CHUNK {
                break;
            }
        }
    }
    (*col, *row, *left) = (x, r, remaining);
    *positions = p;
    (k, c)
}

/// Decodes one index per slot of `found`; with `CHECKED`, returns whether one is outside the codebook.
#[inline(always)]
fn indices_into<const CHECKED: bool, I: Decode>(
    indices: &mut I,
    found: &mut [u8],
    codebook_len: u32,
) -> bool {
    let mut bad = false;
    let mut d = indices.clone();
    for slot in found.iter_mut() {
        let index = d.next::<CHECKED>();
        if CHECKED {
            bad |= index >= codebook_len;
        }
        // At most 8 bits: a byte each.
        *slot = index as u8;
    }
    *indices = d;
    bad
}

/// One stream behind a trait object, decoded a chunk at a time: the walk is compiled once per kernel, while the
/// decoding loops are compiled once per coding (and checking), and one indirect call per chunk of [`CHUNK`]
/// weights costs nothing measurable. (Monomorphizing the walk for every pair of codings and every kernel made
/// the integer-only runtime 37 KB of code; this way it is 29 KB at the same speed.)
pub(crate) trait Chunked {
    /// [`columns`] on this stream's position symbols.
    fn columns(
        &mut self,
        left: &mut u32,
        at: (&mut usize, &mut usize),
        n: usize,
        filler: u32,
        cols: &mut [u32; CHUNK],
        cuts: &mut [(usize, usize); CHUNK],
    ) -> (usize, usize);
    /// [`indices_into`] on this stream's index symbols.
    fn indices(&mut self, found: &mut [u8], codebook_len: u32) -> bool;
    /// Whether the stream ran past its end or met an invalid code (when checked).
    fn corrupt(&self) -> bool;
}

/// A decoder as a [`Chunked`] stream; `CHECKED` as in [`Decode::next`].
pub(crate) struct Chunks<D, const CHECKED: bool>(pub D);

impl<D: Decode, const CHECKED: bool> Chunked for Chunks<D, CHECKED> {
    fn columns(
        &mut self,
        left: &mut u32,
        at: (&mut usize, &mut usize),
        n: usize,
        filler: u32,
        cols: &mut [u32; CHUNK],
        cuts: &mut [(usize, usize); CHUNK],
    ) -> (usize, usize) {
        columns::<CHECKED, D>(&mut self.0, left, at, n, filler, cols, cuts)
    }
    fn indices(&mut self, found: &mut [u8], codebook_len: u32) -> bool {
        indices_into::<CHECKED, D>(&mut self.0, found, codebook_len)
    }
    fn corrupt(&self) -> bool {
        CHECKED && self.0.corrupt()
    }
}

/// Walks the kept weights: position symbol `g < MAX` places a weight `g` columns after the previous one's
/// successor (continuing into the following rows), `g == MAX` (= 2^bits − 1) skips `MAX` columns and carries no
/// weight. Calls `sink` for every weight and every row, and returns `None` when the streams are inconsistent
/// (a weight past the last row; for checked streams also an index outside the codebook, a stream too short or
/// holding an invalid code). The sink may have been called before an inconsistency is found. Unchecked streams
/// are for streams validated at load (by a checked walk): they cannot go wrong, and nothing they read is out of
/// bounds either way.
///
/// Decodes [`CHUNK`] weights at a time, in three short loops (positions into columns, indices, the kernel on
/// each row's run of weights) rather than one long one: each keeps its few values in registers, where a single
/// loop over both decoders and the kernel spilled to the stack on a 32-bit core (measured on the Cortex-M3:
/// BENCHMARKS.md).
pub(crate) fn walk<S: Sink>(
    positions: &mut dyn Chunked,
    indices: &mut dyn Chunked,
    layout: Layout,
    sink: &mut S,
) -> Option<()> {
    let filler = (1u32 << layout.position_bits.min(16)) - 1;
    let (n, rows) = (layout.fan_in.max(1), layout.rows);
    // The column and row the positions have reached, and the rows the sink has been told are complete.
    let (mut col, mut row, mut ended) = (0usize, 0usize, 0usize);
    let mut left = layout.symbols;
    let mut cols = [0u32; CHUNK];
    let mut found = [0u8; CHUNK];
    // Where rows change within a chunk: (first weight of the new row, the new row).
    let mut cuts = [(0usize, 0usize); CHUNK];
    let mut bad = false;
    while left > 0 {
        let (k, c) = positions.columns(
            &mut left,
            (&mut col, &mut row),
            n,
            filler,
            &mut cols,
            &mut cuts,
        );
        bad |= indices.indices(found.get_mut(..k)?, layout.codebook_len);
        // The kernel, on each row's run of weights.
        let mut start = 0usize;
        for &(at, next_row) in cuts.iter().take(c) {
            if at > start {
                bad |= ended >= rows;
                sink.weights(cols.get(start..at)?, found.get(start..at)?);
            }
            for r in ended..next_row.min(rows) {
                sink.end_row(r);
            }
            (start, ended) = (at, next_row);
        }
        if k > start {
            bad |= ended >= rows;
            sink.weights(cols.get(start..k)?, found.get(start..k)?);
        }
        if bad {
            return None;
        }
    }
    for r in ended..rows {
        sink.end_row(r);
    }
    (!positions.corrupt() && !indices.corrupt()).then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_codes_decode_in_length_then_symbol_order() {
        // Lengths: A=2, B=1, C=3, D=3 → B=0, A=10, C=110, D=111.
        // Bits: 0 | 10 | 110 | 111 | 0 → 0101 1011 10(pad 000000)
        let bytes = [0b0101_1011, 0b1000_0000];
        let table = Huffman::new(&[2, 1, 3, 3]).unwrap();
        let mut h = HuffmanCodes::new(&bytes, &table);
        let got: [u32; 5] = core::array::from_fn(|_| h.next::<true>());
        assert_eq!(got, [1, 0, 2, 3, 1]);
        assert!(!h.corrupt());
        // The six padding bits read as six B's; a seventh read runs past the end.
        for _ in 0..6 {
            assert_eq!(h.next::<true>(), 1);
        }
        assert!(!h.corrupt());
        for _ in 0..1 {
            h.next::<true>();
        }
        assert!(h.corrupt());
    }

    #[test]
    fn long_codes_take_the_slow_path() {
        // Lengths 1, 2, …, 10, 10: symbol 10 is 1111111111 (ten bits), past the 8-bit lookup table.
        let mut lengths = [0u8; 11];
        for (s, l) in lengths.iter_mut().enumerate() {
            *l = (s as u8 + 1).min(10);
        }
        let bytes = [0xFF, 0b1100_0000, 0];
        let table = Huffman::new(&lengths).unwrap();
        let mut h = HuffmanCodes::new(&bytes, &table);
        assert_eq!(h.next::<true>(), 10);
        assert_eq!(h.next::<true>(), 0);
        assert!(!h.corrupt());
    }

    #[test]
    fn over_subscribed_and_too_long_codes_are_refused() {
        assert!(Huffman::new(&[1, 1, 1]).is_none());
        assert!(Huffman::new(&[16, 1]).is_none());
        assert!(Huffman::new(&[1]).is_some());
    }

    #[test]
    fn packed_fields_read_msb_first_and_flag_the_end() {
        let mut r = Packed::new(&[0b1010_0000], 3);
        assert_eq!(r.next::<true>(), 0b101);
        assert_eq!(r.next::<true>(), 0);
        assert!(!r.corrupt());
        r.next::<true>();
        assert!(r.corrupt());
        // Long streams go through the word-at-a-time refill.
        let bytes: [u8; 40] = core::array::from_fn(|i| i as u8);
        let mut r = Packed::new(&bytes, 8);
        assert!((0..40).all(|i| r.next::<true>() == i));
        assert!(!r.corrupt());
    }

    fn checked<D: Decode>(d: D) -> Chunks<D, true> {
        Chunks(d)
    }

    /// Records what the walk reports.
    #[derive(Default)]
    struct Record {
        weights: [(usize, usize, usize); 16],
        rows: [usize; 16],
        w: usize,
        r: usize,
    }

    impl Sink for Record {
        fn weights(&mut self, cols: &[u32], indices: &[u8]) {
            for (&c, &i) in cols.iter().zip(indices) {
                self.weights[self.w] = (self.r, c as usize, usize::from(i));
                self.w += 1;
            }
        }
        fn end_row(&mut self, row: usize) {
            self.rows[self.r] = row;
            self.r += 1;
        }
    }

    #[test]
    fn fillers_skip_without_weights_and_rows_end_in_order() {
        // 2-bit positions (filler = 3), 1-bit indices, rows of 3 columns, 4 rows: symbols 3 (skip 3: row 1, col 0),
        // 1 (weight at row 1 col 1), 0 (weight at row 1 col 2), 3 (skip to row 2 col 3 = row 3 col 0), 0 (weight).
        let pos = [0b1101_0011, 0b0000_0000];
        let idx = [0b1010_0000];
        let layout = Layout {
            symbols: 5,
            position_bits: 2,
            fan_in: 3,
            rows: 4,
            codebook_len: 2,
        };
        let mut rec = Record::default();
        let n = walk(
            &mut checked(Packed::new(&pos, 2)),
            &mut checked(Packed::new(&idx, 1)),
            layout,
            &mut rec,
        );
        assert_eq!((n, rec.w), (Some(()), 3));
        assert_eq!(&rec.weights[..3], &[(1, 1, 1), (1, 2, 0), (3, 0, 1)]);
        assert_eq!(&rec.rows[..rec.r], &[0, 1, 2, 3]);
    }

    #[test]
    fn inconsistent_streams_are_refused() {
        // Walks bit-packed streams: (position bytes, bits), (index bytes, bits).
        let walk_packed = |pos: &[u8], pb: u32, idx: &[u8], ib: u32, layout: Layout| {
            let mut rec = Record::default();
            walk(
                &mut checked(Packed::new(pos, pb)),
                &mut checked(Packed::new(idx, ib)),
                layout,
                &mut rec,
            )
        };
        let layout = Layout {
            symbols: 2,
            position_bits: 2,
            fan_in: 3,
            rows: 1,
            codebook_len: 2,
        };
        // A weight past the last row: 2, then 2 → column 5 of a 1-row, 3-column layer.
        assert_eq!(walk_packed(&[0b1010_0000], 2, &[0], 1, layout), None);
        // An index outside the codebook (3 of 2).
        assert_eq!(walk_packed(&[0], 2, &[0b1100_0000], 2, layout), None);
        // Streams shorter than declared.
        let short = Layout {
            symbols: 9,
            rows: 9,
            ..layout
        };
        assert_eq!(walk_packed(&[0, 0], 2, &[0], 1, short), None);
        // The same streams, consistent, pass.
        assert_eq!(walk_packed(&[0], 2, &[0], 1, layout), Some(()));
    }
}
