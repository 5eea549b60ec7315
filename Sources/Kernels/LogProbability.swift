#if canImport(Glibc)
import Glibc
#endif

// The log-probability of one token under a row of logits, for scoring text (evaluation's log-likelihoods and
// perplexity): log softmax(z)_y = z_y − logsumexp(z). The exponentials are Float (SIMD, ~1 ulp); their sum is
// accumulated in Double, so the result keeps ~1e-7 relative accuracy whatever the vocabulary size.

/// logsumexp(row[0..<count]) = max + log Σ e^(z − max). Each lane sums 16 exponentials (each ≤ 1) in Float, and
/// those partial sums are added in Double. A non-finite maximum (+∞, or −∞ for a row of −∞) is returned as it is.
public func logSumExp(_ row: UnsafePointer<Float>, count n: Int) -> Double {
    precondition(n > 0, "logSumExp of an empty row")
    let maximum = rowMaximum(row, count: n)
    guard maximum.isFinite else { return Double(maximum) }
    let shift = SIMD16<Float>(repeating: maximum)
    var total = 0.0
    var i = 0
    while i + 16 <= n {
        var block = SIMD16<Float>()
        var steps = 0
        while steps < 16, i + 16 <= n {
            block += exp(load16(row, i) - shift)
            i += 16
            steps += 1
        }
        total += Double(horizontalSum(block))
    }
    while i < n {
        total += Double(expf(row[i] - maximum))
        i += 1
    }
    return Double(maximum) + log(total)
}

/// log softmax(row)[target] in Double: how likely a row of logits [count] makes the token `target`.
public func logProbability(of target: Int, in row: UnsafePointer<Float>, count: Int) -> Double {
    precondition(target >= 0 && target < count, "token \(target) outside the vocabulary of \(count)")
    return Double(row[target]) - logSumExp(row, count: count)
}
