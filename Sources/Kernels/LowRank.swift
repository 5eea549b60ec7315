// The two sides of a low-rank update y += B (A x), for one token.
//
// The output side, y += B u with B [n, r], is computed inside the matrix-vector
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

/// Σ over `terms` (all of element type E) of B[row, :] · u: the 16-lane part added into `acc`, the rest returned.
@inline(__always)
func addLowRankRow<E: FloatElements>(_ terms: UnsafeBufferPointer<LowRankTerm>, _ row: Int, into acc: inout SIMD16<Float>,
                                     _: E.Type) -> Float {
    var tail: Float = 0
    for term in terms {
        let p = term.b.row(row), r = term.b.cols, u = term.u
        var c = 0
        while c + 16 <= r {
            acc.addProduct(E.load16(p, c), load16(u, c))
            c += 16
        }
        while c < r {
            tail += E.load1(p, c) * u[c]
            c += 1
        }
    }
    return tail
}

/// y[r] += Σ over `terms` of B[r, :] · u for r in `rows`, a pass of its own: terms whose element type differs from
/// the first term's (a rare mix of adapters), which the matrix-vector kernels do not take.
func addLowRankRows(_ terms: UnsafeBufferPointer<LowRankTerm>, _ y: UnsafeMutablePointer<Float>, rows: Range<Int>) {
    for t in terms.indices {
        let one = UnsafeBufferPointer(rebasing: terms[t...t])
        for r in rows {
            var acc = SIMD16<Float>()
            let tail: Float
            switch one[0].b.dtype {
            case .f32: tail = addLowRankRow(one, r, into: &acc, F32Elements.self)
            case .f16: tail = addLowRankRow(one, r, into: &acc, F16Elements.self)
            default: tail = addLowRankRow(one, r, into: &acc, BF16Elements.self)
            }
            y[r] += horizontalSum(acc) + tail
        }
    }
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
