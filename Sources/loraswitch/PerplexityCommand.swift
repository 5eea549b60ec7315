import Evaluation
import Engine
import Formats
import Foundation
import Kernels
import Model

/// `loraswitch perplexity`: the perplexity and bits per byte of a text, with a sliding window.
struct PerplexityCommand: Command {
    static let name = "perplexity"
    static let summary = "perplexity and bits per byte of a text file (sliding window)"
    static let defaultContext = 512
    static let usage = """
    --text FILE [--model PATH] [--context N] [--stride S] [--json FILE] [--threads N] [adapter options]
      --model PATH          a Hugging Face folder or .gguf file (default: the default model)
      --text FILE           UTF-8 text, scored whole
      --context N           tokens per window (default \(defaultContext), at most the model's context)
      --stride S            tokens each window moves on, 1 ≤ S < N (default N/2)
      --json FILE           also write {"text", "model", "adapters", "strategy", "tokens", "scored_tokens", "bytes",
                            "windows", "context", "stride", "nll", "nll_sum", "perplexity", "bits_per_byte"}
      --threads N           threads (default: one per core)
    """ + "\n" + AdapterArguments.loadUsage + "\n" + """
    convention (the transformers perplexity guide's sliding window): the tokens are BOS? + tokens(text) (BOS as the
    tokenizer's configuration says, no EOS); window k runs tokens [k·S, k·S + N) as a fresh sequence and scores only
    the tokens the windows before it did not, so every token is scored once, with at least N − S tokens before it
    (all of them near the start); the first token is not scored (nothing predicts it). nll = Σ −log p / scored
    tokens (nats); perplexity = exp(nll); bits per byte = Σ −log p / ln 2 / the text's UTF-8 bytes.
    """

    let modelPath: String
    let textPath: String
    let context: Int?
    let stride: Int?
    let jsonPath: String?
    let threads: Int
    let adapters: AdapterArguments

    init(_ arguments: inout Arguments) throws {
        modelPath = try arguments.option("model") ?? DefaultModel.path()
        textPath = try arguments.required("text")
        context = try arguments.integer("context", in: 2...1_048_576)
        stride = try arguments.integer("stride", in: 1...1_048_576)
        if let context, let stride, stride >= context {
            throw UsageError("--stride \(stride) must be below --context \(context): a window's first scored token needs one before it")
        }
        jsonPath = try arguments.option("json")
        threads = try arguments.integer("threads", in: 1...256) ?? defaultThreadCount
        adapters = try AdapterArguments(&arguments, routing: false)
    }

    func run() throws {
        if let jsonPath { try OutputFolder.checkWritableFile(jsonPath, option: "--json") }
        let text = try PerplexityScorer.readText(path: textPath)
        let progress = Progress()
        progress.say("loading \(modelPath)")
        let engine = try Engine(modelPath: modelPath, threads: threads)
        let model = engine.model
        let modelContext = model.configuration.maxPositionEmbeddings
        if let context, context > modelContext {
            throw UsageError("--context \(context) exceeds the model's context of \(modelContext) positions")
        }
        let window = context ?? min(Self.defaultContext, modelContext)
        let step = stride ?? window / 2
        guard step < window else {
            throw UsageError("--stride \(step) must be below the context of \(window): a window's first scored token needs one before it")
        }
        let tokenizer = try engine.tokenizer()
        progress.say("tokenizing \(textPath)")
        let tokens = PerplexityScorer.tokens(of: text, tokenizer: tokenizer)
        guard tokens.count >= 2 else {
            throw EvaluationError.unusableText(file: textPath, problem: "\(tokens.count) token: nothing to predict (at least 2)")
        }
        let session = try adapters.session(on: engine, capacity: min(window, tokens.count))
        let started = now()
        let result = try PerplexityScorer(session: session).score(tokens: tokens, bytes: text.utf8.count, context: window,
                                                                  stride: step) { done, total in
            progress.update("windows", done: done, of: total)
        }
        let seconds = now() - started
        progress.finish()
        print("text          \(textPath): \(result.bytes) bytes, \(result.tokens) tokens" +
              (tokenizer.addBOS && tokenizer.bosToken != nil ? " (the BOS included)" : ""))
        print("windows       \(result.windows) of \(window) tokens, stride \(step); \(result.scoredTokens) tokens scored (all but the first)")
        print("nll           \(fmt(result.meanNegativeLogLikelihood, 4)) nats/token")
        print("perplexity    \(fmt(result.perplexity, 4))")
        print("bits/byte     \(fmt(result.bitsPerByte, 4))")
        print("time          \(fmt(seconds, 1)) s (\(fmt(Double(result.scoredTokens) / max(seconds, 1e-9), 1)) tokens/s)")
        if let jsonPath {
            let report = PerplexityReport(
                text: textPath, model: modelPath,
                adapters: adapters.specs.map { $0.weight == 1 ? $0.path : "\($0.path):\($0.weight)" },
                strategy: adapters.specs.isEmpty ? nil : adapters.strategy.rawValue,
                tokens: result.tokens, scoredTokens: result.scoredTokens, bytes: result.bytes, windows: result.windows,
                context: window, stride: step, nll: result.meanNegativeLogLikelihood, nllSum: result.negativeLogLikelihood,
                perplexity: result.perplexity, bitsPerByte: result.bitsPerByte)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            try encoder.encode(report).write(to: URL(fileURLWithPath: jsonPath), options: .atomic)
        }
    }
}

/// What `perplexity --json` writes.
private struct PerplexityReport: Encodable {
    let text: String
    let model: String
    let adapters: [String]
    @JSONNull var strategy: String?
    let tokens: Int
    let scoredTokens: Int
    let bytes: Int
    let windows: Int
    let context: Int
    let stride: Int
    let nll: Double
    let nllSum: Double
    let perplexity: Double
    let bitsPerByte: Double

    enum CodingKeys: String, CodingKey {
        case text, model, adapters, strategy, tokens, bytes, windows, context, stride, nll, perplexity
        case scoredTokens = "scored_tokens", nllSum = "nll_sum", bitsPerByte = "bits_per_byte"
    }
}
