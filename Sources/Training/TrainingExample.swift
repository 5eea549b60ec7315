/// One training sequence in Hugging Face's causal-LM convention (what `LlamaForCausalLM(input_ids, labels=...)`
/// takes): `labels` has `tokens`' length, `ignoredLabel` (-100) masks a position, and the logits at position i are
/// scored against `labels[i + 1]` — the model shifts, so `labels[0]` is never used.
///
/// Examples read from text (`text`, `prompt`/`completion`, `messages`) have `labels[i] == tokens[i]` wherever
/// there is a loss and -100 elsewhere; pre-tokenized examples carry the labels they were given.
public struct TrainingExample: Sendable, Equatable {
    /// The label that scores nothing (PyTorch's `CrossEntropyLoss(ignore_index=-100)`).
    public static let ignoredLabel = -100

    public var tokens: [Int]
    public var labels: [Int]

    public init(tokens: [Int], labels: [Int]) {
        self.tokens = tokens
        self.labels = labels
    }

    /// The number of scored predictions: positions i ≥ 1 with a label (position 0 is never predicted).
    public var labelledCount: Int {
        var n = 0
        for i in labels.indices.dropFirst() where labels[i] >= 0 { n += 1 }
        return n
    }

    /// The next-token target of each position, as the forward pass consumes them: row i's logits are scored
    /// against `targets[i] = labels[i + 1]`, and the last row has none (-100). [T]
    public var targets: [Int] {
        guard !labels.isEmpty else { return [] }
        return Array(labels.dropFirst()) + [Self.ignoredLabel]
    }

    /// The first `length` positions (all of them when the example is no longer).
    func truncated(to length: Int) -> TrainingExample {
        guard tokens.count > length else { return self }
        return TrainingExample(tokens: Array(tokens.prefix(length)), labels: Array(labels.prefix(length)))
    }
}
