//! Loading a `.slim` file: [`Model::from_bytes`] validates every byte once (header, CRC, section table, graph,
//! shapes, quantization parameters, sparse streams) so that running never meets an inconsistency.

use crate::bytes::{crc32, Reader};
use crate::error::{Error, Result, Section};
#[cfg(feature = "arena-decoding")]
use crate::stream::Decode;
use crate::stream::{walk, Chunked, Chunks, Huffman, HuffmanCodes, Layout, Packed, Sink};

/// The file's magic number.
pub const MAGIC: [u8; 4] = *b"SLIM";
/// The format version this runtime reads and writes.
pub const VERSION: u16 = 1;
/// Header flag: the file carries what the f32 path needs.
pub const FLAG_F32: u16 = 1;
/// Header flag: the file carries what the integer-only path needs.
pub const FLAG_INT: u16 = 2;
/// Bytes of the fixed header.
pub const HEADER_BYTES: usize = 24;
/// Section kind: the graph (exactly one, first in the table).
pub const SECTION_GRAPH: u32 = 1;
/// Section kind: the weights of one weighted layer.
pub const SECTION_LAYER: u32 = 2;
/// Most layers a graph may have.
pub const MAX_LAYERS: usize = 32;
/// Largest sparse stream (bytes) a layer may hold: 16 MiB.
pub const MAX_STREAM_BYTES: u32 = 1 << 24;
/// Largest tensor (elements) a model may declare: 2^28.
pub const MAX_ELEMENTS: usize = 1 << 28;

/// Layer operations in the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Fully connected.
    Dense,
    /// 2-D convolution, stride 1, no padding.
    Conv2d,
    /// Max-pooling with stride equal to the window.
    MaxPool,
    /// Flattening (a no-op on the data: activations are kept channel-major).
    Flatten,
}

/// How a weighted layer stores its weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Dense f32 (f32 path only).
    DenseF32,
    /// Dense int8, symmetric per output channel.
    DenseI8,
    /// Sparse with shared weights: codebook + relative positions + cluster indices.
    Sparse,
}

/// Shape of an activation: channels × height × width (dense activations are `n × 1 × 1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Dims {
    /// Channels.
    pub c: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
}

impl Dims {
    /// Elements.
    pub fn len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// Whether it holds no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The integer-only path's parameters of a weighted layer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Quant<'a> {
    pub zp_in: i32,
    pub zp_out: i32,
    pub per_channel: bool,
    pub multipliers: &'a [u8],
    pub shifts: &'a [u8],
    pub bias: &'a [u8],
}

/// A sparse layer's codebook.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "integer-only", allow(dead_code))]
pub(crate) enum Codebook<'a> {
    I8(&'a [u8]),
    F32(&'a [u8]),
}

/// A sparse layer's streams.
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

    /// Runs `sink` over the kept weights of a layer of `rows` × `fan_in` weights.
    /// zstd-coded streams are first decoded into the scratch memory (always), Huffman-coded ones too in the arena
    /// mode of [`StreamDecoding`] (when it holds a byte per symbol); otherwise the streams are decoded on the fly. Inconsistent streams give [`Error::CorruptStream`].
    pub(crate) fn walk<const CHECKED: bool, S: Sink>(
        &self,
        fan_in: usize,
        rows: usize,
        layer: u16,
        scratch: &mut Scratch,
        sink: &mut S,
    ) -> Result<()> {
        let (scratch, arena) = (&mut *scratch.bytes, scratch.arena);
        let corrupt = Error::CorruptStream { layer };
        let layout = Layout {
            symbols: self.symbols,
            position_bits: self.position_bits,
            fan_in,
            rows,
            codebook_len: self.codebook_len,
        };
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
                crate::zstd::decompress(self.positions, pbuf, layer)?;
                Stream::Packed(pbuf, self.position_bits)
            } else {
                positions
            };
            let indices = if self.index_coding == StreamCoding::Zstd {
                crate::zstd::decompress(self.indices, ibuf, layer)?;
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

    /// Whether a stream is zstd coded (and must be decoded into the arena before a run).
    pub(crate) fn zstd(&self) -> bool {
        self.position_coding == StreamCoding::Zstd || self.index_coding == StreamCoding::Zstd
    }

    /// Whether either stream is Huffman coded.
    pub(crate) fn huffman(&self) -> bool {
        self.position_coding == StreamCoding::Huffman || self.index_coding == StreamCoding::Huffman
    }
}

/// Arena memory a run lends the sparse walks, for streams decoded ahead of a layer.
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

/// How one sparse stream is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamCoding {
    /// Fixed-width fields.
    Packed,
    /// Canonical Huffman, decoded on the fly (or into the arena, see [`StreamDecoding`]).
    Huffman,
    /// zstd of the bit-packed form, decoded into the arena before each run of the layer (readers built without
    /// the `zstd` feature refuse such files).
    Zstd,
}

/// How Huffman-coded sparse streams are decoded during a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamDecoding {
    /// Symbol by symbol inside the kernel: no extra arena (the default; measured faster, see BENCHMARKS.md).
    OnTheFly,
    /// Into the arena just before each layer runs (a byte per position symbol and per index), then the kernel
    /// reads plain arrays. [`Model::arena_len`] and [`Model::arena_len_int8`] grow accordingly.
    /// Needs the `arena-decoding` feature.
    #[cfg(feature = "arena-decoding")]
    Arena,
}

/// Weight storage of a weighted layer.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "integer-only", allow(dead_code))]
pub(crate) enum Payload<'a> {
    DenseF32(&'a [u8]),
    DenseI8(&'a [u8]),
    Sparse(Sparse<'a>),
}

/// A weighted layer's data.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "integer-only", allow(dead_code))]
pub(crate) struct Weights<'a> {
    pub outputs: usize,
    pub fan_in: usize,
    /// f32 biases; empty in files with both paths, where the f32 path derives them from the integer ones.
    pub bias_f32: &'a [u8],
    /// With both paths: the input activation scale `s_in` (one f32), for those derived biases.
    pub input_scale: &'a [u8],
    pub scales: &'a [u8],
    pub quant: Option<Quant<'a>>,
    pub payload: Payload<'a>,
    pub section_bytes: usize,
    /// (offset, length) of the stored weights (the payload after the quantization parameters): within the
    /// section while parsing, within the file once loaded.
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
}

/// One layer, with its shapes resolved.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LayerInfo<'a> {
    pub op: Op,
    pub relu: bool,
    pub size: usize,
    pub input: Dims,
    pub output: Dims,
    pub weights: Option<Weights<'a>>,
}

/// A validated model, borrowing the file's bytes (zero-copy).
#[derive(Debug, Clone)]
#[cfg_attr(feature = "integer-only", allow(dead_code))]
pub struct Model<'a> {
    pub(crate) flags: u16,
    pub(crate) input: Dims,
    pub(crate) classes: usize,
    /// Bits of the f32 mean and standard deviation (kept as bits so the integer-only build holds no floats).
    pub(crate) mean: u32,
    pub(crate) std: u32,
    pub(crate) lut: &'a [u8],
    pub(crate) layers: [Option<LayerInfo<'a>>; MAX_LAYERS],
    pub(crate) layer_count: usize,
    /// Elements of the two ping-pong activation buffers.
    pub(crate) buffers: [usize; 2],
    /// Largest conv output plane (for the integer path's i32 accumulators).
    pub(crate) max_plane: usize,
    pub(crate) file_bytes: usize,
    /// Bytes to decode the largest Huffman-coded sparse layer into (a byte per position symbol and per index).
    pub(crate) decode_bytes: usize,
    /// Bytes to decode the largest layer's zstd-coded streams into (their bit-packed form); always reserved.
    pub(crate) zstd_bytes: usize,
    /// How Huffman streams are decoded.
    pub(crate) decoding: StreamDecoding,
}

fn invalid(section: Section, field: &'static str, value: u64) -> Error {
    Error::InvalidValue {
        section,
        field,
        value,
    }
}

fn mul(a: usize, b: usize) -> Result<usize> {
    a.checked_mul(b).ok_or(Error::Overflow)
}

impl<'a> Model<'a> {
    /// A model with no layers and neither numeric path (running it gives [`Error::PathUnavailable`]): the
    /// initial value of storage that [`Model::load`] fills, e.g. a `static` on a device.
    pub const EMPTY: Model<'a> = Model {
        flags: 0,
        input: Dims { c: 0, h: 0, w: 0 },
        classes: 0,
        mean: 0,
        std: 0,
        lut: &[],
        layers: [None; MAX_LAYERS],
        layer_count: 0,
        buffers: [0, 0],
        max_plane: 0,
        file_bytes: 0,
        decode_bytes: 0,
        zstd_bytes: 0,
        decoding: StreamDecoding::OnTheFly,
    };

    /// Resets every field to [`Model::EMPTY`]'s value, one by one (assigning the constant would copy a 5.5 KB
    /// image of it, kept in flash on a device).
    #[inline(never)]
    fn clear(&mut self) {
        for l in self.layers.iter_mut() {
            *l = None;
        }
        self.flags = 0;
        self.input = Dims { c: 0, h: 0, w: 0 };
        (self.classes, self.mean, self.std, self.lut) = (0, 0, 0, &[]);
        (self.layer_count, self.buffers, self.max_plane) = (0, [0, 0], 0);
        (self.file_bytes, self.decode_bytes, self.zstd_bytes) = (0, 0, 0);
        self.decoding = StreamDecoding::OnTheFly;
    }

    /// Validates `bytes` as a `.slim` file and returns the model, borrowing them. The model is a few kilobytes
    /// (a table of [`MAX_LAYERS`] layers); where stack is scarce, [`Model::load`] fills one in place instead.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Model<'a>> {
        let mut model = Model::EMPTY;
        model.load(bytes)?;
        Ok(model)
    }

    /// Validates `bytes` as a `.slim` file and makes `self` that model, in place: no copy of the model passes
    /// through the stack. On error `self` is left [`Model::EMPTY`].
    pub fn load(&mut self, bytes: &'a [u8]) -> Result<()> {
        let result = self.fill(bytes);
        if result.is_err() {
            self.clear();
        }
        result
    }

    #[inline(never)]
    fn fill(&mut self, bytes: &'a [u8]) -> Result<()> {
        let mut h = Reader::new(bytes, Section::Header);
        let magic = h.take(4).map_err(|_| {
            if bytes.len() < 4 {
                Error::Truncated {
                    section: Section::Header,
                    needed: HEADER_BYTES,
                    available: bytes.len(),
                }
            } else {
                Error::BadMagic
            }
        })?;
        if magic != MAGIC {
            return Err(Error::BadMagic);
        }
        let version = h.u16()?;
        if version != VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        let flags = h.u16()?;
        if flags & !(FLAG_F32 | FLAG_INT) != 0 || flags == 0 {
            return Err(invalid(Section::Header, "flags", u64::from(flags)));
        }
        let total = h.u32()? as usize;
        let stored_crc = h.u32()?;
        let count = h.u32()? as usize;
        let _reserved = h.u32()?;
        if total != bytes.len() {
            return Err(Error::Truncated {
                section: Section::Header,
                needed: total,
                available: bytes.len(),
            });
        }
        let computed = crc32(bytes.get(16..).unwrap_or(&[]));
        if computed != stored_crc {
            return Err(Error::ChecksumMismatch {
                stored: stored_crc,
                computed,
            });
        }
        if count == 0 || count > MAX_LAYERS + 1 {
            return Err(invalid(Section::Table, "section count", count as u64));
        }
        // Section table: aligned, in bounds, in increasing order without overlap, after the table.
        let mut t = Reader::new(bytes, Section::Table);
        t.take(HEADER_BYTES)?;
        let table_end = HEADER_BYTES + 12 * count;
        let mut sections = [(0u32, 0usize, 0usize); MAX_LAYERS + 1];
        let mut prev_end = table_end;
        for (i, slot) in sections.iter_mut().take(count).enumerate() {
            let kind = t.u32()?;
            let offset = t.u32()? as usize;
            let len = t.u32()? as usize;
            let end = offset.checked_add(len).ok_or(Error::Overflow)?;
            if offset & 3 != 0 || offset < prev_end || end > bytes.len() {
                return Err(Error::BadSection { index: i as u16 });
            }
            prev_end = end;
            *slot = (kind, offset, len);
        }
        if sections[0].0 != SECTION_GRAPH {
            return Err(invalid(
                Section::Table,
                "first section kind",
                u64::from(sections[0].0),
            ));
        }
        let section = |i: usize| -> &'a [u8] {
            let (_, o, l) = sections[i];
            bytes.get(o..o + l).unwrap_or(&[])
        };

        // Graph.
        let mut g = Reader::new(section(0), Section::Graph);
        let max = MAX_ELEMENTS as u32;
        let input = Dims {
            c: g.u32_in("input channels", 1, 4096)? as usize,
            h: g.u32_in("input height", 1, 4096)? as usize,
            w: g.u32_in("input width", 1, 4096)? as usize,
        };
        if input.len() > MAX_ELEMENTS {
            return Err(Error::Overflow);
        }
        let classes = g.u32_in("classes", 1, 65_536)? as usize;
        let (mean, std) = (g.u32()?, g.u32()?);
        #[cfg(not(feature = "integer-only"))]
        {
            let (m, s) = (f32::from_bits(mean), f32::from_bits(std));
            if flags & FLAG_F32 != 0 && !(m.is_finite() && s.is_finite() && s > 0.0) {
                return Err(invalid(Section::Graph, "normalization", u64::from(std)));
            }
        }
        let layer_count = g.u32_in("layer count", 1, MAX_LAYERS as u32)? as usize;
        self.clear();
        let model = self;
        (model.flags, model.input, model.classes) = (flags, input, classes);
        (model.mean, model.std) = (mean, std);
        (model.layer_count, model.file_bytes) = (layer_count, bytes.len());
        let mut dims = input;
        let mut flat = false;
        let mut weighted = 0usize;
        let mut used = [false; MAX_LAYERS + 1];
        let mut which = 0usize; // ping-pong buffer the next output goes to
        let mut prev_zp: Option<i32> = None;
        for li in 0..layer_count {
            let op_code = g.u8()?;
            let relu = match g.u8()? {
                0 => false,
                1 => true,
                v => return Err(invalid(Section::Graph, "activation", u64::from(v))),
            };
            let size = usize::from(g.u16()?);
            let a = g.u32_in("layer input size", 0, max)? as usize;
            let b = g.u32_in("layer output size", 0, max)? as usize;
            let sec = g.u32()? as usize;
            let layer = li as u16;
            let mismatch = |expected: usize, found: usize| Error::ShapeMismatch {
                layer,
                expected: expected as u32,
                found: found as u32,
            };
            let (op, output) = match op_code {
                1 => {
                    if a != dims.len() {
                        return Err(mismatch(dims.len(), a));
                    }
                    if b == 0 {
                        return Err(mismatch(1, 0));
                    }
                    (Op::Dense, Dims { c: b, h: 1, w: 1 })
                }
                2 => {
                    if flat || a != dims.c {
                        return Err(mismatch(dims.c, a));
                    }
                    if size == 0 || size > dims.h || size > dims.w || b == 0 {
                        return Err(mismatch(dims.h.min(dims.w), size));
                    }
                    (
                        Op::Conv2d,
                        Dims {
                            c: b,
                            h: dims.h - size + 1,
                            w: dims.w - size + 1,
                        },
                    )
                }
                3 => {
                    if flat || size < 2 || size > dims.h || size > dims.w {
                        return Err(mismatch(dims.h.min(dims.w), size));
                    }
                    (
                        Op::MaxPool,
                        Dims {
                            c: dims.c,
                            h: dims.h / size,
                            w: dims.w / size,
                        },
                    )
                }
                4 => (
                    Op::Flatten,
                    Dims {
                        c: dims.len(),
                        h: 1,
                        w: 1,
                    },
                ),
                v => return Err(invalid(Section::Graph, "layer op", u64::from(v))),
            };
            if output.len() > MAX_ELEMENTS {
                return Err(Error::Overflow);
            }
            if op == Op::Flatten {
                flat = true;
            }
            if op == Op::Dense {
                flat = true;
            }
            let weights = if matches!(op, Op::Dense | Op::Conv2d) {
                if sec == 0 || sec >= count || used[sec] || sections[sec].0 != SECTION_LAYER {
                    return Err(invalid(Section::Graph, "weight section index", sec as u64));
                }
                used[sec] = true;
                let fan_in = if op == Op::Dense {
                    a
                } else {
                    mul(mul(a, size)?, size)?
                };
                let mut w = parse_layer(section(sec), flags, weighted as u16, b, fan_in)?;
                w.stored.0 += sections[sec].1;
                if let (Some(q), Some(zp)) = (&w.quant, prev_zp) {
                    if q.zp_in != zp {
                        return Err(invalid(
                            Section::Layer(weighted as u16),
                            "input zero point",
                            q.zp_in as u64,
                        ));
                    }
                }
                prev_zp = w.quant.map(|q| q.zp_out);
                weighted += 1;
                Some(w)
            } else {
                if op == Op::MaxPool && relu {
                    return Err(invalid(Section::Graph, "activation on max-pool", 1));
                }
                None
            };
            if op == Op::Conv2d {
                model.max_plane = model.max_plane.max(output.h * output.w);
            }
            if let Some(Weights {
                payload: Payload::Sparse(s),
                ..
            }) = &weights
            {
                if s.zstd() {
                    let (pl, il) = s.packed_lens().ok_or(Error::Overflow)?;
                    model.zstd_bytes = model
                        .zstd_bytes
                        .max(pl.checked_add(il).ok_or(Error::Overflow)?);
                } else if s.huffman() {
                    let bytes = (s.symbols as usize).checked_add(s.weights as usize);
                    model.decode_bytes = model.decode_bytes.max(bytes.ok_or(Error::Overflow)?);
                }
            }
            if op != Op::Flatten {
                model.buffers[which] = model.buffers[which].max(output.len());
                which ^= 1;
            }
            model.layers[li] = Some(LayerInfo {
                op,
                relu,
                size,
                input: dims,
                output,
                weights,
            });
            dims = output;
        }
        if dims.len() != classes {
            return Err(Error::ShapeMismatch {
                layer: (layer_count - 1) as u16,
                expected: classes as u32,
                found: dims.len() as u32,
            });
        }
        if weighted == 0 || used.iter().take(count).skip(1).any(|u| !u) {
            return Err(invalid(
                Section::Table,
                "unused layer sections",
                (count - 1 - weighted) as u64,
            ));
        }
        if flags & FLAG_INT != 0 {
            model.lut = g.take(256)?;
        }
        Ok(())
    }

    /// Runs `step(layer, weighted_index, x, y)` for every layer but flatten (a no-op on channel-major data), reading
    /// the first from `input` and then alternating between the ping-pong buffers `a` and `b`, the layout the arena
    /// sizes assume. Returns the buffer holding the last layer's output. Shared by both numeric paths.
    pub(crate) fn walk<'b>(
        &self,
        input: &'b [u8],
        a: &'b mut [u8],
        b: &'b mut [u8],
        mut step: impl FnMut(&LayerInfo<'a>, u16, &[u8], &mut [u8]) -> Result<()>,
    ) -> Result<&'b [u8]> {
        // Where the current activation lives: 0 = input, 1 = a, 2 = b.
        let mut cur = 0u8;
        let mut weighted = 0u16;
        for l in self.layers.iter().take(self.layer_count).flatten() {
            if l.op == Op::Flatten {
                continue;
            }
            let (x, y): (&[u8], &mut [u8]) = match cur {
                0 => (input, &mut *a),
                1 => (&*a, &mut *b),
                _ => (&*b, &mut *a),
            };
            step(l, weighted, x, y)?;
            if l.weights.is_some() {
                weighted += 1;
            }
            cur = if cur == 1 { 2 } else { 1 };
        }
        Ok(if cur == 1 { a } else { b })
    }

    /// Shape of one input sample.
    pub fn input_dims(&self) -> Dims {
        self.input
    }

    /// Elements of one input sample.
    pub fn input_len(&self) -> usize {
        self.input.len()
    }

    /// Number of output classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Whether the f32 path can run this model (never in an `integer-only` build).
    pub fn has_f32(&self) -> bool {
        self.flags & FLAG_F32 != 0 && cfg!(not(feature = "integer-only"))
    }

    /// Whether the integer-only path can run this model.
    pub fn has_integer(&self) -> bool {
        self.flags & FLAG_INT != 0
    }

    /// The input normalization `(mean, std)` applied to pixels scaled to [0, 1] by the f32 path.
    #[cfg(not(feature = "integer-only"))]
    pub fn normalization(&self) -> (f32, f32) {
        (f32::from_bits(self.mean), f32::from_bits(self.std))
    }

    /// Exact scratch bytes [`Model::run`] and [`Model::run_u8`] need: the input and two ping-pong activation
    /// buffers, as f32 (plus the decoded streams in [`StreamDecoding::Arena`] mode).
    pub fn arena_len(&self) -> usize {
        // Saturating: on a 32-bit target an absurd (but valid) model must ask for "too much", not wrap around.
        let elements = self
            .input
            .len()
            .saturating_add(self.buffers[0])
            .saturating_add(self.buffers[1]);
        elements.saturating_mul(4).saturating_add(self.decode_len())
    }

    /// Exact scratch bytes [`Model::run_int8`] needs: the input and two ping-pong activation buffers as int8,
    /// plus one output plane of i32 accumulators when the model has convolutions (plus the decoded streams in
    /// [`StreamDecoding::Arena`] mode).
    pub fn arena_len_int8(&self) -> usize {
        self.input.len()
            + self.buffers[0]
            + self.buffers[1]
            + 4 * self.max_plane
            + self.decode_len()
    }

    /// Chooses how Huffman-coded streams are decoded (see [`StreamDecoding`]); changes the arena sizes.
    pub fn set_stream_decoding(&mut self, decoding: StreamDecoding) {
        self.decoding = decoding;
    }

    /// Whether Huffman streams are decoded into the arena ([`StreamDecoding`]).
    pub(crate) fn arena_decoding(&self) -> bool {
        self.decoding != StreamDecoding::OnTheFly
    }

    /// Arena bytes reserved for decoded streams.
    pub(crate) fn decode_len(&self) -> usize {
        let huffman = match self.decoding {
            StreamDecoding::OnTheFly => 0,
            #[cfg(feature = "arena-decoding")]
            StreamDecoding::Arena => self.decode_bytes,
        };
        huffman.max(self.zstd_bytes)
    }

    /// Number of layers.
    pub fn layer_count(&self) -> usize {
        self.layer_count
    }

    /// Size of the file in bytes.
    pub fn file_bytes(&self) -> usize {
        self.file_bytes
    }

    /// A description of layer `i`, for tools (`slimnet info`).
    pub fn layer(&self, i: usize) -> Option<LayerSummary> {
        let l = self.layers.get(i)?.as_ref()?;
        Some(LayerSummary {
            op: l.op,
            relu: l.relu,
            input: l.input,
            output: l.output,
            encoding: l.weights.map(|w| w.encoding()),
            weights_kept: l.weights.map(|w| match w.payload {
                Payload::Sparse(s) => s.weights as usize,
                _ => w.outputs * w.fan_in,
            }),
            position_coding: l.weights.and_then(|w| match w.payload {
                Payload::Sparse(s) => Some(s.position_coding),
                _ => None,
            }),
            index_coding: l.weights.and_then(|w| match w.payload {
                Payload::Sparse(s) => Some(s.index_coding),
                _ => None,
            }),
            section_bytes: l.weights.map_or(0, |w| w.section_bytes),
            stored_weights: l.weights.map(|w| w.stored),
        })
    }
}

/// What [`Model::layer`] tells about a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerSummary {
    /// The operation.
    pub op: Op,
    /// Whether ReLU is fused into it.
    pub relu: bool,
    /// Input shape.
    pub input: Dims,
    /// Output shape.
    pub output: Dims,
    /// Weight encoding (weighted layers).
    pub encoding: Option<Encoding>,
    /// Weights stored (non-zero for sparse layers).
    pub weights_kept: Option<usize>,
    /// How a sparse layer's position stream is coded.
    pub position_coding: Option<StreamCoding>,
    /// How a sparse layer's index stream is coded.
    pub index_coding: Option<StreamCoding>,
    /// Bytes of the layer's section.
    pub section_bytes: usize,
    /// Where the layer's stored weights lie in the file, as (offset, length): the dense values, or a sparse
    /// layer's codebook, code lengths and streams. What fault injection flips bits in.
    pub stored_weights: Option<(usize, usize)>,
}

/// A sink that only counts the weights: validation decodes and checks.
struct Count(u32);

impl Sink for Count {
    fn weights(&mut self, cols: &[u32], _: &[u8]) {
        self.0 = self.0.wrapping_add(cols.len() as u32);
    }
    fn end_row(&mut self, _: usize) {}
}

/// Parses and validates a layer section for a layer of `outputs × fan_in` weights.
fn parse_layer(
    bytes: &[u8],
    flags: u16,
    layer: u16,
    outputs: usize,
    fan_in: usize,
) -> Result<Weights<'_>> {
    let section = Section::Layer(layer);
    let mut r = Reader::new(bytes, section);
    let encoding = r.u8()?;
    let coding = r.u8()?;
    let index_bits = u32::from(r.u8()?);
    let position_bits = u32::from(r.u8()?);
    let o = r.u32()? as usize;
    let f = r.u32()? as usize;
    if o != outputs || f != fan_in {
        return Err(Error::ShapeMismatch {
            layer,
            expected: mul(outputs, fan_in)? as u32,
            found: mul(o, f).unwrap_or(usize::MAX) as u32,
        });
    }
    let n = mul(outputs, fan_in)?;
    if n > MAX_ELEMENTS {
        return Err(Error::Overflow);
    }
    let int = flags & FLAG_INT != 0;
    let f32_path = flags & FLAG_F32 != 0;
    // With both paths the f32 path derives its biases from the integer ones (FORMAT.md): stored once.
    let bias_f32 = if f32_path && !int {
        r.words(outputs)?
    } else {
        &[]
    };
    let quant = if int {
        if encoding == 1 {
            return Err(invalid(
                section,
                "encoding (f32 weights in an integer-path file)",
                1,
            ));
        }
        let zp_in = r.i32()?;
        let zp_out = r.i32()?;
        if !(-128..=127).contains(&zp_in) || !(-128..=127).contains(&zp_out) {
            return Err(invalid(section, "zero point", zp_in as u64));
        }
        let per_channel = match r.u32()? {
            0 => false,
            1 => true,
            v => return Err(invalid(section, "per-channel flag", u64::from(v))),
        };
        let m = if per_channel { outputs } else { 1 };
        let multipliers = r.words(m)?;
        let shifts = r.words(m)?;
        for i in 0..m {
            let mult = crate::bytes::i32_at(multipliers, i);
            let shift = crate::bytes::i32_at(shifts, i);
            if mult < 0 || !(-31..=30).contains(&shift) {
                return Err(invalid(
                    section,
                    "requantization multiplier or shift",
                    mult as u64,
                ));
            }
        }
        Some(Quant {
            zp_in,
            zp_out,
            per_channel,
            multipliers,
            shifts,
            bias: r.words(outputs)?,
        })
    } else {
        None
    };
    let scale_count = match encoding {
        2 => outputs,
        3 => 1,
        _ => 0,
    };
    let input_scale = if f32_path && int { r.words(1)? } else { &[] };
    let scales = if f32_path { r.words(scale_count)? } else { &[] };
    let stored_from = r.pos();
    let payload = match encoding {
        1 => Payload::DenseF32(r.words(n)?),
        2 => {
            let w = r.take(n)?;
            r.align4()?;
            Payload::DenseI8(w)
        }
        3 => {
            let stream_coding = |c: u8| match c & 3 {
                0 => Some(StreamCoding::Packed),
                1 => Some(StreamCoding::Huffman),
                2 if cfg!(feature = "zstd") => Some(StreamCoding::Zstd),
                _ => None,
            };
            let (Some(position_coding), Some(index_coding)) =
                (stream_coding(coding), stream_coding(coding >> 2))
            else {
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
                0 => {
                    let c = r.take(k as usize)?;
                    r.align4()?;
                    Codebook::I8(c)
                }
                1 if !int => Codebook::F32(r.words(k as usize)?),
                v => return Err(invalid(section, "codebook type", u64::from(v))),
            };
            let position_lengths = if position_coding == StreamCoding::Huffman {
                r.take(1 << position_bits)?
            } else {
                &[]
            };
            let index_lengths = if index_coding == StreamCoding::Huffman {
                r.take(1 << index_bits)?
            } else {
                &[]
            };
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
            // Every symbol takes at least a bit: a stream cannot declare more symbols than it has bits.
            let bits = |bytes: usize| bytes.saturating_mul(8);
            let zstd = sparse.zstd();
            if weights > symbols
                || !zstd
                    && (symbols as usize > bits(pos_bytes) || weights as usize > bits(idx_bytes))
            {
                return Err(Error::CorruptStream { layer });
            }
            if zstd {
                // zstd streams need memory to decode into, which loading does not have: check their frame headers
                // (content size = the bit-packed form) here; their content is checked as it is decoded in a run.
                let (pl, il) = sparse.packed_lens().ok_or(Error::Overflow)?;
                #[cfg(feature = "zstd")]
                let ok = |c: StreamCoding, bytes: &[u8], len: usize| {
                    c != StreamCoding::Zstd || crate::zstd::check_header(bytes, len)
                };
                #[cfg(not(feature = "zstd"))]
                let ok = |_: StreamCoding, _: &[u8], _: usize| false;
                if !ok(position_coding, positions, pl) || !ok(index_coding, indices, il) {
                    return Err(Error::CorruptStream { layer });
                }
            } else {
                // Decode once: every position in range, every index in the codebook, counts as declared.
                let mut found = Count(0);
                sparse.walk::<true, _>(fan_in, outputs, layer, &mut Scratch::none(), &mut found)?;
                if found.0 != weights {
                    return Err(Error::CorruptStream { layer });
                }
            }
            Payload::Sparse(sparse)
        }
        v => return Err(invalid(section, "encoding", u64::from(v))),
    };
    let stored_to = r.pos();
    #[cfg(not(feature = "integer-only"))]
    if f32_path {
        for i in 0..outputs {
            if !crate::bytes::f32_at(bias_f32, i).is_finite() {
                return Err(invalid(section, "bias", i as u64));
            }
        }
        for i in 0..scale_count {
            if !crate::bytes::f32_at(scales, i).is_finite() {
                return Err(invalid(section, "scale", i as u64));
            }
        }
        if int
            && !(crate::bytes::f32_at(input_scale, 0) > 0.0
                && crate::bytes::f32_at(input_scale, 0).is_finite())
        {
            return Err(invalid(section, "input scale", 0));
        }
    }
    if r.pos() != bytes.len() {
        return Err(invalid(
            section,
            "trailing bytes",
            (bytes.len() - r.pos()) as u64,
        ));
    }
    Ok(Weights {
        outputs,
        fan_in,
        bias_f32,
        input_scale,
        scales,
        quant,
        payload,
        section_bytes: bytes.len(),
        stored: (stored_from, stored_to - stored_from),
    })
}
