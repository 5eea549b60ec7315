// The output side of a low-rank update, y += B u with B [n, r], for one token: B is kept transposed (Bᵀ [r, n],
// row-major), so each of its r rows adds a scaled slice of y — contiguous loads and FMAs, no horizontal sums
// (rows of B are only r long, and a dot product per output row would cost more in reductions than in reads).

/// y[c] += Σ_q u[q] · m[q, c] for c in `columns`. m: [r, n] (r = m.rows), in any float dtype; u: [r].
public func accumulateColumns(_ m: WeightMatrix, _ u: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                              columns: Range<Int>) {
    guard !columns.isEmpty else { return }
    switch m.dtype {
    case .f32: accumulate(m, u, y, columns, F32Elements.self)
    case .f16: accumulate(m, u, y, columns, F16Elements.self)
    case .bf16: accumulate(m, u, y, columns, BF16Elements.self)
    case .q8_0, .q4_0, .q4_1:
        preconditionFailure("low-rank factors are stored as floats")
    }
}

private func accumulate<E: FloatElements>(_ m: WeightMatrix, _ u: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                                          _ columns: Range<Int>, _: E.Type) {
    let r = m.rows
    var c = columns.lowerBound
    let end = columns.upperBound
    while c + 64 <= end {
        let yp = UnsafeMutableRawPointer(y + c)
        var a0 = yp.loadUnaligned(as: SIMD16<Float>.self)
        var a1 = yp.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self)
        var a2 = yp.loadUnaligned(fromByteOffset: 128, as: SIMD16<Float>.self)
        var a3 = yp.loadUnaligned(fromByteOffset: 192, as: SIMD16<Float>.self)
        for q in 0..<r {
            let row = m.row(q), s = SIMD16<Float>(repeating: u[q])
            a0.addProduct(s, E.load16(row, c))
            a1.addProduct(s, E.load16(row, c + 16))
            a2.addProduct(s, E.load16(row, c + 32))
            a3.addProduct(s, E.load16(row, c + 48))
        }
        yp.storeBytes(of: a0, as: SIMD16<Float>.self)
        yp.storeBytes(of: a1, toByteOffset: 64, as: SIMD16<Float>.self)
        yp.storeBytes(of: a2, toByteOffset: 128, as: SIMD16<Float>.self)
        yp.storeBytes(of: a3, toByteOffset: 192, as: SIMD16<Float>.self)
        c += 64
    }
    while c + 16 <= end {
        var a = UnsafeRawPointer(y + c).loadUnaligned(as: SIMD16<Float>.self)
        for q in 0..<r { a.addProduct(SIMD16(repeating: u[q]), E.load16(m.row(q), c)) }
        UnsafeMutableRawPointer(y + c).storeBytes(of: a, as: SIMD16<Float>.self)
        c += 16
    }
    while c < end {
        var a = y[c]
        for q in 0..<r { a += u[q] * E.load1(m.row(q), c) }
        y[c] = a
        c += 1
    }
}
