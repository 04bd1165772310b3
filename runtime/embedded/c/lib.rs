//! The slimnet runtime's C API (`runtime/include/slimnet.h`) as a static library for bare-metal targets. On a
//! hosted target the runtime's own `cargo rustc --crate-type staticlib` does this with std's panic handler; bare
//! metal has no std, so this crate re-exports the API and supplies the handler. The runtime never panics on any
//! input (it is fuzzed for that); should it ever, the core stops on an undefined instruction, which a debugger
//! (or QEMU) reports, instead of running on in an unknown state.
#![no_std]

pub use slimnet_runtime::capi::*;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {
        // SAFETY: `udf` raises a fault; nothing else.
        unsafe { core::arch::asm!("udf #0") };
    }
}
