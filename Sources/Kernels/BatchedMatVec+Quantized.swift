#if arch(x86_64)
import _Builtin_intrinsics.intel
#endif

// The block types of `batchedMatvec`: Q8_0 with matvec's float lanes, Q4_0 and Q4_1 with its 16-bit integer
// activations (x86-64). The activations are prepared once per call, row by row with matvec's own functions, into
// scratch laid out block-major — block b of every row together, [blocks][tokens] — so that a group of rows reads one
// contiguous run per block; their per-block sums lie [blocks][tokens] as well, so that the offset terms of a whole
// group are one vector operation per block.

// The rows of x are prepared group by group (`groupSize`), block-major within a group: consecutive blocks of a
// group are the group's width apart rather than all the tokens' (4 KB at 64 rows of Q4, which put every block of a
// group in the same L1 set).

// MARK: - Q8_0

/// Q8_0 rows: `q8Rows` (MatVec.swift) for several rows of x. Per row of x the result is
/// 256·Σ(even and odd accumulators) − 384·c, with c = Σ_b d_b·Σx_b taken over pairs of blocks as there.
struct Q8Batch: BatchRowKernel {
    typealias Accumulator = SIMD8<Float>
    let w: WeightMatrix
    /// Group (t0, size) at `lanes + t0 · cols`, [blocks][size][32]: each row's x in `prepareBlockInput` order.
    let lanes: UnsafePointer<Float>
    /// [blocks][tokens] (+ 8): Σx of each block of each row.
    let sums: UnsafePointer<Float>
    let tokens: Int
    let out: BatchOutput

    init(w: WeightMatrix, x: UnsafePointer<Float>, tokens: Int, widest: Int, scratch: UnsafeMutablePointer<Float>,
         out: BatchOutput) {
        let cols = w.cols, blocks = cols / 32
        var cursor = ScratchCursor(scratch)
        let lanes = cursor.take(tokens * cols), sums = cursor.take(blocks * tokens + 8)
        forEachToken(tokens, widest: widest) { t, j, size in
            prepareBlockInput(x + t * cols, count: cols, into: lanes + (t - j) * cols + 32 * j, blockStride: 32 * size,
                              sums: sums + t, sumStride: tokens)
        }
        (sums + blocks * tokens).update(repeating: 0, count: 8)
        self.w = w
        self.lanes = UnsafePointer(lanes)
        self.sums = UnsafePointer(sums)
        self.tokens = tokens
        self.out = out
    }

    @inline(__always)
    func rows<G: AccumulatorGroup>(_ rows: Range<Int>, firstToken t0: Int, ahead: Range<Int>, _: G.Type)
    where G.V == SIMD8<Float> {
        let blocks = w.cols / 32, tokens = self.tokens, size = G.count
        let xs = lanes + t0 * w.cols, sx = sums + t0
        for r in rows {
            prefetchRow(w, r, of: rows, ahead: ahead)
            let p = w.row(r)
            @inline(__always) func pass(from first: Int) -> G {
                var a = G(repeating: SIMD8())
                var b = first
                while b < blocks {
                    let o = 34 * b
                    let d = SIMD8(repeating: blockScale(p, o))
                    let m = q8BlockWeights(p + o + 2)
                    let xb = xs + 32 * size * b
                    a.update { j, acc in
                        let (x0, x1, x2, x3) = loadLanes(xb + 32 * j, 0)
                        acc.addProduct(q8BlockSum(m, x0, x1, x2, x3), d)
                    }
                    b += 2
                }
                return a
            }
            let even = pass(from: 0), odd = pass(from: 1)
            // c for up to 8 rows of x at once (lanes past the group are never read).
            @inline(__always) func term(_ b: Int) -> SIMD8<Float> {
                SIMD8(repeating: blockScale(p, 34 * b)) * UnsafeRawPointer(sx + tokens * b).loadUnaligned(as: SIMD8<Float>.self)
            }
            var c = SIMD8<Float>()
            var b = 0
            while b + 2 <= blocks { c += term(b) + term(b + 1); b += 2 }
            if b < blocks { c += term(b) }
            even.zip(odd) { j, a0, a1 in out.store(256 * horizontalSum(a0 + a1) - 384 * c[j], token: t0 + j, row: r) }
        }
    }
}

// MARK: - Q4_0 and Q4_1

#if arch(x86_64)
/// Q4_0 and Q4_1 rows: `q4RowsInt16` (IntegerDot.swift) for several rows of x. Per block and row of x: the exact
/// integer dot of the nibbles with x's 16-bit integers, converted to float and multiplied by d·s (rounded as there);
/// per row of x, Σ over pairs of blocks of the offset terms (−8·d or m)·Σq·s.
struct Q4Batch: BatchRowKernel {
    typealias Accumulator = SIMD8<Float>
    let w: WeightMatrix
    /// Group (t0, size) at `quants + 2 · t0 · cols` bytes, [blocks][size][32 Int16]: each row's x as 16-bit integers.
    let quants: UnsafeRawPointer
    /// [blocks][tokens] (+ 8): each block's scale s of each row.
    let scales: UnsafePointer<Float>
    /// [blocks][tokens] (+ 8): each block's Σq·s of each row.
    let sums: UnsafePointer<Float>
    /// [blocks][8]: d·s of each block of the weight row being read, for each row of x of the group.
    let products: UnsafeMutablePointer<Float>
    let tokens: Int
    let out: BatchOutput

    init(w: WeightMatrix, x: UnsafePointer<Float>, tokens: Int, widest: Int, scratch: UnsafeMutablePointer<Float>,
         out: BatchOutput) {
        let cols = w.cols, blocks = cols / 32
        var cursor = ScratchCursor(scratch)
        let quants = UnsafeMutableRawPointer(cursor.take(tokens * cols / 2))
        let scales = cursor.take(blocks * tokens + 8), sums = cursor.take(blocks * tokens + 8)
        products = cursor.take(8 * blocks)
        forEachToken(tokens, widest: widest) { t, j, size in
            prepareInt16Input(x + t * cols, count: cols, quants: quants + 2 * (t - j) * cols + 64 * j, blockStride: 64 * size,
                              scales: scales + t, sums: sums + t, scaleStride: tokens)
        }
        (scales + blocks * tokens).update(repeating: 0, count: 8)
        (sums + blocks * tokens).update(repeating: 0, count: 8)
        self.w = w
        self.quants = UnsafeRawPointer(quants)
        self.scales = UnsafePointer(scales)
        self.sums = UnsafePointer(sums)
        self.tokens = tokens
        self.out = out
    }

    @inline(__always)
    func rows<G: AccumulatorGroup>(_ rows: Range<Int>, firstToken t0: Int, ahead: Range<Int>, _: G.Type)
    where G.V == SIMD8<Float> {
        let minimum = w.dtype == .q4_1
        let blocks = w.cols / 32, stride = w.dtype.blockBytes, quantOffset = minimum ? 4 : 2, tokens = self.tokens
        let size = G.count, xs = quants + 2 * t0 * w.cols, ss = scales + t0, sx = sums + t0
        let ds = products
        for r in rows {
            prefetchRow(w, r, of: rows, ahead: ahead)
            let p = w.row(r)
            // d·s for every block and row of x first, 8 at a time: the passes then take each as a broadcast from
            // memory, not a multiply and a broadcast per block and row of x (the same products, rounded alike).
            for b in 0..<blocks {
                let d = Float(p.loadUnaligned(fromByteOffset: stride * b, as: Float16.self))
                let s = UnsafeRawPointer(ss + tokens * b).loadUnaligned(as: SIMD8<Float>.self)
                UnsafeMutableRawPointer(ds + 8 * b).storeBytes(of: SIMD8(repeating: d) * s, as: SIMD8<Float>.self)
            }
            @inline(__always) func pass(from first: Int) -> G {
                var a = G(repeating: SIMD8())
                var b = first
                while b < blocks {
                    let nibbles = q4Nibbles(p + stride * b + quantOffset)
                    let xb = xs + 64 * size * b, db = ds + 8 * b
                    a.update { j, acc in acc.addProduct(q4BlockDot(nibbles, xb + 64 * j), SIMD8(repeating: db[j])) }
                    b += 2
                }
                return a
            }
            let even = pass(from: 0), odd = pass(from: 1)
            // Q4_0: d·(q − 8)·x summed = d·s·Σq·xq − 8·d·(s·Σxq); Q4_1: d·s·Σq·xq + m·(s·Σxq).
            @inline(__always) func term(_ b: Int) -> SIMD8<Float> {
                let o = stride * b
                let offset = minimum ? Float(p.loadUnaligned(fromByteOffset: o + 2, as: Float16.self))
                    : -8 * Float(p.loadUnaligned(fromByteOffset: o, as: Float16.self))
                return SIMD8(repeating: offset) * UnsafeRawPointer(sx + tokens * b).loadUnaligned(as: SIMD8<Float>.self)
            }
            var c = SIMD8<Float>()
            var b = 0
            while b + 2 <= blocks { c += term(b) + term(b + 1); b += 2 }
            if b < blocks { c += term(b) }
            even.zip(odd) { j, a0, a1 in out.store(horizontalSum(a0 + a1) + c[j], token: t0 + j, row: r) }
        }
    }
}
#else
/// Elsewhere 4-bit rows go through `matvec` one row of x at a time (bitwise equal by construction), 64 weight rows
/// at a time through a buffer on the stack when accumulating.
func q4RowByRow(_ w: WeightMatrix, _ x: UnsafePointer<Float>, tokens: Int, _ out: BatchOutput, rows: Range<Int>,
                scratch: UnsafeMutablePointer<Float>) {
    withUnsafeTemporaryAllocation(of: Float.self, capacity: 64) { buffer in
        let tmp = buffer.baseAddress!
        for t in 0..<tokens {
            var start = rows.lowerBound
            while start < rows.upperBound {
                let end = min(rows.upperBound, start + 64)
                matvec(w, x + t * w.cols, tmp - start, rows: start..<end, scratch: scratch)
                for r in start..<end { out.store(tmp[r - start], token: t, row: r) }
                start = end
            }
        }
    }
}
#endif
