import Foundation
import Testing
import Formats
import Kernels
@testable import Model

// Rotary frequencies with scaling against transformers' formulas; random models in every dtype.

/// transformers' `_compute_llama3_parameters`, in float64, on the float32 base frequencies.
private func transformersLlama3(base: [Float], factor: Double, low: Double, high: Double, original: Int) -> [Double] {
    let lowFreqWavelen = Double(original) / low
    let highFreqWavelen = Double(original) / high
    return base.map { f in
        let invFreq = Double(f)
        let wavelen = 2 * Double.pi / invFreq
        // inv_freq_llama = where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
        let llama = wavelen > lowFreqWavelen ? invFreq / factor : invFreq
        // smooth_factor = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
        let smooth = (Double(original) / wavelen - low) / (high - low)
        let smoothed = (1 - smooth) * llama / factor + smooth * llama
        let isMedium = !(wavelen < highFreqWavelen) && !(wavelen > lowFreqWavelen)
        return isMedium ? smoothed : llama
    }
}

@Suite("Rope frequencies")
struct RopeFrequencyTests {
    @Test func noScaling() {
        let c = ModelConfiguration(modelType: .llama, hiddenSize: 64, intermediateSize: 64, numHiddenLayers: 1,
                                   numAttentionHeads: 4, numKeyValueHeads: 4, vocabSize: 8, ropeTheta: 10000)
        let f = c.inverseFrequencies()
        #expect(f.count == 8)
        for i in 0..<8 {
            let expected = 1 / pow(10000.0, Double(2 * i) / 16)
            #expect(abs(Double(f[i]) - expected) <= 2e-7 * expected) // measured max 5.4e-8 (float32 rounding)
        }
    }

    @Test func linear() {
        var c = ModelConfiguration(modelType: .llama, hiddenSize: 64, intermediateSize: 64, numHiddenLayers: 1,
                                   numAttentionHeads: 4, numKeyValueHeads: 4, vocabSize: 8)
        let base = c.inverseFrequencies()
        c.ropeScaling = .linear(factor: 2.5)
        let scaled = c.inverseFrequencies()
        for i in base.indices { #expect(scaled[i] == base[i] / 2.5) } // a float32 division, as transformers does
    }

    @Test func llama3OfTheFixture() throws {
        let c = try ModelConfiguration.load(path: modelPath("llama-rope-llama3") + "/config.json")
        guard case let .llama3(factor, low, high, original)? = c.ropeScaling else {
            Issue.record("the fixture has llama3 scaling")
            return
        }
        let base = Rope.baseFrequencies(base: c.ropeTheta, dimensions: c.headDim)
        let expected = transformersLlama3(base: base, factor: factor, low: low, high: high, original: original)
        let got = c.inverseFrequencies()
        #expect(got.count == 16)
        for i in got.indices {
            // Measured max 2.0e-8 here, 4.3e-8 in llama3 below (float32 rounding of the float64 formula).
            #expect(abs(Double(got[i]) - expected[i]) <= 2e-7 * expected[i], "frequency \(i): \(got[i]) vs \(expected[i])")
        }
        // The fixture was chosen so that all three regimes occur: 1 kept, 2 smoothed, 13 divided by the factor.
        let kept = (0..<16).filter { got[$0] == base[$0] }.count
        let divided = (0..<16).filter { Double(got[$0]) == Double(base[$0]) / factor }.count // factor 8: exact
        #expect(kept == 1 && divided == 13 && 16 - kept - divided == 2, "kept \(kept), divided \(divided)")
    }

    @Test(arguments: [(8.0, 1.0, 4.0, 8192, 500000.0, 128), (32.0, 1.0, 4.0, 8192, 500000.0, 64),
                      (4.0, 2.0, 3.0, 100, 10000.0, 32)])
    func llama3(factor: Double, low: Double, high: Double, original: Int, theta: Double, headDim: Int) {
        let c = ModelConfiguration(modelType: .llama, hiddenSize: headDim * 2, intermediateSize: 64, numHiddenLayers: 1,
                                   numAttentionHeads: 2, numKeyValueHeads: 1, vocabSize: 8, ropeTheta: theta,
                                   ropeScaling: .llama3(factor: factor, lowFreqFactor: low, highFreqFactor: high,
                                                        originalMaxPositionEmbeddings: original))
        let base = Rope.baseFrequencies(base: theta, dimensions: headDim)
        let expected = transformersLlama3(base: base, factor: factor, low: low, high: high, original: original)
        let got = c.inverseFrequencies()
        for i in got.indices {
            #expect(abs(Double(got[i]) - expected[i]) <= 2e-7 * expected[i], "frequency \(i)") // measured max 4.3e-8
        }
    }
}

@Suite("Random models")
struct RandomModelTests {
    private static let tiny = ModelConfiguration(modelType: .llama, hiddenSize: 64, intermediateSize: 128, numHiddenLayers: 2,
                                                 numAttentionHeads: 4, numKeyValueHeads: 2, vocabSize: 96,
                                                 maxPositionEmbeddings: 32)
    private static let tokens = [3, 17, 95, 0, 42, 8]

    @Test(arguments: DType.allCases)
    func buildsAndRuns(dtype: DType) throws {
        let pool = ThreadPool(threads: 2)
        let model = try LanguageModel.random(configuration: Self.tiny, dtype: dtype, seed: 7, pool: pool)
        #expect(model.configuration == Self.tiny)
        #expect(model.weights.layers[0].q.weight.dtype == dtype && model.weights.embedding.dtype == dtype)
        let logits = try allLogits(model, Self.tokens)
        #expect(logits.count == Self.tokens.count * 96)
        #expect(logits.allSatisfy { $0.isFinite })
        #expect(Set(logits).count > 96, "logits vary across positions and the vocabulary")
        // Deterministic for a seed; different for another seed.
        let again = try LanguageModel.random(configuration: Self.tiny, dtype: dtype, seed: 7, pool: pool)
        #expect(try allLogits(again, Self.tokens) == logits)
        let other = try LanguageModel.random(configuration: Self.tiny, dtype: dtype, seed: 8, pool: pool)
        #expect(try allLogits(other, Self.tokens) != logits)
        // Every dtype stores the same random values, rounded: the logits stay near the f32 model's, by a fraction of
        // the largest that is per dtype (measured max 3.8e-4 f16, 3.0e-3 bf16, 7.7e-3 q8_0, 0.128 q4_0, 0.135 q4_1).
        let f32 = try allLogits(try LanguageModel.random(configuration: Self.tiny, dtype: .f32, seed: 7, pool: pool), Self.tokens)
        let scale = f32.map(abs).max()!
        let allowed: Float = switch dtype {
        case .f32: 0
        case .f16: 1.5e-3
        case .bf16: 1e-2
        case .q8_0: 3e-2
        case .q4_0, .q4_1: 0.4
        }
        #expect(maxAbsDifference(logits, f32) <= allowed * scale, "\(dtype): \(maxAbsDifference(logits, f32)) vs scale \(scale)")
        // Decode agrees with one pass (measured max 1.3e-7 float types, 6.3e-7 q8_0's block kernels, 1.7e-5 4-bit
        // weights, which decode with 16-bit activations: IntegerDot.swift), threads 1–3.
        let session = InferenceSession(model: model, pool: pool)
        let v = 96
        let decodeAllowed: Float = switch dtype {
        case .f32, .f16, .bf16: 5e-7
        case .q8_0: 2.5e-6
        case .q4_0, .q4_1: 6e-5
        }
        for (i, t) in Self.tokens.enumerated() {
            let row = Array(try session.decode(t))
            #expect(maxAbsDifference(row, logits[(i * v)..<((i + 1) * v)]) <= decodeAllowed)
        }
    }

    @Test func qwen2ShapedWithBiasesAndTiedHead() throws {
        var c = Self.tiny
        c.modelType = .qwen2
        c.qkvBias = true
        c.tieWordEmbeddings = true
        c.headDim = 32 // queryDimension 128 ≠ hidden 64
        let model = try LanguageModel.random(configuration: c, dtype: .q4_0, pool: ThreadPool(threads: 1))
        #expect(model.weights.layers[1].k.bias != nil && model.weights.layers[1].o.bias == nil)
        #expect(model.weights.lmHead.data == model.weights.embedding.data)
        #expect(try allLogits(model, Self.tokens).allSatisfy { $0.isFinite })
    }

    @Test func benchmarkShapesAreValid() throws {
        for shape in BenchmarkShape.allCases { try shape.configuration.validate(file: shape.rawValue) }
    }

    @Test func invalidConfigurationIsAnError() {
        var c = Self.tiny
        c.numKeyValueHeads = 3
        #expect(throws: ModelError.self) { _ = try LanguageModel.random(configuration: c, dtype: .f32, pool: ThreadPool(threads: 1)) }
    }

    /// Block types need rows of whole blocks: a size that is not is an error, not a trap.
    @Test(arguments: [DType.q8_0, .q4_0, .q4_1])
    func sizesThatAreNotWholeBlocks(dtype: DType) throws {
        var c = Self.tiny
        c.hiddenSize = 48
        c.headDim = 12
        let error = modelError { _ = try LanguageModel.random(configuration: c, dtype: dtype, pool: ThreadPool(threads: 1)) }
        #expect(error?.errorDescription?.contains("32") == true, "\(String(describing: error))")
        var d = Self.tiny
        d.intermediateSize = 80
        #expect(modelError { _ = try LanguageModel.random(configuration: d, dtype: dtype, pool: ThreadPool(threads: 1)) } != nil)
        // The float types take any size, and run.
        let f16 = try LanguageModel.random(configuration: c, dtype: .f16, pool: ThreadPool(threads: 1))
        #expect(f16.configuration.hiddenSize == 48 && f16.weights.layers[0].q.weight.cols == 48)
        #expect(try allLogits(f16, Self.tokens).allSatisfy { $0.isFinite })
    }
}
