//! The `.slim` writer: the inverse of `slimnet_runtime::Model::from_bytes`, following `runtime/FORMAT.md`.
//! [`SlimFile::to_bytes`] lays out the header, section table and sections (4-byte aligned) and seals the file
//! with its CRC-32; tests read every file back with the runtime.

use crate::error::{Error, Result};
use crate::huffman;
use byteorder::{LittleEndian, WriteBytesExt};
use slimnet_runtime::{
    FLAG_F32, FLAG_INT, HEADER_BYTES, MAGIC, SECTION_GRAPH, SECTION_LAYER, VERSION,
};

/// Which numeric paths a file supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paths {
    /// The f32 path (biases and scales in f32).
    pub f32: bool,
    /// The integer-only path (zero points, requantization, int32 biases, the input table).
    pub integer: bool,
}

/// A model ready to be written.
#[derive(Debug, Clone)]
pub struct SlimFile {
    /// Input channels, height, width.
    pub input: [u32; 3],
    /// Output classes.
    pub classes: u32,
    /// Normalization of pixels scaled to [0, 1]: (mean, std).
    pub normalization: (f32, f32),
    /// Pixel → int8 input activation (integer path).
    pub input_table: Option<[i8; 256]>,
    /// The layers.
    pub layers: Vec<SlimLayer>,
    /// Paths the file supports.
    pub paths: Paths,
}

/// One layer.
#[derive(Debug, Clone)]
pub enum SlimLayer {
    /// Fully connected.
    Dense {
        /// Input features.
        inputs: u32,
        /// Output features.
        outputs: u32,
        /// Fused ReLU.
        relu: bool,
        /// The weights.
        weights: LayerWeights,
    },
    /// Convolution, stride 1, no padding.
    Conv2d {
        /// Input channels.
        in_channels: u32,
        /// Output channels.
        out_channels: u32,
        /// Kernel size.
        kernel: u16,
        /// Fused ReLU.
        relu: bool,
        /// The weights.
        weights: LayerWeights,
    },
    /// Max-pooling.
    MaxPool {
        /// Window and stride.
        size: u16,
    },
    /// Flatten.
    Flatten,
}

/// Integer-path parameters of a layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerQuant {
    /// Input zero point.
    pub zp_in: i32,
    /// Output zero point.
    pub zp_out: i32,
    /// Per output channel (else one multiplier/shift for the layer).
    pub per_channel: bool,
    /// Q31 multipliers.
    pub multipliers: Vec<i32>,
    /// Shifts (positive = left).
    pub shifts: Vec<i32>,
    /// int32 biases, scale `s_in · s_w`.
    pub bias: Vec<i32>,
    /// The input activation scale `s_in` (the f32 path derives its biases from `bias` with it).
    pub input_scale: f32,
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
    /// Its 2-bit code in the layer section's coding byte (FORMAT.md).
    pub fn code(self) -> u8 {
        match self {
            StreamCoding::Packed => 0,
            StreamCoding::Huffman => 1,
            StreamCoding::Zstd(_) => 2,
        }
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
            WeightPayload::DenseF32(_) => (1u8, 0u8, 0u8, 0u8),
            WeightPayload::DenseI8(_) => (2, 0, 0, 0),
            WeightPayload::Sparse(sp) => (
                3,
                sp.position_coding.code() | sp.index_coding.code() << 2,
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
            s.write_i32::<LittleEndian>(q.zp_in).expect("vec");
            s.write_i32::<LittleEndian>(q.zp_out).expect("vec");
            s.write_u32::<LittleEndian>(u32::from(q.per_channel))
                .expect("vec");
            for v in q.multipliers.iter().chain(&q.shifts).chain(&q.bias) {
                s.write_i32::<LittleEndian>(*v).expect("vec");
            }
        }
        if paths.f32 && paths.integer {
            let q = self.quant.as_ref().expect("checked above");
            s.write_f32::<LittleEndian>(q.input_scale).expect("vec");
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
                    CodebookValues::I8(c) => (0u8, c.len()),
                    CodebookValues::F32(c) => (1u8, c.len()),
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
    /// The file's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut graph = Vec::new();
        for v in self.input.iter().chain([&self.classes]) {
            graph.write_u32::<LittleEndian>(*v).expect("vec");
        }
        graph
            .write_f32::<LittleEndian>(self.normalization.0)
            .expect("vec");
        graph
            .write_f32::<LittleEndian>(self.normalization.1)
            .expect("vec");
        graph
            .write_u32::<LittleEndian>(self.layers.len() as u32)
            .expect("vec");
        let mut layer_sections = Vec::new();
        for l in &self.layers {
            let (op, relu, size, a, b, w) = match l {
                SlimLayer::Dense {
                    inputs,
                    outputs,
                    relu,
                    weights,
                } => (
                    1u8,
                    *relu,
                    0u16,
                    *inputs,
                    *outputs,
                    Some((weights, *outputs, *inputs)),
                ),
                SlimLayer::Conv2d {
                    in_channels,
                    out_channels,
                    kernel,
                    relu,
                    weights,
                } => {
                    let fan_in = in_channels * u32::from(*kernel) * u32::from(*kernel);
                    (
                        2,
                        *relu,
                        *kernel,
                        *in_channels,
                        *out_channels,
                        Some((weights, *out_channels, fan_in)),
                    )
                }
                SlimLayer::MaxPool { size } => (3, false, *size, 0, 0, None),
                SlimLayer::Flatten => (4, false, 0, 0, 0, None),
            };
            let section_index = match w {
                Some((weights, outputs, fan_in)) => {
                    layer_sections.push(weights.section(outputs, fan_in, self.paths)?);
                    layer_sections.len() as u32
                }
                None => 0,
            };
            graph.extend_from_slice(&[op, u8::from(relu)]);
            graph.write_u16::<LittleEndian>(size).expect("vec");
            for v in [a, b, section_index] {
                graph.write_u32::<LittleEndian>(v).expect("vec");
            }
        }
        if self.paths.integer {
            let table = self
                .input_table
                .ok_or_else(|| Error::Unsupported("integer path without an input table".into()))?;
            graph.extend(table.iter().map(|&q| q as u8));
        }
        pad4(&mut graph);

        let sections: Vec<(u32, &Vec<u8>)> = std::iter::once((SECTION_GRAPH, &graph))
            .chain(layer_sections.iter().map(|s| (SECTION_LAYER, s)))
            .collect();
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC);
        out.write_u16::<LittleEndian>(VERSION).expect("vec");
        let flags = if self.paths.f32 { FLAG_F32 } else { 0 }
            | if self.paths.integer { FLAG_INT } else { 0 };
        out.write_u16::<LittleEndian>(flags).expect("vec");
        out.extend_from_slice(&[0; 16]); // length, CRC, count, reserved: filled below
        let mut offset = HEADER_BYTES + 12 * sections.len();
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
        out[8..12].copy_from_slice(&total.to_le_bytes());
        out[16..20].copy_from_slice(&(sections.len() as u32).to_le_bytes());
        let crc = slimnet_runtime::crc32(&out[16..]);
        out[12..16].copy_from_slice(&crc.to_le_bytes());
        Ok(out)
    }
}
