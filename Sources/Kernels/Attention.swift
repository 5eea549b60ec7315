/// Scaled dot-product attention of one query head over `count` cached positions.
///
/// q: [d]; keys, values: position p's vector at `keys + p · stride` (the KV cache rows of one KV head);
/// scores: scratch [count]; out: [d]. scale is usually 1/√d. Matches HF eager attention: softmax in float32.
public func attendOne(query q: UnsafePointer<Float>, keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
                      count: Int, stride: Int, headDim d: Int, scale: Float,
                      scores: UnsafeMutablePointer<Float>, into out: UnsafeMutablePointer<Float>) {
    var p = 0
    while p + 4 <= count {
        let k0 = keys + p * stride
        let s = dot4(q, k0, k0 + stride, k0 + 2 * stride, k0 + 3 * stride, d) * scale
        UnsafeMutableRawPointer(scores + p).storeBytes(of: s, as: SIMD4<Float>.self)
        p += 4
    }
    while p < count {
        scores[p] = dot(q, keys + p * stride, d) * scale
        p += 1
    }
    softmaxInPlace(scores, count: count)
    out.initialize(repeating: 0, count: d)
    for p in 0..<count {
        axpy(scores[p], values + p * stride, out, d)
    }
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
