import Foundation
import Kernels
import Testing
import Text
@testable import Model

@Suite("Text generation")
struct GenerationTests {
    private func open(_ name: String = "llama-f32.gguf", threads: Int = 2) throws -> TextGenerator {
        let path = fixtures.appendingPathComponent("models/\(name)").path
        let model = try LanguageModel.load(path: path)
        let session = InferenceSession(model: model, pool: ThreadPool(threads: threads), capacity: 64)
        return TextGenerator(session: session, tokenizer: try Tokenizer.load(model: path))
    }

    /// Greedy generation equals taking the argmax of one-pass logits step by step.
    @Test func greedyFollowsTheArgmax() throws {
        let generator = try open()
        var options = GenerationOptions()
        options.sampling = .greedy
        options.maxTokens = 8
        let prompt = [1, 20, 30, 40]
        let result = try generator.generate(prompt: prompt, options: options)
        let model = generator.session.model
        var tokens = prompt
        for _ in 0..<result.tokens.count {
            let session = InferenceSession(model: model, pool: ThreadPool(threads: 1), capacity: 64)
            let logits = try session.prefill(tokens)
            tokens.append(logits.indices.max { logits[$0] < logits[$1] }!)
        }
        #expect(result.tokens.count == 8 && result.stopReason == .maxTokens, "\(result.stopReason), \(result.tokens)")
        #expect(Array(tokens[prompt.count...]) == result.tokens)
    }

    /// A second turn that extends the first reuses the cached prefix and gives what a fresh session gives.
    @Test func cachedPrefixIsReused() throws {
        let generator = try open()
        var options = GenerationOptions()
        options.sampling = .greedy
        options.maxTokens = 5
        let first = try generator.generate(prompt: [1, 5, 6, 7], options: options)
        let second = [1, 5, 6, 7] + first.tokens + [9, 10]
        let again = try generator.generate(prompt: second, options: options)
        #expect(again.promptTokensEvaluated < second.count)
        let fresh = try open().generate(prompt: second, options: options)
        #expect(again.tokens == fresh.tokens)
        #expect(fresh.promptTokensEvaluated == second.count)
    }

    @Test func contextFullAndEmptyPrompt() throws {
        let generator = try open()
        var options = GenerationOptions()
        options.sampling = .greedy
        options.maxTokens = 1000
        let result = try generator.generate(prompt: [1, 2, 3], options: options)
        // This model emits no end of sequence before the context is full: 3 prompt positions + 61 decoded fill 64, and
        // the token sampled from the last is returned too.
        #expect(result.stopReason == .contextFull && result.tokens.count == 62, "\(result.stopReason), \(result.tokens.count) tokens")
        #expect(throws: GenerationError.emptyPrompt) { try generator.generate(prompt: [], options: options) }
        #expect(throws: ModelError.self) { try generator.generate(prompt: Array(repeating: 3, count: 64), options: options) }
    }

    /// The tokenizer a model builds from its own parsed GGUF file is the one a separate load of the file gives.
    @Test(arguments: ["llama-f32.gguf", "qwen2-f32.gguf"])
    func tokenizerFromTheLoadedModel(name: String) throws {
        let path = fixtures.appendingPathComponent("models/\(name)").path
        let fromModel = try LanguageModel.load(path: path).loadTokenizer()
        let separate = try Tokenizer.load(model: path)
        #expect(fromModel.vocabularySize == separate.vocabularySize)
        #expect((0..<fromModel.vocabularySize).allSatisfy { fromModel.piece($0) == separate.piece($0) })
        #expect(fromModel.bosToken == separate.bosToken && fromModel.eosTokens == separate.eosTokens)
        let text = "Hello world, 123 héllo"
        #expect(fromModel.encode(text) == separate.encode(text))
        #expect(try fromModel.decode(fromModel.encode(text)) == separate.decode(separate.encode(text)))
    }
}
