import Foundation
import Model
import Text

/// `loraswitch generate`: streams a continuation of a prompt, or an answer to it with `--chat`.
struct GenerateCommand: Command {
    static let name = "generate"
    static let summary = "stream text from a prompt (with --chat, through the model's chat template)"
    static let usage = """
    --prompt TEXT [--chat] [--system TEXT] [--show-special] [--show-tokens] [--n N] [options]
           loraswitch generate --batch FILE.jsonl [--parallel P] [--chat] [options]
      --n N                 N samples of the prompt generated together, sample i with seed + i (printed in order)
      --batch FILE          one request per line, {"prompt", "adapter"? (a path, relative to FILE's folder),
                            "scale"?, "max_tokens"?, "temperature"?, "seed"?} (unset fields take the options');
                            one JSONL line per request on standard output, in input order: index, line, text,
                            prompt_tokens, completion_tokens, finish_reason (stop|length|context_full)
      --parallel P          requests generated at once with --batch (default 8)
    Batched sequences run their adapters fused (--strategy auto or fused), each with its own, in the same passes.
    """ + "\n" + GenerationArguments.usage

    let prompt: String?
    let samples: Int?
    let batchFile: String?
    let parallel: Int
    let chat: Bool
    let system: String?
    let showSpecial: Bool
    let showTokens: Bool
    var generation: GenerationArguments

    init(_ arguments: inout Arguments) throws {
        batchFile = try arguments.option("batch")
        prompt = batchFile == nil ? try arguments.required("prompt") : try arguments.option("prompt")
        samples = try arguments.integer("n", in: 1...1024)
        let parallel = try arguments.integer("parallel", in: 1...256)
        self.parallel = parallel ?? 8
        chat = arguments.flag("chat")
        system = try arguments.option("system")
        showSpecial = arguments.flag("show-special")
        showTokens = arguments.flag("show-tokens")
        guard system == nil || chat else { throw UsageError("--system goes with --chat") }
        generation = try GenerationArguments(&arguments)
        generation.options.showSpecialTokens = showSpecial
        if batchFile != nil {
            if prompt != nil { throw UsageError("--prompt and --batch exclude each other (the file holds the prompts)") }
            if samples != nil { throw UsageError("--n and --batch exclude each other") }
        } else if parallel != nil {
            throw UsageError("--parallel goes with --batch")
        }
        if batchFile != nil || (samples ?? 1) > 1 {
            if showTokens { throw UsageError("--show-tokens goes with a single generation, not --n or --batch") }
            if generation.adapters.showRouting { throw UsageError("--show-routing goes with a single generation, not --n or --batch") }
            if ![.auto, .fused].contains(generation.adapters.strategy) {
                throw UsageError("--strategy \(generation.adapters.strategy.rawValue): batched sequences run their adapters fused")
            }
        }
    }

    /// The tokens of `text`: as it is, or as the user's turn of a chat (--chat, with --system).
    private func encode(_ text: String, _ tokenizer: Tokenizer) throws -> [Int] {
        guard chat else { return tokenizer.encode(text) }
        var messages: [ChatMessage] = []
        if let system { messages.append(ChatMessage(role: "system", content: system)) }
        messages.append(ChatMessage(role: "user", content: text))
        return try ChatFormatter(tokenizer: tokenizer, modelPath: generation.modelPath).tokens(for: messages)
    }

    func run() throws {
        let batched = BatchedGeneration(generation: generation, encode: encode)
        if let batchFile { return try batched.file(batchFile, parallel: parallel) }
        if let samples, samples > 1 { return try batched.samples(prompt!, count: samples) }
        let generator = try generation.open()
        let tokens = try encode(prompt!, generator.tokenizer)
        let result = try generator.generate(prompt: tokens, options: generation.options) { text in
            StandardOutput.write(text)
            return true
        }
        StandardOutput.write("\n")
        if case .contextFull = result.stopReason {
            printError("loraswitch: the context is full (\(generator.session.capacity) positions); use --context to allow more")
        }
        if showTokens {
            printError("prompt tokens: " + tokens.map(String.init).joined(separator: ","))
            printError("generated tokens: " + result.tokens.map(String.init).joined(separator: ","))
        }
        if generation.stats { printError(statisticsLine(result)) }
    }
}
