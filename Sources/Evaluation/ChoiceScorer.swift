import Kernels
import Model
import Text

/// Scores the choices of examples, several examples at a time: a wave of up to `width` examples runs its contexts
/// in shared passes (the rows of all of them in one `InferenceSession.step`), then each round of choices likewise.
/// Every example has a slot — a sequence whose KV cache serves every choice of its example, cut back to what a
/// choice shares with the cached tokens so that only the rest runs — and keeps what it shares with the example the
/// slot held before (a task's common template runs once per slot, not once per example).
///
/// A choice's log-likelihood is Σ log softmax(logits at position p − 1)[token p] over its continuation's positions p
/// (`logProbability`: Double sums). The row that predicts the continuation's first token when it starts right after
/// the context is the context's last row; a continuation whose first token spans the boundary (it starts inside the
/// context's tokens) reruns from the position before it. The last token of a choice is never run: it only needs
/// predicting.
///
/// Many short rows per pass are what make this faster than one example at a time: a pass's products then run at
/// the matrix rate, not the rate of a few rows (`loraswitch bench --prompt` shows how prefill speed grows with rows).
/// Adapters through the reference forward (`--strategy reference`) run one example at a time on the session's own
/// sequence, which is the only one that forward takes.
public final class ChoiceScorer {
    public let session: InferenceSession
    /// Examples scored together.
    public let width: Int
    private let vocabulary: Int
    /// Rows per pass: the session's chunk size, or fewer when asked.
    private let rowsPerPass: Int
    /// The slots' sequences; slot 0 is the session's own.
    private let slots: [SequenceState]
    /// The tokens whose keys and values each slot holds (its position is their count).
    private var cached: [[Int]]
    private let rows: FloatBuffer       // [rowsPerPass, V] the logits of a pass
    private let contextRows: FloatBuffer // [width, V] the logits after each context of a wave
    private var pending: [InferenceSession.Row] = []

    /// `width`: examples per wave (fewer where their KV caches would pass `memoryBudget` bytes, and 1 for reference
    /// adapters); `rowsPerCall`: the most rows of a pass (default and at most the session's chunk size).
    public init(session: InferenceSession, width: Int = 8, rowsPerCall: Int? = nil, memoryBudget: Int = 1 << 30) {
        self.session = session
        let c = session.model.configuration
        vocabulary = c.vocabSize
        let perSequence = max(1, session.capacity * c.numHiddenLayers * 2 * c.keyValueDimension * MemoryLayout<Float>.size)
        var w = max(1, min(width, memoryBudget / perSequence))
        if case .reference = session.adapters { w = 1 }
        self.width = w
        rowsPerPass = max(1, min(rowsPerCall ?? session.chunkSize, session.chunkSize))
        slots = [session.sequence] + (1..<w).map { _ in SequenceState(model: session.model, capacity: session.capacity) }
        cached = Array(repeating: [], count: w)
        rows = FloatBuffer(count: rowsPerPass * vocabulary, zeroed: false)
        contextRows = FloatBuffer(count: w * vocabulary, zeroed: false)
        pending.reserveCapacity(rowsPerPass)
    }

    /// Forgets what the slots hold: what follows is scored as in a new scorer, bit for bit (which rows share a pass
    /// decides which product kernel runs them, and kernels round differently in the last bits).
    public func forget() {
        for (s, slot) in slots.enumerated() {
            slot.reset()
            cached[s] = []
        }
    }

    /// The log-likelihood (nats) of each choice of one example, in choice order.
    public func score(_ example: EncodedExample) throws -> [Double] { try score([example])[0] }

    /// The log-likelihoods of every choice of every example, in the order given, scored `width` at a time; `progress`
    /// gets the number done after each wave. Neighbours that share a prefix (a sorted order) share the most work.
    public func score(_ examples: [EncodedExample], progress: (Int) -> Void = { _ in }) throws -> [[Double]] {
        var scores: [[Double]] = []
        scores.reserveCapacity(examples.count)
        var start = 0
        while start < examples.count {
            let wave = examples[start..<min(examples.count, start + width)]
            scores += try score(wave: Array(wave))
            start += wave.count
            progress(start)
        }
        return scores
    }

    // MARK: - A wave

    private func score(wave: [EncodedExample]) throws -> [[Double]] {
        for (s, slot) in slots.enumerated() where slot.position != cached[s].count { cached[s] = [] } // used elsewhere
        // The contexts: each slot keeps what it shares with its context, all but the last token (which runs for its
        // logits), and runs the rest.
        var runs: [Run] = []
        for (e, example) in wave.enumerated() {
            let context = example.context
            let keep = max(0, min(commonPrefixLength(cached[e], context), context.count - 1))
            runs.append(Run(slot: e, tokens: context[keep...], scoredFrom: context.count - 1))
        }
        try execute(runs) { run, position, logits in
            (contextRows.pointer + run.slot * vocabulary).update(from: logits, count: vocabulary)
        }
        var normalizers: [Double] = []
        var scores: [[Double]] = []
        for (e, example) in wave.enumerated() {
            cached[e] = example.context
            normalizers.append(logSumExp(contextRows.pointer + e * vocabulary, count: vocabulary))
            scores.append(Array(repeating: 0, count: example.choices.count))
        }

        // The choices, a round at a time: choice i of every example of the wave in the same passes.
        let rounds = wave.map(\.choices.count).max() ?? 0
        for i in 0..<rounds {
            runs.removeAll(keepingCapacity: true)
            for (e, example) in wave.enumerated() where i < example.choices.count {
                let choice = example.choices[i], tokens = choice.tokens, start = choice.start
                // Positions first..<end need their logits: each predicts the token after it.
                var first = start - 1
                let end = tokens.count - 1
                if start == example.context.count, tokens.starts(with: example.context) {
                    scores[e][i] += Double(contextRows[e * vocabulary + tokens[start]]) - normalizers[e]
                    first = start
                }
                guard first < end else { continue }
                let keep = min(commonPrefixLength(cached[e], tokens[..<first]), first)
                runs.append(Run(slot: e, tokens: tokens[keep..<end], scoredFrom: first))
                cached[e] = Array(tokens[..<end])
            }
            try execute(runs) { run, position, logits in
                let tokens = wave[run.slot].choices[i].tokens
                scores[run.slot][i] += logProbability(of: tokens[position + 1], in: logits, count: vocabulary)
            }
        }
        return scores
    }

    // MARK: - Passes

    /// Tokens of a slot's sequence at positions `tokens.indices` (its next ones); the rows at positions from
    /// `scoredFrom` on want their logits.
    private struct Run {
        let slot: Int
        let tokens: ArraySlice<Int>
        let scoredFrom: Int
    }

    /// Runs every run's tokens, as few passes as `rowsPerPass` allows, and hands each wanted row's logits to
    /// `consume(run, position, logits)` in order.
    private func execute(_ runs: [Run], consume: (Run, Int, UnsafePointer<Float>) -> Void) throws {
        if case .reference = session.adapters {
            // One sequence, the session's own (width 1): its prefill and logits calls.
            for run in runs {
                session.truncate(to: run.tokens.startIndex)
                if run.scoredFrom > run.tokens.startIndex { try session.prefill(Array(run.tokens[..<run.scoredFrom])) }
                var p = run.scoredFrom
                while p < run.tokens.endIndex {
                    let n = min(rowsPerPass, run.tokens.endIndex - p)
                    try session.logits(for: Array(run.tokens[p..<(p + n)]), into: rows.pointer)
                    for r in 0..<n { consume(run, p + r, rows.pointer + r * vocabulary) }
                    p += n
                }
            }
            return
        }
        let adapters: ForwardAdapters? = if case .fused(let fused) = session.adapters { fused } else { nil }
        // The rows of the pass being filled: (run, position) of each that wants its logits.
        var wanted: [(run: Int, position: Int)] = []
        wanted.reserveCapacity(rowsPerPass)
        func flush() throws {
            guard !pending.isEmpty else { return }
            try session.step(pending, logits: rows.pointer)
            for (j, row) in wanted.enumerated() { consume(runs[row.run], row.position, rows.pointer + j * vocabulary) }
            pending.removeAll(keepingCapacity: true)
            wanted.removeAll(keepingCapacity: true)
        }
        for (index, run) in runs.enumerated() {
            let sequence = slots[run.slot]
            sequence.truncate(to: run.tokens.startIndex)
            for p in run.tokens.indices {
                let wants = p >= run.scoredFrom
                pending.append(InferenceSession.Row(sequence: sequence, token: run.tokens[p], adapters: adapters,
                                                    wantsLogits: wants))
                if wants { wanted.append((index, p)) }
                if pending.count == rowsPerPass { try flush() }
            }
        }
        try flush()
    }
}
