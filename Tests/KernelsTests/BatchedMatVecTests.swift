import Foundation
import Testing
@testable import Kernels

// batchedMatvec: every output bitwise equal to matvec of its row of x alone, for every dtype, several batch sizes,
// odd row ranges and widths, both machines' group shapes; within float tolerance of a float64 reference; scratch
// and output bounds; accumulation.

/// The group shapes the tests run: this machine's, the other kind's, and one with a row per tile (every group
/// re-reads the tile, the tile loop's edges everywhere).
private let shapes: [BatchShape] = [.avx512, .avx2, BatchShape(floatGroup: 4, blockGroup: 8, tileBytes: 1)]

/// Runs batchedMatvec over `range` for `tokens` rows of random x and checks each output against matvec of its row
/// (bitwise) and against the float64 product of the dequantized weights (within `dotTolerance`); nothing outside
/// the range, the tokens, y or the scratch may be written.
private func check(dtype: DType, rows: Int, cols: Int, range: Range<Int>, tokens: Int, shape: BatchShape,
                   accumulate: Bool = false, seed: UInt64) {
    let m = OwnedMatrix(rows: rows, cols: cols, dtype: dtype, seed: seed, misaligned: dtype != .f32)
    let xValues = randomFloats(tokens * cols, seed: seed + 1)
    let x = GuardedFloats(xValues)
    let ldy = rows + 3
    let initial = randomFloats(tokens * ldy, seed: seed + 2)
    let y = GuardedFloats(accumulate ? initial : [Float](repeating: GuardedFloats.sentinel, count: tokens * ldy))
    // One float of guard: the scratch starts off a 64-byte boundary, as scratch not from a FloatBuffer may.
    let scratch = GuardedFloats(count: batchedMatvecScratchCount(dtype: dtype, cols: cols, tokens: tokens), guardCount: 1,
                                fill: .nan)
    batchedMatvec(m.matrix, x.pointer, tokens: tokens, y.pointer, ldy: ldy, rows: range, accumulate: accumulate,
                  scratch: scratch.pointer, shape: shape)
    #expect(y.guardsIntact && scratch.guardsIntact, "\(dtype) wrote outside y or its scratch")
    #expect(x.array == xValues, "\(dtype) changed x")

    let single = FloatBuffer(count: rows), matvecScratch = FloatBuffer(count: matvecScratchCount(cols: cols))
    let tolerance = dotTolerance(dtype)
    var failures = 0
    for t in 0..<tokens {
        let xt = Array(xValues[(t * cols)..<((t + 1) * cols)])
        matvec(m.matrix, xt, single.pointer, rows: range, scratch: matvecScratch.pointer)
        for r in 0..<ldy {
            let got = y.pointer[t * ldy + r], before = accumulate ? initial[t * ldy + r] : GuardedFloats.sentinel
            guard range.contains(r) else {
                if got.bitPattern != before.bitPattern {
                    Issue.record("\(dtype) token \(t) column \(r) outside \(range) was written")
                    failures += 1
                }
                continue
            }
            let alone = accumulate ? before + single[r] : single[r]
            if got.bitPattern != alone.bitPattern {
                Issue.record("\(dtype) B=\(tokens) [\(rows)×\(cols)] token \(t) row \(r) \(shape): \(got) vs matvec \(alone)")
                failures += 1
            }
            let (expected, magnitude) = naiveRow(m.reference, row: r, cols: cols, xt)
            let error = abs(Double(got) - (accumulate ? Double(before) + expected : expected))
            // Accumulating adds one rounding of the sum.
            let allowed = tolerance * magnitude + (accumulate ? Double(abs(got)) * 1.2e-7 : 0) + 1e-30
            if error > allowed {
                Issue.record("\(dtype) B=\(tokens) token \(t) row \(r): \(got) vs \(expected) (error \(error / magnitude) of Σ|w·x|)")
                failures += 1
            }
            if failures > 5 { return }
        }
    }
}

@Suite("batchedMatvec")
struct BatchedMatVecTests {
    static let batchSizes = [2, 3, 8, 13, 64]

    @Test(arguments: DType.allCases, batchSizes)
    func equalsMatvecRowByRow(dtype: DType, tokens: Int) {
        for (i, shape) in shapes.enumerated() {
            let seed = UInt64(100 * tokens + 10 * i)
            check(dtype: dtype, rows: 21, cols: 576, range: 0..<21, tokens: tokens, shape: shape, seed: seed)
            // 65 blocks: an odd count, so the last block falls to the even accumulator alone.
            check(dtype: dtype, rows: 7, cols: 2080, range: 2..<7, tokens: tokens, shape: shape, seed: seed + 3)
            check(dtype: dtype, rows: 33, cols: 32, range: 5..<33, tokens: tokens, shape: shape, seed: seed + 6)
        }
    }

    @Test(arguments: DType.allCases)
    func oddRowRanges(dtype: DType) {
        for (i, range) in [0..<1, 5..<6, 3..<20, 16..<33, 32..<33, 7..<7].enumerated() {
            check(dtype: dtype, rows: 33, cols: 64, range: range, tokens: 5, shape: shapes[i % shapes.count],
                  seed: UInt64(300 + i))
        }
    }

    /// Float rows need not be whole blocks or whole vectors: the remainder after the last chunk of 16.
    @Test(arguments: [DType.f32, .f16, .bf16])
    func floatRowsOfAnyLength(dtype: DType) {
        for (i, cols) in [1, 15, 16, 17, 33, 48, 100].enumerated() {
            check(dtype: dtype, rows: 5, cols: cols, range: 0..<5, tokens: 3 + i, shape: shapes[i % shapes.count],
                  seed: UInt64(400 + i))
        }
    }

    @Test(arguments: DType.allCases)
    func accumulates(dtype: DType) {
        for (i, tokens) in [1, 2, 9].enumerated() {
            check(dtype: dtype, rows: 17, cols: 96, range: 1..<16, tokens: tokens, shape: shapes[i % shapes.count],
                  accumulate: true, seed: UInt64(500 + i))
        }
    }

    /// x all of one sign with a large offset: the block types fold Σx into per-block terms, per row of x.
    @Test(arguments: DType.allCases)
    func offsetInputs(dtype: DType) {
        let rows = 7, cols = 576, tokens = 5
        let m = OwnedMatrix(rows: rows, cols: cols, dtype: dtype, seed: 6)
        let x = randomFloats(tokens * cols, in: 9...11, seed: 5)
        let y = FloatBuffer(count: tokens * rows), single = FloatBuffer(count: rows)
        let scratch = FloatBuffer(count: max(batchedMatvecScratchCount(dtype: dtype, cols: cols, tokens: tokens),
                                             matvecScratchCount(cols: cols)))
        batchedMatvec(m.matrix, x, tokens: tokens, y.pointer, ldy: rows, rows: 0..<rows, scratch: scratch.pointer)
        for t in 0..<tokens {
            x.withUnsafeBufferPointer { matvec(m.matrix, $0.baseAddress! + t * cols, single.pointer, rows: 0..<rows, scratch: scratch.pointer) }
            for r in 0..<rows { #expect(y[t * rows + r].bitPattern == single[r].bitPattern, "\(dtype) token \(t) row \(r)") }
        }
    }

    @Test func scratchCounts() {
        for dtype in DType.allCases {
            for cols in [32, 576, 2080] {
                let one = batchedMatvecScratchCount(dtype: dtype, cols: cols, tokens: 1)
                let many = batchedMatvecScratchCount(dtype: dtype, cols: cols, tokens: 64)
                #expect(one >= 16 && many >= one, "\(dtype) \(cols)")
                // matmul's scratch covers the batched kernel up to its limit.
                #expect(matmulScratchCount(cols: cols)
                        >= batchedMatvecScratchCount(dtype: dtype, cols: cols, tokens: matmulBatchedLimit(dtype)))
            }
        }
    }

    /// Groups cover the tokens exactly once, largest first.
    @Test func groupsCoverTheTokens() {
        for widest in [1, 2, 4, 8] {
            for tokens in 1...70 {
                var sizes: [Int] = []
                var covered = [Int](repeating: 0, count: tokens)
                forEachToken(tokens, widest: widest) { t, j, size in
                    covered[t] += 1
                    if j == 0 { sizes.append(size) }
                }
                #expect(covered.allSatisfy { $0 == 1 } && sizes.reduce(0, +) == tokens)
                #expect(sizes == sizes.sorted(by: >) && sizes.allSatisfy { $0 <= widest }, "\(tokens) by \(widest): \(sizes)")
            }
        }
    }

    @Test func shapeFollowsTheProcessor() {
        #expect(BatchShape.current == (CPUFeatures.current.avx512 ? .avx512 : .avx2))
        #expect(CPUFeatures.current.description.hasPrefix("AVX"))
    }
}
