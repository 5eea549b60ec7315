#if canImport(Glibc)
import Glibc
#endif
import Kernels

/// Rows through the model one operation at a time: embedding, then per layer RMSNorm, q/k/v (base product, then the
/// adapters' share), RoPE, causal attention, o, residual, RMSNorm, gate/up, SiLU·up, down, residual; then the final
/// norm. Each operation is its own parallel step over the pool, with nothing fused. It is the reference the fused
/// decoding regions are tested against, the forward of `--strategy reference`, and the forward pass training
/// differentiates (with an `ActivationTape` it keeps what the backward pass reads).
///
/// Rows are either one sequence continuing after the positions of a KV cache (a session's reference path), or
/// several sequences packed one after the other, each from position 0, none attending to another (training).
public final class ReferenceForward {
    public let model: LanguageModel
    public let pool: ThreadPool
    /// The most rows one call takes.
    public let capacity: Int

    let c: ModelConfiguration
    let x: FloatBuffer, xn: FloatBuffer, q: FloatBuffer, k: FloatBuffer, v: FloatBuffer
    let attention: FloatBuffer, logSumExp: FloatBuffer
    let gate: FloatBuffer, up: FloatBuffer, activation: FloatBuffer
    let cosines: FloatBuffer, sines: FloatBuffer
    /// The final norm's output [rows, D]: what `head` reads.
    public let normalizedOutput: FloatBuffer
    let tiles: [FloatBuffer]
    let scores: [FloatBuffer]
    /// Per thread: a group's m, l and un-normalised outputs.
    let partials: [FloatBuffer]
    /// Packed attention's scratch, grown to the longest sequence seen.
    var attentionScratch = FloatBuffer(count: 1, zeroed: false)

    /// For calls of up to `capacity` rows, over KV caches (or packed sequences) of up to `context` positions.
    public init(model: LanguageModel, pool: ThreadPool, capacity: Int, context: Int? = nil) {
        self.model = model
        self.pool = pool
        c = model.configuration
        self.capacity = max(1, capacity)
        let t = self.capacity
        x = FloatBuffer(count: t * c.hiddenSize, zeroed: false)
        xn = FloatBuffer(count: t * c.hiddenSize, zeroed: false)
        q = FloatBuffer(count: t * c.queryDimension, zeroed: false)
        k = FloatBuffer(count: t * c.keyValueDimension, zeroed: false)
        v = FloatBuffer(count: t * c.keyValueDimension, zeroed: false)
        attention = FloatBuffer(count: t * c.queryDimension, zeroed: false)
        logSumExp = FloatBuffer(count: t * c.numAttentionHeads, zeroed: false)
        gate = FloatBuffer(count: t * c.intermediateSize, zeroed: false)
        up = FloatBuffer(count: t * c.intermediateSize, zeroed: false)
        activation = FloatBuffer(count: t * c.intermediateSize, zeroed: false)
        cosines = FloatBuffer(count: t * c.headDim / 2, zeroed: false)
        sines = FloatBuffer(count: t * c.headDim / 2, zeroed: false)
        normalizedOutput = FloatBuffer(count: t * c.hiddenSize, zeroed: false)
        let widest = max(c.hiddenSize, c.intermediateSize, c.queryDimension)
        tiles = (0..<pool.threadCount).map { _ in FloatBuffer(count: matmulScratchCount(cols: widest), zeroed: false) }
        let keys = max(t, context ?? t), group = c.groupSize, headDim = c.headDim
        scores = (0..<pool.threadCount).map { _ in FloatBuffer(count: group * keys, zeroed: false) }
        partials = (0..<pool.threadCount).map { _ in FloatBuffer(count: group * (headDim + 2), zeroed: false) }
    }

    /// Where the keys and values of a call's rows come from.
    enum Context {
        /// One sequence, its rows at positions `position...`, after the cache's first `position` positions; the
        /// rows' keys and values are stored into the cache.
        case cache(KVCache, position: Int)
        /// Sequences one after the other, each from position 0.
        case packed([Range<Int>])
    }

    /// Sequences packed one after the other (`segments`: their row ranges, covering 0..<tokens.count in order),
    /// each from position 0: leaves RMSNorm(final hidden state) in `normalizedOutput` [rows, D]; with a `tape`, keeps
    /// every activation its backward pass reads.
    public func run(tokens: [Int], segments: [Range<Int>], adapters: ProjectionAdapters?, tape: ActivationTape? = nil) throws {
        var expected = 0
        for s in segments {
            guard s.lowerBound == expected, s.upperBound > s.lowerBound else {
                throw ModelError.invalidRows("segments must cover the rows in order, each non-empty: \(segments)")
            }
            expected = s.upperBound
        }
        guard expected == tokens.count else {
            throw ModelError.invalidRows("segments cover \(expected) rows, not the \(tokens.count) tokens")
        }
        try validate(tokens)
        if let tape, tape.capacity < tokens.count {
            throw ModelError.invalidRows("\(tokens.count) rows exceed the activation tape's \(tape.capacity)")
        }
        var positions = [Int](repeating: 0, count: tokens.count)
        for s in segments { for i in s { positions[i] = i - s.lowerBound } }
        try forward(tokens, positions: positions, context: .packed(segments), adapters: adapters, tape: tape)
    }

    func validate(_ tokens: [Int]) throws {
        guard tokens.count <= capacity else {
            throw ModelError.invalidRows("\(tokens.count) rows exceed the reference forward's \(capacity)")
        }
        for token in tokens where token < 0 || token >= c.vocabSize {
            throw ModelError.tokenOutOfRange(model: model.path, token: token, vocabularySize: c.vocabSize)
        }
    }

    /// The forward pass over `tokens` at `positions` (validated by the caller).
    func forward(_ tokens: [Int], positions: [Int], context: Context, adapters: ProjectionAdapters?,
                 tape: ActivationTape?) throws {
        let w = model.weights, d = c.hiddenSize, half = c.headDim / 2, t = tokens.count
        try adapters?.begin(rows: t, pool: pool)
        for (i, token) in tokens.enumerated() {
            w.embedding.dequantizeRow(token, into: x.pointer + i * d)
            w.rope.angles(position: positions[i], cos: cosines.pointer + i * half, sin: sines.pointer + i * half)
        }
        tape?.rows = t
        for l in 0..<c.numHiddenLayers {
            layer(l, rows: t, context: context, adapters: adapters, record: tape?.layers[l])
        }
        if let tape {
            tape.output.pointer.update(from: x.pointer, count: t * d)
            tape.cosines.pointer.update(from: cosines.pointer, count: t * half)
            tape.sines.pointer.update(from: sines.pointer, count: t * half)
        }
        normalize(x.pointer, w.finalNorm.pointer, rows: t, into: normalizedOutput.pointer)
    }

    /// One transformer block over `t` rows; `record` (when kept) receives its activations in place of scratch.
    private func layer(_ l: Int, rows t: Int, context: Context, adapters: ProjectionAdapters?, record: ActivationTape.Layer?) {
        let lw = model.weights.layers[l]
        let d = c.hiddenSize, qd = c.queryDimension, kd = c.keyValueDimension, f = c.intermediateSize
        let xn = record?.normalized.pointer ?? self.xn.pointer
        let q = record?.q.pointer ?? self.q.pointer, k = record?.k.pointer ?? self.k.pointer
        let v = record?.v.pointer ?? self.v.pointer
        let attention = record?.attention.pointer ?? self.attention.pointer
        let lse = record?.logSumExp.pointer ?? logSumExp.pointer
        let mlpNormalized = record?.mlpNormalized.pointer ?? self.xn.pointer
        let gate = record?.gate.pointer ?? self.gate.pointer, up = record?.up.pointer ?? self.up.pointer
        let activation = record?.activation.pointer ?? self.activation.pointer
        record?.input.pointer.update(from: x.pointer, count: t * d)

        // Attention block: x += o(attention(rope(q(n(x))), rope(k(n(x))), v(n(x)))).
        normalize(x.pointer, lw.attentionNorm.pointer, rows: t, into: xn)
        adapters?.didNormalize(layer: l, normalized: xn, rows: t, pool: pool)
        project(l, .q, lw.q, xn, rows: t, into: q, adapters)
        project(l, .k, lw.k, xn, rows: t, into: k, adapters)
        project(l, .v, lw.v, xn, rows: t, into: v, adapters)
        let rope = model.weights.rope, half = c.headDim / 2
        pool.parallelFor(t) { range in
            for i in range {
                rope.rotate(q + i * qd, heads: self.c.numAttentionHeads, cos: self.cosines.pointer + i * half, sin: self.sines.pointer + i * half)
                rope.rotate(k + i * kd, heads: self.c.numKeyValueHeads, cos: self.cosines.pointer + i * half, sin: self.sines.pointer + i * half)
            }
        }
        attend(l, rows: t, q: q, k: k, v: v, context: context, into: attention, logSumExp: lse)
        project(l, .o, lw.o, attention, rows: t, into: x.pointer, accumulate: true, adapters)
        record?.middle.pointer.update(from: x.pointer, count: t * d)

        // MLP block: x += down(SiLU(gate(n(x))) · up(n(x))).
        normalize(x.pointer, lw.mlpNorm.pointer, rows: t, into: mlpNormalized)
        project(l, .gate, lw.gate, mlpNormalized, rows: t, into: gate, adapters)
        project(l, .up, lw.up, mlpNormalized, rows: t, into: up, adapters)
        pool.parallelFor(t * f, granularity: 16) { range in
            siluMul(gate: gate + range.lowerBound, up: up + range.lowerBound, count: range.count,
                    into: activation + range.lowerBound)
        }
        project(l, .down, lw.down, activation, rows: t, into: x.pointer, accumulate: true, adapters)
    }

    /// y [t, out] = x [t, in] · Wᵀ + b, then the adapters' share (`accumulate`: y += …, the residual adds).
    private func project(_ l: Int, _ tensor: LayerTensor, _ linear: Linear, _ x: UnsafePointer<Float>, rows t: Int,
                         into y: UnsafeMutablePointer<Float>, accumulate: Bool = false, _ adapters: ProjectionAdapters?) {
        let out = linear.outputs
        pool.run { thread in
            let rows = ThreadPool.chunk(out, part: thread, of: pool.threadCount, granularity: 16)
            guard !rows.isEmpty else { return }
            matmul(linear.weight, x, tokens: t, y, ldy: out, rows: rows, accumulate: accumulate, scratch: tiles[thread].pointer)
            if let bias = linear.bias {
                for i in 0..<t { addInPlace(y + i * out + rows.lowerBound, bias.pointer + rows.lowerBound, count: rows.count) }
            }
        }
        if let adapters, adapters.adapts(layer: l, projection: tensor) {
            adapters.apply(layer: l, projection: tensor, input: x, rows: t, output: y, ldy: out, pool: pool)
        }
    }

    /// RMSNorm of each of `t` rows of width D.
    private func normalize(_ x: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, rows t: Int,
                           into out: UnsafeMutablePointer<Float>) {
        let d = c.hiddenSize, eps = c.rmsNormEps
        pool.parallelFor(t) { range in
            for i in range { rmsNorm(x + i * d, weight: weight, eps: eps, count: d, into: out + i * d) }
        }
    }

    /// Causal attention. Packed sequences: blocks of rows against their keys through sgemm, the work split by
    /// (sequence, KV head, block) (Kernels/TrainingAttention.swift). Over a KV cache: work items (KV head, row),
    /// every query head of the group at once, so each cached key and value is read once for the group. Writes the
    /// normalised outputs [t, Q] and each head's log-sum-exp of its scaled scores [t, H].
    private func attend(_ l: Int, rows t: Int, q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                        context: Context, into out: UnsafeMutablePointer<Float>, logSumExp: UnsafeMutablePointer<Float>) {
        let hd = c.headDim, group = c.groupSize, qd = c.queryDimension, kd = c.keyValueDimension
        let heads = c.numAttentionHeads, kvHeads = c.numKeyValueHeads, window = c.slidingWindow
        switch context {
        case .packed(let segments):
            let layout = TrainingAttention(segments: segments, heads: heads, kvHeads: kvHeads, headDim: hd, window: window,
                                           threads: pool.threadCount)!
            if attentionScratch.count < layout.driverScratchCount {
                attentionScratch = FloatBuffer(count: layout.driverScratchCount, zeroed: false)
            }
            layout.forward(q: q, k: k, v: v, out: out, lse: logSumExp, pool: pool, scratch: attentionScratch.pointer)
        case .cache(let cache, let position):
            for i in 0..<t { cache.store(layer: l, position: position + i, keys: k + i * kd, values: v + i * kd) }
            let scale = 1 / Float(hd).squareRoot()
            pool.run { thread in
                let part = partials[thread].pointer
                for item in ThreadPool.chunk(kvHeads * t, part: thread, of: pool.threadCount) {
                    let kv = item / t, i = item % t, p = position + i
                    let first = window.map { p >= $0 ? p - $0 + 1 : 0 } ?? 0
                    attendPartial(queries: q + i * qd + kv * group * hd, heads: group,
                                  keys: cache.keys(layer: l, head: kv) + first * hd,
                                  values: cache.values(layer: l, head: kv) + first * hd, count: p + 1 - first,
                                  stride: hd, headDim: hd, scale: scale, scores: scores[thread].pointer,
                                  maxima: part + group * hd, sums: part + group * hd + group, into: part)
                    for j in 0..<group {
                        let h = kv * group + j, m = part[group * hd + j], sum = part[group * hd + group + j]
                        let inverse = 1 / sum
                        let o = out + i * qd + h * hd
                        for e in 0..<hd { o[e] = part[j * hd + e] * inverse }
                        logSumExp[i * heads + h] = m + logf(sum)
                    }
                }
            }
        }
    }

    /// Logits [rows, V] (row stride `ldy`) of `rows` rows of `normalizedOutput` from `first` on.
    public func head(first: Int = 0, rows t: Int, into logits: UnsafeMutablePointer<Float>, ldy: Int? = nil) {
        let vocabulary = c.vocabSize, head = model.weights.lmHead, xn = normalizedOutput.pointer + first * c.hiddenSize
        pool.run { thread in
            matmul(head, xn, tokens: t, logits, ldy: ldy ?? vocabulary,
                   rows: ThreadPool.chunk(vocabulary, part: thread, of: pool.threadCount, granularity: 16),
                   scratch: tiles[thread].pointer)
        }
    }
}
