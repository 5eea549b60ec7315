import Foundation
import Model
import Text

/// What a sliding-window perplexity run measured.
public struct PerplexityResult: Sendable, Equatable {
    /// Tokens of the text (the BOS included, when the tokenizer adds one).
    public let tokens: Int
    /// Tokens scored: all but the first.
    public let scoredTokens: Int
    /// UTF-8 bytes of the text.
    public let bytes: Int
    public let windows: Int
    /// Σ −log p over the scored tokens (nats).
    public let negativeLogLikelihood: Double

    /// Nats per scored token.
    public var meanNegativeLogLikelihood: Double { negativeLogLikelihood / Double(scoredTokens) }
    /// exp(mean NLL).
    public var perplexity: Double { exp(meanNegativeLogLikelihood) }
    /// Σ NLL / ln 2 over the text's UTF-8 bytes.
    public var bitsPerByte: Double { negativeLogLikelihood / log(2) / Double(bytes) }
}

/// Perplexity of a text with a sliding window (`perplexityWindows`): each window starts a fresh sequence (positions
/// from 0) and scores its share of the tokens, the logits of each scored token's predecessor in Double
/// (`logProbability`). The text's tokens: BOS? + tokens(text) — BOS as the tokenizer's configuration says, never
/// EOS.
public final class PerplexityScorer {
    public let session: InferenceSession
    private let rows: NextTokenScores

    /// `rowsPerCall`: rows of logits computed per session call (the scratch is [rowsPerCall, V]).
    public init(session: InferenceSession, rowsPerCall: Int = 64) {
        self.session = session
        rows = NextTokenScores(vocabulary: session.model.configuration.vocabSize, rowsPerCall: rowsPerCall)
    }

    /// BOS? + tokens(text).
    public static func tokens(of text: String, tokenizer: Tokenizer) -> [Int] {
        let bos = tokenizer.addBOS ? tokenizer.bosToken.map { [$0] } ?? [] : []
        return bos + tokenizer.encode(text, addSpecialTokens: false)
    }

    /// Scores `tokens` (of a text of `bytes` UTF-8 bytes) window by window; `progress` gets the windows done and
    /// their number after each. The session must hold `context` positions (or all the tokens, when fewer).
    public func score(tokens: [Int], bytes: Int, context: Int, stride: Int,
                      progress: (Int, Int) -> Void = { _, _ in }) throws -> PerplexityResult {
        let windows = try perplexityWindows(tokenCount: tokens.count, context: context, stride: stride)
        let vocabulary = session.model.configuration.vocabSize
        if let outside = tokens.first(where: { $0 < 0 || $0 >= vocabulary }) {
            throw EvaluationError.invalidParameter(name: "tokens",
                                                   problem: "token \(outside) is outside the model's vocabulary of \(vocabulary)")
        }
        let needed = min(context, tokens.count)
        guard needed <= session.capacity else {
            throw EvaluationError.invalidParameter(name: "session capacity",
                                                   problem: "\(session.capacity) positions, and a window needs \(needed)")
        }
        var total = 0.0, scored = 0
        for (k, window) in windows.enumerated() {
            session.reset()
            // The window's tokens before the first prediction needed run without logits.
            let first = window.scored.lowerBound - 1
            if window.tokens.lowerBound < first {
                try session.prefill(Array(tokens[window.tokens.lowerBound..<first]))
            }
            // Window-relative positions: the session counts from the window's start.
            let local = Array(tokens[window.tokens])
            let offset = window.tokens.lowerBound
            total -= try rows.run(session, local, from: first - offset, to: window.scored.upperBound - 1 - offset)
            scored += window.scored.count
            progress(k + 1, windows.count)
        }
        return PerplexityResult(tokens: tokens.count, scoredTokens: scored, bytes: bytes, windows: windows.count,
                                negativeLogLikelihood: total)
    }

    /// The text of `path`: UTF-8, not empty.
    public static func readText(path: String) throws -> String {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            let reason = FileManager.default.fileExists(atPath: path) ? error.localizedDescription : "no such file"
            throw EvaluationError.unreadable(file: path, reason: reason)
        }
        guard let text = String(validating: data, as: UTF8.self) else {
            throw EvaluationError.unusableText(file: path, problem: "not valid UTF-8")
        }
        guard !text.isEmpty else { throw EvaluationError.unusableText(file: path, problem: "the file is empty") }
        return text
    }
}
