import Text

/// Turns the text formats into labelled token sequences with a model's tokenizer (BOS/EOS as its configuration
/// says) and, for conversations, its chat template.
final class ExampleEncoder {
    let tokenizer: Tokenizer
    /// The chat formatter, made at the first conversation (nil until then; a failure is kept and thrown again).
    private var chat: Result<ChatFormatter, LineProblem>?

    init(tokenizer: Tokenizer) { self.tokenizer = tokenizer }

    /// The BOS that `encode(addSpecialTokens: true)` starts with, if any.
    private var bos: [Int] { tokenizer.addBOS ? tokenizer.bosToken.map { [$0] } ?? [] : [] }

    // MARK: - text

    /// BOS? + tokens(text) + EOS?, every position labelled.
    func text(_ text: String) -> TrainingExample {
        let tokens = tokenizer.encode(text, addSpecialTokens: true)
        return TrainingExample(tokens: tokens, labels: tokens)
    }

    // MARK: - prompt / completion

    /// BOS? + tokens(prompt + completion) + EOS?, labelled on the continuation and the EOS, split as
    /// lm-evaluation-harness's `_encode_pair` scores a continuation: the prompt's trailing whitespace (Python's
    /// `str.rstrip()`: every character `str.isspace` accepts) moves to the start of the completion; the whole is
    /// tokenized, and so is the prompt alone (with the BOS, without the EOS); the continuation is what follows their
    /// longest common prefix. The harness slices at the prompt's token count instead; the two agree whenever the
    /// prompt's tokens begin the whole's, and where a token spans the boundary the common prefix labels that token
    /// rather than a wrong one.
    func promptCompletion(prompt: String, completion: String) -> TrainingExample {
        let (context, continuation) = movingTrailingWhitespace(context: prompt, continuation: completion)
        let whole = tokenizer.encode(context + continuation, addSpecialTokens: true)
        let contextTokens = bos + tokenizer.encode(context, addSpecialTokens: false)
        let start = commonPrefixLength(whole, contextTokens)
        var labels = [Int](repeating: TrainingExample.ignoredLabel, count: whole.count)
        for i in start..<whole.count { labels[i] = whole[i] }
        return TrainingExample(tokens: whole, labels: labels)
    }

    // MARK: - messages

    /// The conversation as the model's chat template renders it (no generation prompt), tokenized with no BOS/EOS
    /// added — the template writes them — and labelled on the assistant turns only.
    ///
    /// Assistant message i's labelled tokens: render messages[0..<i] with the generation prompt (everything before
    /// the turn's content) and messages[0...i] without it (everything through the turn, its end-of-turn text
    /// included: ChatML's `<|im_end|>` and the newline after it, Llama 2's ` </s>`); the turn is the tokens of
    /// the second after their longest common prefix with the first's. Those tokens must begin the whole
    /// conversation's tokens, and both texts must be prefixes of what follows them; a template that renders a turn
    /// differently once later messages follow (one that drops earlier reasoning, say) is an error rather than a
    /// mislabelled example.
    func messages(_ messages: [TemplateValue]) throws -> TrainingExample {
        let formatter = try chatFormatter()
        func render(_ count: Int, generationPrompt: Bool) throws -> String {
            do {
                return try formatter.render(messages: Array(messages.prefix(count)), addGenerationPrompt: generationPrompt)
            } catch {
                throw LineProblem("the chat template fails on this conversation: \(error.localizedDescription)")
            }
        }
        let fullText = try render(messages.count, generationPrompt: false)
        let tokens = tokenizer.encode(fullText, addSpecialTokens: false)
        var labels = [Int](repeating: TrainingExample.ignoredLabel, count: tokens.count)
        for (i, message) in messages.enumerated() {
            guard case let .object(fields) = message, fields["role"] == .string("assistant") else { continue }
            let before = try render(i, generationPrompt: true)
            let through = try render(i + 1, generationPrompt: false)
            guard through.utf8.starts(with: before.utf8) else {
                throw LineProblem("the chat template writes the conversation before message \(i + 1) (assistant) " +
                                  "differently once that message follows, so its tokens cannot be told apart")
            }
            guard fullText.utf8.starts(with: through.utf8) else {
                throw LineProblem("the chat template renders message \(i + 1) (assistant) differently once later " +
                                  "messages follow (it may drop earlier turns' reasoning); end the conversation there")
            }
            let turn = tokenizer.encode(through, addSpecialTokens: false)
            guard tokens.starts(with: turn) else {
                throw LineProblem("the tokens of the conversation through message \(i + 1) (assistant) do not begin " +
                                  "the whole conversation's tokens")
            }
            let start = commonPrefixLength(turn, tokenizer.encode(before, addSpecialTokens: false))
            for j in start..<turn.count { labels[j] = tokens[j] }
        }
        return TrainingExample(tokens: tokens, labels: labels)
    }

    private func chatFormatter() throws -> ChatFormatter {
        if let chat { return try chat.get() }
        let made: Result<ChatFormatter, LineProblem>
        if tokenizer.chatTemplate == nil {
            made = .failure(LineProblem("a messages example needs the model's chat template, and its tokenizer has none"))
        } else {
            do {
                made = .success(try ChatFormatter(tokenizer: tokenizer, modelPath: ""))
            } catch {
                made = .failure(LineProblem("the model's chat template does not parse: \(error.localizedDescription)"))
            }
        }
        chat = made
        return try made.get()
    }
}
