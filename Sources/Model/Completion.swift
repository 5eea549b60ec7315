import Text

/// One sequence's generation after its prompt: sampling from each step's logits, the stop conditions (end of
/// sequence, a stop string, the token budget, a full cache) and the text as it becomes final. A single session
/// (`TextGenerator`) and a batch of sequences run the same rules through it.
public struct Completion {
    public let options: GenerationOptions
    private let sampler: Sampler
    private var decoder: StreamingDecoder
    private let endTokens: Set<Int>
    /// The tokens sampled so far (an end-of-sequence token included).
    public private(set) var tokens: [Int] = []
    /// The text made final so far.
    public private(set) var text = ""
    /// Why the generation ended; nil while it goes on.
    public private(set) var stopReason: StopReason?

    /// `options` must be valid (`options.sampling.validate()`).
    public init(options: GenerationOptions, tokenizer: Tokenizer, vocabularySize: Int) {
        self.options = options
        sampler = Sampler(parameters: options.sampling, vocabularySize: vocabularySize)
        decoder = StreamingDecoder(tokenizer: tokenizer, stopStrings: options.stopStrings)
        decoder.showSpecialTokens = options.showSpecialTokens
        endTokens = tokenizer.eosTokens
        if options.maxTokens <= 0 { stopReason = .maxTokens }
    }

    /// Samples the next token from `logits` (the sequence's `history`, prompt included, for the repetition penalty)
    /// and returns it with the text it makes final; the token is nil when the generation ended with it (see
    /// `stopReason`), else it is the sequence's next input. `room`: whether the cache can take that input.
    public mutating func next(logits: UnsafeBufferPointer<Float>, history: ArraySlice<Int>, room: Bool) -> (token: Int?, piece: String) {
        precondition(stopReason == nil, "Completion.next after the generation ended")
        let token = sampler.sample(logits, history: history)
        tokens.append(token)
        if endTokens.contains(token) {
            stopReason = .endOfSequence
            return (nil, "")
        }
        let piece = decoder.append(token)
        text += piece
        if let stop = decoder.stoppedBy {
            stopReason = .stopString(stop)
        } else if tokens.count >= options.maxTokens {
            stopReason = .maxTokens
        } else if !room {
            stopReason = .contextFull
        }
        return (stopReason == nil ? token : nil, piece)
    }

    /// Ends the generation at the caller's request, unless a stop string already ended it.
    public mutating func cancel() {
        if case .stopString = stopReason { return }
        stopReason = .cancelled
    }

    /// The text held back (a possible stop string's start, an incomplete character) once the generation has ended.
    public mutating func finish() -> String {
        let rest = decoder.finish()
        text += rest
        return rest
    }
}
