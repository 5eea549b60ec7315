import Kernels

extension InferenceSession {
    // MARK: - Attention

    /// The window of cached positions position p attends to.
    @inline(__always) private func firstVisible(_ p: Int) -> Int {
        if let window = c.slidingWindow, p >= window { return p - window + 1 }
        return 0
    }

    /// One token: each thread takes whole (KV head, segment of positions) items — every query head of the group at
    /// once, so each cached key and value is read once — into partial results merged per head afterwards.
    func attendDecoding(thread: Int) {
        let hd = c.headDim, group = c.groupSize, l = pass.layer, cache = rowCaches[0], position = rowPositions[0]
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

    func mergeDecodingAttention() {
        let hd = c.headDim, group = c.groupSize, slot = group * (hd + 2)
        for h in 0..<c.numAttentionHeads {
            let kv = h / group, j = h % group
            let base = partials.pointer + kv * segments * slot
            mergeAttention(parts: segments, maxima: base + group * hd + j, sums: base + group * hd + group + j,
                           scalarStride: slot, outputs: base + j * hd, outputStride: slot, headDim: hd,
                           into: attention.pointer + h * hd)
        }
    }

    /// T rows: work items (head, row), head-major so that each thread gets whole heads where it can. Each row
    /// attends to its own sequence's cache up to its position (its keys and values are stored by then).
    func attendPrefill(thread: Int) {
        let hd = c.headDim, group = c.groupSize, qd = c.queryDimension, t = pass.tokens, l = pass.layer
        for item in ThreadPool.chunk(c.numAttentionHeads * t, part: thread, of: pool.threadCount) {
            let h = item / t, i = item % t, cache = rowCaches[i]
            let p = rowPositions[i], first = firstVisible(p), kv = h / group
            attendOne(query: q.pointer + i * qd + h * hd,
                      keys: cache.keys(layer: l, head: kv) + first * hd,
                      values: cache.values(layer: l, head: kv) + first * hd,
                      count: p + 1 - first, stride: hd, headDim: hd, scale: 1 / Float(hd).squareRoot(),
                      scores: scores[thread].pointer, into: attention.pointer + i * qd + h * hd)
        }
    }
}
