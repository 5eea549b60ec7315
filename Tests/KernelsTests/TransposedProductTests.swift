import Foundation
import Testing
@testable import Kernels

// sgemm with transposes, the partial-row dequantize, and the product through a weight's transpose for every dtype,
// against float64 loops over the dequantized weights.

@Suite("sgemm")
struct GEMMTests {
    /// C = alpha · op(A) · op(B) + beta · C for both orientations of each operand, padded leading dimensions, and
    /// beta 0 (C holds NaN, which must not leak), 1 and 0.25. Error relative to Σ|alpha·a·b| + |beta·c|: measured
    /// ≤ 1.1e-7 (k = 9 terms); tolerance 1e-6.
    @Test(arguments: [Operand.plain, .transposed], [Operand.plain, .transposed])
    func matchesLoops(a opA: Operand, b opB: Operand) {
        let m = 5, n = 7, k = 9, alpha: Float = 0.5
        // Stored shapes: A [m, k] or [k, m]; B [k, n] or [n, k]; two spare columns in every row.
        let aRows = opA == .plain ? m : k, aCols = opA == .plain ? k : m
        let bRows = opB == .plain ? k : n, bCols = opB == .plain ? n : k
        let lda = aCols + 2, ldb = bCols + 2, ldc = n + 2
        let a = randomFloats(aRows * lda, seed: 1), b = randomFloats(bRows * ldb, seed: 2)
        let aAt = { (i: Int, p: Int) in Double(opA == .plain ? a[i * lda + p] : a[p * lda + i]) }
        let bAt = { (p: Int, j: Int) in Double(opB == .plain ? b[p * ldb + j] : b[j * ldb + p]) }
        for beta: Float in [0, 1, 0.25] {
            let initial = beta == 0 ? [Float](repeating: .nan, count: m * ldc) : randomFloats(m * ldc, seed: 3)
            let c = GuardedFloats(initial)
            sgemm(opA, opB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c.pointer, ldc: ldc)
            #expect(c.guardsIntact)
            for i in 0..<m {
                for j in 0..<ldc {
                    let got = c.pointer[i * ldc + j]
                    guard j < n else {
                        #expect(got.bitPattern == initial[i * ldc + j].bitPattern, "padding (\(i), \(j)) was written")
                        continue
                    }
                    let products = (0..<k).map { Double(alpha) * aAt(i, $0) * bAt($0, j) }
                    let carried = beta == 0 ? 0 : Double(beta) * Double(initial[i * ldc + j])
                    let expected = products.reduce(carried, +)
                    let magnitude = products.reduce(abs(carried)) { $0 + abs($1) }
                    let error = abs(Double(got) - expected) / magnitude
                    #expect(error <= 1e-6, "\(opA)·\(opB) beta \(beta) (\(i), \(j)): \(got) vs \(expected)")
                }
            }
        }
    }

    /// k = 0: C = beta · C.
    @Test func emptySum() {
        let a: [Float] = [1], b: [Float] = [1]
        for (beta, expected) in [(Float(0), Float(0)), (1, 3), (2, 6)] {
            var c: [Float] = [3, 3, 3, 3]
            c.withUnsafeMutableBufferPointer {
                sgemm(m: 2, n: 2, k: 0, a: a, lda: 1, b: b, ldb: 2, beta: beta, c: $0.baseAddress!, ldc: 2)
            }
            #expect(c == [Float](repeating: expected, count: 4), "beta \(beta)")
        }
    }
}

@Suite("Transposed product")
struct TransposedProductTests {
    /// Every block-aligned start and any end: the same values as the whole row.
    @Test(arguments: DType.allCases)
    func partialRowsMatchWholeRows(dtype: DType) {
        let cols = 96
        let m = OwnedMatrix(rows: 3, cols: cols, dtype: dtype, seed: 5, misaligned: true)
        let block = dtype.blockElements
        for columns in [0..<96, 32..<64, 64..<96, 0..<1, 32..<45, 64..<95, 32..<32] + (block == 1 ? [5..<77, 17..<18] : []) {
            let out = GuardedFloats(count: columns.count)
            m.matrix.dequantizeRow(2, columns: columns, into: out.pointer)
            #expect(out.guardsIntact)
            #expect(out.array == Array(m.reference[(2 * cols + columns.lowerBound)..<(2 * cols + columns.upperBound)]),
                    "\(dtype) columns \(columns)")
        }
    }

    /// (rows, cols, tokens, columns). The quantized kernels dequantize tiles of up to 256 columns × 256 rows: the
    /// last two shapes take several of each, the last column tile a short one.
    static let quantizedShapes: [(Int, Int, Int, Range<Int>)] = [
        (48, 96, 1, 0..<96), (37, 160, 3, 32..<128), (37, 160, 17, 64..<160), (5, 64, 2, 32..<50),
        (272, 512, 2, 0..<512), (272, 320, 3, 32..<320),
    ]
    /// Float dtypes take any start and any row length.
    static let floatShapes: [(Int, Int, Int, Range<Int>)] = [(9, 77, 4, 5..<61), (33, 100, 7, 1..<100), (1, 3, 2, 0..<3)]

    @Test(arguments: DType.allCases)
    func matchesLoops(dtype: DType) {
        let shapes = Self.quantizedShapes + (dtype.isQuantized ? [] : Self.floatShapes)
        for (i, (rows, cols, tokens, columns)) in shapes.enumerated() {
            for accumulate in [false, true] {
                check(dtype: dtype, rows: rows, cols: cols, tokens: tokens, columns: columns, accumulate: accumulate,
                      pool: nil, seed: UInt64(10 * i + (accumulate ? 1 : 0)))
            }
        }
    }

    /// The driver, whose threads split the columns in blocks.
    @Test(arguments: DType.allCases, [1, 2, 3])
    func driverMatchesLoops(dtype: DType, threads: Int) {
        let pool = ThreadPool(threads: threads)
        for (i, (rows, cols, tokens)) in [(37, 160, 5), (40, 576, 3), (16, 32, 2)].enumerated() {
            check(dtype: dtype, rows: rows, cols: cols, tokens: tokens, columns: 0..<cols, accumulate: i == 1,
                      pool: pool, seed: UInt64(100 + i))
        }
    }

    /// The backward pass of `matmul` (y = W x per token): the derivative of ⟨dY, matmul(W, x)⟩ along u is
    /// ⟨dY, matmul(W, u)⟩ (the map is linear: the central difference is exact), which must equal
    /// ⟨transposedProduct(W, dY), u⟩. Both sides from the float32 kernels, summed in float64; error relative to
    /// Σ|dY ∘ matmul(W, u)|: measured ≤ 3.6e-8 (f32; ≤ 1.8e-8 the others); tolerance 3e-7.
    @Test(arguments: DType.allCases)
    func isMatmulsBackward(dtype: DType) {
        let rows = 48, cols = 160, tokens = 5
        let m = OwnedMatrix(rows: rows, cols: cols, dtype: dtype, seed: 41)
        let u = randomFloats(tokens * cols, seed: 42), dy = randomFloats(tokens * rows, seed: 43)
        let y = GuardedFloats(count: tokens * rows), dx = GuardedFloats(count: tokens * cols)
        let scratch = GuardedFloats(count: max(matmulScratchCount(cols: cols), transposedProductScratchCount(m.matrix)))
        matmul(m.matrix, u, tokens: tokens, y.pointer, ldy: rows, rows: 0..<rows, scratch: scratch.pointer)
        transposedProduct(m.matrix, dy, ldy: rows, tokens: tokens, dx.pointer, ldx: cols, columns: 0..<cols,
                          accumulate: false, scratch: scratch.pointer)
        let forward = inner(y.array, doubles(dy)), backward = inner(dx.array, doubles(u))
        let magnitude = zip(y.array, dy).reduce(0.0) { $0 + abs(Double($1.0) * Double($1.1)) }
        let error = abs(forward - backward) / magnitude
        #expect(error <= 3e-7, "\(dtype): ⟨dY, W u⟩ \(forward) vs ⟨Wᵀ dY, u⟩ \(backward)")
    }

    /// Runs the product on dY [tokens, rows + 3] into dX [tokens, cols + 5] (random, or accumulated into) and checks
    /// every element: columns outside `columns` and the padding untouched; the rest within 1e-6 of Σ_r |dY·W|
    /// (+ |dX| when accumulating) of the float64 sum. Measured ≤ 2.5e-7 (f32), 2.0e-7 (bf16), 1.8e-7 (the
    /// others).
    private func check(dtype: DType, rows: Int, cols: Int, tokens: Int, columns: Range<Int>, accumulate: Bool,
                       pool: ThreadPool?, seed: UInt64) {
        let m = OwnedMatrix(rows: rows, cols: cols, dtype: dtype, seed: seed, misaligned: seed % 2 == 1)
        let ldy = rows + 3, ldx = cols + 5
        let dy = randomFloats(tokens * ldy, seed: seed + 1), initial = randomFloats(tokens * ldx, seed: seed + 2)
        let dx = GuardedFloats(initial)
        let threads = pool?.threadCount ?? 1
        let scratch = GuardedFloats(count: threads * transposedProductScratchCount(m.matrix), fill: .nan)
        if let pool {
            transposedProduct(m.matrix, dy, ldy: ldy, tokens: tokens, dx.pointer, ldx: ldx, accumulate: accumulate,
                              pool: pool, scratch: scratch.pointer)
        } else {
            transposedProduct(m.matrix, dy, ldy: ldy, tokens: tokens, dx.pointer, ldx: ldx, columns: columns,
                              accumulate: accumulate, scratch: scratch.pointer)
        }
        #expect(dx.guardsIntact && scratch.guardsIntact, "\(dtype): wrote outside dX or the scratch")
        for t in 0..<tokens {
            for c in 0..<ldx {
                let got = dx.pointer[t * ldx + c]
                guard columns.contains(c) else {
                    #expect(got == initial[t * ldx + c], "\(dtype) [\(rows)×\(cols)] (\(t), \(c)) outside \(columns) was written")
                    continue
                }
                var expected = accumulate ? Double(initial[t * ldx + c]) : 0
                var magnitude = abs(expected)
                for r in 0..<rows {
                    let p = Double(dy[t * ldy + r]) * Double(m.reference[r * cols + c])
                    expected += p
                    magnitude += abs(p)
                }
                let error = abs(Double(got) - expected) / max(magnitude, 1e-30)
                #expect(error <= 1e-6, "\(dtype) [\(rows)×\(cols)] tokens \(tokens) (\(t), \(c)): \(got) vs \(expected)")
            }
        }
    }
}
