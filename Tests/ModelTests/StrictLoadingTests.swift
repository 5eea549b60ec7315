import Foundation
import Testing
import TestSupport
import Formats
import Kernels
@testable import Model

// Strict loading: every expected tensor present with its shape, nothing left over; and load's other errors.

@Suite("Strict loading")
struct StrictLoadingTests {
    let folder: TemporaryFolder
    init() throws { folder = try TemporaryFolder() }

    private func load(_ path: String) throws -> LanguageModel { try LanguageModel.load(path: path) }

    @Test func anUneditedCopyLoadsAndMatches() throws {
        let copy = try editedCopy(of: "llama-gqa", in: folder) { _ in }
        let expected = try Expected("llama-gqa")
        let logits = try allLogits(try load(copy), expected.tokens)
        #expect(maxAbsDifference(logits, expected.logits) <= transformersTolerance)
    }

    @Test func missingTensor() throws {
        for name in ["model.layers.1.mlp.up_proj.weight", "model.norm.weight", "lm_head.weight", "model.embed_tokens.weight",
                     "model.layers.0.input_layernorm.weight"] {
            let copy = try editedCopy(of: "llama-gqa", in: folder) { $0.removeAll { $0.name == name } }
            let error = modelError { _ = try load(copy) }
            #expect(error == .missingTensor(file: copy, tensor: name))
            #expect(error?.errorDescription?.contains(name) == true && error?.errorDescription?.contains(copy) == true)
        }
    }

    @Test func unexpectedExtraTensor() throws {
        let extra = "model.layers.0.self_attn.extra_proj.weight"
        let copy = try editedCopy(of: "llama-gqa", in: folder) {
            $0.append(OwnedTensor(name: extra, dtype: .f32, shape: [2], bytes: [UInt8](repeating: 0, count: 8)))
        }
        let error = modelError { _ = try load(copy) }
        #expect(error == .unexpectedTensors(file: copy, tensors: [extra]))
        #expect(error?.errorDescription?.contains(extra) == true && error?.errorDescription?.contains(copy) == true)
        // Many extras are summarised on one line.
        let many = try editedCopy(of: "llama-gqa", in: folder) { tensors in
            for i in 0..<5 { tensors.append(OwnedTensor(name: "extra.\(i)", dtype: .f32, shape: [1], bytes: [0, 0, 0, 0])) }
        }
        let summary = modelError { _ = try load(many) }?.errorDescription ?? ""
        #expect(summary.contains("2 more") && !summary.contains("\n"), "\(summary)")
    }

    @Test func biasesTheArchitectureDoesNotHave() throws {
        // llama without attention_bias: a q bias is unexpected.
        let copy = try editedCopy(of: "llama-gqa", in: folder) {
            $0.append(OwnedTensor(name: "model.layers.0.self_attn.q_proj.bias", dtype: .f32, shape: [32],
                                  bytes: [UInt8](repeating: 0, count: 128)))
        }
        #expect(modelError { _ = try load(copy) } == .unexpectedTensors(file: copy, tensors: ["model.layers.0.self_attn.q_proj.bias"]))
        // qwen2 has no o bias.
        let qwen = try editedCopy(of: "qwen2", in: folder) {
            $0.append(OwnedTensor(name: "model.layers.1.self_attn.o_proj.bias", dtype: .f32, shape: [32],
                                  bytes: [UInt8](repeating: 0, count: 128)))
        }
        #expect(modelError { _ = try load(qwen) } == .unexpectedTensors(file: qwen, tensors: ["model.layers.1.self_attn.o_proj.bias"]))
        // llama-bias without one of its biases.
        let bias = try editedCopy(of: "llama-bias", in: folder) { $0.removeAll { $0.name == "model.layers.1.self_attn.o_proj.bias" } }
        #expect(modelError { _ = try load(bias) } == .missingTensor(file: bias, tensor: "model.layers.1.self_attn.o_proj.bias"))
    }

    @Test func ignorableRotaryFrequencies() throws {
        let copy = try editedCopy(of: "llama-gqa", in: folder) {
            $0.append(OwnedTensor(name: "model.layers.0.self_attn.rotary_emb.inv_freq", dtype: .f32, shape: [4],
                                  bytes: [UInt8](repeating: 0, count: 16)))
        }
        _ = try load(copy)
    }

    @Test func wrongShapes() throws {
        // k_proj [16, 32] stored as [32, 16]: same bytes, transposed shape.
        let k = "model.layers.0.self_attn.k_proj.weight"
        let copy = try editedCopy(of: "llama-gqa", in: folder) { tensors in
            let i = tensors.firstIndex { $0.name == k }!
            #expect(tensors[i].shape == [16, 32])
            tensors[i].shape = [32, 16]
        }
        let weights = (copy as NSString).appendingPathComponent("model.safetensors")
        let error = modelError { _ = try load(copy) }
        #expect(error == .shapeMismatch(file: weights, tensor: k, expected: [16, 32], found: [32, 16]))
        let message = error?.errorDescription ?? ""
        #expect(message.contains(k) && message.contains("[16, 32]") && message.contains("[32, 16]") && message.contains(weights))
        // A norm stored as [1, hidden].
        let norm = "model.layers.1.post_attention_layernorm.weight"
        let normCopy = try editedCopy(of: "llama-gqa", in: folder) { tensors in
            let i = tensors.firstIndex { $0.name == norm }!
            tensors[i].shape = [1, 32]
        }
        #expect(modelError { _ = try load(normCopy) } ==
                .shapeMismatch(file: (normCopy as NSString).appendingPathComponent("model.safetensors"), tensor: norm,
                               expected: [32], found: [1, 32]))
        // An embedding with fewer rows than the vocabulary.
        let embed = "model.embed_tokens.weight"
        let short = try editedCopy(of: "llama-gqa", in: folder) { tensors in
            let i = tensors.firstIndex { $0.name == embed }!
            tensors[i].shape = [64, 32]
            tensors[i].bytes = Array(tensors[i].bytes[0..<(64 * 32 * 4)])
        }
        if case .shapeMismatch(_, let tensor, let expected, let found)? = modelError({ _ = try load(short) }) {
            #expect(tensor == embed && expected == [128, 32] && found == [64, 32])
        } else {
            Issue.record("expected a shape mismatch for a short embedding")
        }
    }

    @Test func tiedHeadStoredAnyway() throws {
        let embedding = try #require(try readTensors(modelPath("llama-headdim") + "/model.safetensors").first { $0.name == "model.embed_tokens.weight" })
        // With the embedding's shape it is accepted (and used).
        let good = try editedCopy(of: "llama-headdim", in: folder) {
            $0.append(OwnedTensor(name: "lm_head.weight", dtype: embedding.dtype, shape: embedding.shape, bytes: embedding.bytes))
        }
        let expected = try Expected("llama-headdim")
        #expect(maxAbsDifference(try allLogits(try load(good), expected.tokens), expected.logits) <= transformersTolerance)
        // With another shape it is an error.
        let bad = try editedCopy(of: "llama-headdim", in: folder) {
            $0.append(OwnedTensor(name: "lm_head.weight", dtype: .f32, shape: [32, 128], bytes: embedding.bytes))
        }
        if case .shapeMismatch(_, "lm_head.weight", [128, 32], [32, 128])? = modelError({ _ = try load(bad) }) {} else {
            Issue.record("expected a shape mismatch for lm_head.weight")
        }
    }

    @Test func mixedDTypesAreFine() throws {
        // Norms in F16 and one projection in BF16: dequantized on load / converted in the kernels.
        let copy = try editedCopy(of: "llama-gqa", in: folder) { tensors in
            for i in tensors.indices where tensors[i].name.hasSuffix("layernorm.weight") || tensors[i].name.hasSuffix("q_proj.weight") {
                let values = tensors[i].bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
                let dtype: DType = tensors[i].name.hasSuffix("q_proj.weight") ? .bf16 : .f16
                var bytes = [UInt8](repeating: 0, count: values.count * 2)
                values.withUnsafeBufferPointer { src in
                    bytes.withUnsafeMutableBytes { quantize(src.baseAddress!, count: values.count, dtype: dtype, into: $0.baseAddress!) }
                }
                tensors[i].dtype = dtype
                tensors[i].bytes = bytes
            }
        }
        let expected = try Expected("llama-gqa")
        let delta = maxAbsDifference(try allLogits(try load(copy), expected.tokens), expected.logits)
        // Measured 8.0e-3.
        #expect(delta > 0 && delta <= 0.03, "rounded weights change the logits a little: \(delta)")
    }

    @Test func notAModel() throws {
        let missing = folder.file("nope")
        #expect(modelError { _ = try load(missing) } == .notAModel(path: missing, detail: "no such file or folder"))
        let empty = folder.file("empty")
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        if case .notAModel(empty, let detail)? = modelError({ _ = try load(empty) }) {
            #expect(detail.contains("config.json"))
        } else {
            Issue.record("expected notAModel for a folder without config.json")
        }
        // A config.json but no weights: the folder reader says so.
        let noWeights = folder.file("no-weights")
        try FileManager.default.createDirectory(atPath: noWeights, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: modelPath("llama-gqa") + "/config.json", toPath: noWeights + "/config.json")
        do {
            _ = try load(noWeights)
            Issue.record("a folder without weights loaded")
        } catch let error as FormatError {
            #expect(error.errorDescription?.contains(noWeights) == true)
        }
        // A file that is not GGUF.
        let text = try folder.write("model.gguf", "hello, world")
        do {
            _ = try load(text)
            Issue.record("a text file loaded")
        } catch let error as FormatError {
            #expect(error.errorDescription?.contains(text) == true && error.errorDescription?.contains("magic") == true)
        }
    }

    @Test func configurationDoesNotMatchTheWeights() throws {
        // A config whose sizes disagree with the tensors: the first tensor read reports the mismatch.
        let copy = try folder.copy(modelPath("llama-gqa"), as: "mismatch")
        let configPath = copy + "/config.json"
        let text = try String(contentsOfFile: configPath, encoding: .utf8)
            .replacingOccurrences(of: "\"vocab_size\": 128", with: "\"vocab_size\": 100")
        try text.write(toFile: configPath, atomically: true, encoding: .utf8)
        if case .shapeMismatch(_, "model.embed_tokens.weight", [100, 32], [128, 32])? = modelError({ _ = try load(copy) }) {} else {
            Issue.record("expected a shape mismatch on the embedding")
        }
    }
}

// MARK: - GGUF metadata problems

/// The offset of the value of metadata `key` in a GGUF file's bytes: found by searching for the key's length-prefixed
/// bytes (keys are unique), then skipping the 4-byte type.
private func valueOffset(of key: String, in bytes: [UInt8]) throws -> (type: Int, value: Int) {
    var needle = withUnsafeBytes(of: UInt64(key.utf8.count).littleEndian) { Array($0) }
    needle += Array(key.utf8)
    for start in 0...(bytes.count - needle.count) where bytes[start] == needle[0] {
        if Array(bytes[start..<(start + needle.count)]) == needle {
            return (start + needle.count, start + needle.count + 4)
        }
    }
    throw FormatError.missingTensor(file: "fixture", tensor: key)
}

private func putU32(_ value: UInt32, at offset: Int, in bytes: inout [UInt8]) {
    for i in 0..<4 { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
}

@Suite("GGUF configuration")
struct GGUFConfigurationTests {
    let folder: TemporaryFolder
    let original: [UInt8]
    init() throws {
        folder = try TemporaryFolder()
        original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: modelPath("llama-q8_0.gguf"))))
    }

    private func loadPatched(_ edit: (inout [UInt8]) throws -> Void) throws -> (ModelError?, String) {
        var bytes = original
        try edit(&bytes)
        let path = folder.file("patched-\(UUID().uuidString).gguf")
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return (modelError { _ = try LanguageModel.load(path: path) }, path)
    }

    @Test func unsupportedArchitecture() throws {
        let (error, path) = try loadPatched { b in
            let (_, value) = try valueOffset(of: "general.architecture", in: b)
            // "llama" → "bloom", same length.
            for (i, c) in Array("bloom".utf8).enumerated() { b[value + 8 + i] = c }
        }
        if case .notAModel(path, let detail)? = error {
            #expect(detail.contains("bloom") && detail.contains("llama") && detail.contains("qwen2"))
        } else {
            Issue.record("expected notAModel, got \(String(describing: error))")
        }
    }

    @Test func badHeadCounts() throws {
        for heads in [UInt32(0), 3, 128] {
            let (error, path) = try loadPatched { b in
                try putU32(heads, at: valueOffset(of: "llama.attention.head_count", in: b).value, in: &b)
            }
            // 0 and 128 heads leave no head size, 3 a head size of 21: none matches rope.dimension_count 16.
            if case .invalidConfiguration(path, "llama.rope.dimension_count", _)? = error {} else {
                Issue.record("head_count \(heads): expected an invalid configuration, got \(String(describing: error))")
            }
        }
        let (kvError, _) = try loadPatched { b in
            try putU32(3, at: valueOffset(of: "llama.attention.head_count_kv", in: b).value, in: &b)
        }
        if case .invalidConfiguration(_, "num_key_value_heads", _)? = kvError {} else {
            Issue.record("expected num_key_value_heads to be rejected, got \(String(describing: kvError))")
        }
    }

    @Test func wrongValueTypes() throws {
        // embedding_length as a float32: not an integer.
        let (error, path) = try loadPatched { b in
            let (type, _) = try valueOffset(of: "llama.embedding_length", in: b)
            putU32(6, at: type, in: &b)
        }
        #expect(error == .invalidConfiguration(file: path, key: "llama.embedding_length", detail: "is not an integer"))
        // A required key that is not there (renamed in place to a key of the same length).
        let (missing, missingPath) = try loadPatched { b in
            let (type, _) = try valueOffset(of: "llama.block_count", in: b)
            let keyStart = type - "llama.block_count".utf8.count
            for (i, c) in Array("llama.xxxxx_count".utf8).enumerated() { b[keyStart + i] = c }
        }
        #expect(missing == .invalidConfiguration(file: missingPath, key: "llama.block_count", detail: "required key is missing"))
    }

    @Test func ropeDimensionsMustCoverTheHead() throws {
        let (error, path) = try loadPatched { b in
            try putU32(8, at: valueOffset(of: "llama.rope.dimension_count", in: b).value, in: &b)
        }
        if case .invalidConfiguration(path, "llama.rope.dimension_count", let detail)? = error {
            #expect(detail.contains("8") && detail.contains("16"))
        } else {
            Issue.record("expected partial rotary embeddings to be rejected, got \(String(describing: error))")
        }
    }
}
