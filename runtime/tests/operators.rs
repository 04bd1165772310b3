//! Every operator of FORMAT.md, in files built by hand, against reference implementations written here from the
//! specification (TFLite's semantics: NHWC, padding that contributes nothing, per-channel requantization): on
//! the integer path exactly, on the f32 path within rounding. Weighted operators run with each encoding.

mod common;
use common::*;
use slimnet_runtime::{requantize, Model};

/// A small deterministic generator (xorshift), so that the tests need no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn i8(&mut self, lo: i32, hi: i32) -> i8 {
        (lo + (self.next() % (hi - lo + 1) as u64) as i32) as i8
    }
    fn f32(&mut self) -> f32 {
        (self.next() % 2001) as f32 / 1000.0 - 1.0
    }
}

/// A window's geometry: kernel, stride, pads (top, left, bottom, right).
#[derive(Clone, Copy)]
struct Win {
    k: [usize; 2],
    s: [usize; 2],
    pad: [usize; 4],
}

impl Win {
    fn out(&self, h: usize, w: usize) -> (usize, usize) {
        (
            (h + self.pad[0] + self.pad[2] - self.k[0]) / self.s[0] + 1,
            (w + self.pad[1] + self.pad[3] - self.k[1]) / self.s[1] + 1,
        )
    }
    fn bytes(&self) -> Vec<u8> {
        let b = |v: usize| v as u8;
        window(
            [b(self.k[0]), b(self.k[1])],
            [b(self.s[0]), b(self.s[1])],
            self.pad.map(b),
        )
    }
    /// Input (iy, ix) of output (oy, ox) and cell (ky, kx), if inside an `h × w` input.
    fn at(
        &self,
        (h, w): (usize, usize),
        (oy, ox): (usize, usize),
        (ky, kx): (usize, usize),
    ) -> Option<(usize, usize)> {
        let iy = (oy * self.s[0] + ky).checked_sub(self.pad[0])?;
        let ix = (ox * self.s[1] + kx).checked_sub(self.pad[1])?;
        (iy < h && ix < w).then_some((iy, ix))
    }
}

/// Bit-packed `bits`-wide fields, MSB first.
fn pack(symbols: &[u32], bits: u32) -> Vec<u8> {
    let mut out = vec![0u8; (symbols.len() * bits as usize).div_ceil(8)];
    let mut at = 0usize;
    for &s in symbols {
        for b in (0..bits).rev() {
            if s >> b & 1 == 1 {
                out[at / 8] |= 0x80 >> (at % 8);
            }
            at += 1;
        }
    }
    out
}

/// The integer path's weights section of a `rows × fan_in` operator: int8 weights dense, or (`sparse`) as
/// shared weights with an int8 codebook of every distinct non-zero value and bit-packed streams.
fn int_section(w: &[i8], rows: usize, bias: &[i32], mult: &[(i32, i32)], sparse: bool) -> Vec<u8> {
    let fan_in = w.len() / rows;
    let mut s = weights_head(if sparse { 3 } else { 2 }, rows as u32, fan_in as u32);
    s.extend(u32le(1));
    for &(m, _) in mult {
        s.extend(m.to_le_bytes());
    }
    for &(_, sh) in mult {
        s.extend(sh.to_le_bytes());
    }
    for b in bias {
        s.extend(b.to_le_bytes());
    }
    if !sparse {
        s.extend(w.iter().map(|&v| v as u8));
        pad4(&mut s);
        return s;
    }
    let mut codebook: Vec<i8> = w.iter().copied().filter(|&v| v != 0).collect();
    codebook.sort_unstable();
    codebook.dedup();
    let (ib, pb) = (8u32, 3u32);
    (s[2], s[3]) = (ib as u8, pb as u8);
    let filler = (1 << pb) - 1;
    let (mut positions, mut indices, mut next) = (Vec::new(), Vec::new(), 0usize);
    for (p, &v) in w.iter().enumerate().filter(|(_, v)| **v != 0) {
        let mut gap = p - next;
        while gap >= filler as usize {
            positions.push(filler);
            gap -= filler as usize;
        }
        positions.push(gap as u32);
        indices.push(codebook.binary_search(&v).unwrap() as u32);
        next = p + 1;
    }
    let (pos, idx) = (pack(&positions, pb), pack(&indices, ib));
    s.extend([0, 0, 0, 0]); // int8 codebook
    for v in [
        codebook.len(),
        positions.len(),
        indices.len(),
        pos.len(),
        idx.len(),
    ] {
        s.extend(u32le(v as u32));
    }
    s.extend(codebook.iter().map(|&v| v as u8));
    pad4(&mut s);
    pad4(&mut s);
    s.extend(&pos);
    pad4(&mut s);
    s.extend(&idx);
    pad4(&mut s);
    s
}

/// The f32 path's weights section: dense f32 weights and biases.
fn f32_section(w: &[f32], rows: usize, bias: &[f32]) -> Vec<u8> {
    let mut s = weights_head(1, rows as u32, (w.len() / rows) as u32);
    for b in bias {
        s.extend(b.to_le_bytes());
    }
    for v in w {
        s.extend(v.to_le_bytes());
    }
    s
}

std::thread_local! {
    /// Runs of this test's thread that also ran prepared (`Model::prepare_int8`).
    static PREPARED_RUNS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The integer path's output, from the stored streams and, where the model has sparse operators, prepared too:
/// both must agree byte for byte.
fn run_int(bytes: &[u8], input: &[i8]) -> Vec<i8> {
    let m = Model::from_bytes(bytes).unwrap();
    let mut arena = vec![0u8; m.arena_len_int8()];
    let mut out = vec![0i8; m.output_len()];
    m.run_int8(input, &mut arena, &mut out).unwrap();
    if m.prepared_len_int8() > 0 {
        let mut memory = vec![0u8; m.prepared_len_int8()];
        let mut p = Model::from_bytes(bytes).unwrap();
        p.prepare_int8(&mut memory).unwrap();
        let mut arena = vec![0u8; p.arena_len_int8()];
        let mut prepared = vec![0i8; p.output_len()];
        p.run_int8(input, &mut arena, &mut prepared).unwrap();
        assert_eq!(out, prepared, "stored streams and prepared forms disagree");
        PREPARED_RUNS.with(|c| c.set(c.get() + 1));
    }
    out
}

fn run_f32(bytes: &[u8], input: &[f32]) -> Vec<f32> {
    let m = Model::from_bytes(bytes).unwrap();
    let mut arena = vec![0u8; m.arena_len()];
    let mut out = vec![0f32; m.output_len()];
    m.run_f32(input, &mut arena, &mut out).unwrap();
    out
}

fn close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
            "element {i}: {x} vs {y}"
        );
    }
}

/// CONV_2D or DEPTHWISE_CONV_2D (`multiplier` Some) on an `h × w × c` input.
struct Conv {
    h: usize,
    w: usize,
    c: usize,
    out_c: usize,
    win: Win,
    multiplier: Option<usize>,
}

/// One integer test case of a convolution.
struct IntCase {
    w: Vec<i8>,
    bias: Vec<i32>,
    mult: Vec<(i32, i32)>,
    /// Input and output zero points.
    zp: (i32, i32),
    range: (i8, i8),
    sparse: bool,
}

impl Conv {
    fn fan_in(&self) -> usize {
        self.win.k[0] * self.win.k[1] * if self.multiplier.is_some() { 1 } else { self.c }
    }

    /// Weight of output channel `o`, cell (ky, kx), input channel `ci`, in the stored layout.
    fn weight<T: Copy>(&self, w: &[T], o: usize, ky: usize, kx: usize, ci: usize) -> T {
        let kw = self.win.k[1];
        match self.multiplier {
            Some(_) => w[o * self.fan_in() + ky * kw + kx],
            None => w[o * self.fan_in() + (ky * kw + kx) * self.c + ci],
        }
    }

    /// Σ over the valid cells of `f(weight, input index)` for output (oy, ox, o).
    fn sum<T: Copy>(
        &self,
        w: &[T],
        (oy, ox, o): (usize, usize, usize),
        mut f: impl FnMut(T, usize),
    ) {
        let channels: Vec<usize> = match self.multiplier {
            Some(m) => vec![o / m],
            None => (0..self.c).collect(),
        };
        for ky in 0..self.win.k[0] {
            for kx in 0..self.win.k[1] {
                if let Some((iy, ix)) = self.win.at((self.h, self.w), (oy, ox), (ky, kx)) {
                    for &ci in &channels {
                        f(
                            self.weight(w, o, ky, kx, ci),
                            (iy * self.w + ix) * self.c + ci,
                        );
                    }
                }
            }
        }
    }

    fn record(&self, act: u8, range: (i8, i8)) -> Vec<u8> {
        let mut params = self.win.bytes();
        let code = match self.multiplier {
            Some(m) => {
                params.extend([m as u8, 0, 0, 0]);
                3
            }
            None => 2,
        };
        op(code, act, range, [0, NONE], 1, 1, &params)
    }

    fn shapes(&self) -> ([u16; 3], [u16; 3]) {
        let (oh, ow) = self.win.out(self.h, self.w);
        (
            [self.h as u16, self.w as u16, self.c as u16],
            [oh as u16, ow as u16, self.out_c as u16],
        )
    }

    /// Random int8 weights (two in three zero when `sparse`), biases, requantizations and zero points, and the
    /// activation's clamp (ReLU's when `relu`).
    fn int_case(&self, rng: &mut Rng, sparse: bool, relu: bool) -> IntCase {
        let w: Vec<i8> = (0..self.out_c * self.fan_in())
            .map(|_| {
                if sparse && rng.next() % 3 != 0 {
                    0
                } else {
                    rng.i8(-127, 127)
                }
            })
            .collect();
        let bias: Vec<i32> = (0..self.out_c)
            .map(|_| rng.i8(-100, 100) as i32 * 37)
            .collect();
        // Right shifts; for dense weights also, one channel in eight, a small multiplier with a left shift (the
        // requantization's general path; the prepared sparse kernels take files of right shifts only).
        let mult: Vec<(i32, i32)> = (0..self.out_c)
            .map(|_| {
                let m = (1 << 30) + (rng.next() % (1 << 29)) as i32;
                match rng.next() % 8 {
                    0 if !sparse => (m >> 10, 1 + (rng.next() % 2) as i32),
                    _ => (m, -((rng.next() % 6) as i32) - 5),
                }
            })
            .collect();
        let (zp_in, zp_out) = (rng.i8(-20, 20) as i32, rng.i8(-20, 20) as i32);
        let range = if relu {
            (zp_out as i8, 127)
        } else {
            (-128, 127)
        };
        IntCase {
            w,
            bias,
            mult,
            zp: (zp_in, zp_out),
            range,
            sparse,
        }
    }

    /// The reference integer output of `c` on input `x` (HWC).
    fn reference_int(&self, c: &IntCase, x: &[i8]) -> Vec<i32> {
        let (oh, ow) = self.win.out(self.h, self.w);
        let mut y = vec![0; oh * ow * self.out_c];
        for oy in 0..oh {
            for ox in 0..ow {
                for o in 0..self.out_c {
                    let mut acc = c.bias[o];
                    self.sum(&c.w, (oy, ox, o), |wv, i| {
                        acc += i32::from(wv) * (i32::from(x[i]) - c.zp.0)
                    });
                    y[(oy * ow + ox) * self.out_c + o] =
                        (requantize(acc, c.mult[o].0, c.mult[o].1) + c.zp.1)
                            .clamp(i32::from(c.range.0), i32::from(c.range.1));
                }
            }
        }
        y
    }

    /// The weights section of `c`.
    fn section(&self, c: &IntCase) -> Vec<u8> {
        int_section(&c.w, self.out_c, &c.bias, &c.mult, c.sparse)
    }

    fn check_int(&self, rng: &mut Rng, sparse: bool, relu: bool) {
        let (ins, outs) = self.shapes();
        let c = self.int_case(rng, sparse, relu);
        let g = graph(
            &[
                tensor(&ins, c.zp.0 as i8, 0.05),
                tensor(&outs, c.zp.1 as i8, 0.1),
            ],
            &[self.record(u8::from(relu), c.range)],
            (0, 1),
            (0.0, 1.0),
            None,
        );
        let bytes = file(2, &[(1, g), (2, self.section(&c))]);
        for _ in 0..3 {
            let x: Vec<i8> = (0..ins.iter().map(|&d| d as usize).product())
                .map(|_| rng.i8(-128, 127))
                .collect();
            let got: Vec<i32> = run_int(&bytes, &x).into_iter().map(i32::from).collect();
            assert_eq!(got, self.reference_int(&c, &x), "sparse {sparse}");
        }
    }

    /// The convolution followed by a MAX_POOL_2D of window (and stride) `k` clamped to `pool_range`: run
    /// prepared, the pooling is fused into the convolution (`run_int` compares with the operators run one after
    /// the other), and both equal the reference.
    fn check_pooled(&self, rng: &mut Rng, k: [usize; 2], pool_range: (i8, i8)) {
        let (ins, outs) = self.shapes();
        let (oh, ow) = (outs[0] as usize, outs[1] as usize);
        let pool = Win {
            k,
            s: k,
            pad: [0; 4],
        };
        let (ph, pw) = pool.out(oh, ow);
        let pooled = [ph as u16, pw as u16, self.out_c as u16];
        let c = self.int_case(rng, true, true);
        let g = graph(
            &[
                tensor(&ins, c.zp.0 as i8, 0.05),
                tensor(&outs, c.zp.1 as i8, 0.1),
                tensor(&pooled, c.zp.1 as i8, 0.1),
            ],
            &[
                self.record(1, c.range),
                op(5, 0, pool_range, [1, NONE], 2, 0, &pool.bytes()),
            ],
            (0, 2),
            (0.0, 1.0),
            None,
        );
        let bytes = file(2, &[(1, g), (2, self.section(&c))]);
        let x: Vec<i8> = (0..ins.iter().map(|&d| d as usize).product())
            .map(|_| rng.i8(-128, 127))
            .collect();
        let conv = self.reference_int(&c, &x);
        let mut want = Vec::new();
        for py in 0..ph {
            for px in 0..pw {
                for o in 0..self.out_c {
                    let cells = (0..k[0]).flat_map(|dy| (0..k[1]).map(move |dx| (dy, dx)));
                    let best = cells
                        .map(|(dy, dx)| {
                            conv[((py * k[0] + dy) * ow + px * k[1] + dx) * self.out_c + o]
                        })
                        .max()
                        .unwrap();
                    want.push(best.clamp(i32::from(pool_range.0), i32::from(pool_range.1)));
                }
            }
        }
        let got: Vec<i32> = run_int(&bytes, &x).into_iter().map(i32::from).collect();
        assert_eq!(got, want, "pooled {k:?} {pool_range:?}");
    }

    fn check_f32(&self, rng: &mut Rng) {
        let (ins, outs) = self.shapes();
        let (oh, ow) = (outs[0] as usize, outs[1] as usize);
        let w: Vec<f32> = (0..self.out_c * self.fan_in()).map(|_| rng.f32()).collect();
        let bias: Vec<f32> = (0..self.out_c).map(|_| rng.f32()).collect();
        let g = graph(
            &[tensor(&ins, 0, 0.0), tensor(&outs, 0, 0.0)],
            &[self.record(2, (-128, 127))],
            (0, 1),
            (0.0, 1.0),
            None,
        );
        let bytes = file(1, &[(1, g), (2, f32_section(&w, self.out_c, &bias))]);
        let x: Vec<f32> = (0..ins.iter().map(|&d| d as usize).product())
            .map(|_| 4.0 * rng.f32())
            .collect();
        let got = run_f32(&bytes, &x);
        let mut want = vec![0f32; got.len()];
        for oy in 0..oh {
            for ox in 0..ow {
                for o in 0..self.out_c {
                    let mut acc = bias[o];
                    self.sum(&w, (oy, ox, o), |wv, i| acc += wv * x[i]);
                    want[(oy * ow + ox) * self.out_c + o] = acc.clamp(0.0, 6.0);
                }
            }
        }
        close(&got, &want);
    }
}

fn convs() -> Vec<Conv> {
    let win = |k: [usize; 2], s: [usize; 2], pad: [usize; 4]| Win { k, s, pad };
    vec![
        // LeNet's: 5×5 valid, stride 1.
        Conv {
            h: 9,
            w: 8,
            c: 3,
            out_c: 4,
            win: win([5, 5], [1, 1], [0; 4]),
            multiplier: None,
        },
        // One input channel, stride 1, SAME: adjacent output pixels read adjacent inputs (the sparse kernel's
        // four-byte windows), with borders on every side.
        Conv {
            h: 10,
            w: 9,
            c: 1,
            out_c: 3,
            win: win([3, 3], [1, 1], [1, 1, 1, 1]),
            multiplier: None,
        },
        // DS-CNN's first: 10×4, stride 2, SAME padding (pads 4/5 and 1/2).
        Conv {
            h: 13,
            w: 7,
            c: 1,
            out_c: 5,
            win: win([10, 4], [2, 2], [4, 1, 5, 2]),
            multiplier: None,
        },
        // ResNet's 3×3 SAME and a 1×1 stride-2 projection.
        Conv {
            h: 8,
            w: 8,
            c: 4,
            out_c: 6,
            win: win([3, 3], [1, 1], [1, 1, 1, 1]),
            multiplier: None,
        },
        Conv {
            h: 8,
            w: 8,
            c: 4,
            out_c: 3,
            win: win([1, 1], [2, 2], [0; 4]),
            multiplier: None,
        },
        // More channels than the kernels decode requantization for at once (a block of 96, then the rest).
        Conv {
            h: 4,
            w: 5,
            c: 2,
            out_c: 101,
            win: win([3, 3], [1, 1], [1, 1, 1, 1]),
            multiplier: None,
        },
        Conv {
            h: 5,
            w: 4,
            c: 103,
            out_c: 103,
            win: win([3, 3], [1, 1], [1, 1, 1, 1]),
            multiplier: Some(1),
        },
        // Depthwise 3×3 SAME stride 1 and stride 2, multipliers 1 and 2.
        Conv {
            h: 7,
            w: 6,
            c: 5,
            out_c: 5,
            win: win([3, 3], [1, 1], [1, 1, 1, 1]),
            multiplier: Some(1),
        },
        Conv {
            h: 9,
            w: 9,
            c: 3,
            out_c: 6,
            win: win([3, 3], [2, 2], [1, 1, 1, 1]),
            multiplier: Some(2),
        },
    ]
}

#[test]
fn convolutions_match_the_reference_on_both_paths_and_encodings() {
    let mut rng = Rng(0x9e3779b97f4a7c15);
    for conv in convs() {
        for sparse in [false, true] {
            conv.check_int(&mut rng, sparse, sparse);
        }
        conv.check_f32(&mut rng);
    }
    // Every sparse case (3 inputs each) also ran prepared (with the `prepare` feature, the default).
    let expected = if cfg!(feature = "prepare") {
        3 * convs().len()
    } else {
        0
    };
    assert_eq!(PREPARED_RUNS.with(|c| c.get()), expected);
}

#[test]
fn max_pooling_fused_into_prepared_convolutions_gives_the_operators_bytes() {
    let mut rng = Rng(0x2545f4914f6cdd1d);
    for conv in convs() {
        // 2 × 2 (LeNet-5's), 1 × 4 and 4 × 1; a pooling clamp narrower than the convolution's, and one that does
        // not meet it (then not fused: still the same bytes).
        for (k, range) in [
            ([2, 2], (-128, 127)),
            ([1, 4], (-5, 40)),
            ([4, 1], (-128, 127)),
            ([2, 2], (-128, -100)),
        ] {
            let (oh, ow) = conv.win.out(conv.h, conv.w);
            if oh >= k[0] && ow >= k[1] {
                conv.check_pooled(&mut rng, k, range);
            }
        }
    }
}

/// With `SLIMNET_FUZZ_SEEDS=DIR` set, writes `bytes` there as `NAME.slim`: how the small ADD and pooling files
/// of `fuzz/corpus/slim` were made (`SLIMNET_FUZZ_SEEDS=fuzz/corpus/slim cargo test --test operators`).
fn seed(name: &str, bytes: &[u8]) {
    if let Some(dir) = std::env::var_os("SLIMNET_FUZZ_SEEDS") {
        std::fs::write(
            std::path::Path::new(&dir).join(format!("{name}.slim")),
            bytes,
        )
        .unwrap();
    }
}

/// A one-operator file without weights over `[h, w, c]` tensors.
fn unary(
    code: u8,
    ins: &[u16],
    outs: &[u16],
    params: &[u8],
    quant: [(i8, f32); 2],
    flags: u16,
) -> Vec<u8> {
    let g = graph(
        &[
            tensor(ins, quant[0].0, quant[0].1),
            tensor(outs, quant[1].0, quant[1].1),
        ],
        &[op(code, 0, (-128, 127), [0, NONE], 1, 0, params)],
        (0, 1),
        (0.0, 1.0),
        None,
    );
    file(flags, &[(1, g)])
}

#[test]
fn pooling_matches_the_reference_with_padding() {
    let mut rng = Rng(7);
    let (h, w, c) = (7usize, 6usize, 3usize);
    for win in [
        Win {
            k: [2, 2],
            s: [2, 2],
            pad: [0; 4],
        },
        Win {
            k: [3, 3],
            s: [2, 2],
            pad: [1, 1, 1, 1],
        },
        Win {
            k: [7, 6],
            s: [1, 1],
            pad: [0; 4],
        },
    ] {
        let (oh, ow) = win.out(h, w);
        let (ins, outs) = (
            [h as u16, w as u16, c as u16],
            [oh as u16, ow as u16, c as u16],
        );
        let x: Vec<i8> = (0..h * w * c).map(|_| rng.i8(-128, 127)).collect();
        let xf: Vec<f32> = x.iter().map(|&v| f32::from(v) * 0.1).collect();
        let q = [(3, 0.1), (3, 0.1)];
        for (code, avg) in [(5u8, false), (6, true)] {
            let (mut want_i, mut want_f) = (Vec::new(), Vec::new());
            for oy in 0..oh {
                for ox in 0..ow {
                    for ch in 0..c {
                        let cells: Vec<usize> = (0..win.k[0])
                            .flat_map(|ky| (0..win.k[1]).map(move |kx| (ky, kx)))
                            .filter_map(|cell| win.at((h, w), (oy, ox), cell))
                            .map(|(iy, ix)| (iy * w + ix) * c + ch)
                            .collect();
                        let n = cells.len() as i32;
                        if avg {
                            let s: i32 = cells.iter().map(|&i| i32::from(x[i])).sum();
                            // Rounding half away from zero, as TFLite's integer AveragePool.
                            want_i.push(if s > 0 {
                                (s + n / 2) / n
                            } else {
                                (s - n / 2) / n
                            } as i8);
                            want_f.push(cells.iter().map(|&i| xf[i]).sum::<f32>() / n as f32);
                        } else {
                            want_i.push(cells.iter().map(|&i| x[i]).max().unwrap());
                            want_f.push(cells.iter().map(|&i| xf[i]).fold(f32::MIN, f32::max));
                        }
                    }
                }
            }
            let bytes = unary(code, &ins, &outs, &win.bytes(), q, 3);
            seed(
                &format!("pool{code}-k{}x{}-p{}", win.k[0], win.k[1], win.pad[0]),
                &bytes,
            );
            assert_eq!(run_int(&bytes, &x), want_i, "op {code}");
            close(&run_f32(&bytes, &xf), &want_f);
        }
    }
}

#[test]
fn add_rescales_both_inputs_as_tflite_does() {
    // A small tensor and one of 640 elements.
    add_case([3, 4, 5]);
    add_case([8, 8, 10]);
}

fn add_case(shape: [u16; 3]) {
    let mut rng = Rng(11);
    let n = shape.iter().map(|&d| usize::from(d)).product::<usize>();
    let (z1, z2, zo) = (-7i32, 12i32, 3i32);
    let p = [
        (1_518_500_250i32, -1i32),
        (1_073_741_824, 0),
        (1_288_490_189, -17),
    ];
    let mut params = Vec::new();
    for (m, s) in p {
        params.extend(m.to_le_bytes());
        params.extend(s.to_le_bytes());
    }
    params.extend(20i32.to_le_bytes());
    // A residual block's shape: tensor 0 feeds both the ADD and the RESHAPE that the ADD adds to it.
    let g = graph(
        &[
            tensor(&shape, z1 as i8, 0.1),
            tensor(&[n as u16], z2 as i8, 0.2),
            tensor(&shape, z2 as i8, 0.2),
            tensor(&shape, zo as i8, 0.3),
        ],
        &[
            op(7, 0, (-128, 127), [0, NONE], 1, 0, &[]),
            op(7, 0, (-128, 127), [1, NONE], 2, 0, &[]),
            op(4, 1, (zo as i8, 127), [0, 2], 3, 0, &params),
        ],
        (0, 3),
        (0.0, 1.0),
        None,
    );
    let bytes = file(3, &[(1, g)]);
    if n == 60 {
        seed("add-residual", &bytes);
    }
    let x: Vec<i8> = (0..n).map(|_| rng.i8(-128, 127)).collect();
    let got = run_int(&bytes, &x);
    for (i, &v) in x.iter().enumerate() {
        // Both inputs are the same bytes here, read with their own zero points.
        let a = (i32::from(v) - z1) << 20;
        let b = (i32::from(v) - z2) << 20;
        let sum = requantize(a, p[0].0, p[0].1) + requantize(b, p[1].0, p[1].1);
        let want = (requantize(sum, p[2].0, p[2].1) + zo).clamp(zo, 127);
        assert_eq!(i32::from(got[i]), want, "{i}");
    }
    let xf: Vec<f32> = (0..n).map(|_| rng.f32()).collect();
    let want: Vec<f32> = xf.iter().map(|v| (2.0 * v).max(0.0)).collect();
    close(&run_f32(&bytes, &xf), &want);
    // Planned: the input and the ADD's output are alive together, the RESHAPEs take no memory of their own.
    let m = Model::from_bytes(&bytes).unwrap();
    assert_eq!((m.arena_len(), m.arena_len_int8()), (2 * 4 * n, 2 * n));
}

#[test]
fn softmax_gives_probabilities_on_both_paths() {
    let mut rng = Rng(5);
    let (beta, scale) = (1.0f32, 0.125f32);
    // TFLite's CalculateSoftmaxParams for int8: multiplier of β·s·2^(31−5), diff_min from the input radius.
    let real = f64::from(beta) * f64::from(scale) * f64::from(1u32 << 26);
    let shift = (real.log2().floor() as i32 + 1).max(0);
    let multiplier = (real / 2f64.powi(shift) * 2f64.powi(31)).round() as i32;
    let radius = (31.0 * 2f64.powi(26) / 2f64.powi(shift)).floor() as i32;
    let mut params = beta.to_le_bytes().to_vec();
    for v in [multiplier, shift, -radius] {
        params.extend(v.to_le_bytes());
    }
    let bytes = unary(
        8,
        &[2, 10],
        &[2, 10],
        &params,
        [(0, scale), (-128, 1.0 / 256.0)],
        3,
    );
    let x: Vec<i8> = (0..20).map(|_| rng.i8(-60, 60)).collect();
    let got = run_int(&bytes, &x);
    let xf: Vec<f32> = x.iter().map(|&v| f32::from(v) * scale).collect();
    let got_f = run_f32(&bytes, &xf);
    for row in 0..2 {
        let r = &xf[row * 10..row * 10 + 10];
        let max = r.iter().fold(f32::MIN, |a, &b| a.max(b));
        let sum: f32 = r.iter().map(|v| (v - max).exp()).sum();
        for i in 0..10 {
            let p = (r[i] - max).exp() / sum;
            assert!(
                (got_f[row * 10 + i] - p).abs() < 1e-6,
                "f32 {i}: {} vs {p}",
                got_f[row * 10 + i]
            );
            let q = f32::from(got[row * 10 + i]) + 128.0;
            assert!(
                (q - 256.0 * p).abs() <= 1.0,
                "int8 {i}: {q} vs {}",
                256.0 * p
            );
        }
    }
}
