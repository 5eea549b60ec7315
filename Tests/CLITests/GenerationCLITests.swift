import Foundation
import Formats
import Kernels
import Testing
import TestSupport
import Text
@testable import Model

private let tokenizersFolder = fixtures.appendingPathComponent("tokenizers")

/// A tiny random model in a Hugging Face folder with the bytelevel-gpt2 fixture's tokenizer and a ChatML template,
/// so that `chat` and `generate --chat` can run end to end.
private func chatModel(in folder: TemporaryFolder) throws -> String {
    let source = tokenizersFolder.appendingPathComponent("bytelevel-gpt2").path
    let tokenizer = try Tokenizer.load(folder: source)
    let vocabulary = (tokenizer.vocabularySize + 31) / 32 * 32
    let configuration = ModelConfiguration(modelType: .llama, hiddenSize: 64, intermediateSize: 128, numHiddenLayers: 2,
                                           numAttentionHeads: 4, numKeyValueHeads: 2, vocabSize: vocabulary,
                                           maxPositionEmbeddings: 512)
    let model = try LanguageModel.random(configuration: configuration, dtype: .f32, seed: 3, pool: ThreadPool(threads: 1))
    let dir = folder.file("chat-model")
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let weights = model.weights.source
    let tensors = weights.tensorNames.map { name -> TensorBytes in
        let t = weights.tensor(name)!
        return .init(name: t.name, dtype: t.dtype, shape: t.shape, bytes: UnsafeRawBufferPointer(start: t.data, count: t.byteCount))
    }
    try SafetensorsWriter.write(tensors, to: dir + "/model.safetensors")
    try JSONEncoder().encode(configuration).write(to: URL(fileURLWithPath: dir + "/config.json"))
    try FileManager.default.copyItem(atPath: source + "/tokenizer.json", toPath: dir + "/tokenizer.json")
    let chatML = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    let config: [String: Any] = ["chat_template": chatML, "eos_token": "<|endoftext|>"]
    try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: dir + "/tokenizer_config.json"))
    return dir
}

@Suite("loraswitch generate, chat, tokenize")
struct GenerationCLITests {
    let folder: TemporaryFolder
    init() throws { folder = try TemporaryFolder() }

    @Test func greedyGenerationIsDeterministic() throws {
        let model = modelPath("llama-f32.gguf")
        let arguments = ["generate", "--model", model, "--prompt", "t5 t6 t7", "--temperature", "0", "--max-tokens", "6"]
        let a = try runLoraswitch(arguments), b = try runLoraswitch(arguments + ["--stats"])
        #expect(a.exitedNormally && a.status == 0, "\(a)")
        #expect(!a.stdout.isEmpty && a.stdout == b.stdout)
        #expect(b.stderr.contains("ms/token"), "\(b)")
    }

    @Test func seededSamplingIsReproducible() throws {
        let model = modelPath("llama-f32.gguf")
        let arguments = ["generate", "--model", model, "--prompt", "t5", "--temperature", "1.2", "--seed", "7", "--max-tokens", "12"]
        let a = try runLoraswitch(arguments), b = try runLoraswitch(arguments)
        #expect(a.status == 0 && a.stdout == b.stdout, "\(a)")
    }

    @Test func missingDefaultModelSaysHowToFetchIt() throws {
        let empty = try TemporaryFolder()
        let result = try runLoraswitch(["generate", "--prompt", "hi"], environment: ["XDG_CACHE_HOME": empty.path])
        #expect(result.exitedNormally && result.status == 1, "\(result)")
        #expect(result.stderrLines.count == 1 && result.stderr.contains("fetch-default-model.sh"), "\(result)")
    }

    @Test func badSamplingOptionsAreUsageErrors() throws {
        let model = modelPath("llama-f32.gguf")
        for bad in [["--temperature", "-1"], ["--top-p", "0"], ["--min-p", "2"], ["--seed", "x"], ["--max-tokens", "-3"]] {
            let result = try runLoraswitch(["generate", "--model", model, "--prompt", "t5"] + bad)
            #expect(result.exitedNormally && result.status == 2, "\(bad): \(result)")
        }
        let noTemplate = try runLoraswitch(["generate", "--model", model, "--prompt", "t5", "--chat"])
        #expect(noTemplate.status == 1 && noTemplate.stderrLines.count == 1 && noTemplate.stderr.contains("chat template"),
                "\(noTemplate)")
    }

    @Test func tokenizeAndDecode() throws {
        let path = tokenizersFolder.appendingPathComponent("bytelevel-gpt2").path
        let tokenizer = try Tokenizer.load(folder: path)
        let text = "Hello, world! 123 café"
        let result = try runLoraswitch(["tokenize", "--model", path, "--text", text])
        #expect(result.status == 0, "\(result)")
        let ids = tokenizer.encode(text)
        #expect(result.stdout == ids.map(String.init).joined(separator: ",") + "\n")
        let back = try runLoraswitch(["tokenize", "--model", path, "--decode", ids.map(String.init).joined(separator: ",")])
        #expect(back.status == 0 && back.stdout == text + "\n", "\(back)")
        let bad = try runLoraswitch(["tokenize", "--model", path, "--decode", "1,99999999"])
        #expect(bad.status == 1 && bad.stderrLines.count == 1, "\(bad)")
    }

    @Test func malformedEOSIdIsOneLineAndExit1() throws {
        let model = try folder.copy(tokenizersFolder.appendingPathComponent("bytelevel-gpt2").path, as: "bad-eos")
        try folder.write("bad-eos/generation_config.json", #"{"eos_token_id": "<|endoftext|>"}"#)
        let result = try runLoraswitch(["tokenize", "--model", model, "--text", "hi"])
        #expect(result.exitedNormally && result.status == 1 && result.stdout.isEmpty, "\(result)")
        #expect(result.stderrLines.count == 1, "\(result)")
        #expect(result.stderr.contains(model + "/generation_config.json") && result.stderr.contains("'eos_token_id'"), "\(result)")
    }

    @Test func chatThroughAPipe() throws {
        let model = try chatModel(in: folder)
        let result = try runLoraswitch(["chat", "--model", model, "--temperature", "0", "--max-tokens", "8"],
                                       input: "Hello there\n/reset\nSecond question\n")
        #expect(result.exitedNormally && result.status == 0, "\(result)")
        // Two answers, one line each at least; no prompt marker when the input is not a terminal.
        #expect(!result.stdout.hasPrefix("> "))
        #expect(result.stdout.split(separator: "\n", omittingEmptySubsequences: false).count >= 2, "\(result)")
        let once = try runLoraswitch(["generate", "--model", model, "--chat", "--prompt", "Hello there", "--temperature", "0",
                                      "--max-tokens", "8"])
        #expect(once.status == 0, "\(once)")
        // The first chat answer is what generate --chat gives for the same message.
        #expect(result.stdout.hasPrefix(once.stdout.trimmingCharacters(in: .newlines)), "\(result)\n\(once)")
    }
}
