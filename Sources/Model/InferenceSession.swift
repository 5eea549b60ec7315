import Kernels

/// The decoding state of one sequence over a shared `LanguageModel`: the KV cache, the position, and every scratch
/// buffer, all allocated up front — the forward pass allocates nothing.
///
/// Shape letters: T tokens in the current chunk, D hidden size, Q = heads·headDim, K = kvHeads·headDim,
/// F intermediate size, V vocabulary.
///
/// One forward pass serves prefill (T tokens at once, sgemm) and decode (T = 1, matrix-vector kernels). Per layer
/// it opens five parallel regions — q/k/v, attention, o (+ residual), gate/up (+ SiLU), down (+ residual) — and
/// runs the small serial steps (RMSNorm, RoPE, cache writes) between them on the calling thread.
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
        for l in 0..<c.numHiddenLayers {
            layer(weights.layers[l], index: l, tokens: t)
        }
        position += t

        // Final norm and head, for the rows that are asked for.
        let first = allPositions ? 0 : t - 1
        let rows = t - first
        for i in first..<t {
            rmsNorm(x.pointer + i * d, weight: weights.finalNorm.pointer, eps: c.rmsNormEps, count: d,
                    into: xn.pointer + (i - first) * d)
        }
        let head = weights.lmHead, xnp = xn.pointer
        pool.run { thread in
            let range = ThreadPool.chunk(c.vocabSize, part: thread, of: pool.threadCount, granularity: 16)
            matmul(head, xnp, tokens: rows, logits, ldy: c.vocabSize, rows: range, scratch: tiles[thread].pointer)
        }
    }

    private func layer(_ w: LayerWeights, index l: Int, tokens t: Int) {
        let d = c.hiddenSize, qd = c.queryDimension, kd = c.keyValueDimension, f = c.intermediateSize
        let threads = pool.threadCount
        let xp = x.pointer, xnp = xn.pointer, qp = q.pointer, kp = k.pointer, vp = v.pointer
        let ap = attention.pointer, gp = gate.pointer, up = up.pointer, dp = delta.pointer

        // Attention block: x += o(attention(rope(q(n(x))), rope(k(n(x))), v(n(x)))).
        for i in 0..<t { rmsNorm(xp + i * d, weight: w.attentionNorm.pointer, eps: c.rmsNormEps, count: d, into: xnp + i * d) }
        pool.run { thread in
            // q, k and v as one range of qd + 2·kd rows, split evenly.
            let range = ThreadPool.chunk(qd + 2 * kd, part: thread, of: threads, granularity: 16)
            let scratch = tiles[thread].pointer
            project(w.q, xnp, t, qp, range.clamped(to: 0..<qd), offset: 0, scratch)
            project(w.k, xnp, t, kp, range.clamped(to: qd..<(qd + kd)), offset: qd, scratch)
            project(w.v, xnp, t, vp, range.clamped(to: (qd + kd)..<(qd + 2 * kd)), offset: qd + kd, scratch)
        }
        let half = c.headDim / 2
        for i in 0..<t {
            model.weights.rope.rotate(qp + i * qd, heads: c.numAttentionHeads, cos: cosines.pointer + i * half, sin: sines.pointer + i * half)
            model.weights.rope.rotate(kp + i * kd, heads: c.numKeyValueHeads, cos: cosines.pointer + i * half, sin: sines.pointer + i * half)
            cache.store(layer: l, position: position + i, keys: kp + i * kd, values: vp + i * kd)
        }
        if t == 1 {
            attendDecoding(layer: l)
        } else {
            attendPrefill(layer: l, tokens: t)
        }
        pool.run { thread in
            let range = ThreadPool.chunk(d, part: thread, of: threads, granularity: 16)
            project(w.o, ap, t, dp, range, offset: 0, tiles[thread].pointer)
            addRows(dp, into: xp, tokens: t, width: d, columns: range)
        }

        // MLP block: x += down(silu(gate(n(x))) · up(n(x))).
        for i in 0..<t { rmsNorm(xp + i * d, weight: w.mlpNorm.pointer, eps: c.rmsNormEps, count: d, into: xnp + i * d) }
        pool.run { thread in
            let range = ThreadPool.chunk(f, part: thread, of: threads, granularity: 16)
            project(w.gate, xnp, t, gp, range, offset: 0, tiles[thread].pointer)
            project(w.up, xnp, t, up, range, offset: 0, tiles[thread].pointer)
            for i in 0..<t {
                let row = i * f + range.lowerBound
                siluMul(gate: gp + row, up: up + row, count: range.count, into: gp + row)
            }
        }
        pool.run { thread in
            let range = ThreadPool.chunk(d, part: thread, of: threads, granularity: 16)
            project(w.down, gp, t, dp, range, offset: 0, tiles[thread].pointer)
            addRows(dp, into: xp, tokens: t, width: d, columns: range)
        }
    }

    // MARK: - Attention

    /// One token: each thread takes whole (KV head, segment of positions) items — every query head of the group at
    /// once, so each cached key and value is read once — and the partial results are merged per head.
    private func attendDecoding(layer l: Int) {
        let hd = c.headDim, group = c.groupSize, kvHeads = c.numKeyValueHeads, threads = pool.threadCount
        let p = position, window = c.slidingWindow ?? Int.max
        let first = p >= window ? p - window + 1 : 0
        let count = p + 1 - first, segments = self.segments
        let scale = 1 / Float(hd).squareRoot()
        let qp = q.pointer, partial = partials.pointer
        let slot = group * (hd + 2) // floats per (KV head, segment): o [group·hd], then m [group], l [group]
        pool.run { thread in
            for item in ThreadPool.chunk(kvHeads * segments, part: thread, of: threads) {
                let kv = item / segments, segment = item % segments
                let range = ThreadPool.chunk(count, part: segment, of: segments)
                let base = partial + item * slot
                attendPartial(queries: qp + kv * group * hd, heads: group,
                              keys: cache.keys(layer: l, head: kv) + (first + range.lowerBound) * hd,
                              values: cache.values(layer: l, head: kv) + (first + range.lowerBound) * hd,
                              count: range.count, stride: hd, headDim: hd, scale: scale,
                              scores: scores[thread].pointer, maxima: base + group * hd,
                              sums: base + group * hd + group, into: base)
            }
        }
        for h in 0..<c.numAttentionHeads {
            let kv = h / group, j = h % group
            let base = partial + kv * segments * slot
            mergeAttention(parts: segments, maxima: base + group * hd + j, sums: base + group * hd + group + j,
                           scalarStride: slot, outputs: base + j * hd, outputStride: slot, headDim: hd,
                           into: attention.pointer + h * hd)
        }
    }

    /// T tokens: work items (head, token), head-major so that each thread gets whole heads where it can.
    private func attendPrefill(layer l: Int, tokens t: Int) {
        let heads = c.numAttentionHeads, hd = c.headDim, group = c.groupSize, qd = c.queryDimension
        let threads = pool.threadCount, start = position
        let scale = 1 / Float(hd).squareRoot(), window = c.slidingWindow ?? Int.max
        let qp = q.pointer, ap = attention.pointer
        pool.run { thread in
            for item in ThreadPool.chunk(heads * t, part: thread, of: threads) {
                let h = item / t, i = item % t
                let p = start + i
                let first = p >= window ? p - window + 1 : 0
                let kv = h / group
                attendOne(query: qp + i * qd + h * hd,
                          keys: cache.keys(layer: l, head: kv) + first * hd,
                          values: cache.values(layer: l, head: kv) + first * hd,
                          count: p + 1 - first, stride: hd, headDim: hd, scale: scale,
                          scores: scores[thread].pointer, into: ap + i * qd + h * hd)
            }
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
