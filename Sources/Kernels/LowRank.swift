// The output side of a low-rank update, y += B u with B [n, r], for one token, computed inside the matrix-vector
// product of the base matrix whose rows it adds to: for output row i, B's row i (r elements — one cache line at
// rank 16 in f32) is multiplied by u in the same SIMD accumulator as the base row's products, so the B matrices are
// read as a few more sequential streams beside the base matrix and share its horizontal sum. Read on their own,
// in a pass of their own, the same bytes cost twice as long (short streams, a start-up each).

/// One term y[i] += B[i, :] · u of a matrix-vector product: B [rows of the base matrix, r] in a float dtype, u [r].
public struct LowRankTerm {
    public let b: WeightMatrix
    public let u: UnsafePointer<Float>

    public init(b: WeightMatrix, u: UnsafePointer<Float>) {
        precondition(!b.dtype.isQuantized, "low-rank factors are stored as floats")
        self.b = b
        self.u = u
    }
}

/// Σ over `terms` of B[row, :] · u: the 16-lane part added into `acc`, the rest returned.
@inline(__always)
func addLowRankRow(_ terms: UnsafeBufferPointer<LowRankTerm>, _ row: Int, into acc: inout SIMD16<Float>) -> Float {
    var tail: Float = 0
    for term in terms {
        switch term.b.dtype {
        case .f32: tail += lowRankRow(term, row, &acc, F32Elements.self)
        case .f16: tail += lowRankRow(term, row, &acc, F16Elements.self)
        default: tail += lowRankRow(term, row, &acc, BF16Elements.self)
        }
    }
    return tail
}

@inline(__always)
private func lowRankRow<E: FloatElements>(_ term: LowRankTerm, _ row: Int, _ acc: inout SIMD16<Float>, _: E.Type) -> Float {
    let p = term.b.row(row), r = term.b.cols, u = term.u
    var c = 0
    while c + 16 <= r {
        acc.addProduct(E.load16(p, c), load16(u, c))
        c += 16
    }
    var tail: Float = 0
    while c < r {
        tail += E.load1(p, c) * u[c]
        c += 1
    }
    return tail
}
