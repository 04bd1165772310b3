//! Prepared sparse operators (integer path). [`crate::Model::prepare_int8`] decodes a model's sparse
//! shared-weight streams once into memory the caller provides, in a layout whose kernels spend a few instructions
//! per kept weight (load its offset, its value and the input, multiply-add) instead of decoding two Huffman
//! symbols per weight at every run. A device with RAM to spare runs faster this way; one without runs the stored
//! streams in place, as before: the same entry points run both.
//!
//! One operator's layout (C output channels, G groups per channel, W kept weights), little-endian:
//! - `C × 4 × i32`: each channel's `bias − zp_in · Σ w` (the input's zero point folded in once), bias,
//!   requantization multiplier and right shift (only files whose weighted operators shift right, as TFLite's
//!   scales below 1 do, are prepared: the kernels then take the short requantization without a test per output);
//! - `C × G × u16`: kept weights per (channel, group), in that order;
//! - `W × (u8, i8)`: each kept weight's offset inside its group's window and its value (the codebook applied).
//!
//! A group is a [`WINDOW`]-byte window of the input at a fixed offset from the receptive field's origin (for
//! FULLY_CONNECTED: columns `256·g ..`; for the convolutions: as many whole window rows as fit, or 256-byte
//! pieces of one row): indexing a `[u8; WINDOW]` with a `u8` needs no bounds check, so the inner loop has none.
//! The kernels read the input from a copy in the operator's scratch followed by [`WINDOW`] bytes of zeros, so
//! that every window of an interior pixel lies inside it.
//!
//! On x86-64 hosts with AVX-512 VNNI a FULLY_CONNECTED is prepared in another form instead, [`super::columns`]'
//! input-stationary matrix, whose kernel skips the inputs at the zero point ([`Layout::columns`]).

use super::window::Geometry;
use crate::error::{Error, Result};
use crate::quant::{Channel, Output};
use crate::taps::row_taps;
use crate::weights::{Payload, Scratch, Weights};

/// Bytes of input one group's offsets reach.
pub(crate) const WINDOW: usize = 256;

/// Whether this build has the prepared kernels (the `prepare` feature). Every way into them tests it, so that a
/// build without the feature links none of their code.
pub(crate) const PREPARE: bool = cfg!(feature = "prepare");

/// How a receptive field is cut into windows: `rows` whole window rows per group, or (`rows` = 0) each row in
/// `split` pieces of [`WINDOW`] bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Groups {
    rows: usize,
    split: usize,
    /// Input bytes from one window row to the next.
    stride: usize,
    /// Groups per channel.
    pub count: usize,
}

impl Groups {
    /// A window of `kh` rows, each `span` bytes of input wide and `stride` bytes after the one before
    /// (`stride` ≥ `span`); `None` when there is no window.
    pub fn new(kh: usize, span: usize, stride: usize) -> Option<Groups> {
        if kh == 0 || span == 0 || stride < span {
            return None;
        }
        if span <= WINDOW {
            let rows = kh.min((WINDOW - span) / stride + 1);
            return Some(Groups {
                rows,
                split: 1,
                stride,
                count: kh.div_ceil(rows),
            });
        }
        let split = span.div_ceil(WINDOW);
        Some(Groups {
            rows: 0,
            split,
            stride,
            count: kh.checked_mul(split)?,
        })
    }

    /// (group, offset inside its window) of the input byte `within` bytes into window row `ky`.
    #[inline(always)]
    fn locate(&self, ky: usize, within: usize) -> (usize, usize) {
        match ky.checked_div(self.rows) {
            Some(g) => (g, (ky - g * self.rows) * self.stride + within),
            None => (ky * self.split + within / WINDOW, within % WINDOW),
        }
    }

    /// Offset of group `g`'s window from the receptive field's origin.
    #[inline(always)]
    fn base(&self, g: usize) -> usize {
        if self.rows > 0 {
            g * self.rows * self.stride
        } else {
            (g / self.split) * self.stride + (g % self.split) * WINDOW
        }
    }

    /// (window row, bytes into the row) of the receptive field offset `at` (the inverse of row-major
    /// `ky · stride + within`).
    #[inline(always)]
    fn unravel(&self, at: usize) -> (usize, usize) {
        let s = self.stride.max(1);
        (at / s, at % s)
    }
}

/// The right shift of a requantization `(multiplier, shift)` that the prepared kernels' short requantization
/// takes (a multiplier ≥ 0 and a shift in −31 ..= 0); `None` otherwise (the operator is not prepared).
fn right_shift((m, shift): (i32, i32)) -> Option<i32> {
    shift
        .checked_neg()
        .filter(|&e| (0..=31).contains(&e) && m >= 0)
}

/// A prepared operator's shape: channels, their groups, the kept weights and the input's bytes, and which form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub channels: usize,
    pub groups: Groups,
    pub weights: usize,
    pub input: usize,
    /// The kept weights decoded into the input-stationary matrix of [`super::columns`] for the host's VNNI kernel
    /// ([`Layout::in_columns`]), instead of the records, counts and entries of windows.
    pub columns: bool,
}

/// Bytes of a channel's record: four i32.
const RECORD: usize = 16;

/// A layout split into its three arrays.
struct Parts<'p> {
    records: &'p [u8],
    counts: &'p [u8],
    entries: &'p [u8],
}

impl Layout {
    /// The prepared form of weights `w` (`channels` rows over an input of `input` bytes cut into `groups`), for
    /// a file with the integer path whose operator is sparse and not zstd-coded (zstd streams need decoding
    /// memory, and are the size-first choice anyway); `None` otherwise.
    pub fn of(w: &Weights, flags: u16, groups: Option<Groups>, input: usize) -> Option<Layout> {
        let Payload::Sparse(s) = w.payload else {
            return None;
        };
        if !PREPARE {
            return None;
        }
        // A (channel, group) count is a u16: at most the fan-in.
        let fits = w.fan_in <= usize::from(u16::MAX);
        (flags & crate::format::FLAG_INT != 0 && !s.zstd() && fits).then_some(())?;
        let q = w.quant?;
        (0..w.outputs)
            .all(|o| right_shift(q.channel(o)).is_some())
            .then_some(())?;
        let l = Layout::shape(w, groups, input)?;
        l.len()?;
        l.scratch()?;
        Some(l)
    }

    /// The shape of the prepared form of sparse weights `w` whose file [`Layout::of`] found eligible (cheap: for
    /// the kernels, which derive it at each run rather than keep it in every operator slot).
    pub fn shape(w: &Weights, groups: Option<Groups>, input: usize) -> Option<Layout> {
        let Payload::Sparse(s) = w.payload else {
            return None;
        };
        Some(Layout {
            channels: w.outputs,
            groups: groups.filter(|g| g.count <= MAX_GROUPS)?,
            weights: s.weights as usize,
            input,
            columns: false,
        })
    }

    /// The layout in [`super::columns`]' form where `columns` (a FULLY_CONNECTED on an x86-64 host with AVX-512
    /// VNNI, whose kernel skips the input's groups at the zero point, see BENCHMARKS.md), else as it is.
    pub fn in_columns(self, columns: bool) -> Layout {
        Layout { columns, ..self }
    }

    /// The shape of the columns form.
    pub fn columns_shape(&self) -> super::columns::Columns {
        super::columns::Columns {
            outputs: self.channels,
            input: self.input,
        }
    }

    /// Bytes of the prepared form.
    pub fn len(&self) -> Option<usize> {
        if self.columns {
            return self.columns_shape().len();
        }
        let per_channel = self.groups.count.checked_mul(2)?.checked_add(RECORD)?;
        self.channels
            .checked_mul(per_channel)?
            .checked_add(self.weights.checked_mul(2)?)
    }

    /// Scratch of the prepared operator: its input followed by a window of zeros.
    pub fn scratch(&self) -> Option<usize> {
        self.input.checked_add(WINDOW)
    }

    fn parts<'p>(&self, mem: &'p [u8]) -> Option<Parts<'p>> {
        let (records, rest) = mem.split_at_checked(self.channels.checked_mul(RECORD)?)?;
        let counts_len = self
            .channels
            .checked_mul(self.groups.count)?
            .checked_mul(2)?;
        let (counts, entries) = rest.split_at_checked(counts_len)?;
        Some(Parts {
            records,
            counts,
            entries: entries.get(..self.weights.checked_mul(2)?)?,
        })
    }
}

/// Writes the prepared form of the sparse weights `w` into `mem` (exactly [`Layout::len`] bytes):
/// `cell(o, col)` gives the (window row, bytes into the row) of column `col` of channel `o`, and `zp` is the input's
/// zero point. Fails with [`Error::CorruptStream`] if the streams do not give what the layout was sized for.
pub(crate) fn fill(
    l: &Layout,
    w: &Weights,
    op: u16,
    zp: i32,
    cell: impl Fn(usize, usize) -> (usize, usize),
    mem: &mut [u8],
) -> Result<()> {
    let corrupt = Error::CorruptStream { op };
    let (Payload::Sparse(_), Some(q)) = (w.payload, w.quant) else {
        return Err(corrupt);
    };
    let len = l.len().ok_or(Error::Overflow)?;
    let mem = mem.get_mut(..len).ok_or(Error::Overflow)?;
    mem.fill(0);
    // Only x86-64 hosts prepare this form: other targets link none of it.
    if cfg!(target_arch = "x86_64") && l.columns {
        return super::columns::fill(&l.columns_shape(), w, op, zp, l.weights, mem);
    }
    let (records, rest) = mem.split_at_mut(RECORD * l.channels);
    for (o, r) in records.chunks_exact_mut(RECORD).enumerate() {
        let bias = crate::bytes::i32_at(q.bias, o);
        let (m, shift) = q.channel(o);
        for (k, v) in [bias, bias, m, right_shift((m, shift)).ok_or(corrupt)?]
            .into_iter()
            .enumerate()
        {
            r[4 * k..4 * k + 4].copy_from_slice(&v.to_le_bytes());
        }
    }
    let (counts, entries) = rest.split_at_mut(2 * l.channels * l.groups.count);
    let (mut at, mut last, mut bad) = (0usize, 0usize, false);
    let mut place = |o: usize, col: usize, v: i32| -> Option<i32> {
        let (ky, within) = cell(o, col);
        let (g, local) = l.groups.locate(ky, within);
        let slot = o.checked_mul(l.groups.count)?.checked_add(g)?;
        let value = i8::try_from(v).ok()?;
        if g >= l.groups.count || local >= WINDOW || slot < last {
            return None;
        }
        last = slot;
        let count = counts.get_mut(2 * slot..2 * slot + 2)?;
        let n = u16::from_le_bytes([count[0], count[1]]).checked_add(1)?;
        count.copy_from_slice(&n.to_le_bytes());
        entries
            .get_mut(at..at + 2)?
            .copy_from_slice(&[local as u8, value as u8]);
        at += 2;
        Some(v)
    };
    kept_taps(w, op, |o, taps| {
        let mut sum = 0i32;
        for &(col, v) in taps {
            match place(o, col as usize, v) {
                Some(v) => sum = sum.wrapping_add(v),
                None => bad = true,
            }
        }
        if let Some(a) = records.get_mut(RECORD * o..RECORD * o + 4) {
            let old = i32::from_le_bytes([a[0], a[1], a[2], a[3]]);
            a.copy_from_slice(&old.wrapping_sub(zp.wrapping_mul(sum)).to_le_bytes());
        }
    })?;
    if bad || at != entries.len() {
        return Err(corrupt);
    }
    Ok(())
}

/// Calls `f(o, taps)` with the kept weights of sparse weights `w` (operator `op`) as (column, int8 value of their
/// codebook entry), channel by channel: what the prepared forms are filled from.
pub(crate) fn kept_taps(w: &Weights, op: u16, f: impl FnMut(usize, &[(u32, i32)])) -> Result<()> {
    row_taps(w, op, &mut Scratch::none(), |_| None, |i| w.shared_i8(i), f)
}

/// The window of [`WINDOW`] bytes at `at` of `x`.
#[inline(always)]
fn window(x: &[u8], at: usize) -> Option<&[u8; WINDOW]> {
    x.get(at..at.checked_add(WINDOW)?)?.try_into().ok()
}

/// Most groups per channel of a prepared operator (a FULLY_CONNECTED of up to 8,192 inputs): the kernels keep
/// every group's windows on the stack, computed once per pass and shared by all channels.
const MAX_GROUPS: usize = 32;

/// What a window outside the padded input reads (never, for a layout `fill` wrote).
static ZEROS: [u8; WINDOW] = [0; WINDOW];

/// The windows of every group for `P` pixels `step` bytes apart, the first's receptive field at `base`.
type Windows<'x, const P: usize> = [[&'x [u8; WINDOW]; P]; MAX_GROUPS];

#[inline(always)]
fn windows<'x, const P: usize>(
    w: &mut Windows<'x, P>,
    padded: &'x [u8],
    groups: &Groups,
    (base, step): (usize, usize),
) {
    windows_at(w, padded, groups, core::array::from_fn(|k| base + k * step));
}

/// The windows of every group for `P` pixels whose receptive fields start at `bases`.
#[inline(always)]
fn windows_at<'x, const P: usize>(
    w: &mut Windows<'x, P>,
    padded: &'x [u8],
    groups: &Groups,
    bases: [usize; P],
) {
    for (g, slot) in w.iter_mut().enumerate().take(groups.count) {
        let at = groups.base(g);
        for (s, base) in slot.iter_mut().zip(bases) {
            *s = window(padded, base + at).unwrap_or(&ZEROS);
        }
    }
}

/// Σ v · x over one channel's groups for `P` pixels at once, each from `adjust`: `wins[g]` are the pixels'
/// windows of group `g`; `entries` advances past the channel's weights.
#[inline(always)]
fn channel_sums<const P: usize>(
    counts: &[u8],
    entries: &mut &[u8],
    wins: &[[&[u8; WINDOW]; P]],
    adjust: i32,
) -> [i32; P] {
    let mut s = [adjust; P];
    for (c, wins) in counts.chunks_exact(2).zip(wins) {
        let n = 2 * usize::from(<[u8; 2]>::try_from(c).map_or(0, u16::from_le_bytes));
        let (run, rest) = entries.split_at(n.min(entries.len()));
        *entries = rest;
        // The windows as locals, so that the loop keeps them in registers instead of reloading them; and a loop
        // the compiler keeps rolled (unrolled, it spilled them: 57 instructions per 4 weights of 4 pixels on the
        // Cortex-M3, 14 per weight rolled).
        let wins: [&[u8; WINDOW]; P] = *wins;
        for e in run.chunks_exact(2) {
            super::dot::keep_rolled();
            let (at, v) = (usize::from(e[0]), i32::from(e[1] as i8));
            for (acc, w) in s.iter_mut().zip(wins) {
                *acc = acc.wrapping_add(i32::from(w[at] as i8) * v);
            }
        }
    }
    s
}

/// [`channel_sums`] for [`PIXELS`] pixels: on Arm cores one assembly loop over the channel's groups and their
/// entries (`lanes::loops::prepared_channel4`), the plain loop elsewhere.
#[inline(always)]
fn channel_sums4(
    counts: &[u8],
    entries: &mut &[u8],
    wins: &[[&[u8; WINDOW]; PIXELS]],
    adjust: i32,
) -> [i32; PIXELS] {
    #[cfg(target_arch = "arm")]
    {
        let (sums, used) =
            super::lanes::loops::prepared_channel4(counts, entries, wins, [adjust; PIXELS]);
        *entries = entries.get(used..).unwrap_or(&[]);
        sums
    }
    #[cfg(not(target_arch = "arm"))]
    channel_sums(counts, entries, wins, adjust)
}

/// Copies `x` into `padded` and zeroes the rest (the [`WINDOW`] bytes past the input that windows may reach).
fn pad(x: &[u8], padded: &mut [u8]) {
    let (head, tail) = padded.split_at_mut(x.len().min(padded.len()));
    head.copy_from_slice(x.get(..head.len()).unwrap_or(&[]));
    tail.fill(0);
}

/// A channel's record: (bias − zp_in · Σ w, bias, multiplier, shift).
#[inline(always)]
fn record(r: &[u8]) -> [i32; 4] {
    let at = |k: usize| {
        r.get(4 * k..4 * k + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(0, i32::from_le_bytes)
    };
    [at(0), at(1), at(2), at(3)]
}

/// How an accumulator becomes an int8 output: the output's zero point and the activation's clamp.
#[derive(Clone, Copy)]
pub(crate) struct Out {
    pub zero_point: i32,
    pub range: (i32, i32),
}

impl Out {
    /// The output byte of `acc` (bias included) requantized by `(multiplier, right shift)`: the one
    /// multiply-add of `quant::Channel` (to_i8_right's two steps had cost ~15 instructions more per output on
    /// the Cortex-M4).
    #[inline(always)]
    fn byte(self, acc: i32, (m, e): (i32, i32)) -> u8 {
        let out = Output::new(self.zero_point, self.range);
        Channel::new(0, (m, e.wrapping_neg())).output(acc, &out)
    }
}

/// FULLY_CONNECTED from its prepared form. `padded` is the operator's scratch ([`Layout::scratch`]).
pub(crate) fn fully_connected(
    l: &Layout,
    mem: &[u8],
    (x, padded): (&[u8], &mut [u8]),
    out: Out,
    y: &mut [u8],
) {
    let Some(p) = l.parts(mem) else { return };
    pad(x, padded);
    let padded = &*padded;
    let mut entries = p.entries;
    let per_row = 2 * l.groups.count;
    let rows = p
        .records
        .chunks_exact(RECORD)
        .zip(p.counts.chunks_exact(per_row));
    let mut wins: Windows<1> = [[&ZEROS]; MAX_GROUPS];
    windows(&mut wins, padded, &l.groups, (0, 0));
    let wins = wins.get(..l.groups.count).unwrap_or(&[]);
    for (d, (r, c)) in y.iter_mut().zip(rows) {
        let [adjust, _, m, shift] = record(r);
        let [acc] = channel_sums(c, &mut entries, wins, adjust);
        *d = out.byte(acc, (m, shift));
    }
}

/// Output pixels of one pass of [`conv`] over a channel's weights.
pub(crate) const PIXELS: usize = 4;

/// CONV_2D or DEPTHWISE_CONV_2D from its prepared form, output pixel by output pixel (`PIXELS` at a time inside
/// the input's interior), every channel of a pixel before the next: no plane of accumulators, each output
/// requantized from a register. Border pixels (padding) test each weight's cell.
pub(crate) fn conv(
    g: &Geometry,
    l: &Layout,
    mem: &[u8],
    (x, padded, zp): (&[u8], &mut [u8], i32),
    out: Out,
    y: &mut [u8],
) {
    let Some(p) = l.parts(mem) else { return };
    pad(x, padded);
    let padded = &*padded;
    let per_channel = 2 * l.groups.count;
    let (y0, y1) = super::spatial::interior(g.pt, g.sh, g.kh, g.ih, g.oh);
    let (x0, x1) = super::spatial::interior(g.pl, g.sw, g.kw, g.iw, g.ow);
    let step = g.sw * g.ic;
    let oc = g.oc.max(1);
    let mut four: Windows<PIXELS> = [[&ZEROS; PIXELS]; MAX_GROUPS];
    let mut one: Windows<1> = [[&ZEROS]; MAX_GROUPS];
    for oy in 0..g.oh {
        let (lo, hi) = if (y0..y1).contains(&oy) {
            (x0, x1)
        } else {
            (g.ow, g.ow)
        };
        for ox in (0..lo).chain(hi..g.ow) {
            let at = (oy * g.ow + ox) * oc;
            let ys = y.get_mut(at..at + oc).unwrap_or(&mut []);
            border(g, l, &p, &[(oy, ox)], (x, zp), out, ys);
        }
        if lo >= hi {
            continue;
        }
        let origin = ((oy * g.sh - g.pt) * g.iw + lo * g.sw - g.pl) * g.ic;
        let mut ox = lo;
        while ox < hi {
            let base = origin + (ox - lo) * step;
            let mut entries = p.entries;
            let channels = p
                .records
                .chunks_exact(RECORD)
                .zip(p.counts.chunks_exact(per_channel));
            let at = (oy * g.ow + ox) * oc;
            let groups = l.groups.count;
            if ox + PIXELS <= hi {
                let ys = y.get_mut(at..at + PIXELS * oc).unwrap_or(&mut []);
                windows(&mut four, padded, &l.groups, (base, step));
                let wins = four.get(..groups).unwrap_or(&[]);
                for (o, (r, c)) in channels.enumerate() {
                    let [adjust, _, m, shift] = record(r);
                    let sums = channel_sums4(c, &mut entries, wins, adjust);
                    for (k, s) in sums.into_iter().enumerate() {
                        if let Some(d) = ys.get_mut(k * oc + o) {
                            *d = out.byte(s, (m, shift));
                        }
                    }
                }
                ox += PIXELS;
            } else {
                let ys = y.get_mut(at..at + oc).unwrap_or(&mut []);
                windows(&mut one, padded, &l.groups, (base, 0));
                let wins = one.get(..groups).unwrap_or(&[]);
                for (d, (r, c)) in ys.iter_mut().zip(channels) {
                    let [adjust, _, m, shift] = record(r);
                    let [s] = channel_sums(c, &mut entries, wins, adjust);
                    *d = out.byte(s, (m, shift));
                }
                ox += 1;
            }
        }
    }
}

/// The outputs `ys` of border pixels `cells` (one, or a fused pooling window's [`PIXELS`]): every channel's
/// largest, over the cells, bias + Σ v·(x − zp) over the weights whose cell lies inside the input.
#[inline(never)]
fn border(
    g: &Geometry,
    l: &Layout,
    p: &Parts,
    cells: &[(usize, usize)],
    (x, zp): (&[u8], i32),
    out: Out,
    ys: &mut [u8],
) {
    let ic = g.ic.max(1);
    let cells = cells.get(..PIXELS.min(cells.len())).unwrap_or(&[]);
    let mut entries = p.entries;
    let channels = p
        .records
        .chunks_exact(RECORD)
        .zip(p.counts.chunks_exact(2 * l.groups.count));
    for (d, (r, c)) in ys.iter_mut().zip(channels) {
        let [_, bias, m, shift] = record(r);
        let mut acc = [bias; PIXELS];
        for (k, n) in c.chunks_exact(2).enumerate() {
            let n = 2 * usize::from(u16::from_le_bytes([n[0], n[1]]));
            let (run, rest) = entries.split_at(n.min(entries.len()));
            entries = rest;
            for e in run.chunks_exact(2) {
                let (ky, within) = l.groups.unravel(l.groups.base(k) + usize::from(e[0]));
                let (kx, ch) = (within / ic, within % ic);
                for (a, &(oy, ox)) in acc.iter_mut().zip(cells) {
                    let iy = (oy * g.sh + ky).checked_sub(g.pt).filter(|&v| v < g.ih);
                    let ix = (ox * g.sw + kx).checked_sub(g.pl).filter(|&v| v < g.iw);
                    if let (Some(iy), Some(ix)) = (iy, ix) {
                        let xv = super::get_i8(x, (iy * g.iw + ix) * ic + ch, zp);
                        *a = a.wrapping_add(i32::from(e[1] as i8) * (xv - zp));
                    }
                }
            }
        }
        let best = acc.iter().take(cells.len()).copied().max().unwrap_or(bias);
        *d = out.byte(best, (m, shift));
    }
}

/// CONV_2D or DEPTHWISE_CONV_2D from its prepared form with the MAX_POOL_2D after it fused in
/// ([`super::fuse`]): for each pooling window, the [`PIXELS`] output pixels it covers run as one pass, and each
/// channel's largest sum is requantized once (`out`'s range is already both operators' clamp). Pixels the
/// windows leave out (past the last whole window) are never computed; windows with a pixel on the border test
/// each weight's cell.
pub(crate) fn conv_pooled(
    g: &Geometry,
    l: &Layout,
    mem: &[u8],
    (x, padded, zp): (&[u8], &mut [u8], i32),
    (out, pool): (Out, &super::fuse::Pool),
    y: &mut [u8],
) {
    let Some(p) = l.parts(mem) else { return };
    pad(x, padded);
    let padded = &*padded;
    let per_channel = 2 * l.groups.count;
    let (y0, y1) = super::spatial::interior(g.pt, g.sh, g.kh, g.ih, g.oh);
    let (x0, x1) = super::spatial::interior(g.pl, g.sw, g.kw, g.iw, g.ow);
    let oc = g.oc.max(1);
    let kw = pool.kw.max(1);
    let mut four: Windows<PIXELS> = [[&ZEROS; PIXELS]; MAX_GROUPS];
    let mut best = [0i32; POOLED];
    for py in 0..pool.oh {
        for px in 0..pool.ow {
            let cells: [(usize, usize); PIXELS] =
                core::array::from_fn(|k| (py * pool.kh + k / kw, px * kw + k % kw));
            let at = (py * pool.ow + px) * oc;
            let ys = y.get_mut(at..at + oc).unwrap_or(&mut []);
            let inside = cells
                .iter()
                .all(|&(oy, ox)| (y0..y1).contains(&oy) && (x0..x1).contains(&ox));
            if !inside {
                border(g, l, &p, &cells, (x, zp), out, ys);
                continue;
            }
            let bases = cells.map(|(oy, ox)| ((oy * g.sh - g.pt) * g.iw + ox * g.sw - g.pl) * g.ic);
            windows_at(&mut four, padded, &l.groups, bases);
            let wins = four.get(..l.groups.count).unwrap_or(&[]);
            pooled_pixel(&p, per_channel, wins, &mut best, out, ys);
        }
    }
}

/// Channels of a pooled pixel whose largest sums [`pooled_pixel`] holds at once.
const POOLED: usize = 64;

/// One interior pooling window of [`conv_pooled`]: every channel's largest sum over the window's four pixels,
/// [`POOLED`] channels at a time into `best` (on Arm cores by one assembly loop over the channels, their groups and
/// entries, `lanes::loops::prepared_pooled4`), then each requantized into `ys`.
#[inline(always)]
fn pooled_pixel(
    p: &Parts,
    per_channel: usize,
    wins: &[[&[u8; WINDOW]; PIXELS]],
    best: &mut [i32; POOLED],
    out: Out,
    ys: &mut [u8],
) {
    let mut entries = p.entries;
    let records = p.records.chunks(RECORD * POOLED);
    let counts = p.counts.chunks(per_channel.max(1) * POOLED);
    for ((ys, records), counts) in ys.chunks_mut(POOLED).zip(records).zip(counts) {
        let best = best.get_mut(..ys.len()).unwrap_or(&mut []);
        #[cfg(target_arch = "arm")]
        {
            let used =
                super::lanes::loops::prepared_pooled4((records, counts), entries, wins, best);
            entries = entries.get(used..).unwrap_or(&[]);
        }
        #[cfg(not(target_arch = "arm"))]
        {
            let channels = records
                .chunks_exact(RECORD)
                .zip(counts.chunks_exact(per_channel));
            for (b, (r, c)) in best.iter_mut().zip(channels) {
                let [adjust, ..] = record(r);
                let sums = channel_sums(c, &mut entries, wins, adjust);
                *b = sums.into_iter().max().unwrap_or(adjust);
            }
        }
        for ((d, r), &s) in ys
            .iter_mut()
            .zip(records.chunks_exact(RECORD))
            .zip(best.iter())
        {
            let [_, _, m, shift] = record(r);
            *d = out.byte(s, (m, shift));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_locate_and_base_agree_and_windows_are_never_exceeded() {
        // (kh, span, stride): one group (LeNet-5's conv1), a row per group (its conv2), rows split in pieces, FC.
        for (kh, span, stride) in [
            (5, 5, 28),
            (5, 100, 240),
            (3, 384, 1024),
            (1, 784, 784),
            (1, 100, 100),
        ] {
            let gr = Groups::new(kh, span, stride).unwrap();
            for ky in 0..kh {
                for within in 0..span {
                    let (g, local) = gr.locate(ky, within);
                    assert!(
                        g < gr.count && local < WINDOW,
                        "{kh} {span} {stride}: {ky} {within}"
                    );
                    assert_eq!(gr.base(g) + local, ky * stride + within);
                    assert_eq!(gr.unravel(gr.base(g) + local), (ky, within));
                }
            }
        }
        assert_eq!(Groups::new(5, 5, 28).unwrap().count, 1);
        assert_eq!(Groups::new(5, 100, 240).unwrap().count, 5);
        assert_eq!(Groups::new(1, 784, 784).unwrap().count, 4);
        assert_eq!(Groups::new(3, 10, 5), None, "rows overlap");
    }
}
