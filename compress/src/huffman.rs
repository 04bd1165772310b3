//! Canonical Huffman codes, length-limited to the runtime's 15 bits.
//!
//! Written here rather than taken from a crate: the runtime decodes with its own dependency-free canonical
//! decoder, so the writer must produce exactly its convention (codes in (length, symbol) order, MSB-first bits,
//! only the length table stored), which general-purpose Huffman crates do not expose.

use slimnet_runtime::MAX_CODE_BITS;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Code length per symbol (0 for symbols that never occur), at most [`MAX_CODE_BITS`].
pub fn code_lengths(freqs: &[u64]) -> Vec<u8> {
    let mut freqs: Vec<u64> = freqs.to_vec();
    loop {
        let lengths = unlimited_lengths(&freqs);
        if lengths.iter().all(|&l| usize::from(l) <= MAX_CODE_BITS) {
            return lengths;
        }
        // Flatten the distribution and try again: rare symbols move up, the tree gets shallower.
        for f in freqs.iter_mut().filter(|f| **f > 0) {
            *f = (*f).div_ceil(2);
        }
    }
}

fn unlimited_lengths(freqs: &[u64]) -> Vec<u8> {
    let used: Vec<usize> = (0..freqs.len()).filter(|&s| freqs[s] > 0).collect();
    let mut lengths = vec![0u8; freqs.len()];
    match used.len() {
        0 => return lengths,
        1 => {
            lengths[used[0]] = 1;
            return lengths;
        }
        _ => {}
    }
    // Nodes: leaves 0..n, internal nodes after; parent links give depths.
    let mut parent = vec![usize::MAX; 2 * used.len()];
    let mut heap: BinaryHeap<Reverse<(u64, usize)>> = used
        .iter()
        .enumerate()
        .map(|(i, &s)| Reverse((freqs[s], i)))
        .collect();
    let mut next = used.len();
    while heap.len() > 1 {
        let Reverse((fa, a)) = heap.pop().expect("two nodes");
        let Reverse((fb, b)) = heap.pop().expect("two nodes");
        parent[a] = next;
        parent[b] = next;
        heap.push(Reverse((fa + fb, next)));
        next += 1;
    }
    for (i, &s) in used.iter().enumerate() {
        let mut depth = 0u32;
        let mut n = i;
        while parent[n] != usize::MAX {
            n = parent[n];
            depth += 1;
        }
        lengths[s] = depth.min(255) as u8;
    }
    lengths
}

/// The canonical code of every symbol: `(code, length)`, codes assigned in (length, symbol) order.
pub fn canonical_codes(lengths: &[u8]) -> Vec<(u32, u8)> {
    let mut order: Vec<usize> = (0..lengths.len()).filter(|&s| lengths[s] > 0).collect();
    order.sort_by_key(|&s| (lengths[s], s));
    let mut codes = vec![(0u32, 0u8); lengths.len()];
    let (mut code, mut prev_len) = (0u32, 0u8);
    for (k, &s) in order.iter().enumerate() {
        let l = lengths[s];
        if k > 0 {
            code = (code + 1) << (l - prev_len);
        }
        codes[s] = (code, l);
        prev_len = l;
    }
    codes
}

/// Writes bits MSB-first.
#[derive(Default)]
pub struct BitWriter {
    bytes: Vec<u8>,
    bits: u32,
}

impl BitWriter {
    /// Appends the low `width` bits of `value`, most significant first.
    pub fn put(&mut self, value: u32, width: u8) {
        for i in (0..width).rev() {
            if self.bits.is_multiple_of(8) {
                self.bytes.push(0);
            }
            let bit = (value >> i) & 1;
            let last = self.bytes.last_mut().expect("pushed above");
            *last |= (bit as u8) << (7 - self.bits % 8);
            self.bits += 1;
        }
    }

    /// The bytes (the last one zero-padded).
    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

/// Bytes of `symbols` coded with `lengths`' canonical code.
pub fn encode(symbols: &[u32], lengths: &[u8]) -> Vec<u8> {
    let codes = canonical_codes(lengths);
    let mut w = BitWriter::default();
    for &s in symbols {
        let (c, l) = codes[s as usize];
        w.put(c, l);
    }
    w.finish()
}

/// Bytes of `symbols` as fixed-width `width`-bit fields.
pub fn pack(symbols: &[u32], width: u8) -> Vec<u8> {
    let mut w = BitWriter::default();
    for &s in symbols {
        w.put(s, width);
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_satisfy_kraft_and_favour_frequent_symbols() {
        let freqs = [50, 20, 10, 10, 5, 3, 1, 1, 0];
        let l = code_lengths(&freqs);
        assert_eq!(l[8], 0);
        let kraft: f64 = l
            .iter()
            .filter(|&&x| x > 0)
            .map(|&x| 0.5f64.powi(i32::from(x)))
            .sum();
        assert!(
            (kraft - 1.0).abs() < 1e-12,
            "a Huffman code is complete: {kraft}"
        );
        assert!(l[0] <= l[1] && l[1] <= l[4] && l[4] <= l[7]);
    }

    #[test]
    fn lengths_are_limited_to_15_bits() {
        // Fibonacci frequencies make the deepest possible tree.
        let mut f = vec![1u64, 1];
        while f.len() < 40 {
            let n = f[f.len() - 1] + f[f.len() - 2];
            f.push(n);
        }
        let l = code_lengths(&f);
        assert!(l.iter().all(|&x| (1..=15).contains(&x)), "{l:?}");
        let kraft: f64 = l.iter().map(|&x| 0.5f64.powi(i32::from(x))).sum();
        assert!(kraft <= 1.0 + 1e-12);
    }

    #[test]
    fn canonical_codes_are_prefix_free_and_ordered() {
        let l = [2u8, 1, 3, 3];
        assert_eq!(
            canonical_codes(&l),
            vec![(0b10, 2), (0b0, 1), (0b110, 3), (0b111, 3)]
        );
        assert_eq!(encode(&[1, 0, 2, 3, 1], &l), vec![0b0101_1011, 0b1000_0000]);
    }

    #[test]
    fn single_symbol_streams_get_a_one_bit_code() {
        assert_eq!(code_lengths(&[0, 7, 0]), vec![0, 1, 0]);
    }
}
