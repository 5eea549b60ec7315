/// RMSNorm: out = x / sqrt(mean(x²) + eps) · weight, in float32 (matches HF LlamaRMSNorm and ggml's rms_norm + mul).
/// `out` may alias `x`. x, out: [n]; weight: [n].
public func rmsNorm(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, eps: Float, count n: Int,
                    into out: UnsafeMutablePointer<Float>) {
    var acc = SIMD16<Float>()
    var i = 0
    while i + 16 <= n {
        let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
        acc.addProduct(v, v)
        i += 16
    }
    var sum = horizontalSum(acc)
    while i < n { sum += x[i] * x[i]; i += 1 }
    let scale = 1 / (sum / Float(n) + eps).squareRoot()
    i = 0
    while i + 16 <= n {
        let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
        let g = UnsafeRawPointer(weight + i).loadUnaligned(as: SIMD16<Float>.self)
        UnsafeMutableRawPointer(out + i).storeBytes(of: v * scale * g, as: SIMD16<Float>.self)
        i += 16
    }
    while i < n { out[i] = x[i] * scale * weight[i]; i += 1 }
}

/// RMSNorm's two halves apart, for a share of x: out = x ∘ weight, and returns Σ x² over the share (RMSNorm(x) =
/// (x ∘ weight) / sqrt(Σx² / n + eps) once every share's sum is known). x, out, weight: [n].
public func weightedSquares(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, count n: Int,
                            into out: UnsafeMutablePointer<Float>) -> Float {
    var acc = SIMD16<Float>()
    var i = 0
    while i + 16 <= n {
        let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
        let g = UnsafeRawPointer(weight + i).loadUnaligned(as: SIMD16<Float>.self)
        acc.addProduct(v, v)
        UnsafeMutableRawPointer(out + i).storeBytes(of: v * g, as: SIMD16<Float>.self)
        i += 16
    }
    var sum = horizontalSum(acc)
    while i < n {
        sum += x[i] * x[i]
        out[i] = x[i] * weight[i]
        i += 1
    }
    return sum
}

/// y += x, both [n].
public func addInPlace(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count n: Int) {
    var i = 0
    while i + 16 <= n {
        let a = UnsafeRawPointer(y + i).loadUnaligned(as: SIMD16<Float>.self)
        let b = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
        UnsafeMutableRawPointer(y + i).storeBytes(of: a + b, as: SIMD16<Float>.self)
        i += 16
    }
    while i < n { y[i] += x[i]; i += 1 }
}
