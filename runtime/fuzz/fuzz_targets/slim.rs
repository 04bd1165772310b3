//! Fuzzes `Model::from_bytes` and, for every file it accepts, both numeric paths through every entry point
//! (tensors and pixels), the integer path prepared (`Model::prepare_int8`), and `verify` (of the file and of a changed image): no input may panic. The CRC is re-sealed on a copy as well, so mutations reach the
//! structural checks behind the checksum.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slimnet_runtime::{crc32, Model};

fn exercise(bytes: &[u8]) {
    let Ok(m) = Model::from_bytes(bytes) else {
        return;
    };
    let mut arena = [0u8; 1 << 17];
    let n = m.input_len().min(4096);
    let (pixels, tensor, real) = ([128u8; 4096], [3i8; 4096], [0.5f32; 4096]);
    let mut out = [0f32; 1024];
    let mut q = [0i8; 1024];
    let k = m.output_len().min(1024);
    if m.arena_len() <= arena.len() {
        let _ = m.run_u8(&pixels[..n], &mut arena, &mut out[..k]);
        let _ = m.run_f32(&real[..n], &mut arena, &mut out[..k]);
    }
    if m.arena_len_int8() <= arena.len() {
        let _ = m.run_u8_int8(&pixels[..n], &mut arena, &mut q[..k]);
        let _ = m.run_int8(&tensor[..n], &mut arena, &mut q[..k]);
    }
    for i in 0..m.op_count() {
        let _ = m.operator(i);
    }
    // Prepared (Model::prepare_int8) and run again.
    let mut memory = [0u8; 1 << 17];
    let mut p = m.clone();
    let prepared = p.prepared_len_int8() <= memory.len() && p.prepare_int8(&mut memory).is_ok();
    if prepared && p.arena_len_int8() <= arena.len() {
        let _ = p.run_int8(&tensor[..n], &mut arena, &mut q[..k]);
    }
    assert!(m.verify().is_ok(), "a file that loads verifies");
    let mut image = bytes.to_vec();
    if let Some(b) = image.get_mut(bytes.len() / 2) {
        *b ^= 0x20;
        assert!(m.verify_image(&image).is_err(), "a changed byte is a fault");
    }
}

fuzz_target!(|data: &[u8]| {
    exercise(data);
    if data.len() >= 16 {
        let mut sealed = data.to_vec();
        let crc = crc32(&sealed[16..]);
        sealed[12..16].copy_from_slice(&crc.to_le_bytes());
        exercise(&sealed);
    }
});
