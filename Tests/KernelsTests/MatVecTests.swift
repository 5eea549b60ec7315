import Foundation
import Testing
@testable import Kernels

// matvec and matmul for every dtype against a float64 dot product of the dequantized rows.

/// Runs `matvec` over `range` and checks every row against the naive product; rows outside the range and the memory
/// around y and the scratch must stay untouched.
private func checkMatVec(dtype: DType, rows: Int, cols: Int, range: Range<Int>, x xValues: [Float],
                         misaligned: Bool, seed: UInt64) {
    let m = OwnedMatrix(rows: rows, cols: cols, dtype: dtype, seed: seed, misaligned: misaligned)
    // x at an odd float offset: the kernels must not assume alignment.
    let x = GuardedFloats(xValues, guardCount: misaligned ? 1 : 64)
    let y = GuardedFloats(count: rows)
    let scratch = GuardedFloats(count: matvecScratchCount(cols: cols), fill: .nan)
    matvec(m.matrix, x.pointer, y.pointer, rows: range, scratch: scratch.pointer)
    #expect(y.guardsIntact, "matvec wrote outside y")
    #expect(scratch.guardsIntact, "matvec wrote outside its scratch")
    #expect(x.array == xValues, "matvec changed x")
    let tolerance = dotTolerance(dtype)
    for r in 0..<rows {
        if !range.contains(r) {
            #expect(y.pointer[r] == GuardedFloats.sentinel, "\(dtype) row \(r) outside \(range) was written")
            continue
        }
        let (expected, magnitude) = naiveRow(m.reference, row: r, cols: cols, xValues)
        let error = abs(Double(y.pointer[r]) - expected)
        #expect(error <= tolerance * magnitude + 1e-30,
                "\(dtype) [\(rows)×\(cols)] row \(r): \(y.pointer[r]) vs \(expected) (error \(error / magnitude) of Σ|w·x|)")
    }
}

@Suite("matvec")
struct MatVecTests {
    static let columnCounts = [32, 64, 576, 2048 + 32]

    @Test(arguments: DType.allCases, columnCounts)
    func allRows(dtype: DType, cols: Int) {
        for (i, rows) in [1, 3, 7, 33].enumerated() {
            checkMatVec(dtype: dtype, rows: rows, cols: cols, range: 0..<rows, x: randomFloats(cols, seed: UInt64(i)),
                        misaligned: i % 2 == 1, seed: UInt64(100 + i))
        }
    }

    @Test(arguments: DType.allCases, columnCounts)
    func rowRanges(dtype: DType, cols: Int) {
        let rows = 33
        for (i, range) in [0..<1, 5..<6, 3..<20, 16..<33, 32..<33, 7..<7].enumerated() {
            checkMatVec(dtype: dtype, rows: rows, cols: cols, range: range, x: randomFloats(cols, seed: UInt64(10 + i)),
                        misaligned: i % 2 == 0, seed: UInt64(200 + i))
        }
    }

    /// Float rows need not be whole blocks or whole SIMD vectors: every tail length.
    @Test(arguments: [DType.f32, .f16, .bf16])
    func floatRowsOfAnyLength(dtype: DType) {
        for (i, cols) in [1, 2, 15, 16, 17, 31, 33, 47, 100, 1001].enumerated() {
            checkMatVec(dtype: dtype, rows: 3, cols: cols, range: 0..<3, x: randomFloats(cols, seed: UInt64(i)),
                        misaligned: i % 2 == 0, seed: UInt64(300 + i))
        }
    }

    /// Inputs all of one sign with a large common offset: the quantized kernels fold Σx into a per-block term that
    /// must cancel exactly against the scaled quants.
    @Test(arguments: DType.allCases)
    func offsetInputs(dtype: DType) {
        checkMatVec(dtype: dtype, rows: 7, cols: 576, range: 0..<7, x: randomFloats(576, in: 9...11, seed: 5),
                    misaligned: false, seed: 6)
        checkMatVec(dtype: dtype, rows: 7, cols: 576, range: 0..<7, x: randomFloats(576, in: -1000...(-999), seed: 7),
                    misaligned: true, seed: 8)
    }

    /// Every quant value in every lane position: a row whose block k holds q = (j + k) mod levels, against x = e_c.
    @Test(arguments: DType.allCases)
    func unitVectorsPickSingleElements(dtype: DType) {
        let cols = 64, rows = 3
        let m = OwnedMatrix(rows: rows, cols: cols, dtype: dtype, seed: 77)
        let scratch = FloatBuffer(count: matvecScratchCount(cols: cols))
        let y = FloatBuffer(count: rows)
        for c in 0..<cols {
            var x = [Float](repeating: 0, count: cols)
            x[c] = 1
            matvec(m.matrix, x, y.pointer, rows: 0..<rows, scratch: scratch.pointer)
            for r in 0..<rows {
                let w = m.reference[r * cols + c]
                // One nonzero product: exact for the float types; the block types measured max 6.0e-8 (q4_0, whose
                // matvec takes x as 16-bit integers).
                #expect(abs(y[r] - w) <= (dtype.isQuantized ? 2.5e-7 : 0),
                        "\(dtype) row \(r) col \(c): \(y[r]) vs \(w)")
            }
        }
    }

    @Test func scratchCount() {
        // At least x re-laid out plus one sum per block.
        for cols in [32, 64, 576, 2080] { #expect(matvecScratchCount(cols: cols) >= cols + cols / 32) }
    }
}

@Suite("matmul")
struct MatMulTests {
    /// `matmul` (or with `blas`, its sgemm path whatever the token count) against the naive product.
    private func check(dtype: DType, tokens: Int, rows: Int, cols: Int, range: Range<Int>, ldy: Int, seed: UInt64,
                       blas: Bool = false) {
        let m = OwnedMatrix(rows: rows, cols: cols, dtype: dtype, seed: seed, misaligned: dtype != .f32)
        let xValues = randomFloats(tokens * cols, seed: seed + 1)
        let x = GuardedFloats(xValues)
        let y = GuardedFloats(count: tokens * ldy)
        let scratch = GuardedFloats(count: matmulScratchCount(cols: cols), fill: .nan)
        if blas {
            matmulBLAS(m.matrix, x.pointer, tokens: tokens, y.pointer, ldy: ldy, rows: range, scratch: scratch.pointer)
        } else {
            matmul(m.matrix, x.pointer, tokens: tokens, y.pointer, ldy: ldy, rows: range, scratch: scratch.pointer)
        }
        #expect(y.guardsIntact && scratch.guardsIntact, "matmul wrote outside its buffers")
        #expect(x.array == xValues)
        let tolerance = dotTolerance(dtype)
        var failures = 0
        for t in 0..<tokens {
            let xt = Array(xValues[(t * cols)..<((t + 1) * cols)])
            for r in 0..<ldy {
                let got = y.pointer[t * ldy + r]
                guard range.contains(r) else {
                    #expect(got == GuardedFloats.sentinel, "\(dtype) token \(t) column \(r) outside \(range) was written")
                    continue
                }
                let (expected, magnitude) = naiveRow(m.reference, row: r, cols: cols, xt)
                let error = abs(Double(got) - expected)
                if error > tolerance * magnitude + 1e-30 {
                    failures += 1
                    Issue.record("\(dtype) tokens \(tokens) [\(rows)×\(cols)] token \(t) row \(r): \(got) vs \(expected)")
                    if failures > 5 { return }
                }
            }
        }
    }

    /// Token counts through matvec (1), the batched kernel (2, 5) and sgemm (past the batched limit), and the sgemm
    /// path forced for few tokens.
    @Test(arguments: DType.allCases, [1, 2, 5, 65, -2])
    func againstNaive(dtype: DType, tokens requested: Int) {
        let blas = requested < 0, tokens = requested == 65 ? matmulBatchedLimit(dtype) + 1 : abs(requested)
        check(dtype: dtype, tokens: tokens, rows: 33, cols: 64, range: 0..<33, ldy: 33, seed: 1, blas: blas)
        check(dtype: dtype, tokens: tokens, rows: 33, cols: 576, range: 5..<21, ldy: 40, seed: 2, blas: blas)
        check(dtype: dtype, tokens: tokens, rows: 7, cols: 2080, range: 1..<7, ldy: 9, seed: 3, blas: blas)
        check(dtype: dtype, tokens: tokens, rows: 3, cols: 32, range: 2..<3, ldy: 3, seed: 4, blas: blas)
        check(dtype: dtype, tokens: tokens, rows: 5, cols: 32, range: 3..<3, ldy: 5, seed: 5, blas: blas)
        if !dtype.isQuantized {
            check(dtype: dtype, tokens: tokens, rows: 9, cols: 100, range: 2..<9, ldy: 11, seed: 6, blas: blas)
        }
    }

    /// More rows than one dequantized tile holds: the sgemm path's tiles must cover the range exactly once.
    @Test(arguments: DType.allCases)
    func severalTiles(dtype: DType) {
        let cols = 2080
        let rows = 2 * tileRows(cols: cols) + 13
        check(dtype: dtype, tokens: 3, rows: rows, cols: cols, range: 3..<rows, ldy: rows + 1, seed: 9, blas: true)
        // Rows wider than a default tile (16 rows of 8192 > 64K floats): the scratch grows with the width.
        check(dtype: dtype, tokens: 2, rows: 40, cols: 8192, range: 0..<40, ldy: 40, seed: 10, blas: true)
        check(dtype: dtype, tokens: 2, rows: 40, cols: 8192, range: 0..<40, ldy: 40, seed: 10)
    }

    /// Up to the batched limit every row equals matvec of its row of x bitwise; past it (sgemm) within rounding
    /// (the 4-bit types, whose limit is 0, take sgemm from two tokens on).
    @Test(arguments: DType.allCases)
    func agreesWithMatVec(dtype: DType) {
        let rows = 20, cols = 576
        let m = OwnedMatrix(rows: rows, cols: cols, dtype: dtype, seed: 31)
        let limit = matmulBatchedLimit(dtype)
        for tokens in Set([2, 4, limit, limit + 1]).filter({ $0 > 1 }).sorted() {
            let x = randomFloats(tokens * cols, seed: 32)
            let batched = FloatBuffer(count: tokens * rows)
            let tile = FloatBuffer(count: matmulScratchCount(cols: cols))
            matmul(m.matrix, x, tokens: tokens, batched.pointer, ldy: rows, rows: 0..<rows, scratch: tile.pointer)
            let single = FloatBuffer(count: rows)
            for t in 0..<tokens {
                x.withUnsafeBufferPointer { xp in
                    matvec(m.matrix, xp.baseAddress! + t * cols, single.pointer, rows: 0..<rows, scratch: tile.pointer)
                }
                for r in 0..<rows {
                    let a = batched[t * rows + r], b = single[r]
                    // Relative to max(1, |y|), sgemm against matvec: measured max 1.0e-5 for the float types,
                    // 9.4e-6 for q8_0; matvec takes 4-bit rows with 16-bit activations (IntegerDot.swift): 2.0e-4.
                    let allowed: Float = switch dtype {
                    case _ where tokens <= limit: 0
                    case .f32, .f16, .bf16: 2e-5
                    case .q8_0: 4e-5
                    case .q4_0, .q4_1: 8e-4
                    }
                    #expect(abs(a - b) <= allowed * max(1, abs(b)), "\(dtype) \(tokens) tokens, token \(t) row \(r): \(a) vs \(b)")
                }
            }
        }
    }
}
