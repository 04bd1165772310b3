//! Writes sparse shared-weight `.slim` files of a trained MLP (magnitude pruning without retraining, see
//! `slimnet_compress::naive`) for measuring the runtime's sparse kernels:
//!
//!     cargo run --release -p slimnet-compress --example sparse_demo -- MODEL.safetensors OUT_DIR [KEEP1,KEEP2,…] [BITS] [POSITION_BITS]
//!
//! Defaults: Deep Compression's kept fractions for LeNet-300-100 (8 %, 9 %, 26 %), 5-bit indices and 5-bit
//! relative positions (the paper's choices). Writes
//! `OUT_DIR/sparse-packed.slim` and `OUT_DIR/sparse-huffman.slim` (both numeric paths).
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!(
            "usage: sparse_demo MODEL.safetensors OUT_DIR [KEEP1,KEEP2,...] [BITS] [POSITION_BITS]"
        );
        std::process::exit(2);
    }
    let model = slimnet_models::Model::load(&PathBuf::from(&args[1]), None)?;
    let keep: Vec<f64> = match args.get(3) {
        Some(k) => k.split(',').map(str::parse).collect::<Result<_, _>>()?,
        None => vec![0.08, 0.09, 0.26],
    };
    let bits: u8 = args.get(4).map_or(Ok(5), |b| b.parse())?;
    let position_bits: u8 = args.get(5).map_or(Ok(5), |b| b.parse())?;
    let data = slimnet_models::Mnist::load(&slimnet_models::data::default_dir())?;
    let out = PathBuf::from(&args[2]);
    for (name, huffman) in [("sparse-packed.slim", false), ("sparse-huffman.slim", true)] {
        let (file, _) = slimnet_compress::naive::prune_and_share(
            &model,
            &keep,
            bits,
            position_bits,
            huffman,
            true,
            &data.train,
        )?;
        let bytes = file.to_bytes()?;
        std::fs::write(out.join(name), &bytes)?;
        println!("{}: {} bytes", out.join(name).display(), bytes.len());
    }
    Ok(())
}
