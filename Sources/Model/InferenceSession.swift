import Kernels

/// The decoding state of one sequence over a shared `LanguageModel`: the KV cache, the position, and every scratch
/// buffer, all allocated up front — the forward pass allocates nothing.
///
/// Shape letters: T tokens in the current chunk, D hidden size, Q = heads·headDim, K = kvHeads·headDim,
/// F intermediate size, V vocabulary.
///
/// One forward pass serves prefill (T tokens at once, sgemm) and decode (T = 1, matrix-vector kernels). Per layer
/// it opens five parallel regions — q/k/v, attention, o (+ residual), gate/up (+ SiLU), down (+ residual) — and
/// runs the small serial steps (RMSNorm, RoPE, cache writes, merging attention partials) between them on the
/// calling thread. The region bodies are closures made once, so a decoded token allocates nothing.
public final class InferenceSession {
    public let model: LanguageModel
    public let pool: ThreadPool
    /// How the projection regions split their rows between the pool's threads.
    public let partition: DecodingPartition
    /// Positions the KV cache holds.
    public let capacity: Int
    /// Tokens processed per prefill chunk.
    public let chunkSize: Int
    /// Positions already in the cache.
    public private(set) var position = 0
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
    let cache: KVCache
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
    var step = Step()
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
        cache = KVCache(configuration: c, capacity: positions)
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
        tiles = (0..<pool.threadCount).map { _ in FloatBuffer(count: matmulScratchCount(cols: widest), zeroed: false) }
        regions = Self.makeRegions(self)
    }

    /// Forgets the sequence: the next token goes to position 0.
    public func reset() { position = 0 }

    /// Drops cached positions from `newPosition` on (to rewind, e.g. to a shared prompt prefix).
    public func truncate(to newPosition: Int) { position = min(position, max(0, newPosition)) }

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

    // MARK: - The forward pass

    /// Embeds `tokens` at positions `position...`, runs every layer, appends to the KV cache and writes logits:
    /// all T rows into `logits` [T, V], or only the last row into `logits` [V].
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
        let weights = model.weights
        let t = tokens.count, d = c.hiddenSize, half = c.headDim / 2
        for (i, token) in tokens.enumerated() {
            weights.embedding.dequantizeRow(token, into: x.pointer + i * d)
            weights.rope.angles(position: position + i, cos: cosines.pointer + i * half, sin: sines.pointer + i * half)
        }
        step.tokens = t
        for l in 0..<c.numHiddenLayers { layer(l) }
        position += t

        // Final norm and head, for the rows that are asked for.
        let first = allPositions ? 0 : t - 1
        for i in first..<t {
            rmsNorm(x.pointer + i * d, weight: weights.finalNorm.pointer, eps: c.rmsNormEps, count: d,
                    into: xn.pointer + (i - first) * d)
        }
        step.headRows = t - first
        step.logits = logits
        pool.run(regions.head)
    }

    /// `forwardChunk` through the reference forward, over the same KV cache.
    private func referenceChunk(_ tokens: [Int], adapters: ProjectionAdapters, logits: UnsafeMutablePointer<Float>,
                                allPositions: Bool) throws {
        let t = tokens.count
        try reference.forward(tokens, positions: Array(position..<(position + t)), context: .cache(cache, position: position),
                          adapters: adapters, tape: nil)
        position += t
        if allPositions {
            reference.head(rows: t, into: logits)
        } else {
            reference.head(first: t - 1, rows: 1, into: logits)
        }
    }

}
