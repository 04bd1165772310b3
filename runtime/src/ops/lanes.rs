//! The DSP instructions of the Cortex-M4/M7 (ARMv7E-M) the integer kernels are written with: inline assembly on
//! cores that have them, the same arithmetic in plain Rust elsewhere, so that the host's tests run the very
//! algorithms the device runs against their plain references. On x86-64, `x86` holds the dense
//! FULLY_CONNECTED's AVX2 kernel with its CPUID detection. The only `unsafe` of the crate besides the C API.

/// The DSP instructions as inline assembly, on the cores that have them.
#[cfg(all(target_arch = "arm", target_feature = "dsp"))]
#[allow(unsafe_code)]
mod imp {
    // Audited module: the only `unsafe` outside the C API. Each block is one register-to-register DSP
    // instruction of the target (ARMv7E-M): no memory, no stack, no flags read or written that Rust relies on
    // (SMLAD may set the sticky Q flag, which nothing reads).
    use core::arch::asm;

    /// SXTB16: bytes 0 and 2 of `v`, sign-extended into the two 16-bit lanes.
    #[inline(always)]
    pub(crate) fn sxtb16(v: u32) -> u32 {
        let r: u32;
        // SAFETY: one register-to-register instruction (see the module's notes).
        unsafe {
            asm!("sxtb16 {0}, {1}", out(reg) r, in(reg) v, options(pure, nomem, nostack, preserves_flags))
        };
        r
    }

    /// SXTB16 with ROR #8: bytes 1 and 3 of `v`, sign-extended into the two 16-bit lanes.
    #[inline(always)]
    pub(crate) fn sxtb16_ror8(v: u32) -> u32 {
        let r: u32;
        // SAFETY: one register-to-register instruction (see the module's notes).
        unsafe {
            asm!("sxtb16 {0}, {1}, ror #8", out(reg) r, in(reg) v, options(pure, nomem, nostack, preserves_flags))
        };
        r
    }

    /// SXTAB16: `a` plus bytes 0 and 2 of `v` sign-extended, lane by lane (wrapping).
    #[inline(always)]
    pub(crate) fn sxtab16(a: u32, v: u32) -> u32 {
        let r: u32;
        // SAFETY: one register-to-register instruction (see the module's notes).
        unsafe {
            asm!("sxtab16 {0}, {1}, {2}", out(reg) r, in(reg) a, in(reg) v, options(pure, nomem, nostack, preserves_flags))
        };
        r
    }

    /// SXTAB16 with ROR #8: `a` plus bytes 1 and 3 of `v` sign-extended, lane by lane (wrapping).
    #[inline(always)]
    pub(crate) fn sxtab16_ror8(a: u32, v: u32) -> u32 {
        let r: u32;
        // SAFETY: one register-to-register instruction (see the module's notes).
        unsafe {
            asm!("sxtab16 {0}, {1}, {2}, ror #8", out(reg) r, in(reg) a, in(reg) v,
                 options(pure, nomem, nostack, preserves_flags))
        };
        r
    }

    /// SMLAD: `acc + a.lo·b.lo + a.hi·b.hi` (signed 16-bit lanes, wrapping).
    #[inline(always)]
    pub(crate) fn smlad(a: u32, b: u32, mut acc: i32) -> i32 {
        // SAFETY: one register-to-register instruction (see the module's notes).
        unsafe {
            asm!("smlad {0}, {1}, {2}, {0}", inout(reg) acc, in(reg) a, in(reg) b,
                 options(pure, nomem, nostack, preserves_flags))
        };
        acc
    }
}

/// The dense kernels' inner loops as whole loops of assembly, on 32-bit Arm cores: LLVM's register allocation of
/// the same loops in Rust spilled a row pointer or the trip count to the stack depending on the code around the
/// call (measured on the Cortex-M3/M4: 14 instead of 11, 24 instead of 19 instructions per pass, see
/// BENCHMARKS.md); here the loop is fixed, two instructions (the count and the branch) around the work. Each
/// block only reads the memory of the slices its pointers come from, `count` passes of it, as its SAFETY comment
/// argues; the callers' plain-Rust loops beside them are the reference the hosts' tests run.
#[cfg(target_arch = "arm")]
#[allow(unsafe_code)]
pub(crate) mod loops {
    use core::arch::asm;

    /// A loop body run `{n}` times in all: once first if `{n}` is odd (its low bit shifted into the carry by
    /// LSRS), then twice per pass (`{n} / 2` passes; LSRS's zero flag skips the loop when that is 0). The bodies
    /// must leave the flags alone.
    macro_rules! twice_per_pass {
        ($body:ident) => {
            concat!(
                "lsrs {n}, {n}, #1\n",
                "bcc 3f\n",
                $body!(),
                "3:\n",
                "beq 4f\n",
                "2:\n",
                $body!(),
                $body!(),
                "subs {n}, {n}, #1\n",
                "bne 2b\n",
                "4:\n"
            )
        };
    }

    /// One pass of the loop of `dot3_wide`.
    #[cfg(target_feature = "dsp")]
    macro_rules! dot3_wide_body {
        () => {
            concat!(
                "ldr {x02}, [{c}], #4\n",
                "ldr {x13}, [{c}], #4\n",
                "ldr {w}, [{p0}], #4\n",
                "sxtb16 {t}, {w}\n",
                "smlad {a0}, {t}, {x02}, {a0}\n",
                "sxtb16 {t}, {w}, ror #8\n",
                "smlad {a0}, {t}, {x13}, {a0}\n",
                "ldr {w}, [{p1}], #4\n",
                "sxtb16 {t}, {w}\n",
                "smlad {a1}, {t}, {x02}, {a1}\n",
                "sxtb16 {t}, {w}, ror #8\n",
                "smlad {a1}, {t}, {x13}, {a1}\n",
                "ldr {w}, [{p2}], #4\n",
                "sxtb16 {t}, {w}\n",
                "smlad {a2}, {t}, {x02}, {a2}\n",
                "sxtb16 {t}, {w}, ror #8\n",
                "smlad {a2}, {t}, {x13}, {a2}\n",
            )
        };
    }

    /// One pass of the loop of `dot1_wide_dsp`.
    #[cfg(target_feature = "dsp")]
    macro_rules! dot1_wide_dsp_body {
        () => {
            concat!(
                "ldr {x02}, [{c}], #4\n",
                "ldr {x13}, [{c}], #4\n",
                "ldr {w}, [{p}], #4\n",
                "sxtb16 {t}, {w}\n",
                "smlad {a}, {t}, {x02}, {a}\n",
                "sxtb16 {t}, {w}, ror #8\n",
                "smlad {a}, {t}, {x13}, {a}\n",
            )
        };
    }

    /// One pass of the loop of `dot1_wide`.
    #[cfg(not(target_feature = "dsp"))]
    macro_rules! dot1_wide_body {
        () => {
            concat!(
                "ldrsh {x}, [{c}], #2\n",
                "ldrsb {w}, [{p}], #1\n",
                "mla {a}, {w}, {x}, {a}\n",
            )
        };
    }

    /// One pass of the loop of `dot4_wide`.
    #[cfg(not(target_feature = "dsp"))]
    macro_rules! dot4_wide_body {
        () => {
            concat!(
                "ldrsh {x}, [{c}], #2\n",
                "ldrsb {w}, [{p0}], #1\n",
                "mla {a0}, {w}, {x}, {a0}\n",
                "ldrsb {w}, [{p1}], #1\n",
                "mla {a1}, {w}, {x}, {a1}\n",
                "ldrsb {w}, [{p2}], #1\n",
                "mla {a2}, {w}, {x}, {a2}\n",
                "ldrsb {w}, [{p3}], #1\n",
                "mla {a3}, {w}, {x}, {a3}\n",
            )
        };
    }

    /// `Σ rows[r][j] · col[j]` over the first `4 · (n / 4)` columns, for three rows of int8 weights against a
    /// widened column in the DSP kernels' pair order (per four columns the words (c0, c2), (c1, c3)):
    /// per four columns two word loads of the column and per row one word load, two SXTB16 and two SMLAD.
    /// The rows are `block`'s three runs of `n` bytes (`[0; 3]` when `block` or `col` is shorter than that).
    #[cfg(target_feature = "dsp")]
    #[inline(always)]
    pub(crate) fn dot3_wide(block: &[u8], n: usize, col: &[i16]) -> [i32; 3] {
        let (mut a0, mut a1, mut a2) = (0i32, 0i32, 0i32);
        let count = n / 4;
        if count == 0 || block.len() / 3 < n || col.len() < n {
            return [0; 3];
        }
        let rows = [0, n, 2 * n].map(|at| block.as_ptr().wrapping_add(at));
        // SAFETY: the four-column body runs `count ≥ 1` times in all (once if `count` is odd, then twice per pass
        // of the loop) and reads, each time, 8 bytes from `c` and 4 from each of `p0`, `p1`, `p2`, advancing them:
        // 8 · count ≤ 2n bytes of the column (n ≤ col.len() values) and 4 · count ≤ n bytes from each of `block`'s
        // offsets 0, n and 2n (3n ≤ block.len()), all inside the slices. Unaligned word loads are allowed on ARMv7-M
        // (normal memory). The loads, SXTB16 and SMLAD leave the flags of LSRS for the BEQ (SMLAD sets only Q). It
        // writes no memory and no stack; it clobbers the flags, which `asm!` assumes unless told otherwise.
        unsafe {
            asm!(
                twice_per_pass!(dot3_wide_body),
                c = inout(reg) col.as_ptr() => _,
                p0 = inout(reg) rows[0] => _,
                p1 = inout(reg) rows[1] => _,
                p2 = inout(reg) rows[2] => _,
                n = inout(reg) count => _,
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                a2 = inout(reg) a2,
                x02 = out(reg) _,
                x13 = out(reg) _,
                w = out(reg) _,
                t = out(reg) _,
                options(nostack, readonly),
            );
        }
        [a0, a1, a2]
    }

    /// `Σ row[j] · col[j]` over the first `4 · (n / 4)` columns of one row against a widened column in the DSP
    /// kernels' pair order (`n` = the shorter length; the rows left over after the groups of three): per four
    /// columns two word loads of the column, one of the row, two SXTB16 and two SMLAD, eight columns per pass.
    #[cfg(target_feature = "dsp")]
    #[inline(always)]
    pub(crate) fn dot1_wide(row: &[u8], col: &[i16]) -> i32 {
        let mut a = 0i32;
        let count = row.len().min(col.len()) / 4;
        if count == 0 {
            return 0;
        }
        // SAFETY: the four-column body runs `count ≥ 1` times in all (once if `count` is odd, then twice per pass)
        // and reads, each time, 8 bytes from `c` and 4 from `p`, advancing them: 4 · count ≤ len values of each
        // slice. Unaligned word loads are allowed on ARMv7-M. The loads, SXTB16 and SMLAD leave the flags of LSRS
        // for the BEQ. It writes no memory and no stack; it clobbers the flags.
        unsafe {
            asm!(
                twice_per_pass!(dot1_wide_dsp_body),
                c = inout(reg) col.as_ptr() => _,
                p = inout(reg) row.as_ptr() => _,
                n = inout(reg) count => _,
                a = inout(reg) a,
                x02 = out(reg) _,
                x13 = out(reg) _,
                w = out(reg) _,
                t = out(reg) _,
                options(nostack, readonly),
            );
        }
        a
    }

    /// `Σ row[j] · col[j]` over the common length of one row of int8 weights and a widened column in order (the
    /// Cortex-M3's rows left over after the groups of four): per column a halfword load, a byte load and an MLA,
    /// two columns per pass.
    #[cfg(not(target_feature = "dsp"))]
    #[inline(always)]
    pub(crate) fn dot1_wide(row: &[u8], col: &[i16]) -> i32 {
        let mut a = 0i32;
        let count = row.len().min(col.len());
        if count == 0 {
            return 0;
        }
        // SAFETY: the column body runs `count ≥ 1` times in all (once if `count` is odd, then twice per pass) and
        // reads, each time, one halfword from `c` and one byte from `p`, advancing them: `count` elements of each
        // slice. The loads and MLAs leave the flags of LSRS for the BEQ. It writes no memory and no stack; it
        // clobbers the flags.
        unsafe {
            asm!(
                twice_per_pass!(dot1_wide_body),
                c = inout(reg) col.as_ptr() => _,
                p = inout(reg) row.as_ptr() => _,
                n = inout(reg) count => _,
                a = inout(reg) a,
                x = out(reg) _,
                w = out(reg) _,
                options(nostack, readonly),
            );
        }
        a
    }

    /// Window cells [`Window`] holds at most: the depthwise kernel's.
    use crate::ops::depthwise_int8::CELLS as WINDOW_CELLS;

    /// A pixel's window of input cells for the depthwise kernel ([`depthwise_halves`]): the cells' pointers, each
    /// to at least `len` bytes of memory borrowed for `'a`, checked when the window is built, so that the assembly
    /// loop may read four bytes at any offset `j` with `j + 4 ≤ len`.
    pub(crate) struct Window<'a> {
        /// The cells' pointers, then null (at least one: the end mark of [`depthwise_pixel`]'s loop).
        cells: [*const u8; WINDOW_CELLS + 1],
        count: usize,
        len: usize,
        _borrow: core::marker::PhantomData<&'a [u8]>,
    }

    impl<'a> Window<'a> {
        /// The window of `cells` (at most [`WINDOW_CELLS`]), each at least `len` bytes long; `None` otherwise (the
        /// M4/M7's pixels that [`Window::rect`] does not serve).
        #[cfg(target_feature = "dsp")]
        #[inline(always)]
        pub(crate) fn new(cells: &[&'a [u8]], len: usize) -> Option<Self> {
            if cells.len() > WINDOW_CELLS || cells.iter().any(|c| c.len() < len) {
                return None;
            }
            // Each pointer written once (a zeroed array filled after cost ~75 instructions more per pixel).
            let ptrs =
                core::array::from_fn(|i| cells.get(i).map_or(core::ptr::null(), |c| c.as_ptr()));
            Some(Window {
                cells: ptrs,
                count: cells.len(),
                len,
                _borrow: core::marker::PhantomData,
            })
        }
    }

    impl<'a> Window<'a> {
        /// Whether the window has no cells (the loops refuse it).
        #[cfg_attr(target_feature = "dsp", allow(dead_code))]
        pub(crate) fn is_empty(&self) -> bool {
            self.count == 0
        }

        /// A window of no cells (which the loops refuse), to be refilled pixel by pixel ([`Window::rect`]).
        #[inline(always)]
        pub(crate) fn empty() -> Self {
            Window {
                cells: [core::ptr::null(); WINDOW_CELLS + 1],
                count: 0,
                len: 0,
                _borrow: core::marker::PhantomData,
            }
        }

        /// Refills the window for a pixel of a `kh × kw` kernel whose cells inside the input are the rectangle
        /// `rows × cols` (kernel rows and columns, half-open): the rectangle's first cell at byte `at` of `x`, the
        /// next cells `step` bytes across and `row` bytes down, every other cell `pad`; cells of `len` bytes.
        /// Empty (no cells) unless the kernel has at most [`WINDOW_CELLS`] cells, `pad` holds `len` bytes and the
        /// rectangle's last cell ends within `x`: one check for the window, where [`Window::new`] takes slices
        /// checked cell by cell (~100 instructions per kernel row of DS-CNN's 3 × 3 windows on the Cortex-M4).
        /// Refilled in place, not returned: a window moved out of a function had cost a 76-byte copy per pixel.
        #[inline(always)]
        pub(crate) fn rect(
            &mut self,
            (x, pad): (&'a [u8], &'a [u8]),
            (kh, kw): (usize, usize),
            (rows, cols): ((usize, usize), (usize, usize)),
            at: usize,
            (row, step): (usize, usize),
            len: usize,
        ) {
            self.count = 0;
            self.len = len;
            if pad.len() < len {
                return;
            }
            // A pixel at an edge: every cell the rectangle leaves reads the pad (an inner pixel's rectangle is
            // the whole kernel, all of whose cells `fill` writes).
            if (rows, cols) != ((0, kh), (0, kw)) {
                self.cells.fill(pad.as_ptr());
            }
            if let Some(count) = self.fill(x, (kh, kw), (rows, cols), at, (row, step)) {
                self.count = count;
            }
        }

        /// [`Window::rect`]'s cells: the rectangle's pointers and the end mark; the cell count, or `None` where
        /// the kernel or the rectangle does not fit.
        #[inline(always)]
        fn fill(
            &mut self,
            x: &'a [u8],
            (kh, kw): (usize, usize),
            (rows, cols): ((usize, usize), (usize, usize)),
            at: usize,
            (row, step): (usize, usize),
        ) -> Option<usize> {
            let count = kh.checked_mul(kw)?;
            if count > WINDOW_CELLS || rows.1 > kh || cols.1 > kw {
                return None;
            }
            if rows.0 < rows.1 && cols.0 < cols.1 {
                // Every cell of the rectangle starts at most as far into `x` as its last cell, which ends in it.
                let down = (rows.1 - rows.0 - 1).checked_mul(row)?;
                let across = (cols.1 - cols.0 - 1).checked_mul(step)?;
                let end = down
                    .checked_add(across)?
                    .checked_add(at)?
                    .checked_add(self.len)?;
                if end > x.len() {
                    return None;
                }
                let mut first = x.as_ptr().wrapping_add(at);
                for ky in rows.0..rows.1 {
                    let mut cell = first;
                    let from = ky * kw;
                    for p in self
                        .cells
                        .get_mut(from + cols.0..from + cols.1)
                        .unwrap_or(&mut [])
                    {
                        *p = cell;
                        cell = cell.wrapping_add(step);
                    }
                    first = first.wrapping_add(row);
                }
            }
            *self.cells.get_mut(count)? = core::ptr::null();
            Some(count)
        }
    }

    /// `Σ w · x` of channels `j .. j + 4` over the window's cells against their weights `ws` (per cell two words:
    /// the four weights as 16-bit lanes (j, j + 2), (j + 1, j + 3)): per cell a pointer load, a word of inputs,
    /// a pair of weight words, two SXTB16 and four 16-bit multiply-adds (SMLABB/SMLATT). `[0; 4]` unless
    /// `j + 4 ≤` the window's length and `ws` holds two words per cell.
    #[cfg(target_feature = "dsp")]
    #[inline(always)]
    pub(crate) fn depthwise_halves(window: &Window, ws: &[u32], j: usize) -> [i32; 4] {
        let (mut a0, mut a1, mut a2, mut a3) = (0i32, 0i32, 0i32, 0i32);
        let count = window.count;
        if count == 0 || j + 4 > window.len || ws.len() < 2 * count {
            return [0; 4];
        }
        // SAFETY: the loop runs `count ≥ 1` times; pass `i` loads `window.cells[i]` (i < count ≤ WINDOW_CELLS, the
        // array's length), reads four bytes at offset `j` of that cell (a cell has at least `len ≥ j + 4` bytes,
        // borrowed for the window's lifetime, checked by `Window::new`) and two words of `ws` (2 · count ≤ its
        // length; `ws` is a `u32` slice, so LDRD's word alignment holds). Unaligned word loads of inputs are allowed
        // on ARMv7-M. It writes no memory and no stack; it clobbers the flags.
        unsafe {
            asm!(
                "2:",
                "ldr {x}, [{cp}], #4",
                "ldr {x}, [{x}, {j}]",
                "ldrd {w0}, {w1}, [{wp}], #8",
                "sxtb16 {t}, {x}",
                "smlabb {a0}, {t}, {w0}, {a0}",
                "smlatt {a2}, {t}, {w0}, {a2}",
                "sxtb16 {t}, {x}, ror #8",
                "smlabb {a1}, {t}, {w1}, {a1}",
                "smlatt {a3}, {t}, {w1}, {a3}",
                "subs {n}, {n}, #1",
                "bne 2b",
                cp = inout(reg) window.cells.as_ptr() => _,
                wp = inout(reg) ws.as_ptr() => _,
                j = in(reg) j,
                n = inout(reg) count => _,
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                a2 = inout(reg) a2,
                a3 = inout(reg) a3,
                x = out(reg) _,
                w0 = out(reg) _,
                w1 = out(reg) _,
                t = out(reg) _,
                options(nostack, readonly),
            );
        }
        [a0, a1, a2, a3]
    }

    /// `Σ w · x` of channels `j .. j + 4` over the window's cells against their weights `ws` (per cell four words:
    /// the four weights sign-extended, `depthwise_int8`'s `Kernel::Words`), the Cortex-M3's kernel: per cell a
    /// pointer load, a word of inputs, two double-word loads of weights and per channel one extraction (SXTB,
    /// SBFX, ASR) and one MLA, 14 instructions for four multiply-adds. `[0; 4]` unless `j + 4 ≤` the window's
    /// length and `ws` holds four words per cell.
    #[cfg(not(target_feature = "dsp"))]
    #[inline(always)]
    pub(crate) fn depthwise_words(window: &Window, ws: &[u32], j: usize) -> [i32; 4] {
        let (mut a0, mut a1, mut a2, mut a3) = (0i32, 0i32, 0i32, 0i32);
        let count = window.count;
        if count == 0 || j + 4 > window.len || ws.len() / 4 < count {
            return [0; 4];
        }
        // SAFETY: the loop runs `count ≥ 1` times; pass `i` loads `window.cells[i]` (i < count ≤ WINDOW_CELLS, the
        // array's length), reads four bytes at offset `j` of that cell (a cell has at least `len ≥ j + 4` bytes,
        // borrowed for the window's lifetime, checked where the window was built) and four words of `ws`
        // (4 · count ≤ its length; a `u32` slice, so LDRD's word alignment holds). Unaligned word loads of inputs
        // are allowed on ARMv7-M. It writes no memory and no stack; it clobbers the flags.
        unsafe {
            asm!(
                "2:",
                "ldr {x}, [{cp}], #4",
                "ldr {x}, [{x}, {j}]",
                "ldrd {w0}, {w1}, [{wp}], #16",
                "sxtb {t}, {x}",
                "mla {a0}, {t}, {w0}, {a0}",
                "sbfx {t}, {x}, #8, #8",
                "mla {a1}, {t}, {w1}, {a1}",
                "ldrd {w0}, {w1}, [{wp}, #-8]",
                "sbfx {t}, {x}, #16, #8",
                "mla {a2}, {t}, {w0}, {a2}",
                "asr {t}, {x}, #24",
                "mla {a3}, {t}, {w1}, {a3}",
                "subs {n}, {n}, #1",
                "bne 2b",
                cp = inout(reg) window.cells.as_ptr() => _,
                wp = inout(reg) ws.as_ptr() => _,
                j = in(reg) j,
                n = inout(reg) count => _,
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                a2 = inout(reg) a2,
                a3 = inout(reg) a3,
                x = out(reg) _,
                w0 = out(reg) _,
                w1 = out(reg) _,
                t = out(reg) _,
                options(nostack, readonly),
            );
        }
        [a0, a1, a2, a3]
    }

    /// [`depthwise_halves`] for channels `0 .. 4 · sums.len()` of the window, each group's four sums written to
    /// `sums` (`ws` holds each group's two words per cell one group after the other): the loop over the groups in
    /// the assembly too, so that the accumulators and pointers stay in registers from one group to the next
    /// (from Rust, a call per group spilled and reloaded them: ~45 instructions per group on DS-CNN). Returns
    /// `false`, writing nothing, unless the window has a cell, `4 · sums.len() ≤` its length and `ws` holds
    /// `2 · cells · sums.len()` words.
    #[cfg(target_feature = "dsp")]
    #[inline(always)]
    pub(crate) fn depthwise_pixel(window: &Window, ws: &[u32], sums: &mut [[i32; 4]]) -> bool {
        let groups = sums.len();
        let words = window
            .count
            .checked_mul(2)
            .and_then(|w| w.checked_mul(groups));
        if window.count == 0
            || groups == 0
            || 4 * groups > window.len
            || words.is_none_or(|w| ws.len() < w)
        {
            return false;
        }
        // SAFETY: `window.cells` holds `count ≥ 1` pointers and then a null one (`Window::new`); for each of the
        // `groups ≥ 1` groups the cell loop reads pointers from the array's start up to that null (inside the
        // array), four bytes at offset `j = 4 · group` of each cell (`j + 4 ≤ 4 · groups ≤ len`, and each cell has
        // `len` bytes borrowed for the window's lifetime) and two words of `ws` per cell (2 · count · groups words
        // in all, within `ws`; word-aligned, a `u32` slice), then writes four words at `out`, which advances by 16
        // bytes per group: `4 · groups` words, `sums`' length. Unaligned word loads of inputs are allowed on
        // ARMv7-M. It uses no stack; it clobbers the flags.
        unsafe {
            asm!(
                "1:",
                "movs {a0}, #0",
                "movs {a1}, #0",
                "movs {a2}, #0",
                "movs {a3}, #0",
                "mov {cp}, {cb}",
                "2:",
                "ldr {x}, [{cp}], #4",
                "cmp {x}, #0",
                "beq 3f",
                "ldr {x}, [{x}, {j}]",
                "ldr {w}, [{wp}], #4",
                "sxtb16 {t}, {x}",
                "smlabb {a0}, {t}, {w}, {a0}",
                "smlatt {a2}, {t}, {w}, {a2}",
                "sxtb16 {x}, {x}, ror #8",
                "ldr {w}, [{wp}], #4",
                "smlabb {a1}, {x}, {w}, {a1}",
                "smlatt {a3}, {x}, {w}, {a3}",
                "b 2b",
                "3:",
                "str {a0}, [{out}], #4",
                "str {a1}, [{out}], #4",
                "str {a2}, [{out}], #4",
                "str {a3}, [{out}], #4",
                "adds {j}, {j}, #4",
                "subs {g}, {g}, #1",
                "bne 1b",
                cb = in(reg) window.cells.as_ptr(),
                cp = out(reg) _,
                wp = inout(reg) ws.as_ptr() => _,
                j = inout(reg) 0usize => _,
                g = inout(reg) groups => _,
                out = inout(reg) sums.as_mut_ptr() => _,
                a0 = out(reg) _,
                a1 = out(reg) _,
                a2 = out(reg) _,
                a3 = out(reg) _,
                x = out(reg) _,
                w = out(reg) _,
                t = out(reg) _,
                options(nostack),
            );
        }
        true
    }

    /// One entry of `prepared_channel4`'s loop: the pair `(at, v)` and per pixel a byte load and an MLA.
    macro_rules! prepared_entry {
        () => {
            concat!(
                "ldrsb {v}, [{e}, #1]\n",
                "ldrb {at}, [{e}], #2\n",
                "ldrsb {x}, [{w0}, {at}]\n",
                "mla {a0}, {x}, {v}, {a0}\n",
                "ldrsb {x}, [{w1}, {at}]\n",
                "mla {a1}, {x}, {v}, {a1}\n",
                "ldrsb {x}, [{w2}, {at}]\n",
                "mla {a2}, {x}, {v}, {a2}\n",
                "ldrsb {x}, [{w3}, {at}]\n",
                "mla {a3}, {x}, {v}, {a3}\n",
            )
        };
    }

    /// The loop over one prepared channel's groups shared by [`prepared_channel4`] and [`prepared_pooled4`]: its
    /// values in the state array the pushed pointer reaches (words 0 the counts' place, 3 the groups left, 4 the
    /// entries' end, 8 the windows' place); per group the count, the end check (past it: to `5f`, the end), the
    /// four window pointers, then the entries (once if bit 0 of the count is set, twice if bit 1 is, then four times
    /// per pass; the loads and MLAs keep LSRS's flags).
    macro_rules! prepared_groups {
        () => {
            concat!(
                "1:\n",
                "ldr {x}, [sp]\n",
                "ldr {v}, [{x}]\n",
                "ldrh {n}, [{v}], #2\n",
                "str {v}, [{x}]\n",
                "ldr {v}, [{x}, #16]\n",
                "add {at}, {e}, {n}, lsl #1\n",
                "cmp {at}, {v}\n",
                "bhi 5f\n",
                "ldr {v}, [{x}, #32]\n",
                "ldrd {w0}, {w1}, [{v}], #16\n",
                "ldrd {w2}, {w3}, [{v}, #-8]\n",
                "str {v}, [{x}, #32]\n",
                "lsrs {n}, {n}, #1\n",
                "bcc 3f\n",
                prepared_entry!(),
                "3:\n",
                "lsrs {n}, {n}, #1\n",
                "bcc 7f\n",
                prepared_entry!(),
                prepared_entry!(),
                "7:\n",
                "beq 4f\n",
                "2:\n",
                prepared_entry!(),
                prepared_entry!(),
                prepared_entry!(),
                prepared_entry!(),
                "subs {n}, {n}, #1\n",
                "bne 2b\n",
                "4:\n",
                "ldr {x}, [sp]\n",
                "ldr {v}, [{x}, #12]\n",
                "subs {v}, {v}, #1\n",
                "str {v}, [{x}, #12]\n",
                "bne 1b\n",
            )
        };
    }

    /// `acc[p] += Σ v · wins[g][p][at]` over a prepared channel's groups `g` (their entry counts in `counts`, two
    /// bytes each, the `(at, v)` pairs one group after the other in `entries`) for four pixels' 256-byte windows,
    /// with the loop over the groups in the assembly too: its four values (the counts' and the windows' places,
    /// the groups left, the entries' end) live in memory, reached through a pointer pushed on the stack, so that
    /// the entry loop keeps all thirteen registers (from Rust, a call per group spilled its set-up: ~47
    /// instructions per group on LeNet-5). Each group's entries are checked against the end before they are read;
    /// a group past it stops the walk (a corrupted prepared form: the sums are then of the groups before it).
    /// Returns the sums and how many bytes of `entries` the groups took.
    #[inline(always)]
    pub(crate) fn prepared_channel4(
        counts: &[u8],
        entries: &[u8],
        wins: &[[&[u8; 256]; 4]],
        acc: [i32; 4],
    ) -> ([i32; 4], usize) {
        let groups = (counts.len() / 2).min(wins.len());
        if groups == 0 {
            return (acc, 0);
        }
        let [mut a0, mut a1, mut a2, mut a3] = acc;
        let start = entries.as_ptr();
        let limit = start.wrapping_add(entries.len());
        // The layout of [`prepared_pooled4`]'s state, whose group loop this is (words 5–7 unused here).
        let mut state = [
            counts.as_ptr() as usize,
            wins.as_ptr() as usize,
            groups,
            groups,
            limit as usize,
            0,
            0,
            0,
            wins.as_ptr() as usize,
        ];
        let end: *const u8;
        // SAFETY: the group loop runs at most `groups ≥ 1` times: each pass reads one u16 count at the counts'
        // place (`groups ≤ counts.len() / 2` of them) and four window pointers at the windows' place (16 bytes, one
        // element of `wins`, `groups ≤ wins.len()`; pointers, so word-aligned for LDRD), advancing both in `state`,
        // a local array of nine words the pushed pointer reaches; it reads the group's `n` pairs from `e` only if
        // `e + 2n` is at most the entries' end (else it leaves), and one byte from each window at offset `at`, a
        // byte read by LDRB (0 ..= 255) inside the 256-byte arrays. It writes only `state` and four bytes of stack
        // below the stack pointer, which it restores; it clobbers the flags.
        unsafe {
            asm!(
                "push {{{x}}}",
                prepared_groups!(),
                "5:",
                "add sp, sp, #4",
                x = inout(reg) state.as_mut_ptr() => _,
                e = inout(reg) start => end,
                n = out(reg) _,
                v = out(reg) _,
                at = out(reg) _,
                w0 = out(reg) _,
                w1 = out(reg) _,
                w2 = out(reg) _,
                w3 = out(reg) _,
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                a2 = inout(reg) a2,
                a3 = inout(reg) a3,
            );
        }
        (
            [a0, a1, a2, a3],
            (end as usize).wrapping_sub(start as usize),
        )
    }

    /// A pooled pixel's channels (`conv_pooled`'s four output pixels of one pooling window): for each of
    /// `best.len()` channels, the sums from its record's first word (`records`: 16 bytes per channel) over its
    /// groups' entries ([`prepared_channel4`]'s walk, `counts`: two bytes per group and channel), the largest of
    /// the four written to `best`. The loops over channels and groups keep their values in memory, reached through
    /// a pointer pushed on the stack, so that the entry loop keeps all thirteen registers and nothing is spilled
    /// around it per channel (from Rust, ~94 instructions per channel on LeNet-5 around the group loop). A group
    /// whose entries would pass the end stops the walk (a corrupted prepared form). Returns how many bytes of
    /// `entries` the channels took.
    #[inline(always)]
    pub(crate) fn prepared_pooled4(
        (records, counts): (&[u8], &[u8]),
        entries: &[u8],
        wins: &[[&[u8; 256]; 4]],
        best: &mut [i32],
    ) -> usize {
        let groups = wins.len();
        let channels = best
            .len()
            .min(records.len() / 16)
            .min(counts.len() / 2 / groups.max(1));
        if groups == 0 || channels == 0 {
            return 0;
        }
        let start = entries.as_ptr();
        let mut state = [
            counts.as_ptr() as usize,
            wins.as_ptr() as usize,
            groups,
            0,
            start.wrapping_add(entries.len()) as usize,
            records.as_ptr() as usize,
            best.as_mut_ptr() as usize,
            channels,
            0,
        ];
        let end: *const u8;
        // SAFETY: the channel loop runs at most `channels ≥ 1` times, each reading one word of `records` (16 bytes
        // per channel, `channels ≤ records.len() / 16`) and writing one word of `best` (`channels ≤ best.len()`);
        // per channel the group loop runs `groups ≥ 1` times, reading one u16 of `counts` (`groups · channels ≤
        // counts.len() / 2` in all) and one element of `wins` (four word-aligned pointers, `groups = wins.len()`,
        // restarted per channel); a group's `n` pairs are read from `e` only if `e + 2n` is at most the entries'
        // end (else it leaves), and one byte from each window at offset `at`, a byte (0 ..= 255) inside the 256-byte
        // arrays. The entry body runs `n` times in all (once if bit 0 of `n` is set, twice if bit 1 is, then four
        // times per pass; the loads and MLAs keep LSRS's flags). It writes only `state` (a local array of nine words the pushed pointer reaches),
        // `best`, and four bytes of stack below the stack pointer, which it restores; it clobbers the flags.
        unsafe {
            asm!(
                "push {{{x}}}",
                "6:",
                "ldr {x}, [sp]",
                "ldr {v}, [{x}, #20]",
                "ldr {a0}, [{v}], #16",
                "str {v}, [{x}, #20]",
                "mov {a1}, {a0}",
                "mov {a2}, {a0}",
                "mov {a3}, {a0}",
                "ldr {v}, [{x}, #4]",
                "str {v}, [{x}, #32]",
                "ldr {v}, [{x}, #8]",
                "str {v}, [{x}, #12]",
                prepared_groups!(),
                "cmp {a0}, {a1}",
                "it lt",
                "movlt {a0}, {a1}",
                "cmp {a0}, {a2}",
                "it lt",
                "movlt {a0}, {a2}",
                "cmp {a0}, {a3}",
                "it lt",
                "movlt {a0}, {a3}",
                "ldr {v}, [{x}, #24]",
                "str {a0}, [{v}], #4",
                "str {v}, [{x}, #24]",
                "ldr {v}, [{x}, #28]",
                "subs {v}, {v}, #1",
                "str {v}, [{x}, #28]",
                "bne 6b",
                "5:",
                "add sp, sp, #4",
                x = inout(reg) state.as_mut_ptr() => _,
                e = inout(reg) start => end,
                n = out(reg) _,
                v = out(reg) _,
                at = out(reg) _,
                w0 = out(reg) _,
                w1 = out(reg) _,
                w2 = out(reg) _,
                w3 = out(reg) _,
                a0 = out(reg) _,
                a1 = out(reg) _,
                a2 = out(reg) _,
                a3 = out(reg) _,
            );
        }
        (end as usize).wrapping_sub(start as usize)
    }

    /// [`crate::quant::requantize_run`] as one loop: per output four word loads (sum, bias, shift, multiplier),
    /// the shift reloaded after the SMLAL rather than held (twelve registers in all), the bounds packed into one
    /// register (SXTH for the lower, an ASR #16 operand for the upper): 27 instructions, where the compiler's loop
    /// over the same arrays took ~40 (it spilled the pointers and the bounds).
    #[inline(always)]
    pub(crate) fn requantize_run(
        sums: &[i32],
        words: crate::quant::Words,
        (c, bounds): (i32, i32),
        ys: &mut [u8],
    ) -> usize {
        let n = [
            words.bias.len(),
            words.multipliers.len(),
            words.shifts.len(),
        ]
        .iter()
        .fold(ys.len().min(sums.len()), |n, &b| n.min(b / 4));
        if n == 0 {
            return 0;
        }
        let start = ys.as_mut_ptr();
        let end = start.wrapping_add(n);
        let stop: *mut u8;
        // SAFETY: each pass reads one word at `s`, `b`, `e` and `m` and writes one byte at `y`, advancing them, and
        // the loop ends when `y` reaches `end`, `n ≥ 1` passes after `start`: at most `n` elements of each slice,
        // `n` no more than any holds (words of four bytes; unaligned word loads are allowed on ARMv7-M). The
        // reload `[e, #-4]` is the word the pass read. A pass may instead leave before its store (an unsupported
        // shift), having written less. No other memory is written, no stack used; the flags are clobbered.
        unsafe {
            asm!(
                "2:",
                "ldr {a}, [{s}], #4",
                "ldr {t}, [{b}], #4",
                "add {a}, {a}, {t}",
                "ldr {t}, [{e}], #4",
                "mvn {t}, {t}",
                "sub {h}, {t}, #1",
                "cmp {h}, #22",
                "bhi 3f",
                "lsl {h}, {c}, {h}",
                "add {h}, {h}, {a}, asr #31",
                "and {lo}, {a}, #0x80000000",
                "orr {lo}, {lo}, #0x40000000",
                "ldr {t}, [{m}], #4",
                "smlal {lo}, {h}, {a}, {t}",
                "ldr {t}, [{e}, #-4]",
                "mvn {t}, {t}",
                "asr {h}, {h}, {t}",
                "sxth {t}, {k}",
                "cmp {h}, {t}",
                "it lt",
                "movlt {h}, {t}",
                "cmp {h}, {k}, asr #16",
                "it gt",
                "asrgt {h}, {k}, #16",
                "strb {h}, [{y}], #1",
                "cmp {y}, {end}",
                "bne 2b",
                "3:",
                s = inout(reg) sums.as_ptr() => _,
                b = inout(reg) words.bias.as_ptr() => _,
                e = inout(reg) words.shifts.as_ptr() => _,
                m = inout(reg) words.multipliers.as_ptr() => _,
                y = inout(reg) start => stop,
                end = in(reg) end,
                c = in(reg) c,
                k = in(reg) bounds,
                a = out(reg) _,
                t = out(reg) _,
                h = out(reg) _,
                lo = out(reg) _,
                options(nostack),
            );
        }
        (stop as usize).wrapping_sub(start as usize)
    }

    /// [`crate::quant::table_run`] as one loop: per output the sum and two double-word loads of its channel
    /// (`Channel` is `repr(C)`: bias, multiplier, `2^(e−2)`, `e − 1`), the SMLAL of [`crate::quant`]'s
    /// `round_shift`, the clamp and the zero point in registers: 21 instructions.
    #[inline(always)]
    pub(crate) fn table_run(
        sums: &[i32],
        chans: &[crate::quant::Channel],
        out: &crate::quant::Output,
        ys: &mut [u8],
    ) -> usize {
        let n = ys.len().min(sums.len()).min(chans.len());
        if n == 0 {
            return 0;
        }
        let (lo, hi, zp) = out.parts();
        let start = ys.as_mut_ptr();
        let end = start.wrapping_add(n);
        let stop: *mut u8;
        // SAFETY: each pass reads one word at `s` and 16 bytes (one `Channel`, four words, `repr(C)`) at `c`, and
        // writes one byte at `y`, advancing them; the loop ends when `y` reaches `end`, `n ≥ 1` passes after
        // `start`: at most `n` elements of each slice, `n` no more than any holds. The second LDRD reads the pass's
        // own channel (`[c, #-8]` after the post-increment). A pass may leave before its store (a channel of the
        // general path, `half = 0`), having written less. No other memory is written, no stack used; the flags
        // are clobbered.
        unsafe {
            asm!(
                "2:",
                "ldr {a}, [{s}], #4",
                "ldrd {b}, {m}, [{c}], #16",
                "ldrd {h}, {e}, [{c}, #-8]",
                "cmp {h}, #0",
                "beq 3f",
                "add {a}, {a}, {b}",
                "add {h}, {h}, {a}, asr #31",
                "and {b}, {a}, #0x80000000",
                "orr {b}, {b}, #0x40000000",
                "smlal {b}, {h}, {a}, {m}",
                "asr {h}, {h}, {e}",
                "cmp {h}, {lo}",
                "it lt",
                "movlt {h}, {lo}",
                "cmp {h}, {hi}",
                "it gt",
                "movgt {h}, {hi}",
                "add {h}, {h}, {zp}",
                "strb {h}, [{y}], #1",
                "cmp {y}, {end}",
                "bne 2b",
                "3:",
                s = inout(reg) sums.as_ptr() => _,
                c = inout(reg) chans.as_ptr() => _,
                y = inout(reg) start => stop,
                end = in(reg) end,
                lo = in(reg) lo,
                hi = in(reg) hi,
                zp = in(reg) zp,
                a = out(reg) _,
                b = out(reg) _,
                m = out(reg) _,
                h = out(reg) _,
                e = out(reg) _,
                options(nostack),
            );
        }
        (stop as usize).wrapping_sub(start as usize)
    }

    /// `acc[r] += Σ rows[r][j] · col[j]` over the first `count` columns, for four rows of int8 weights against a
    /// widened column in order: per column one halfword load and per row one byte load and one MLA (the
    /// Cortex-M3's kernel: no DSP instructions), two columns per pass of the loop.
    #[cfg(not(target_feature = "dsp"))]
    #[inline(always)]
    pub(crate) fn dot4_wide(rows: [&[u8]; 4], col: &[i16], acc: [i32; 4]) -> [i32; 4] {
        let count = rows.iter().map(|r| r.len()).fold(col.len(), usize::min);
        let [mut a0, mut a1, mut a2, mut a3] = acc;
        if count == 0 {
            return acc;
        }
        // SAFETY: the column body runs `count ≥ 1` times in all (once if `count` is odd, then twice per pass of the
        // loop, `count / 2` passes) and reads, each time, one halfword from `c` and one byte from each of `p0` ..
        // `p3`, advancing them: `count` elements of each slice, all inside them. The loads and MLAs leave the flags
        // of LSRS for the BEQ. It writes no memory and no stack; it clobbers the flags.
        unsafe {
            asm!(
                twice_per_pass!(dot4_wide_body),
                c = inout(reg) col.as_ptr() => _,
                p0 = inout(reg) rows[0].as_ptr() => _,
                p1 = inout(reg) rows[1].as_ptr() => _,
                p2 = inout(reg) rows[2].as_ptr() => _,
                p3 = inout(reg) rows[3].as_ptr() => _,
                n = inout(reg) count => _,
                a0 = inout(reg) a0,
                a1 = inout(reg) a1,
                a2 = inout(reg) a2,
                a3 = inout(reg) a3,
                x = out(reg) _,
                w = out(reg) _,
                options(nostack, readonly),
            );
        }
        [a0, a1, a2, a3]
    }
}

/// The DSP instructions in plain Rust: what the host's tests run.
#[cfg(not(all(target_arch = "arm", target_feature = "dsp")))]
#[allow(dead_code)]
mod imp {
    /// Lane `i` (0: bits 0–15) as a signed value.
    fn lane(v: u32, i: u32) -> i32 {
        i32::from((v >> (16 * i)) as u16 as i16)
    }

    /// Two signed 16-bit lanes packed into a word.
    fn pack(lo: i32, hi: i32) -> u32 {
        u32::from(lo as u16) | u32::from(hi as u16) << 16
    }

    /// Bytes 0 and 2 of `v`, sign-extended into the two 16-bit lanes.
    pub(crate) fn sxtb16(v: u32) -> u32 {
        pack(i32::from(v as u8 as i8), i32::from((v >> 16) as u8 as i8))
    }

    /// Bytes 1 and 3 of `v`, sign-extended into the two 16-bit lanes.
    pub(crate) fn sxtb16_ror8(v: u32) -> u32 {
        sxtb16(v.rotate_right(8))
    }

    /// `a` plus bytes 0 and 2 of `v` sign-extended, lane by lane (wrapping).
    pub(crate) fn sxtab16(a: u32, v: u32) -> u32 {
        let e = sxtb16(v);
        pack(lane(a, 0) + lane(e, 0), lane(a, 1) + lane(e, 1))
    }

    /// `a` plus bytes 1 and 3 of `v` sign-extended, lane by lane (wrapping).
    pub(crate) fn sxtab16_ror8(a: u32, v: u32) -> u32 {
        sxtab16(a, v.rotate_right(8))
    }

    /// `acc + a.lo·b.lo + a.hi·b.hi` (signed 16-bit lanes, wrapping).
    pub(crate) fn smlad(a: u32, b: u32, acc: i32) -> i32 {
        acc.wrapping_add(lane(a, 0) * lane(b, 0))
            .wrapping_add(lane(a, 1) * lane(b, 1))
    }

    /// The host's dense kernel compiled for AVX2, for x86-64 CPUs that have it (detected once with CPUID, as
    /// `std::is_x86_feature_detected!` does, which a `no_std` crate cannot call).
    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    pub(crate) mod x86 {
        // Audited: CPUID and XGETBV only read processor state; the AVX2 function is called only once both said
        // the CPU and the operating system support AVX2 (the function itself is the safe plain-Rust kernel).
        use core::arch::x86_64::{__cpuid, __cpuid_count, _xgetbv};
        use core::sync::atomic::{AtomicU8, Ordering};

        /// 0: not yet detected; 1: no AVX2; 2: AVX2.
        static AVX2: AtomicU8 = AtomicU8::new(0);

        /// Whether the CPU and the operating system support AVX2 (detected once).
        pub(in crate::ops) fn avx2() -> bool {
            match AVX2.load(Ordering::Relaxed) {
                0 => {
                    let yes = detect();
                    AVX2.store(1 + u8::from(yes), Ordering::Relaxed);
                    yes
                }
                v => v == 2,
            }
        }

        // CPUID is a safe function in newer Rust than the runtime's minimum (1.85), where it is not.
        #[allow(unused_unsafe)]
        fn detect() -> bool {
            // SAFETY: CPUID exists on every x86-64 processor and only reads processor state.
            let (max, l1) = unsafe { (__cpuid(0).eax, __cpuid(1)) };
            // AVX and OSXSAVE: the OS saves the wide registers and allows XGETBV.
            if max < 7 || l1.ecx & (1 << 27) == 0 || l1.ecx & (1 << 28) == 0 {
                return false;
            }
            // SAFETY: OSXSAVE is set, so XGETBV is enabled; it only reads XCR0.
            let xcr0 = unsafe { xgetbv0() };
            // SAFETY: as above; leaf 7 exists (max ≥ 7).
            let l7 = unsafe { __cpuid_count(7, 0) };
            xcr0 & 0b110 == 0b110 && l7.ebx & (1 << 5) != 0
        }

        #[target_feature(enable = "xsave")]
        unsafe fn xgetbv0() -> u64 {
            _xgetbv(0)
        }

        /// Runs [`crate::ops::dot::rows_wide_plain`] compiled for AVX2 and returns `None`, or gives `f` back when the
        /// CPU lacks AVX2.
        #[inline(always)]
        pub(in crate::ops) fn rows_wide<F: Fn(i32, usize) -> u8>(
            ws: &[u8],
            c: &[i16],
            y: &mut [u8],
            f: F,
        ) -> Option<F> {
            if !avx2() {
                return Some(f);
            }
            // SAFETY: `avx2()` found AVX2 supported by the CPU and enabled by the OS.
            unsafe { rows_avx2(ws, c, y, f) };
            None
        }

        /// 0: not yet detected; 1: no AVX-512 VNNI; 2: AVX-512 F, DQ, BW, VL and VNNI.
        #[cfg(slimnet_avx512)]
        static VNNI: AtomicU8 = AtomicU8::new(0);

        /// Whether [`rows_int8`] runs (the CPU and the compiler have AVX-512 VNNI).
        pub(in crate::ops) fn has_vnni() -> bool {
            #[cfg(slimnet_avx512)]
            return vnni();
            #[cfg(not(slimnet_avx512))]
            false
        }

        /// Whether the CPU and the operating system support AVX-512 F, DQ, BW, VL and VNNI (detected once).
        #[cfg(slimnet_avx512)]
        fn vnni() -> bool {
            match VNNI.load(Ordering::Relaxed) {
                0 => {
                    let yes = avx2() && detect_vnni();
                    VNNI.store(1 + u8::from(yes), Ordering::Relaxed);
                    yes
                }
                v => v == 2,
            }
        }

        #[cfg(slimnet_avx512)]
        #[allow(unused_unsafe)]
        fn detect_vnni() -> bool {
            // SAFETY: `avx2()` found OSXSAVE and leaf 7; XGETBV and CPUID only read processor state.
            let (xcr0, l7) = unsafe { (xgetbv0(), __cpuid_count(7, 0)) };
            // XCR0: SSE, AVX, opmask, ZMM_Hi256 and Hi16_ZMM state enabled by the OS; leaf 7: AVX512F (EBX 16),
            // AVX512DQ (EBX 17), AVX512BW (EBX 30), AVX512VL (EBX 31), AVX512_VNNI (ECX 11).
            let ebx = (1 << 16) | (1 << 17) | (1 << 30) | (1 << 31);
            xcr0 & 0xE6 == 0xE6 && l7.ebx & ebx == ebx && l7.ecx & (1 << 11) != 0
        }

        /// The sums `Σ w · (x − zp)` of the dense rows of `ws` (`sums.len()` of them, each `x.len()` long) against
        /// the int8 input `x` (zero point `zp`), with AVX-512 VNNI, into `sums`; `false`, computing nothing, when
        /// the CPU lacks it (or the compiler: before Rust 1.89, see build.rs), the input is empty or `ws` is short.
        #[inline(always)]
        pub(in crate::ops) fn rows_int8(
            ws: &[u8],
            (x, zp): (&[u8], i32),
            sums: &mut [i32],
        ) -> bool {
            #[cfg(slimnet_avx512)]
            if !x.is_empty() && ws.len() / x.len() >= sums.len() && vnni() {
                // SAFETY: `vnni()` found AVX-512 F, BW and VNNI supported by the CPU and enabled by the OS; `ws`
                // holds `sums.len()` rows of `x.len()` bytes.
                unsafe { rows_vnni(ws, (x, zp), sums) };
                return true;
            }
            let _ = (ws, x, zp, &sums);
            false
        }

        /// [`crate::quant::requantize_run`], compiled for AVX-512 where the CPU has it (the compiler then
        /// vectorizes its 64-bit multiply-adds and variable shifts), as it is elsewhere.
        #[inline(always)]
        pub(crate) fn requantize_run(
            sums: &[i32],
            words: crate::quant::Words,
            packed: (i32, i32),
            ys: &mut [u8],
        ) -> usize {
            #[cfg(slimnet_avx512)]
            if vnni() {
                // SAFETY: `vnni()` found AVX-512 F, DQ, BW and VL supported by the CPU and enabled by the OS.
                return unsafe { requantize_avx512(sums, words, packed, ys) };
            }
            crate::quant::requantize_run(sums, words, packed, ys)
        }

        /// [`requantize_run`]'s AVX-512 build.
        #[cfg(slimnet_avx512)]
        #[allow(clippy::incompatible_msrv)] // compiled only by Rust ≥ 1.89 (build.rs), where these are stable
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
        unsafe fn requantize_avx512(
            sums: &[i32],
            words: crate::quant::Words,
            packed: (i32, i32),
            ys: &mut [u8],
        ) -> usize {
            crate::quant::requantize_run(sums, words, packed, ys)
        }

        /// [`crate::ops::columns::sums_plain`] with AVX-512 VNNI where the CPU has it (and the compiler: see
        /// build.rs), returning `true`; `false`, computing nothing, otherwise, when `matrix` is shorter than the
        /// input's groups' blocks or the tile reaches past a block, or `tile` is not a kernel's size.
        #[inline(always)]
        pub(in crate::ops) fn columns_int8(
            (matrix, stride, chunk): (&[u8], usize, usize),
            x: &[u8],
            tile: usize,
            sums: &mut [i32; crate::ops::columns::MAX_TILE * 16],
        ) -> bool {
            #[cfg(slimnet_avx512)]
            if vnni() {
                let blocks = x.len().div_ceil(4).checked_mul(stride);
                let base = chunk * 64;
                if blocks.is_none_or(|b| b > matrix.len()) || base + 64 * tile > stride {
                    return false;
                }
                let at = (matrix, stride, base);
                macro_rules! tiles {
                    ($($t:literal)*) => {
                        match tile {
                            // SAFETY: `vnni()` found AVX-512 F, BW and VNNI supported by the CPU and enabled by
                            // the OS; every group's block (⌈x.len() / 4⌉ of them, `stride` bytes apart) lies
                            // inside `matrix` and the tile's `64 · tile` bytes from `base` inside a block (checked
                            // above).
                            $($t => unsafe { columns_vnni::<$t>(at, x, sums) },)*
                            _ => return false,
                        }
                    };
                }
                tiles!(2 4 6 8 10 12 14 16 18 20 22 24);
                return true;
            }
            let _ = (matrix, stride, chunk, x, tile, &sums);
            false
        }

        /// `T` registers of sums over the input's active groups. Per 64 inputs: one masked load (−128 past the
        /// input), made unsigned by an XOR, a test of its sixteen words against zero, the words stored once;
        /// then per active group one broadcast of its word and `T` VPDPBUSD against its block (sixteen outputs'
        /// four weights each). The sums stay in registers through the groups and are stored once.
        ///
        /// # Safety
        /// The CPU has AVX-512 F, BW and VNNI; `matrix` holds `⌈x.len() / 4⌉` blocks `stride` bytes apart, and
        /// `base + 64 · T ≤ stride`.
        #[cfg(slimnet_avx512)]
        #[allow(clippy::incompatible_msrv)] // compiled only by Rust ≥ 1.89 (build.rs), where these are stable
        #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
        unsafe fn columns_vnni<const T: usize>(
            (matrix, stride, base): (&[u8], usize, usize),
            x: &[u8],
            sums: &mut [i32; crate::ops::columns::MAX_TILE * 16],
        ) {
            use core::arch::x86_64::{
                _mm512_dpbusd_epi32, _mm512_loadu_si512, _mm512_mask_loadu_epi8, _mm512_set1_epi32,
                _mm512_set1_epi8, _mm512_setzero_si512, _mm512_storeu_si512,
                _mm512_test_epi32_mask, _mm512_xor_si512,
            };
            let flip = _mm512_set1_epi8(i8::MIN);
            let mut acc = [_mm512_setzero_si512(); T];
            let mut words = [0u32; 16];
            let (m, n) = (matrix.as_ptr(), x.len());
            let mut first = 0;
            while first < n {
                let left = n - first;
                let mask = if left >= 64 {
                    u64::MAX
                } else {
                    (1u64 << left) - 1
                };
                // SAFETY: the masked load reads only x[first .. first + min(64, left)], inside `x`.
                let xv =
                    unsafe { _mm512_mask_loadu_epi8(flip, mask, x.as_ptr().add(first).cast()) };
                let u = _mm512_xor_si512(xv, flip);
                let mut live = _mm512_test_epi32_mask(u, u);
                // SAFETY: `words` holds sixteen u32, 64 bytes.
                unsafe { _mm512_storeu_si512(words.as_mut_ptr().cast(), u) };
                while live != 0 {
                    let lane = live.trailing_zeros() as usize;
                    live &= live - 1;
                    let b = _mm512_set1_epi32(words[lane] as i32);
                    // SAFETY: a live lane's group g = first / 4 + lane holds an input byte, so g < ⌈n / 4⌉: its
                    // block, and the tile's 64 · T bytes from `base` inside it, lie inside `matrix`.
                    let p = unsafe { m.add((first / 4 + lane) * stride + base) };
                    for (k, a) in acc.iter_mut().enumerate() {
                        let w = unsafe { _mm512_loadu_si512(p.add(64 * k).cast()) };
                        *a = _mm512_dpbusd_epi32(*a, b, w);
                    }
                }
                first += 64;
            }
            for (k, a) in acc.into_iter().enumerate() {
                // SAFETY: T ≤ MAX_TILE: the 16 sums of register k lie inside `sums`.
                unsafe { _mm512_storeu_si512(sums.as_mut_ptr().add(16 * k).cast(), a) };
            }
        }

        /// Rows per pass of [`rows_vnni`]: each 64 inputs are loaded once for four rows.
        #[cfg(slimnet_avx512)]
        const VNNI_ROWS: usize = 4;

        /// `Σ w · (x − zp)` of each row with VPDPBUSD (unsigned × signed bytes, four products per 32-bit lane): the
        /// input made unsigned as `x + 128` (an XOR of its sign bits), so `Σ w · (x − zp) = Σ w · (x + 128) −
        /// (128 + zp) · Σ w`, the rows' `Σ w` by a second VPDPBUSD against ones. Per 64 columns one load of the
        /// input for four rows and, per row, one load and two VPDPBUSD (the AVX2 kernel takes, per 16 columns and
        /// row, a widening, a VPMADDWD and an add); the last `n % 64` columns by masked loads (zeros beyond).
        /// Sums wrap as the plain kernel's: at most 1,024 columns of products below 2^15 each stay far from it.
        /// The caller requantizes the sums in order (`Quant::outputs`): a call per output from here had cost as much
        /// as a fifth of the loop.
        ///
        /// # Safety
        /// The CPU has AVX-512 F, BW and VNNI, and `ws` holds `sums.len()` rows of `x.len()` bytes.
        #[cfg(slimnet_avx512)]
        #[allow(clippy::incompatible_msrv)] // compiled only by Rust ≥ 1.89 (build.rs), where these are stable
        #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
        unsafe fn rows_vnni(ws: &[u8], (x, zp): (&[u8], i32), sums: &mut [i32]) {
            use core::arch::x86_64::{
                __m512i, _mm512_dpbusd_epi32, _mm512_loadu_si512, _mm512_maskz_loadu_epi8,
                _mm512_reduce_add_epi32, _mm512_set1_epi8, _mm512_setzero_si512, _mm512_xor_si512,
            };
            let n = x.len();
            let (whole, left) = (n / 64, n % 64);
            let tail: u64 = (1u64 << left).wrapping_sub(1);
            let (flip, ones) = (_mm512_set1_epi8(i8::MIN), _mm512_set1_epi8(1));
            let correction = 128 + zp;
            let (xp, wp) = (x.as_ptr(), ws.as_ptr());
            let total = |a: __m512i, s: __m512i| {
                _mm512_reduce_add_epi32(a)
                    .wrapping_sub(correction.wrapping_mul(_mm512_reduce_add_epi32(s)))
            };
            let mut o = 0;
            while o < sums.len() {
                let rows = (sums.len() - o).min(VNNI_ROWS);
                // SAFETY: row `o + k` (k < rows) starts at (o + k)·n and has n bytes inside `ws` (the caller's
                // guarantee); row pointers past `rows` repeat the block's first row, whose sums are not stored.
                let r: [*const u8; VNNI_ROWS] = core::array::from_fn(|k| unsafe {
                    wp.add((o + if k < rows { k } else { 0 }) * n)
                });
                let mut a = [_mm512_setzero_si512(); VNNI_ROWS];
                let mut s = [_mm512_setzero_si512(); VNNI_ROWS];
                for j in 0..whole {
                    // SAFETY: 64·j + 64 ≤ n: the loads lie inside `x` and each row.
                    let xu = unsafe {
                        _mm512_xor_si512(_mm512_loadu_si512(xp.add(64 * j).cast()), flip)
                    };
                    for k in 0..VNNI_ROWS {
                        let w = unsafe { _mm512_loadu_si512(r[k].add(64 * j).cast()) };
                        a[k] = _mm512_dpbusd_epi32(a[k], xu, w);
                        s[k] = _mm512_dpbusd_epi32(s[k], ones, w);
                    }
                }
                if left > 0 {
                    // SAFETY: the masked loads read only the last `left` bytes of `x` and of each row.
                    let xv = unsafe { _mm512_maskz_loadu_epi8(tail, xp.add(64 * whole).cast()) };
                    let xu = _mm512_xor_si512(xv, flip);
                    for k in 0..VNNI_ROWS {
                        let w =
                            unsafe { _mm512_maskz_loadu_epi8(tail, r[k].add(64 * whole).cast()) };
                        a[k] = _mm512_dpbusd_epi32(a[k], xu, w);
                        s[k] = _mm512_dpbusd_epi32(s[k], ones, w);
                    }
                }
                for (k, d) in sums.iter_mut().skip(o).take(rows).enumerate() {
                    *d = total(a[k], s[k]);
                }
                o += rows;
            }
        }

        /// Rows per pass of [`rows_avx2`]: each 16 columns of the widened input are loaded once for four rows.
        const ROWS: usize = 4;

        /// [`crate::ops::dot::rows_wide_plain`] with AVX2: per 16 columns, one load of the widened input and per row
        /// one VPMOVSXBW of 16 weights, one VPMADDWD and one VPADDD (the compiler's own vectorization of the
        /// plain loop used 128-bit multiplies and reloaded the input for every row: 1.4× slower, BENCHMARKS.md).
        /// The last `n % 16` columns and the last `rows % 4` rows run the plain arithmetic.
        #[target_feature(enable = "avx2")]
        unsafe fn rows_avx2<F: Fn(i32, usize) -> u8>(ws: &[u8], c: &[i16], y: &mut [u8], f: F) {
            use core::arch::x86_64::{
                __m256i, _mm256_add_epi32, _mm256_castsi256_si128, _mm256_cvtepi8_epi16,
                _mm256_extracti128_si256, _mm256_loadu_si256, _mm256_madd_epi16,
                _mm256_setzero_si256, _mm_add_epi32, _mm_cvtsi128_si32, _mm_loadu_si128,
                _mm_shuffle_epi32,
            };
            let n = c.len();
            if n == 0 {
                return crate::ops::dot::rows_wide_plain(ws, c, y, f);
            }
            let whole = n - n % 16;
            let tail = |row: &[u8], acc: i32| {
                let (r, x) = (
                    row.get(whole..n).unwrap_or(&[]),
                    c.get(whole..n).unwrap_or(&[]),
                );
                r.iter().zip(x).fold(acc, |a, (&w, &v)| {
                    a.wrapping_add(i32::from(w as i8) * i32::from(v))
                })
            };
            let hsum = |v: __m256i| -> i32 {
                let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
                let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
                _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s)))
            };
            let mut blocks = ws.chunks_exact(ROWS * n).zip(y.chunks_exact_mut(ROWS));
            let mut o = 0;
            for (block, ys) in &mut blocks {
                // Indexed, not `get`: `block` is exactly ROWS · n bytes, and the loads below rely on every row
                // being n long (a row cut short would be a panic, never a read past it).
                let rows: [&[u8]; ROWS] = core::array::from_fn(|r| &block[r * n..(r + 1) * n]);
                let mut acc = [_mm256_setzero_si256(); ROWS];
                let mut j = 0;
                while j < whole {
                    // SAFETY: j + 16 ≤ whole ≤ n = c.len() = each row's length: the 32-byte load of `c` and the
                    // 16-byte loads of the rows lie inside them (unaligned loads).
                    unsafe {
                        let x = _mm256_loadu_si256(c.as_ptr().add(j).cast());
                        for (a, row) in acc.iter_mut().zip(rows) {
                            let w =
                                _mm256_cvtepi8_epi16(_mm_loadu_si128(row.as_ptr().add(j).cast()));
                            *a = _mm256_add_epi32(*a, _mm256_madd_epi16(w, x));
                        }
                    }
                    j += 16;
                }
                for (r, (d, a)) in ys.iter_mut().zip(acc).enumerate() {
                    *d = f(tail(rows[r], hsum(a)), o + r);
                }
                o += ROWS;
            }
            let rest = ws.get(o * n..).unwrap_or(&[]);
            for (k, (d, row)) in y.iter_mut().skip(o).zip(rest.chunks_exact(n)).enumerate() {
                *d = f(tail(row, 0).wrapping_add(dot_whole(row, c, whole)), o + k);
            }
        }

        /// Σ over the first `whole` columns, plainly (the rows left after the blocks of four).
        fn dot_whole(row: &[u8], c: &[i16], whole: usize) -> i32 {
            let (r, x) = (
                row.get(..whole).unwrap_or(&[]),
                c.get(..whole).unwrap_or(&[]),
            );
            r.iter().zip(x).fold(0i32, |a, (&w, &v)| {
                a.wrapping_add(i32::from(w as i8) * i32::from(v))
            })
        }
    }
}

pub(crate) use imp::*;

/// SMLABB: `acc + a.lo · b.lo` (signed 16-bit lanes, wrapping; plain Rust: LLVM selects SMLABB for it on cores
/// with DSP instructions).
#[inline(always)]
pub(crate) fn smlabb(a: u32, b: u32, acc: i32) -> i32 {
    acc.wrapping_add(i32::from(a as u16 as i16) * i32::from(b as u16 as i16))
}

/// SMLATT: `acc + a.hi · b.hi` (signed 16-bit lanes, wrapping; plain Rust: LLVM selects SMLATT for it).
#[inline(always)]
pub(crate) fn smlatt(a: u32, b: u32, acc: i32) -> i32 {
    acc.wrapping_add(((a as i32) >> 16) * ((b as i32) >> 16))
}
