import Foundation

/// SiLU(gate) · up, elementwise over [n] (the SwiGLU of Llama's MLP): out[i] = g / (1 + e^−g) · u.
/// `out` may alias either input.
public func siluMul(gate: UnsafePointer<Float>, up: UnsafePointer<Float>, count n: Int,
                    into out: UnsafeMutablePointer<Float>) {
    for i in 0..<n {
        let g = gate[i]
        out[i] = g / (1 + expf(-g)) * up[i]
    }
}

/// Softmax over x[0..<n] in place, in float32, shifted by the maximum.
public func softmaxInPlace(_ x: UnsafeMutablePointer<Float>, count n: Int) {
    guard n > 0 else { return }
    var m = x[0]
    for i in 1..<n { m = max(m, x[i]) }
    var sum: Float = 0
    for i in 0..<n {
        let e = expf(x[i] - m)
        x[i] = e
        sum += e
    }
    let inv = 1 / sum
    for i in 0..<n { x[i] *= inv }
}
