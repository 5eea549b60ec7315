/// Scaled dot-product attention of one query head over `count` cached positions.
///
/// q: [d]; keys, values: position p's vector at `keys + p · stride` (the KV cache rows of one KV head);
/// scores: scratch [count]; out: [d]. scale is usually 1/√d. Matches HF eager attention: softmax in float32.
public func attendOne(query q: UnsafePointer<Float>, keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
                      count: Int, stride: Int, headDim d: Int, scale: Float,
                      scores: UnsafeMutablePointer<Float>, into out: UnsafeMutablePointer<Float>) {
    for p in 0..<count {
        scores[p] = dot(q, keys + p * stride, d) * scale
    }
    softmaxInPlace(scores, count: count)
    out.initialize(repeating: 0, count: d)
    for p in 0..<count {
        axpy(scores[p], values + p * stride, out, d)
    }
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
