//! Matrix products on strided views through the `gemm` crate (what flex's own matmul uses).

use super::Mat;

/// Below this many multiply-adds a product runs on the calling thread: the tasks of
/// attention and the small models are already spread over the pool.
const PARALLEL_MACS: usize = 1 << 21;

/// `dst = (accumulate ? dst : 0) + scale · a · b`, `dst` row-major with row stride `dst_rs`.
///
/// # Safety
/// `dst` must be valid for writes of `a.rows × b.cols` elements at row stride `dst_rs`, not
/// overlapping `a` or `b`, and written by no one else meanwhile.
pub(crate) unsafe fn gemm(
    dst: *mut f32,
    dst_rs: usize,
    accumulate: bool,
    a: Mat,
    b: Mat,
    scale: f32,
) {
    debug_assert_eq!(a.cols, b.rows);
    let (m, n, k) = (a.rows, b.cols, a.cols);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                // SAFETY: rows of `dst` are valid (the caller's contract).
                unsafe { std::slice::from_raw_parts_mut(dst.add(i * dst_rs), n).fill(0.0) };
            }
        }
        return;
    }
    let parallel = if m * n * k >= PARALLEL_MACS && rayon::current_num_threads() > 1 {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the views are the layouts of live tensors; `dst` per the contract.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            accumulate,
            a.ptr,
            a.cs,
            a.rs,
            b.ptr,
            b.cs,
            b.rs,
            1.0,
            scale,
            false,
            false,
            false,
            parallel,
        )
    }
}
