import Text

/// One choice as tokens: the whole sequence, context and continuation, and where the continuation starts.
public struct EncodedChoice: Sendable, Equatable {
    /// BOS? + tokens(context + continuation) [T].
    public let tokens: [Int]
    /// The continuation is `tokens[start...]`, each token scored after everything before it; 1 ≤ start < T.
    public let start: Int
    /// acc_norm's divisor: the choice's length in Unicode code points (Python's `len`), as the task gives it.
    public let characters: Int
}

/// One example as tokens: the context the scorer runs once, and every choice.
public struct EncodedExample: Sendable, Equatable {
    /// BOS? + tokens(context), never empty.
    public let context: [Int]
    public let choices: [EncodedChoice]

    /// The KV cache positions scoring needs: the context, and each choice but its last token (which predicts nothing).
    public var positions: Int { choices.reduce(context.count) { max($0, $1.tokens.count - 1) } }
}

/// Turns a context and its choices into tokens as lm-evaluation-harness's log-likelihood requests do:
///
/// - the context's trailing whitespace (Python's `str.rstrip()`) moves to the start of every continuation;
/// - the continuation's tokens are those of tokens(context + continuation) after their longest common prefix with
///   tokens(context) (the harness slices at the context's token count; the two agree unless a token spans the
///   boundary, where the common prefix scores that token rather than a wrong one);
/// - BOS as the tokenizer's configuration says (`Tokenizer.addBOS`, as `train` encodes its examples; the harness's
///   `hf` model adds none unless asked), never EOS;
/// - where nothing would precede the continuation's first token — an empty context without a BOS, or a choice
///   whose first token swallows the whole context — the sequence starts with the BOS token, or the EOS where the
///   tokenizer has no BOS, as the harness does for an empty context.
///
/// acc_norm divides by the length of the choice as the task gives it (the harness: `len(choice)` over
/// `doc_to_choice`), not counting the whitespace moved from the context.
public struct ContinuationEncoder {
    public let tokenizer: Tokenizer

    public init(tokenizer: Tokenizer) { self.tokenizer = tokenizer }

    private var bos: [Int] { tokenizer.addBOS ? tokenizer.bosToken.map { [$0] } ?? [] : [] }

    /// The token that stands before a continuation nothing else precedes.
    private func prefixToken(choice: Int) throws -> Int {
        guard let token = tokenizer.bosToken ?? tokenizer.eosToken else {
            throw LineProblem("nothing precedes the first token of choice \(choice + 1), and the tokenizer has neither a BOS nor an EOS token to put there")
        }
        return token
    }

    /// `context` and `choices` as tokens; a `LineProblem` when a choice cannot be scored.
    func encode(context: String, choices: [String]) throws -> EncodedExample {
        let (kept, moved) = movingTrailingWhitespace(context: context, continuation: "")
        var lead = bos
        var contextTokens = lead + tokenizer.encode(kept, addSpecialTokens: false)
        if contextTokens.isEmpty {
            lead = [try prefixToken(choice: 0)]
            contextTokens = lead
        }
        var encoded: [EncodedChoice] = []
        for (i, choice) in choices.enumerated() {
            var tokens = lead + tokenizer.encode(kept + moved + choice, addSpecialTokens: false)
            var start = commonPrefixLength(tokens, contextTokens)
            if start == 0 {
                tokens.insert(try prefixToken(choice: i), at: 0)
                start = 1
            }
            guard start < tokens.count else {
                throw LineProblem("choice \(i + 1) adds no token to the context's (its tokens are all the context's)")
            }
            encoded.append(EncodedChoice(tokens: tokens, start: start, characters: choice.unicodeScalars.count))
        }
        return EncodedExample(context: contextTokens, choices: encoded)
    }
}
