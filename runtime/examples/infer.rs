//! Runs a `.slim` model N times on one image (for instruction counting with callgrind):
//!
//!     infer MODEL.slim N [int8] [arena] < IMAGE.raw   (IMAGE.raw: the model's input size in raw u8 pixels;
//!                                                  arena: decode Huffman streams into the arena)
//!
//! `bench/instructions.sh` runs it with N = 1 and N = 11 under `valgrind --tool=callgrind`: the difference over 10
//! is the cost of one inference, free of process start-up and model loading.
use std::io::Read;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: infer MODEL.slim N [int8] < IMAGE.raw");
        std::process::exit(2);
    }
    let bytes = std::fs::read(&args[1]).expect("model file");
    let n: usize = args[2].parse().expect("N");
    let integer = args.iter().skip(3).any(|a| a == "int8");
    #[allow(unused_mut)] // only set mutably with the arena-decoding feature
    let mut model = slimnet_runtime::Model::from_bytes(&bytes).expect("valid model");
    if args.iter().skip(3).any(|a| a == "arena") {
        #[cfg(feature = "arena-decoding")]
        model.set_stream_decoding(slimnet_runtime::StreamDecoding::Arena);
        #[cfg(not(feature = "arena-decoding"))]
        panic!("build the example with --features arena-decoding");
    }
    let mut image = Vec::new();
    std::io::stdin()
        .read_to_end(&mut image)
        .expect("image on stdin");
    let mut arena = vec![0u8; model.arena_len().max(model.arena_len_int8())];
    let mut class = 0;
    for _ in 0..n {
        class = if integer {
            model.predict_int8(&image, &mut arena)
        } else {
            model.predict_u8(&image, &mut arena)
        }
        .expect("runs");
    }
    println!("{class}");
}
