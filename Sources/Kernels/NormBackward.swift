// RMSNorm's backward pass with its weight frozen (llm.c's layernorm_backward, less the weight and bias grads).
//
// y = x · r ∘ w, r = 1/sqrt(mean(x²) + eps), over one row of n features. With g = w ∘ dy:
// dx = r · g − x · r³/n · Σ(g ∘ x)   (∂r/∂x_j = −r³ x_j / n).
// r is recomputed from x (one pass over the row) rather than saved by the forward.

/// dx = ∂L/∂x of `rmsNorm(x, weight:, eps:)` given dOut = ∂L/∂y; `accumulate`: dx += … instead of dx = ….
/// x, weight, dOut, dx: [n]. `dx` may alias `dOut` (each element is read before it is written).
public func rmsNormBackward(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, eps: Float, count n: Int,
                            dOut: UnsafePointer<Float>, into dx: UnsafeMutablePointer<Float>, accumulate: Bool) {
    var squares = SIMD16<Float>(), products = SIMD16<Float>()
    var i = 0
    while i + 16 <= n {
        let v = load16(x, i)
        squares.addProduct(v, v)
        products.addProduct(load16(weight, i) * load16(dOut, i), v)
        i += 16
    }
    var sumSquares = horizontalSum(squares), sumProducts = horizontalSum(products)
    while i < n {
        sumSquares += x[i] * x[i]
        sumProducts += weight[i] * dOut[i] * x[i]
        i += 1
    }
    let r = 1 / (sumSquares / Float(n) + eps).squareRoot()
    let c = r * r * r / Float(n) * sumProducts
    let rv = SIMD16<Float>(repeating: r), cv = SIMD16<Float>(repeating: c)
    i = 0
    while i + 16 <= n {
        var g = rv * load16(weight, i) * load16(dOut, i) - cv * load16(x, i)
        if accumulate { g += load16(dx, i) }
        UnsafeMutableRawPointer(dx + i).storeBytes(of: g, as: SIMD16<Float>.self)
        i += 16
    }
    while i < n {
        let g = r * weight[i] * dOut[i] - c * x[i]
        dx[i] = accumulate ? dx[i] + g : g
        i += 1
    }
}

/// `rmsNormBackward` for each row in `rows` of x, dOut and dx, all [T, n] with row stride n (the pointers are
/// row 0's; rows outside `rows` are not touched).
public func rmsNormBackward(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, eps: Float, count n: Int,
                            rows: Range<Int>, dOut: UnsafePointer<Float>, into dx: UnsafeMutablePointer<Float>,
                            accumulate: Bool) {
    for t in rows {
        rmsNormBackward(x + t * n, weight: weight, eps: eps, count: n, dOut: dOut + t * n, into: dx + t * n,
                        accumulate: accumulate)
    }
}
