import CBLAS

// Batched products for prefill: Y[t, r] = Σ_c X[t, c] · W[r, c]. OpenBLAS's sgemm does the arithmetic on f32
// weights in place; other dtypes are dequantized a tile of rows at a time into per-thread scratch first, so the
// weights are never copied whole. OpenBLAS runs single-threaded inside our own pool's threads: two thread pools
// on two cores would fight over them.

/// Floats of per-thread scratch `matmul` needs for matrices of up to `cols` inputs: a tile of dequantized rows
/// (about 256 KB, so that it stays in L2; at least 16 rows), which also covers `matvecScratchCount`.
public func matmulScratchCount(cols: Int) -> Int { max(1 << 16, 16 * cols, matvecScratchCount(cols: cols)) }

/// Touched before every OpenBLAS call: OpenBLAS runs on the calling thread only (set once per process).
let singleThreadedBLAS: Void = { openblas_set_num_threads(1) }()

/// Rows of W dequantized per tile: as many as fit in `matmulScratchCount(cols:)`, a multiple of 16.
@inline(__always)
func tileRows(cols: Int) -> Int { max(16, (matmulScratchCount(cols: cols) / max(1, cols)) & ~15) }

/// Y[t, r] = X[t, :] · W[r, :] for t in 0..<tokens and r in `rows` (`accumulate`: Y[t, r] += …). X: [tokens,
/// w.cols] (row stride w.cols); Y: [tokens, ldy], written at columns `rows`. `scratch` holds
/// `matmulScratchCount(cols: w.cols)` floats.
public func matmul(_ w: WeightMatrix, _ x: UnsafePointer<Float>, tokens: Int,
                   _ y: UnsafeMutablePointer<Float>, ldy: Int, rows: Range<Int>, accumulate: Bool = false,
                   scratch: UnsafeMutablePointer<Float>) {
    guard !rows.isEmpty, tokens > 0 else { return }
    if tokens == 1 && !accumulate {
        // One token: the matrix-vector kernel reads the weights once, with no dequantized copy.
        matvec(w, x, y, rows: rows, scratch: scratch)
        return
    }
    let beta: Float = accumulate ? 1 : 0
    if w.dtype == .f32 {
        sgemm(.plain, .transposed, m: tokens, n: rows.count, k: w.cols, a: x, lda: w.cols,
              b: w.row(rows.lowerBound).assumingMemoryBound(to: Float.self), ldb: w.cols, beta: beta,
              c: y + rows.lowerBound, ldc: ldy)
        return
    }
    let step = tileRows(cols: w.cols)
    var r = rows.lowerBound
    while r < rows.upperBound {
        let n = min(step, rows.upperBound - r)
        dequantize(w.row(r), dtype: w.dtype, count: n * w.cols, into: scratch)
        sgemm(.plain, .transposed, m: tokens, n: n, k: w.cols, a: x, lda: w.cols, b: scratch, ldb: w.cols, beta: beta,
              c: y + r, ldc: ldy)
        r += n
    }
}

/// C[m, n] += A[m, k] · B[k, n], all row-major float32 with the given leading dimensions (OpenBLAS sgemm, on the
/// calling thread). Merging low-rank updates into weights: C a tile of W, A = scaled B_sel, B = A_sel.
public func sgemmAccumulate(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                            c: UnsafeMutablePointer<Float>, ldc: Int) {
    _ = singleThreadedBLAS
    guard m > 0, n > 0, k > 0 else { return }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), 1, a, Int32(lda), b, Int32(ldb),
                1, c, Int32(ldc))
}
