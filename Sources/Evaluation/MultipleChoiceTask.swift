import Text

/// Examples ready to score: each one's context (after its shots, if any) and choices as tokens, every one checked
/// to fit the model before anything runs.
public struct MultipleChoiceTask: Sendable {
    /// The file the examples came from (for messages).
    public let file: String
    public let examples: [MultipleChoiceExample]
    public let encoded: [EncodedExample]
    /// KV cache positions the longest example needs.
    public let positions: Int

    /// Encodes `examples` — the first examples of `file`, in order: example i's shots are those of index i — with
    /// `tokenizer` (see `ContinuationEncoder`). The first example that cannot be scored is an `EvaluationError`
    /// naming its line: a choice that adds no token, a token outside the model's `vocabularySize`, or more than
    /// `maxPositions` positions (the model's context) with its shots.
    public init(file: String, examples: [MultipleChoiceExample], tokenizer: Tokenizer, shots: FewShotPrompts? = nil,
                vocabularySize: Int, maxPositions: Int) throws {
        let encoder = ContinuationEncoder(tokenizer: tokenizer)
        var encoded: [EncodedExample] = []
        encoded.reserveCapacity(examples.count)
        for (i, example) in examples.enumerated() {
            do {
                let context = shots?.context(for: example, at: i) ?? example.context
                let request = try encoder.encode(context: context, choices: example.choices)
                let tokens = [request.context] + request.choices.map(\.tokens)
                if let outside = tokens.lazy.flatMap({ $0 }).first(where: { $0 < 0 || $0 >= vocabularySize }) {
                    throw LineProblem("the tokenizer gave token \(outside), outside the model's vocabulary of \(vocabularySize)")
                }
                guard request.positions <= maxPositions else {
                    let count = shots?.shots ?? 0
                    let what = count > 0 ? "with its \(count) shots, the example" : "the example"
                    throw LineProblem("\(what) needs \(request.positions) positions, more than the model's context of \(maxPositions)")
                }
                encoded.append(request)
            } catch let problem as LineProblem {
                throw EvaluationError.invalidLine(file: file, line: example.line, problem: problem.message)
            }
        }
        self.file = file
        self.examples = examples
        self.encoded = encoded
        positions = encoded.map(\.positions).max() ?? 0
    }

    /// Scores every example; `progress` gets the number done so far after each wave of the scorer. The examples run
    /// in the order of their contexts' tokens, so that neighbours share the longest prefixes (and the scorer's slots
    /// the most work); the result keeps the task's order. The scorer starts empty (`forget`), so that a task scores
    /// alike every time.
    public func evaluate(with scorer: ChoiceScorer, progress: (Int) -> Void = { _ in }) throws -> MultipleChoiceResult {
        guard positions <= scorer.session.capacity else {
            throw EvaluationError.invalidParameter(
                name: "session capacity",
                problem: "\(scorer.session.capacity) positions, and the longest example of \(file) needs \(positions)")
        }
        let order = encoded.indices.sorted { a, b in
            encoded[a].context.lexicographicallyPrecedes(encoded[b].context) || (encoded[a].context == encoded[b].context && a < b)
        }
        scorer.forget()
        let sorted = try scorer.score(order.map { encoded[$0] }, progress: progress)
        var scores = [ChoiceScores?](repeating: nil, count: examples.count)
        for (logLikelihoods, i) in zip(sorted, order) {
            let example = examples[i]
            if let bad = logLikelihoods.firstIndex(where: { !$0.isFinite }) {
                throw EvaluationError.nonFiniteScore(file: file, line: example.line, choice: bad, value: logLikelihoods[bad])
            }
            scores[i] = ChoiceScores(logLikelihoods: logLikelihoods, characters: encoded[i].choices.map(\.characters),
                                     gold: example.gold)
        }
        return MultipleChoiceResult(scores: scores.map { $0! })
    }
}

/// Every example's scores and the metrics over them.
public struct MultipleChoiceResult: Sendable, Equatable {
    public let scores: [ChoiceScores]
    public let metrics: MultipleChoiceMetrics

    public init(scores: [ChoiceScores]) {
        self.scores = scores
        metrics = MultipleChoiceMetrics(scores)
    }
}
