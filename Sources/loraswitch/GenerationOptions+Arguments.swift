import Engine
import Foundation
import Kernels
import Model
import Text

/// The options `generate` and `chat` share: the model, threads, context, and how tokens are chosen.
struct GenerationArguments {
    static let usage = """
      --model PATH          a Hugging Face folder or .gguf file (default: the default model)
      --max-tokens N        tokens to generate at most (default 256)
      --temperature T       0 for greedy (default 0.8)
      --top-k K             0 for all (default 40)
      --top-p P             (default 0.95)
      --min-p P             (default 0.05)
      --repeat-penalty R    1 for none (default 1.0)
      --repeat-last-n N     tokens the penalty looks back at (default 64)
      --seed S              same seed, same text
      --stop TEXT           stop when the text appears (repeatable)
      --context N           KV cache positions (default: the model's context, at most 4096)
      --threads N           threads (default: one per core)
      --stats               print prompt tokens, prefill tokens/s and decode ms/token (and, under --strategy
                            auto, what auto chose and the machine figures it used)
    """ + "\n" + AdapterArguments.usage

    var modelPath: String
    var options = GenerationOptions()
    var context: Int?
    var threads: Int
    var stats: Bool
    var adapters: AdapterArguments

    init(_ arguments: inout Arguments) throws {
        modelPath = try arguments.option("model") ?? DefaultModel.path()
        if let n = try arguments.integer("max-tokens", in: 0...1_000_000) { options.maxTokens = n }
        if let t = try arguments.real("temperature") { options.sampling.temperature = t }
        if let k = try arguments.integer("top-k", in: 0...10_000_000) { options.sampling.topK = k }
        if let p = try arguments.real("top-p") { options.sampling.topP = p }
        if let p = try arguments.real("min-p") { options.sampling.minP = p }
        if let r = try arguments.real("repeat-penalty") { options.sampling.repetitionPenalty = r }
        if let n = try arguments.integer("repeat-last-n", in: 0...1_000_000) { options.sampling.repetitionWindow = n }
        if let s = try arguments.option("seed") {
            guard let seed = UInt64(s) else { throw UsageError("--seed must be a non-negative integer, not '\(s)'") }
            options.sampling.seed = seed
        }
        while let stop = try arguments.option("stop") { options.stopStrings.append(stop) }
        context = try arguments.integer("context", in: 1...1_048_576)
        threads = try arguments.integer("threads", in: 1...256) ?? defaultThreadCount
        stats = arguments.flag("stats")
        adapters = try AdapterArguments(&arguments)
        do {
            try options.sampling.validate()
        } catch {
            throw UsageError(error.localizedDescription)
        }
    }

    /// The engine over the model (with --stats, its set-up choices on standard error).
    func engine() throws -> Engine {
        try Engine(modelPath: modelPath, threads: threads, report: stats ? { printError($0) } : nil)
    }

    /// Loads the model and its tokenizer and opens a session with the adapters.
    func open() throws -> TextGenerator {
        let engine = try engine()
        let session = try adapters.session(on: engine, capacity: context) { position, experts, gates in
            let gateText = gates.map { fmt(Double($0), 2) }.joined(separator: ",")
            printError("[routing] position \(position): experts \(experts.map(String.init).joined(separator: ",")) gates \(gateText)")
        }
        return TextGenerator(session: session, tokenizer: try engine.tokenizer())
    }
}

extension Arguments {
    /// A finite floating-point option.
    mutating func real(_ name: String) throws -> Float? {
        guard let text = try option(name) else { return nil }
        guard let value = Float(text), value.isFinite else { throw UsageError("--\(name) must be a number, not '\(text)'") }
        return value
    }
}

/// Standard output, written and flushed as text arrives (streaming).
enum StandardOutput {
    static func write(_ text: String) {
        FileHandle.standardOutput.write(Data(text.utf8))
    }
}

/// One line on standard error for `--stats`.
func statisticsLine(_ result: GenerationResult) -> String {
    "prompt: \(result.promptTokensEvaluated) tokens at \(fmt(result.prefillTokensPerSecond, 1)) tokens/s; " +
        "generated: \(result.tokens.count) tokens at \(fmt(result.decodeMillisecondsPerToken, 2)) ms/token; " +
        "stop: \(describe(result.stopReason))"
}

func describe(_ reason: StopReason) -> String {
    switch reason {
    case .endOfSequence: return "end of sequence"
    case .maxTokens: return "--max-tokens reached"
    case .stopString(let s): return "stop string \(s.debugDescription)"
    case .contextFull: return "the context is full"
    case .cancelled: return "cancelled"
    }
}
