/// A conversation as the model expects it: rendered by the model's own chat template and tokenized as
/// transformers' `apply_chat_template(..., tokenize=True)` does (the template writes any BOS itself, so no special
/// tokens are added around it).
public struct ChatFormatter: Sendable {
    public let tokenizer: Tokenizer
    public let template: ChatTemplate

    /// `modelPath` names the model in the error when it has no chat template.
    public init(tokenizer: Tokenizer, modelPath: String) throws {
        guard let source = tokenizer.chatTemplate else {
            throw TokenizerError.invalid(file: modelPath, key: "chat_template",
                                         detail: "the model has no chat template; generate without --chat")
        }
        self.tokenizer = tokenizer
        template = try ChatTemplate(source: source)
    }

    /// The template's text for `messages`, ending with the assistant's turn opened when `addGenerationPrompt`.
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool = true) throws -> String {
        try template.render(messages: messages, addGenerationPrompt: addGenerationPrompt, variables: specialTokens)
    }

    /// The same for messages given as values (keys beyond role and content, such as `tool_calls`, reach the
    /// template).
    public func render(messages: [TemplateValue], addGenerationPrompt: Bool) throws -> String {
        try template.render(messages: .array(messages), addGenerationPrompt: addGenerationPrompt, variables: specialTokens)
    }

    /// `bos_token` and `eos_token` as the template sees them: the tokenizer's own.
    private var specialTokens: [String: TemplateValue] {
        var variables: [String: TemplateValue] = [:]
        if let bos = tokenizer.bosToken.flatMap(tokenizer.piece) { variables["bos_token"] = .string(bos) }
        if let eos = tokenizer.eosToken.flatMap(tokenizer.piece) { variables["eos_token"] = .string(eos) }
        return variables
    }

    public func tokens(for messages: [ChatMessage], addGenerationPrompt: Bool = true) throws -> [Int] {
        tokenizer.encode(try render(messages, addGenerationPrompt: addGenerationPrompt), addSpecialTokens: false)
    }
}
