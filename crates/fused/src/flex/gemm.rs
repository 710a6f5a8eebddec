//! Matrix products on strided views through the `gemm` crate (what flex's own matmul uses).
//! Large products are split over the rayon pool into column (or row) ranges, one serial
//! product each: on the layers' shapes (a few hundred rows) that keeps both cores busy where
//! the crate's own threading leaves one waiting (up to 1.3× faster on 2 cores,
//! `cargo xtask bench gemm`), and the order of every sum is fixed by the shapes alone.

use rayon::prelude::*;

use super::math::multiversion;
use super::{Mat, Out};

/// Below this many multiply-adds a product runs on the calling thread: the tasks of
/// attention and the small models are already spread over the pool.
const PARALLEL_MACS: usize = 1 << 21;

/// Below this many multiply-adds a product is plain loops: the `gemm` crate's packing and
/// set-up cost more than the product itself (attention over a few frames or tokens runs
/// millions of such products per run).
const SMALL_MACS: usize = 1 << 15;

/// How products are spread over threads (benchmarks compare them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// Split into one serial product per thread (what the kernels use).
    Split,
    /// The `gemm` crate's own threading (what flex's matmul does).
    GemmCrate,
}

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
    unsafe { gemm_with(Engine::Split, dst, dst_rs, accumulate, a, b, scale) }
}

/// One call of the `gemm` crate.
unsafe fn call(
    dst: *mut f32,
    dst_rs: usize,
    accumulate: bool,
    a: Mat,
    b: Mat,
    scale: f32,
    par: gemm::Parallelism,
) {
    // SAFETY: the views are the layouts of live tensors; `dst` per the caller's contract.
    unsafe {
        gemm::gemm(
            a.rows,
            b.cols,
            a.cols,
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
            par,
        )
    }
}

/// [`gemm`] with a chosen engine.
///
/// # Safety
/// As [`gemm`].
pub(crate) unsafe fn gemm_with(
    engine: Engine,
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
    if m * n * k <= SMALL_MACS && (b.cs == 1 || b.rs == 1) {
        // SAFETY: the caller's contract.
        unsafe { small(dst, dst_rs, accumulate, a, b, scale) };
        return;
    }
    let threads = rayon::current_num_threads();
    let serial = m * n * k < PARALLEL_MACS || threads == 1;
    if serial || engine == Engine::GemmCrate {
        let par = if serial {
            gemm::Parallelism::None
        } else {
            gemm::Parallelism::Rayon(0)
        };
        // SAFETY: the caller's contract.
        unsafe { call(dst, dst_rs, accumulate, a, b, scale, par) };
        return;
    }
    // Split the longer side (columns when n ≥ m / 2: each part then packs all of A but only
    // its share of B, the larger operand of a layer's product).
    let by_cols = 2 * n >= m;
    let (len, align) = if by_cols { (n, 16) } else { (m, 8) };
    let parts = threads.min(len.div_ceil(align));
    let step = len.div_ceil(parts).div_ceil(align) * align;
    let out = Out(dst);
    (0..parts).into_par_iter().for_each(|p| {
        let start = p * step;
        if start >= len {
            return;
        }
        let size = step.min(len - start);
        let out = out.get();
        // SAFETY: each part writes its own columns (rows) of dst.
        unsafe {
            let (dst, a, b) = if by_cols {
                let b = Mat {
                    ptr: b.ptr.offset(start as isize * b.cs),
                    cols: size,
                    ..b
                };
                (out.add(start), a, b)
            } else {
                let a = Mat {
                    ptr: a.ptr.offset(start as isize * a.rs),
                    rows: size,
                    ..a
                };
                (out.add(start * dst_rs), a, b)
            };
            call(
                dst,
                dst_rs,
                accumulate,
                a,
                b,
                scale,
                gemm::Parallelism::None,
            )
        }
    });
}

/// A small product in loops the compiler vectorises: rows of `b` scaled and added to the
/// output row when its
/// rows are contiguous (`b.cs == 1`), dot products of `a`'s rows with `b`'s columns when its
/// columns are (`b.rs == 1`, a transposed view such as Kᵀ). Each element is summed over k in
/// a fixed order.
///
/// # Safety
/// As [`gemm`].
unsafe fn small(dst: *mut f32, dst_rs: usize, accumulate: bool, a: Mat, b: Mat, scale: f32) {
    small_kernel(dst, dst_rs, accumulate, a, b, scale);
}

multiversion! {
    /// [`small`]'s loops compiled for the CPU's vector width once per product, not per row or
    /// dot product (attention over a few frames makes many tiny products).
    fn small_kernel(dst: *mut f32, dst_rs: usize, accumulate: bool, a: Mat, b: Mat, scale: f32) {
        // SAFETY: `small`'s contract (its only caller).
        unsafe { small_loops(dst, dst_rs, accumulate, a, b, scale) }
    }
}

#[inline(always)]
unsafe fn small_loops(dst: *mut f32, dst_rs: usize, accumulate: bool, a: Mat, b: Mat, scale: f32) {
    let (m, n, k) = (a.rows, b.cols, a.cols);
    let at = |i: usize, p: usize| unsafe { *a.ptr.offset(i as isize * a.rs + p as isize * a.cs) };
    for i in 0..m {
        // SAFETY: row i of dst, n elements.
        let row = unsafe { std::slice::from_raw_parts_mut(dst.add(i * dst_rs), n) };
        if b.cs == 1 {
            if !accumulate {
                row.fill(0.0);
            }
            for p in 0..k {
                let s = scale * at(i, p);
                // SAFETY: row p of b, n contiguous elements.
                let br = unsafe { std::slice::from_raw_parts(b.ptr.offset(p as isize * b.rs), n) };
                for (c, &v) in row.iter_mut().zip(br) {
                    *c += s * v;
                }
            }
        } else {
            for (j, o) in row.iter_mut().enumerate() {
                // SAFETY: column j of b, k contiguous elements.
                let bc = unsafe { std::slice::from_raw_parts(b.ptr.offset(j as isize * b.cs), k) };
                let c = if a.cs == 1 {
                    // SAFETY: row i of a, k contiguous elements.
                    let ar =
                        unsafe { std::slice::from_raw_parts(a.ptr.offset(i as isize * a.rs), k) };
                    super::math::dot(ar, bc)
                } else {
                    (0..k).map(|p| at(i, p) * bc[p]).sum()
                };
                *o = if accumulate {
                    *o + scale * c
                } else {
                    scale * c
                };
            }
        }
    }
}

/// `a [m, k] · b [k, n]` of row-major slices (`b_transposed`: `b` holds `[n, k]`), with
/// `engine`: what `cargo xtask bench gemm` measures.
pub fn matmul(
    engine: Engine,
    a: &[f32],
    b: &[f32],
    m: usize,
    k: usize,
    n: usize,
    b_transposed: bool,
) -> Vec<f32> {
    assert_eq!(a.len(), m * k);
    assert_eq!(b.len(), k * n);
    let mut out = vec![0.0; m * n];
    let am = Mat {
        ptr: a.as_ptr(),
        rows: m,
        cols: k,
        rs: k as isize,
        cs: 1,
    };
    let (rs, cs) = if b_transposed {
        (1, k as isize)
    } else {
        (n as isize, 1)
    };
    let bm = Mat {
        ptr: b.as_ptr(),
        rows: k,
        cols: n,
        rs,
        cs,
    };
    // SAFETY: `out` is m × n and ours; the views are the slices'.
    unsafe { gemm_with(engine, out.as_mut_ptr(), n, false, am, bm, 1.0) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize, bt: bool) -> Vec<f64> {
        let mut c = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0f64;
                for p in 0..k {
                    let bv = if bt { b[j * k + p] } else { b[p * n + j] };
                    s += a[i * k + p] as f64 * bv as f64;
                }
                c[i * n + j] = s;
            }
        }
        c
    }

    #[test]
    fn products_of_every_edge_shape_match_a_naive_sum() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        for &(m, k, n) in &[
            (1, 1, 1),
            (12, 256, 32),
            (13, 257, 33),
            (5, 3, 70),
            (8, 64, 8),
            (17, 16, 17),
            (100, 600, 130),
            (481, 40, 3100),
            (700, 300, 20),
        ] {
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
                .collect();
            let b: Vec<f32> = (0..k * n)
                .map(|i| ((i * 53 % 97) as f32 - 48.0) / 48.0)
                .collect();
            for bt in [false, true] {
                let want = naive(&a, &b, m, k, n, bt);
                for engine in [Engine::Split, Engine::GemmCrate] {
                    let got = pool.install(|| matmul(engine, &a, &b, m, k, n, bt));
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            (*g as f64 - w).abs() <= 1e-4 * (1.0 + w.abs()) * (k as f64).sqrt(),
                            "{engine:?} {m}×{k}×{n} bt={bt}: element {i}: {g} vs {w}"
                        );
                    }
                }
            }
        }
    }
}
