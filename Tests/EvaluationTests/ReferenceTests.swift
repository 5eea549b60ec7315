import Adapters
import Foundation
import Kernels
import Model
import Testing
import TestSupport
import Text
@testable import Evaluation

// Ours against scripts/make_eval_fixtures.py's reference (transformers in float64, lm-evaluation-harness's
// conventions written independently in Python, token ids from the `tokenizers` library): the same tokens, every
// choice's log-likelihood within 1e-4, the same acc and acc_norm example by example, the same standard errors, and
// the same perplexity.

private let tolerance = 1e-4

@Suite(.serialized) struct ReferenceTests {
    let folder: TemporaryFolder
    init() throws { folder = try TemporaryFolder() }

    private func task(_ model: LanguageModel, _ tokenizer: Tokenizer) throws -> MultipleChoiceTask {
        let file = try TaskFile.load(path: evalFixtures + "/task.jsonl")
        return try MultipleChoiceTask(file: file.path, examples: file.examples, tokenizer: tokenizer,
                                      vocabularySize: model.configuration.vocabSize,
                                      maxPositions: model.configuration.maxPositionEmbeddings)
    }

    /// Compares a run with its reference (the log-likelihoods differed by at most 2e-6 when this was written).
    private func check(_ result: MultipleChoiceResult, against run: [String: Any], _ label: String) throws {
        let examples = try referenceExamples(run)
        try #require(result.scores.count == examples.count)
        var worst = 0.0
        for (i, (scores, reference)) in zip(result.scores, examples).enumerated() {
            for (ours, theirs) in zip(scores.logLikelihoods, reference.logLikelihoods) {
                worst = max(worst, abs(ours - theirs))
            }
            let theirs = ChoiceScores(logLikelihoods: reference.logLikelihoods, characters: reference.characters, gold: scores.gold)
            #expect(scores.prediction == theirs.prediction, "\(label) example \(i)")
            #expect(scores.normalizedPrediction == theirs.normalizedPrediction, "\(label) example \(i)")
        }
        #expect(worst < tolerance, "\(label): log-likelihoods differ by up to \(worst)")
        let m = result.metrics
        #expect(m.n == run["n"] as? Int)
        #expect(m.acc == run["acc"] as? Double, "\(label)")
        #expect(m.accNorm == run["acc_norm"] as? Double, "\(label)")
        #expect(m.accStderr == run["acc_stderr"] as? Double, "\(label)")
        #expect(m.accNormStderr == run["acc_norm_stderr"] as? Double, "\(label)")
    }

    @Test(arguments: tokenizerNames) func tokensMatchTheReference(tokenizer name: String) throws {
        let model = try LanguageModel.load(path: try fixtureModel(tokenizer: name, in: folder))
        let tokenizer = try model.loadTokenizer()
        let ours = try task(model, tokenizer).encoded
        let theirs = try referenceExamples(try #require(try reference(name)["base"] as? [String: Any]))
        try #require(ours.count == theirs.count)
        for (i, (a, b)) in zip(ours, theirs).enumerated() {
            #expect(a.context == b.context, "example \(i)")
            #expect(a.choices.map(\.tokens) == b.tokens, "example \(i)")
            #expect(a.choices.map(\.start) == b.starts, "example \(i)")
            #expect(a.choices.map(\.characters) == b.characters, "example \(i)")
        }
        // The fixture covers what it says: a first token merging across the boundary (the continuation starts
        // inside the context's tokens), and (GPT-2: no BOS) a choice swallowing the whole context.
        #expect(ours.contains { example in example.choices.contains { $0.start < example.context.count } })
        if name == "bytelevel-gpt2" {
            #expect(ours.contains { example in example.choices.contains { !$0.tokens.starts(with: example.context) && $0.start == 1 } })
        }
    }

    @Test(arguments: tokenizerNames) func baseModel(tokenizer name: String) throws {
        let model = try LanguageModel.load(path: try fixtureModel(tokenizer: name, in: folder))
        let task = try task(model, try model.loadTokenizer())
        let result = try task.evaluate(with: ChoiceScorer(session: session(model)))
        try check(result, against: try #require(try reference(name)["base"] as? [String: Any]), name)
    }

    @Test(arguments: tokenizerNames, [AdapterStrategy.reference, .fused, .merged])
    func withTheLoRA(tokenizer name: String, strategy: AdapterStrategy) throws {
        let model = try LanguageModel.load(path: try fixtureModel(tokenizer: name, in: folder))
        let task = try task(model, try model.loadTokenizer())
        let s = session(model)
        let adapter = try Adapter.load([AdapterSpec(path: evalFixtures + "/lora")], model: model)
        s.adapters = try adapter.runtime(strategy, for: s)
        let result = try task.evaluate(with: ChoiceScorer(session: s))
        try check(result, against: try #require(try reference(name)["lora"] as? [String: Any]), "\(name) \(strategy)")
    }

    @Test(arguments: tokenizerNames) func perplexity(tokenizer name: String) throws {
        let model = try LanguageModel.load(path: try fixtureModel(tokenizer: name, in: folder))
        let tokenizer = try model.loadTokenizer()
        let run = try #require(try reference(name)["perplexity"] as? [String: Any])
        let context = try #require(run["context"] as? Int), stride = try #require(run["stride"] as? Int)
        let text = try PerplexityScorer.readText(path: evalFixtures + "/text.txt")
        let tokens = PerplexityScorer.tokens(of: text, tokenizer: tokenizer)
        #expect(tokens.count == run["tokens"] as? Int)
        let windows = try perplexityWindows(tokenCount: tokens.count, context: context, stride: stride)
        let referenceWindows = try #require(run["windows"] as? [[Int]])
        #expect(windows.map { [$0.tokens.lowerBound, $0.tokens.upperBound, $0.scored.lowerBound] } == referenceWindows)
        let result = try PerplexityScorer(session: session(model, capacity: context))
            .score(tokens: tokens, bytes: text.utf8.count, context: context, stride: stride)
        #expect(result.scoredTokens == run["scored"] as? Int)
        #expect(result.bytes == run["bytes"] as? Int)
        let nll = try #require(run["nll"] as? Double)
        let perplexity = try #require(run["perplexity"] as? Double)
        let bitsPerByte = try #require(run["bits_per_byte"] as? Double)
        // Summed over ~100 tokens: 1e-4 per token on average, and the derived figures to match.
        let difference = abs(result.negativeLogLikelihood - nll)
        #expect(difference < tolerance * Double(result.scoredTokens), "Σ NLL \(result.negativeLogLikelihood) vs \(nll)")
        #expect(abs(result.perplexity / perplexity - 1) < tolerance, "\(result.perplexity) vs \(perplexity)")
        #expect(abs(result.bitsPerByte - bitsPerByte) < tolerance, "\(result.bitsPerByte) vs \(bitsPerByte)")
    }
}
