import Foundation
import Testing
import Formats
import Kernels
@testable import Model

// The op-by-op reference forward: against the fixtures' references, packed sequences against separate ones, the
// activation tape against the untaped pass, and its errors.

/// Logits [T, V] of `tokens` as one sequence through the reference forward.
private func referenceLogits(_ model: LanguageModel, _ tokens: [Int], threads: Int = 2) throws -> [Float] {
    let forward = ReferenceForward(model: model, pool: ThreadPool(threads: threads), capacity: tokens.count)
    try forward.run(tokens: tokens, segments: [0..<tokens.count], adapters: nil)
    let out = FloatBuffer(count: tokens.count * model.configuration.vocabSize)
    forward.head(rows: tokens.count, into: out.pointer)
    return out.toArray()
}

@Suite("Reference forward")
struct ReferenceForwardTests {
    /// Every fixture against transformers' logits (the dequantized weights for GGUF quants). The reference runs
    /// float32 products throughout (sgemm over dequantized tiles), as prefill does: measured ≤ 5.3e-6 (qwen2; others
    /// 1.3e-6 to 5.1e-6), within the fixtures' shared `transformersTolerance`.
    @Test(arguments: try modelFixtureNames())
    func matchesTransformers(name: String) throws {
        let expected = try Expected(name)
        let model = try LanguageModel.load(path: modelPath(name))
        let logits = try referenceLogits(model, expected.tokens)
        let delta = maxAbsDifference(logits, expected.logits)
        #expect(delta <= transformersTolerance, "\(name): max |Δlogit| \(delta)")
    }

    /// Sequences packed into one pass see nothing of each other: each one's rows equal its own pass, on any thread
    /// count (the products split by output rows, never inside a sum, so equal up to BLAS blocking: measured ≤ 1e-6).
    @Test(arguments: ["llama-gqa", "mistral", "qwen2", "llama-q4_1.gguf"])
    func packedSequencesAreIndependent(name: String) throws {
        let model = try LanguageModel.load(path: modelPath(name))
        let tokens = try Expected(name).tokens
        let v = model.configuration.vocabSize
        let a = Array(tokens[0..<5]), b = Array(tokens[5...]), c = Array(tokens.reversed()[0..<3])
        for threads in [1, 3] {
            let forward = ReferenceForward(model: model, pool: ThreadPool(threads: threads), capacity: 32)
            let packed = a + b + c
            try forward.run(tokens: packed, segments: [0..<5, 5..<(5 + b.count), (5 + b.count)..<packed.count], adapters: nil)
            let out = FloatBuffer(count: packed.count * v)
            forward.head(rows: packed.count, into: out.pointer)
            let all = out.toArray()
            var row = 0
            for sequence in [a, b, c] {
                let alone = try referenceLogits(model, sequence, threads: threads)
                let mine = all[(row * v)..<((row + sequence.count) * v)]
                #expect(maxAbsDifference(mine, alone) <= 1e-5, "\(name), \(threads) threads, sequence at row \(row)")
                row += sequence.count
            }
        }
    }

    /// A session's reference path (KV cache, chunks) equals one packed pass of the whole sequence.
    @Test(arguments: ["llama-gqa", "mistral", "llama-bias", "llama-f16"])
    func sessionPathEqualsOnePass(name: String) throws {
        let model = try LanguageModel.load(path: modelPath(name))
        let tokens = try Expected(name).tokens
        let onePass = try referenceLogits(model, tokens)
        let forward = ReferenceForward(model: model, pool: ThreadPool(threads: 2), capacity: 4, context: tokens.count)
        let cache = KVCache(configuration: model.configuration, capacity: tokens.count)
        let v = model.configuration.vocabSize
        var all: [Float] = []
        var position = 0
        for chunk in [Array(tokens[0..<4]), Array(tokens[4..<5]), Array(tokens[5..<9]), Array(tokens[9...])] {
            try forward.forward(chunk, positions: Array(position..<(position + chunk.count)), context: .cache(cache, position: position),
                            adapters: nil, tape: nil)
            let out = FloatBuffer(count: chunk.count * v)
            forward.head(rows: chunk.count, into: out.pointer)
            all += out.toArray()
            position += chunk.count
        }
        #expect(maxAbsDifference(all, onePass) <= 1e-5, "\(name)")
    }

    /// With a tape the pass computes the same and keeps its activations: the tape's last residual stream gives the
    /// same final norm, and each layer's input is the previous layer's output (its `middle` plus the MLP's).
    @Test func tapeKeepsTheActivations() throws {
        let model = try LanguageModel.load(path: modelPath("llama-gqa"))
        let c = model.configuration
        let tokens = try Expected("llama-gqa").tokens
        let untaped = try referenceLogits(model, tokens)
        let forward = ReferenceForward(model: model, pool: ThreadPool(threads: 2), capacity: tokens.count)
        let tape = ActivationTape(configuration: c, capacity: tokens.count, firstLayer: 1)
        try forward.run(tokens: tokens, segments: [0..<tokens.count], adapters: nil, tape: tape)
        let out = FloatBuffer(count: tokens.count * c.vocabSize)
        forward.head(rows: tokens.count, into: out.pointer)
        #expect(out.toArray() == untaped)
        #expect(tape.rows == tokens.count && tape.layers[0] == nil && tape.layers[1] != nil)
        let layer = try #require(tape.layers[c.numHiddenLayers - 1])
        let d = c.hiddenSize
        // RMSNorm(input) with the layer's attention norm is what the tape kept as q, k and v's input.
        let normed = FloatBuffer(count: d)
        for i in 0..<tokens.count {
            rmsNorm(layer.input.pointer + i * d, weight: model.weights.layers[c.numHiddenLayers - 1].attentionNorm.pointer,
                    eps: c.rmsNormEps, count: d, into: normed.pointer)
            #expect(normed.toArray() == Array(UnsafeBufferPointer(start: layer.normalized.pointer + i * d, count: d)))
        }
        // The log-sum-exp of the first row's scores is its only score: q·k / sqrt(hd) of position 0 with itself.
        let hd = c.headDim
        for h in 0..<c.numAttentionHeads {
            let kv = h / c.groupSize
            let score = dot(layer.q.pointer + h * hd, layer.k.pointer + kv * hd, hd) / Float(hd).squareRoot()
            #expect(abs(layer.logSumExp[h] - score) <= 1e-5 * max(1, abs(score)))
        }
        #expect(tape.byteCount > 0)
    }

    @Test func rowsThatDoNotFitAreErrors() throws {
        let model = try LanguageModel.load(path: modelPath("llama-gqa"))
        let forward = ReferenceForward(model: model, pool: ThreadPool(threads: 1), capacity: 4)
        #expect(throws: ModelError.self) { try forward.run(tokens: [1, 2, 3], segments: [0..<2], adapters: nil) }
        #expect(throws: ModelError.self) { try forward.run(tokens: [1, 2, 3], segments: [0..<2, 1..<3], adapters: nil) }
        #expect(throws: ModelError.self) { try forward.run(tokens: [1, 2, 3, 4, 5], segments: [0..<5], adapters: nil) }
        #expect(throws: ModelError.self) { try forward.run(tokens: [1, 99_999], segments: [0..<2], adapters: nil) }
        let tape = ActivationTape(configuration: model.configuration, capacity: 2)
        #expect(throws: ModelError.self) { try forward.run(tokens: [1, 2, 3], segments: [0..<3], adapters: nil, tape: tape) }
    }
}
