//! `slimnet-runtime`: the `no_std`, allocation-free inference engine for `.slim` files.
//!
//! This crate has no dependencies and never allocates, so that it builds for bare-metal targets as it is. The
//! `.slim` reader and the kernels arrive with the runtime issue; today it only fixes the crate's shape.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
