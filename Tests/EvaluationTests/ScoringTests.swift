import Adapters
import Foundation
import Kernels
import Model
import Testing
import TestSupport
import Text
@testable import Evaluation

// The scorer's bookkeeping: reusing the context's KV cache gives what scoring each choice from scratch gives (with
// and without adapters, a context-dependent router included), however the rows are split into calls; how contexts
// and choices become tokens; and the metrics' formulas.

@Suite(.serialized) struct ScoringTests {
    let folder: TemporaryFolder
    init() throws { folder = try TemporaryFolder() }

    /// The fixture task on the fixture model with `tokenizer`.
    private func fixtureTask(_ tokenizer: String) throws -> (LanguageModel, MultipleChoiceTask) {
        let model = try LanguageModel.load(path: try fixtureModel(tokenizer: tokenizer, in: folder))
        let file = try TaskFile.load(path: evalFixtures + "/task.jsonl")
        let task = try MultipleChoiceTask(file: file.path, examples: file.examples, tokenizer: try model.loadTokenizer(),
                                          vocabularySize: model.configuration.vocabSize, maxPositions: 128)
        return (model, task)
    }

    /// Every choice of every example scored from scratch in `scratch` and by the scorer over `reused`, `width`
    /// examples a wave (twice over: the second time every slot starts from what the first left in it).
    private func compare(_ task: MultipleChoiceTask, reused: InferenceSession, scratch: InferenceSession,
                         rowsPerCall: Int = 32, width: Int = 8, _ label: String) throws {
        let scorer = ChoiceScorer(session: reused, width: width, rowsPerCall: rowsPerCall)
        var worst = 0.0
        let examples = task.encoded + task.encoded.reversed()
        for (example, ours) in zip(examples, try scorer.score(examples)) {
            for (choice, score) in zip(example.choices, ours) {
                worst = max(worst, abs(score - (try fromScratch(scratch, tokens: choice.tokens, start: choice.start))))
            }
        }
        #expect(worst < 1e-5, "\(label): KV reuse and scoring from scratch differ by \(worst)")
    }

    @Test(arguments: tokenizerNames) func reusingTheContextEqualsScoringFromScratch(tokenizer name: String) throws {
        let (model, task) = try fixtureTask(name)
        for rows in [1, 2, 32] {
            try compare(task, reused: session(model), scratch: session(model), rowsPerCall: rows, "\(name), \(rows) rows a call")
        }
        // One example at a time, and waves of three (the last wave short).
        for width in [1, 3] {
            try compare(task, reused: session(model), scratch: session(model), width: width, "\(name), width \(width)")
        }
        // Prefill chunks shorter than the contexts: the context runs in several passes.
        try compare(task, reused: session(model, chunkSize: 3), scratch: session(model), "\(name), chunks of 3")
    }

    @Test(arguments: [AdapterStrategy.reference, .fused, .merged, .mergedInPlace])
    func reusingTheContextUnderAContextDependentRouter(strategy: AdapterStrategy) throws {
        let (model, task) = try fixtureTask("bytelevel-gpt2")
        // The router reads layer 1's input, which depends on the tokens before: a cache reused wrongly would route
        // (and score) differently.
        let adapter = try Adapter.random(.mixture(routing: "token", experts: 4, topK: 2), model: model, rank: 4,
                                         targets: LayerTensor.projections, dtype: .f32, firstLayer: 1)
        let reused = session(model), scratch = session(model)
        reused.adapters = try adapter.runtime(strategy, for: reused)
        scratch.adapters = try adapter.runtime(.reference, for: scratch)
        try compare(task, reused: reused, scratch: scratch, "\(strategy)")
    }

    @Test func scoringTwiceGivesTheSameNumbers() throws {
        let (model, task) = try fixtureTask("bytelevel-llama3")
        let scorer = ChoiceScorer(session: session(model))
        let first = try task.evaluate(with: scorer)
        var done: [Int] = []
        let second = try task.evaluate(with: scorer) { done.append($0) }
        #expect(first == second)
        #expect(done == Array(stride(from: scorer.width, to: task.examples.count, by: scorer.width)) + [task.examples.count])
    }

    // MARK: - Tokens

    @Test func trailingWhitespaceMovesToTheContinuation() throws {
        let tokenizer = try Tokenizer.load(folder: fixtures.appendingPathComponent("tokenizers/bytelevel-gpt2").path)
        let encoder = ContinuationEncoder(tokenizer: tokenizer)
        let moved = try encoder.encode(context: "The cat sat on the ", choices: ["mat", "é"])
        let given = try encoder.encode(context: "The cat sat on the", choices: [" mat", " é"])
        #expect(moved.context == given.context && moved.choices.map(\.tokens) == given.choices.map(\.tokens))
        #expect(moved.choices.map(\.start) == given.choices.map(\.start))
        // acc_norm counts the choice as given: 3 and 1 characters, not the moved space; "é" is one code point.
        #expect(moved.choices.map(\.characters) == [3, 1])
        #expect(given.choices.map(\.characters) == [4, 2])
        #expect(moved.context == tokenizer.encode("The cat sat on the", addSpecialTokens: false))
        #expect(Array(moved.choices[0].tokens[moved.choices[0].start...]) == tokenizer.encode(" mat", addSpecialTokens: false))
    }

    @Test func anEmptyContextStartsWithTheBOSToken() throws {
        let tokenizer = try Tokenizer.load(folder: fixtures.appendingPathComponent("tokenizers/bytelevel-gpt2").path)
        let bos = try #require(tokenizer.bosToken)
        #expect(!tokenizer.addBOS)
        let example = try ContinuationEncoder(tokenizer: tokenizer).encode(context: " ", choices: ["Hello"])
        #expect(example.context == [bos])
        #expect(example.choices[0].tokens == [bos] + tokenizer.encode(" Hello", addSpecialTokens: false))
        #expect(example.choices[0].start == 1)
    }

    @Test func aChoiceAddingNoTokenIsAnError() throws {
        let tokenizer = try Tokenizer.load(folder: fixtures.appendingPathComponent("tokenizers/bytelevel-gpt2").path)
        let file = folder.file("task.jsonl")
        let examples = [MultipleChoiceExample(context: "a", choices: ["b"], gold: 0, line: 1),
                        MultipleChoiceExample(context: "a", choices: ["b", "c"], gold: 0, line: 7)]
        // A vocabulary smaller than the tokenizer's: the example that needs a token outside it is named.
        let error = errorMessage {
            _ = try MultipleChoiceTask(file: file, examples: examples, tokenizer: tokenizer, vocabularySize: 99, maxPositions: 128)
        }
        #expect(error?.hasPrefix("\(file):1: the tokenizer gave token ") == true, "\(error ?? "")")
        #expect(error?.hasSuffix("outside the model's vocabulary of 99") == true, "\(error ?? "")")
        let long = [MultipleChoiceExample(context: String(repeating: "word ", count: 40), choices: ["x"], gold: 0, line: 3)]
        let tooLong = errorMessage {
            _ = try MultipleChoiceTask(file: file, examples: long, tokenizer: tokenizer, vocabularySize: 2000, maxPositions: 16)
        }
        #expect(tooLong?.hasPrefix("\(file):3: the example needs ") == true, "\(tooLong ?? "")")
        #expect(tooLong?.hasSuffix("positions, more than the model's context of 16") == true, "\(tooLong ?? "")")
    }

    // MARK: - Metrics

    @Test func argmaxTakesTheFirstOfEqualValues() {
        #expect(firstArgmax([1, 3, 3, 2]) == 1)
        #expect(firstArgmax([-5]) == 0)
        #expect(firstArgmax([-2, -1, -1]) == 1)
        let scores = ChoiceScores(logLikelihoods: [-4, -4, -6], characters: [2, 4, 6], gold: 1)
        #expect(scores.prediction == 0)
        #expect(scores.normalizedPrediction == 1) // -2, -1, -1: the first of the two
    }

    @Test func standardErrorIsTheHarnessFormula() throws {
        // sqrt(p(1 − p) / (n − 1)) for 0/1 scores: p = 3/4, n = 4 → sqrt(0.1875 / 3) = 0.25.
        #expect(meanStandardError([1, 0, 1, 1]) == 0.25)
        #expect(meanStandardError([1]) == nil)
        #expect(meanStandardError([]) == nil)
        #expect(meanStandardError([0, 0, 0]) == 0)
        // Against the sample standard deviation over sqrt(n), written out.
        let values: [Double] = [0.5, 2, -1, 4, 3.25]
        let mu = values.reduce(0, +) / 5
        let sd = (values.map { ($0 - mu) * ($0 - mu) }.reduce(0, +) / 4).squareRoot()
        #expect(meanStandardError(values) == sd / Double(5).squareRoot())
        let p = 37.0 / 100
        let scores = (0..<100).map { $0 < 37 ? 1.0 : 0.0 }
        #expect(abs(try #require(meanStandardError(scores)) - (p * (1 - p) / 99).squareRoot()) < 1e-15)
        // Metrics over examples: 2 of 3 right by acc, 1 of 3 by acc_norm.
        let m = MultipleChoiceMetrics([
            ChoiceScores(logLikelihoods: [-1, -2], characters: [1, 4], gold: 0),
            ChoiceScores(logLikelihoods: [-1, -2], characters: [1, 4], gold: 1),
            ChoiceScores(logLikelihoods: [-1, -3], characters: [1, 10], gold: 0),
        ])
        #expect(m.n == 3 && m.acc == 2.0 / 3 && m.accNorm == 1.0 / 3)
        #expect(m.accStderr == meanStandardError([1, 0, 1]) && m.accNormStderr == meanStandardError([0, 1, 0]))
    }
}
