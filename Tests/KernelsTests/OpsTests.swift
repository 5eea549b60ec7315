import Foundation
import Testing
@testable import Kernels

// rmsNorm, softmax, SiLU·mul, RoPE, attention and the small vector helpers against direct float64 formulas.

@Suite("Elementwise kernels")
struct ElementwiseTests {
    @Test(arguments: [1, 15, 16, 17, 64, 100])
    func rmsNormMatchesFormula(n: Int) {
        let x = randomFloats(n, in: -3...3, seed: UInt64(n))
        let w = randomFloats(n, in: 0.5...1.5, seed: UInt64(n + 1))
        let eps: Float = 1e-5
        let out = GuardedFloats(count: n)
        rmsNorm(x, weight: w, eps: eps, count: n, into: out.pointer)
        #expect(out.guardsIntact)
        let meanSquare = x.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(n)
        let scale = 1 / (meanSquare + Double(eps)).squareRoot()
        for i in 0..<n {
            let expected = Double(x[i]) * scale * Double(w[i])
            // Measured max 1.5e-7.
            #expect(abs(Double(out.pointer[i]) - expected) <= 5e-7 * max(1, abs(expected)), "element \(i)")
        }
        // In place (out aliases x) gives the same.
        let inPlace = GuardedFloats(x)
        rmsNorm(inPlace.pointer, weight: w, eps: eps, count: n, into: inPlace.pointer)
        #expect(inPlace.array == out.array)
    }

    /// The two halves of RMSNorm on a share: x ∘ w, and Σx² — which then give rmsNorm's result.
    @Test(arguments: [1, 15, 16, 17, 100])
    func weightedSquaresAreRMSNormsHalves(n: Int) {
        let x = randomFloats(n, in: -3...3, seed: UInt64(n))
        let w = randomFloats(n, in: 0.5...1.5, seed: UInt64(n + 1))
        let out = GuardedFloats(count: n)
        let squares = weightedSquares(x, weight: w, count: n, into: out.pointer)
        #expect(out.guardsIntact)
        let expected = x.reduce(0.0) { $0 + Double($1) * Double($1) }
        #expect(abs(Double(squares) - expected) <= 5e-7 * expected) // measured max 1.5e-7
        let normed = GuardedFloats(count: n)
        rmsNorm(x, weight: w, eps: 1e-5, count: n, into: normed.pointer)
        let scale = 1 / (squares / Float(n) + 1e-5).squareRoot()
        for i in 0..<n {
            #expect(out.pointer[i] == x[i] * w[i], "element \(i)")
            // Measured max 1.2e-7.
            #expect(abs(out.pointer[i] * scale - normed.pointer[i]) <= 5e-7 * max(1, abs(normed.pointer[i])), "element \(i)")
        }
    }

    @Test func rmsNormEpsilonMatters() {
        // All zeros: the result is 0, not NaN (eps keeps the root positive).
        let out = FloatBuffer(count: 8)
        rmsNorm([Float](repeating: 0, count: 8), weight: [Float](repeating: 1, count: 8), eps: 1e-6, count: 8, into: out.pointer)
        #expect(out.toArray().allSatisfy { $0 == 0 })
        // A tiny input with a large eps is scaled by ~1/sqrt(eps), not normalised to unit RMS: 1e-4 / sqrt(1 + 1e-8)
        // rounds to 1e-4.
        rmsNorm([Float](repeating: 1e-4, count: 8), weight: [Float](repeating: 1, count: 8), eps: 1, count: 8, into: out.pointer)
        #expect(out.toArray().allSatisfy { $0 == 1e-4 })
    }

    @Test(arguments: [1, 2, 7, 16, 33, 128])
    func softmaxMatchesFormula(n: Int) {
        var x = randomFloats(n, in: -10...10, seed: UInt64(n))
        let original = x
        x.withUnsafeMutableBufferPointer { softmaxInPlace($0.baseAddress!, count: n) }
        let m = Double(original.max()!)
        let exps = original.map { exp(Double($0) - m) }
        let total = exps.reduce(0, +)
        for i in 0..<n {
            #expect(abs(Double(x[i]) - exps[i] / total) <= 3e-7, "element \(i)") // measured max 8.3e-8
        }
        #expect(abs(x.reduce(0, +) - 1) <= 6e-7) // measured max 1.8e-7 (with the edge cases' sums)
    }

    /// Large values, masked (−∞) entries, one element, none — at a short length (scalar loop) and a long one (SIMD).
    @Test(arguments: [3, 35])
    func softmaxEdgeCases(n: Int) {
        var big = (0..<n).map { Float(1000 + $0 % 3) }
        big.withUnsafeMutableBufferPointer { softmaxInPlace($0.baseAddress!, count: n) }
        #expect(big.allSatisfy { $0.isFinite })
        #expect(abs(big.reduce(0, +) - 1) <= 6e-7)
        let top = big[2]
        // Measured max 2.4e-7.
        #expect(abs(top / big[1] - Float(M_E)) <= 1e-6 && abs(big[1] / big[0] - Float(M_E)) <= 1e-6)
        var masked = (0..<n).map { $0 % 2 == 0 ? -Float.infinity : 0 }
        masked.withUnsafeMutableBufferPointer { softmaxInPlace($0.baseAddress!, count: n) }
        let open = Float(n / 2)
        // The SIMD exp clamps its input at −87: a masked entry keeps at most e^−87 (9.7e-40 once normalized, measured).
        let floor = Float(exp(-87.0)) / open
        for i in 0..<n {
            if i % 2 == 0 {
                #expect(masked[i] >= 0 && masked[i] <= 2 * floor, "masked entry \(i): \(masked[i])")
            } else {
                #expect(masked[i] == 1 / open, "open entry \(i): \(masked[i])")
            }
        }
        var one: [Float] = [-42]
        one.withUnsafeMutableBufferPointer { softmaxInPlace($0.baseAddress!, count: 1) }
        #expect(one == [1])
        var untouched: [Float] = [3]
        untouched.withUnsafeMutableBufferPointer { softmaxInPlace($0.baseAddress!, count: 0) }
        #expect(untouched == [3])
    }

    @Test(arguments: [1, 16, 37])
    func siluMulMatchesFormula(n: Int) {
        let g = randomFloats(n, in: -8...8, seed: 3), u = randomFloats(n, in: -2...2, seed: 4)
        let out = GuardedFloats(count: n)
        siluMul(gate: g, up: u, count: n, into: out.pointer)
        #expect(out.guardsIntact)
        for i in 0..<n {
            let gd = Double(g[i])
            let expected = gd / (1 + exp(-gd)) * Double(u[i])
            // Measured max 9.9e-8.
            #expect(abs(Double(out.pointer[i]) - expected) <= 4e-7 * max(1, abs(expected)), "element \(i)")
        }
        // Aliasing the gate (as the forward pass does).
        let aliased = GuardedFloats(g)
        siluMul(gate: aliased.pointer, up: u, count: n, into: aliased.pointer)
        #expect(aliased.array == out.array)
    }

    @Test(arguments: [3, 35])
    func siluExtremes(n: Int) {
        let gate = (0..<n).map { [Float(-100), 100, 0][$0 % 3] }
        let out = FloatBuffer(count: n)
        siluMul(gate: gate, up: [Float](repeating: 1, count: n), count: n, into: out.pointer)
        for i in 0..<n {
            switch i % 3 {
            // The SIMD exp clamps its input at 88: silu(−100) = −100 / (1 + e^88) = −6.1e-37 (measured), not −3.7e-42.
            case 0: #expect(abs(out[i]) <= 2e-36, "silu(−100) = \(out[i])")
            case 1: #expect(out[i] == 100, "silu(100) = \(out[i])")
            default: #expect(out[i] == 0)
            }
        }
    }

    @Test(arguments: [1, 15, 16, 17, 40])
    func dotAxpyAdd(n: Int) {
        let a = randomFloats(n, seed: 1), b = randomFloats(n, seed: 2)
        let expected = zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        #expect(abs(Double(dot(a, b, n)) - expected) <= 5e-7) // measured max 1.3e-7
        var y = b
        y.withUnsafeMutableBufferPointer { axpy(0.5, a, $0.baseAddress!, n) }
        for i in 0..<n { #expect(y[i] == b[i] + 0.5 * a[i]) } // 0.5·a is exact: one rounding either way
        var z = b
        z.withUnsafeMutableBufferPointer { addInPlace($0.baseAddress!, a, count: n) }
        for i in 0..<n { #expect(z[i] == b[i] + a[i]) }
    }

    @Test func horizontalSums() {
        let v = SIMD16<Float>((0..<16).map(Float.init))
        #expect(horizontalSum(v) == 120)
        #expect(horizontalSum(SIMD8<Float>(1, 2, 3, 4, 5, 6, 7, 8)) == 36)
    }
}

@Suite("RoPE")
struct RopeTests {
    @Test func baseFrequencies() {
        let f = Rope.baseFrequencies(base: 10000, dimensions: 8)
        #expect(f.count == 4)
        for i in 0..<4 {
            let expected = 1 / pow(10000.0, Double(2 * i) / 8)
            #expect(abs(Double(f[i]) - expected) <= 2e-7 * expected) // measured max 4.8e-8 (float32 rounding)
        }
        #expect(f[0] == 1)
    }

    /// Rotated directly from the definition: pair (a, b) at angle p·f → (a cos − b sin, b cos + a sin).
    private func direct(_ v: [Float], layout: Rope.Layout, frequencies: [Float], position: Int, heads: Int) -> [Double] {
        let d = 2 * frequencies.count, half = frequencies.count
        var out = v.map(Double.init)
        for h in 0..<heads {
            for i in 0..<half {
                // Angles as HF computes them: position · inv_freq in float32, then cos/sin.
                let angle = Double(Float(position) * frequencies[i])
                let (ia, ib) = layout == .halves ? (h * d + i, h * d + i + half) : (h * d + 2 * i, h * d + 2 * i + 1)
                let a = Double(v[ia]), b = Double(v[ib])
                out[ia] = a * cos(angle) - b * sin(angle)
                out[ib] = b * cos(angle) + a * sin(angle)
            }
        }
        return out
    }

    @Test(arguments: [Rope.Layout.halves, .interleaved])
    func rotateMatchesFormula(layout: Rope.Layout) {
        let frequencies = Rope.baseFrequencies(base: 10000, dimensions: 16)
        let rope = Rope(layout: layout, inverseFrequencies: frequencies)
        #expect(rope.dimensions == 16)
        let heads = 3
        for position in [0, 1, 5, 37, 127] {
            let v = randomFloats(16 * heads, seed: UInt64(position))
            let c = FloatBuffer(count: 8), s = FloatBuffer(count: 8)
            rope.angles(position: position, cos: c.pointer, sin: s.pointer)
            let x = GuardedFloats(v)
            rope.rotate(x.pointer, heads: heads, cos: c.pointer, sin: s.pointer)
            #expect(x.guardsIntact)
            let expected = direct(v, layout: layout, frequencies: frequencies, position: position, heads: heads)
            for i in 0..<v.count {
                // Measured max 8.5e-8.
                #expect(abs(Double(x.pointer[i]) - expected[i]) <= 4e-7, "\(layout) position \(position) element \(i)")
            }
            if position == 0 { #expect(x.array == v) }
        }
    }

    @Test func anglesMatchFormula() {
        let frequencies: [Float] = [1, 0.1, 0.01, 0.001]
        let rope = Rope(layout: .halves, inverseFrequencies: frequencies)
        let c = FloatBuffer(count: 4), s = FloatBuffer(count: 4)
        rope.angles(position: 11, cos: c.pointer, sin: s.pointer)
        for i in 0..<4 {
            let a = Double(Float(11) * frequencies[i])
            #expect(abs(Double(c[i]) - cos(a)) <= 1e-7 && abs(Double(s[i]) - sin(a)) <= 1e-7) // measured max 2.6e-8
        }
    }

    /// llama.cpp permutes the q/k rows of a head so that HF's pair (i, i + d/2) lands at (2i, 2i + 1); rotating the
    /// permuted vector interleaved equals permuting the vector rotated in halves.
    @Test func layoutsAgreeUpToThePermutation() {
        let d = 8, half = 4
        let frequencies = Rope.baseFrequencies(base: 500, dimensions: d)
        let halves = Rope(layout: .halves, inverseFrequencies: frequencies)
        let interleaved = Rope(layout: .interleaved, inverseFrequencies: frequencies)
        let v = randomFloats(d, seed: 3)
        var permuted = [Float](repeating: 0, count: d)
        for i in 0..<half { permuted[2 * i] = v[i]; permuted[2 * i + 1] = v[i + half] }
        let c = FloatBuffer(count: half), s = FloatBuffer(count: half)
        halves.angles(position: 9, cos: c.pointer, sin: s.pointer)
        var a = v, b = permuted
        a.withUnsafeMutableBufferPointer { halves.rotate($0.baseAddress!, heads: 1, cos: c.pointer, sin: s.pointer) }
        b.withUnsafeMutableBufferPointer { interleaved.rotate($0.baseAddress!, heads: 1, cos: c.pointer, sin: s.pointer) }
        for i in 0..<half {
            #expect(b[2 * i] == a[i] && b[2 * i + 1] == a[i + half])
        }
    }
}

@Suite("Attention")
struct AttentionTests {
    @Test(arguments: [1, 2, 9, 40], [16, 64, 128, 80])
    func attendOneMatchesFormula(count: Int, d: Int) {
        let stride = d + 8 // stride > d: rows of a wider cache
        let q = randomFloats(d, seed: 1)
        let keys = randomFloats(count * stride, seed: 2), values = randomFloats(count * stride, seed: 3)
        let scale = 1 / Float(d).squareRoot()
        let scores = GuardedFloats(count: count), out = GuardedFloats(count: d)
        attendOne(query: q, keys: keys, values: values, count: count, stride: stride, headDim: d, scale: scale,
                  scores: scores.pointer, into: out.pointer)
        #expect(scores.guardsIntact && out.guardsIntact)
        var logits = (0..<count).map { p in (0..<d).reduce(0.0) { $0 + Double(q[$1]) * Double(keys[p * stride + $1]) } * Double(scale) }
        let m = logits.max()!
        logits = logits.map { exp($0 - m) }
        let total = logits.reduce(0, +)
        for j in 0..<d {
            let expected = (0..<count).reduce(0.0) { $0 + logits[$1] / total * Double(values[$1 * stride + j]) }
            #expect(abs(Double(out.pointer[j]) - expected) <= 4e-7, "element \(j)") // measured max 8.8e-8
        }
        if count == 1 {
            #expect(out.array == Array(values[0..<d]))
        }
    }

    /// Partials of a group of heads over split position ranges, merged, equal one pass per head — empty parts
    /// included.
    @Test(arguments: [1, 5, 40], [16, 64, 128])
    func partialsMerge(count: Int, d: Int) {
        let heads = 3, parts = 4
        let q = randomFloats(heads * d, seed: 11)
        let keys = randomFloats(count * d, seed: 12), values = randomFloats(count * d, seed: 13)
        let scale = 1 / Float(d).squareRoot()
        let slot = heads * (d + 2)
        let partial = GuardedFloats(count: parts * slot)
        let scores = GuardedFloats(count: heads * count)
        for s in 0..<parts {
            let range = ThreadPool.chunk(count, part: s, of: parts)
            let base = partial.pointer + s * slot
            keys.withUnsafeBufferPointer { k in
                values.withUnsafeBufferPointer { v in
                    attendPartial(queries: q, heads: heads, keys: k.baseAddress! + range.lowerBound * d,
                                  values: v.baseAddress! + range.lowerBound * d, count: range.count, stride: d,
                                  headDim: d, scale: scale, scores: scores.pointer, maxima: base + heads * d,
                                  sums: base + heads * d + heads, into: base)
                }
            }
        }
        #expect(partial.guardsIntact && scores.guardsIntact)
        for j in 0..<heads {
            let merged = GuardedFloats(count: d), single = GuardedFloats(count: d), oneScores = GuardedFloats(count: count)
            mergeAttention(parts: parts, maxima: partial.pointer + heads * d + j, sums: partial.pointer + heads * d + heads + j,
                           scalarStride: slot, outputs: partial.pointer + j * d, outputStride: slot, headDim: d,
                           into: merged.pointer)
            q.withUnsafeBufferPointer { qp in
                attendOne(query: qp.baseAddress! + j * d, keys: keys, values: values, count: count, stride: d, headDim: d,
                          scale: scale, scores: oneScores.pointer, into: single.pointer)
            }
            for i in 0..<d {
                // Measured max 6.0e-8.
                #expect(abs(merged.pointer[i] - single.pointer[i]) <= 2.5e-7, "head \(j) element \(i)")
            }
        }
    }
}
