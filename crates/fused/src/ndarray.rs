//! burn-ndarray takes the default bodies (it is only a comparison backend of `bench clip`).

impl crate::FusedBackend for burn::backend::NdArray {}
