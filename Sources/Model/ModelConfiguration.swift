import Foundation

/// The architecture of a Llama-family model, decoded from a Hugging Face `config.json` (CodingKeys mirror its keys)
/// or built from GGUF metadata. One configuration type serves llama, mistral and qwen2: they differ only in
/// biases, sliding windows and defaults.
public struct ModelConfiguration: Codable, Sendable, Equatable {
    public enum ModelType: String, Codable, CaseIterable, Sendable {
        case llama, mistral, qwen2
    }

    public var modelType: ModelType
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var numKeyValueHeads: Int
    public var headDim: Int
    public var vocabSize: Int
    public var rmsNormEps: Float
    public var ropeTheta: Double
    public var ropeScaling: RopeScaling?
    public var tieWordEmbeddings: Bool
    /// Biases on q, k and v (llama's `attention_bias`; always on for qwen2).
    public var qkvBias: Bool
    /// Bias on o (llama's `attention_bias`; never for qwen2).
    public var outputBias: Bool
    public var maxPositionEmbeddings: Int
    /// Keys older than this many positions are masked (mistral's `sliding_window`); nil for full attention.
    public var slidingWindow: Int?

    public enum RopeScaling: Codable, Sendable, Equatable {
        /// Frequencies divided by `factor` (position interpolation).
        case linear(factor: Double)
        /// Llama 3.1's frequency-dependent scaling.
        case llama3(factor: Double, lowFreqFactor: Double, highFreqFactor: Double, originalMaxPositionEmbeddings: Int)
    }

    /// Query width: heads × head size (may differ from hidden size when `head_dim` is set).
    public var queryDimension: Int { numAttentionHeads * headDim }
    /// Key/value width: KV heads × head size.
    public var keyValueDimension: Int { numKeyValueHeads * headDim }
    /// Query heads sharing one KV head (grouped-query attention).
    public var groupSize: Int { numAttentionHeads / numKeyValueHeads }

    public init(modelType: ModelType, hiddenSize: Int, intermediateSize: Int, numHiddenLayers: Int,
                numAttentionHeads: Int, numKeyValueHeads: Int, headDim: Int? = nil, vocabSize: Int,
                rmsNormEps: Float = 1e-5, ropeTheta: Double = 10000, ropeScaling: RopeScaling? = nil,
                tieWordEmbeddings: Bool = false, qkvBias: Bool = false, outputBias: Bool = false,
                maxPositionEmbeddings: Int = 2048, slidingWindow: Int? = nil) {
        self.modelType = modelType
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.numKeyValueHeads = numKeyValueHeads
        self.headDim = headDim ?? (numAttentionHeads > 0 ? hiddenSize / numAttentionHeads : 0)
        self.vocabSize = vocabSize
        self.rmsNormEps = rmsNormEps
        self.ropeTheta = ropeTheta
        self.ropeScaling = ropeScaling
        self.tieWordEmbeddings = tieWordEmbeddings
        self.qkvBias = qkvBias
        self.outputBias = outputBias
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.slidingWindow = slidingWindow
    }

    /// Checks that the sizes make a model; throws naming the first key that does not.
    public func validate(file: String) throws {
        func fail(_ key: String, _ detail: String) -> ModelError {
            .invalidConfiguration(file: file, key: key, detail: detail)
        }
        let positive: [(String, Int)] = [
            ("hidden_size", hiddenSize), ("intermediate_size", intermediateSize),
            ("num_hidden_layers", numHiddenLayers), ("num_attention_heads", numAttentionHeads),
            ("num_key_value_heads", numKeyValueHeads), ("head_dim", headDim), ("vocab_size", vocabSize),
            ("max_position_embeddings", maxPositionEmbeddings),
        ]
        for (key, value) in positive where value <= 0 { throw fail(key, "must be positive, not \(value)") }
        // Generous limits that keep every product of sizes far from overflow.
        for (key, value) in positive where value > 1 << 24 { throw fail(key, "\(value) is implausibly large") }
        guard numAttentionHeads % numKeyValueHeads == 0 else {
            throw fail("num_key_value_heads", "\(numKeyValueHeads) does not divide num_attention_heads \(numAttentionHeads)")
        }
        guard headDim % 2 == 0 else { throw fail("head_dim", "must be even for rotary embeddings, not \(headDim)") }
        guard rmsNormEps.isFinite, rmsNormEps >= 0 else { throw fail("rms_norm_eps", "must be a non-negative number") }
        guard ropeTheta.isFinite, ropeTheta > 0 else { throw fail("rope_theta", "must be positive") }
        if let window = slidingWindow, window <= 0 { throw fail("sliding_window", "must be positive, not \(window)") }
        switch ropeScaling {
        case .linear(let factor)?:
            guard factor.isFinite, factor > 0 else { throw fail("rope_scaling", "factor must be positive") }
        case let .llama3(factor, low, high, original)?:
            guard factor.isFinite, factor > 0, low.isFinite, high.isFinite, high > low, low > 0, original > 0 else {
                throw fail("rope_scaling", "llama3 needs factor > 0, 0 < low_freq_factor < high_freq_factor and original_max_position_embeddings > 0")
            }
        case nil: break
        }
    }
}
