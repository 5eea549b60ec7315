import CBLAS

// The general single-precision product C = alpha · op(A) · op(B) + beta · C, row-major, for the training passes
// (adapter gradients dB += dyᵀ·h, the attention blocks, products through frozen weights). OpenBLAS does the
// arithmetic on the calling thread, so that callers compose it into their own parallel regions.

/// How an operand enters a product: as stored, or transposed.
public enum Operand: Sendable {
    case plain, transposed

    var cblas: CBLAS_TRANSPOSE { self == .plain ? CblasNoTrans : CblasTrans }
}

/// C[m, n] = alpha · op(A)[m, k] · op(B)[k, n] + beta · C[m, n], all row-major float32 (OpenBLAS sgemm, on the
/// calling thread).
///
/// op(A) is A [m, k] (row stride lda ≥ k) when `a` is `.plain`, or Aᵀ for A stored [k, m] (lda ≥ m) when
/// `.transposed`; likewise op(B) is B [k, n] (ldb ≥ n) or Bᵀ for B stored [n, k] (ldb ≥ k). C: [m, n], row stride
/// ldc ≥ n. With beta = 0, C is overwritten and never read (NaN there does not leak); with beta = 1, accumulated.
/// k = 0 leaves beta · C (0 when beta = 0).
public func sgemm(_ a: Operand = .plain, _ b: Operand = .plain, m: Int, n: Int, k: Int, alpha: Float = 1,
                  a aData: UnsafePointer<Float>, lda: Int, b bData: UnsafePointer<Float>, ldb: Int,
                  beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    _ = singleThreadedBLAS
    guard m > 0, n > 0 else { return }
    guard k > 0 else {
        if beta == 1 { return }
        for i in 0..<m {
            let row = c + i * ldc
            if beta == 0 { row.update(repeating: 0, count: n) } else { for j in 0..<n { row[j] *= beta } }
        }
        return
    }
    cblas_sgemm(CblasRowMajor, a.cblas, b.cblas, Int32(m), Int32(n), Int32(k), alpha, aData, Int32(lda),
                bData, Int32(ldb), beta, c, Int32(ldc))
}
