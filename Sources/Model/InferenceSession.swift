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
    /// Positions the KV cache holds.
    public let capacity: Int
    /// Tokens processed per prefill chunk.
    public let chunkSize: Int
    /// Positions already in the cache.
    public private(set) var position = 0

    private let c: ModelConfiguration
    private let cache: KVCache
    private let x: FloatBuffer       // [T, D] residual stream
    private let xn: FloatBuffer      // [T, D] normalized
    private let q: FloatBuffer       // [T, Q]
    private let k: FloatBuffer       // [T, K]
    private let v: FloatBuffer       // [T, K]
    private let attention: FloatBuffer // [T, Q]
    private let gate: FloatBuffer    // [T, F]
    private let up: FloatBuffer      // [T, F]
    private let delta: FloatBuffer   // [T, D] a block's output before the residual add
    private let cosines: FloatBuffer // [T, headDim/2]
    private let sines: FloatBuffer   // [T, headDim/2]
    private let logitsBuffer: FloatBuffer // [V]
    private let scores: [FloatBuffer] // per thread [group · capacity]
    private let partials: FloatBuffer // decode attention partials [kvHeads, segments, group · (headDim + 2)]
    /// Segments each KV head's positions are split into when decoding (one per thread keeps the threads even).
    private let segments: Int
    private let tiles: [FloatBuffer]  // per thread: matmul's scratch for the widest matrix
    private var step = Step()
    private var regions: Regions!

    /// - Parameters:
    ///   - capacity: KV cache positions (default: the model's context, at most 4096).
    ///   - chunkSize: prompt tokens per prefill pass.
    public init(model: LanguageModel, pool: ThreadPool, capacity: Int? = nil, chunkSize: Int = 128) {
        self.model = model
        self.pool = pool
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
            forwardChunk(tokens[start..<(start + n)], logits: out + start * c.vocabSize, allPositions: true)
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
            forwardChunk(tokens[start..<(start + n)], logits: logitsBuffer.pointer, allPositions: false)
            start += n
        }
        return UnsafeBufferPointer(logitsBuffer.buffer)
    }

    /// Runs one token and returns its logits [V] (valid until the next call).
    public func decode(_ token: Int) throws -> UnsafeBufferPointer<Float> {
        guard token >= 0, token < c.vocabSize else { throw ModelError.tokenOutOfRange(model: model.path, token: token, vocabularySize: c.vocabSize) }
        guard position < capacity else { throw ModelError.contextFull(needed: position + 1, capacity: capacity) }
        forwardChunk(CollectionOfOne(token), logits: logitsBuffer.pointer, allPositions: false)
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
    private func forwardChunk<C: Collection>(_ tokens: C, logits: UnsafeMutablePointer<Float>, allPositions: Bool)
    where C.Element == Int {
        let weights = model.weights
        let t = tokens.count, d = c.hiddenSize, half = c.headDim / 2
        for (i, token) in tokens.enumerated() {
            weights.embedding.dequantizeRow(token, into: x.pointer + i * d)
            weights.rope.angles(position: position + i, cos: cosines.pointer + i * half, sin: sines.pointer + i * half)
        }
        step.tokens = t
        for l in 0..<c.numHiddenLayers {
            step.layer = l
            layer(weights.layers[l])
        }
        position += t

        // Final norm and head, for the rows that are asked for.
        let first = allPositions ? 0 : t - 1
        for i in first..<t {
            rmsNorm(x.pointer + i * d, weight: weights.finalNorm.pointer, eps: c.rmsNormEps, count: d,
                    into: xn.pointer + (i - first) * d)
        }
        step.headRows = t - first
        step.logits = logits
        pool.runJob(regions.head)
    }

    /// One transformer block: the serial steps here, the parallel regions as `regions`.
    private func layer(_ w: LayerWeights) {
        let d = c.hiddenSize, qd = c.queryDimension, kd = c.keyValueDimension, half = c.headDim / 2
        let t = step.tokens, xp = x.pointer, xnp = xn.pointer, qp = q.pointer, kp = k.pointer
        // Attention block: x += o(attention(rope(q(n(x))), rope(k(n(x))), v(n(x)))).
        for i in 0..<t { rmsNorm(xp + i * d, weight: w.attentionNorm.pointer, eps: c.rmsNormEps, count: d, into: xnp + i * d) }
        pool.runJob(regions.qkv)
        for i in 0..<t {
            model.weights.rope.rotate(qp + i * qd, heads: c.numAttentionHeads, cos: cosines.pointer + i * half, sin: sines.pointer + i * half)
            model.weights.rope.rotate(kp + i * kd, heads: c.numKeyValueHeads, cos: cosines.pointer + i * half, sin: sines.pointer + i * half)
            cache.store(layer: step.layer, position: position + i, keys: kp + i * kd, values: v.pointer + i * kd)
        }
        if t == 1 {
            pool.runJob(regions.attendDecoding)
            mergeDecodingAttention()
        } else {
            pool.runJob(regions.attendPrefill)
        }
        pool.runJob(regions.output)
        // MLP block: x += down(silu(gate(n(x))) · up(n(x))).
        for i in 0..<t { rmsNorm(xp + i * d, weight: w.mlpNorm.pointer, eps: c.rmsNormEps, count: d, into: xnp + i * d) }
        pool.runJob(regions.gateUp)
        pool.runJob(regions.down)
    }

    // MARK: - Parallel regions

    /// What the parallel regions work on, set on the calling thread before each region runs.
    private struct Step {
        var layer = 0
        var tokens = 0
        var headRows = 0
        var logits: UnsafeMutablePointer<Float>?
    }

    /// The bodies of the parallel regions, made once so that running one allocates nothing.
    private struct Regions {
        var qkv, attendDecoding, attendPrefill, output, gateUp, down, head: (Int) -> Void
    }

    private static func makeRegions(_ session: InferenceSession) -> Regions {
        unowned(unsafe) let s = session
        return Regions(qkv: { s.qkv(thread: $0) }, attendDecoding: { s.attendDecoding(thread: $0) },
                       attendPrefill: { s.attendPrefill(thread: $0) }, output: { s.output(thread: $0) },
                       gateUp: { s.gateUp(thread: $0) }, down: { s.down(thread: $0) }, head: { s.head(thread: $0) })
    }

    @inline(__always) private func rows(_ count: Int, _ thread: Int) -> Range<Int> {
        ThreadPool.chunk(count, part: thread, of: pool.threadCount, granularity: 16)
    }

    /// q, k and v as one range of Q + 2K rows, split evenly.
    private func qkv(thread: Int) {
        let w = model.weights.layers[step.layer], t = step.tokens
        let qd = c.queryDimension, kd = c.keyValueDimension
        let range = rows(qd + 2 * kd, thread), scratch = tiles[thread].pointer
        project(w.q, xn.pointer, t, q.pointer, range.clamped(to: 0..<qd), offset: 0, scratch)
        project(w.k, xn.pointer, t, k.pointer, range.clamped(to: qd..<(qd + kd)), offset: qd, scratch)
        project(w.v, xn.pointer, t, v.pointer, range.clamped(to: (qd + kd)..<(qd + 2 * kd)), offset: qd + kd, scratch)
    }

    /// o projection and the residual add, by rows of D.
    private func output(thread: Int) {
        let range = rows(c.hiddenSize, thread)
        project(model.weights.layers[step.layer].o, attention.pointer, step.tokens, delta.pointer, range, offset: 0,
                tiles[thread].pointer)
        addRows(delta.pointer, into: x.pointer, tokens: step.tokens, width: c.hiddenSize, columns: range)
    }

    /// gate and up for the same rows of F, then SiLU(gate)·up in place of gate.
    private func gateUp(thread: Int) {
        let w = model.weights.layers[step.layer], f = c.intermediateSize
        let range = rows(f, thread)
        project(w.gate, xn.pointer, step.tokens, gate.pointer, range, offset: 0, tiles[thread].pointer)
        project(w.up, xn.pointer, step.tokens, up.pointer, range, offset: 0, tiles[thread].pointer)
        for i in 0..<step.tokens {
            let row = i * f + range.lowerBound
            siluMul(gate: gate.pointer + row, up: up.pointer + row, count: range.count, into: gate.pointer + row)
        }
    }

    /// down projection and the residual add, by rows of D.
    private func down(thread: Int) {
        let range = rows(c.hiddenSize, thread)
        project(model.weights.layers[step.layer].down, gate.pointer, step.tokens, delta.pointer, range, offset: 0,
                tiles[thread].pointer)
        addRows(delta.pointer, into: x.pointer, tokens: step.tokens, width: c.hiddenSize, columns: range)
    }

    /// The head for the normalized rows in xn, by rows of V.
    private func head(thread: Int) {
        matmul(model.weights.lmHead, xn.pointer, tokens: step.headRows, step.logits!, ldy: c.vocabSize,
               rows: rows(c.vocabSize, thread), scratch: tiles[thread].pointer)
    }

    // MARK: - Attention

    /// The window of cached positions position p attends to.
    @inline(__always) private func firstVisible(_ p: Int) -> Int {
        if let window = c.slidingWindow, p >= window { return p - window + 1 }
        return 0
    }

    /// One token: each thread takes whole (KV head, segment of positions) items — every query head of the group at
    /// once, so each cached key and value is read once — into partial results merged per head afterwards.
    private func attendDecoding(thread: Int) {
        let hd = c.headDim, group = c.groupSize, l = step.layer
        let first = firstVisible(position), count = position + 1 - first
        let slot = group * (hd + 2) // floats per (KV head, segment): o [group·hd], then m [group], l [group]
        for item in ThreadPool.chunk(c.numKeyValueHeads * segments, part: thread, of: pool.threadCount) {
            let kv = item / segments, segment = item % segments
            let range = ThreadPool.chunk(count, part: segment, of: segments)
            let base = partials.pointer + item * slot
            attendPartial(queries: q.pointer + kv * group * hd, heads: group,
                          keys: cache.keys(layer: l, head: kv) + (first + range.lowerBound) * hd,
                          values: cache.values(layer: l, head: kv) + (first + range.lowerBound) * hd,
                          count: range.count, stride: hd, headDim: hd, scale: 1 / Float(hd).squareRoot(),
                          scores: scores[thread].pointer, maxima: base + group * hd,
                          sums: base + group * hd + group, into: base)
        }
    }

    private func mergeDecodingAttention() {
        let hd = c.headDim, group = c.groupSize, slot = group * (hd + 2)
        for h in 0..<c.numAttentionHeads {
            let kv = h / group, j = h % group
            let base = partials.pointer + kv * segments * slot
            mergeAttention(parts: segments, maxima: base + group * hd + j, sums: base + group * hd + group + j,
                           scalarStride: slot, outputs: base + j * hd, outputStride: slot, headDim: hd,
                           into: attention.pointer + h * hd)
        }
    }

    /// T tokens: work items (head, token), head-major so that each thread gets whole heads where it can.
    private func attendPrefill(thread: Int) {
        let hd = c.headDim, group = c.groupSize, qd = c.queryDimension, t = step.tokens, l = step.layer
        for item in ThreadPool.chunk(c.numAttentionHeads * t, part: thread, of: pool.threadCount) {
            let h = item / t, i = item % t
            let p = position + i, first = firstVisible(p), kv = h / group
            attendOne(query: q.pointer + i * qd + h * hd,
                      keys: cache.keys(layer: l, head: kv) + first * hd,
                      values: cache.values(layer: l, head: kv) + first * hd,
                      count: p + 1 - first, stride: hd, headDim: hd, scale: 1 / Float(hd).squareRoot(),
                      scores: scores[thread].pointer, into: attention.pointer + i * qd + h * hd)
        }
    }
}

// MARK: - Per-thread pieces

/// Rows `range` (counted from `offset` in a concatenation of projections) of y[T, out] = x[T, in] · Wᵀ + b.
/// Every projection of the model goes through here.
@inline(__always)
private func project(_ linear: Linear, _ x: UnsafePointer<Float>, _ t: Int, _ y: UnsafeMutablePointer<Float>,
                     _ range: Range<Int>, offset: Int, _ scratch: UnsafeMutablePointer<Float>) {
    guard !range.isEmpty else { return }
    let rows = (range.lowerBound - offset)..<(range.upperBound - offset)
    let out = linear.outputs
    matmul(linear.weight, x, tokens: t, y, ldy: out, rows: rows, scratch: scratch)
    if let bias = linear.bias {
        for i in 0..<t {
            addInPlace(y + i * out + rows.lowerBound, bias.pointer + rows.lowerBound, count: rows.count)
        }
    }
}

/// x[i, columns] += delta[i, columns] for every token i.
@inline(__always)
private func addRows(_ delta: UnsafePointer<Float>, into x: UnsafeMutablePointer<Float>, tokens: Int, width: Int,
                     columns: Range<Int>) {
    for i in 0..<tokens {
        addInPlace(x + i * width + columns.lowerBound, delta + i * width + columns.lowerBound, count: columns.count)
    }
}
