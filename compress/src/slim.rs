//! The `.slim` writer: the inverse of `slimnet_runtime::Model::from_bytes`, following `runtime/FORMAT.md` with
//! the vocabulary of `slimnet_runtime::format`. [`SlimFile::to_bytes`] lays out the header, section table, the
//! graph (tensors and operator records) and one weights section per weighted operator (4-byte aligned), and seals
//! the file with its CRC-32; tests read every file back with the runtime.

use crate::error::{Error, Result};
use crate::huffman;
use byteorder::{LittleEndian, WriteBytesExt};
use slimnet_runtime::format::{
    codebook, encoding, Activation, OpKind, COUNT_OFFSET, CRC_FROM, CRC_OFFSET, FLAG_F32, FLAG_INT,
    GRAPH_INPUT_TABLE, HEADER_BYTES, LENGTH_OFFSET, MAGIC, NO_TENSOR, SECTION_GRAPH,
    SECTION_WEIGHTS, TABLE_ENTRY_BYTES, VERSION,
};

/// Which numeric paths a file supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paths {
    /// The f32 path (biases and scales in f32).
    pub f32: bool,
    /// The integer-only path (zero points, requantization, int32 biases).
    pub integer: bool,
}

/// A model ready to be written: a graph of operators over tensors, in execution order.
#[derive(Debug, Clone)]
pub struct SlimFile {
    /// The tensors (one sample each, channels last).
    pub tensors: Vec<TensorSpec>,
    /// The operators, in execution order.
    pub ops: Vec<OpSpec>,
    /// The input tensor.
    pub input: u16,
    /// The output tensor.
    pub output: u16,
    /// Normalization of pixels scaled to [0, 1] for the f32 path's pixel entry points: (mean, std).
    pub normalization: (f32, f32),
    /// Pixel → int8 input activation (the integer path's pixel entry points).
    pub input_table: Option<[i8; 256]>,
    /// Paths the file supports.
    pub paths: Paths,
}

/// A tensor: its shape and, for the integer path, its quantization.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    /// Dimensions of one sample (rank 1 ..= 4, channels last).
    pub shape: Vec<u16>,
    /// Integer path: zero point.
    pub zero_point: i8,
    /// Integer path: scale (0 in f32-only files).
    pub scale: f32,
}

/// Window, stride and padding of a windowed operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Window {
    /// Kernel (or filter) height and width.
    pub kernel: [u8; 2],
    /// Stride along height and width.
    pub stride: [u8; 2],
    /// Padding above, left, below, right.
    pub pad: [u8; 4],
}

impl Window {
    /// An unpadded window whose stride is its size (LeNet's pooling).
    pub fn pool(size: u8) -> Window {
        Window {
            kernel: [size, size],
            stride: [size, size],
            pad: [0; 4],
        }
    }

    /// A square kernel with stride 1 and no padding.
    pub fn valid(kernel: u8) -> Window {
        Window {
            kernel: [kernel, kernel],
            stride: [1, 1],
            pad: [0; 4],
        }
    }

    fn bytes(&self) -> [u8; 8] {
        let (k, s, p) = (self.kernel, self.stride, self.pad);
        [k[0], k[1], s[0], s[1], p[0], p[1], p[2], p[3]]
    }
}

/// ADD's integer rescaling (TFLite's): multiplier and shift per input and for the output, and the left shift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AddParams {
    /// (multiplier, shift) of input 1.
    pub input1: (i32, i32),
    /// (multiplier, shift) of input 2.
    pub input2: (i32, i32),
    /// (multiplier, shift) of the sum.
    pub output: (i32, i32),
    /// Left shift of both inputs (20 for int8).
    pub left_shift: i32,
}

/// SOFTMAX's parameters: β, and the integer path's input rescaling (TFLite's `CalculateSoftmaxParams`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SoftmaxParams {
    /// β.
    pub beta: f32,
    /// Q31 multiplier of input differences.
    pub input_multiplier: i32,
    /// Its left shift.
    pub input_left_shift: i32,
    /// Differences below this are taken as −∞.
    pub diff_min: i32,
}

/// An operator's own parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OpParams {
    /// FULLY_CONNECTED and RESHAPE.
    None,
    /// CONV_2D, MAX_POOL_2D, AVERAGE_POOL_2D.
    Window(Window),
    /// DEPTHWISE_CONV_2D: window and depth multiplier.
    Depthwise(Window, u8),
    /// ADD.
    Add(AddParams),
    /// SOFTMAX.
    Softmax(SoftmaxParams),
}

/// One operator.
#[derive(Debug, Clone)]
pub struct OpSpec {
    /// Which.
    pub kind: OpKind,
    /// The fused activation.
    pub activation: Activation,
    /// Integer path: the clamp of the fused activation (`(-128, 127)` for none).
    pub range: (i8, i8),
    /// Input tensors (the second is [`NO_TENSOR`] except for ADD).
    pub inputs: [u16; 2],
    /// Output tensor.
    pub output: u16,
    /// Parameters.
    pub params: OpParams,
    /// Weights (FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D).
    pub weights: Option<LayerWeights>,
}

impl OpSpec {
    /// An operator of one input without weights or a fused activation.
    pub fn unary(kind: OpKind, input: u16, output: u16, params: OpParams) -> OpSpec {
        OpSpec {
            kind,
            activation: Activation::None,
            range: (-128, 127),
            inputs: [input, NO_TENSOR],
            output,
            params,
            weights: None,
        }
    }
}

/// Integer-path parameters of a weighted operator (the zero points and scales of its tensors are the tensors').
#[derive(Debug, Clone, PartialEq)]
pub struct LayerQuant {
    /// Per output channel (else one multiplier/shift for the operator).
    pub per_channel: bool,
    /// Q31 multipliers.
    pub multipliers: Vec<i32>,
    /// Shifts (positive = left).
    pub shifts: Vec<i32>,
    /// int32 biases, scale `s_in · s_w`.
    pub bias: Vec<i32>,
}

/// A sparse layer's codebook.
#[derive(Debug, Clone, PartialEq)]
pub enum CodebookValues {
    /// int8 entries (value = q · scale).
    I8(Vec<i8>),
    /// f32 entries (f32 path only).
    F32(Vec<f32>),
}

/// How one sparse stream is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamCoding {
    /// Fixed-width fields.
    Packed,
    /// Canonical Huffman (its code-length table stored beside it).
    Huffman,
    /// zstd at this level of the bit-packed form (the runtime decodes it into its arena).
    Zstd(i32),
}

impl StreamCoding {
    /// The runtime's name for this coding (whose 2-bit code the file stores).
    pub fn runtime(self) -> slimnet_runtime::StreamCoding {
        match self {
            StreamCoding::Packed => slimnet_runtime::StreamCoding::Packed,
            StreamCoding::Huffman => slimnet_runtime::StreamCoding::Huffman,
            StreamCoding::Zstd(_) => slimnet_runtime::StreamCoding::Zstd,
        }
    }

    /// Its 2-bit code in the weights section's coding byte (FORMAT.md).
    pub fn code(self) -> u8 {
        self.runtime().code()
    }
}

/// Which codings the writer may pick from, per stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoderChoice {
    /// Per stream, whichever of bit-packed, Huffman and zstd (at this level) is smallest; zstd only where it saves
    /// at least [`ZSTD_MIN_GAIN`], since it costs arena and a decode per inference.
    Smallest {
        /// zstd level, 1..=22.
        zstd_level: i32,
    },
    /// Always bit-packed (entropy coding skipped).
    Packed,
    /// Always Huffman.
    Huffman,
    /// Always zstd at this level.
    Zstd {
        /// zstd level, 1..=22.
        level: i32,
    },
}

/// The kept weights of a sparse layer as symbol streams.
#[derive(Debug, Clone, PartialEq)]
pub struct SparseStreams {
    /// Shared values.
    pub codebook: CodebookValues,
    /// Bits per cluster index (1..=8).
    pub index_bits: u8,
    /// Bits per relative position (1..=8).
    pub position_bits: u8,
    /// Coding of the position stream.
    pub position_coding: StreamCoding,
    /// Coding of the index stream.
    pub index_coding: StreamCoding,
    /// Position symbols, fillers included.
    pub positions: Vec<u32>,
    /// One cluster index per kept weight.
    pub indices: Vec<u32>,
}

/// One stream as stored: its bytes and, for Huffman, its code-length table.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedStream {
    /// The coded stream.
    pub bytes: Vec<u8>,
    /// Code length of every symbol (Huffman only; empty when bit-packed).
    pub lengths: Vec<u8>,
}

impl EncodedStream {
    /// Encodes `symbols` of `bits` bits each.
    pub fn new(symbols: &[u32], bits: u8, coding: StreamCoding) -> EncodedStream {
        match coding {
            StreamCoding::Packed => EncodedStream {
                bytes: huffman::pack(symbols, bits),
                lengths: Vec::new(),
            },
            StreamCoding::Huffman => {
                let lengths = huffman::code_lengths(&histogram(symbols, 1 << bits));
                EncodedStream {
                    bytes: huffman::encode(symbols, &lengths),
                    lengths,
                }
            }
            StreamCoding::Zstd(level) => EncodedStream {
                // In-memory compression of a byte slice cannot fail short of an out-of-range level, which
                // `Settings::validate` refuses.
                bytes: zstd::bulk::compress(&huffman::pack(symbols, bits), level)
                    .expect("zstd compresses in memory"),
                lengths: Vec::new(),
            },
        }
    }

    /// Bytes the stream and its table take in the file.
    pub fn stored_bytes(&self) -> usize {
        self.bytes.len() + self.lengths.len()
    }
}

/// Relative position symbols for kept weights at increasing linear positions, with `2^bits − 1` as the filler.
pub fn position_symbols(kept: &[usize], bits: u8) -> Vec<u32> {
    let filler = (1u32 << bits) - 1;
    let mut symbols = Vec::with_capacity(kept.len());
    let mut next = 0usize;
    for &p in kept {
        let mut gap = p - next;
        while gap >= filler as usize {
            symbols.push(filler);
            gap -= filler as usize;
        }
        symbols.push(gap as u32);
        next = p + 1;
    }
    symbols
}

/// The codings `choice` allows.
fn codings(choice: CoderChoice) -> Vec<StreamCoding> {
    match choice {
        CoderChoice::Smallest { zstd_level } => vec![
            StreamCoding::Packed,
            StreamCoding::Huffman,
            StreamCoding::Zstd(zstd_level),
        ],
        CoderChoice::Packed => vec![StreamCoding::Packed],
        CoderChoice::Huffman => vec![StreamCoding::Huffman],
        CoderChoice::Zstd { level } => vec![StreamCoding::Zstd(level)],
    }
}

/// The smallest coding of `symbols` among those allowed.
/// The smallest coding of `symbols` among those allowed, where a zstd stream counts as smaller only when it
/// saves at least [`ZSTD_MIN_GAIN`] of the best other coding: unlike bit-packed and Huffman streams, which run in
/// place, a zstd stream costs its decoded size in arena and a decode on every inference.
fn smallest(symbols: &[u32], bits: u8, choice: CoderChoice) -> (StreamCoding, usize) {
    let sized: Vec<(StreamCoding, usize)> = codings(choice)
        .into_iter()
        .map(|c| (c, EncodedStream::new(symbols, bits, c).stored_bytes()))
        .collect();
    let in_place = sized
        .iter()
        .filter(|(c, _)| !matches!(c, StreamCoding::Zstd(_)))
        .min_by_key(|&&(_, n)| n)
        .copied();
    let zstd = sized
        .iter()
        .find(|(c, _)| matches!(c, StreamCoding::Zstd(_)))
        .copied();
    match (in_place, zstd) {
        (Some(p), Some(z)) if (z.1 as f64) < (1.0 - ZSTD_MIN_GAIN) * p.1 as f64 => z,
        (Some(p), _) => p,
        (None, Some(z)) => z,
        (None, None) => unreachable!("every choice allows a coding"),
    }
}

/// The fraction of a stream zstd must save over in-place codings to be chosen by [`CoderChoice::Smallest`].
pub const ZSTD_MIN_GAIN: f64 = 0.05;

impl SparseStreams {
    /// Streams for kept weights at increasing linear `positions` with cluster `indices`, both bit-packed.
    pub fn from_positions(
        codebook: CodebookValues,
        kept: &[(usize, u32)],
        index_bits: u8,
        position_bits: u8,
    ) -> SparseStreams {
        let positions: Vec<usize> = kept.iter().map(|&(p, _)| p).collect();
        SparseStreams {
            codebook,
            index_bits,
            position_bits,
            position_coding: StreamCoding::Packed,
            index_coding: StreamCoding::Packed,
            positions: position_symbols(&positions, position_bits),
            indices: kept.iter().map(|&(_, i)| i).collect(),
        }
    }

    /// Streams for the kept weights with the position width (1..=8 bits) and the codings, among those `choice`
    /// allows, that make the layer smallest.
    pub fn smallest(
        codebook: CodebookValues,
        kept: &[(usize, u32)],
        index_bits: u8,
        choice: CoderChoice,
    ) -> SparseStreams {
        let positions: Vec<usize> = kept.iter().map(|&(p, _)| p).collect();
        let (position_bits, position_coding, _) = (1..=8u8)
            .map(|r| {
                let (c, n) = smallest(&position_symbols(&positions, r), r, choice);
                (r, c, n)
            })
            .min_by_key(|&(_, _, n)| n)
            .expect("eight widths");
        let indices: Vec<u32> = kept.iter().map(|&(_, i)| i).collect();
        let (index_coding, _) = smallest(&indices, index_bits, choice);
        SparseStreams {
            codebook,
            index_bits,
            position_bits,
            position_coding,
            index_coding,
            positions: position_symbols(&positions, position_bits),
            indices,
        }
    }

    /// The encoded (position, index) streams.
    pub fn encode(&self) -> (EncodedStream, EncodedStream) {
        (
            EncodedStream::new(&self.positions, self.position_bits, self.position_coding),
            EncodedStream::new(&self.indices, self.index_bits, self.index_coding),
        )
    }
}

fn histogram(symbols: &[u32], n: usize) -> Vec<u64> {
    let mut h = vec![0u64; n];
    for &s in symbols {
        h[s as usize] += 1;
    }
    h
}

/// How a layer's weights are stored.
#[derive(Debug, Clone, PartialEq)]
pub enum WeightPayload {
    /// Dense f32.
    DenseF32(Vec<f32>),
    /// Dense int8 (per-channel scales in `LayerWeights::scales`).
    DenseI8(Vec<i8>),
    /// Sparse shared weights.
    Sparse(SparseStreams),
}

/// A weighted layer's data.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerWeights {
    /// f32 biases (f32 path).
    pub bias: Vec<f32>,
    /// Dequantization scales: one per output channel for dense int8, one for an int8 codebook (f32 path).
    pub scales: Vec<f32>,
    /// Integer-path parameters.
    pub quant: Option<LayerQuant>,
    /// The weights.
    pub payload: WeightPayload,
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

impl LayerWeights {
    fn section(&self, outputs: u32, fan_in: u32, paths: Paths) -> Result<Vec<u8>> {
        let mut s = Vec::new();
        let (enc, coding, ib, pb) = match &self.payload {
            WeightPayload::DenseF32(_) => (encoding::DENSE_F32, 0u8, 0u8, 0u8),
            WeightPayload::DenseI8(_) => (encoding::DENSE_I8, 0, 0, 0),
            WeightPayload::Sparse(sp) => (
                encoding::SPARSE,
                slimnet_runtime::StreamCoding::pair(
                    sp.position_coding.runtime(),
                    sp.index_coding.runtime(),
                ),
                sp.index_bits,
                sp.position_bits,
            ),
        };
        s.extend_from_slice(&[enc, coding, ib, pb]);
        s.write_u32::<LittleEndian>(outputs).expect("vec");
        s.write_u32::<LittleEndian>(fan_in).expect("vec");
        // With both paths the f32 path derives its biases from the integer ones (FORMAT.md).
        if paths.f32 && !paths.integer {
            if self.bias.len() != outputs as usize {
                return Err(Error::Unsupported(format!(
                    "{} f32 biases for {outputs} outputs",
                    self.bias.len()
                )));
            }
            self.bias
                .iter()
                .for_each(|v| s.write_f32::<LittleEndian>(*v).expect("vec"));
        }
        if paths.integer {
            let q = self.quant.as_ref().ok_or_else(|| {
                Error::Unsupported("integer path without quantization parameters".into())
            })?;
            s.write_u32::<LittleEndian>(u32::from(q.per_channel))
                .expect("vec");
            for v in q.multipliers.iter().chain(&q.shifts).chain(&q.bias) {
                s.write_i32::<LittleEndian>(*v).expect("vec");
            }
        }
        if paths.f32 {
            self.scales
                .iter()
                .for_each(|v| s.write_f32::<LittleEndian>(*v).expect("vec"));
        }
        match &self.payload {
            WeightPayload::DenseF32(w) => w
                .iter()
                .for_each(|v| s.write_f32::<LittleEndian>(*v).expect("vec")),
            WeightPayload::DenseI8(w) => {
                s.extend(w.iter().map(|&q| q as u8));
                pad4(&mut s);
            }
            WeightPayload::Sparse(sp) => {
                let (pos, idx) = sp.encode();
                let (cb_type, k) = match &sp.codebook {
                    CodebookValues::I8(c) => (codebook::I8, c.len()),
                    CodebookValues::F32(c) => (codebook::F32, c.len()),
                };
                s.extend_from_slice(&[cb_type, 0, 0, 0]);
                for v in [
                    k,
                    sp.positions.len(),
                    sp.indices.len(),
                    pos.bytes.len(),
                    idx.bytes.len(),
                ] {
                    s.write_u32::<LittleEndian>(v as u32).expect("vec");
                }
                match &sp.codebook {
                    CodebookValues::I8(c) => {
                        s.extend(c.iter().map(|&q| q as u8));
                        pad4(&mut s);
                    }
                    CodebookValues::F32(c) => c
                        .iter()
                        .for_each(|v| s.write_f32::<LittleEndian>(*v).expect("vec")),
                }
                s.extend_from_slice(&pos.lengths);
                s.extend_from_slice(&idx.lengths);
                pad4(&mut s);
                s.extend_from_slice(&pos.bytes);
                pad4(&mut s);
                s.extend_from_slice(&idx.bytes);
                pad4(&mut s);
            }
        }
        Ok(s)
    }
}

impl SlimFile {
    /// The weighted operators: (operator index, weights).
    pub fn weighted(&self) -> impl Iterator<Item = (usize, &LayerWeights)> {
        self.ops
            .iter()
            .enumerate()
            .filter_map(|(i, o)| o.weights.as_ref().map(|w| (i, w)))
    }

    /// Bytes of operator `i`'s weights section as it would be written (0 without weights).
    pub fn weights_section_bytes(&self, i: usize) -> Result<usize> {
        let op = &self.ops[i];
        match &op.weights {
            Some(w) => {
                let (rows, fan_in) = self.matrix(op)?;
                Ok(w.section(rows, fan_in, self.paths)?.len())
            }
            None => Ok(0),
        }
    }

    /// The weight matrix shape (rows, fan-in) of operator `op`, from its tensors.
    fn matrix(&self, op: &OpSpec) -> Result<(u32, u32)> {
        let shape = |t: u16| {
            self.tensors
                .get(usize::from(t))
                .map(|t| t.shape.clone())
                .ok_or_else(|| Error::Unsupported(format!("tensor {t} does not exist")))
        };
        let (input, output) = (shape(op.inputs[0])?, shape(op.output)?);
        let elements = |s: &[u16]| s.iter().map(|&d| u32::from(d)).product::<u32>();
        let last = |s: &[u16]| s.last().map_or(0, |&d| u32::from(d));
        Ok(match op.params {
            OpParams::Window(w) if op.kind == OpKind::Conv2d => (
                last(&output),
                u32::from(w.kernel[0]) * u32::from(w.kernel[1]) * last(&input),
            ),
            OpParams::Depthwise(w, _) => (
                last(&output),
                u32::from(w.kernel[0]) * u32::from(w.kernel[1]),
            ),
            _ => (elements(&output), elements(&input)),
        })
    }

    /// The graph section.
    fn graph(&self, sections: &mut Vec<Vec<u8>>) -> Result<Vec<u8>> {
        let mut g = Vec::new();
        let count = |n: usize, what: &str| {
            u16::try_from(n).map_err(|_| Error::Unsupported(format!("{n} {what}")))
        };
        g.write_u16::<LittleEndian>(count(self.tensors.len(), "tensors")?)
            .expect("vec");
        g.write_u16::<LittleEndian>(count(self.ops.len(), "operators")?)
            .expect("vec");
        g.write_u16::<LittleEndian>(self.input).expect("vec");
        g.write_u16::<LittleEndian>(self.output).expect("vec");
        let table = self.paths.integer && self.input_table.is_some();
        g.write_u32::<LittleEndian>(if table { GRAPH_INPUT_TABLE } else { 0 })
            .expect("vec");
        g.write_f32::<LittleEndian>(self.normalization.0)
            .expect("vec");
        g.write_f32::<LittleEndian>(self.normalization.1)
            .expect("vec");
        for t in &self.tensors {
            if t.shape.is_empty() || t.shape.len() > 4 {
                return Err(Error::Unsupported(format!(
                    "a tensor of rank {}",
                    t.shape.len()
                )));
            }
            g.extend_from_slice(&[t.shape.len() as u8, t.zero_point as u8, 0, 0]);
            for i in 0..4 {
                g.write_u16::<LittleEndian>(t.shape.get(i).copied().unwrap_or(0))
                    .expect("vec");
            }
            g.write_f32::<LittleEndian>(t.scale).expect("vec");
        }
        for op in &self.ops {
            let section = match &op.weights {
                Some(w) => {
                    let (rows, fan_in) = self.matrix(op)?;
                    sections.push(w.section(rows, fan_in, self.paths)?);
                    count(sections.len(), "weights sections")?
                }
                None => 0,
            };
            g.extend_from_slice(&[
                op.kind as u8,
                op.activation as u8,
                op.range.0 as u8,
                op.range.1 as u8,
            ]);
            for v in [op.inputs[0], op.inputs[1], op.output, section] {
                g.write_u16::<LittleEndian>(v).expect("vec");
            }
            write_params(&mut g, op.params);
        }
        if table {
            g.extend(self.input_table.iter().flatten().map(|&q| q as u8));
        }
        pad4(&mut g);
        Ok(g)
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut weights = Vec::new();
        let graph = self.graph(&mut weights)?;
        let sections: Vec<(u32, &Vec<u8>)> = std::iter::once((SECTION_GRAPH, &graph))
            .chain(weights.iter().map(|s| (SECTION_WEIGHTS, s)))
            .collect();
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC);
        out.write_u16::<LittleEndian>(VERSION).expect("vec");
        let flags = if self.paths.f32 { FLAG_F32 } else { 0 }
            | if self.paths.integer { FLAG_INT } else { 0 };
        out.write_u16::<LittleEndian>(flags).expect("vec");
        out.resize(HEADER_BYTES, 0); // length, CRC, count, reserved: filled below
        let mut offset = HEADER_BYTES + TABLE_ENTRY_BYTES * sections.len();
        for (kind, s) in &sections {
            out.write_u32::<LittleEndian>(*kind).expect("vec");
            out.write_u32::<LittleEndian>(offset as u32).expect("vec");
            out.write_u32::<LittleEndian>(s.len() as u32).expect("vec");
            offset += s.len();
        }
        for (_, s) in &sections {
            out.extend_from_slice(s);
        }
        let total = out.len() as u32;
        out[LENGTH_OFFSET..LENGTH_OFFSET + 4].copy_from_slice(&total.to_le_bytes());
        out[COUNT_OFFSET..COUNT_OFFSET + 4].copy_from_slice(&(sections.len() as u32).to_le_bytes());
        let crc = slimnet_runtime::crc32(&out[CRC_FROM..]);
        out[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
        Ok(out)
    }
}

/// An operator's parameters after its record head (FORMAT.md).
fn write_params(g: &mut Vec<u8>, params: OpParams) {
    match params {
        OpParams::None => {}
        OpParams::Window(w) => g.extend_from_slice(&w.bytes()),
        OpParams::Depthwise(w, m) => {
            g.extend_from_slice(&w.bytes());
            g.extend_from_slice(&[m, 0, 0, 0]);
        }
        OpParams::Add(a) => {
            for v in [
                a.input1.0,
                a.input1.1,
                a.input2.0,
                a.input2.1,
                a.output.0,
                a.output.1,
                a.left_shift,
            ] {
                g.write_i32::<LittleEndian>(v).expect("vec");
            }
        }
        OpParams::Softmax(p) => {
            g.write_f32::<LittleEndian>(p.beta).expect("vec");
            for v in [p.input_multiplier, p.input_left_shift, p.diff_min] {
                g.write_i32::<LittleEndian>(v).expect("vec");
            }
        }
    }
}
