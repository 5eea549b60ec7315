import Foundation
import Model
import Text

/// `loraswitch generate`: streams a continuation of a prompt, or an answer to it with `--chat`.
struct GenerateCommand: Command {
    static let name = "generate"
    static let summary = "stream text from a prompt (with --chat, through the model's chat template)"
    static let usage = "--prompt TEXT [--chat] [--system TEXT] [--show-special] [--show-tokens] [options]\n" +
        GenerationArguments.usage

    let prompt: String
    let chat: Bool
    let system: String?
    let showSpecial: Bool
    let showTokens: Bool
    var generation: GenerationArguments

    init(_ arguments: inout Arguments) throws {
        prompt = try arguments.required("prompt")
        chat = arguments.flag("chat")
        system = try arguments.option("system")
        showSpecial = arguments.flag("show-special")
        showTokens = arguments.flag("show-tokens")
        guard system == nil || chat else { throw UsageError("--system goes with --chat") }
        generation = try GenerationArguments(&arguments)
        generation.options.showSpecialTokens = showSpecial
    }

    func run() throws {
        let generator = try generation.open()
        let tokenizer = generator.tokenizer
        let tokens: [Int]
        if chat {
            var messages: [ChatMessage] = []
            if let system { messages.append(ChatMessage(role: "system", content: system)) }
            messages.append(ChatMessage(role: "user", content: prompt))
            tokens = try ChatFormatter(tokenizer: tokenizer, modelPath: generation.modelPath).tokens(for: messages)
        } else {
            tokens = tokenizer.encode(prompt)
        }
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
