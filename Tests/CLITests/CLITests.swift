import Foundation
import Testing
import TestSupport
import Formats
import Kernels
import Model

// The `loraswitch` executable, run as a subprocess: results, exit codes, and one clear line for every error.

@Suite("loraswitch logits")
struct LogitsCommandTests {
    let folder: TemporaryFolder
    init() throws { folder = try TemporaryFolder() }

    @Test(arguments: ["llama-gqa", "qwen2", "llama-q4_1.gguf", "llama-f16.gguf"])
    func writesTheLibrarysLogits(name: String) throws {
        let tokens = try fixtureTokens(name)
        let out = folder.file("out.safetensors")
        let result = try runLoraswitch(["logits", "--model", modelPath(name), "--tokens", tokens, "--out", out, "--threads", "2"])
        #expect(result.exitedNormally && result.status == 0, "\(result)")
        #expect(result.stderr.isEmpty, "\(result.stderr)")
        #expect(try folder.contents() == ["out.safetensors"], "only the output file is left behind")

        let file = try SafetensorsFile(path: out)
        #expect(file.tensorNames == ["logits"])
        #expect(file.metadata["tokens"] == tokens)
        let view = try #require(file.tensor("logits"))
        let ids = tokens.split(separator: ",").map { Int($0)! }
        let model = try LanguageModel.load(path: modelPath(name))
        let v = model.configuration.vocabSize
        #expect(view.dtype == .f32 && view.shape == [ids.count, v])
        let written = (0..<view.elementCount).map { view.data.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) }

        // The library's own result, same thread count.
        let session = InferenceSession(model: model, pool: ThreadPool(threads: 2))
        let expected = FloatBuffer(count: ids.count * v)
        try session.logits(for: ids, into: expected.pointer)
        // The same code on as many threads: bit for bit (measured 0).
        #expect(written == expected.toArray(), "CLI and library differ by \(zip(written, expected.toArray()).map { abs($0 - $1) }.max() ?? .infinity)")
        withExtendedLifetime(file) {}
    }

    @Test func optionForms() throws {
        let out = folder.file("eq.safetensors")
        // --name=value, options in another order, default thread count.
        let result = try runLoraswitch(["logits", "--out=\(out)", "--tokens=5,6,7", "--model=\(modelPath("mistral"))"])
        #expect(result.exitedNormally && result.status == 0, "\(result)")
        let file = try SafetensorsFile(path: out)
        #expect(file.tensor("logits")?.shape == [3, 128])
        #expect(file.metadata["tokens"] == "5,6,7")
    }

    @Test func overwritesAnExistingOutput() throws {
        let out = folder.file("out.safetensors")
        try writeBytes([1, 2, 3], to: out)
        let result = try runLoraswitch(["logits", "--model", modelPath("llama-mha"), "--tokens", "1", "--out", out])
        #expect(result.status == 0, "\(result)")
        #expect(try SafetensorsFile(path: out).tensor("logits")?.shape == [1, 128])
    }
}

@Suite("loraswitch inspect")
struct InspectCommandTests {
    @Test func huggingFaceFolder() throws {
        let path = modelPath("llama-gqa")
        let result = try runLoraswitch(["inspect", path])
        #expect(result.exitedNormally && result.status == 0, "\(result)")
        #expect(result.stderr.isEmpty)
        let out = result.stdout
        for line in ["format:        Hugging Face safetensors", "architecture:  llama", "hidden:        32",
                     "layers:        2", "heads:         4 (KV heads 2, head size 8)", "vocabulary:    128",
                     "tied head:     no", "tensors (21):"] {
            #expect(out.contains(line), "missing '\(line)' in:\n\(out)")
        }
        let file = try SafetensorsFile(path: path + "/model.safetensors")
        for name in file.tensorNames { #expect(out.contains(name), "tensor \(name) missing from the table") }
        let parameters = file.tensorNames.reduce(0) { $0 + file.tensor($1)!.elementCount }
        #expect(parameters == 26784)
        #expect(out.contains("parameters:    \(parameters) "), "parameter count \(parameters) not printed")
        #expect(out.contains("model.layers.0.mlp.down_proj.weight") && out.contains("[32, 64]"))
    }

    @Test func ggufFile() throws {
        let path = modelPath("llama-q4_1.gguf")
        let result = try runLoraswitch(["inspect", path])
        #expect(result.exitedNormally && result.status == 0, "\(result)")
        let out = result.stdout
        for line in ["format:        GGUF", "architecture:  llama", "interleaved", "metadata (GGUF v3):",
                     "general.architecture = \"llama\"", "tokenizer.ggml.tokens = [", "(256 items)", "tensors (21):",
                     "blk.1.ffn_down.weight", "q4_1", "[64, 128]"] {
            #expect(out.contains(line), "missing '\(line)' in:\n\(out)")
        }
        let file = try GGUFFile(path: path)
        let parameters = file.tensorNames.reduce(0) { $0 + file.tensor($1)!.elementCount }
        #expect(out.contains("parameters:    \(parameters) "))
    }

    @Test func specialConfigurations() throws {
        let mistral = try runLoraswitch(["inspect", modelPath("mistral")])
        #expect(mistral.status == 0 && mistral.stdout.contains("sliding window: 6"), "\(mistral)")
        let qwen = try runLoraswitch(["inspect", modelPath("qwen2")])
        #expect(qwen.status == 0 && qwen.stdout.contains("biases:        q, k, v") && qwen.stdout.contains("tied head:     yes"))
        let llama3 = try runLoraswitch(["inspect", modelPath("llama-rope-llama3")])
        #expect(llama3.status == 0 && llama3.stdout.contains("llama3 scaling"))
    }
}

// MARK: - Errors

@Suite("loraswitch errors")
struct ErrorTests {
    let folder: TemporaryFolder
    init() throws { folder = try TemporaryFolder() }

    /// Runs `logits` on `model` and expects exit 1 with one line on stderr that contains `words`, nothing on stdout,
    /// and no output file (nor a temporary one) written.
    private func expectFailure(model: String, tokens: String = "1,2,3", mentioning words: [String],
                               sourceLocation: SourceLocation = #_sourceLocation) throws {
        let outFolder = try TemporaryFolder()
        let out = outFolder.file("out.safetensors")
        let result = try runLoraswitch(["logits", "--model", model, "--tokens", tokens, "--out", out, "--threads", "2"],
                                       sourceLocation: sourceLocation)
        #expect(result.exitedNormally, "crashed: \(result)", sourceLocation: sourceLocation)
        #expect(result.status == 1, "\(result)", sourceLocation: sourceLocation)
        #expect(result.stderrLines.count == 1 && result.stderr.hasSuffix("\n"), "one line expected: \(result.stderr)",
                sourceLocation: sourceLocation)
        #expect(result.stderr.hasPrefix("loraswitch: error: "), "\(result.stderr)", sourceLocation: sourceLocation)
        for word in words {
            #expect(result.stderr.contains(word), "expected '\(word)' in: \(result.stderr)", sourceLocation: sourceLocation)
        }
        #expect(result.stdout.isEmpty, sourceLocation: sourceLocation)
        #expect(try outFolder.contents().isEmpty, "nothing may be written on failure", sourceLocation: sourceLocation)
    }

    private func hfCopy(_ name: String = "llama-gqa") throws -> (folder: String, weights: String, config: String) {
        let copy = try folder.copy(modelPath(name), as: "\(name)-\(UUID().uuidString)")
        return (copy, copy + "/model.safetensors", copy + "/config.json")
    }

    @Test func missingModelPath() throws {
        let missing = folder.file("no-such-model")
        try expectFailure(model: missing, mentioning: [missing])
    }

    @Test func truncatedSafetensors() throws {
        let m = try hfCopy()
        let bytes = try readBytes(m.weights)
        for n in [0, 5, 100, bytes.count / 2, bytes.count - 1] {
            try writeBytes(Array(bytes[0..<n]), to: m.weights)
            try expectFailure(model: m.folder, mentioning: [m.weights])
        }
    }

    @Test func headerLengthPastTheEnd() throws {
        let m = try hfCopy()
        var bytes = try readBytes(m.weights)
        for i in 0..<8 { bytes[i] = i == 6 ? 1 : 0 } // 2^48
        try writeBytes(bytes, to: m.weights)
        try expectFailure(model: m.folder, mentioning: [m.weights, "header length"])
    }

    @Test func offsetOutsideTheFile() throws {
        let m = try hfCopy()
        try editSafetensorsHeader(m.weights) { header, dataSize in
            var entry = header["model.norm.weight"] as! [String: Any]
            let offsets = entry["data_offsets"] as! [Int]
            entry["data_offsets"] = [dataSize + 64, dataSize + 64 + offsets[1] - offsets[0]]
            header["model.norm.weight"] = entry
        }
        try expectFailure(model: m.folder, mentioning: [m.weights, "model.norm.weight"])
    }

    @Test func unknownDTypeString() throws {
        let m = try hfCopy()
        try editSafetensorsHeader(m.weights) { header, _ in
            var entry = header["lm_head.weight"] as! [String: Any]
            entry["dtype"] = "F33"
            header["lm_head.weight"] = entry
        }
        try expectFailure(model: m.folder, mentioning: [m.weights, "lm_head.weight", "F33"])
    }

    /// Names read from a file may hold line breaks; the error is still one line.
    @Test func tensorNameWithALineBreak() throws {
        let m = try hfCopy()
        try editSafetensorsHeader(m.weights) { header, _ in
            var entry = header["lm_head.weight"] as! [String: Any]
            entry["dtype"] = "F33"
            header["lm_head.weight"] = nil
            header["lm_head\nweight\r\n"] = entry
        }
        try expectFailure(model: m.folder, mentioning: [m.weights, "F33"])
    }

    @Test func shapeTimesDTypeMismatch() throws {
        let m = try hfCopy()
        try editSafetensorsHeader(m.weights) { header, _ in
            var entry = header["model.layers.0.self_attn.v_proj.weight"] as! [String: Any]
            entry["shape"] = [16, 33]
            header["model.layers.0.self_attn.v_proj.weight"] = entry
        }
        try expectFailure(model: m.folder, mentioning: [m.weights, "model.layers.0.self_attn.v_proj.weight"])
    }

    @Test func missingTensor() throws {
        let m = try hfCopy()
        try editSafetensorsHeader(m.weights) { header, _ in header["model.layers.1.mlp.gate_proj.weight"] = nil }
        try expectFailure(model: m.folder, mentioning: [m.folder, "model.layers.1.mlp.gate_proj.weight", "missing"])
    }

    @Test func unexpectedExtraTensor() throws {
        let m = try hfCopy()
        try editSafetensorsHeader(m.weights) { header, dataSize in
            header["model.layers.0.mlp.extra.weight"] = ["dtype": "F32", "shape": [0], "data_offsets": [dataSize, dataSize]]
        }
        try expectFailure(model: m.folder, mentioning: [m.folder, "model.layers.0.mlp.extra.weight"])
    }

    @Test func wrongShape() throws {
        let m = try hfCopy()
        try editSafetensorsHeader(m.weights) { header, _ in
            var entry = header["model.layers.0.self_attn.k_proj.weight"] as! [String: Any]
            entry["shape"] = [32, 16]
            header["model.layers.0.self_attn.k_proj.weight"] = entry
        }
        try expectFailure(model: m.folder, mentioning: [m.weights, "model.layers.0.self_attn.k_proj.weight", "[16, 32]"])
    }

    @Test func invalidConfig() throws {
        let m = try hfCopy()
        for text in ["{", "", #"{"model_type": "llama"}"#, "[]"] {
            try Data(text.utf8).write(to: URL(fileURLWithPath: m.config))
            try expectFailure(model: m.folder, mentioning: [m.config])
        }
        let original = try String(contentsOfFile: modelPath("llama-gqa") + "/config.json", encoding: .utf8)
        try original.replacingOccurrences(of: "\"num_key_value_heads\": 2", with: "\"num_key_value_heads\": 3")
            .write(toFile: m.config, atomically: true, encoding: .utf8)
        try expectFailure(model: m.folder, mentioning: [m.config, "num_key_value_heads"])
        try original.replacingOccurrences(of: "\"hidden_act\": \"silu\"", with: "\"hidden_act\": \"gelu\"")
            .write(toFile: m.config, atomically: true, encoding: .utf8)
        try expectFailure(model: m.folder, mentioning: [m.config, "hidden_act"])
    }

    @Test func unsupportedModelType() throws {
        let m = try hfCopy()
        let original = try String(contentsOfFile: m.config, encoding: .utf8)
        try original.replacingOccurrences(of: "\"model_type\": \"llama\"", with: "\"model_type\": \"gpt_neox\"")
            .write(toFile: m.config, atomically: true, encoding: .utf8)
        try expectFailure(model: m.folder, mentioning: [m.config, "gpt_neox", "llama, mistral, qwen2"])
    }

    @Test func ggufWithAnUnsupportedTensorType() throws {
        let path = try folder.copy(modelPath("llama-q8_0.gguf"), as: "k-quant.gguf")
        var bytes = try readBytes(path)
        // Find the tensor info of blk.0.ffn_up.weight (length-prefixed name), skip its dimensions, patch its type.
        let name = Array("blk.0.ffn_up.weight".utf8)
        var needle = (0..<8).map { UInt8(truncatingIfNeeded: name.count >> (8 * $0)) }
        needle += name
        let start = try #require((0...(bytes.count - needle.count)).first { Array(bytes[$0..<($0 + needle.count)]) == needle })
        let dimensionsAt = start + needle.count
        let dimensions = Int(bytes[dimensionsAt])
        let typeAt = dimensionsAt + 4 + 8 * dimensions
        #expect(bytes[typeAt] == 8, "Q8_0 before the patch")
        bytes[typeAt] = 12
        try writeBytes(bytes, to: path)
        try expectFailure(model: path, mentioning: [path, "blk.0.ffn_up.weight", "Q4_K"])
    }

    @Test func truncatedGGUF() throws {
        let bytes = try readBytes(modelPath("llama-q4_0.gguf"))
        let path = folder.file("truncated.gguf")
        for n in [0, 3, 20, 1000, 5000, bytes.count / 2, bytes.count - 200] {
            try writeBytes(Array(bytes[0..<n]), to: path)
            try expectFailure(model: path, mentioning: [path])
        }
    }

    @Test func tokenIdOutOfRange() throws {
        try expectFailure(model: modelPath("llama-gqa"), tokens: "1,500,2", mentioning: ["500", "128", "llama-gqa"])
        try expectFailure(model: modelPath("llama-q4_0.gguf"), tokens: "256", mentioning: ["256"])
    }

    @Test func tooManyTokensForTheContext() throws {
        // 129 tokens for a context of 128.
        let tokens = (0..<129).map { String($0 % 100) }.joined(separator: ",")
        let result = try runLoraswitch(["logits", "--model", modelPath("llama-mha"), "--tokens", tokens, "--out", folder.file("o")])
        #expect(result.exitedNormally, "\(result)")
        #expect(result.status == 1 && result.stderrLines.count == 1, "\(result)")
        #expect(result.stderr.contains("129") && result.stderr.contains("128"), "\(result)")
        #expect(!FileManager.default.fileExists(atPath: folder.file("o")))
    }

    @Test func unwritableOutput() throws {
        let out = folder.file("no-such-folder/out.safetensors")
        let result = try runLoraswitch(["logits", "--model", modelPath("llama-mha"), "--tokens", "1", "--out", out])
        #expect(result.exitedNormally && result.status == 1, "\(result)")
        #expect(result.stderrLines.count == 1 && result.stderr.contains(out), "\(result.stderr)")
    }

    @Test func inspectErrors() throws {
        let missing = folder.file("nothing-here")
        let result = try runLoraswitch(["inspect", missing])
        #expect(result.exitedNormally && result.status == 1, "\(result)")
        #expect(result.stderrLines.count == 1 && result.stderr.contains(missing))
        let m = try hfCopy()
        try writeBytes(Array(try readBytes(m.weights)[0..<50]), to: m.weights)
        let truncated = try runLoraswitch(["inspect", m.folder])
        #expect(truncated.exitedNormally && truncated.status == 1 && truncated.stderrLines.count == 1, "\(truncated)")
        #expect(truncated.stderr.contains(m.weights) && truncated.stdout.isEmpty)
    }
}

@Suite("loraswitch usage")
struct UsageTests {
    /// Expects exit code 2, the usage on stderr, and that `words` are mentioned.
    private func expectUsageError(_ arguments: [String], mentioning words: [String],
                                  sourceLocation: SourceLocation = #_sourceLocation) throws {
        let folder = try TemporaryFolder()
        let result = try runLoraswitch(arguments.map { $0.replacingOccurrences(of: "OUT", with: folder.file("out.safetensors")) },
                                       sourceLocation: sourceLocation)
        #expect(result.exitedNormally, "crashed: \(result)", sourceLocation: sourceLocation)
        #expect(result.status == 2, "\(result)", sourceLocation: sourceLocation)
        #expect(result.stderr.contains("usage:"), "\(result.stderr)", sourceLocation: sourceLocation)
        for word in words {
            #expect(result.stderr.contains(word), "expected '\(word)' in: \(result.stderr)", sourceLocation: sourceLocation)
        }
        #expect(try folder.contents().isEmpty, sourceLocation: sourceLocation)
    }

    private var model: String { modelPath("llama-gqa") }

    @Test func unknownOption() throws {
        try expectUsageError(["logits", "--model", model, "--tokens", "1", "--out", "OUT", "--bogus", "3"], mentioning: ["--bogus"])
        try expectUsageError(["logits", "--model", model, "--tokens", "1", "--out", "OUT", "stray"], mentioning: ["stray"])
    }

    @Test func missingOptions() throws {
        try expectUsageError(["logits", "--model", model, "--out", "OUT"], mentioning: ["--tokens"])
        try expectUsageError(["logits", "--tokens", "1", "--out", "OUT"], mentioning: ["--model"])
        try expectUsageError(["logits", "--model", model, "--tokens", "1"], mentioning: ["--out"])
        try expectUsageError(["logits", "--model", model, "--out", "OUT", "--tokens"], mentioning: ["--tokens"])
        try expectUsageError(["logits", "--model", "--tokens", "1", "--out", "OUT"], mentioning: ["--model"])
    }

    @Test func badTokens() throws {
        for tokens in ["1,x", "", "1,,2", "-1", "1.5", "1;2", "99999999999999999999999"] {
            try expectUsageError(["logits", "--model", model, "--tokens", tokens, "--out", "OUT"], mentioning: ["--tokens"])
        }
    }

    @Test func badThreads() throws {
        for threads in ["0", "x", "100000"] {
            try expectUsageError(["logits", "--model", model, "--tokens", "1", "--out", "OUT", "--threads", threads],
                                 mentioning: ["--threads"])
        }
    }

    @Test func unknownCommandAndNoCommand() throws {
        try expectUsageError(["frobnicate"], mentioning: ["frobnicate", "logits", "inspect"])
        try expectUsageError([], mentioning: ["logits"])
        try expectUsageError(["inspect"], mentioning: ["PATH"])
    }

    @Test func help() throws {
        let top = try runLoraswitch(["--help"])
        #expect(top.exitedNormally && top.status == 0 && top.stdout.contains("logits") && top.stdout.contains("inspect"))
        let logits = try runLoraswitch(["logits", "--help"])
        #expect(logits.exitedNormally && logits.status == 0 && logits.stdout.contains("--tokens"))
    }

    @Test func executableIsFound() throws {
        let url = try loraswitchExecutable()
        #expect(FileManager.default.isExecutableFile(atPath: url.path))
    }
}
