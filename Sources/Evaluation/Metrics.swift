import Foundation

/// One example's outcome: the log-likelihood of each choice, and what acc and acc_norm make of it.
public struct ChoiceScores: Sendable, Equatable {
    /// Σ log p of each choice's continuation (nats), in choice order.
    public let logLikelihoods: [Double]
    /// Each choice's length in Unicode code points (acc_norm's divisor).
    public let characters: [Int]
    public let gold: Int

    public init(logLikelihoods: [Double], characters: [Int], gold: Int) {
        precondition(logLikelihoods.count == characters.count && logLikelihoods.indices.contains(gold))
        self.logLikelihoods = logLikelihoods
        self.characters = characters
        self.gold = gold
    }

    /// acc's choice: the highest log-likelihood.
    public var prediction: Int { firstArgmax(logLikelihoods) }
    /// acc_norm's choice: the highest log-likelihood per character.
    public var normalizedPrediction: Int {
        firstArgmax(zip(logLikelihoods, characters).map { $0 / Double($1) })
    }
}

/// acc and acc_norm over a set of examples with lm-evaluation-harness's standard errors.
public struct MultipleChoiceMetrics: Sendable, Equatable {
    public let n: Int
    public let acc: Double
    public let accNorm: Double
    /// nil for fewer than two examples (the sample standard deviation needs two).
    public let accStderr: Double?
    public let accNormStderr: Double?

    public init(_ scores: [ChoiceScores]) {
        let correct = scores.map { $0.prediction == $0.gold ? 1.0 : 0.0 }
        let normalized = scores.map { $0.normalizedPrediction == $0.gold ? 1.0 : 0.0 }
        n = scores.count
        acc = mean(correct)
        accNorm = mean(normalized)
        accStderr = meanStandardError(correct)
        accNormStderr = meanStandardError(normalized)
    }
}

/// The index of the largest value, the first of equal ones (numpy's `argmax`). `values` is not empty.
public func firstArgmax(_ values: [Double]) -> Int {
    precondition(!values.isEmpty, "argmax of nothing")
    var best = 0
    for i in values.indices.dropFirst() where values[i] > values[best] { best = i }
    return best
}

/// Σ values / n, summed left to right (Python's `sum(arr) / len(arr)`); NaN for no values.
func mean(_ values: [Double]) -> Double {
    values.isEmpty ? .nan : values.reduce(0, +) / Double(values.count)
}

/// lm-evaluation-harness's `mean_stderr`: `sample_stddev(arr) / sqrt(len(arr))`, with
/// `sample_stddev = sqrt(sum((x - mu) ** 2 for x in arr) / (len(arr) - 1))` — for 0/1 scores at rate p that is
/// sqrt(p(1 − p) / (n − 1)). Summed left to right as Python's `sum` does up to 3.11, so the result is the same to
/// the bit (3.12's compensated `sum` can differ in the last bit). nil below two values (the harness divides by zero
/// there).
public func meanStandardError(_ values: [Double]) -> Double? {
    guard values.count >= 2 else { return nil }
    let mu = mean(values)
    let squares = values.reduce(0) { $0 + ($1 - mu) * ($1 - mu) }
    return (squares / Double(values.count - 1)).squareRoot() / Double(values.count).squareRoot()
}
