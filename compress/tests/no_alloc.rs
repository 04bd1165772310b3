//! The runtime never allocates: a counting global allocator sees zero allocations across `from_bytes` and every
//! run entry point on real exported models (dense f32, dense int8, both paths).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn from_bytes_and_run_never_allocate() {
    use slimnet_compress::{export, DenseEncoding};
    use slimnet_models::fit::{fit, FitRequest};
    use slimnet_models::{train::Silent, Mnist, TrainConfig};
    let data = Mnist::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist"))
        .unwrap();
    for arch in ["lenet-300-100", "lenet-5"] {
        let req = FitRequest {
            arch: arch.into(),
            batch_norm: false,
            config: TrainConfig {
                epochs: 1,
                ..TrainConfig::recipe()
            },
            val: 100,
            train_limit: Some(300),
            checkpoint: None,
            resume: false,
        };
        let model = fit(&data, &req, &mut Silent).unwrap().model;
        for enc in [DenseEncoding::F32, DenseEncoding::Int8] {
            let bytes = export(&model, enc, &data.train, 200)
                .unwrap()
                .to_bytes()
                .unwrap();
            let image = data.test.image(0).to_vec();
            let mut arena = vec![0u8; 1 << 20];
            let mut logits = [0f32; 10];
            let mut q = [0i8; 10];
            let before = ALLOCATIONS.load(Ordering::SeqCst);
            let m = slimnet_runtime::Model::from_bytes(&bytes).unwrap();
            m.run_u8(&image, &mut arena, &mut logits).unwrap();
            let _ = m.predict_u8(&image, &mut arena).unwrap();
            if m.has_integer() {
                m.run_u8_int8(&image, &mut arena, &mut q).unwrap();
                let _ = m.predict_int8(&image, &mut arena).unwrap();
            }
            let after = ALLOCATIONS.load(Ordering::SeqCst);
            assert_eq!(after - before, 0, "{arch} {enc:?}: the runtime allocated");
        }
    }
}
