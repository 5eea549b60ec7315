// Q4_0 and Q4_1 rows by integer dot products (x86-64, AVX2): x is quantized per block of 32 to 16-bit integers
// (scale max|x|/32767, so each element is within 1.5e-5 of the block's largest), the nibbles are widened to 16-bit
// words, and vpmaddwd multiplies and pairs them — about half the instructions of expanding every nibble to a float,
// which is what bounds 4-bit decoding on two cores. 16 bits, not llama.cpp's 8: the logits stay within ~1e-4 of
// the float reference instead of ~5e-2.
//
// Block layout (ggml): Q4_0 = f16 d, 16 bytes; Q4_1 = f16 d, f16 m, 16 bytes. Byte j holds element j in its low
// nibble and element j + 16 in its high one; an element is d·(q − 8) (Q4_0) or d·q + m (Q4_1).

#if arch(x86_64)
import _Builtin_intrinsics.intel

/// Floats of scratch that `prepareInt16Input` fills for `count` inputs.
func int16InputScratchCount(_ count: Int) -> Int { count / 2 + 2 * (count / 32) }

/// x [count] (a multiple of 32) as, per block b: 32 16-bit integers q (64 bytes, in order), then after all blocks
/// the scales s_b (x ≈ s_b·q) and then Σq·s_b.
@inline(__always)
func prepareInt16Input(_ x: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<Float>) {
    let scales = out + count / 2
    prepareInt16Input(x, count: count, quants: UnsafeMutableRawPointer(out), blockStride: 64, scales: scales,
                      sums: scales + count / 32, scaleStride: 1)
}

/// `prepareInt16Input` with block b's 32 integers at `quants + b · blockStride` bytes and its scale and Σq·s at
/// `scales[b · scaleStride]` and `sums[b · scaleStride]`: the batched kernels interleave the blocks of several rows.
@inline(__always)
func prepareInt16Input(_ x: UnsafePointer<Float>, count: Int, quants: UnsafeMutableRawPointer, blockStride: Int,
                       scales: UnsafeMutablePointer<Float>, sums: UnsafeMutablePointer<Float>, scaleStride: Int) {
    let blocks = count / 32
    let order = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7), ones = _mm256_set1_epi16(1)
    for b in 0..<blocks {
        let src = UnsafeRawPointer(x + 32 * b)
        let v0 = src.loadUnaligned(as: SIMD8<Float>.self), v1 = src.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self)
        let v2 = src.loadUnaligned(fromByteOffset: 64, as: SIMD8<Float>.self)
        let v3 = src.loadUnaligned(fromByteOffset: 96, as: SIMD8<Float>.self)
        let m = _mm256_max_ps(_mm256_max_ps(magnitude(v0), magnitude(v1)), _mm256_max_ps(magnitude(v2), magnitude(v3)))
        let largest = horizontalMax(m)
        let inverse: Float = largest > 0 ? 32767 / largest : 0
        let s = SIMD8<Float>(repeating: inverse)
        // Round to nearest, pack to 16 bits (saturating; lanes interleave by 128-bit halves), restore the order.
        let i0 = _mm256_cvtps_epi32(v0 * s), i1 = _mm256_cvtps_epi32(v1 * s)
        let i2 = _mm256_cvtps_epi32(v2 * s), i3 = _mm256_cvtps_epi32(v3 * s)
        let lo = _mm256_permutevar8x32_epi32(_mm256_packs_epi32(i0, i1), order)
        let hi = _mm256_permutevar8x32_epi32(_mm256_packs_epi32(i2, i3), order)
        quants.storeBytes(of: lo, toByteOffset: blockStride * b, as: __m256i.self)
        quants.storeBytes(of: hi, toByteOffset: blockStride * b + 32, as: __m256i.self)
        // Σq through the same multiply-add against ones.
        let total = horizontalSum(_mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_madd_epi16(lo, ones), _mm256_madd_epi16(hi, ones))))
        let scale = largest / 32767
        scales[scaleStride * b] = scale
        sums[scaleStride * b] = total * scale
    }
}

/// y[r] = W[r, :] · x for Q4_0 / Q4_1 rows, with x as `prepareInt16Input` laid it out.
func q4RowsInt16(_ w: WeightMatrix, _ xp: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ rows: Range<Int>) {
    let minimum = w.dtype == .q4_1
    let blocks = w.cols / 32, stride = w.dtype.blockBytes, quantOffset = minimum ? 4 : 2
    let xq = UnsafeRawPointer(xp), scales = xp + w.cols / 2, sums = scales + blocks
    for r in rows {
        let p = w.row(r)
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>()
        var c: Float = 0
        @inline(__always) func block(_ b: Int, into a: inout SIMD8<Float>) -> Float {
            let o = stride * b
            let d = Float(p.loadUnaligned(fromByteOffset: o, as: Float16.self))
            let dot = q4BlockDot(q4Nibbles(p + o + quantOffset), xq + 64 * b)
            // Q4_0: d·(q − 8)·x summed = d·s·Σq·xq − 8·d·(s·Σxq); Q4_1: d·s·Σq·xq + m·(s·Σxq).
            let offset = minimum ? Float(p.loadUnaligned(fromByteOffset: o + 2, as: Float16.self)) : -8 * d
            a.addProduct(dot, SIMD8(repeating: d * scales[b]))
            return offset * sums[b]
        }
        var b = 0
        while b + 2 <= blocks {
            c += block(b, into: &a0) + block(b + 1, into: &a1)
            b += 2
        }
        if b < blocks { c += block(b, into: &a0) }
        y[r] = horizontalSum(a0 + a1) + c
    }
}

/// One Q4 block's 16 quant bytes as 16-bit words: low nibbles (elements 0..<16) and high nibbles (16..<32).
@inline(__always)
func q4Nibbles(_ quants: UnsafeRawPointer) -> (low: __m256i, high: __m256i) {
    let bytes = _mm256_cvtepu8_epi16(quants.loadUnaligned(as: __m128i.self))
    return (_mm256_and_si256(bytes, _mm256_set1_epi16(0x0F)), _mm256_srli_epi16(bytes, 4))
}

/// Σ q·xq over one block, as 8 exact sums of four products (lane i: elements 2i, 2i + 1, 2i + 16, 2i + 17),
/// converted to float; `xq` is the block's 32 integers from `prepareInt16Input`. Shared by `matvec` and the batched
/// kernels, so that both round alike.
@inline(__always)
func q4BlockDot(_ nibbles: (low: __m256i, high: __m256i), _ xq: UnsafeRawPointer) -> SIMD8<Float> {
    let x0 = xq.loadUnaligned(as: __m256i.self), x1 = xq.loadUnaligned(fromByteOffset: 32, as: __m256i.self)
    return _mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_madd_epi16(nibbles.low, x0), _mm256_madd_epi16(nibbles.high, x1)))
}

@inline(__always) private func magnitude(_ v: SIMD8<Float>) -> SIMD8<Float> { _mm256_max_ps(v, -v) }

@inline(__always) private func horizontalMax(_ v: SIMD8<Float>) -> Float {
    var m = v[0]
    for i in 1..<8 { m = max(m, v[i]) }
    return m
}
#endif
