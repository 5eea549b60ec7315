import CBLAS

// Batched products: Y[t, r] = Σ_c X[t, c] · W[r, c]. A few rows of X (decoding several sequences) go to
// `batchedMatvec`, which reads each weight row once for all of them and gives every row what `matvec` gives it
// alone; more rows (prefill) go to OpenBLAS's sgemm, on f32 weights in place and on other dtypes a tile of rows
// at a time dequantized into per-thread scratch, so that the weights are never copied whole. OpenBLAS runs
// single-threaded inside our own pool's threads: two thread pools on two cores would fight over them.

/// The most rows of X that `matmul` hands to `batchedMatvec` for `dtype`; more go to sgemm. Measured with
/// `loraswitch bench --kernels` on smollm2-135m's layer shapes with the weights coming from memory (README): up to
/// these counts the batched kernel was as fast as the sgemm path or faster, two runs (f32 1.02–1.03x at 24 rows,
/// 0.95–0.97x at 32; f16 and bf16 1.00–1.04x at 48, 0.95–1.02x at 64; Q8_0 1.16–1.21x at 4, 0.89x at 6).
///
/// 0 for Q4_0 and Q4_1: their batched kernel gives what `matvec` gives, x quantized to 16-bit integers per block
/// (IntegerDot.swift), which prefill and training do not want — they keep sgemm on dequantized tiles, exact in
/// float (their tests hold logits to transformers' within 2e-5). Decoding several sequences calls `batchedMatvec`
/// itself to get, for every row, what that row's sequence gets alone.
public func matmulBatchedLimit(_ dtype: DType) -> Int {
    switch dtype {
    case .f32: return 24
    case .f16, .bf16: return 48
    // Q8_0's matvec numerics take five float operations per 32 products where sgemm takes four with its operands
    // in registers; from 6 rows on sgemm was faster.
    case .q8_0: return 4
    case .q4_0, .q4_1: return 0
    }
}

/// Floats of per-thread scratch `matmul` needs for matrices of up to `cols` inputs: a tile of dequantized rows
/// (about 256 KB, so that it stays in L2; at least 16 rows), or the activations `batchedMatvec` prepares for up
/// to `matmulBatchedLimit` rows; this also covers `matvecScratchCount`.
public func matmulScratchCount(cols: Int) -> Int {
    let batched = DType.allCases.map { batchedMatvecScratchCount(dtype: $0, cols: cols, tokens: matmulBatchedLimit($0)) }
    return max(dequantizedTileCount(cols: cols), matvecScratchCount(cols: cols), batched.max()!)
}

/// Floats of a tile of dequantized rows: about 256 KB, at least 16 rows.
@inline(__always)
func dequantizedTileCount(cols: Int) -> Int { max(1 << 16, 16 * cols) }

/// Touched before every OpenBLAS call: OpenBLAS runs on the calling thread only (set once per process).
let singleThreadedBLAS: Void = { openblas_set_num_threads(1) }()

/// Rows of W dequantized per tile: as many as fit in `dequantizedTileCount(cols:)`, a multiple of 16.
@inline(__always)
func tileRows(cols: Int) -> Int { max(16, (dequantizedTileCount(cols: cols) / max(1, cols)) & ~15) }

/// Y[t, r] = X[t, :] · W[r, :] for t in 0..<tokens and r in `rows` (`accumulate`: Y[t, r] += …). X: [tokens,
/// w.cols] (row stride w.cols); Y: [tokens, ldy], written at columns `rows`. `scratch` holds
/// `matmulScratchCount(cols: w.cols)` floats. One token (not accumulated) goes to `matvec`; up to
/// `matmulBatchedLimit(w.dtype)` tokens to `batchedMatvec`, every Y[t, r] then bitwise what `matvec` gives X[t, :]
/// alone; more to sgemm.
public func matmul(_ w: WeightMatrix, _ x: UnsafePointer<Float>, tokens: Int,
                   _ y: UnsafeMutablePointer<Float>, ldy: Int, rows: Range<Int>, accumulate: Bool = false,
                   scratch: UnsafeMutablePointer<Float>) {
    guard !rows.isEmpty, tokens > 0 else { return }
    if tokens == 1 && !accumulate {
        matvec(w, x, y, rows: rows, scratch: scratch)
    } else if tokens <= matmulBatchedLimit(w.dtype) {
        batchedMatvec(w, x, tokens: tokens, y, ldy: ldy, rows: rows, accumulate: accumulate, scratch: scratch)
    } else {
        matmulBLAS(w, x, tokens: tokens, y, ldy: ldy, rows: rows, accumulate: accumulate, scratch: scratch)
    }
}

/// `matmul` through sgemm whatever the number of tokens: f32 weights in place, other dtypes dequantized a tile of
/// rows at a time into `scratch` (`matmulScratchCount(cols: w.cols)` floats). Public so that benchmarks can set it
/// beside `batchedMatvec`; callers use `matmul`.
public func matmulBLAS(_ w: WeightMatrix, _ x: UnsafePointer<Float>, tokens: Int,
                       _ y: UnsafeMutablePointer<Float>, ldy: Int, rows: Range<Int>, accumulate: Bool = false,
                       scratch: UnsafeMutablePointer<Float>) {
    guard !rows.isEmpty, tokens > 0 else { return }
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
