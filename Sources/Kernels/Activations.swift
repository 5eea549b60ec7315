#if canImport(Glibc)
import Glibc
#endif

/// SiLU(gate) · up, elementwise over [n] (the SwiGLU of Llama's MLP): out[i] = g / (1 + e^−g) · u.
/// `out` may alias either input.
public func siluMul(gate: UnsafePointer<Float>, up: UnsafePointer<Float>, count n: Int,
                    into out: UnsafeMutablePointer<Float>) {
    var i = 0
    while i + 16 <= n {
        let g = UnsafeRawPointer(gate + i).loadUnaligned(as: SIMD16<Float>.self)
        let u = UnsafeRawPointer(up + i).loadUnaligned(as: SIMD16<Float>.self)
        UnsafeMutableRawPointer(out + i).storeBytes(of: g / (1 + exp(-g)) * u, as: SIMD16<Float>.self)
        i += 16
    }
    while i < n {
        let g = gate[i]
        out[i] = g / (1 + expf(-g)) * up[i]
        i += 1
    }
}

/// Softmax over x[0..<n] in place, in float32, shifted by the maximum.
public func softmaxInPlace(_ x: UnsafeMutablePointer<Float>, count n: Int) {
    guard n > 0 else { return }
    let (_, sum) = exponentiate(x, count: n)
    scaleRow(x, count: n, by: 1 / sum)
}

/// x[i] ← e^(x[i] − m) in place, m = max x; returns m and Σ e^(x[i] − m). n > 0. (The row pieces of
/// SoftmaxRows.swift.)
@inline(__always)
func exponentiate(_ x: UnsafeMutablePointer<Float>, count n: Int) -> (maximum: Float, sum: Float) {
    let m = rowMaximum(x, count: n)
    return (m, exponentiateRow(x, count: n, shift: m))
}

/// e^x for 16 lanes, to about 1 ulp (Cephes' expf: x = n·ln2 + r, |r| ≤ ln2/2, a degree-6 polynomial for e^r,
/// and 2^n built in the exponent bits). Inputs below −87 give ≈ 0 rather than denormals; above 88, +∞-like.
@inline(__always)
public func exp(_ x: SIMD16<Float>) -> SIMD16<Float> {
    let clamped = pointwiseMin(pointwiseMax(x, SIMD16(repeating: -87)), SIMD16(repeating: 88))
    // Round x·log2(e) to the nearest integer n by adding 1.5·2^23: n lands in the low mantissa bits of t.
    let magic = SIMD16<Float>(repeating: 12_582_912)
    let t = clamped * 1.442_695_04 + magic
    let n = t - magic
    var r = clamped - n * 0.693_359_375
    r = r - n * -2.121_944_4e-4
    let r2 = r * r
    var p = SIMD16<Float>(repeating: 1.987_569_15e-4)
    p = p * r + 1.398_199_95e-3
    p = p * r + 8.333_451_9e-3
    p = p * r + 4.166_579_59e-2
    p = p * r + 1.666_666_55e-1
    p = p * r + 5.000_000_12e-1
    p = p * r2 + r + 1
    // 2^n: n's bits (two's complement in the low mantissa bits of t) shifted into the exponent field.
    let bits = unsafeBitCast(t, to: SIMD16<Int32>.self) &<< 23
    return unsafeBitCast(unsafeBitCast(p, to: SIMD16<Int32>.self) &+ bits, to: SIMD16<Float>.self)
}
