import Foundation
import Formats

// config.json as Hugging Face writes it for LlamaForCausalLM, MistralForCausalLM and Qwen2ForCausalLM (transformers
// 4.x keys, and transformers 5's `rope_parameters`). Sizes are required; the rest takes transformers' defaults.

extension ModelConfiguration {
    enum CodingKeys: String, CodingKey {
        case modelType = "model_type"
        case hiddenSize = "hidden_size"
        case intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads"
        case numKeyValueHeads = "num_key_value_heads"
        case headDim = "head_dim"
        case vocabSize = "vocab_size"
        case rmsNormEps = "rms_norm_eps"
        case ropeTheta = "rope_theta"
        case ropeScaling = "rope_scaling"
        case ropeParameters = "rope_parameters"
        case tieWordEmbeddings = "tie_word_embeddings"
        case attentionBias = "attention_bias"
        case mlpBias = "mlp_bias"
        case maxPositionEmbeddings = "max_position_embeddings"
        case slidingWindow = "sliding_window"
        case useSlidingWindow = "use_sliding_window"
        case hiddenAct = "hidden_act"
    }

    /// The `rope_scaling` / `rope_parameters` object: `rope_type` (or the older `type`) and its parameters.
    struct RopeObject: Codable {
        var ropeType: String?
        var type: String?
        var ropeTheta: Double?
        var factor: Double?
        var lowFreqFactor: Double?
        var highFreqFactor: Double?
        var originalMaxPositionEmbeddings: Int?

        enum CodingKeys: String, CodingKey {
            case ropeType = "rope_type", type, ropeTheta = "rope_theta", factor
            case lowFreqFactor = "low_freq_factor", highFreqFactor = "high_freq_factor"
            case originalMaxPositionEmbeddings = "original_max_position_embeddings"
        }

        /// The scaling it describes; throws for kinds we do not implement.
        func scaling(codingPath: [CodingKey]) throws -> RopeScaling? {
            func fail(_ detail: String) -> DecodingError {
                .dataCorrupted(.init(codingPath: codingPath, debugDescription: detail))
            }
            let kind = ropeType ?? type ?? "default"
            switch kind {
            case "default": return nil
            case "linear":
                guard let factor else { throw fail("linear rope scaling needs 'factor'") }
                return .linear(factor: factor)
            case "llama3":
                guard let factor, let lowFreqFactor, let highFreqFactor, let originalMaxPositionEmbeddings else {
                    throw fail("llama3 rope scaling needs factor, low_freq_factor, high_freq_factor and original_max_position_embeddings")
                }
                return .llama3(factor: factor, lowFreqFactor: lowFreqFactor, highFreqFactor: highFreqFactor,
                               originalMaxPositionEmbeddings: originalMaxPositionEmbeddings)
            default:
                throw fail("rope scaling type '\(kind)' is not supported (supported: default, linear, llama3)")
            }
        }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func fail(_ key: CodingKeys, _ detail: String) -> DecodingError {
            .dataCorruptedError(forKey: key, in: c, debugDescription: detail)
        }
        let typeName = try c.decode(String.self, forKey: .modelType)
        guard let modelType = ModelType(rawValue: typeName) else { throw UnsupportedModelType(name: typeName) }
        if let act = try c.decodeIfPresent(String.self, forKey: .hiddenAct), act != "silu" {
            throw fail(.hiddenAct, "activation '\(act)' is not supported (supported: silu)")
        }
        if try c.decodeIfPresent(Bool.self, forKey: .mlpBias) == true {
            throw fail(.mlpBias, "MLP biases are not supported")
        }

        let heads = try c.decode(Int.self, forKey: .numAttentionHeads)
        let hidden = try c.decode(Int.self, forKey: .hiddenSize)
        var theta = try c.decodeIfPresent(Double.self, forKey: .ropeTheta)
        var scaling: RopeScaling?
        if let parameters = try c.decodeIfPresent(RopeObject.self, forKey: .ropeParameters) {
            theta = parameters.ropeTheta ?? theta
            scaling = try parameters.scaling(codingPath: c.codingPath + [CodingKeys.ropeParameters])
        }
        if let object = try c.decodeIfPresent(RopeObject.self, forKey: .ropeScaling) {
            scaling = try object.scaling(codingPath: c.codingPath + [CodingKeys.ropeScaling])
        }

        let attentionBias = try c.decodeIfPresent(Bool.self, forKey: .attentionBias) ?? false
        var window: Int?
        switch modelType {
        case .mistral:
            window = try c.decodeIfPresent(Int.self, forKey: .slidingWindow)
        case .qwen2:
            if try c.decodeIfPresent(Bool.self, forKey: .useSlidingWindow) == true {
                throw fail(.useSlidingWindow, "qwen2's per-layer sliding window is not supported")
            }
        case .llama:
            break
        }

        self.init(
            modelType: modelType,
            hiddenSize: hidden,
            intermediateSize: try c.decode(Int.self, forKey: .intermediateSize),
            numHiddenLayers: try c.decode(Int.self, forKey: .numHiddenLayers),
            numAttentionHeads: heads,
            numKeyValueHeads: try c.decodeIfPresent(Int.self, forKey: .numKeyValueHeads) ?? heads,
            headDim: try c.decodeIfPresent(Int.self, forKey: .headDim),
            vocabSize: try c.decode(Int.self, forKey: .vocabSize),
            rmsNormEps: try c.decodeIfPresent(Float.self, forKey: .rmsNormEps) ?? 1e-6,
            ropeTheta: theta ?? 10000,
            ropeScaling: scaling,
            tieWordEmbeddings: try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings) ?? false,
            qkvBias: modelType == .qwen2 || (modelType == .llama && attentionBias),
            outputBias: modelType == .llama && attentionBias,
            maxPositionEmbeddings: try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? 2048,
            slidingWindow: window)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(modelType.rawValue, forKey: .modelType)
        try c.encode(hiddenSize, forKey: .hiddenSize)
        try c.encode(intermediateSize, forKey: .intermediateSize)
        try c.encode(numHiddenLayers, forKey: .numHiddenLayers)
        try c.encode(numAttentionHeads, forKey: .numAttentionHeads)
        try c.encode(numKeyValueHeads, forKey: .numKeyValueHeads)
        try c.encode(headDim, forKey: .headDim)
        try c.encode(vocabSize, forKey: .vocabSize)
        try c.encode(rmsNormEps, forKey: .rmsNormEps)
        try c.encode(ropeTheta, forKey: .ropeTheta)
        switch ropeScaling {
        case .linear(let factor)?:
            try c.encode(RopeObject(ropeType: "linear", factor: factor), forKey: .ropeScaling)
        case let .llama3(factor, low, high, original)?:
            try c.encode(RopeObject(ropeType: "llama3", factor: factor, lowFreqFactor: low, highFreqFactor: high,
                                    originalMaxPositionEmbeddings: original), forKey: .ropeScaling)
        case nil: break
        }
        try c.encode(tieWordEmbeddings, forKey: .tieWordEmbeddings)
        if modelType == .llama { try c.encode(qkvBias, forKey: .attentionBias) }
        try c.encode(maxPositionEmbeddings, forKey: .maxPositionEmbeddings)
        try c.encodeIfPresent(slidingWindow, forKey: .slidingWindow)
        try c.encode("silu", forKey: .hiddenAct)
    }

    /// Reads and validates a config.json; every problem becomes one `ModelError` naming the file and key.
    public static func load(path: String) throws -> ModelConfiguration {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelError.notAModel(path: path, detail: "cannot read the file")
        }
        let configuration: ModelConfiguration
        do {
            configuration = try JSONDecoder().decode(ModelConfiguration.self, from: data)
        } catch let error as UnsupportedModelType {
            throw ModelError.unsupportedModelType(file: path, modelType: error.name)
        } catch let error as DecodingError {
            throw ModelError.invalidConfiguration(file: path, key: decodingKeyPath(error), detail: decodingProblem(error))
        }
        try configuration.validate(file: path)
        return configuration
    }
}

/// Thrown inside decoding so that `load` can report it with the file name.
struct UnsupportedModelType: Error { let name: String }
