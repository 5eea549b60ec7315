import Foundation
import Testing
@testable import Kernels

// Causal GQA attention for training against float64 loops: the forward (out, lse), the backward (dq, dk, dv) against
// the textbook softmax backward, and the kernels' gradients against central differences of the float64 forward.

/// One configuration: rows, heads, segments (a gap between two of them, in 23..<26, belongs to none), window.
struct AttentionCase: CustomTestStringConvertible, Sendable {
    let tokens: Int, heads: Int, kvHeads: Int, headDim: Int
    let segments: [Range<Int>]
    let window: Int?
    let queryBlock: Int

    var testDescription: String { "T\(tokens) H\(heads) KV\(kvHeads) hd\(headDim) W\(window.map(String.init) ?? "-") B\(queryBlock)" }

    static let packed = [0..<5, 5..<6, 26..<40, 6..<23]
    static let all = [
        AttentionCase(tokens: 40, heads: 6, kvHeads: 2, headDim: 20, segments: packed, window: nil, queryBlock: 8),
        AttentionCase(tokens: 40, heads: 3, kvHeads: 3, headDim: 16, segments: packed, window: 4, queryBlock: 8),
        AttentionCase(tokens: 40, heads: 6, kvHeads: 2, headDim: 33, segments: packed, window: 11, queryBlock: 64),
        AttentionCase(tokens: 40, heads: 2, kvHeads: 1, headDim: 8, segments: packed, window: 1, queryBlock: 3),
        AttentionCase(tokens: 1, heads: 3, kvHeads: 1, headDim: 16, segments: [0..<1], window: nil, queryBlock: 64),
    ]
    /// SmolLM2-135M's attention over one 256-token sequence.
    static let smolLM = AttentionCase(tokens: 256, heads: 9, kvHeads: 3, headDim: 64, segments: [0..<256], window: nil,
                                      queryBlock: 64)

    func layout(threads: Int) -> TrainingAttention {
        TrainingAttention(segments: segments, heads: heads, kvHeads: kvHeads, headDim: headDim, window: window,
                          threads: threads, queryBlock: queryBlock)!
    }

    /// For each row in a segment: its segment's first row, else nil.
    func segmentStart(_ row: Int) -> Int? { segments.first { $0.contains(row) }?.lowerBound }

    /// The rows `row` attends to.
    func visible(_ row: Int) -> Range<Int> {
        let start = segmentStart(row)!
        return max(start, row - (window ?? row + 1) + 1)..<(row + 1)
    }

    // MARK: float64 reference (plain loops over buffer pointers: the 256-row case runs unoptimized in debug builds)

    /// The softmax row of (row, head) over `visible(row)`: p [keys] in float64, and its log-sum-exp.
    private func probabilities(_ q: UnsafeBufferPointer<Double>, _ k: UnsafeBufferPointer<Double>, row: Int, head: Int)
        -> (p: [Double], lse: Double) {
        let kv = head / (heads / kvHeads), scale = 1 / Double(headDim).squareRoot(), keys = visible(row)
        let qi = (row * heads + head) * headDim
        var s = [Double](repeating: 0, count: keys.count)
        for (index, j) in keys.enumerated() {
            let kj = (j * kvHeads + kv) * headDim
            var dot = 0.0
            for d in 0..<headDim { dot += q[qi + d] * k[kj + d] }
            s[index] = dot * scale
        }
        let m = s.max()!
        var l = 0.0
        for index in s.indices { s[index] = exp(s[index] - m); l += s[index] }
        for index in s.indices { s[index] /= l }
        return (s, m + log(l))
    }

    /// out [T, H·hd] and lse [T, H] (0 outside the segments).
    func forward(q: [Double], k: [Double], v: [Double]) -> (out: [Double], lse: [Double]) {
        var out = [Double](repeating: 0, count: tokens * heads * headDim), lse = [Double](repeating: 0, count: tokens * heads)
        q.withUnsafeBufferPointer { q in k.withUnsafeBufferPointer { k in v.withUnsafeBufferPointer { v in
            for row in 0..<tokens where segmentStart(row) != nil {
                for h in 0..<heads {
                    let (p, rowLSE) = probabilities(q, k, row: row, head: h)
                    lse[row * heads + h] = rowLSE
                    let kv = h / (heads / kvHeads), oi = (row * heads + h) * headDim
                    for (index, j) in visible(row).enumerated() {
                        let vj = (j * kvHeads + kv) * headDim
                        for d in 0..<headDim { out[oi + d] += p[index] * v[vj + d] }
                    }
                }
            }
        } } }
        return (out, lse)
    }

    /// ⟨dOut, out⟩ of the float64 forward.
    func loss(q: [Double], k: [Double], v: [Double], dOut: [Double]) -> Double {
        zip(forward(q: q, k: k, v: v).out, dOut).reduce(0) { $0 + $1.0 * $1.1 }
    }

    /// dq, dk, dv of ⟨dOut, out⟩: dV += P dO, dP = dO·V, dS = P(dP − Σ P dP), dQ = dS K·scale, dK = dS Q·scale.
    func backward(q: [Double], k: [Double], v: [Double], dOut: [Double]) -> (dq: [Double], dk: [Double], dv: [Double]) {
        let group = heads / kvHeads, scale = 1 / Double(headDim).squareRoot()
        var dq = [Double](repeating: 0, count: q.count), dk = [Double](repeating: 0, count: k.count), dv = dk
        q.withUnsafeBufferPointer { q in k.withUnsafeBufferPointer { k in v.withUnsafeBufferPointer { v in
        dOut.withUnsafeBufferPointer { dOut in dq.withUnsafeMutableBufferPointer { dq in
        dk.withUnsafeMutableBufferPointer { dk in dv.withUnsafeMutableBufferPointer { dv in
            for row in 0..<tokens where segmentStart(row) != nil {
                for h in 0..<heads {
                    let kv = h / group, keys = visible(row), qi = (row * heads + h) * headDim
                    let p = probabilities(q, k, row: row, head: h).p
                    var dp = [Double](repeating: 0, count: keys.count), centre = 0.0
                    for (index, j) in keys.enumerated() {
                        let vj = (j * kvHeads + kv) * headDim
                        for d in 0..<headDim { dp[index] += dOut[qi + d] * v[vj + d] }
                        centre += p[index] * dp[index]
                    }
                    for (index, j) in keys.enumerated() {
                        let ds = p[index] * (dp[index] - centre), kj = (j * kvHeads + kv) * headDim
                        for d in 0..<headDim {
                            dv[kj + d] += p[index] * dOut[qi + d]
                            dq[qi + d] += ds * k[kj + d] * scale
                            dk[kj + d] += ds * q[qi + d] * scale
                        }
                    }
                }
            }
        } } } } } } }
        return (dq, dk, dv)
    }
}

/// The kernels' results for one case: the drivers on a pool of `threads`.
private struct KernelResults {
    let out: GuardedFloats, lse: GuardedFloats, dq: GuardedFloats, dk: GuardedFloats, dv: GuardedFloats

    init(_ c: AttentionCase, threads: Int, q: [Float], k: [Float], v: [Float], dOut: [Float]) {
        let attention = c.layout(threads: threads), pool = ThreadPool(threads: threads)
        out = GuardedFloats(count: q.count)
        lse = GuardedFloats(count: c.tokens * c.heads)
        dq = GuardedFloats(count: q.count)
        dk = GuardedFloats(count: k.count)
        dv = GuardedFloats(count: k.count)
        let scratch = GuardedFloats(count: attention.driverScratchCount, fill: .nan)
        attention.forward(q: q, k: k, v: v, out: out.pointer, lse: lse.pointer, pool: pool, scratch: scratch.pointer)
        attention.backward(q: q, k: k, v: v, out: out.pointer, lse: lse.pointer, dOut: dOut, dq: dq.pointer, dk: dk.pointer,
                           dv: dv.pointer, pool: pool, scratch: scratch.pointer)
        #expect(scratch.guardsIntact && out.guardsIntact && lse.guardsIntact && dq.guardsIntact && dk.guardsIntact && dv.guardsIntact,
                "\(c.testDescription): wrote outside a buffer")
    }
}

/// Random inputs of a case, seeded.
private func inputs(_ c: AttentionCase, seed: UInt64) -> (q: [Float], k: [Float], v: [Float], dOut: [Float]) {
    let wide = c.tokens * c.heads * c.headDim, narrow = c.tokens * c.kvHeads * c.headDim
    // q and k spread over ±2, so that the softmax is far from uniform (scores up to ~4·sqrt(hd)·scale).
    return (randomFloats(wide, in: -2...2, seed: seed), randomFloats(narrow, in: -2...2, seed: seed + 1),
            randomFloats(narrow, seed: seed + 2), randomFloats(wide, seed: seed + 3))
}

/// Rows in no segment: sentinel in out, lse and dq (untouched), zero in dk and dv.
private func expectGapsUntouched(_ c: AttentionCase, _ r: KernelResults) {
    for row in 0..<c.tokens where c.segmentStart(row) == nil {
        let wide = (row * c.heads * c.headDim)..<((row + 1) * c.heads * c.headDim)
        let narrow = (row * c.kvHeads * c.headDim)..<((row + 1) * c.kvHeads * c.headDim)
        #expect(wide.allSatisfy { r.out.pointer[$0] == GuardedFloats.sentinel && r.dq.pointer[$0] == GuardedFloats.sentinel },
                "row \(row) in no segment was written")
        #expect((0..<c.heads).allSatisfy { r.lse.pointer[row * c.heads + $0] == GuardedFloats.sentinel })
        #expect(narrow.allSatisfy { r.dk.pointer[$0] == 0 && r.dv.pointer[$0] == 0 }, "row \(row): dk/dv not zero")
    }
}

@Suite("Training attention")
struct TrainingAttentionTests {
    /// Against the float64 loops, element by element, errors relative to each tensor's largest |value| (lse: absolute).
    /// Measured over the cases (SmolLM2's shape included) and 1–3 threads: out ≤ 4.7e-7, lse ≤ 9.6e-7, dq ≤ 2.9e-7,
    /// dk ≤ 3.5e-7, dv ≤ 3.8e-7; tolerances 3e-6, 5e-6, 2e-6, 3e-6, 3e-6. out, lse and dq do not depend on the thread
    /// count (bit for bit).
    @Test(arguments: AttentionCase.all, [1, 2, 3])
    func matchesReference(c: AttentionCase, threads: Int) {
        let (q, k, v, dOut) = inputs(c, seed: UInt64(c.tokens * c.headDim + (c.window ?? 0)))
        let r = KernelResults(c, threads: threads, q: q, k: k, v: v, dOut: dOut)
        expectGapsUntouched(c, r)
        let (out, lse) = c.forward(q: doubles(q), k: doubles(k), v: doubles(v))
        let (dq, dk, dv) = c.backward(q: doubles(q), k: doubles(k), v: doubles(v), dOut: doubles(dOut))
        let inside = { (width: Int) in (0..<(c.tokens * width)).filter { c.segmentStart($0 / width) != nil } }
        let wide = inside(c.heads * c.headDim), heads = inside(c.heads)
        let errors = [
            ("out", relativeError(wide.map { r.out.pointer[$0] }, wide.map { out[$0] }), 3e-6),
            ("lse", heads.reduce(0.0) { max($0, abs(Double(r.lse.pointer[$1]) - lse[$1])) }, 5e-6),
            ("dq", relativeError(wide.map { r.dq.pointer[$0] }, wide.map { dq[$0] }), 2e-6),
            ("dk", relativeError(r.dk.array, dk), 3e-6),
            ("dv", relativeError(r.dv.array, dv), 3e-6),
        ]
        for (name, error, tolerance) in errors {
            #expect(error <= tolerance, "\(c.testDescription), \(threads) threads: \(name) error \(error)")
        }
        if threads > 1 {
            let single = KernelResults(c, threads: 1, q: q, k: k, v: v, dOut: dOut)
            #expect(r.out.array == single.out.array && r.lse.array == single.lse.array && r.dq.array == single.dq.array)
        }
    }

    /// ⟨grad, u⟩ of the kernels against the central difference of the float64 ⟨dOut, out⟩ along a random u, for q, k
    /// and v in turn (step 1e-3). Measured relative error ≤ 1.5e-8, tolerance 1.4e-7; where the exact gradient is 0
    /// (below) ≤ 2.8e-7, tolerance 2.5e-6.
    @Test(arguments: AttentionCase.all)
    func matchesCentralDifferences(c: AttentionCase) {
        let (q, k, v, dOut) = inputs(c, seed: 77)
        let r = KernelResults(c, threads: 2, q: q, k: k, v: v, dOut: dOut)
        let (qd, kd, vd, dOutd) = (doubles(q), doubles(k), doubles(v), doubles(dOut))
        let checks: [(String, [Double], [Float], ([Double]) -> Double)] = [
            ("q", qd, r.dq.array, { c.loss(q: $0, k: kd, v: vd, dOut: dOutd) }),
            ("k", kd, r.dk.array, { c.loss(q: qd, k: $0, v: vd, dOut: dOutd) }),
            ("v", vd, r.dv.array, { c.loss(q: qd, k: kd, v: $0, dOut: dOutd) }),
        ]
        for (index, (name, x, grad, f)) in checks.enumerated() {
            // Rows in no segment have no effect on the loss, and their dq is not written: leave them out of u.
            let width = x.count / c.tokens
            let u = doubles(randomFloats(x.count, seed: UInt64(10 + index))).enumerated().map { c.segmentStart($0.offset / width) == nil ? 0 : $0.element }
            let expected = centralDifference(at: x, along: u, step: 1e-3, f)
            let got = zip(grad, u).reduce(0.0) { $0 + ($1.1 == 0 ? 0 : Double($1.0) * $1.1) }
            // Relative to Σ|grad·u|, at least 0.1·Σ|u| (a gradient of 0.1 per element): where the exact gradient is 0
            // (window 1, or one row: out = v whatever q and k are), the kernels' is rounding.
            let magnitude = zip(grad, u).reduce(0.0) { $0 + ($1.1 == 0 ? 0 : abs(Double($1.0) * $1.1)) }
            let error = abs(got - expected) / max(magnitude, 0.1 * u.reduce(0) { $0 + abs($1) })
            let tolerance = c.tokens == 1 || c.window == 1 ? 2.5e-6 : 1.4e-7
            #expect(error <= tolerance, "\(c.testDescription) d\(name): ⟨grad, u⟩ \(got) vs \(expected)")
        }
    }

    /// SmolLM2-135M's shape (T 256, H 9, KV 3, hd 64): against the float64 loops on two threads.
    @Test func smolLMShape() {
        matchesReference(c: .smolLM, threads: 2)
    }

    /// Two threads, one 256-row segment, 3 KV heads: the units split the work within 10% (by rows × keys).
    @Test func splitsThreeKVHeadsOverTwoThreads() {
        let attention = AttentionCase.smolLM.layout(threads: 2)
        let loads = (0..<2).map { t in attention.units[attention.units(forThread: t)].reduce(0) { $0 + $1.rows.count * $1.keys.count } }
        let total: Int = 3 * 10 * 64 * 64 // 3 KV heads × query blocks of 64 rows seeing 64, 128, 192, 256 keys
        #expect(loads.reduce(0, +) == total)
        #expect(Double(loads.max()!) <= 1.1 * Double(loads.min()!), "loads \(loads)")
        // Scratch: two [64, 256] score blocks per thread.
        #expect(attention.scratchCount == 2 * 64 * 256)
    }

    @Test func rejectsBadLayouts() {
        #expect(TrainingAttention(segments: [0..<4], heads: 9, kvHeads: 2, headDim: 8, threads: 1) == nil)
        #expect(TrainingAttention(segments: [0..<4, 3..<6], heads: 2, kvHeads: 1, headDim: 8, threads: 1) == nil)
        #expect(TrainingAttention(segments: [-1..<4], heads: 2, kvHeads: 1, headDim: 8, threads: 1) == nil)
        #expect(TrainingAttention(segments: [0..<4], heads: 2, kvHeads: 1, headDim: 8, window: 0, threads: 1) == nil)
        #expect(TrainingAttention(segments: [0..<4], heads: 2, kvHeads: 1, headDim: 0, threads: 1) == nil)
        #expect(TrainingAttention(segments: [0..<4, 4..<4, 4..<9], heads: 2, kvHeads: 1, headDim: 8, threads: 2) != nil)
    }
}
