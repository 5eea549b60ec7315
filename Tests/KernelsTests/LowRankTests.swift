import Testing
@testable import Kernels

// The two sides of a low-rank update for one token: B·u added to matvec's rows from B's tiles, and A x from Aᵀ in
// shares of the inputs — against float64 sums of the stored values.

@Suite("low-rank terms")
struct LowRankTests {
    struct Terms: Sendable, CustomStringConvertible {
        let types: [DType]
        let ranks: [Int]
        var description: String { zip(types, ranks).map { "\($0)×\($1)" }.joined(separator: "+") }
    }

    /// One LoRA, top-2 at rank 16, ranks off 16 (odd ones too: the tiles take B's columns two at a time), more
    /// terms, mixed types.
    static let termSets = [
        Terms(types: [.f32], ranks: [16]), Terms(types: [.f16, .f16], ranks: [16, 16]), Terms(types: [.bf16], ranks: [8]),
        Terms(types: [.f16, .f16], ranks: [16, 8]), Terms(types: [.f32, .f32, .f32], ranks: [16, 16, 32]),
        Terms(types: [.f16, .f32, .f16], ranks: [16, 20, 16]), Terms(types: [.f32, .bf16], ranks: [5, 1]),
    ]

    /// matvec(W) + Σ_j B_j u_j for every base type and every kind of term set.
    @Test(arguments: DType.allCases, termSets)
    func termsRideInMatVec(dtype: DType, set: Terms) {
        let rows = 53, cols = 576 // 53: a partial last tile
        let base = OwnedMatrix(rows: rows, cols: cols, dtype: dtype, seed: 1)
        let x = randomFloats(cols, seed: 2)
        let termTypes = set.types
        let bs = termTypes.enumerated().map { j, type in
            OwnedMatrix(rows: rows, cols: set.ranks[j], dtype: type, seed: UInt64(10 + j), misaligned: j % 2 == 1)
        }
        let us = bs.enumerated().map { j, b in randomFloats(b.matrix.cols, in: -3...3, seed: UInt64(20 + j)) }
        let uBuffers = us.map { GuardedFloats($0) }
        // All the tiles, with rows starting inside a tile; and only the tiles holding a thread's rows, as the
        // decoding layout keeps them (the first tile is then not tile 0).
        for (range, tiled) in [(3..<rows, nil), (19..<rows, 19..<rows)] as [(Range<Int>, Range<Int>?)] {
            let tiles = bs.map { b in (storage: ByteStorage(count: LowRankTiles.byteCount(of: b.matrix, rows: tiled)), b: b) }
            let terms = zip(tiles, uBuffers).map { t, u in
                LowRankTerm(b: LowRankTiles.tile(t.b.matrix, rows: tiled, into: t.storage.pointer), u: UnsafePointer(u.pointer))
            }
            let y = GuardedFloats(count: rows)
            let scratch = FloatBuffer(count: matvecScratchCount(cols: cols))
            terms.withUnsafeBufferPointer { matvec(base.matrix, x, y.pointer, rows: range, scratch: scratch.pointer, adding: $0) }
            #expect(y.guardsIntact)
            for r in 0..<rows {
                guard range.contains(r) else {
                    #expect(y.pointer[r] == GuardedFloats.sentinel, "row \(r) outside \(range) was written")
                    continue
                }
                var (expected, magnitude) = naiveRow(base.reference, row: r, cols: cols, x)
                for (b, u) in zip(bs, us) {
                    let (value, size) = naiveRow(b.reference, row: r, cols: b.matrix.cols, u)
                    expected += value
                    magnitude += size
                }
                let error = abs(Double(y.pointer[r]) - expected)
                #expect(error <= dotTolerance(dtype) * magnitude + 1e-30,
                        "\(dtype) + \(termTypes) rows \(range) row \(r): \(y.pointer[r]) vs \(expected)")
            }
        }
    }

    /// A thread's share of A's columns, transposed, holds exactly those inputs' values.
    @Test(arguments: [DType.f32, .f16, .bf16], [16, 20])
    func transposedShares(dtype: DType, rank: Int) {
        let inputs = 577
        let a = OwnedMatrix(rows: rank, cols: inputs, dtype: dtype, seed: 7, misaligned: rank == 20)
        for share in [0..<288, 288..<inputs, 100..<101] {
            let storage = ByteStorage(count: share.count * rank * dtype.blockBytes)
            let at = transposed(a.matrix, inputs: share, into: storage.pointer)
            #expect(at.rows == share.count && at.cols == rank)
            let output = FloatBuffer(count: rank)
            for (i, input) in share.enumerated() {
                at.dequantizeRow(i, into: output.pointer)
                for q in 0..<rank where output.pointer[q] != a.reference[q * inputs + input] {
                    Issue.record("\(dtype) share \(share) Aᵀ[\(i), \(q)] = \(output.pointer[q]), A[\(q), \(input)] = \(a.reference[q * inputs + input])")
                }
            }
        }
    }

    /// Shares of the inputs, each through `partialLowRankInput`, add up to A x.
    @Test(arguments: [DType.f32, .f16, .bf16], [16, 8, 20, 48])
    func inputSideInShares(dtype: DType, rank: Int) {
        let inputs = 577
        let at = OwnedMatrix(rows: inputs, cols: rank, dtype: dtype, seed: UInt64(rank), misaligned: rank == 20)
        let x = randomFloats(inputs, seed: 3)
        let shares = [0..<288, 288..<289, 289..<inputs, 5..<5]
        var total = [Double](repeating: 0, count: rank)
        for share in shares {
            let u = GuardedFloats(count: rank)
            partialLowRankInput(at.matrix, x, inputs: share, into: u.pointer)
            #expect(u.guardsIntact)
            for q in 0..<rank { total[q] += Double(u.pointer[q]) }
        }
        for q in 0..<rank {
            var expected = 0.0, magnitude = 0.0
            for i in 0..<inputs {
                let term = Double(at.reference[i * rank + q]) * Double(x[i])
                expected += term
                magnitude += abs(term)
            }
            // Measured max 9.6e-8 of the magnitude (f16).
            #expect(abs(total[q] - expected) <= 4e-7 * magnitude, "\(dtype) rank \(rank) u[\(q)]: \(total[q]) vs \(expected)")
        }
    }
}
