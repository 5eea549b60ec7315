import Foundation
import Testing
import TestSupport
import Formats
@testable import Model

// config.json decoding: each model type, defaults, rope settings in both forms, and errors that name the key.

/// A minimal valid config of `type`, with `extra` keys merged in (JSON text without braces).
private func json(_ type: String = "llama", _ extra: String = "") -> String {
    """
    {"model_type": "\(type)", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
     "num_attention_heads": 4, "vocab_size": 100\(extra.isEmpty ? "" : ", " + extra)}
    """
}

private func decode(_ text: String) throws -> ModelConfiguration {
    try JSONDecoder().decode(ModelConfiguration.self, from: Data(text.utf8))
}

@Suite("ModelConfiguration")
struct ConfigurationTests {
    let folder: TemporaryFolder
    init() throws { folder = try TemporaryFolder() }

    /// Loads `text` as a config.json file; returns the ModelError it is rejected with.
    private func rejection(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> (ModelError?, String) {
        let path = try folder.write("config-\(UUID().uuidString).json", text)
        return (modelError(sourceLocation: sourceLocation) { _ = try ModelConfiguration.load(path: path) }, path)
    }

    /// Expects `invalidConfiguration` naming `key` and the file.
    private func expectInvalid(_ text: String, key: String, mentioning words: [String] = [],
                               sourceLocation: SourceLocation = #_sourceLocation) throws {
        let (error, path) = try rejection(text, sourceLocation: sourceLocation)
        guard let error else { return }
        guard case let .invalidConfiguration(file, k, _) = error else {
            Issue.record("expected invalidConfiguration, got \(error)", sourceLocation: sourceLocation)
            return
        }
        #expect(file == path && k == key, "\(error)", sourceLocation: sourceLocation)
        let message = error.errorDescription ?? ""
        #expect(message.contains(path) && message.contains(key), "\(message)", sourceLocation: sourceLocation)
        for word in words { #expect(message.contains(word), "expected '\(word)' in: \(message)", sourceLocation: sourceLocation) }
        #expect(!message.contains("\n"), sourceLocation: sourceLocation)
    }

    // MARK: Valid configurations

    @Test func llamaWithDefaults() throws {
        let c = try decode(json())
        #expect(c.modelType == .llama)
        #expect(c.hiddenSize == 64 && c.intermediateSize == 128 && c.numHiddenLayers == 2 && c.vocabSize == 100)
        #expect(c.numAttentionHeads == 4)
        #expect(c.numKeyValueHeads == 4, "num_key_value_heads defaults to num_attention_heads")
        #expect(c.headDim == 16, "head_dim defaults to hidden_size / num_attention_heads")
        #expect(c.ropeTheta == 10000)
        #expect(c.ropeScaling == nil)
        #expect(c.rmsNormEps == 1e-6)
        #expect(!c.tieWordEmbeddings && !c.qkvBias && !c.outputBias)
        #expect(c.maxPositionEmbeddings == 2048)
        #expect(c.slidingWindow == nil)
        #expect(c.queryDimension == 64 && c.keyValueDimension == 64 && c.groupSize == 1)
        try c.validate(file: "x")
    }

    @Test func llamaWithEverything() throws {
        let c = try decode(json("llama", """
            "num_key_value_heads": 2, "head_dim": 32, "rope_theta": 500000.0, "rms_norm_eps": 1e-5,
            "tie_word_embeddings": true, "attention_bias": true, "max_position_embeddings": 4096, "hidden_act": "silu",
            "mlp_bias": false, "sliding_window": 7, "torch_dtype": "float32", "architectures": ["LlamaForCausalLM"]
            """))
        #expect(c.numKeyValueHeads == 2 && c.headDim == 32 && c.queryDimension == 128 && c.keyValueDimension == 64)
        #expect(c.groupSize == 2)
        #expect(c.ropeTheta == 500000 && c.rmsNormEps == 1e-5 && c.tieWordEmbeddings)
        #expect(c.qkvBias && c.outputBias)
        #expect(c.maxPositionEmbeddings == 4096)
        #expect(c.slidingWindow == nil, "llama has no sliding window, whatever the key says")
    }

    @Test func mistral() throws {
        let c = try decode(json("mistral", #""num_key_value_heads": 1, "sliding_window": 4096, "attention_bias": true"#))
        #expect(c.modelType == .mistral && c.slidingWindow == 4096 && c.numKeyValueHeads == 1)
        #expect(!c.qkvBias && !c.outputBias, "mistral has no biases")
        #expect(try decode(json("mistral", #""sliding_window": null"#)).slidingWindow == nil)
    }

    @Test func qwen2() throws {
        let c = try decode(json("qwen2", #""use_sliding_window": false, "sliding_window": 4096, "rope_theta": 1000000.0"#))
        #expect(c.modelType == .qwen2 && c.qkvBias && !c.outputBias)
        #expect(c.slidingWindow == nil)
        #expect(c.ropeTheta == 1_000_000)
    }

    @Test func ropeParametersOfTransformers5() throws {
        let plain = try decode(json("llama", #""rope_parameters": {"rope_type": "default", "rope_theta": 123456.0}"#))
        #expect(plain.ropeTheta == 123456 && plain.ropeScaling == nil)
        let llama3 = try decode(json("llama", """
            "rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                                "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
            """))
        #expect(llama3.ropeTheta == 500000)
        #expect(llama3.ropeScaling == .llama3(factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192))
        let linear = try decode(json("llama", #""rope_parameters": {"rope_type": "linear", "factor": 4, "rope_theta": 20.0}"#))
        #expect(linear.ropeScaling == .linear(factor: 4) && linear.ropeTheta == 20)
        // Without rope_theta inside, the top-level one (or the default) holds.
        #expect(try decode(json("llama", #""rope_theta": 77.0, "rope_parameters": {"rope_type": "default"}"#)).ropeTheta == 77)
    }

    @Test func ropeScalingWithTypeAndRopeType() throws {
        #expect(try decode(json("llama", #""rope_scaling": {"type": "linear", "factor": 2.0}"#)).ropeScaling == .linear(factor: 2))
        #expect(try decode(json("llama", #""rope_scaling": {"rope_type": "linear", "factor": 3.0}"#)).ropeScaling == .linear(factor: 3))
        let llama3 = try decode(json("llama", """
            "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                             "original_max_position_embeddings": 48}
            """))
        #expect(llama3.ropeScaling == .llama3(factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 48))
        #expect(try decode(json("llama", #""rope_scaling": null"#)).ropeScaling == nil)
        #expect(try decode(json("llama", #""rope_scaling": {"rope_type": "default"}"#)).ropeScaling == nil)
    }

    @Test(arguments: try modelFixtureNames().filter { !$0.hasSuffix(".gguf") })
    func encodingRoundTrips(name: String) throws {
        let c = try ModelConfiguration.load(path: modelPath(name) + "/config.json")
        let data = try JSONEncoder().encode(c)
        #expect(try JSONDecoder().decode(ModelConfiguration.self, from: data) == c)
    }

    // MARK: Errors, each naming the file and the key

    @Test func unknownModelType() throws {
        let (error, path) = try rejection(json("gpt2"))
        #expect(error == .unsupportedModelType(file: path, modelType: "gpt2"))
        let message = error?.errorDescription ?? ""
        for word in [path, "gpt2", "llama", "mistral", "qwen2"] { #expect(message.contains(word), "\(message)") }
    }

    @Test func missingOrMistypedKeys() throws {
        try expectInvalid(#"{"model_type": "llama", "intermediate_size": 1, "num_hidden_layers": 1, "num_attention_heads": 1, "vocab_size": 1}"#,
                          key: "hidden_size", mentioning: ["missing"])
        try expectInvalid(json("llama").replacingOccurrences(of: #""vocab_size": 100"#, with: #""vocab_size": null"#),
                          key: "vocab_size")
        try expectInvalid(#"{"hidden_size": 64}"#, key: "model_type")
        try expectInvalid(json("llama").replacingOccurrences(of: #""hidden_size": 64"#, with: #""hidden_size": "64""#),
                          key: "hidden_size", mentioning: ["integer"])
        // Foundation's JSONDecoder reports a fractional number where an Int is expected as "not valid JSON" at the top
        // level, so only the rejection itself is checked here.
        let (fractional, fractionalPath) = try rejection(
            json("llama").replacingOccurrences(of: #""hidden_size": 64"#, with: #""hidden_size": 64.5"#))
        if case .invalidConfiguration(fractionalPath, _, _)? = fractional {} else {
            Issue.record("a fractional hidden_size must be rejected: \(String(describing: fractional))")
        }
        try expectInvalid(json("llama", #""rope_theta": "big""#), key: "rope_theta")
        try expectInvalid(json("llama", #""tie_word_embeddings": "yes""#), key: "tie_word_embeddings")
        try expectInvalid(json("llama", #""rope_scaling": {"type": "linear", "factor": "two"}"#), key: "rope_scaling.factor")
        try expectInvalid(json("llama", #""rope_scaling": 5"#), key: "rope_scaling")
    }

    @Test func unsupportedRopeType() throws {
        try expectInvalid(json("llama", #""rope_scaling": {"rope_type": "yarn", "factor": 4.0}"#), key: "rope_scaling",
                          mentioning: ["yarn", "linear", "llama3"])
        try expectInvalid(json("llama", #""rope_scaling": {"type": "dynamic", "factor": 2.0}"#), key: "rope_scaling", mentioning: ["dynamic"])
        try expectInvalid(json("llama", #""rope_parameters": {"rope_type": "longrope"}"#), key: "rope_parameters", mentioning: ["longrope"])
        try expectInvalid(json("llama", #""rope_scaling": {"type": "linear"}"#), key: "rope_scaling", mentioning: ["factor"])
        try expectInvalid(json("llama", #""rope_scaling": {"rope_type": "llama3", "factor": 8.0}"#), key: "rope_scaling",
                          mentioning: ["low_freq_factor"])
    }

    @Test func headsNotDivisibleByKVHeads() throws {
        try expectInvalid(json("llama", #""num_key_value_heads": 3"#), key: "num_key_value_heads", mentioning: ["3", "4"])
    }

    @Test func unsupportedActivationAndBiases() throws {
        try expectInvalid(json("llama", #""hidden_act": "gelu""#), key: "hidden_act", mentioning: ["gelu", "silu"])
        try expectInvalid(json("llama", #""mlp_bias": true"#), key: "mlp_bias")
        try expectInvalid(json("qwen2", #""use_sliding_window": true"#), key: "use_sliding_window")
    }

    @Test func invalidJSON() throws {
        for text in ["{", "", "not json", "{\"model_type\": \"llama\""] {
            try expectInvalid(text, key: "(top level)", mentioning: ["JSON"])
        }
        try expectInvalid("[1, 2]", key: "(top level)")
    }

    @Test func invalidSizes() throws {
        // Zero heads must not divide by zero anywhere.
        try expectInvalid(json("llama").replacingOccurrences(of: #""num_attention_heads": 4"#, with: #""num_attention_heads": 0"#),
                          key: "num_attention_heads")
        try expectInvalid(json("llama", #""num_key_value_heads": 0"#), key: "num_key_value_heads")
        try expectInvalid(json("llama").replacingOccurrences(of: #""hidden_size": 64"#, with: #""hidden_size": -64"#),
                          key: "hidden_size")
        try expectInvalid(json("llama").replacingOccurrences(of: #""vocab_size": 100"#, with: #""vocab_size": 0"#), key: "vocab_size")
        try expectInvalid(json("llama", #""head_dim": 15"#), key: "head_dim", mentioning: ["even"])
        try expectInvalid(json("llama").replacingOccurrences(of: #""hidden_size": 64"#, with: #""hidden_size": 4611686018427387904"#),
                          key: "hidden_size", mentioning: ["large"])
        try expectInvalid(json("mistral", #""sliding_window": 0"#), key: "sliding_window")
        try expectInvalid(json("llama", #""rms_norm_eps": -1"#), key: "rms_norm_eps")
        try expectInvalid(json("llama", #""rope_theta": 0"#), key: "rope_theta")
        try expectInvalid(json("llama", #""max_position_embeddings": 0"#), key: "max_position_embeddings")
        try expectInvalid(json("llama", #""rope_scaling": {"type": "linear", "factor": 0}"#), key: "rope_scaling")
        try expectInvalid(json("llama", """
            "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 4.0, "high_freq_factor": 1.0,
                             "original_max_position_embeddings": 48}
            """), key: "rope_scaling")
    }

    @Test func unreadableFile() throws {
        let missing = folder.file("nope.json")
        let error = modelError { _ = try ModelConfiguration.load(path: missing) }
        #expect(error?.errorDescription?.contains(missing) == true)
    }
}
