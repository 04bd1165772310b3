//! The runtime's one error type: a plain enum with `Display`, no allocation, every variant small.

use core::fmt;

/// Where in a `.slim` file a problem was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// The fixed header.
    Header,
    /// The section table.
    Table,
    /// The graph section's head, input table or counts.
    Graph,
    /// Tensor record `n` of the graph.
    Tensor(u16),
    /// Operator record `n` of the graph (0-based, in execution order).
    Operator(u16),
    /// The weights section of operator `n`.
    Weights(u16),
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Section::Header => f.write_str("header"),
            Section::Table => f.write_str("section table"),
            Section::Graph => f.write_str("graph section"),
            Section::Tensor(n) => write!(f, "tensor {n}"),
            Section::Operator(n) => write!(f, "operator {n}"),
            Section::Weights(n) => write!(f, "weights of operator {n}"),
        }
    }
}

/// Everything `Model::from_bytes` and `run` can report. No variant allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The data ended before a structure was complete.
    Truncated {
        /// Where.
        section: Section,
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// The header's total length differs from the bytes given (a truncated or padded file).
    LengthMismatch {
        /// Bytes the header declares.
        declared: usize,
        /// Bytes given.
        actual: usize,
    },
    /// The file does not start with `SLIM`.
    BadMagic,
    /// A format version this runtime does not read.
    UnsupportedVersion(u16),
    /// The stored CRC-32 does not match the contents.
    ChecksumMismatch {
        /// CRC-32 stored in the header.
        stored: u32,
        /// CRC-32 computed over the file.
        computed: u32,
    },
    /// A section offset is not 4-byte aligned, lies outside the file, or overlaps another.
    BadSection {
        /// Index in the section table.
        index: u16,
    },
    /// A field holds a value the format does not allow.
    InvalidValue {
        /// Where.
        section: Section,
        /// Which field.
        field: &'static str,
        /// The value found (truncated to 64 bits).
        value: u64,
    },
    /// An operator's tensors do not have the shapes its parameters imply, or its weights do not fit them.
    ShapeMismatch {
        /// Index of the operator in the graph.
        op: u16,
        /// Size the graph expects.
        expected: u32,
        /// Size found.
        found: u32,
    },
    /// A size computation overflowed.
    Overflow,
    /// A sparse operator's position or index stream is inconsistent (runs past the matrix, bad Huffman code, …).
    CorruptStream {
        /// Index of the operator in the graph.
        op: u16,
    },
    /// The model has no data for the requested numeric path (e.g. `run_int8` on an f32-only file).
    PathUnavailable,
    /// [`crate::Model::verify`] found the model's bytes changed since load (a flash or RAM fault): reload
    /// `offset..offset + len` of the file from a good copy.
    Fault {
        /// What the changed bytes hold.
        section: Section,
        /// Where the region holding the change starts in the file.
        offset: usize,
        /// The region's length.
        len: usize,
    },
    /// A caller's buffer is too small.
    BufferTooSmall {
        /// Which buffer: `"input"`, `"arena"` or `"output"`.
        buffer: &'static str,
        /// Elements (or bytes, for the arena) needed.
        needed: usize,
        /// Elements provided.
        provided: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Truncated {
                section,
                needed,
                available,
            } => write!(
                f,
                "truncated {section}: needs {needed} bytes, {available} available"
            ),
            Error::LengthMismatch { declared, actual } => write!(
                f,
                "the header declares {declared} bytes but there are {actual} (truncated, or bytes appended)"
            ),
            Error::BadMagic => f.write_str("not a .slim file (bad magic)"),
            Error::UnsupportedVersion(1) => f.write_str(
                "a .slim version 1 file: this runtime reads version 2; write it again with `slimnet compress` \
                 (or `slimnet import` for a .tflite)",
            ),
            Error::UnsupportedVersion(v) => write!(
                f,
                "unsupported .slim version {v} (this runtime reads version {})",
                crate::format::VERSION
            ),
            Error::ChecksumMismatch { stored, computed } => {
                write!(
                    f,
                    "checksum mismatch: stored CRC-32 {stored:08x}, computed {computed:08x}"
                )
            }
            Error::BadSection { index } => write!(
                f,
                "section {index} is misaligned, out of bounds or overlapping"
            ),
            Error::InvalidValue {
                section,
                field,
                value,
            } => write!(f, "{section}: invalid {field} ({value})"),
            Error::ShapeMismatch { op, expected, found } => write!(
                f,
                "operator {op}: shape mismatch (expected {expected}, found {found})"
            ),
            Error::Overflow => f.write_str("size overflow"),
            Error::CorruptStream { op } => write!(f, "operator {op}: corrupt sparse stream"),
            Error::Fault {
                section,
                offset,
                len,
            } => write!(
                f,
                "the model's bytes changed after load: {section}, bytes {offset}..{} (reload them from a good copy)",
                offset.saturating_add(len)
            ),
            Error::PathUnavailable => f.write_str("the model has no data for this numeric path"),
            Error::BufferTooSmall {
                buffer,
                needed,
                provided,
            } => write!(
                f,
                "{buffer} buffer too small: needs {needed}, got {provided}"
            ),
        }
    }
}

/// Result alias.
pub type Result<T> = core::result::Result<T, Error>;

impl core::error::Error for Error {}
