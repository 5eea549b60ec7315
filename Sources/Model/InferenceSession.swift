import Kernels

/// The forward pass over a shared `LanguageModel`, with every scratch buffer allocated up front — a pass allocates
/// nothing — and one sequence of its own (`sequence`) that `prefill`, `decode` and `logits` advance. A pass is a set
/// of rows, each a token of some sequence at that sequence's next position (`step` runs rows of several sequences,
/// each with its own adapters, at once).
///
/// Shape letters: T rows in the current pass, D hidden size, Q = heads·headDim, K = kvHeads·headDim,
/// F intermediate size, V vocabulary.
///
/// One forward pass serves prefill (T rows at once, sgemm) and decode (T = 1, matrix-vector kernels). Per layer
/// it opens five parallel regions — q/k/v, attention, o (+ residual), gate/up (+ SiLU), down (+ residual) — and
/// runs the small serial steps (RMSNorm, RoPE, cache writes, merging attention partials) between them on the
/// calling thread. The region bodies are closures made once, so a decoded token allocates nothing.
public final class InferenceSession {
    public let model: LanguageModel
    public let pool: ThreadPool
    /// How the projection regions split their rows between the pool's threads.
    public let partition: DecodingPartition
    /// The sequence `prefill`, `decode` and `logits` advance.
    public let sequence: SequenceState
    /// Positions a sequence of a pass may hold (the attention scratch is sized by it).
    public let capacity: Int
    /// Rows per pass: prompt tokens per prefill chunk, and the most rows `step` takes.
    public let chunkSize: Int
    /// Positions already in `sequence`'s cache.
    public var position: Int { sequence.position }
    /// Adapters applied to every projection (nil: the bare model), fused into the decoding regions or through the
    /// reference forward. Set between calls; the model stays untouched.
    public var adapters: SessionAdapters? {
        didSet {
            if case .fused(let fused) = adapters { fusedAdapters = fused } else { fusedAdapters = nil }
            adaptersChecked = fusedAdapters == nil
        }
    }
    /// Whether the fused adapters were checked to fit this session since they were attached.
    private var adaptersChecked = true
    /// The adapters the regions call.
    var fusedAdapters: ForwardAdapters?
    /// The forward of `.reference` adapters, made on first use.
    lazy var reference = ReferenceForward(model: model, pool: pool, capacity: chunkSize, context: capacity)

    let c: ModelConfiguration
    let x: FloatBuffer       // [T, D] residual stream
    let xn: FloatBuffer      // [T, D] normalized
    let q: FloatBuffer       // [T, Q]
    let k: FloatBuffer       // [T, K]
    let v: FloatBuffer       // [T, K]
    let attention: FloatBuffer // [T, Q]
    let gate: FloatBuffer    // [T, F]
    let up: FloatBuffer      // [T, F]
    let delta: FloatBuffer   // [T, D] a block's output before the residual add
    let cosines: FloatBuffer // [T, headDim/2]
    let sines: FloatBuffer   // [T, headDim/2]
    let logitsBuffer: FloatBuffer // [V]
    let scores: [FloatBuffer] // per thread [group · capacity]
    let partials: FloatBuffer // decode attention partials [kvHeads, segments, group · (headDim + 2)]
    /// Segments each KV head's positions are split into when decoding (one per thread keeps the threads even).
    let segments: Int
    let tiles: [FloatBuffer]  // per thread: matmul's scratch for the widest matrix
    /// The pass in flight, per row: its sequence's cache and its position; and the sequences, to advance after it.
    let rowCaches: UnsafeMutablePointer<KVCacheView>
    let rowPositions: UnsafeMutablePointer<Int>
    var rowSequences: [SequenceState?]
    /// The pass's runs of rows that share adapters (`pass.groupCount` of them, in row order).
    let groups: UnsafeMutablePointer<AdapterGroup>
    /// The rows whose logits the pass writes, in order (`pass.headRows` of them).
    let headRowIndices: UnsafeMutablePointer<Int>
    var pass = Pass()
    var regions: Regions!

    /// - Parameters:
    ///   - capacity: KV cache positions (default: the model's context, at most 4096).
    ///   - chunkSize: prompt tokens per prefill pass.
    public init(model: LanguageModel, pool: ThreadPool, capacity: Int? = nil, chunkSize: Int = 128) {
        self.model = model
        self.pool = pool
        partition = DecodingPartition(model.configuration, threads: pool.threadCount)
        c = model.configuration
        let positions = max(1, capacity ?? min(c.maxPositionEmbeddings, 4096))
        self.capacity = positions
        self.chunkSize = max(1, chunkSize)
        let t = self.chunkSize
        sequence = SequenceState(model: model, capacity: positions)
        x = FloatBuffer(count: t * c.hiddenSize)
        xn = FloatBuffer(count: t * c.hiddenSize)
        q = FloatBuffer(count: t * c.queryDimension)
        k = FloatBuffer(count: t * c.keyValueDimension)
        v = FloatBuffer(count: t * c.keyValueDimension)
        attention = FloatBuffer(count: t * c.queryDimension)
        gate = FloatBuffer(count: t * c.intermediateSize)
        up = FloatBuffer(count: t * c.intermediateSize)
        delta = FloatBuffer(count: t * c.hiddenSize)
        cosines = FloatBuffer(count: t * c.headDim / 2)
        sines = FloatBuffer(count: t * c.headDim / 2)
        logitsBuffer = FloatBuffer(count: c.vocabSize)
        let group = c.groupSize
        scores = (0..<pool.threadCount).map { _ in FloatBuffer(count: group * positions) }
        segments = pool.threadCount
        partials = FloatBuffer(count: c.numKeyValueHeads * pool.threadCount * c.groupSize * (c.headDim + 2))
        let widest = max(c.hiddenSize, c.intermediateSize, c.queryDimension)
        // matmul's scratch, or a pass of batched decoding rows' prepared activations for the model's weight types.
        let types = Set(model.weights.layers.flatMap { l in LayerTensor.projections.map { l.projection($0)!.weight.dtype } } + [model.weights.lmHead.dtype])
        let batched = types.map { batchedMatvecScratchCount(dtype: $0, cols: widest, tokens: t) }.max() ?? 0
        tiles = (0..<pool.threadCount).map { _ in FloatBuffer(count: max(matmulScratchCount(cols: widest), batched), zeroed: false) }
        rowCaches = .allocate(capacity: t)
        rowCaches.initialize(repeating: sequence.cache.view, count: t)
        rowPositions = .allocate(capacity: t)
        rowPositions.initialize(repeating: 0, count: t)
        rowSequences = [SequenceState?](repeating: nil, count: t)
        groups = .allocate(capacity: t)
        groups.initialize(repeating: AdapterGroup(adapters: nil, rows: 0..<0), count: t)
        headRowIndices = .allocate(capacity: t)
        headRowIndices.initialize(repeating: 0, count: t)
        regions = Self.makeRegions(self)
    }

    deinit {
        rowCaches.deallocate()
        rowPositions.deallocate()
        groups.deallocate()
        headRowIndices.deallocate()
    }

    /// Forgets the sequence: the next token goes to position 0.
    public func reset() { sequence.reset() }

    /// Drops cached positions from `newPosition` on (to rewind, e.g. to a shared prompt prefix).
    public func truncate(to newPosition: Int) { sequence.truncate(to: newPosition) }

    // MARK: - Public entry points

    /// Runs `tokens` through the model after the cached positions and writes the logits of every position into
    /// `out` [tokens.count, V].
    public func logits(for tokens: [Int], into out: UnsafeMutablePointer<Float>) throws {
        try validate(tokens)
        var start = 0
        while start < tokens.count {
            let n = min(chunkSize, tokens.count - start)
            try forwardChunk(tokens[start..<(start + n)], logits: out + start * c.vocabSize, allPositions: true)
            start += n
        }
    }

    /// Runs `tokens` through the model after the cached positions and returns the logits of the last one [V]
    /// (valid until the next call).
    @discardableResult
    public func prefill(_ tokens: [Int]) throws -> UnsafeBufferPointer<Float> {
        try validate(tokens)
        var start = 0
        while start < tokens.count {
            let n = min(chunkSize, tokens.count - start)
            try forwardChunk(tokens[start..<(start + n)], logits: logitsBuffer.pointer, allPositions: false)
            start += n
        }
        return UnsafeBufferPointer(logitsBuffer.buffer)
    }

    /// Runs one token and returns its logits [V] (valid until the next call).
    public func decode(_ token: Int) throws -> UnsafeBufferPointer<Float> {
        guard token >= 0, token < c.vocabSize else { throw ModelError.tokenOutOfRange(model: model.path, token: token, vocabularySize: c.vocabSize) }
        guard position < capacity else { throw ModelError.contextFull(needed: position + 1, capacity: capacity) }
        try forwardChunk(CollectionOfOne(token), logits: logitsBuffer.pointer, allPositions: false)
        return UnsafeBufferPointer(logitsBuffer.buffer)
    }

    private func validate(_ tokens: [Int]) throws {
        for token in tokens where token < 0 || token >= c.vocabSize {
            throw ModelError.tokenOutOfRange(model: model.path, token: token, vocabularySize: c.vocabSize)
        }
        guard position + tokens.count <= capacity else {
            throw ModelError.contextFull(needed: position + tokens.count, capacity: capacity)
        }
    }

    // MARK: - Several sequences at once

    /// A row of a batched pass: the next token of `sequence`, with `adapters` (nil: the bare model).
    public struct Row {
        public var sequence: SequenceState
        public var token: Int
        public var adapters: ForwardAdapters?
        /// Whether the pass writes the logits that follow this token.
        public var wantsLogits: Bool

        public init(sequence: SequenceState, token: Int, adapters: ForwardAdapters? = nil, wantsLogits: Bool = true) {
            self.sequence = sequence
            self.token = token
            self.adapters = adapters
            self.wantsLogits = wantsLogits
        }
    }

    /// One pass over `rows`: each sequence's rows are consecutive in `rows` and take its next positions in order
    /// (several rows of a sequence are a chunk of its prompt), and every sequence advances by its rows. Writes the
    /// logits of the rows that want them, in order, into `logits` [that count, V].
    ///
    /// Rows next to each other with the same adapters (the same object) run as one group: each weight is read once
    /// for all rows, and each group's adapters once for its rows, so order rows by adapters. Adapters that merge
    /// into weight copies (a merging strategy) run only when their group is the whole pass. Each sequence must have
    /// been made for this model with at most `capacity` positions.
    public func step(_ rows: [Row], logits: UnsafeMutablePointer<Float>) throws {
        let t = rows.count
        guard t > 0, t <= chunkSize else {
            throw ModelError.invalidRows("\(t) rows in a pass; this session takes 1 to \(chunkSize)")
        }
        var groupCount = 0, headRows = 0
        for (i, row) in rows.enumerated() {
            guard row.token >= 0, row.token < c.vocabSize else {
                throw ModelError.tokenOutOfRange(model: model.path, token: row.token, vocabularySize: c.vocabSize)
            }
            let s = row.sequence
            guard s.configuration == c, s.capacity <= capacity else {
                throw ModelError.invalidRows("row \(i): its sequence was made for another model, or holds more than this session's \(capacity) positions")
            }
            let continues = i > 0 && rows[i - 1].sequence === s
            if !continues, rows[..<i].contains(where: { $0.sequence === s }) {
                throw ModelError.invalidRows("row \(i): a sequence's rows must be consecutive")
            }
            let p = continues ? rowPositions[i - 1] + 1 : s.position
            guard p < s.capacity else { throw ModelError.contextFull(needed: p + 1, capacity: s.capacity) }
            rowPositions[i] = p
            if i == 0 || rows[i - 1].adapters !== row.adapters {
                groups[groupCount] = AdapterGroup(adapters: row.adapters, rows: i..<(i + 1))
                groupCount += 1
            } else {
                groups[groupCount - 1].rows = groups[groupCount - 1].rows.lowerBound..<(i + 1)
            }
            if row.wantsLogits {
                headRowIndices[headRows] = i
                headRows += 1
            }
        }
        for g in 0..<groupCount {
            guard let adapters = groups[g].adapters else { continue }
            for h in 0..<g where groups[h].adapters === adapters {
                throw ModelError.invalidRows("rows \(groups[h].rows) and \(groups[g].rows): the rows of one adapters object must be consecutive")
            }
            try adapters.check(fits: self)
            if groupCount > 1, adapters.weights(layer: 0, tokens: groups[g].rows.count) != nil {
                throw ModelError.invalidRows("rows \(groups[g].rows): adapters merged into weight copies run alone, not beside other rows")
            }
        }
        for (i, row) in rows.enumerated() {
            rowCaches[i] = row.sequence.cache.view
            rowSequences[i] = row.sequence
        }
        pass.groupCount = groupCount
        pass.headRows = headRows
        pass.decodingRows = t > 1 && (1..<t).allSatisfy { rows[$0].sequence !== rows[$0 - 1].sequence }
        run(rows.lazy.map(\.token), logits: logits)
    }

    // MARK: - The forward pass

    /// `tokens` of `sequence` at its next positions, with the session's adapters: all T rows' logits into `logits`
    /// [T, V], or only the last row's into `logits` [V].
    private func forwardChunk<C: Collection>(_ tokens: C, logits: UnsafeMutablePointer<Float>, allPositions: Bool) throws
    where C.Element == Int {
        if !adaptersChecked, let fusedAdapters {
            try fusedAdapters.check(fits: self)
            adaptersChecked = true
        }
        if case .reference(let plain) = adapters {
            try referenceChunk(Array(tokens), adapters: plain, logits: logits, allPositions: allPositions)
            return
        }
        let t = tokens.count, view = sequence.cache.view
        for i in 0..<t {
            rowCaches[i] = view
            rowPositions[i] = position + i
            rowSequences[i] = sequence
        }
        groups[0] = AdapterGroup(adapters: fusedAdapters, rows: 0..<t)
        pass.groupCount = 1
        pass.decodingRows = false
        let first = allPositions ? 0 : t - 1
        for i in first..<t { headRowIndices[i - first] = i }
        pass.headRows = t - first
        run(tokens, logits: logits)
    }

    /// Embeds the pass's rows (`rowPositions`, `rowCaches`, `groups` and `headRowIndices` set), runs every layer,
    /// appends to each row's KV cache, writes the logits of the head rows and advances the rows' sequences.
    private func run<C: Collection>(_ tokens: C, logits: UnsafeMutablePointer<Float>) where C.Element == Int {
        let weights = model.weights
        let t = tokens.count, d = c.hiddenSize, half = c.headDim / 2
        for (i, token) in tokens.enumerated() {
            weights.embedding.dequantizeRow(token, into: x.pointer + i * d)
            weights.rope.angles(position: rowPositions[i], cos: cosines.pointer + i * half, sin: sines.pointer + i * half)
        }
        pass.tokens = t
        for l in 0..<c.numHiddenLayers { layer(l) }
        for i in 0..<t { rowSequences[i]!.position = rowPositions[i] + 1 }

        // Final norm and head, for the rows that are asked for.
        for j in 0..<pass.headRows {
            rmsNorm(x.pointer + headRowIndices[j] * d, weight: weights.finalNorm.pointer, eps: c.rmsNormEps, count: d,
                    into: xn.pointer + j * d)
        }
        pass.logits = logits
        pool.run(regions.head)
    }

    /// `forwardChunk` through the reference forward, over the same KV cache.
    private func referenceChunk(_ tokens: [Int], adapters: ProjectionAdapters, logits: UnsafeMutablePointer<Float>,
                                allPositions: Bool) throws {
        let t = tokens.count
        try reference.forward(tokens, positions: Array(position..<(position + t)),
                              context: .cache(sequence.cache, position: position), adapters: adapters, tape: nil)
        sequence.position += t
        if allPositions {
            reference.head(rows: t, into: logits)
        } else {
            reference.head(first: t - 1, rows: 1, into: logits)
        }
    }
}
