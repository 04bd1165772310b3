//! Loading a `.slim` file: [`Model::from_bytes`] validates every byte once — header, CRC, section table, tensors,
//! operators (each operator's `prepare` checks its parameters, shapes and weights, decoding every sparse stream)
//! — and plans the arena, so that running never meets an inconsistency.

use crate::bytes::Reader;
use crate::error::{Error, Result, Section};
use crate::format::*;
use crate::ops::{self, Op, Tensors};
use crate::tensor::{Path, Shape, Tensor};
use crate::verify::Checks;
use crate::weights::{Encoding, Payload, StreamDecoding};

/// A validated model, borrowing the file's bytes (zero-copy).
#[derive(Debug, Clone)]
pub struct Model<'a> {
    pub(crate) flags: u16,
    pub(crate) tensors: [Tensor; MAX_TENSORS],
    pub(crate) tensor_count: usize,
    pub(crate) ops: [Op<'a>; MAX_OPS],
    pub(crate) op_count: usize,
    pub(crate) input: u16,
    pub(crate) output: u16,
    /// Bits of the f32 mean and standard deviation (kept as bits so the integer-only build holds no floats).
    pub(crate) mean: u32,
    pub(crate) std: u32,
    /// The pixel → int8 input table (empty when the file has none).
    pub(crate) lut: &'a [u8],
    /// Arena bytes per path (f32, integer).
    pub(crate) arena: [usize; 2],
    /// The file, as loaded.
    pub(crate) bytes: &'a [u8],
    /// The file's CRC at every section's end, for [`Model::verify`].
    pub(crate) checks: Checks,
    /// How Huffman streams are decoded.
    pub(crate) decoding: StreamDecoding,
    /// The sparse operators' prepared forms, one after another ([`Model::prepare_int8`]; empty until then).
    pub(crate) prepared: &'a [u8],
}

fn invalid(section: Section, field: &'static str, value: u64) -> Error {
    Error::InvalidValue {
        section,
        field,
        value,
    }
}

/// The section table: (kind, offset, length) of each section, checked against the file.
struct Table {
    sections: [(u32, usize, usize); MAX_SECTIONS],
    count: usize,
}

impl<'a> Model<'a> {
    /// A model with no operators and neither numeric path (running it gives [`Error::PathUnavailable`]): the
    /// initial value of storage that [`Model::load`] fills, e.g. a `static` on a device.
    pub const EMPTY: Model<'a> = Model {
        flags: 0,
        tensors: [Tensor::EMPTY; MAX_TENSORS],
        tensor_count: 0,
        ops: [Op::EMPTY; MAX_OPS],
        op_count: 0,
        input: 0,
        output: 0,
        mean: 0,
        std: 0,
        lut: &[],
        arena: [0; 2],
        bytes: &[],
        checks: Checks::EMPTY,
        decoding: StreamDecoding::OnTheFly,
        prepared: &[],
    };

    /// Resets the model to [`Model::EMPTY`]'s meaning, field by field (assigning the constant would copy an image
    /// of it, kept in flash on a device). The tensor and operator slots are left as they are: nothing reads a
    /// slot at or past `tensor_count` / `op_count`, which become 0 (clearing the tables cost 2.7 KB of code).
    #[inline(never)]
    fn clear(&mut self) {
        (self.flags, self.tensor_count, self.op_count) = (0, 0, 0);
        (self.input, self.output, self.mean, self.std, self.lut) = (0, 0, 0, 0, &[]);
        (self.arena, self.bytes, self.checks.count) = ([0; 2], &[], 0);
        (self.decoding, self.prepared) = (StreamDecoding::OnTheFly, &[]);
    }

    /// Validates `bytes` as a `.slim` file and returns the model, borrowing them. The model is a few kilobytes
    /// (tables of [`MAX_TENSORS`] tensors and [`MAX_OPS`] operators); where stack is scarce, [`Model::load`]
    /// fills one in place instead.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Model<'a>> {
        let mut model = Model::EMPTY;
        model.load(bytes)?;
        Ok(model)
    }

    /// Validates `bytes` as a `.slim` file and makes `self` that model, in place: no copy of the model passes
    /// through the stack. On error `self` is left [`Model::EMPTY`].
    pub fn load(&mut self, bytes: &'a [u8]) -> Result<()> {
        self.clear();
        let result = self.fill(bytes);
        if result.is_err() {
            self.clear();
        }
        result
    }

    #[inline(never)]
    fn fill(&mut self, bytes: &'a [u8]) -> Result<()> {
        let flags = header(bytes, &mut self.checks)?;
        let table = table(bytes)?;
        self.flags = flags;
        self.bytes = bytes;
        let graph = table.bytes(bytes, 0);
        let mut g = Reader::new(graph, Section::Graph);
        let (tensor_count, op_count) = (usize::from(g.u16()?), usize::from(g.u16()?));
        if !(1..=MAX_TENSORS).contains(&tensor_count) {
            return Err(invalid(Section::Graph, "tensor count", tensor_count as u64));
        }
        if !(1..=MAX_OPS).contains(&op_count) {
            return Err(invalid(Section::Graph, "operator count", op_count as u64));
        }
        (self.tensor_count, self.op_count) = (tensor_count, op_count);
        (self.input, self.output) = (g.u16()?, g.u16()?);
        let graph_flags = g.u32()?;
        if graph_flags & !GRAPH_INPUT_TABLE != 0 {
            return Err(invalid(
                Section::Graph,
                "graph flags",
                u64::from(graph_flags),
            ));
        }
        (self.mean, self.std) = (g.u32()?, g.u32()?);
        self.check_normalization()?;
        for i in 0..tensor_count {
            self.tensors[i] = read_tensor(&mut g, i as u16)?;
        }
        let ends = [usize::from(self.input), usize::from(self.output)];
        if ends.iter().any(|&t| t >= tensor_count) || self.input == self.output {
            return Err(invalid(
                Section::Graph,
                "input or output tensor",
                ends[0] as u64,
            ));
        }
        let mut used = [false; MAX_SECTIONS];
        for i in 0..op_count {
            let mut op = ops::read(&mut g, i as u16)?;
            self.attach_weights(&mut op, i as u16, &table, bytes, &mut used)?;
            self.ops[i] = op;
        }
        if table.count > 1 && used.iter().take(table.count).skip(1).any(|u| !u) {
            return Err(invalid(Section::Table, "unused weights sections", 0));
        }
        if graph_flags & GRAPH_INPUT_TABLE != 0 {
            self.lut = g.take(256)?;
        }
        g.align4()?;
        if g.pos() != graph.len() {
            return Err(invalid(
                Section::Graph,
                "trailing bytes",
                (graph.len() - g.pos()) as u64,
            ));
        }
        self.check_graph()?;
        self.plan()
    }

    /// With the f32 path, the pixel normalization must be usable (finite mean, positive std).
    fn check_normalization(&self) -> Result<()> {
        #[cfg(not(feature = "integer-only"))]
        {
            let (m, s) = (f32::from_bits(self.mean), f32::from_bits(self.std));
            if self.flags & FLAG_F32 != 0 && !(m.is_finite() && s.is_finite() && s > 0.0) {
                return Err(invalid(
                    Section::Graph,
                    "normalization",
                    u64::from(self.std),
                ));
            }
        }
        Ok(())
    }

    /// Resolves a weighted operator's section index to its bytes (each section used by one operator).
    fn attach_weights(
        &self,
        op: &mut Op<'a>,
        index: u16,
        table: &Table,
        bytes: &'a [u8],
        used: &mut [bool; MAX_SECTIONS],
    ) -> Result<()> {
        let sec = op.weights_offset;
        op.weights_offset = 0;
        if !op.kind.weighted() {
            return if sec == 0 {
                Ok(())
            } else {
                Err(invalid(
                    Section::Operator(index),
                    "weights section index",
                    sec as u64,
                ))
            };
        }
        if sec == 0 || sec >= table.count || used[sec] || table.sections[sec].0 != SECTION_WEIGHTS {
            return Err(invalid(
                Section::Operator(index),
                "weights section index",
                sec as u64,
            ));
        }
        used[sec] = true;
        op.weights = table.bytes(bytes, sec);
        op.weights_offset = table.sections[sec].1;
        Ok(())
    }

    /// Execution order and tensor ids: every operator reads tensors already computed (or the input) and writes a
    /// tensor no one wrote before; the output is computed; then each operator's `prepare`.
    fn check_graph(&mut self) -> Result<()> {
        let mut written = [false; MAX_TENSORS];
        written[usize::from(self.input)] = true;
        for i in 0..self.op_count {
            let op = self.ops[i];
            let section = Section::Operator(i as u16);
            let second = op.kind == OpKind::Add;
            let ids = [op.inputs[0], op.inputs[1], op.output];
            let valid = |t: u16| usize::from(t) < self.tensor_count;
            if !valid(ids[0]) || (second != valid(ids[1])) || (!second && ids[1] != NO_TENSOR) {
                return Err(invalid(section, "input tensor", u64::from(ids[0])));
            }
            let read_ok = written[usize::from(ids[0])] && (!second || written[usize::from(ids[1])]);
            if !read_ok {
                return Err(invalid(
                    section,
                    "input tensor not yet computed",
                    u64::from(ids[0]),
                ));
            }
            if !valid(ids[2]) || written[usize::from(ids[2])] {
                return Err(invalid(section, "output tensor", u64::from(ids[2])));
            }
            written[usize::from(ids[2])] = true;
            let t = self.op_tensors(&op);
            let prepared = ops::prepare(&op, i as u16, &t, self.flags)?;
            self.ops[i].scratch = prepared.scratch;
            self.ops[i].decode = prepared.decode;
            self.ops[i].prepared = prepared.prepared;
        }
        if !written[usize::from(self.output)] {
            return Err(invalid(
                Section::Graph,
                "output tensor never computed",
                u64::from(self.output),
            ));
        }
        Ok(())
    }

    /// Plans both paths' arenas for the current stream decoding mode, prepared or not.
    pub(crate) fn plan(&mut self) -> Result<()> {
        let modes = (self.arena_decoding(), self.is_prepared());
        let ends = (self.input, self.output);
        let (tensors, ops) = (
            &mut self.tensors[..self.tensor_count],
            &mut self.ops[..self.op_count],
        );
        for i in 0..ops.len() {
            let pooled = modes.1 && crate::ops::fuse::fusable(ops, i, self.output);
            ops[i].pooled = pooled;
        }
        self.arena[0] = crate::plan::plan(tensors, ops, ends, Path::F32, modes)?;
        self.arena[1] = crate::plan::plan(tensors, ops, ends, Path::Int, modes)?;
        Ok(())
    }

    /// Tensor `id` of this model ([`Tensor::EMPTY`] past the model's tensors: a slot there may hold a tensor of
    /// a model loaded before).
    pub(crate) fn tensor(&self, id: u16) -> Tensor {
        *self.tensor_ref(id)
    }

    /// [`Model::tensor`] by reference (an empty tensor for an unused id).
    pub(crate) fn tensor_ref(&self, id: u16) -> &Tensor {
        let id = usize::from(id);
        match self.tensors.get(id) {
            Some(t) if id < self.tensor_count => t,
            _ => &Tensor::EMPTY,
        }
    }

    /// The tensors of an operator (the first input twice when it has one).
    pub(crate) fn op_tensors(&self, op: &Op) -> Tensors<'_> {
        let get = |t: u16| self.tensor_ref(t);
        let input = get(op.inputs[0]);
        Tensors {
            input,
            input2: if op.inputs[1] == NO_TENSOR {
                input
            } else {
                get(op.inputs[1])
            },
            output: get(op.output),
        }
    }

    /// The shape of one input sample (channels last).
    pub fn input_shape(&self) -> Shape {
        self.tensor(self.input).shape
    }

    /// The shape of one output sample.
    pub fn output_shape(&self) -> Shape {
        self.tensor(self.output).shape
    }

    /// Elements of one input sample.
    pub fn input_len(&self) -> usize {
        self.input_shape().len()
    }

    /// Elements of one output sample: the number of classes of a classifier.
    pub fn output_len(&self) -> usize {
        self.output_shape().len()
    }

    /// Number of output classes (the output's element count).
    pub fn classes(&self) -> usize {
        self.output_len()
    }

    /// The integer path's (zero point, scale as f32 bits) of the input; the caller quantizes as
    /// `q = round(x / scale) + zero_point`.
    pub fn input_quantization(&self) -> (i32, u32) {
        let t = self.tensor(self.input);
        (i32::from(t.zero_point), t.scale_bits)
    }

    /// The integer path's (zero point, scale as f32 bits) of the output: `x = (q − zero_point) · scale`.
    pub fn output_quantization(&self) -> (i32, u32) {
        let t = self.tensor(self.output);
        (i32::from(t.zero_point), t.scale_bits)
    }

    /// Whether the f32 path can run this model (never in an `integer-only` build).
    pub fn has_f32(&self) -> bool {
        self.flags & FLAG_F32 != 0 && cfg!(not(feature = "integer-only"))
    }

    /// Whether the integer-only path can run this model.
    pub fn has_integer(&self) -> bool {
        self.flags & FLAG_INT != 0
    }

    /// Whether the file has the pixel → int8 input table that the integer path's pixel entry points need.
    pub fn has_input_table(&self) -> bool {
        self.lut.len() == 256
    }

    /// The input normalization `(mean, std)` applied to pixels scaled to [0, 1] by the f32 path.
    #[cfg(not(feature = "integer-only"))]
    pub fn normalization(&self) -> (f32, f32) {
        (f32::from_bits(self.mean), f32::from_bits(self.std))
    }

    /// Exact arena bytes the f32 path needs (input, every intermediate tensor and scratch, as planned).
    pub fn arena_len(&self) -> usize {
        self.arena[0]
    }

    /// Exact arena bytes the integer-only path needs.
    pub fn arena_len_int8(&self) -> usize {
        self.arena[1]
    }

    /// Chooses how Huffman-coded streams are decoded (see [`StreamDecoding`]) and plans the arenas again.
    pub fn set_stream_decoding(&mut self, decoding: StreamDecoding) {
        self.decoding = decoding;
        // The same graph planned before: it cannot fail now, but keep the old plan if it somehow did.
        let old = self.arena;
        if self.plan().is_err() {
            self.arena = old;
        }
    }

    /// Whether Huffman streams are decoded into the arena ([`StreamDecoding`]).
    pub(crate) fn arena_decoding(&self) -> bool {
        self.decoding != StreamDecoding::OnTheFly
    }

    /// Number of operators.
    pub fn op_count(&self) -> usize {
        self.op_count
    }

    /// Number of tensors.
    pub fn tensor_count(&self) -> usize {
        self.tensor_count
    }

    /// Size of the file in bytes.
    pub fn file_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// A description of operator `i`, for tools (`slimnet info`).
    pub fn operator(&self, i: usize) -> Option<OpSummary> {
        let op = self.ops.get(..self.op_count)?.get(i)?;
        let t = self.op_tensors(op);
        let w = self.op_weights(op, i as u16);
        let sparse = w.and_then(|w| match w.payload {
            Payload::Sparse(s) => Some(s),
            _ => None,
        });
        Some(OpSummary {
            kind: op.kind,
            activation: op.activation,
            input: t.input.shape,
            output: t.output.shape,
            encoding: w.map(|w| w.encoding()),
            weights_kept: w.map(|w| w.kept()),
            position_coding: sparse.map(|s| s.position_coding),
            index_coding: sparse.map(|s| s.index_coding),
            section_bytes: op.weights.len(),
            stored_weights: w.map(|w| (op.weights_offset + w.stored.0, w.stored.1)),
        })
    }

    /// The weights of a weighted operator, read (trusted) from its section.
    fn op_weights(&self, op: &Op<'a>, index: u16) -> Option<crate::weights::Weights<'a>> {
        if !op.kind.weighted() {
            return None;
        }
        let t = self.op_tensors(op);
        let dims = match op.kind {
            OpKind::FullyConnected => (t.output.shape.len(), t.input.shape.len()),
            OpKind::Conv2d => {
                let w = op.window();
                let k = usize::from(w.kh) * usize::from(w.kw);
                (t.output.shape.last(), k * t.input.shape.last())
            }
            _ => {
                let w = op.window();
                (t.output.shape.last(), usize::from(w.kh) * usize::from(w.kw))
            }
        };
        ops::weights(op, index, &t, self.flags, dims, false).ok()
    }
}

/// What [`Model::operator`] tells about an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpSummary {
    /// The operator.
    pub kind: OpKind,
    /// The fused activation.
    pub activation: Activation,
    /// Shape of its (first) input.
    pub input: Shape,
    /// Shape of its output.
    pub output: Shape,
    /// Weight encoding (weighted operators).
    pub encoding: Option<Encoding>,
    /// Weights stored (the kept ones of sparse operators).
    pub weights_kept: Option<usize>,
    /// How a sparse operator's position stream is coded.
    pub position_coding: Option<StreamCoding>,
    /// How a sparse operator's index stream is coded.
    pub index_coding: Option<StreamCoding>,
    /// Bytes of its weights section (0 without one).
    pub section_bytes: usize,
    /// Where its stored weights lie in the file, as (offset, length): the dense values, or a sparse operator's
    /// codebook, code lengths and streams. What fault injection flips bits in.
    pub stored_weights: Option<(usize, usize)>,
}

/// Checks the header (magic, version, flags, length, CRC) and returns the flags; the CRC's running values at the
/// section ends go to `checks`.
fn header(bytes: &[u8], checks: &mut Checks) -> Result<u16> {
    if bytes.len() < 4 {
        return Err(Error::Truncated {
            section: Section::Header,
            needed: HEADER_BYTES,
            available: bytes.len(),
        });
    }
    let mut h = Reader::new(bytes, Section::Header);
    if h.take(4)? != MAGIC {
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
    let stored = h.u32()?;
    h.take(HEADER_BYTES - CRC_FROM)?;
    if total != bytes.len() {
        return Err(Error::LengthMismatch {
            declared: total,
            actual: bytes.len(),
        });
    }
    let computed = checks.record(bytes);
    if computed != stored {
        return Err(Error::ChecksumMismatch { stored, computed });
    }
    Ok(flags)
}

/// Reads the section table: aligned, in bounds, in increasing order without overlap, after the table; the
/// first section is the graph.
fn table(bytes: &[u8]) -> Result<Table> {
    let mut h = Reader::new(bytes, Section::Header);
    h.take(COUNT_OFFSET)?;
    let count = h.u32()? as usize;
    if count == 0 || count > MAX_SECTIONS {
        return Err(invalid(Section::Table, "section count", count as u64));
    }
    let mut t = Reader::new(bytes, Section::Table);
    t.take(HEADER_BYTES)?;
    let mut table = Table {
        sections: [(0, 0, 0); MAX_SECTIONS],
        count,
    };
    let mut prev_end = HEADER_BYTES + TABLE_ENTRY_BYTES * count;
    for i in 0..count {
        let (kind, offset, len) = (t.u32()?, t.u32()? as usize, t.u32()? as usize);
        let end = offset.checked_add(len).ok_or(Error::Overflow)?;
        if offset & 3 != 0 || offset < prev_end || end > bytes.len() {
            return Err(Error::BadSection { index: i as u16 });
        }
        prev_end = end;
        table.sections[i] = (kind, offset, len);
    }
    if table.sections[0].0 != SECTION_GRAPH {
        let kind = u64::from(table.sections[0].0);
        return Err(invalid(Section::Table, "first section kind", kind));
    }
    Ok(table)
}

impl Table {
    /// The bytes of section `i` (checked in bounds when the table was read).
    fn bytes<'a>(&self, file: &'a [u8], i: usize) -> &'a [u8] {
        let (_, o, l) = self.sections.get(i).copied().unwrap_or((0, 0, 0));
        file.get(o..o.saturating_add(l)).unwrap_or(&[])
    }
}

/// Reads tensor record `index`: rank, zero point, dimensions, scale.
fn read_tensor(g: &mut Reader, index: u16) -> Result<Tensor> {
    let section = Section::Tensor(index);
    let rank = usize::from(g.u8()?);
    let zero_point = g.u8()? as i8;
    let reserved = g.u16()?;
    let mut dims = [0u16; MAX_RANK];
    for d in dims.iter_mut() {
        *d = g.u16()?;
    }
    let scale_bits = g.u32()?;
    if reserved != 0 {
        return Err(invalid(section, "reserved field", u64::from(reserved)));
    }
    let shape = dims
        .get(..rank)
        .and_then(Shape::new)
        .filter(|_| dims.iter().skip(rank).all(|&d| d == 0))
        .ok_or(invalid(section, "shape", rank as u64))?;
    if shape.len() > MAX_ELEMENTS {
        return Err(Error::Overflow);
    }
    Ok(Tensor {
        shape,
        zero_point,
        scale_bits,
        offset: [0; 2],
    })
}
