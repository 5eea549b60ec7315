// Matrix-vector products y[r] = W[r, :] · x for a range of rows, one kernel per stored dtype, fp32 accumulation.
//
// Decoding one token is bound by reading the weights once. Every kernel walks one row at a time with two
// independent accumulators (measured faster than interleaving four rows, whose strided streams the prefetchers
// serve worse) and converts the stored elements to float32 in registers: nothing is dequantized to memory.
//
// Q4_0 and Q4_1 decode with 16-bit integer activations on x86-64 (IntegerDot.swift). Q8_0 (and Q4 elsewhere):
// quantized blocks are expanded without lane shuffles or integer→float conversions (Swift's SIMD conversions
// compile to out-of-line calls, and vcvtph2ps/vcvtdq2ps would bound the loop): a block's bytes are loaded as 16-bit
// words zero-extended into 32-bit lanes (one vpmovzxwd), and shifting a byte or nibble into the mantissa of a
// float whose exponent is that of 1.0 gives 1 + q/256 or 1 + q/16 exactly. The offsets and per-block factors are
// folded into per-block sums of x (see `prepareBlockInput`), so the inner loop is shift, mask, FMA.

/// Floats of per-thread scratch that `matvec` needs for rows of `cols` inputs.
public func matvecScratchCount(cols: Int) -> Int { cols + cols / 32 + 16 }

/// y[r] = W[r, :] · x + Σ_j B_j[r, :] · u_j for every r in `rows`: the low-rank `terms` (adapters' output sides,
/// see LowRank.swift) are added right after the rows are computed, while they are in cache. x: [w.cols]; y is
/// indexed by absolute row; `scratch` holds `matvecScratchCount(cols: w.cols)` floats (used by the quantized kernels).
public func matvec(_ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Range<Int>,
                   scratch: UnsafeMutablePointer<Float>, adding terms: UnsafeBufferPointer<LowRankTerm> = .init(start: nil, count: 0)) {
    guard !rows.isEmpty else { return }
    defer { if !terms.isEmpty { addLowRankTerms(terms, y, rows: rows) } }
    switch w.dtype {
    case .f32: floatRows(w, x, y, rows, F32Elements.self)
    case .f16: floatRows(w, x, y, rows, F16Elements.self)
    case .bf16: floatRows(w, x, y, rows, BF16Elements.self)
    case .q8_0:
        prepareBlockInput(x, count: w.cols, into: scratch)
        q8Rows(w, scratch, y, rows)
    case .q4_0, .q4_1:
        #if arch(x86_64)
        prepareInt16Input(x, count: w.cols, into: scratch)
        q4RowsInt16(w, scratch, y, rows)
        #else
        prepareBlockInput(x, count: w.cols, into: scratch)
        q4Rows(w, scratch, y, rows)
        #endif
    }
}

// MARK: - Float element types

protocol FloatElements {
    /// Elements i..<i+16 of the row at `p`, as float32.
    static func load16(_ p: UnsafeRawPointer, _ i: Int) -> SIMD16<Float>
    static func load1(_ p: UnsafeRawPointer, _ i: Int) -> Float
}

enum F32Elements: FloatElements {
    @inline(__always) static func load16(_ p: UnsafeRawPointer, _ i: Int) -> SIMD16<Float> {
        p.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<Float>.self)
    }
    @inline(__always) static func load1(_ p: UnsafeRawPointer, _ i: Int) -> Float {
        p.loadUnaligned(fromByteOffset: 4 * i, as: Float.self)
    }
}

enum F16Elements: FloatElements {
    @inline(__always) static func load16(_ p: UnsafeRawPointer, _ i: Int) -> SIMD16<Float> {
        widen(p.loadUnaligned(fromByteOffset: 2 * i, as: SIMD16<Float16>.self))
    }
    @inline(__always) static func load1(_ p: UnsafeRawPointer, _ i: Int) -> Float {
        Float(p.loadUnaligned(fromByteOffset: 2 * i, as: Float16.self))
    }
}

enum BF16Elements: FloatElements {
    @inline(__always) static func load16(_ p: UnsafeRawPointer, _ i: Int) -> SIMD16<Float> {
        bf16ToFloat(p.loadUnaligned(fromByteOffset: 2 * i, as: SIMD16<UInt16>.self))
    }
    @inline(__always) static func load1(_ p: UnsafeRawPointer, _ i: Int) -> Float {
        bf16ToFloat(p.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
    }
}

@inline(__always)
func load16(_ x: UnsafePointer<Float>, _ i: Int) -> SIMD16<Float> {
    UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
}

private func floatRows<E: FloatElements>(
    _ w: WeightMatrix, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ rows: Range<Int>, _: E.Type
) {
    let n = w.cols, body = n & ~15
    for r in rows {
        let p = w.row(r)
        var a0 = SIMD16<Float>(), a1 = SIMD16<Float>()
        var i = 0
        while i + 32 <= body {
            a0.addProduct(E.load16(p, i), load16(x, i))
            a1.addProduct(E.load16(p, i + 16), load16(x, i + 16))
            i += 32
        }
        if i < body { a0.addProduct(E.load16(p, i), load16(x, i)); i += 16 }
        var s = horizontalSum(a0 + a1)
        while i < n { s += E.load1(p, i) * x[i]; i += 1 }
        y[r] = s
    }
}

// MARK: - Quantized rows

/// Lays x out for the block kernels: per block of 32, the elements in the lane order the kernels expand the
/// quants in — (2i), (2i + 16), (2i + 1), (2i + 17) for i in 0..<8 — then, after all blocks, each block's Σx.
///
/// Lane i of a block's bytes read as 16-bit words holds bytes 2i and 2i + 1; for Q4 those are the nibbles of
/// elements 2i, 2i + 16 (byte 2i) and 2i + 1, 2i + 17 (byte 2i + 1); Q8 reads two such words, elements 2i, 2i + 1
/// and 16 + 2i, 17 + 2i.
@inline(__always)
func prepareBlockInput(_ x: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<Float>) {
    prepareBlockInput(x, count: count, into: out, blockStride: 32, sums: out + count, sumStride: 1)
}

/// `prepareBlockInput` with block b's lanes at `out + b · blockStride` and its Σx at `sums[b · sumStride]`: the
/// batched kernels interleave the blocks of several rows of x.
@inline(__always)
func prepareBlockInput(_ x: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<Float>, blockStride: Int,
                       sums: UnsafeMutablePointer<Float>, sumStride: Int) {
    let blocks = count / 32
    for b in 0..<blocks {
        let src = x + 32 * b, dst = out + blockStride * b
        var s: Float = 0
        for i in 0..<8 {
            dst[i] = src[2 * i]
            dst[8 + i] = src[2 * i + 16]
            dst[16 + i] = src[2 * i + 1]
            dst[24 + i] = src[2 * i + 17]
        }
        for j in 0..<32 { s += src[j] }
        sums[sumStride * b] = s
    }
}

@inline(__always)
func blockScale(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
    Float(p.loadUnaligned(fromByteOffset: offset, as: Float16.self))
}

/// A 32-bit lane with a byte or nibble moved into mantissa bits 15...22 (or 19...22) of a float whose exponent is
/// that of 1.0 reads as 1 + byte/256 (or 1 + nibble/16), exactly.
@inline(__always)
private func mantissa(_ bits: SIMD8<UInt32>) -> SIMD8<Float> { unsafeBitCast(bits, to: SIMD8<Float>.self) }

/// One Q8_0 block's 1 + (q + 128)/256, lanes in `prepareBlockInput` order (four vectors: elements 2i, 2i + 16,
/// 2i + 1, 2i + 17).
@inline(__always)
func q8BlockWeights(_ quants: UnsafeRawPointer) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
    // Lane i holds bytes 2i and 2i + 1 (zero-extended 16-bit words); flipping a byte's top bit (0x0040_0000 once
    // shifted) turns the signed q into q + 128.
    let w0 = zeroExtend(quants.loadUnaligned(as: SIMD8<UInt16>.self))
    let w1 = zeroExtend(quants.loadUnaligned(fromByteOffset: 16, as: SIMD8<UInt16>.self))
    return (mantissa(((w0 &<< 15) & 0x007F_8000) ^ 0x3FC0_0000), mantissa(((w1 &<< 15) & 0x007F_8000) ^ 0x3FC0_0000),
            mantissa(((w0 &<< 7) & 0x007F_8000) ^ 0x3FC0_0000), mantissa(((w1 &<< 7) & 0x007F_8000) ^ 0x3FC0_0000))
}

/// Σ over one Q8_0 block of (1 + (q + 128)/256)·x, from `q8BlockWeights` and x's lanes in the same order. The
/// batched kernels share this with `matvec`, so that both round alike.
@inline(__always)
func q8BlockSum(_ m: (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>), _ x0: SIMD8<Float>, _ x1: SIMD8<Float>,
                _ x2: SIMD8<Float>, _ x3: SIMD8<Float>) -> SIMD8<Float> {
    var s = m.0 * x0
    s.addProduct(m.1, x1)
    s.addProduct(m.2, x2)
    s.addProduct(m.3, x3)
    return s
}

/// Σ over one Q8_0 block of (1 + (q + 128)/256)·x, lanes in `prepareBlockInput` order.
@inline(__always)
private func q8BlockSum(_ quants: UnsafeRawPointer, _ x0: SIMD8<Float>, _ x1: SIMD8<Float>, _ x2: SIMD8<Float>,
                        _ x3: SIMD8<Float>) -> SIMD8<Float> {
    q8BlockSum(q8BlockWeights(quants), x0, x1, x2, x3)
}

/// Σ over one Q4 block of (1 + q/16)·x, lanes in `prepareBlockInput` order.
@inline(__always)
private func q4BlockSum(_ quants: UnsafeRawPointer, _ x0: SIMD8<Float>, _ x1: SIMD8<Float>, _ x2: SIMD8<Float>,
                        _ x3: SIMD8<Float>) -> SIMD8<Float> {
    // Lane i holds bytes 2i and 2i + 1: nibbles at bits 0, 4, 8 and 12.
    let w = zeroExtend(quants.loadUnaligned(as: SIMD8<UInt16>.self))
    var s = mantissa(((w &<< 19) & 0x0078_0000) | 0x3F80_0000) * x0
    s.addProduct(mantissa(((w &<< 15) & 0x0078_0000) | 0x3F80_0000), x1)
    s.addProduct(mantissa(((w &<< 11) & 0x0078_0000) | 0x3F80_0000), x2)
    s.addProduct(mantissa(((w &<< 7) & 0x0078_0000) | 0x3F80_0000), x3)
    return s
}

@inline(__always)
func loadLanes(_ xp: UnsafePointer<Float>, _ b: Int) -> (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>) {
    let raw = UnsafeRawPointer(xp + 32 * b)
    return (raw.loadUnaligned(as: SIMD8<Float>.self), raw.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self),
            raw.loadUnaligned(fromByteOffset: 64, as: SIMD8<Float>.self), raw.loadUnaligned(fromByteOffset: 96, as: SIMD8<Float>.self))
}

/// Q8_0: with S_b = Σ (1 + (q + 128)/256)·x over block b, Σ d·q·x = 256·d·S_b − 384·d·Σx_b.
/// `xp` is x laid out by `prepareBlockInput`.
private func q8Rows(_ w: WeightMatrix, _ xp: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ rows: Range<Int>) {
    let blocks = w.cols / 32, sums = xp + w.cols
    for r in rows {
        let p = w.row(r)
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>()
        var c: Float = 0
        var b = 0
        while b + 2 <= blocks {
            let o = 34 * b
            let d0 = blockScale(p, o), d1 = blockScale(p, o + 34)
            let (x0, x1, x2, x3) = loadLanes(xp, b)
            a0.addProduct(q8BlockSum(p + o + 2, x0, x1, x2, x3), SIMD8(repeating: d0))
            let (x4, x5, x6, x7) = loadLanes(xp, b + 1)
            a1.addProduct(q8BlockSum(p + o + 36, x4, x5, x6, x7), SIMD8(repeating: d1))
            c += d0 * sums[b] + d1 * sums[b + 1]
            b += 2
        }
        if b < blocks {
            let o = 34 * b, d = blockScale(p, o)
            let (x0, x1, x2, x3) = loadLanes(xp, b)
            a0.addProduct(q8BlockSum(p + o + 2, x0, x1, x2, x3), SIMD8(repeating: d))
            c += d * sums[b]
        }
        y[r] = 256 * horizontalSum(a0 + a1) - 384 * c
    }
}

/// Q4_0 and Q4_1: with S_b = Σ (1 + q/16)·x over block b, Σ (d·q + m)·x = 16·d·S_b + (m − 16·d)·Σx_b,
/// where m = −8·d for Q4_0 and the stored minimum for Q4_1. `xp` is x laid out by `prepareBlockInput`.
private func q4Rows(_ w: WeightMatrix, _ xp: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ rows: Range<Int>) {
    if w.dtype == .q4_1 {
        q4Rows(w, xp, y, rows, quants: 4) { p, d in blockScale(p, 2) - 16 * d }
    } else {
        q4Rows(w, xp, y, rows, quants: 2) { _, d in -24 * d }
    }
}

@inline(__always)
private func q4Rows(_ w: WeightMatrix, _ xp: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ rows: Range<Int>,
                    quants: Int, offsetTerm: (UnsafeRawPointer, Float) -> Float) {
    let blocks = w.cols / 32, sums = xp + w.cols, stride = w.dtype.blockBytes
    for r in rows {
        let p = w.row(r)
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>()
        var c: Float = 0
        var b = 0
        while b + 2 <= blocks {
            let o = stride * b
            let d0 = blockScale(p, o), d1 = blockScale(p, o + stride)
            let (x0, x1, x2, x3) = loadLanes(xp, b)
            a0.addProduct(q4BlockSum(p + o + quants, x0, x1, x2, x3), SIMD8(repeating: d0))
            let (x4, x5, x6, x7) = loadLanes(xp, b + 1)
            a1.addProduct(q4BlockSum(p + o + stride + quants, x4, x5, x6, x7), SIMD8(repeating: d1))
            c += offsetTerm(p + o, d0) * sums[b] + offsetTerm(p + o + stride, d1) * sums[b + 1]
            b += 2
        }
        if b < blocks {
            let o = stride * b, d = blockScale(p, o)
            let (x0, x1, x2, x3) = loadLanes(xp, b)
            a0.addProduct(q4BlockSum(p + o + quants, x0, x1, x2, x3), SIMD8(repeating: d))
            c += offsetTerm(p + o, d) * sums[b]
        }
        y[r] = 16 * horizontalSum(a0 + a1) + c
    }
}
