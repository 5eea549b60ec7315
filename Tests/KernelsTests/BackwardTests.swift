import Foundation
import Testing
@testable import Kernels

// The backward passes of RMSNorm, SiLU·mul and RoPE against central differences of float64 forwards:
// L(x) = ⟨dy, f(x)⟩ for a random cotangent dy, so that ∂L/∂x is what the backward kernels compute from dy.

@Suite("RMSNorm backward")
struct RMSNormBackwardTests {
    /// ⟨dy, rmsNorm(x)⟩ in float64.
    private static func loss(_ x: [Double], _ w: [Float], _ dy: [Float], eps: Float) -> Double {
        let n = Double(x.count)
        let r = 1 / (x.reduce(0) { $0 + $1 * $1 } / n + Double(eps)).squareRoot()
        return x.indices.reduce(0) { $0 + Double(dy[$1]) * x[$1] * r * Double(w[$1]) }
    }

    /// Per element against central differences (step 1e-4, error ~1e-9 of the gradient's size). Measured error of
    /// the float32 kernel (see below for its scale): ≤ 1.3e-7; tolerance 1e-6.
    @Test(arguments: [1, 7, 16, 33, 100], [Float(1e-5), 1])
    func matchesCentralDifferences(n: Int, eps: Float) {
        let x = randomFloats(n, in: -3...3, seed: UInt64(n)), w = randomFloats(n, in: 0.5...1.5, seed: UInt64(n + 1))
        let dy = randomFloats(n, seed: UInt64(n + 2))
        let expected = numericGradient(at: doubles(x), step: 1e-4) { Self.loss($0, w, dy, eps: eps) }
        let dx = GuardedFloats(count: n)
        rmsNormBackward(x, weight: w, eps: eps, count: n, dOut: dy, into: dx.pointer, accumulate: false)
        #expect(dx.guardsIntact)
        // The two terms of dx cancel where x dominates eps (n = 1: dx = r·w·dy·eps/(x² + eps)), so the error is
        // measured against the size of the terms, max_i |r·w_i·dy_i| + |x_i|·r³/n·Σ|w·dy·x|.
        let xd = doubles(x), r = 1 / (xd.reduce(0) { $0 + $1 * $1 } / Double(n) + Double(eps)).squareRoot()
        let products = (0..<n).reduce(0.0) { $0 + abs(Double(w[$1]) * Double(dy[$1]) * xd[$1]) }
        let terms = (0..<n).map { abs(r * Double(w[$0]) * Double(dy[$0])) + abs(xd[$0]) * r * r * r / Double(n) * products }
        let error = zip(dx.array, expected).reduce(0.0) { max($0, abs(Double($1.0) - $1.1)) } / terms.max()!
        #expect(error <= 1e-6, "n \(n) eps \(eps): relative error \(error)")

        // Accumulating adds the same values to what is there; dx may alias dOut.
        let start = randomFloats(n, seed: 9)
        let sum = GuardedFloats(start)
        rmsNormBackward(x, weight: w, eps: eps, count: n, dOut: dy, into: sum.pointer, accumulate: true)
        #expect(sum.array == zip(start, dx.array).map { $0 + $1 })
        let aliased = GuardedFloats(dy)
        rmsNormBackward(x, weight: w, eps: eps, count: n, dOut: aliased.pointer, into: aliased.pointer, accumulate: false)
        #expect(aliased.array == dx.array)
    }

    /// The rows variant does each row of `rows` as the single-row call does, and leaves the others alone.
    @Test func rows() {
        let n = 20, t = 4
        let x = randomFloats(t * n, seed: 1), w = randomFloats(n, seed: 2), dy = randomFloats(t * n, seed: 3)
        let dx = GuardedFloats(count: t * n)
        rmsNormBackward(x, weight: w, eps: 1e-6, count: n, rows: 1..<3, dOut: dy, into: dx.pointer, accumulate: false)
        #expect(dx.guardsIntact)
        for row in 0..<t {
            let one = GuardedFloats(count: n)
            rmsNormBackward(Array(x[(row * n)..<(row * n + n)]), weight: w, eps: 1e-6, count: n,
                            dOut: Array(dy[(row * n)..<(row * n + n)]), into: one.pointer, accumulate: false)
            let got = Array(dx.array[(row * n)..<(row * n + n)])
            #expect(got == ((1..<3).contains(row) ? one.array : [Float](repeating: GuardedFloats.sentinel, count: n)),
                    "row \(row)")
        }
    }
}

@Suite("SiLU·mul backward")
struct SiLUMulBackwardTests {
    /// ⟨dOut, silu(g)·u⟩ in float64, over g and u concatenated.
    private static func loss(_ gu: [Double], _ dOut: [Float]) -> Double {
        let n = dOut.count
        return (0..<n).reduce(0) { s, i in
            let g = gu[i]
            return s + Double(dOut[i]) * g / (1 + exp(-g)) * gu[n + i]
        }
    }

    /// Per element against central differences (step 1e-4), g over [−8, 8]. Measured error relative to the largest
    /// gradient: ≤ 2.9e-7 (dGate) and ≤ 6.6e-8 (dUp); tolerances 1e-6 and 5e-7.
    @Test(arguments: [1, 16, 37])
    func matchesCentralDifferences(n: Int) {
        let g = randomFloats(n, in: -8...8, seed: UInt64(n)), u = randomFloats(n, in: -2...2, seed: UInt64(n + 1))
        let dOut = randomFloats(n, seed: UInt64(n + 2))
        let expected = numericGradient(at: doubles(g + u), step: 1e-4) { Self.loss($0, dOut) }
        let dg = GuardedFloats(count: n), du = GuardedFloats(count: n)
        siluMulBackward(gate: g, up: u, dOut: dOut, count: n, dGate: dg.pointer, dUp: du.pointer)
        #expect(dg.guardsIntact && du.guardsIntact)
        let gateError = relativeError(dg.array, Array(expected[0..<n])), upError = relativeError(du.array, Array(expected[n...]))
        #expect(gateError <= 1e-6 && upError <= 5e-7, "n \(n): dGate \(gateError), dUp \(upError)")

        // In place over the inputs (gate → dGate, up → dUp) gives the same.
        let gate = GuardedFloats(g), up = GuardedFloats(u)
        siluMulBackward(gate: gate.pointer, up: up.pointer, dOut: dOut, count: n, dGate: gate.pointer, dUp: up.pointer)
        #expect(gate.array == dg.array && up.array == du.array)
    }

    /// Saturated gates give finite gradients: silu'(−100) ≈ 0, silu'(100) ≈ 1.
    @Test(arguments: [3, 35])
    func extremes(n: Int) {
        let gate = (0..<n).map { [Float(-100), 100, 0][$0 % 3] }
        let ones = [Float](repeating: 1, count: n)
        let dg = FloatBuffer(count: n), du = FloatBuffer(count: n)
        siluMulBackward(gate: gate, up: ones, dOut: ones, count: n, dGate: dg.pointer, dUp: du.pointer)
        for i in 0..<n {
            let expected: (Float, Float) = [(0, 0), (1, 100), (0.5, 0)][i % 3]
            #expect(abs(dg[i] - expected.0) < 1e-6 && abs(du[i] - expected.1) < 1e-4, "gate \(gate[i]): \(dg[i]), \(du[i])")
        }
    }
}

@Suite("RoPE backward")
struct RopeBackwardTests {
    /// ⟨dy, rotate(x)⟩ in float64, from the definition (pairs as `layout` forms them), angles as `Rope.angles`.
    private static func loss(_ x: [Double], _ dy: [Float], layout: Rope.Layout, c: [Float], s: [Float], heads: Int) -> Double {
        let half = c.count, d = 2 * half
        var total = 0.0
        for h in 0..<heads {
            for i in 0..<half {
                let (ia, ib) = layout == .halves ? (h * d + i, h * d + i + half) : (h * d + 2 * i, h * d + 2 * i + 1)
                let a = x[ia], b = x[ib], cos = Double(c[i]), sin = Double(s[i])
                total += Double(dy[ia]) * (a * cos - b * sin) + Double(dy[ib]) * (b * cos + a * sin)
            }
        }
        return total
    }

    /// Against central differences (the loss is linear: exact up to rounding). Measured error relative to the
    /// largest gradient: ≤ 5.3e-8; tolerance 5e-7. Rotating forward then backward gives x (in [−1, 1]) back within 3e-7.
    @Test(arguments: [Rope.Layout.halves, .interleaved])
    func matchesCentralDifferences(layout: Rope.Layout) {
        let rope = Rope(layout: layout, inverseFrequencies: Rope.baseFrequencies(base: 10000, dimensions: 16))
        let heads = 3
        for position in [0, 1, 7, 300] {
            var c = [Float](repeating: 0, count: 8), s = [Float](repeating: 0, count: 8)
            rope.angles(position: position, cos: &c, sin: &s)
            let x = randomFloats(16 * heads, seed: UInt64(position)), dy = randomFloats(16 * heads, seed: UInt64(position + 1))
            let expected = numericGradient(at: doubles(x), step: 1e-3) { Self.loss($0, dy, layout: layout, c: c, s: s, heads: heads) }
            let grad = GuardedFloats(dy)
            rope.rotateBackward(grad.pointer, heads: heads, cos: c, sin: s)
            #expect(grad.guardsIntact)
            let error = relativeError(grad.array, expected)
            #expect(error <= 5e-7, "\(layout) position \(position): relative error \(error)")

            let roundTrip = GuardedFloats(x)
            rope.rotate(roundTrip.pointer, heads: heads, cos: c, sin: s)
            rope.rotateBackward(roundTrip.pointer, heads: heads, cos: c, sin: s)
            for i in x.indices { #expect(abs(roundTrip.pointer[i] - x[i]) <= 3e-7, "round trip \(i)") }
        }
    }
}
