import CPrefetch

// Matrix-vector products for a few rows of activations at once: Y[t, r] = X[t, :] · W[r, :] for t in 0..<tokens
// (2 to ~64: one decoded token of each of several sequences) and r in a range of rows.
//
// Each weight row (or block) is read once for all the activation rows: a group of them (up to 4 or 8) keeps its
// accumulators in registers while the row streams past, and the next group finds the row in cache (rows are taken a
// tile at a time, so that a tile stays in L2 while every group passes over it). At one row of x decoding is bound by
// reading the weights; with several it becomes bound by arithmetic (see the README's benchmark table).
//
// Exactness: every Y[t, r] is bitwise what `matvec` gives for X[t, :] alone. The activations are prepared per row
// exactly as `matvec` prepares them (the 16-bit quantization of the 4-bit path, the block sums of Q8_0), each row
// keeps matvec's two accumulators (even and odd chunks or blocks) with the same operations in the same order, and
// the block arithmetic is the functions matvec calls. The block types sum even and odd blocks in two passes over
// the row (the second from L1), so that a group needs one accumulator per activation row, not two; the float types
// keep both in one pass (a first pass over every other 64-byte chunk of an f32 row streamed badly from memory).

/// Floats of scratch `batchedMatvec` needs for `tokens` rows of activations of `cols` inputs against a `dtype`
/// matrix: the activations laid out for the kernels (the block types' prepared as matvec prepares them).
public func batchedMatvecScratchCount(dtype: DType, cols: Int, tokens: Int) -> Int {
    let blocks = cols / 32
    switch dtype {
    case .f32, .f16, .bf16:
        return 16 + tokens * (cols & ~15)
    case .q8_0:
        return 16 + tokens * cols + (blocks * tokens + 8)
    case .q4_0, .q4_1:
        #if arch(x86_64)
        return 16 + tokens * cols / 2 + 2 * (blocks * tokens + 8) + 8 * blocks
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
        let kernel = FloatBatch<F32Elements>(w: w, x: x, tokens: tokens, widest: shape.floatGroup, scratch: scratch, out: out)
        forEachGroup(kernel, tokens: tokens, rows: rows, widest: shape.floatGroup, tileRows: tile)
    case .f16:
        let kernel = FloatBatch<F16Elements>(w: w, x: x, tokens: tokens, widest: shape.floatGroup, scratch: scratch, out: out)
        forEachGroup(kernel, tokens: tokens, rows: rows, widest: shape.floatGroup, tileRows: tile)
    case .bf16:
        let kernel = FloatBatch<BF16Elements>(w: w, x: x, tokens: tokens, widest: shape.floatGroup, scratch: scratch, out: out)
        forEachGroup(kernel, tokens: tokens, rows: rows, widest: shape.floatGroup, tileRows: tile)
    case .q8_0:
        let kernel = Q8Batch(w: w, x: x, tokens: tokens, widest: shape.blockGroup, scratch: scratch, out: out)
        forEachGroup(kernel, tokens: tokens, rows: rows, widest: shape.blockGroup, tileRows: tile)
    case .q4_0, .q4_1:
        #if arch(x86_64)
        let kernel = Q4Batch(w: w, x: x, tokens: tokens, widest: shape.blockGroup, scratch: scratch, out: out)
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

    /// With 32 vector registers (AVX-512): float groups of 4 rows, 2 × 4 SIMD16 accumulators (even and odd), and
    /// block groups of 8 rows. Measured with the weights coming from memory (`bench --kernels`): 8 float rows were
    /// as fast as 4 from cache and slower from memory (the first group of a tile streams it at close to matvec's
    /// rate, the later ones find it in L2); 16 block rows were no faster than 8 for Q4 and 20% slower for Q8_0.
    static let avx512 = BatchShape(floatGroup: 4, blockGroup: 8, tileBytes: 128 << 10)
    /// 16 registers (AVX2; a SIMD16 takes two): 2 × 2 SIMD16 or 8 SIMD8 accumulators.
    static let avx2 = BatchShape(floatGroup: 2, blockGroup: 8, tileBytes: 128 << 10)
    static let current = CPUFeatures.current.avx512 ? avx512 : avx2

    func tileRows(rowBytes: Int) -> Int { max(1, tileBytes / max(1, rowBytes)) }
}

// MARK: - Groups

/// A kernel over one group of activation rows: Y[t0 + j, r] for j in 0..<G.count and r in `rows`. `ahead`: the
/// rows to fetch into L2 meanwhile, row `ahead.lowerBound + i` beside row `rows.lowerBound + i` (`prefetchRow`).
protocol BatchRowKernel {
    associatedtype Accumulator
    var w: WeightMatrix { get }
    func rows<G: AccumulatorGroup>(_ rows: Range<Int>, firstToken t0: Int, ahead: Range<Int>, _: G.Type)
    where G.V == Accumulator
}

/// Fetches weight row `r − rows.lowerBound + ahead.lowerBound` into L2 if it lies in `ahead`: the row the kernel will
/// read a tile later. The first group of a tile fetches the next tile while it computes, so that the groups after it
/// and the next tile's first group find their rows in cache: reading and arithmetic overlap instead of taking turns
/// (a tile's first group used to stream it from memory at a fraction of the arithmetic rate).
@inline(__always)
func prefetchRow(_ w: WeightMatrix, _ r: Int, of rows: Range<Int>, ahead: Range<Int>) {
    let next = ahead.lowerBound + (r - rows.lowerBound)
    guard next < ahead.upperBound else { return }
    let p = w.row(next), bytes = w.rowBytes
    var o = 0
    while o < bytes {
        lsPrefetchL2(p + o)
        o += 64
    }
}

/// The size of the next group of tokens when `left` remain: as many groups of `widest` as fit, then one each of the
/// smaller sizes that make up the rest (13 = 8 + 4 + 1). The kernels lay their prepared activations out by group.
@inline(__always)
func groupSize(left: Int, widest: Int) -> Int {
    if widest >= 8 && left >= 8 { return 8 }
    if widest >= 4 && left >= 4 { return 4 }
    return left >= 2 && widest >= 2 ? 2 : 1
}

/// Runs `kernel` over tiles of `rows`, and within a tile over the groups of tokens (`groupSize`).
@inline(__always)
func forEachGroup<K: BatchRowKernel>(_ kernel: K, tokens: Int, rows: Range<Int>, widest: Int, tileRows: Int) {
    var start = rows.lowerBound
    while start < rows.upperBound {
        let tile = start..<min(rows.upperBound, start + tileRows)
        let next = tile.upperBound..<min(rows.upperBound, tile.upperBound + tileRows)
        var t0 = 0
        while t0 < tokens {
            let size = groupSize(left: tokens - t0, widest: widest)
            let ahead = t0 == 0 ? next : next.upperBound..<next.upperBound
            switch size {
            case 8: kernel.rows(tile, firstToken: t0, ahead: ahead, Group8<K.Accumulator>.self)
            case 4: kernel.rows(tile, firstToken: t0, ahead: ahead, Group4<K.Accumulator>.self)
            case 2: kernel.rows(tile, firstToken: t0, ahead: ahead, Group2<K.Accumulator>.self)
            default: kernel.rows(tile, firstToken: t0, ahead: ahead, Group1<K.Accumulator>.self)
            }
            t0 += size
        }
        start = tile.upperBound
    }
}

/// Calls `body(t, j, size)` for every token t: its index j within its group, and the group's size.
@inline(__always)
func forEachToken(_ tokens: Int, widest: Int, _ body: (_ t: Int, _ j: Int, _ size: Int) -> Void) {
    var t0 = 0
    while t0 < tokens {
        let size = groupSize(left: tokens - t0, widest: widest)
        for j in 0..<size { body(t0 + j, j, size) }
        t0 += size
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
/// between matvec's two accumulators, even and odd, both kept here for every row of x of the group; the remainder
/// (cols % 16) is added element by element, as there.
///
/// x is copied group by group and chunk-major within a group, [chunks][group size][16], so that a group's chunks
/// lie together at fixed offsets from one pointer (with a pointer per row of x the address arithmetic took as many
/// instructions as the multiply-adds), and consecutive chunks are a group's width apart: a stride of all the
/// tokens (4 KB at 64 rows) put every chunk in the same L1 set.
struct FloatBatch<E: FloatElements>: BatchRowKernel {
    typealias Accumulator = SIMD16<Float>
    let w: WeightMatrix
    /// The activations as given, [tokens, cols], for the remainder.
    let x: UnsafePointer<Float>
    /// The whole chunks of every row of x, by group: group (t0, size) at `chunks + t0 · body`.
    let chunks: UnsafePointer<Float>
    let out: BatchOutput

    init(w: WeightMatrix, x: UnsafePointer<Float>, tokens: Int, widest: Int, scratch: UnsafeMutablePointer<Float>,
         out: BatchOutput) {
        let n = w.cols, body = n & ~15
        var cursor = ScratchCursor(scratch)
        let chunks = cursor.take(tokens * body)
        forEachToken(tokens, widest: widest) { t, j, size in
            let group = chunks + (t - j) * body
            for c in 0..<(body / 16) { (group + 16 * (c * size + j)).update(from: x + t * n + 16 * c, count: 16) }
        }
        self.w = w
        self.x = x
        self.chunks = UnsafePointer(chunks)
        self.out = out
    }

    @inline(__always)
    func rows<G: AccumulatorGroup>(_ rows: Range<Int>, firstToken t0: Int, ahead: Range<Int>, _: G.Type)
    where G.V == SIMD16<Float> {
        let n = w.cols, body = n & ~15, stride = 16 * G.count
        for r in rows {
            prefetchRow(w, r, of: rows, ahead: ahead)
            let p = w.row(r)
            var even = G(repeating: SIMD16()), odd = G(repeating: SIMD16())
            var xc = chunks + t0 * body // chunk i / 16 of row t0 + j at xc[16 · j]
            var i = 0
            while i + 32 <= body {
                let v0 = E.load16(p, i), v1 = E.load16(p, i + 16), x1 = xc + stride
                even.update { j, acc in acc.addProduct(v0, load16(xc, 16 * j)) }
                odd.update { j, acc in acc.addProduct(v1, load16(x1, 16 * j)) }
                xc += 2 * stride
                i += 32
            }
            if i < body {
                let v0 = E.load16(p, i)
                even.update { j, acc in acc.addProduct(v0, load16(xc, 16 * j)) }
            }
            even.zip(odd) { j, a0, a1 in
                let xj = x + (t0 + j) * n
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
