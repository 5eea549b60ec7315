import Foundation
import Model
import Text

/// `loraswitch chat`: a conversation through the model's chat template. Each line on standard input is a user
/// turn; the answer streams back. Works from a terminal (with a `> ` prompt) and from a pipe. The KV cache keeps
/// the conversation, so each turn only runs its new tokens.
struct ChatCommand: Command {
    static let name = "chat"
    static let summary = "talk with a model through its chat template (terminal or pipe)"
    static let usage = "[--system TEXT] [options]\n  in the chat: /reset forgets the conversation, /exit (or end of input) quits\n" +
        GenerationArguments.usage

    let system: String?
    var generation: GenerationArguments

    init(_ arguments: inout Arguments) throws {
        system = try arguments.option("system")
        generation = try GenerationArguments(&arguments)
    }

    func run() throws {
        let generator = try generation.open()
        let formatter = try ChatFormatter(tokenizer: generator.tokenizer, modelPath: generation.modelPath)
        let interactive = isatty(STDIN_FILENO) != 0
        var messages: [ChatMessage] = system.map { [ChatMessage(role: "system", content: $0)] } ?? []
        while true {
            if interactive { StandardOutput.write("> ") }
            guard let line = readLine(strippingNewline: true) else { break }
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.isEmpty { continue }
            if text == "/exit" || text == "/quit" { break }
            if text == "/reset" {
                messages = system.map { [ChatMessage(role: "system", content: $0)] } ?? []
                generator.reset()
                continue
            }
            messages.append(ChatMessage(role: "user", content: line))
            let prompt = try formatter.tokens(for: messages)
            guard prompt.count < generator.session.capacity else {
                printError("loraswitch: the conversation no longer fits the context (\(generator.session.capacity) positions); /reset to start over, or use --context")
                messages.removeLast()
                continue
            }
            let result = try generator.generate(prompt: prompt, options: generation.options) { piece in
                StandardOutput.write(piece)
                return true
            }
            StandardOutput.write("\n")
            messages.append(ChatMessage(role: "assistant", content: result.text))
            if case .contextFull = result.stopReason {
                printError("loraswitch: the context is full (\(generator.session.capacity) positions); /reset to start over, or use --context")
            }
            if generation.stats { printError(statisticsLine(result)) }
        }
    }
}
