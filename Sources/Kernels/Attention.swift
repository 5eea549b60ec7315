#if canImport(Glibc)
import Glibc
#endif

// Scaled dot-product attention over the KV cache, in float32 as HF eager attention computes it.
//
// The core computes a *partial* result over a range of positions for the query heads that share one KV head
// (grouped-query attention: each key and value is read from memory once for the whole group): per head the
// maximum score m, the sum l of e^(s − m), and the un-normalised output o = Σ e^(s − m)·v. Partials over disjoint
// ranges merge exactly (`mergeAttention`), which lets decoding split one head's positions between threads.

/// Partial attention of `heads` query heads over `count` positions of one KV head.
///
/// - queries: the heads' vectors, head j at `queries + j · headDim`
/// - keys, values: position p's vector at `+ p · stride`
/// - scores: scratch [heads · count]
/// - maxima, sums: [heads] outputs m and l; out: [heads · headDim] output o (un-normalised)
public func attendPartial(queries q: UnsafePointer<Float>, heads: Int, keys: UnsafePointer<Float>,
                          values: UnsafePointer<Float>, count: Int, stride: Int, headDim d: Int, scale: Float,
                          scores: UnsafeMutablePointer<Float>, maxima: UnsafeMutablePointer<Float>,
                          sums: UnsafeMutablePointer<Float>, into out: UnsafeMutablePointer<Float>) {
    out.initialize(repeating: 0, count: heads * d)
    guard count > 0 else {
        for j in 0..<heads { maxima[j] = -.infinity; sums[j] = 0 }
        return
    }
    for j in 0..<heads {
        let qj = q + j * d, sj = scores + j * count
        var p = 0
        while p + 4 <= count {
            let k0 = keys + p * stride
            let s4 = dot4(qj, k0, k0 + stride, k0 + 2 * stride, k0 + 3 * stride, d) * scale
            UnsafeMutableRawPointer(sj + p).storeBytes(of: s4, as: SIMD4<Float>.self)
            p += 4
        }
        while p < count {
            sj[p] = dot(qj, keys + p * stride, d) * scale
            p += 1
        }
        let (m, l) = exponentiate(sj, count: count)
        maxima[j] = m
        sums[j] = l
    }
    // o_j = Σ_p e_jp·v_p. Common head sizes keep the sums in registers across positions; others accumulate in
    // memory, reading each value row once for the whole group.
    if d == 64 || d == 128 {
        for j in 0..<heads {
            if d == 64 {
                weightedSum(scores + j * count, values, count: count, stride: stride, into: out + j * d, chunks: 4)
            } else {
                weightedSum(scores + j * count, values, count: count, stride: stride, into: out + j * d, chunks: 8)
            }
        }
        return
    }
    for p in 0..<count {
        let vp = values + p * stride
        for j in 0..<heads { axpy(scores[j * count + p], vp, out + j * d, d) }
    }
}

/// out[0..<16·chunks] = Σ_p w[p]·v[p], the sums held in registers (`chunks` is 4 or 8: head sizes 64 and 128).
@inline(__always)
private func weightedSum(_ w: UnsafePointer<Float>, _ v: UnsafePointer<Float>, count: Int, stride: Int,
                         into out: UnsafeMutablePointer<Float>, chunks: Int) {
    var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
    var a4 = SIMD16<Float>(), a5 = SIMD16<Float>(), a6 = SIMD16<Float>(), a7 = SIMD16<Float>()
    for p in 0..<count {
        let row = UnsafeRawPointer(v + p * stride)
        let s = SIMD16<Float>(repeating: w[p])
        a0.addProduct(s, row.loadUnaligned(as: SIMD16<Float>.self))
        a1.addProduct(s, row.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self))
        a2.addProduct(s, row.loadUnaligned(fromByteOffset: 128, as: SIMD16<Float>.self))
        a3.addProduct(s, row.loadUnaligned(fromByteOffset: 192, as: SIMD16<Float>.self))
        if chunks == 8 {
            a4.addProduct(s, row.loadUnaligned(fromByteOffset: 256, as: SIMD16<Float>.self))
            a5.addProduct(s, row.loadUnaligned(fromByteOffset: 320, as: SIMD16<Float>.self))
            a6.addProduct(s, row.loadUnaligned(fromByteOffset: 384, as: SIMD16<Float>.self))
            a7.addProduct(s, row.loadUnaligned(fromByteOffset: 448, as: SIMD16<Float>.self))
        }
    }
    let o = UnsafeMutableRawPointer(out)
    o.storeBytes(of: a0, as: SIMD16<Float>.self)
    o.storeBytes(of: a1, toByteOffset: 64, as: SIMD16<Float>.self)
    o.storeBytes(of: a2, toByteOffset: 128, as: SIMD16<Float>.self)
    o.storeBytes(of: a3, toByteOffset: 192, as: SIMD16<Float>.self)
    if chunks == 8 {
        o.storeBytes(of: a4, toByteOffset: 256, as: SIMD16<Float>.self)
        o.storeBytes(of: a5, toByteOffset: 320, as: SIMD16<Float>.self)
        o.storeBytes(of: a6, toByteOffset: 384, as: SIMD16<Float>.self)
        o.storeBytes(of: a7, toByteOffset: 448, as: SIMD16<Float>.self)
    }
}

/// Scaled dot-product attention of one query head over `count` positions, normalised: out [d].
/// `scores` is scratch [count].
public func attendOne(query q: UnsafePointer<Float>, keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
                      count: Int, stride: Int, headDim d: Int, scale: Float,
                      scores: UnsafeMutablePointer<Float>, into out: UnsafeMutablePointer<Float>) {
    var m: Float = 0, l: Float = 0
    attendPartial(queries: q, heads: 1, keys: keys, values: values, count: count, stride: stride, headDim: d,
                  scale: scale, scores: scores, maxima: &m, sums: &l, into: out)
    let inverse = l > 0 ? 1 / l : 0
    for i in 0..<d { out[i] *= inverse }
}

/// Merges `parts` partial results of one head (each m, l and o [d], consecutive with the given strides) into the
/// normalised output [d]: o = Σ e^(m_s − M)·o_s / Σ e^(m_s − M)·l_s, M = max m_s.
public func mergeAttention(parts: Int, maxima: UnsafePointer<Float>, sums: UnsafePointer<Float>, scalarStride: Int,
                           outputs: UnsafePointer<Float>, outputStride: Int, headDim d: Int,
                           into out: UnsafeMutablePointer<Float>) {
    var top = -Float.infinity
    for s in 0..<parts { top = max(top, maxima[s * scalarStride]) }
    out.initialize(repeating: 0, count: d)
    var total: Float = 0
    for s in 0..<parts where sums[s * scalarStride] > 0 {
        let weight = expf(maxima[s * scalarStride] - top)
        total += weight * sums[s * scalarStride]
        axpy(weight, outputs + s * outputStride, out, d)
    }
    let inverse = total > 0 ? 1 / total : 0
    for i in 0..<d { out[i] *= inverse }
}

/// The dot products of `q` with four vectors at once (sharing the loads of q), each [n].
@inline(__always)
func dot4(_ q: UnsafePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafePointer<Float>,
          _ e: UnsafePointer<Float>, _ n: Int) -> SIMD4<Float> {
    var s0 = SIMD16<Float>(), s1 = SIMD16<Float>(), s2 = SIMD16<Float>(), s3 = SIMD16<Float>()
    var i = 0
    while i + 16 <= n {
        let qv = UnsafeRawPointer(q + i).loadUnaligned(as: SIMD16<Float>.self)
        s0.addProduct(qv, UnsafeRawPointer(a + i).loadUnaligned(as: SIMD16<Float>.self))
        s1.addProduct(qv, UnsafeRawPointer(b + i).loadUnaligned(as: SIMD16<Float>.self))
        s2.addProduct(qv, UnsafeRawPointer(c + i).loadUnaligned(as: SIMD16<Float>.self))
        s3.addProduct(qv, UnsafeRawPointer(e + i).loadUnaligned(as: SIMD16<Float>.self))
        i += 16
    }
    var r = SIMD4<Float>(horizontalSum(s0), horizontalSum(s1), horizontalSum(s2), horizontalSum(s3))
    while i < n {
        r += q[i] * SIMD4<Float>(a[i], b[i], c[i], e[i])
        i += 1
    }
    return r
}

/// Σ a[i]·b[i] over [n].
@inline(__always)
public func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = SIMD16<Float>()
    var i = 0
    while i + 16 <= n {
        acc.addProduct(UnsafeRawPointer(a + i).loadUnaligned(as: SIMD16<Float>.self),
                       UnsafeRawPointer(b + i).loadUnaligned(as: SIMD16<Float>.self))
        i += 16
    }
    var s = horizontalSum(acc)
    while i < n { s += a[i] * b[i]; i += 1 }
    return s
}

/// y += alpha · x over [n].
@inline(__always)
public func axpy(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    var i = 0
    let a = SIMD16<Float>(repeating: alpha)
    while i + 16 <= n {
        let yv = UnsafeRawPointer(y + i).loadUnaligned(as: SIMD16<Float>.self)
        let xv = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
        UnsafeMutableRawPointer(y + i).storeBytes(of: yv + a * xv, as: SIMD16<Float>.self)
        i += 16
    }
    while i < n { y[i] += alpha * x[i]; i += 1 }
}
