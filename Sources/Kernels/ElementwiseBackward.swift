#if canImport(Glibc)
import Glibc
#endif

// The backward pass of the MLP's SwiGLU, out = silu(g) · u (`siluMul`), elementwise.
//
// With σ = 1/(1 + e^−g) and silu(g) = g·σ: silu'(g) = σ + g·σ(1 − σ) = σ(1 + g(1 − σ)), so
// dg = dOut · u · σ(1 + g(1 − σ)) and du = dOut · silu(g).

/// ∂L/∂gate and ∂L/∂up of `siluMul(gate:, up:)` given dOut = ∂L/∂out, all [n] (a row, or T rows at once: the
/// operation is elementwise). dGate and dUp are overwritten. Each element's inputs are read before its outputs are
/// written, so `dGate` may alias `gate` or `dOut`, and `dUp` may alias `up` (or `dOut` when dGate does not).
public func siluMulBackward(gate: UnsafePointer<Float>, up: UnsafePointer<Float>, dOut: UnsafePointer<Float>,
                            count n: Int, dGate: UnsafeMutablePointer<Float>, dUp: UnsafeMutablePointer<Float>) {
    var i = 0
    while i + 16 <= n {
        let g = load16(gate, i), u = load16(up, i), d = load16(dOut, i)
        let s = 1 / (1 + exp(-g))
        let gradGate = d * u * s * (1 + g * (1 - s)), gradUp = d * g * s
        UnsafeMutableRawPointer(dGate + i).storeBytes(of: gradGate, as: SIMD16<Float>.self)
        UnsafeMutableRawPointer(dUp + i).storeBytes(of: gradUp, as: SIMD16<Float>.self)
        i += 16
    }
    while i < n {
        let g = gate[i], u = up[i], d = dOut[i]
        let s = 1 / (1 + expf(-g))
        dGate[i] = d * u * s * (1 + g * (1 - s))
        dUp[i] = d * g * s
        i += 1
    }
}
