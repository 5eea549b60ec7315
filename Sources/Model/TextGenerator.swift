import Foundation
import Text

/// What ends a generation.
public enum StopReason: Sendable, Equatable {
    /// The model produced an end-of-sequence token.
    case endOfSequence
    case maxTokens
    case stopString(String)
    /// The KV cache has no room for another token.
    case contextFull
    /// The caller's callback asked to stop.
    case cancelled
}

public struct GenerationOptions: Sendable {
    public var maxTokens = 256
    public var sampling = SamplingParameters()
    public var stopStrings: [String] = []
    /// Print special tokens' text (chat markers) instead of nothing.
    public var showSpecialTokens = false

    public init() {}
}

public struct GenerationResult: Sendable {
    public var tokens: [Int]
    public var text: String
    public var stopReason: StopReason
    /// Prompt tokens run through the model (those not already cached).
    public var promptTokensEvaluated: Int
    public var promptSeconds: Double
    public var decodeSeconds: Double

    public init(tokens: [Int], text: String, stopReason: StopReason, promptTokensEvaluated: Int, promptSeconds: Double,
                decodeSeconds: Double) {
        self.tokens = tokens
        self.text = text
        self.stopReason = stopReason
        self.promptTokensEvaluated = promptTokensEvaluated
        self.promptSeconds = promptSeconds
        self.decodeSeconds = decodeSeconds
    }

    public var prefillTokensPerSecond: Double { promptSeconds > 0 ? Double(promptTokensEvaluated) / promptSeconds : 0 }
    public var decodeMillisecondsPerToken: Double {
        tokens.count > 1 ? decodeSeconds * 1000 / Double(tokens.count - 1) : 0
    }
}

/// Text generation over one session: prefill the prompt (reusing the cached prefix of the previous turn), then
/// sample, decode and stream tokens until a stop condition.
public final class TextGenerator {
    public let session: InferenceSession
    public let tokenizer: Tokenizer
    /// The tokens whose keys and values the session's cache holds, in order.
    public private(set) var history: [Int] = []

    public init(session: InferenceSession, tokenizer: Tokenizer) {
        self.session = session
        self.tokenizer = tokenizer
    }

    /// Forgets the conversation.
    public func reset() {
        history.removeAll()
        session.reset()
    }

    /// Generates after `prompt`. `onText` receives text as it becomes final and returns false to stop.
    public func generate(prompt: [Int], options: GenerationOptions, onText: (String) -> Bool = { _ in true }) throws
        -> GenerationResult {
        try options.sampling.validate()
        guard !prompt.isEmpty else { throw GenerationError.emptyPrompt }
        guard prompt.count < session.capacity else {
            throw ModelError.contextFull(needed: prompt.count + 1, capacity: session.capacity)
        }

        // Reuse the longest cached prefix; at least the last prompt token is run again for its logits.
        var shared = 0
        while shared < min(history.count, prompt.count - 1), history[shared] == prompt[shared] { shared += 1 }
        session.truncate(to: shared)
        history.removeSubrange(shared...)
        let start = now()
        var logits = try session.prefill(Array(prompt[shared...]))
        history += prompt[shared...]
        let promptSeconds = now() - start

        var completion = Completion(options: options, tokenizer: tokenizer, vocabularySize: session.model.configuration.vocabSize)
        let decodeStart = now()
        while completion.stopReason == nil {
            let (token, piece) = completion.next(logits: logits, history: history[...], room: session.position < session.capacity)
            if !piece.isEmpty, !onText(piece) { completion.cancel() }
            guard let token, completion.stopReason == nil else { break }
            logits = try session.decode(token)
            history.append(token)
        }
        let rest = completion.finish()
        if !rest.isEmpty { _ = onText(rest) }
        return GenerationResult(tokens: completion.tokens, text: completion.text, stopReason: completion.stopReason!,
                                promptTokensEvaluated: prompt.count - shared, promptSeconds: promptSeconds,
                                decodeSeconds: now() - decodeStart)
    }
}

public enum GenerationError: Error, LocalizedError, Equatable {
    case emptyPrompt
    public var errorDescription: String? {
        switch self {
        case .emptyPrompt: return "the prompt is empty (no tokens to start from)"
        }
    }
}

private func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
