//! The `.slim` vocabulary, in one place: magic, version, flags, section kinds, operator and activation codes,
//! weight encodings, stream codings, record sizes and header offsets. The reader here and the writer in
//! `slimnet-compress` both import these; nothing else spells a format number. `FORMAT.md` is the specification.

/// The file's magic number.
pub const MAGIC: [u8; 4] = *b"SLIM";
/// The format version this runtime reads (and the compressor writes).
pub const VERSION: u16 = 2;

/// Header flag: the file carries what the f32 path needs.
pub const FLAG_F32: u16 = 1;
/// Header flag: the file carries what the integer-only path needs.
pub const FLAG_INT: u16 = 2;

/// Bytes of the fixed header.
pub const HEADER_BYTES: usize = 24;
/// Offset of the header's total-length field (u32).
pub const LENGTH_OFFSET: usize = 8;
/// Offset of the header's CRC-32 field (u32).
pub const CRC_OFFSET: usize = 12;
/// The CRC covers the bytes from here to the end of the file (the section count onwards).
pub const CRC_FROM: usize = 16;
/// Offset of the header's section-count field (u32).
pub const COUNT_OFFSET: usize = 16;
/// Bytes of one section-table entry (kind, offset, length).
pub const TABLE_ENTRY_BYTES: usize = 12;

/// Section kind: the graph (exactly one, first in the table).
pub const SECTION_GRAPH: u32 = 1;
/// Section kind: the weights of one weighted operator.
pub const SECTION_WEIGHTS: u32 = 2;

/// Graph flag: a 256-entry pixel → int8 input table follows the operator records.
pub const GRAPH_INPUT_TABLE: u32 = 1;
/// Bytes of the graph section's fixed head (counts, input and output ids, flags, normalization).
pub const GRAPH_HEAD_BYTES: usize = 20;
/// Bytes of one tensor record.
pub const TENSOR_BYTES: usize = 16;
/// Bytes of an operator record's common head (before its parameters).
pub const OP_HEAD_BYTES: usize = 12;
/// Bytes of a weights section before its parameters: the encoding, coding and widths (one byte each, four in
/// all), then the rows and the columns (u32 each).
pub const WEIGHTS_HEAD_BYTES: usize = 12;
/// The tensor id that marks an unused operator input.
pub const NO_TENSOR: u16 = 0xFFFF;

/// Most operators a graph may have.
pub const MAX_OPS: usize = 64;
/// Most tensors a graph may have.
pub const MAX_TENSORS: usize = 128;
/// Highest tensor rank.
pub const MAX_RANK: usize = 4;
/// Most sections a file may have: the graph and one per operator.
pub const MAX_SECTIONS: usize = MAX_OPS + 1;
/// Largest sparse stream (bytes) an operator may hold: 16 MiB.
pub const MAX_STREAM_BYTES: u32 = 1 << 24;
/// Largest tensor or weight matrix (elements) a model may declare: 2^28.
pub const MAX_ELEMENTS: usize = 1 << 28;

/// The operators, with their codes in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum OpKind {
    /// FULLY_CONNECTED: `y = W·x + b` over the input's elements in row-major order.
    FullyConnected = 1,
    /// CONV_2D: NHWC, OHWI weights, stride and explicit padding.
    Conv2d = 2,
    /// DEPTHWISE_CONV_2D: one filter per (input channel, multiplier), stride and explicit padding.
    DepthwiseConv2d = 3,
    /// ADD: two inputs of one shape, element by element.
    Add = 4,
    /// MAX_POOL_2D: window, stride and padding; padded cells never win.
    MaxPool2d = 5,
    /// AVERAGE_POOL_2D: window, stride and padding; the mean over the valid cells.
    AveragePool2d = 6,
    /// RESHAPE: the same elements in a new shape (no data moves).
    Reshape = 7,
    /// SOFTMAX over the last dimension.
    Softmax = 8,
}

impl OpKind {
    /// Every operator, in code order.
    pub const ALL: [OpKind; 8] = [
        OpKind::FullyConnected,
        OpKind::Conv2d,
        OpKind::DepthwiseConv2d,
        OpKind::Add,
        OpKind::MaxPool2d,
        OpKind::AveragePool2d,
        OpKind::Reshape,
        OpKind::Softmax,
    ];

    /// The operator with file code `code`.
    pub fn from_code(code: u8) -> Option<OpKind> {
        OpKind::ALL.into_iter().find(|k| *k as u8 == code)
    }

    /// Bytes of its parameters after the common operator head (FORMAT.md).
    pub const fn param_bytes(self) -> usize {
        match self {
            OpKind::FullyConnected | OpKind::Reshape => 0,
            OpKind::Conv2d | OpKind::MaxPool2d | OpKind::AveragePool2d => 8,
            OpKind::DepthwiseConv2d => 12,
            OpKind::Add => 28,
            OpKind::Softmax => 16,
        }
    }

    /// Whether it has a weights section.
    pub const fn weighted(self) -> bool {
        matches!(
            self,
            OpKind::FullyConnected | OpKind::Conv2d | OpKind::DepthwiseConv2d
        )
    }

    /// Its name as TFLite spells it.
    pub const fn name(self) -> &'static str {
        match self {
            OpKind::FullyConnected => "FULLY_CONNECTED",
            OpKind::Conv2d => "CONV_2D",
            OpKind::DepthwiseConv2d => "DEPTHWISE_CONV_2D",
            OpKind::Add => "ADD",
            OpKind::MaxPool2d => "MAX_POOL_2D",
            OpKind::AveragePool2d => "AVERAGE_POOL_2D",
            OpKind::Reshape => "RESHAPE",
            OpKind::Softmax => "SOFTMAX",
        }
    }
}

/// The activation fused after an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Activation {
    /// None.
    None = 0,
    /// max(x, 0).
    Relu = 1,
    /// min(max(x, 0), 6).
    Relu6 = 2,
}

impl Activation {
    /// The activation with file code `code`.
    pub fn from_code(code: u8) -> Option<Activation> {
        match code {
            0 => Some(Activation::None),
            1 => Some(Activation::Relu),
            2 => Some(Activation::Relu6),
            _ => None,
        }
    }
}

/// Weight encoding codes of a weights section.
pub mod encoding {
    /// Dense f32 (f32 path only).
    pub const DENSE_F32: u8 = 1;
    /// Dense int8, symmetric per output channel.
    pub const DENSE_I8: u8 = 2;
    /// Sparse shared weights: codebook, relative positions, cluster indices.
    pub const SPARSE: u8 = 3;
}

/// Codebook type codes of a sparse payload.
pub mod codebook {
    /// int8 entries.
    pub const I8: u8 = 0;
    /// f32 entries (f32-only files).
    pub const F32: u8 = 1;
}

/// How one sparse stream is stored (2 bits each in a weights section's coding byte: bits 0–1 the position
/// stream's, bits 2–3 the index stream's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamCoding {
    /// Fixed-width fields.
    Packed,
    /// Canonical Huffman, decoded on the fly (or into the arena, see `StreamDecoding`).
    Huffman,
    /// zstd of the bit-packed form, decoded into the arena before each run of the operator (readers built
    /// without the `zstd` feature refuse such files).
    Zstd,
}

impl StreamCoding {
    /// Its 2-bit code.
    pub const fn code(self) -> u8 {
        match self {
            StreamCoding::Packed => 0,
            StreamCoding::Huffman => 1,
            StreamCoding::Zstd => 2,
        }
    }

    /// The coding with 2-bit code `code` (the zstd one only where this build can decode it).
    pub fn from_code(code: u8) -> Option<StreamCoding> {
        match code {
            0 => Some(StreamCoding::Packed),
            1 => Some(StreamCoding::Huffman),
            2 if cfg!(feature = "zstd") => Some(StreamCoding::Zstd),
            _ => None,
        }
    }

    /// The coding byte of a weights section for a position and an index coding.
    pub const fn pair(positions: StreamCoding, indices: StreamCoding) -> u8 {
        positions.code() | indices.code() << 2
    }
}
