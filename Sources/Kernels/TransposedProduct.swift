// Products through a frozen weight's transpose, for the backward pass of a projection y = W x (llm.c's
// matmul_backward, input side): dX[t, c] (+)= Σ_r dY[t, r] · W[r, c]. The weight stays in its stored dtype: f32
// goes to sgemm in place; other dtypes are dequantized a tile (rows × up to 256 columns) at a time into per-thread
// scratch, each thread only the columns it owns, so that the weights are never copied whole (as `matmul` does for
// the forward).
//
// Shapes: T tokens; W [out, in] as stored (`rows` = out, `cols` = in); dY [T, out]; dX [T, in].

/// Floats of per-thread scratch `transposedProduct` needs for w, whatever the columns: a tile of dequantized
/// weights (256 KB, so that it stays in L2). 0 for f32, which needs none.
public func transposedProductScratchCount(_ w: WeightMatrix) -> Int { w.dtype == .f32 ? 0 : 1 << 16 }

/// Columns per tile of dequantized weights: a multiple of 32 (whole blocks), wide enough for sgemm to run at speed,
/// narrow enough that the tile holds a few hundred rows (sgemm's k) and dX's columns of the tile stay in cache.
private let tileColumns = 256

/// The granularity in which `transposedProduct`'s driver splits the columns: a block of the dtype (32 for the
/// quantized types), 16 for the float types (whole cache lines of dX at f32).
public func transposedProductColumnGranularity(_ dtype: DType) -> Int { max(16, dtype.blockElements) }

/// dX[t, c] = Σ_r dY[t, r] · W[r, c] (`accumulate`: dX[t, c] += …) for t in 0..<tokens and c in `columns`, over all
/// rows r of w.
///
/// - dy: [tokens, ldy] (ldy ≥ w.rows), read at columns 0..<w.rows.
/// - dx: [tokens, ldx] (ldx ≥ w.cols), indexed by absolute column: only columns `columns` are written (overwritten,
///   or added to with `accumulate`).
/// - columns: starts at a multiple of `w.dtype.blockElements` (any start for the float types).
/// - scratch: `transposedProductScratchCount(w)` floats of this thread's own (unused at f32).
///
/// Runs on the calling thread; threads working on disjoint `columns` may run it at once.
public func transposedProduct(_ w: WeightMatrix, _ dy: UnsafePointer<Float>, ldy: Int, tokens: Int,
                              _ dx: UnsafeMutablePointer<Float>, ldx: Int, columns: Range<Int>, accumulate: Bool,
                              scratch: UnsafeMutablePointer<Float>) {
    guard !columns.isEmpty, tokens > 0 else { return }
    if w.dtype == .f32 || w.rows == 0 {
        // W[:, columns] read in place, row stride w.cols (for rows = 0, k = 0 zeroes dX unless accumulating).
        let b = w.row(0).assumingMemoryBound(to: Float.self) + columns.lowerBound
        sgemm(m: tokens, n: columns.count, k: w.rows, a: dy, lda: ldy, b: b, ldb: w.cols, beta: accumulate ? 1 : 0,
              c: dx + columns.lowerBound, ldc: ldx)
        return
    }
    // Tiles of [rows, ≤ 256 columns]: dX's columns of a tile take the sum over every tile of rows in turn.
    let scratchCount = transposedProductScratchCount(w)
    var c = columns.lowerBound
    while c < columns.upperBound {
        let tile = c..<min(columns.upperBound, c + tileColumns), n = tile.count
        let step = max(16, (scratchCount / n) & ~15)
        var beta: Float = accumulate ? 1 : 0
        var r = 0
        while r < w.rows {
            let k = min(step, w.rows - r)
            for i in 0..<k { w.dequantizeRow(r + i, columns: tile, into: scratch + i * n) }
            sgemm(m: tokens, n: n, k: k, a: dy + r, lda: ldy, b: scratch, ldb: n, beta: beta, c: dx + tile.lowerBound, ldc: ldx)
            beta = 1
            r += k
        }
        c = tile.upperBound
    }
}

/// `transposedProduct` over all columns of w, split between the pool's threads in pieces of
/// `transposedProductColumnGranularity(w.dtype)`. `scratch` holds `pool.threadCount · transposedProductScratchCount(w)`
/// floats (thread i's at offset i · that count).
public func transposedProduct(_ w: WeightMatrix, _ dy: UnsafePointer<Float>, ldy: Int, tokens: Int,
                              _ dx: UnsafeMutablePointer<Float>, ldx: Int, accumulate: Bool,
                              pool: ThreadPool, scratch: UnsafeMutablePointer<Float>) {
    let threads = pool.threadCount, each = transposedProductScratchCount(w)
    let granularity = transposedProductColumnGranularity(w.dtype)
    pool.run { thread in
        let columns = ThreadPool.chunk(w.cols, part: thread, of: threads, granularity: granularity)
        transposedProduct(w, dy, ldy: ldy, tokens: tokens, dx, ldx: ldx, columns: columns, accumulate: accumulate,
                          scratch: scratch + thread * each)
    }
}
