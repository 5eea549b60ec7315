#if canImport(Glibc)
import Glibc
#endif

// Row pieces of every softmax (decoding attention's and `softmaxInPlace` through `exponentiate`; training's
// attention and cross-entropy): maximum, shifted exponentials and their sum, scaling. The lane-wise maximum is an
// element loop, which LLVM turns into one vector compare and blend; the standard library's `pointwiseMax`
// compiles to a lane-by-lane loop through the stack that cost more than the exponentials.

/// max p[0..<n] (−∞ for n = 0).
@inline(__always)
func rowMaximum(_ p: UnsafePointer<Float>, count n: Int) -> Float {
    var m = SIMD16<Float>(repeating: -.infinity)
    var i = 0
    while i + 16 <= n {
        let v = load16(p, i)
        for lane in 0..<16 { m[lane] = v[lane] > m[lane] ? v[lane] : m[lane] }
        i += 16
    }
    var top = -Float.infinity
    for lane in 0..<16 { top = m[lane] > top ? m[lane] : top }
    while i < n { top = p[i] > top ? p[i] : top; i += 1 }
    return top
}

/// p[j] ← e^(p[j] − shift) for j in 0..<n; returns Σ e^(p[j] − shift).
@inline(__always)
func exponentiateRow(_ p: UnsafeMutablePointer<Float>, count n: Int, shift: Float) -> Float {
    let s = SIMD16<Float>(repeating: shift)
    var sums = SIMD16<Float>()
    var i = 0
    while i + 16 <= n {
        let e = exp(load16(p, i) - s)
        UnsafeMutableRawPointer(p + i).storeBytes(of: e, as: SIMD16<Float>.self)
        sums += e
        i += 16
    }
    var sum = horizontalSum(sums)
    while i < n {
        let e = expf(p[i] - shift)
        p[i] = e
        sum += e
        i += 1
    }
    return sum
}

/// p[j] ← p[j] · factor for j in 0..<n.
@inline(__always)
func scaleRow(_ p: UnsafeMutablePointer<Float>, count n: Int, by factor: Float) {
    let f = SIMD16<Float>(repeating: factor)
    var i = 0
    while i + 16 <= n {
        UnsafeMutableRawPointer(p + i).storeBytes(of: load16(p, i) * f, as: SIMD16<Float>.self)
        i += 16
    }
    while i < n { p[i] *= factor; i += 1 }
}
