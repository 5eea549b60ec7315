// Matrix-vector products for a few rows of activations at once: Y[t, r] = X[t, :] · W[r, :] for t in 0..<tokens
// (2 to ~64: one decoded token of each of several sequences) and r in a range of rows.
//
// Each weight row (or block) is read once for all the activation rows: a group of them (up to 8 or 16) keeps its
// accumulators in registers while the row streams past, and the next group finds the row in cache (rows are taken a
// tile at a time, so that a tile stays in L2 while every group passes over it). At one row of x decoding is bound by
// reading the weights; with several it becomes bound by arithmetic (see the README's benchmark table).
//
// Exactness: every Y[t, r] is bitwise what `matvec` gives for X[t, :] alone. The activations are prepared per row
// exactly as `matvec` prepares them (the 16-bit quantization of the 4-bit path, the block sums of Q8_0), each row
// keeps matvec's two accumulators (even and odd chunks or blocks) with the same operations in the same order, and
// the block arithmetic is the functions matvec calls. Even and odd chunks are summed in two passes over the row
// (the second from L1), so that a group needs one accumulator per activation row, not two.

/// Floats of scratch `batchedMatvec` needs for `tokens` rows of activations of `cols` inputs against a `dtype`
/// matrix: the prepared activations of the quantized types (the float types need none).
public func batchedMatvecScratchCount(dtype: DType, cols: Int, tokens: Int) -> Int {
    let blocks = cols / 32
    switch dtype {
    case .f32, .f16, .bf16:
        return 16
    case .q8_0:
        return 16 + tokens * cols + (blocks * tokens + 16)
    case .q4_0, .q4_1:
        #if arch(x86_64)
        return 16 + tokens * cols / 2 + 2 * (blocks * tokens + 16)
        #else
        return matvecScratchCount(cols: cols)
        #endif
    }
}

/// Y[t, r] = X[t, :] · W[r, :] for t in 0..<tokens and r in `rows` (`accumulate`: Y[t, r] += …), each weight row
/// read once for all t, each Y[t, r] bitwise equal to `matvec` of X[t, :] (plus Y[t, r] when accumulating).
/// X: [tokens, w.cols] (row stride w.cols); Y: [tokens, ldy], written at columns `rows`; `scratch` holds
/// `batchedMatvecScratchCount(dtype: w.dtype, cols: w.cols, tokens: tokens)` floats. Cols are whole blocks for the
/// quantized types and any count for the float types, as for `matvec`.
public func batchedMatvec(_ w: WeightMatrix, _ x: UnsafePointer<Float>, tokens: Int, _ y: UnsafeMutablePointer<Float>,
                          ldy: Int, rows: Range<Int>, accumulate: Bool = false, scratch: UnsafeMutablePointer<Float>) {
    batchedMatvec(w, x, tokens: tokens, y, ldy: ldy, rows: rows, accumulate: accumulate, scratch: scratch, shape: .current)
}

/// `batchedMatvec` with the group sizes given (the tests run both machines' shapes on one machine).
func batchedMatvec(_ w: WeightMatrix, _ x: UnsafePointer<Float>, tokens: Int, _ y: UnsafeMutablePointer<Float>,
                   ldy: Int, rows: Range<Int>, accumulate: Bool, scratch: UnsafeMutablePointer<Float>, shape: BatchShape) {
    guard !rows.isEmpty, tokens > 0 else { return }
    let out = BatchOutput(y: y, ldy: ldy, accumulate: accumulate)
    let tile = shape.tileRows(rowBytes: w.rowBytes)
    switch w.dtype {
    case .f32:
        forEachGroup(FloatBatch<F32Elements>(w: w, x: x, out: out), tokens: tokens, rows: rows, widest: shape.floatGroup, tileRows: tile)
    case .f16:
        forEachGroup(FloatBatch<F16Elements>(w: w, x: x, out: out), tokens: tokens, rows: rows, widest: shape.floatGroup, tileRows: tile)
    case .bf16:
        forEachGroup(FloatBatch<BF16Elements>(w: w, x: x, out: out), tokens: tokens, rows: rows, widest: shape.floatGroup, tileRows: tile)
    case .q8_0:
        let kernel = Q8Batch(w: w, x: x, tokens: tokens, scratch: scratch, out: out)
        forEachGroup(kernel, tokens: tokens, rows: rows, widest: shape.blockGroup, tileRows: tile)
    case .q4_0, .q4_1:
        #if arch(x86_64)
        let kernel = Q4Batch(w: w, x: x, tokens: tokens, scratch: scratch, out: out)
        forEachGroup(kernel, tokens: tokens, rows: rows, widest: shape.blockGroup, tileRows: tile)
        #else
        q4RowByRow(w, x, tokens: tokens, out, rows: rows, scratch: scratch)
        #endif
    }
}

// MARK: - Shape

/// How many activation rows share a pass over a weight row, and how many weight rows a tile holds.
struct BatchShape: Sendable, Equatable {
    /// Activation rows per group with one SIMD16 accumulator each (the float types).
    var floatGroup: Int
    /// Activation rows per group with one SIMD8 accumulator each (the block types).
    var blockGroup: Int
    /// Bytes of weight rows per tile: the rows every group passes over before the next tile is read.
    var tileBytes: Int

    /// 32 vector registers: 8 SIMD16 or 16 SIMD8 accumulators, with room for the weights and temporaries. More
    /// float rows per group was measured slower: 16 rows of x at 576 inputs no longer fit in L1.
    static let avx512 = BatchShape(floatGroup: 8, blockGroup: 16, tileBytes: 128 << 10)
    /// 16 registers (AVX2): half as many.
    static let avx2 = BatchShape(floatGroup: 4, blockGroup: 8, tileBytes: 128 << 10)
    static let current = CPUFeatures.current.avx512 ? avx512 : avx2

    func tileRows(rowBytes: Int) -> Int { max(1, tileBytes / max(1, rowBytes)) }
}

// MARK: - Groups

/// A kernel over one group of activation rows: Y[t0 + j, r] for j in 0..<G.count and r in `rows`.
protocol BatchRowKernel {
    associatedtype Accumulator
    func rows<G: AccumulatorGroup>(_ rows: Range<Int>, firstToken t0: Int, _: G.Type) where G.V == Accumulator
}

/// Runs `kernel` over tiles of `rows`, and within a tile over groups of tokens: as many groups of `widest` as fit,
/// then one each of the smaller sizes that make up the rest (13 = 8 + 4 + 1).
@inline(__always)
func forEachGroup<K: BatchRowKernel>(_ kernel: K, tokens: Int, rows: Range<Int>, widest: Int, tileRows: Int) {
    var start = rows.lowerBound
    while start < rows.upperBound {
        let tile = start..<min(rows.upperBound, start + tileRows)
        var t0 = 0
        while t0 < tokens {
            let left = tokens - t0
            if widest >= 16 && left >= 16 {
                kernel.rows(tile, firstToken: t0, Group16<K.Accumulator>.self); t0 += 16
            } else if widest >= 8 && left >= 8 {
                kernel.rows(tile, firstToken: t0, Group8<K.Accumulator>.self); t0 += 8
            } else if left >= 4 {
                kernel.rows(tile, firstToken: t0, Group4<K.Accumulator>.self); t0 += 4
            } else if left >= 2 {
                kernel.rows(tile, firstToken: t0, Group2<K.Accumulator>.self); t0 += 2
            } else {
                kernel.rows(tile, firstToken: t0, Group1<K.Accumulator>.self); t0 += 1
            }
        }
        start = tile.upperBound
    }
}

/// Where results go: Y[t, r] at y[t · ldy + r], stored or added.
struct BatchOutput {
    let y: UnsafeMutablePointer<Float>
    let ldy: Int
    let accumulate: Bool

    @inline(__always)
    func store(_ value: Float, token t: Int, row r: Int) {
        let p = y + t * ldy + r
        p.pointee = accumulate ? p.pointee + value : value
    }
}

// MARK: - Float weights

/// f32, f16 and bf16 rows: `floatRows` (MatVec.swift) for several rows of x. The chunks of 16 elements alternate
/// between matvec's two accumulators; here the even chunks are summed in a first pass and the odd ones in a second,
/// then the remainder element by element, as there.
struct FloatBatch<E: FloatElements>: BatchRowKernel {
    typealias Accumulator = SIMD16<Float>
    let w: WeightMatrix
    let x: UnsafePointer<Float>
    let out: BatchOutput

    @inline(__always)
    func rows<G: AccumulatorGroup>(_ rows: Range<Int>, firstToken t0: Int, _: G.Type) where G.V == SIMD16<Float> {
        let n = w.cols, body = n & ~15
        let xs = x + t0 * n // [G.count, n]
        for r in rows {
            let p = w.row(r)
            @inline(__always) func pass(from first: Int) -> G {
                var a = G(repeating: SIMD16())
                var i = first
                while i < body {
                    let v = E.load16(p, i)
                    a.update { j, acc in acc.addProduct(v, load16(xs + j * n, i)) }
                    i += 32
                }
                return a
            }
            let even = pass(from: 0), odd = pass(from: 16)
            even.zip(odd) { j, a0, a1 in
                let xj = xs + j * n
                var s = horizontalSum(a0 + a1)
                var i = body
                while i < n { s += E.load1(p, i) * xj[i]; i += 1 }
                out.store(s, token: t0 + j, row: r)
            }
        }
    }
}

// MARK: - Scratch layout

/// Carves 64-byte aligned regions out of scratch, in order.
struct ScratchCursor {
    private(set) var next: UnsafeMutablePointer<Float>

    /// The scratch is 64-byte aligned when it comes from a `FloatBuffer`; otherwise the first region is moved up to
    /// the next boundary (the counts include 16 floats for that).
    init(_ scratch: UnsafeMutablePointer<Float>) {
        let address = Int(bitPattern: scratch)
        next = scratch + ((64 - address % 64) % 64) / 4
    }

    mutating func take(_ count: Int) -> UnsafeMutablePointer<Float> {
        defer { next += count }
        return next
    }
}
