import Foundation
import Testing
import Formats
import Kernels
@testable import Model

// Every fixture model against the logits transformers computed (and llama.cpp, for the GGUF files).

/// max |Δlogit| against llama.cpp, which rounds activations before its products: to Q8_0 for the block types
/// (measured max 6.6e-2, llama-q8_0.gguf), to F16 for F16 weights (2.1e-3, llama-f16.gguf); F32 weights: 4.5e-6
/// (qwen2-f32.gguf, transformers against llama.cpp).
private func llamaCppTolerance(_ name: String) -> Float {
    name.contains("-f32.") ? 2e-5 : name.contains("-f16.") ? 1e-2 : 0.2
}

@Suite("Fixture logits")
struct FixtureLogitsTests {
    @Test func everyFixtureIsFound() throws {
        let names = try modelFixtureNames()
        #expect(names.count == 17, "\(names)")
        for name in ["llama-mha", "llama-gqa", "llama-headdim", "llama-rope-llama3", "llama-rope-linear", "llama-bias",
                     "qwen2", "mistral", "llama-f16", "llama-bf16", "llama-sharded", "llama-f32.gguf", "llama-f16.gguf",
                     "llama-q8_0.gguf", "llama-q4_0.gguf", "llama-q4_1.gguf", "qwen2-f32.gguf"] {
            #expect(names.contains(name), "fixture \(name) not found in \(fixtures.path)")
        }
    }

    @Test(arguments: try modelFixtureNames())
    func logitsMatchTransformers(name: String) throws {
        let expected = try Expected(name)
        let model = try LanguageModel.load(path: modelPath(name))
        #expect(model.format == (name.hasSuffix(".gguf") ? .gguf : .huggingFace))
        #expect(model.configuration.vocabSize == expected.vocabulary)
        let logits = try allLogits(model, expected.tokens)
        #expect(logits.allSatisfy { $0.isFinite })
        var worst: (delta: Float, position: Int) = (0, 0)
        for i in 0..<expected.tokens.count {
            let delta = maxAbsDifference(logits[(i * expected.vocabulary)..<((i + 1) * expected.vocabulary)], expected.row(i))
            if delta > worst.delta { worst = (delta, i) }
        }
        #expect(worst.delta <= transformersTolerance,
                "\(name): max |Δlogit| \(worst.delta) at position \(worst.position) (allowed \(transformersTolerance))")
    }

    /// llama.cpp quantizes activations (Q8_0 / F16) before its products, so it agrees only as closely as
    /// `llamaCppTolerance` says for each weight type; a wrong rope layout, permutation or scale is far beyond that.
    @Test(arguments: try modelFixtureNames().filter { $0.hasSuffix(".gguf") })
    func logitsAgreeWithLlamaCpp(name: String) throws {
        let expected = try Expected(name)
        let reference = try #require(expected.llamacpp, "\(name): no llamacpp_logits in the expected file")
        let model = try LanguageModel.load(path: modelPath(name))
        let logits = try allLogits(model, expected.tokens)
        let delta = maxAbsDifference(logits, reference)
        #expect(delta <= llamaCppTolerance(name), "\(name): max |Δlogit| against llama.cpp \(delta)")
        // And llama.cpp is itself within that bound of transformers, so the two references are consistent.
        #expect(maxAbsDifference(expected.logits, reference) <= llamaCppTolerance(name))
    }

    /// The sharded folder holds llama-gqa's weights: identical logits, not just close ones.
    @Test func shardedEqualsSingleFile() throws {
        let tokens = try Expected("llama-gqa").tokens
        let a = try allLogits(try LanguageModel.load(path: modelPath("llama-gqa")), tokens)
        let b = try allLogits(try LanguageModel.load(path: modelPath("llama-sharded")), tokens)
        #expect(a == b)
    }

    /// Work is split over threads by rows and heads, never inside a sum: any thread count gives the same logits up to
    /// the rounding of BLAS kernels on different row blocks (measured max 1.9e-6, llama-q4_1.gguf and qwen2-f32.gguf).
    @Test(arguments: ["llama-gqa", "mistral", "llama-q4_1.gguf", "qwen2-f32.gguf"])
    func threadCountDoesNotChangeTheResult(name: String) throws {
        let model = try LanguageModel.load(path: modelPath(name))
        let tokens = try Expected(name).tokens
        let one = try allLogits(model, tokens, threads: 1)
        for threads in [2, 3] {
            let many = try allLogits(model, tokens, threads: threads)
            #expect(maxAbsDifference(one, many) <= 1e-5, "\(name) with \(threads) threads")
        }
    }

    @Test(arguments: try modelFixtureNames())
    func configurationAndWeights(name: String) throws {
        let model = try LanguageModel.load(path: modelPath(name))
        let c = model.configuration
        let w = model.weights
        #expect(w.layers.count == c.numHiddenLayers)
        #expect(w.embedding.rows == c.vocabSize && w.embedding.cols == c.hiddenSize)
        #expect(w.lmHead.rows == c.vocabSize && w.lmHead.cols == c.hiddenSize)
        #expect(w.rope.inverseFrequencies == c.inverseFrequencies())
        // HF checkpoints and qwen2 GGUFs rotate halves; llama GGUFs are permuted for interleaved pairs.
        let interleaved = name.hasSuffix(".gguf") && c.modelType == .llama
        #expect(w.rope.layout == (interleaved ? .interleaved : .halves))
        for layer in w.layers {
            #expect(layer.q.outputs == c.queryDimension && layer.q.inputs == c.hiddenSize)
            #expect(layer.k.outputs == c.keyValueDimension && layer.v.outputs == c.keyValueDimension)
            #expect(layer.o.outputs == c.hiddenSize && layer.o.inputs == c.queryDimension)
            #expect(layer.down.inputs == c.intermediateSize)
            #expect((layer.q.bias != nil) == c.qkvBias && (layer.o.bias != nil) == c.outputBias)
            #expect(layer.gate.bias == nil && layer.up.bias == nil && layer.down.bias == nil)
        }
        #expect(w.bytesPerToken > 0)
        #expect(model.parameterCount == w.source.tensorNames.reduce(0) { $0 + (w.source.tensor($1)?.elementCount ?? 0) })
    }

    @Test func fixtureConfigurations() throws {
        func config(_ name: String) throws -> ModelConfiguration { try LanguageModel.load(path: modelPath(name)).configuration }
        let headdim = try config("llama-headdim")
        #expect(headdim.headDim == 16 && headdim.queryDimension == 64 && headdim.hiddenSize == 32 && headdim.tieWordEmbeddings)
        let gqa = try config("llama-gqa")
        #expect(gqa.numKeyValueHeads == 2 && gqa.groupSize == 2 && gqa.headDim == 8 && !gqa.tieWordEmbeddings)
        #expect(try config("llama-mha").groupSize == 1)
        let qwen = try config("qwen2")
        #expect(qwen.modelType == .qwen2 && qwen.qkvBias && !qwen.outputBias && qwen.ropeTheta == 1e6 && qwen.tieWordEmbeddings)
        let bias = try config("llama-bias")
        #expect(bias.qkvBias && bias.outputBias)
        #expect(try config("mistral").slidingWindow == 6)
        #expect(try config("llama-rope-linear").ropeScaling == .linear(factor: 2))
        #expect(try config("llama-rope-llama3").ropeScaling == .llama3(factor: 8, lowFreqFactor: 1, highFreqFactor: 4,
                                                                        originalMaxPositionEmbeddings: 48))
        let gguf = try config("llama-q4_0.gguf")
        #expect(gguf.hiddenSize == 64 && gguf.numAttentionHeads == 4 && gguf.numKeyValueHeads == 2 && gguf.vocabSize == 256)
        #expect(gguf.intermediateSize == 128 && gguf.maxPositionEmbeddings == 128 && !gguf.tieWordEmbeddings)
        #expect(abs(gguf.rmsNormEps - 1e-5) < 1e-10 && gguf.ropeTheta == 10000 && !gguf.qkvBias)
        let qwenGGUF = try config("qwen2-f32.gguf")
        #expect(qwenGGUF.modelType == .qwen2 && qwenGGUF.qkvBias && !qwenGGUF.outputBias && qwenGGUF.tieWordEmbeddings)
        #expect(qwenGGUF.ropeTheta == 1e6 && qwenGGUF.vocabSize == 128)
    }
}
