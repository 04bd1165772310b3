//! Run-time fault detection: after a model is loaded, `Model::verify` catches every single-bit flip of its bytes
//! (header, table, graph, every weights section) and names the region to reload; an intact image verifies.

mod common;
use common::*;
use slimnet_runtime::{Error, Model, Section};

fn files() -> Vec<(String, Vec<u8>)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![
        ("tiny-f32".to_string(), tiny_f32(true)),
        ("tiny-int".to_string(), tiny_int()),
    ];
    for path in [
        "fuzz/corpus/slim/ds_cnn-int8.slim",
        "fuzz/corpus/slim/resnet-f32.slim",
        "fuzz/corpus/slim/mlp-huffman.slim",
        "embedded/models/lenet-300-100.slim",
        "embedded/models/lenet-5.slim",
    ] {
        files.push((path.to_string(), std::fs::read(root.join(path)).unwrap()));
    }
    files
}

#[test]
fn every_single_bit_flip_after_load_is_detected_and_located() {
    for (name, bytes) in files() {
        let m = Model::from_bytes(&bytes).unwrap();
        assert_eq!(m.verify(), Ok(()), "{name}");
        assert_eq!(m.verify_image(&bytes.clone()), Ok(()), "{name}");
        // Every bit of the small files, an evenly spaced 40,000 of the large ones (debug builds are slow).
        let step = (bytes.len() * 8).div_ceil(40_000);
        let mut image = bytes.clone();
        for bit in (0..bytes.len() * 8).step_by(step) {
            image[bit / 8] ^= 1 << (bit % 8);
            let e = m.verify_image(&image);
            image[bit / 8] ^= 1 << (bit % 8);
            let Err(Error::Fault {
                section,
                offset,
                len,
            }) = e
            else {
                panic!("{name}: bit {bit} flipped, verify gave {e:?}");
            };
            assert!(
                (offset..offset + len).contains(&(bit / 8)),
                "{name}: bit {bit} located at {offset}+{len}"
            );
            // A weights region belongs to the operator whose stored weights it holds.
            if let Section::Weights(op) = section {
                let (at, n) = m.operator(usize::from(op)).unwrap().stored_weights.unwrap();
                assert!(
                    offset <= at && at + n <= offset + len,
                    "{name}: operator {op}"
                );
            }
            match bit / 8 {
                0..16 => assert_eq!(section, Section::Header, "{name}: bit {bit}"),
                _ => assert_ne!(section, Section::Header, "{name}: bit {bit}"),
            }
        }
        assert_eq!(m.verify_image(&image), Ok(()));
    }
}

#[test]
fn a_weights_flip_names_its_operator_and_other_images_are_faults() {
    let bytes = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("embedded/models/lenet-300-100.slim"),
    )
    .unwrap();
    let m = Model::from_bytes(&bytes).unwrap();
    // The last byte lies in the last operator's weights.
    let mut image = bytes.clone();
    *image.last_mut().unwrap() ^= 0x10;
    let e = m.verify_image(&image).unwrap_err();
    let last = m.op_count() - 1;
    let weighted = (0..m.op_count())
        .rev()
        .find(|&i| m.operator(i).unwrap().stored_weights.is_some())
        .unwrap();
    assert!(
        matches!(e, Error::Fault { section: Section::Weights(op), .. } if usize::from(op) == weighted),
        "{e:?} (last operator {last})"
    );
    let text = e.to_string();
    assert!(
        text.contains("changed after load") && text.contains("reload"),
        "{text}"
    );
    // A shorter or longer image, or another model, is not the loaded file.
    assert!(m.verify_image(&bytes[..bytes.len() - 1]).is_err());
    assert!(m.verify_image(&tiny_int()).is_err());
    // An empty model has nothing to verify.
    assert_eq!(Model::EMPTY.verify(), Err(Error::PathUnavailable));
}
