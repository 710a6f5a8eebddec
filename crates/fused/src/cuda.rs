//! burn-cuda takes the default bodies: cubecl runs the composition, and under autodiff each
//! fused operation is still one node whose backward runs the reference formulas.

use crate::FusedBackend;
use burn::backend::Cuda;
use burn::tensor::{bf16, f16};

impl FusedBackend for Cuda<f32> {}
impl FusedBackend for Cuda<bf16> {}
impl FusedBackend for Cuda<f16> {}
