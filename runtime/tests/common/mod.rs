//! Builds `.slim` files by hand, byte by byte, from `FORMAT.md` alone (no writer from the compress crate), so that
//! the reader is checked against the specification rather than against its own writer.
#![allow(dead_code)]

pub fn u16le(v: u16) -> [u8; 2] {
    v.to_le_bytes()
}
pub fn u32le(v: u32) -> [u8; 4] {
    v.to_le_bytes()
}

pub fn pad4(v: &mut Vec<u8>) {
    while v.len() % 4 != 0 {
        v.push(0);
    }
}

/// Assembles header + table + sections and seals the CRC.
pub fn file(flags: u16, sections: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let mut out = b"SLIM".to_vec();
    out.extend(u16le(2));
    out.extend(u16le(flags));
    out.extend([0; 16]);
    let mut offset = 24 + 12 * sections.len();
    for (kind, s) in sections {
        out.extend(u32le(*kind));
        out.extend(u32le(offset as u32));
        out.extend(u32le(s.len() as u32));
        offset += s.len();
    }
    for (_, s) in sections {
        out.extend(s);
    }
    let len = out.len() as u32;
    out[8..12].copy_from_slice(&u32le(len));
    out[16..20].copy_from_slice(&u32le(sections.len() as u32));
    reseal(&mut out);
    out
}

/// Recomputes the CRC after a deliberate edit.
pub fn reseal(bytes: &mut [u8]) {
    let crc = slimnet_runtime::crc32(&bytes[16..]);
    bytes[12..16].copy_from_slice(&u32le(crc));
}

/// A tensor record: rank, zero point, dims (up to 4), scale.
pub fn tensor(dims: &[u16], zero_point: i8, scale: f32) -> Vec<u8> {
    let mut t = vec![dims.len() as u8, zero_point as u8, 0, 0];
    for i in 0..4 {
        t.extend(u16le(dims.get(i).copied().unwrap_or(0)));
    }
    t.extend(scale.to_le_bytes());
    t
}

/// No second input.
pub const NONE: u16 = 0xFFFF;

/// An operator record: code, activation, clamp, inputs, output, weights section, then the parameters.
#[allow(clippy::too_many_arguments)]
pub fn op(
    code: u8,
    act: u8,
    range: (i8, i8),
    inputs: [u16; 2],
    output: u16,
    section: u16,
    params: &[u8],
) -> Vec<u8> {
    let mut r = vec![code, act, range.0 as u8, range.1 as u8];
    for v in [inputs[0], inputs[1], output, section] {
        r.extend(u16le(v));
    }
    r.extend(params);
    r
}

/// A window's 8 parameter bytes: kernel h, w; stride h, w; pads top, left, bottom, right.
pub fn window(k: [u8; 2], s: [u8; 2], pad: [u8; 4]) -> Vec<u8> {
    vec![k[0], k[1], s[0], s[1], pad[0], pad[1], pad[2], pad[3]]
}

/// A graph section: tensors, operator records, input and output ids, mean/std, optional input table.
pub fn graph(
    tensors: &[Vec<u8>],
    ops: &[Vec<u8>],
    (input, output): (u16, u16),
    (mean, std): (f32, f32),
    table: Option<[u8; 256]>,
) -> Vec<u8> {
    let mut g = Vec::new();
    g.extend(u16le(tensors.len() as u16));
    g.extend(u16le(ops.len() as u16));
    g.extend(u16le(input));
    g.extend(u16le(output));
    g.extend(u32le(u32::from(table.is_some())));
    g.extend(mean.to_le_bytes());
    g.extend(std.to_le_bytes());
    for t in tensors {
        g.extend(t);
    }
    for o in ops {
        g.extend(o);
    }
    if let Some(t) = table {
        g.extend(t);
    }
    pad4(&mut g);
    g
}

/// A dense weights section: encoding 1 (f32) or 2 (int8) with its head, then `body` (biases, quantization,
/// scales and weights, as the caller lays them out per FORMAT.md).
pub fn weights_head(encoding: u8, rows: u32, fan_in: u32) -> Vec<u8> {
    let mut s = vec![encoding, 0, 0, 0];
    s.extend(u32le(rows));
    s.extend(u32le(fan_in));
    s
}

/// The tiny network used across the runtime's tests (f32 path only):
/// input 2×2×1 → RESHAPE [4] → dense 4→3 ReLU (dense f32) → dense 3→2 (sparse, f32 codebook, Huffman).
///
/// fc1 weights rows: [1, 0, 0, 0], [0, 1, 0, -1], [0.5, 0.5, 0.5, 0.5]; bias [0, 0.25, -1].
/// fc2 kept weights: (0,0)=c0, (0,2)=c1, (1,1)=c1 with codebook [2.0, -1.0]; bias [0.5, 0].
pub fn tiny_f32(huffman: bool) -> Vec<u8> {
    tiny_f32_coded(huffman, huffman)
}

/// [`tiny_f32`] with each sparse stream of fc2 Huffman coded or bit-packed on its own.
pub fn tiny_f32_coded(position_huffman: bool, index_huffman: bool) -> Vec<u8> {
    let g = graph(
        &[
            tensor(&[2, 2, 1], 0, 0.0),
            tensor(&[4], 0, 0.0),
            tensor(&[3], 0, 0.0),
            tensor(&[2], 0, 0.0),
        ],
        &[
            op(7, 0, (-128, 127), [0, NONE], 1, 0, &[]),
            op(1, 1, (-128, 127), [1, NONE], 2, 1, &[]),
            op(1, 0, (-128, 127), [2, NONE], 3, 2, &[]),
        ],
        (0, 3),
        // Pixels pass through as their values: (p/255 - 0)/(1/255) = p.
        (0.0, 1.0 / 255.0),
        None,
    );
    let mut fc1 = weights_head(1, 3, 4);
    for b in [0.0f32, 0.25, -1.0] {
        fc1.extend(b.to_le_bytes());
    }
    for w in [1.0f32, 0., 0., 0., 0., 1., 0., -1., 0.5, 0.5, 0.5, 0.5] {
        fc1.extend(w.to_le_bytes());
    }
    // fc2: positions of (0,0), (0,2), (1,1) in a 2×3 matrix: 0, 2, 4. With r = 2 bits (filler = 3):
    // gaps 0 (pos 0), 1 (pos 2), 1 (pos 4). Indices 0, 1, 1 with b = 1 bit.
    let mut fc2 = weights_head(3, 2, 3);
    fc2[1] = u8::from(position_huffman) | u8::from(index_huffman) << 2;
    (fc2[2], fc2[3]) = (1, 2);
    for b in [0.5f32, 0.0] {
        fc2.extend(b.to_le_bytes());
    }
    fc2.extend(1.0f32.to_le_bytes()); // the codebook's scale
    fc2.extend([1, 0, 0, 0]); // f32 codebook
    fc2.extend(u32le(2)); // k
    fc2.extend(u32le(3)); // position symbols
    fc2.extend(u32le(3)); // kept weights
                          // Huffman position lengths for symbols 0..4: 0→1 bit, 1→1 bit (codes 0, 1): positions 0,1,1 → 0110_0000;
                          // bit-packed 2-bit positions 00 01 01 → 0001_0100. Indices 0,1,1 are 0110_0000 either way (1-bit codes).
    let pos = vec![if position_huffman {
        0b0110_0000
    } else {
        0b0001_0100
    }];
    let idx = vec![0b0110_0000u8];
    fc2.extend(u32le(pos.len() as u32));
    fc2.extend(u32le(idx.len() as u32));
    for c in [2.0f32, -1.0] {
        fc2.extend(c.to_le_bytes());
    }
    if position_huffman {
        fc2.extend([1, 1, 0, 0]); // position code lengths (2^2 symbols)
    }
    if index_huffman {
        fc2.extend([1, 1]); // index code lengths (2^1 symbols)
    }
    pad4(&mut fc2);
    fc2.extend(&pos);
    pad4(&mut fc2);
    fc2.extend(&idx);
    pad4(&mut fc2);
    file(1, &[(1, g), (2, fc1), (2, fc2)])
}

/// Expected logits of [`tiny_f32`] for pixels `p`.
pub fn tiny_expected(p: [u8; 4]) -> [f32; 2] {
    let x = p.map(f32::from);
    let h = [
        (x[0]).max(0.0),
        (x[1] - x[3] + 0.25).max(0.0),
        (0.5 * (x[0] + x[1] + x[2] + x[3]) - 1.0).max(0.0),
    ];
    [2.0 * h[0] - h[2] + 0.5, -h[1]]
}

/// An integer-path network: input [4] → dense 4→2 (int8, per-channel) with a known requantization.
///
/// Input table: pixel p → p − 128 (zero point −128, scale 1/255 with mean 0, std 1).
/// Weights rows [1, 2, 3, 4] and [−1, 0, 0, 1]; zp_in −128, zp_out 0; multiplier 2^30 (0.5), shift −1 (→ 0.25);
/// biases [8, −4]; no ReLU.
pub fn tiny_int() -> Vec<u8> {
    let table: [u8; 256] = std::array::from_fn(|p| (p as i32 - 128) as i8 as u8);
    let g = graph(
        &[tensor(&[4], -128, 1.0 / 255.0), tensor(&[2], 0, 0.25)],
        &[op(1, 0, (-128, 127), [0, NONE], 1, 1, &[])],
        (0, 1),
        (0.0, 1.0),
        Some(table),
    );
    let mut l = weights_head(2, 2, 4);
    l.extend(u32le(1));
    for m in [1i32 << 30, 1 << 30] {
        l.extend(m.to_le_bytes());
    }
    for s in [-1i32, -1] {
        l.extend(s.to_le_bytes());
    }
    for b in [8i32, -4] {
        l.extend(b.to_le_bytes());
    }
    for w in [1i8, 2, 3, 4, -1, 0, 0, 1] {
        l.push(w as u8);
    }
    file(2, &[(1, g), (2, l)])
}
