import Kernels
import Model

/// Runs tokens through a session and adds up how well each position predicts the token after it — the inner loop of
/// the multiple-choice scorer and of perplexity. The logits come back `rowsPerCall` rows at a time into one scratch
/// buffer made up front, so a long run allocates no logits.
final class NextTokenScores {
    let rowsPerCall: Int
    private let vocabulary: Int
    private let rows: FloatBuffer // [rowsPerCall, V]

    init(vocabulary: Int, rowsPerCall: Int) {
        self.vocabulary = vocabulary
        self.rowsPerCall = max(1, rowsPerCall)
        rows = FloatBuffer(count: self.rowsPerCall * vocabulary, zeroed: false)
    }

    /// Runs `tokens[first..<end]` at the session's position (which must be `first`) and returns
    /// Σ log p(tokens[q + 1] | tokens[...q]) over q in first..<end (nats; `tokens.count` > end).
    func run(_ session: InferenceSession, _ tokens: [Int], from first: Int, to end: Int) throws -> Double {
        precondition(session.position == first && end < tokens.count)
        var total = 0.0
        var p = first
        while p < end {
            let n = min(rowsPerCall, end - p)
            try session.logits(for: Array(tokens[p..<(p + n)]), into: rows.pointer)
            for r in 0..<n {
                total += logProbability(of: tokens[p + r + 1], in: rows.pointer + r * vocabulary, count: vocabulary)
            }
            p += n
        }
        return total
    }
}
