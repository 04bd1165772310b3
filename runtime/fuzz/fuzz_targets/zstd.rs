//! Fuzzes the runtime's zstd decoder: the first two bytes give the output length, the rest is the frame. No input
//! may panic, whatever the frame claims.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let len = usize::from(u16::from_le_bytes([data[0], data[1]]));
    let mut out = vec![0u8; len];
    let _ = slimnet_runtime::zstd_decompress(&data[2..], &mut out);
});
