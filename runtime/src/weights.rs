//! A weighted operator's section: per-channel requantization, biases, weight scales, and the weights as dense
//! f32, dense int8 or sparse shared weights whose streams run in place. [`parse`] validates a section once at load
//! (decoding every sparse stream); at run time the operator re-reads it with the checks that cannot fail skipped.

use crate::bytes::{i32_at, Reader};
use crate::error::{Error, Result, Section};
use crate::format::{
    codebook, encoding, StreamCoding, FLAG_F32, FLAG_INT, MAX_ELEMENTS, MAX_STREAM_BYTES,
    WEIGHTS_HEAD_BYTES,
};
use crate::fused;
use crate::quant::{Channel, Channels, Output, Words};
#[cfg(feature = "arena-decoding")]
use crate::stream::Decode;
use crate::stream::{walk, Chunked, Chunks, Huffman, HuffmanCodes, Layout, Packed, Sink};

/// How a weighted operator stores its weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Dense f32 (f32 path only).
    DenseF32,
    /// Dense int8, symmetric per output channel.
    DenseI8,
    /// Sparse with shared weights: codebook + relative positions + cluster indices.
    Sparse,
}

/// The integer-only path's parameters of a weighted operator.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Quant<'a> {
    pub per_channel: bool,
    pub multipliers: &'a [u8],
    pub shifts: &'a [u8],
    pub bias: &'a [u8],
}

impl<'a> Quant<'a> {
    /// (multiplier, shift) of output channel `o`.
    #[inline(always)]
    pub fn channel(&self, o: usize) -> (i32, i32) {
        let m = if self.per_channel { o } else { 0 };
        (i32_at(self.multipliers, m), i32_at(self.shifts, m))
    }

    /// The requantization of channels `first .. end` (at most `table.len()` of them, fewer past the last),
    /// decoded into `table`.
    #[inline(always)]
    pub fn channels<'t>(
        &self,
        first: usize,
        end: usize,
        table: &'t mut [Channel],
    ) -> &'t mut [Channel] {
        self.channels_every(first, 1, end.saturating_sub(first), table)
    }

    /// The requantization of `count` channels (at most `table.len()`, a [`crate::quant::BLOCK`] or less) from `first`, `step`
    /// apart, decoded into `table` (fewer past the last channel). Out of line: once per block, its loop is not
    /// worth a copy in every kernel.
    #[inline(never)]
    pub fn channels_every<'t>(
        &self,
        first: usize,
        step: usize,
        count: usize,
        table: &'t mut [Channel],
    ) -> &'t mut [Channel] {
        // Channel `first + k · step` for k < n, n as many as the biases hold (`step_by` on chunks cost ~50
        // instructions per channel on the Cortex-M4: it steps with `nth`).
        let step = step.max(1);
        let held = self.bias.len() / 4;
        let n = count
            .min(table.len())
            .min(held.saturating_sub(first).div_ceil(step));
        let table = table.get_mut(..n).unwrap_or(&mut []);
        if step == 1 {
            return self.channels_from(first, table);
        }
        let shared = Channel::new(0, self.channel(0));
        for (k, c) in table.iter_mut().enumerate() {
            let o = first + k * step;
            *c = if self.per_channel {
                Channel::new(i32_at(self.bias, o), self.channel(o))
            } else {
                // One requantization for the tensor: derived once, each channel only its bias.
                shared.with_bias_added(i32_at(self.bias, o))
            };
        }
        table
    }

    /// [`Quant::channels_every`] for consecutive channels ([`Quant::decode_along`]: ~25 instructions per channel
    /// on the Cortex-M4, where indexing each array took ~57).
    #[inline(always)]
    fn channels_from<'t>(&self, first: usize, table: &'t mut [Channel]) -> &'t mut [Channel] {
        self.decode_along(first, table.iter_mut(), |c, channel| *c = channel);
        table
    }

    /// The int8 outputs (as bytes) of channels `first ..` for the sums of their products `sums`, into `ys`: the
    /// biases and parameters walked in order, each channel decoded once ([`Quant::decode_along`]).
    #[inline(never)]
    pub fn outputs(&self, first: usize, sums: &[i32], out: &Output, ys: &mut [u8]) {
        if self.per_channel {
            let words = Words {
                bias: self.bias,
                multipliers: self.multipliers,
                shifts: self.shifts,
            };
            return crate::quant::outputs_in_order(sums, words.skip(first), out, ys);
        }
        let items = ys.iter_mut().zip(sums);
        self.decode_along(first, items, |(d, &acc), channel| {
            *d = channel.output(acc, out)
        });
    }

    /// Calls `f` on each of `items` with channel `first + k`'s requantization (k = 0, 1, …; as many as both
    /// hold): the bias, multiplier and shift arrays walked together, each channel's words read once with no
    /// bounds check per channel; a per-tensor requantization derived once, each channel adding its bias.
    #[inline(always)]
    fn decode_along<T>(
        &self,
        first: usize,
        items: impl Iterator<Item = T>,
        mut f: impl FnMut(T, Channel),
    ) {
        let words = |b: &'a [u8]| b.get(4 * first..).unwrap_or(&[]).chunks_exact(4);
        let word = |b: &[u8]| i32::from_le_bytes(b.try_into().unwrap_or([0; 4]));
        let bias = words(self.bias);
        if self.per_channel {
            let params = bias.zip(words(self.multipliers).zip(words(self.shifts)));
            for (t, (b, (m, s))) in items.zip(params) {
                f(t, Channel::new(word(b), (word(m), word(s))));
            }
        } else {
            let shared = Channel::new(0, self.channel(0));
            for (t, b) in items.zip(bias) {
                f(t, shared.with_bias_added(word(b)));
            }
        }
    }

    /// Channels `first .. first + count` read from the file at each output ([`Direct`]).
    pub fn direct(&self, first: usize, count: usize) -> Direct<'a> {
        Direct {
            q: *self,
            first,
            count,
        }
    }

    /// The int8 output (as its byte) of channel `o` for the accumulator `acc` of its products: the bias added,
    /// requantized, offset by the output's zero point, clamped to the activation's `range`.
    #[inline(always)]
    pub fn output(&self, acc: i32, o: usize, zp_out: i32, range: (i32, i32)) -> u8 {
        let acc = acc.wrapping_add(i32_at(self.bias, o));
        crate::quant::to_i8(acc, self.channel(o), zp_out, range) as u8
    }
}
/// A run of output channels whose requantization is read from the file at each output (see
/// [`crate::quant::Channels`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Direct<'a> {
    q: Quant<'a>,
    first: usize,
    count: usize,
}

impl Channels for Direct<'_> {
    #[inline(always)]
    fn count(&self) -> usize {
        self.count
    }

    #[inline(always)]
    fn channel(&self, k: usize) -> Channel {
        let o = self.first + k;
        Channel::new(i32_at(self.q.bias, o), self.q.channel(o))
    }

    #[inline(always)]
    fn split(self, at: usize) -> (Self, Self) {
        let at = at.min(self.count);
        let rest = Direct {
            first: self.first + at,
            count: self.count - at,
            ..self
        };
        (Direct { count: at, ..self }, rest)
    }
}

/// A sparse operator's codebook.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "integer-only", allow(dead_code))]
pub(crate) enum Codebook<'a> {
    I8(&'a [u8]),
    F32(&'a [u8]),
}

/// A sparse operator's streams.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sparse<'a> {
    pub position_coding: StreamCoding,
    pub index_coding: StreamCoding,
    pub index_bits: u32,
    pub position_bits: u32,
    pub codebook: Codebook<'a>,
    pub codebook_len: u32,
    pub symbols: u32,
    pub weights: u32,
    pub position_lengths: &'a [u8],
    pub index_lengths: &'a [u8],
    pub positions: &'a [u8],
    pub indices: &'a [u8],
}

impl<'a> Sparse<'a> {
    /// Bytes of the bit-packed form of the (position, index) streams: what a zstd-coded stream decodes to.
    pub(crate) fn packed_lens(&self) -> Option<(usize, usize)> {
        let p = (self.symbols as usize).checked_mul(self.position_bits as usize)?;
        let i = (self.weights as usize).checked_mul(self.index_bits as usize)?;
        Some((p.div_ceil(8), i.div_ceil(8)))
    }

    /// The streams' shape for an operator of `rows` × `fan_in` weights.
    fn layout(&self, fan_in: usize, rows: usize) -> Layout {
        Layout {
            symbols: self.symbols,
            position_bits: self.position_bits,
            fan_in,
            rows,
            codebook_len: self.codebook_len,
        }
    }

    /// Runs `sink` over the kept weights of an operator of `rows` × `fan_in` weights.
    /// zstd-coded streams are first decoded into the scratch memory (always), Huffman-coded ones too in the arena
    /// mode of [`StreamDecoding`] (when it holds a byte per symbol); otherwise the streams are decoded on the fly. Inconsistent streams give [`Error::CorruptStream`].
    pub(crate) fn walk<const CHECKED: bool, S: Sink>(
        &self,
        fan_in: usize,
        rows: usize,
        op: u16,
        scratch: &mut Scratch,
        sink: &mut S,
    ) -> Result<()> {
        let (scratch, arena) = (&mut *scratch.bytes, scratch.arena);
        let corrupt = Error::CorruptStream { op };
        let layout = self.layout(fan_in, rows);
        let (positions, indices) = (
            Stream::new(
                self.position_coding,
                self.positions,
                self.position_lengths,
                self.position_bits,
            ),
            Stream::new(
                self.index_coding,
                self.indices,
                self.index_lengths,
                self.index_bits,
            ),
        );
        #[cfg(feature = "zstd")]
        if self.zstd() {
            let (pl, il) = self.packed_lens().ok_or(Error::Overflow)?;
            let (pbuf, rest) = scratch.split_at_mut(pl.min(scratch.len()));
            let ibuf = rest.get_mut(..il).ok_or(Error::Overflow)?;
            let positions = if self.position_coding == StreamCoding::Zstd {
                crate::zstd::decompress(self.positions, pbuf, op)?;
                Stream::Packed(pbuf, self.position_bits)
            } else {
                positions
            };
            let indices = if self.index_coding == StreamCoding::Zstd {
                crate::zstd::decompress(self.indices, ibuf, op)?;
                Stream::Packed(ibuf, self.index_bits)
            } else {
                indices
            };
            // Decoded content is not validated at load: checked.
            return dispatch(positions, indices, true, layout, sink).ok_or(corrupt);
        }
        #[cfg(feature = "arena-decoding")]
        {
            let (symbols, weights) = (self.symbols as usize, self.weights as usize);
            if arena && self.huffman() && scratch.len() >= symbols.saturating_add(weights) {
                let (pbuf, rest) = scratch.split_at_mut(symbols);
                let ibuf = rest.get_mut(..weights).ok_or(Error::Overflow)?;
                if !positions.decode_into(pbuf) || !indices.decode_into(ibuf) {
                    return Err(corrupt);
                }
                // Decoded from checked streams just now: nothing left to check.
                let mut p = Chunks::<_, false>(crate::stream::Bytes::new(pbuf));
                let mut i = Chunks::<_, false>(crate::stream::Bytes::new(ibuf));
                return walk(&mut p, &mut i, layout, sink).ok_or(corrupt);
            }
        }
        // Used only with the zstd or arena-decoding features.
        let _ = (&scratch, arena);
        dispatch(positions, indices, CHECKED, layout, sink).ok_or(corrupt)
    }

    /// The integer dot products of every row with `x` (`fused::row_dots`: `row_done(row, Σ c·(x − zp))`), for
    /// streams validated at load. Returns `Ok(false)` without running when the fused loops do not apply (zstd or
    /// arena-decoded streams, or an input of another length than the fan-in): the caller takes the chunked walk.
    pub(crate) fn row_dots(
        &self,
        (fan_in, rows): (usize, usize),
        op: u16,
        arena: bool,
        (x, zp): (&[u8], i32),
        codebook: &[i8; 256],
        row_done: impl FnMut(usize, i32),
    ) -> Result<bool> {
        if self.zstd() || (arena && self.huffman()) || x.len() != fan_in {
            return Ok(false);
        }
        let layout = self.layout(fan_in, rows);
        let (p, i) = (self.positions, self.indices);
        let (pb, ib) = (self.position_bits, self.index_bits);
        // Built where they lie (`Huffman::build`): a table is too large to move cheaply.
        let (mut pt, mut it) = (Huffman::EMPTY, Huffman::EMPTY);
        let corrupt = Error::CorruptStream { op };
        let input = (x, zp);
        match (self.position_coding, self.index_coding) {
            (StreamCoding::Huffman, StreamCoding::Huffman) => {
                if !pt.build(self.position_lengths) || !it.build(self.index_lengths) {
                    return Err(corrupt);
                }
                let (p, i) = (HuffmanCodes::new(p, &pt), HuffmanCodes::new(i, &it));
                fused::row_dots(p, i, layout, input, codebook, row_done);
            }
            (StreamCoding::Huffman, _) => {
                if !pt.build(self.position_lengths) {
                    return Err(corrupt);
                }
                let (p, i) = (HuffmanCodes::new(p, &pt), Packed::new(i, ib));
                fused::row_dots(p, i, layout, input, codebook, row_done);
            }
            (_, StreamCoding::Huffman) => {
                if !it.build(self.index_lengths) {
                    return Err(corrupt);
                }
                let (p, i) = (Packed::new(p, pb), HuffmanCodes::new(i, &it));
                fused::row_dots(p, i, layout, input, codebook, row_done);
            }
            _ => {
                let (p, i) = (Packed::new(p, pb), Packed::new(i, ib));
                fused::row_dots(p, i, layout, input, codebook, row_done);
            }
        }
        Ok(true)
    }

    /// Whether a stream is zstd coded (and must be decoded into the arena before a run).
    pub(crate) fn zstd(&self) -> bool {
        self.position_coding == StreamCoding::Zstd || self.index_coding == StreamCoding::Zstd
    }

    /// Whether either stream is Huffman coded.
    pub(crate) fn huffman(&self) -> bool {
        self.position_coding == StreamCoding::Huffman || self.index_coding == StreamCoding::Huffman
    }
}

/// Arena memory a run lends the sparse walks, for streams decoded ahead of an operator.
pub(crate) struct Scratch<'s> {
    /// The memory.
    pub bytes: &'s mut [u8],
    /// Whether Huffman streams are to be decoded into it ([`StreamDecoding`]).
    pub arena: bool,
}

impl Scratch<'_> {
    /// None at all (loading, which only validates).
    pub(crate) fn none() -> Scratch<'static> {
        Scratch {
            bytes: &mut [],
            arena: false,
        }
    }
}

/// One stream, ready to decode.
enum Stream<'a> {
    /// Bit-packed fields of this many bits.
    Packed(&'a [u8], u32),
    /// Canonical Huffman codes with these code lengths.
    Huffman(&'a [u8], &'a [u8]),
}

impl<'a> Stream<'a> {
    fn new(coding: StreamCoding, bytes: &'a [u8], lengths: &'a [u8], bits: u32) -> Stream<'a> {
        match coding {
            StreamCoding::Huffman => Stream::Huffman(bytes, lengths),
            // zstd streams are replaced by their decoded bit-packed form before use.
            StreamCoding::Packed | StreamCoding::Zstd => Stream::Packed(bytes, bits),
        }
    }

    /// Decodes exactly `out.len()` symbols into `out`, one per byte; false on a corrupt stream.
    #[cfg(feature = "arena-decoding")]
    fn decode_into(&self, out: &mut [u8]) -> bool {
        fn fill<D: Decode>(mut d: D, out: &mut [u8]) -> bool {
            for o in out.iter_mut() {
                *o = d.next::<true>() as u8;
            }
            !d.corrupt()
        }
        match *self {
            Stream::Packed(b, w) => fill(Packed::new(b, w), out),
            Stream::Huffman(b, l) => {
                Huffman::new(l).is_some_and(|t| fill(HuffmanCodes::new(b, &t), out))
            }
        }
    }
}

/// The walk over two streams, each decoded by the loop compiled for its coding.
fn dispatch<S: Sink>(
    positions: Stream,
    indices: Stream,
    checked: bool,
    layout: Layout,
    sink: &mut S,
) -> Option<()> {
    // Storage for whichever decoders the codings call for; the walk sees them as trait objects.
    let (ptable, itable);
    let (mut pp, mut ph, mut ip, mut ih);
    let (mut ppc, mut phc, mut ipc, mut ihc);
    let p: &mut dyn Chunked = match (positions, checked) {
        (Stream::Packed(b, w), false) => {
            pp = Chunks::<_, false>(Packed::new(b, w));
            &mut pp
        }
        (Stream::Packed(b, w), true) => {
            ppc = Chunks::<_, true>(Packed::new(b, w));
            &mut ppc
        }
        (Stream::Huffman(b, l), c) => {
            ptable = Huffman::new(l)?;
            if c {
                phc = Chunks::<_, true>(HuffmanCodes::new(b, &ptable));
                &mut phc
            } else {
                ph = Chunks::<_, false>(HuffmanCodes::new(b, &ptable));
                &mut ph
            }
        }
    };
    let i: &mut dyn Chunked = match (indices, checked) {
        (Stream::Packed(b, w), false) => {
            ip = Chunks::<_, false>(Packed::new(b, w));
            &mut ip
        }
        (Stream::Packed(b, w), true) => {
            ipc = Chunks::<_, true>(Packed::new(b, w));
            &mut ipc
        }
        (Stream::Huffman(b, l), c) => {
            itable = Huffman::new(l)?;
            if c {
                ihc = Chunks::<_, true>(HuffmanCodes::new(b, &itable));
                &mut ihc
            } else {
                ih = Chunks::<_, false>(HuffmanCodes::new(b, &itable));
                &mut ih
            }
        }
    };
    walk(p, i, layout, sink)
}

/// How Huffman-coded sparse streams are decoded during a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamDecoding {
    /// Symbol by symbol inside the kernel: no extra arena (the default; measured faster, see BENCHMARKS.md).
    OnTheFly,
    /// Into the arena just before each operator runs (a byte per position symbol and per index), then the kernel
    /// reads plain arrays. [`Model::arena_len`] and [`Model::arena_len_int8`] grow accordingly.
    /// Needs the `arena-decoding` feature.
    #[cfg(feature = "arena-decoding")]
    Arena,
}

/// Weight storage of a weighted operator.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "integer-only", allow(dead_code))]
pub(crate) enum Payload<'a> {
    DenseF32(&'a [u8]),
    DenseI8(&'a [u8]),
    Sparse(Sparse<'a>),
}

/// A weighted operator's data.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "integer-only", allow(dead_code))]
pub(crate) struct Weights<'a> {
    pub outputs: usize,
    pub fan_in: usize,
    /// f32 biases; empty in files with both paths, where the f32 path derives them from the integer ones.
    pub bias_f32: &'a [u8],
    /// With both paths: the input tensor's scale `s_in` (f32 bits), for those derived biases.
    pub input_scale: u32,
    pub scales: &'a [u8],
    pub quant: Option<Quant<'a>>,
    pub payload: Payload<'a>,
    /// (offset, length) of the stored weights (the payload after the quantization parameters) within the
    /// section.
    pub stored: (usize, usize),
}

impl Weights<'_> {
    /// The encoding.
    pub fn encoding(&self) -> Encoding {
        match self.payload {
            Payload::DenseF32(_) => Encoding::DenseF32,
            Payload::DenseI8(_) => Encoding::DenseI8,
            Payload::Sparse(_) => Encoding::Sparse,
        }
    }

    /// Weights stored: the kept ones of a sparse payload, every one of a dense payload.
    pub fn kept(&self) -> usize {
        match self.payload {
            Payload::Sparse(s) => s.weights as usize,
            _ => self.outputs.saturating_mul(self.fan_in),
        }
    }

    /// Bytes a run needs to decode the streams into: (Huffman streams in arena mode, zstd streams always).
    pub fn decode_bytes(&self) -> Result<(usize, usize)> {
        let Payload::Sparse(s) = self.payload else {
            return Ok((0, 0));
        };
        if s.zstd() {
            let (pl, il) = s.packed_lens().ok_or(Error::Overflow)?;
            return Ok((0, pl.checked_add(il).ok_or(Error::Overflow)?));
        }
        if s.huffman() {
            let n = (s.symbols as usize).checked_add(s.weights as usize);
            return Ok((n.ok_or(Error::Overflow)?, 0));
        }
        Ok((0, 0))
    }
}

/// A sink that only counts the weights: validation decodes and checks.
struct Count(u32);

impl Sink for Count {
    fn weights(&mut self, cols: &[u32], _: &[u8]) {
        self.0 = self.0.wrapping_add(cols.len() as u32);
    }
    fn end_row(&mut self, _: usize) {}
}

fn invalid(section: Section, field: &'static str, value: u64) -> Error {
    Error::InvalidValue {
        section,
        field,
        value,
    }
}

/// What a weighted operator expects of its section.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expect {
    /// Header flags of the file.
    pub flags: u16,
    /// Index of the operator (for errors).
    pub op: u16,
    /// Rows (output channels).
    pub outputs: usize,
    /// Columns per row.
    pub fan_in: usize,
    /// The input tensor's scale bits (files with both paths derive the f32 biases with it).
    pub input_scale: u32,
    /// Whether to validate everything (at load) or trust a section validated before (at run time).
    pub validate: bool,
}

/// Parses a weights section for an operator of `outputs × fan_in` weights.
#[inline(never)]
pub(crate) fn parse(bytes: &[u8], e: Expect) -> Result<Weights<'_>> {
    let section = Section::Weights(e.op);
    let mut r = Reader::new(bytes, section);
    let head = [r.u8()?, r.u8()?, r.u8()?, r.u8()?];
    let o = r.u32()? as usize;
    let f = r.u32()? as usize;
    if e.validate && (o != e.outputs || f != e.fan_in) {
        return Err(Error::ShapeMismatch {
            op: e.op,
            expected: e.outputs.saturating_mul(e.fan_in) as u32,
            found: o.saturating_mul(f) as u32,
        });
    }
    let n = e.outputs.checked_mul(e.fan_in).ok_or(Error::Overflow)?;
    if n > MAX_ELEMENTS {
        return Err(Error::Overflow);
    }
    let int = e.flags & FLAG_INT != 0;
    let Head {
        bias_f32,
        quant,
        scales,
    } = parse_head(&mut r, head[0], e)?;
    let stored_from = r.pos();
    let payload = match head[0] {
        encoding::DENSE_F32 => Payload::DenseF32(r.words(n)?),
        encoding::DENSE_I8 => {
            let w = r.take(n)?;
            r.align4()?;
            Payload::DenseI8(w)
        }
        encoding::SPARSE => Payload::Sparse(parse_sparse(&mut r, head, e, int)?),
        v => return Err(invalid(section, "encoding", u64::from(v))),
    };
    let stored_to = r.pos();
    #[cfg(not(feature = "integer-only"))]
    if e.flags & FLAG_F32 != 0 && e.validate {
        check_floats(section, bias_f32, scales, int.then_some(e.input_scale))?;
    }
    if r.pos() != bytes.len() {
        return Err(invalid(
            section,
            "trailing bytes",
            bytes.len().saturating_sub(r.pos()) as u64,
        ));
    }
    Ok(Weights {
        outputs: e.outputs,
        fan_in: e.fan_in,
        bias_f32,
        input_scale: e.input_scale,
        scales,
        quant,
        payload,
        stored: (stored_from, stored_to - stored_from),
    })
}

/// What a weights section holds between its shape and its stored weights.
struct Head<'a> {
    bias_f32: &'a [u8],
    quant: Option<Quant<'a>>,
    scales: &'a [u8],
}

/// The section's f32 biases (f32-only files), its requantization (integer-path files) and its f32 scales, for
/// weights of encoding `encoding`; `r` is left at the stored weights.
#[inline(always)]
fn parse_head<'a>(r: &mut Reader<'a>, encoding: u8, e: Expect) -> Result<Head<'a>> {
    let (int, f32_path) = (e.flags & FLAG_INT != 0, e.flags & FLAG_F32 != 0);
    // With both paths the f32 path derives its biases from the integer ones (FORMAT.md): stored once.
    let bias_f32 = if f32_path && !int {
        r.words(e.outputs)?
    } else {
        &[]
    };
    let quant = if int {
        if encoding == encoding::DENSE_F32 {
            return Err(invalid(
                Section::Weights(e.op),
                "encoding (f32 weights in an integer-path file)",
                1,
            ));
        }
        Some(parse_quant(r, e)?)
    } else {
        None
    };
    let scale_count = match encoding {
        encoding::DENSE_I8 => e.outputs,
        encoding::SPARSE => 1,
        _ => 0,
    };
    let scales = if f32_path { r.words(scale_count)? } else { &[] };
    Ok(Head {
        bias_f32,
        quant,
        scales,
    })
}

/// The requantization and the `outputs × fan_in` int8 weights of a dense int8 section of an integer-path file,
/// read at run time (the section was validated at load) without building a [`Weights`]; `None` for any other
/// section, which [`parse`] then reads. Inlined into the dense kernels' callers: moving a `Weights` out of
/// [`parse`]'s result and matching its payload had cost ~400 instructions per operator on the Cortex-M4 (the
/// autoencoder fixture's six layers run 5,376 multiply-adds in all).
#[inline(always)]
pub(crate) fn dense_i8(bytes: &[u8], e: Expect) -> Option<(Quant<'_>, &[u8])> {
    let mut r = Reader::new(bytes, Section::Weights(e.op));
    let encoding = r.u8().ok()?;
    if encoding != encoding::DENSE_I8 || e.flags & FLAG_INT == 0 {
        return None;
    }
    r.take(WEIGHTS_HEAD_BYTES - 1).ok()?;
    let head = parse_head(&mut r, encoding, e).ok()?;
    let n = e.outputs.checked_mul(e.fan_in)?;
    Some((head.quant?, r.take(n).ok()?))
}

/// The integer path's per-channel flag, multipliers, shifts and int32 biases.
fn parse_quant<'a>(r: &mut Reader<'a>, e: Expect) -> Result<Quant<'a>> {
    let section = Section::Weights(e.op);
    let per_channel = match r.u32()? {
        0 => false,
        1 => true,
        v => return Err(invalid(section, "per-channel flag", u64::from(v))),
    };
    let m = if per_channel { e.outputs } else { 1 };
    let multipliers = r.words(m)?;
    let shifts = r.words(m)?;
    if e.validate {
        for i in 0..m {
            crate::quant::check_multiplier(section, i32_at(multipliers, i), i32_at(shifts, i))?;
        }
    }
    Ok(Quant {
        per_channel,
        multipliers,
        shifts,
        bias: r.words(e.outputs)?,
    })
}

/// Biases and scales finite; with both paths, the input scale positive.
#[cfg(not(feature = "integer-only"))]
fn check_floats(
    section: Section,
    bias: &[u8],
    scales: &[u8],
    input_scale: Option<u32>,
) -> Result<()> {
    for (i, b) in bias.chunks_exact(4).enumerate() {
        if !crate::bytes::f32_at(b, 0).is_finite() {
            return Err(invalid(section, "bias", i as u64));
        }
    }
    for (i, b) in scales.chunks_exact(4).enumerate() {
        if !crate::bytes::f32_at(b, 0).is_finite() {
            return Err(invalid(section, "scale", i as u64));
        }
    }
    if let Some(bits) = input_scale {
        let s = f32::from_bits(bits);
        if !(s > 0.0 && s.is_finite()) {
            return Err(invalid(section, "input scale", u64::from(bits)));
        }
    }
    Ok(())
}

/// A sparse payload: codebook, code lengths, streams; at load, decoded once to check every position and index.
fn parse_sparse<'a>(r: &mut Reader<'a>, head: [u8; 4], e: Expect, int: bool) -> Result<Sparse<'a>> {
    let section = Section::Weights(e.op);
    let (coding, index_bits, position_bits) = (head[1], u32::from(head[2]), u32::from(head[3]));
    let (Some(position_coding), Some(index_coding)) = (
        StreamCoding::from_code(coding & 3),
        StreamCoding::from_code(coding >> 2 & 3),
    ) else {
        return Err(invalid(section, "stream coding", u64::from(coding)));
    };
    if !(1..=8).contains(&index_bits) || !(1..=8).contains(&position_bits) || coding > 15 {
        return Err(invalid(
            section,
            "stream widths or coding",
            u64::from(index_bits),
        ));
    }
    let cb_type = r.u8()?;
    r.take(3)?;
    let k = r.u32_in("codebook size", 1, 1 << index_bits)?;
    let symbols = r.u32()?;
    let weights = r.u32()?;
    let pos_bytes = r.u32_in("position stream bytes", 0, MAX_STREAM_BYTES)? as usize;
    let idx_bytes = r.u32_in("index stream bytes", 0, MAX_STREAM_BYTES)? as usize;
    let codebook = match cb_type {
        codebook::I8 => {
            let c = r.take(k as usize)?;
            r.align4()?;
            Codebook::I8(c)
        }
        codebook::F32 if !int => Codebook::F32(r.words(k as usize)?),
        v => return Err(invalid(section, "codebook type", u64::from(v))),
    };
    let lengths = |r: &mut Reader<'a>, c: StreamCoding, bits: u32| match c {
        StreamCoding::Huffman => r.take(1 << bits),
        _ => Ok(&[][..]),
    };
    let position_lengths = lengths(r, position_coding, position_bits)?;
    let index_lengths = lengths(r, index_coding, index_bits)?;
    r.align4()?;
    let positions = r.take(pos_bytes)?;
    r.align4()?;
    let indices = r.take(idx_bytes)?;
    r.align4()?;
    let sparse = Sparse {
        position_coding,
        index_coding,
        index_bits,
        position_bits,
        codebook,
        codebook_len: k,
        symbols,
        weights,
        position_lengths,
        index_lengths,
        positions,
        indices,
    };
    if e.validate {
        check_streams(&sparse, e)?;
    }
    Ok(sparse)
}

/// Every position in range, every index in the codebook, counts as declared (zstd streams: their frame headers;
/// their content is checked as it is decoded in a run, since loading has no memory to decode into).
fn check_streams(s: &Sparse, e: Expect) -> Result<()> {
    let corrupt = Error::CorruptStream { op: e.op };
    // Every symbol takes at least a bit: a stream cannot declare more symbols than it has bits.
    let bits = |bytes: &[u8]| bytes.len().saturating_mul(8);
    let zstd = s.zstd();
    if s.weights > s.symbols
        || !zstd && (s.symbols as usize > bits(s.positions) || s.weights as usize > bits(s.indices))
    {
        return Err(corrupt);
    }
    if zstd {
        let (pl, il) = s.packed_lens().ok_or(Error::Overflow)?;
        #[cfg(feature = "zstd")]
        let ok = |c: StreamCoding, bytes: &[u8], len: usize| {
            c != StreamCoding::Zstd || crate::zstd::check_header(bytes, len)
        };
        #[cfg(not(feature = "zstd"))]
        let ok = |_: StreamCoding, _: &[u8], _: usize| false;
        if !ok(s.position_coding, s.positions, pl) || !ok(s.index_coding, s.indices, il) {
            return Err(corrupt);
        }
        return Ok(());
    }
    let mut found = Count(0);
    s.walk::<true, _>(e.fan_in, e.outputs, e.op, &mut Scratch::none(), &mut found)?;
    if found.0 != s.weights {
        return Err(corrupt);
    }
    Ok(())
}

#[cfg(not(feature = "integer-only"))]
impl Weights<'_> {
    /// The multiplier that turns an accumulated `Σ q·x` of output `o` into real units (1 for f32 weights).
    #[inline(always)]
    pub fn scale(&self, o: usize) -> f32 {
        match self.payload {
            Payload::DenseI8(_) => crate::bytes::f32_at(self.scales, o),
            Payload::Sparse(_) => crate::bytes::f32_at(self.scales, 0),
            Payload::DenseF32(_) => 1.0,
        }
    }

    /// The f32 bias of output `o`: stored, or `bias_q · s_in · s_w` in files that also carry the integer path.
    #[inline(always)]
    pub fn bias(&self, o: usize) -> f32 {
        match self.quant {
            Some(q) if self.bias_f32.is_empty() => {
                i32_at(q.bias, o) as f32 * f32::from_bits(self.input_scale) * self.scale(o)
            }
            _ => crate::bytes::f32_at(self.bias_f32, o),
        }
    }

    /// Dense weight `j` before its row's scale (`None` for sparse payloads).
    #[inline(always)]
    pub fn dense_f32(&self, j: usize) -> Option<f32> {
        match self.payload {
            Payload::DenseF32(b) => b.get(4 * j..4 * j + 4).map(|v| crate::bytes::f32_at(v, 0)),
            Payload::DenseI8(b) => b.get(j).map(|&q| f32::from(q as i8)),
            Payload::Sparse(_) => None,
        }
    }

    /// Codebook entry `i` of a sparse payload, before the scale.
    #[inline(always)]
    pub fn shared_f32(&self, i: usize) -> f32 {
        match self.payload {
            Payload::Sparse(Sparse {
                codebook: Codebook::I8(c),
                ..
            }) => c.get(i).map_or(0.0, |&q| f32::from(q as i8)),
            Payload::Sparse(Sparse {
                codebook: Codebook::F32(c),
                ..
            }) => crate::bytes::f32_at(c, i),
            _ => 0.0,
        }
    }
}

impl Weights<'_> {
    /// Dense int8 weight `j` (`None` for other payloads).
    #[inline(always)]
    pub fn dense_i8(&self, j: usize) -> Option<i32> {
        match self.payload {
            Payload::DenseI8(b) => b.get(j).map(|&q| i32::from(q as i8)),
            _ => None,
        }
    }

    /// Codebook entry `i` of a sparse payload with an int8 codebook (0 otherwise: integer files have no other).
    #[inline(always)]
    pub fn shared_i8(&self, i: usize) -> i32 {
        match self.payload {
            Payload::Sparse(Sparse {
                codebook: Codebook::I8(c),
                ..
            }) => c.get(i).map_or(0, |&q| i32::from(q as i8)),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::ops::dot::tests::le_i32s;

    /// `Quant::outputs` (the parameters walked in order) against `Quant::output` (each channel indexed): per
    /// channel and per tensor, right shifts and a left shift, a ReLU-like range, from a channel past the first.
    #[test]
    fn outputs_in_order_are_each_channels_output() {
        let bias = le_i32s(40, |o| o * 977 - 15_000);
        let multipliers = le_i32s(40, |o| 1_073_741_824 + o * 11_111_111);
        let shifts = le_i32s(40, |o| if o == 7 { 2 } else { -(o % 12) });
        let sums: std::vec::Vec<i32> = (0..40).map(|o| o * o * 313 - 90_000).collect();
        for per_channel in [true, false] {
            let q = Quant {
                per_channel,
                multipliers: &multipliers,
                shifts: &shifts,
                bias: &bias,
            };
            for (zp, range) in [(-3, (-128, 127)), (5, (5, 127))] {
                let out = Output::new(zp, range);
                let first = 3;
                let mut got = [0u8; 37];
                q.outputs(first, &sums[first..], &out, &mut got);
                for (k, &g) in got.iter().enumerate() {
                    let want = q.output(sums[first + k], first + k, zp, range);
                    assert_eq!(g, want, "channel {}, per channel {per_channel}", first + k);
                }
            }
        }
    }
}
