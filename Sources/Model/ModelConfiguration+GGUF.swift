import Formats

extension ModelConfiguration {
    /// GGUF architectures we run, and the model type each maps to. (Mistral GGUFs use the llama architecture.)
    static let ggufArchitectures: [String: ModelType] = ["llama": .llama, "qwen2": .qwen2]

    /// The configuration a GGUF file's metadata (`{arch}.*` keys, as llama.cpp writes them) describes. Presence of
    /// bias and output tensors decides qkvBias, outputBias and tied embeddings, as in llama.cpp's loader.
    public init(gguf file: GGUFFile) throws {
        let path = file.path
        guard let architecture = file.metadata["general.architecture"]?.stringValue else {
            throw ModelError.invalidConfiguration(file: path, key: "general.architecture", detail: "required key is missing")
        }
        guard let modelType = Self.ggufArchitectures[architecture] else {
            throw ModelError.notAModel(path: path,
                detail: "GGUF architecture '\(architecture)' is not supported (supported: \(Self.ggufArchitectures.keys.sorted().joined(separator: ", ")))")
        }
        func value(_ key: String) -> GGUFValue? { file.metadata["\(architecture).\(key)"] }
        func integer(_ key: String, default fallback: Int? = nil) throws -> Int {
            guard let v = value(key) else {
                if let fallback { return fallback }
                throw ModelError.invalidConfiguration(file: path, key: "\(architecture).\(key)", detail: "required key is missing")
            }
            guard let i = v.intValue else {
                throw ModelError.invalidConfiguration(file: path, key: "\(architecture).\(key)", detail: "is not an integer")
            }
            return i
        }
        func real(_ key: String, default fallback: Double) throws -> Double {
            guard let v = value(key) else { return fallback }
            guard let d = v.doubleValue else {
                throw ModelError.invalidConfiguration(file: path, key: "\(architecture).\(key)", detail: "is not a number")
            }
            return d
        }

        let hidden = try integer("embedding_length")
        let heads = try integer("attention.head_count")
        guard let embedding = file.tensor("token_embd.weight") else {
            throw ModelError.missingTensor(file: path, tensor: "token_embd.weight")
        }
        guard embedding.shape.count == 2 else {
            throw ModelError.notAModel(path: path,
                detail: "tensor 'token_embd.weight' has shape \(embedding.shape), expected [vocabulary, \(hidden)]")
        }
        var scaling: RopeScaling?
        switch value("rope.scaling.type")?.stringValue ?? "none" {
        case "none": break
        case "linear": scaling = .linear(factor: try real("rope.scaling.factor", default: 1))
        case let other:
            throw ModelError.invalidConfiguration(file: path, key: "\(architecture).rope.scaling.type",
                detail: "rope scaling '\(other)' is not supported (supported: none, linear)")
        }
        let headDim = try integer("attention.key_length", default: heads > 0 ? hidden / heads : 0)
        self.init(
            modelType: modelType,
            hiddenSize: hidden,
            intermediateSize: try integer("feed_forward_length"),
            numHiddenLayers: try integer("block_count"),
            numAttentionHeads: heads,
            numKeyValueHeads: try integer("attention.head_count_kv", default: heads),
            headDim: headDim,
            vocabSize: embedding.shape[0],
            rmsNormEps: Float(try real("attention.layer_norm_rms_epsilon", default: 1e-5)),
            ropeTheta: try real("rope.freq_base", default: 10000),
            ropeScaling: scaling,
            tieWordEmbeddings: file.tensor("output.weight") == nil,
            qkvBias: file.tensor("blk.0.attn_q.bias") != nil,
            outputBias: file.tensor("blk.0.attn_output.bias") != nil,
            maxPositionEmbeddings: try integer("context_length", default: 2048),
            slidingWindow: value("attention.sliding_window")?.intValue)
        let ropeDimensions = try integer("rope.dimension_count", default: headDim)
        guard ropeDimensions == headDim else {
            throw ModelError.invalidConfiguration(file: path, key: "\(architecture).rope.dimension_count",
                detail: "partial rotary embeddings (\(ropeDimensions) of \(headDim) dimensions) are not supported")
        }
        try validate(file: path)
    }
}
