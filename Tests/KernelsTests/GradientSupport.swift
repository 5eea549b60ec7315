import Foundation

// Helpers of the gradient tests: central differences of float64 reference functions, and error measures.
//
// The forward references are written in float64, so that a central difference with a step of ~1e-5 is exact to
// ~1e-10 and the difference between it and a float32 backward kernel is the kernel's own rounding (~1e-7 relative).

/// (f(x + h·v) − f(x − h·v)) / 2h: the derivative of f at x along v.
func centralDifference(at x: [Double], along v: [Double], step h: Double, _ f: ([Double]) -> Double) -> Double {
    let plus = zip(x, v).map { $0 + h * $1 }, minus = zip(x, v).map { $0 - h * $1 }
    return (f(plus) - f(minus)) / (2 * h)
}

/// ∂f/∂x_i for every i, by central differences.
func numericGradient(at x: [Double], step h: Double, _ f: ([Double]) -> Double) -> [Double] {
    var point = x
    return x.indices.map { i in
        point[i] = x[i] + h
        let plus = f(point)
        point[i] = x[i] - h
        let minus = f(point)
        point[i] = x[i]
        return (plus - minus) / (2 * h)
    }
}

/// max_i |a_i − b_i| / max_i |b_i|: the error of `a` relative to the size of the reference `b`.
func relativeError(_ a: [Float], _ b: [Double]) -> Double {
    precondition(a.count == b.count, "\(a.count) values against \(b.count)")
    let scale = b.reduce(0) { max($0, abs($1)) }
    let error = zip(a, b).reduce(0) { max($0, abs(Double($1.0) - $1.1)) }
    return scale > 0 ? error / scale : error
}

/// Σ a_i · b_i in float64.
func inner(_ a: [Float], _ b: [Double]) -> Double { zip(a, b).reduce(0) { $0 + Double($1.0) * $1.1 } }

func doubles(_ values: [Float]) -> [Double] { values.map(Double.init) }
