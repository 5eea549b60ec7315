import Kernels
import Model
import Text

/// Scores the choices of an example in one `InferenceSession`: the context runs once, and its KV cache serves every
/// choice — the session is cut back to what a choice shares with the cached tokens and runs only the rest.
///
/// A choice's log-likelihood is Σ log softmax(logits at position p − 1)[token p] over its continuation's positions p
/// (`logProbability`: Double sums). The row that predicts the continuation's first token when it starts right after
/// the context is the context's last row, kept from its prefill; a continuation whose first token spans the
/// boundary (it starts inside the context's tokens) reruns from the position before it. The last token of a choice
/// is never run: it only needs predicting.
public final class ChoiceScorer {
    public let session: InferenceSession
    private let vocabulary: Int
    private let continuation: NextTokenScores
    private let contextRow: FloatBuffer // [V] the logits after the context
    /// The tokens whose keys and values the session holds (its position is their count).
    private var cached: [Int] = []

    /// `rowsPerCall`: rows of logits computed per session call (the scratch is [rowsPerCall, V]).
    public init(session: InferenceSession, rowsPerCall: Int = 32) {
        self.session = session
        vocabulary = session.model.configuration.vocabSize
        continuation = NextTokenScores(vocabulary: vocabulary, rowsPerCall: rowsPerCall)
        contextRow = FloatBuffer(count: vocabulary, zeroed: false)
    }

    /// The log-likelihood (nats) of each choice's continuation given the context, in choice order. What the session
    /// holds of the previous example's context is kept as far as this context shares it (all but its last token,
    /// which runs for its logits: tasks whose contexts share a template prefix skip it); anything else is dropped.
    public func score(_ example: EncodedExample) throws -> [Double] {
        let context = example.context
        if session.position != cached.count { cached = [] } // the session was used elsewhere since
        let keep = min(commonPrefixLength(cached, context[...]), context.count - 1)
        session.truncate(to: max(0, keep))
        let last = try session.prefill(Array(context[max(0, keep)...]))
        _ = contextRow.buffer.update(fromContentsOf: last)
        let contextNormalizer = logSumExp(contextRow.pointer, count: vocabulary)
        cached = context

        var scores: [Double] = []
        scores.reserveCapacity(example.choices.count)
        for choice in example.choices {
            let tokens = choice.tokens, start = choice.start
            var total = 0.0
            // Positions first..<end need their logits: each predicts the token after it.
            var first = start - 1
            let end = tokens.count - 1
            if start == context.count, tokens.starts(with: context) {
                total += Double(contextRow[tokens[start]]) - contextNormalizer
                first = start
            }
            if first < end {
                let keep = min(commonPrefixLength(cached, tokens[..<first]), first)
                session.truncate(to: keep)
                if keep < first { try session.prefill(Array(tokens[keep..<first])) }
                total += try continuation.run(session, tokens, from: first, to: end)
                cached = Array(tokens[..<end])
            }
            scores.append(total)
        }
        return scores
    }
}
