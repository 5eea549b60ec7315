// The two sides of a low-rank update y += B (A x), for one token.
//
// The output side, y += B u with B [n, r], is added to a matrix-vector product's rows right after they are
// computed (`matvec(..., adding:)`), from B in tiles of 16 output rows: tile k holds rows 16k..<16k+16 transposed,
// [r, 16], so 16 outputs take r vector FMAs with u[q] broadcast — no horizontal sums — and a thread's rows read
// one contiguous run of tiles. (Row by row, B[i, :]·u costs a dot product per output: ~10 points of a 4-bit
// model's decode time at top-2, rank 16.)

/// B [n, r] as tiles of 16 rows, each transposed — all of them, or those that hold a range of rows — the last tile
/// padded with zeros.
public struct LowRankTiles: @unchecked Sendable {
    /// Tile k (from `firstTile` on), element (q, i) = B[16k + i, q], at row (k − firstTile)·r + q.
    public let matrix: WeightMatrix
    public let rank: Int
    public let firstTile: Int

    /// The tiles that hold `rows` of B.
    public static func tiles(holding rows: Range<Int>) -> Range<Int> { (rows.lowerBound / 16)..<((rows.upperBound + 15) / 16) }

    /// Bytes `tile(_:rows:into:)` writes for `rows` of B (nil: all of them).
    public static func byteCount(of b: WeightMatrix, rows: Range<Int>? = nil) -> Int {
        tiles(holding: rows ?? 0..<b.rows).count * b.cols * 16 * b.dtype.blockBytes
    }

    /// Lays the tiles holding `rows` of B (a float dtype; nil: all) out at `destination` (`byteCount` bytes).
    public static func tile(_ b: WeightMatrix, rows: Range<Int>? = nil, into destination: UnsafeMutableRawPointer) -> LowRankTiles {
        let held = tiles(holding: rows ?? 0..<b.rows), r = b.cols
        destination.initializeMemory(as: UInt8.self, repeating: 0, count: byteCount(of: b, rows: rows))
        relayout(b, rows: (16 * held.lowerBound)..<min(b.rows, 16 * held.upperBound), columns: 0..<r, into: destination) { i, q in
            ((i / 16 - held.lowerBound) * r + q) * 16 + i % 16
        }
        let matrix = WeightMatrix(data: destination, dtype: b.dtype, rows: held.count * r, cols: 16)!
        return LowRankTiles(matrix: matrix, rank: r, firstTile: held.lowerBound)
    }
}

/// Columns `inputs` of A [r, in] (nil: all) as Aᵀ [inputs.count, r] at `destination` (r · inputs.count elements):
/// the layout of `partialLowRankInput`.
public func transposed(_ a: WeightMatrix, inputs: Range<Int>? = nil, into destination: UnsafeMutableRawPointer) -> WeightMatrix {
    let rows = a.rows, inputs = inputs ?? 0..<a.cols
    relayout(a, rows: 0..<rows, columns: inputs, into: destination) { q, i in (i - inputs.lowerBound) * rows + q }
    return WeightMatrix(data: destination, dtype: a.dtype, rows: inputs.count, cols: a.rows)!
}

/// Copies element (r, c) of m (a float dtype), for r in `rows` and c in `columns`, to element `index(r, c)` at
/// `destination`.
private func relayout(_ m: WeightMatrix, rows: Range<Int>, columns: Range<Int>, into destination: UnsafeMutableRawPointer,
                      index: (Int, Int) -> Int) {
    precondition(!m.dtype.isQuantized, "low-rank factors are stored as floats")
    if m.dtype.blockBytes == 4 {
        relayout(m, rows, columns, destination, UInt32.self, index)
    } else {
        relayout(m, rows, columns, destination, UInt16.self, index)
    }
}

private func relayout<T>(_ m: WeightMatrix, _ rows: Range<Int>, _ columns: Range<Int>, _ destination: UnsafeMutableRawPointer,
                         _: T.Type, _ index: (Int, Int) -> Int) {
    let out = destination.assumingMemoryBound(to: T.self)
    for r in rows {
        let row = m.row(r)
        for c in columns { out[index(r, c)] = row.loadUnaligned(fromByteOffset: c * MemoryLayout<T>.stride, as: T.self) }
    }
}

/// One term y[i] += B[i, :] · u of a matrix-vector product: B as tiles, u [r].
public struct LowRankTerm {
    public let b: LowRankTiles
    public let u: UnsafePointer<Float>

    public init(b: LowRankTiles, u: UnsafePointer<Float>) {
        self.b = b
        self.u = u
    }
}

/// y[i] += Σ over `terms` of B[i, :] · u for i in `rows`, a tile of 16 rows at a time.
public func addLowRankTerms(_ terms: UnsafeBufferPointer<LowRankTerm>, _ y: UnsafeMutablePointer<Float>, rows: Range<Int>) {
    var i = rows.lowerBound
    while i < rows.upperBound {
        let tile = i / 16, first = 16 * tile
        if i == first, first + 16 <= rows.upperBound {
            // Two accumulators over alternate columns of B halve the FMA chain a tile waits on (~1 point of the
            // adapter's overhead on smollm2-135m f32; four measured no better).
            var even = load16(y, first), odd = SIMD16<Float>()
            for term in terms {
                switch term.b.matrix.dtype {
                case .f32: addTile(term, tile, &even, &odd, F32Elements.self)
                case .f16: addTile(term, tile, &even, &odd, F16Elements.self)
                default: addTile(term, tile, &even, &odd, BF16Elements.self)
                }
            }
            UnsafeMutableRawPointer(y + first).storeBytes(of: even + odd, as: SIMD16<Float>.self)
            i += 16
        } else {
            // A range that starts or ends inside a tile: those rows one by one.
            let end = min(rows.upperBound, first + 16)
            for row in i..<end {
                for term in terms {
                    let m = term.b.matrix, r = term.b.rank
                    var s: Float = 0
                    for q in 0..<r { s += element(m, (tile - term.b.firstTile) * r + q, row - first) * term.u[q] }
                    y[row] += s
                }
            }
            i = end
        }
    }
}

private func element(_ m: WeightMatrix, _ r: Int, _ c: Int) -> Float {
    switch m.dtype {
    case .f32: return F32Elements.load1(m.row(r), c)
    case .f16: return F16Elements.load1(m.row(r), c)
    default: return BF16Elements.load1(m.row(r), c)
    }
}

@inline(__always)
private func addTile<E: FloatElements>(_ term: LowRankTerm, _ tile: Int, _ even: inout SIMD16<Float>,
                                       _ odd: inout SIMD16<Float>, _: E.Type) {
    let m = term.b.matrix, r = term.b.rank, u = term.u
    let base = m.row((tile - term.b.firstTile) * r)
    var q = 0
    while q + 2 <= r {
        even.addProduct(E.load16(base + q * m.rowBytes, 0), SIMD16(repeating: u[q]))
        odd.addProduct(E.load16(base + (q + 1) * m.rowBytes, 0), SIMD16(repeating: u[q + 1]))
        q += 2
    }
    if q < r { even.addProduct(E.load16(base + q * m.rowBytes, 0), SIMD16(repeating: u[q])) }
}

/// The input side: u[q] = Σ_{i ∈ inputs} x[i] · Aᵀ[i, q] over a range of the inputs, with A kept transposed
/// (Aᵀ [in, r], in a float dtype): a thread that has just produced x[inputs] reads the matching rows of Aᵀ — one
/// contiguous piece — and leaves a partial u, summed over the threads afterwards. u: [r].
public func partialLowRankInput(_ at: WeightMatrix, _ x: UnsafePointer<Float>, inputs: Range<Int>,
                                into u: UnsafeMutablePointer<Float>) {
    switch at.dtype {
    case .f32: partialInput(at, x, inputs, u, F32Elements.self)
    case .f16: partialInput(at, x, inputs, u, F16Elements.self)
    case .bf16: partialInput(at, x, inputs, u, BF16Elements.self)
    case .q8_0, .q4_0, .q4_1: preconditionFailure("low-rank factors are stored as floats")
    }
}

private func partialInput<E: FloatElements>(_ at: WeightMatrix, _ x: UnsafePointer<Float>, _ inputs: Range<Int>,
                                            _ u: UnsafeMutablePointer<Float>, _: E.Type) {
    let r = at.cols
    var q = 0
    while q + 16 <= r {
        // Two accumulators over alternate inputs keep two FMA chains in flight.
        var a0 = SIMD16<Float>(), a1 = SIMD16<Float>()
        var i = inputs.lowerBound
        while i + 2 <= inputs.upperBound {
            a0.addProduct(E.load16(at.row(i), q), SIMD16(repeating: x[i]))
            a1.addProduct(E.load16(at.row(i + 1), q), SIMD16(repeating: x[i + 1]))
            i += 2
        }
        if i < inputs.upperBound { a0.addProduct(E.load16(at.row(i), q), SIMD16(repeating: x[i])) }
        UnsafeMutableRawPointer(u + q).storeBytes(of: a0 + a1, as: SIMD16<Float>.self)
        q += 16
    }
    while q < r {
        var s: Float = 0
        for i in inputs { s += E.load1(at.row(i), q) * x[i] }
        u[q] = s
        q += 1
    }
}
