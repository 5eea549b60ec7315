#if canImport(Glibc)
import Glibc
#endif

// Causal grouped-query attention for training, forward and backward, over packed sequences (FlashAttention's
// recurrences, computed on blocks with sgemm rather than fused):
//   forward   S = Q Kᵀ · scale (causal, per segment, optionally windowed), P = softmax(S), O = P V; lse saved per row.
//   backward  P = exp(S − lse), dV = Pᵀ dO, dP = dO Vᵀ, D_i = Σ dO_i ∘ O_i, dS = P ∘ (dP − D),
//             dQ = dS K · scale, dK = dSᵀ Q · scale.
//
// Shapes: T rows; H query heads, KV key/value heads (H a multiple of KV; query head h reads KV head h / (H/KV)),
// hd the head size. q, out, dOut, dq: [T, H·hd]; k, v, dk, dv: [T, KV·hd]; lse: [T, H]. Rows of q/k/v are already
// roped. A segment is a range of rows holding one sequence: a row attends to the rows of its own segment up to and
// including itself, and with a window W only to those less than W positions back.
//
// Work is split into units (segment, KV head, block of query rows): a unit computes every query head of the KV
// head's group for its rows, against all the keys those rows see. Units go to threads by cost (rows × keys),
// largest first to the least loaded thread, so that two threads stay busy with 3 KV heads and one segment. dQ of a
// unit's rows is its own; dK and dV of a key gather from units on several threads: each thread sums into its own
// buffers, added up at the end (in thread order: the result does not depend on timing).

/// A causal attention layout for training — segments, heads, window — and its split into work units for a
/// number of threads. Build it once per batch; it holds no buffers.
public struct TrainingAttention: Sendable {
    public let heads: Int
    public let kvHeads: Int
    public let headDim: Int
    /// Positions a row sees, itself included (nil: the whole segment before it).
    public let window: Int?
    /// 1/sqrt(headDim).
    public let scale: Float
    /// Rows 0..<tokens span every segment.
    public let tokens: Int
    public let threads: Int
    /// Floats of scratch one thread needs for `forward` or `backward` on units: two blocks of scores, each
    /// [query rows, keys] of the largest unit — at most 2 · queryBlock · (longest segment, or window + queryBlock − 1):
    /// 128 KB for a 256-row segment in blocks of 64, 1 MB for 2048 rows. The backward driver adds 2 · T · KV · hd
    /// floats of private dK and dV per thread beyond the first (384 KB for T = 256, KV·hd = 192).
    public let scratchCount: Int

    struct Unit: Sendable {
        let rows: Range<Int>
        let keys: Range<Int>
        let kvHead: Int
    }

    /// Units in thread order: thread t's are `units[unitRanges[t]]`.
    let units: [Unit]
    let unitRanges: [Range<Int>]

    /// - segments: disjoint row ranges (empty ones are skipped), in any order.
    /// - window: nil, or at least 1.
    /// - queryBlock: query rows per unit (the last block of a segment may be shorter). 64 gives sgemm blocks big
    ///   enough to run at speed and, with one 256-row segment and 3 KV heads, 12 units to share out.
    /// Returns nil when the heads do not group (H a multiple of KV, both positive), a size is not positive, a
    /// segment starts below 0, or two segments overlap.
    public init?(segments: [Range<Int>], heads: Int, kvHeads: Int, headDim: Int, window: Int? = nil, threads: Int,
                 queryBlock: Int = 64) {
        guard heads > 0, kvHeads > 0, heads % kvHeads == 0, headDim > 0, threads > 0, queryBlock > 0,
              (window ?? 1) >= 1 else { return nil }
        let sorted = segments.filter { !$0.isEmpty }.sorted { $0.lowerBound < $1.lowerBound }
        guard (sorted.first?.lowerBound ?? 0) >= 0,
              zip(sorted, sorted.dropFirst()).allSatisfy({ $0.upperBound <= $1.lowerBound }) else { return nil }
        self.heads = heads
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.window = window
        self.scale = 1 / Float(headDim).squareRoot()
        self.tokens = sorted.last?.upperBound ?? 0
        self.threads = threads

        var all: [Unit] = []
        for segment in sorted {
            var start = segment.lowerBound
            while start < segment.upperBound {
                let rows = start..<min(segment.upperBound, start + queryBlock)
                let first = window.map { max(segment.lowerBound, rows.lowerBound - $0 + 1) } ?? segment.lowerBound
                for kvHead in 0..<kvHeads { all.append(Unit(rows: rows, keys: first..<rows.upperBound, kvHead: kvHead)) }
                start = rows.upperBound
            }
        }
        scratchCount = 2 * (all.map { $0.rows.count * $0.keys.count }.max() ?? 0)

        // Largest first, each to the least loaded thread (ties: the lower index); then each thread's units in
        // layout order.
        let cost = { (u: Unit) in u.rows.count * u.keys.count }
        let order = all.indices.sorted { cost(all[$0]) != cost(all[$1]) ? cost(all[$0]) > cost(all[$1]) : $0 < $1 }
        var load = [Int](repeating: 0, count: threads)
        var owned = [[Int]](repeating: [], count: threads)
        for index in order {
            let thread = load.indices.min { load[$0] != load[$1] ? load[$0] < load[$1] : $0 < $1 }!
            load[thread] += cost(all[index])
            owned[thread].append(index)
        }
        var units: [Unit] = [], ranges: [Range<Int>] = []
        for list in owned {
            let start = units.count
            units += list.sorted().map { all[$0] }
            ranges.append(start..<units.count)
        }
        self.units = units
        self.unitRanges = ranges
    }

    /// The units thread `thread` (in 0..<threads) works on.
    public func units(forThread thread: Int) -> Range<Int> { unitRanges[thread] }

    /// Floats of one thread's private dK and dV sums in `backward`'s driver: 2 · tokens · KV · hd.
    public var partialGradientCount: Int { 2 * tokens * kvHeads * headDim }

    /// Floats of scratch the pool drivers need: every thread's `scratchCount`, and for `backward` the private dK
    /// and dV of every thread but the first.
    public var driverScratchCount: Int { threads * scratchCount + (threads - 1) * partialGradientCount }

    // MARK: - Per thread

    /// The forward pass of `units` (a range of `units(forThread:)`, or any sub-range): out [T, H·hd] and
    /// lse [T, H] (log-sum-exp of the row's scaled scores, for `backward`) are overwritten at the units' rows.
    /// `scratch`: `scratchCount` floats of this thread's own.
    public func forward(units range: Range<Int>, q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                        out: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>,
                        scratch: UnsafeMutablePointer<Float>) {
        let group = heads / kvHeads, ldq = heads * headDim, ldk = kvHeads * headDim
        for unit in units[range] {
            let rows = unit.rows, keys = unit.keys, n = keys.count
            let kv = unit.kvHead * headDim
            for head in (unit.kvHead * group)..<((unit.kvHead + 1) * group) {
                let qh = head * headDim
                // S = Q Kᵀ · scale [rows, keys], then each row's softmax over the keys it sees.
                sgemm(.plain, .transposed, m: rows.count, n: n, k: headDim, alpha: scale,
                      a: q + rows.lowerBound * ldq + qh, lda: ldq, b: k + keys.lowerBound * ldk + kv, ldb: ldk,
                      beta: 0, c: scratch, ldc: n)
                for row in rows {
                    let p = scratch + (row - rows.lowerBound) * n, seen = visible(row, keys)
                    mask(p, count: n, visible: seen)
                    let maximum = rowMaximum(p + seen.lowerBound, count: seen.count)
                    let sum = exponentiateRow(p + seen.lowerBound, count: seen.count, shift: maximum)
                    scaleRow(p + seen.lowerBound, count: seen.count, by: 1 / sum)
                    lse[row * heads + head] = maximum + logf(sum)
                }
                // O = P V [rows, hd].
                sgemm(m: rows.count, n: headDim, k: n, a: scratch, lda: n, b: v + keys.lowerBound * ldk + kv, ldb: ldk,
                      beta: 0, c: out + rows.lowerBound * ldq + qh, ldc: ldq)
            }
        }
    }

    /// The backward pass of `units` given dOut = ∂L/∂out and the forward's out and lse: dq [T, H·hd] is overwritten
    /// at the units' rows; dk and dv [T, KV·hd] are accumulated (+=) at the keys the units see — a thread's own
    /// buffers, zeroed by the caller and summed over the threads afterwards (as the driver does).
    /// `scratch`: `scratchCount` floats of this thread's own.
    public func backward(units range: Range<Int>, q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                         out: UnsafePointer<Float>, lse: UnsafePointer<Float>, dOut: UnsafePointer<Float>,
                         dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
                         scratch: UnsafeMutablePointer<Float>) {
        let group = heads / kvHeads, ldq = heads * headDim, ldk = kvHeads * headDim
        let p = scratch, dp = scratch + scratchCount / 2
        for unit in units[range] {
            let rows = unit.rows, keys = unit.keys, m = rows.count, n = keys.count
            let kh = k + keys.lowerBound * ldk + unit.kvHead * headDim, vh = v + keys.lowerBound * ldk + unit.kvHead * headDim
            let dkh = dk + keys.lowerBound * ldk + unit.kvHead * headDim
            let dvh = dv + keys.lowerBound * ldk + unit.kvHead * headDim
            for head in (unit.kvHead * group)..<((unit.kvHead + 1) * group) {
                let offset = rows.lowerBound * ldq + head * headDim
                let qh = q + offset, dOuth = dOut + offset
                // P = exp(S − lse), recomputed; dP = dO Vᵀ; dV += Pᵀ dO.
                sgemm(.plain, .transposed, m: m, n: n, k: headDim, alpha: scale, a: qh, lda: ldq, b: kh, ldb: ldk,
                      beta: 0, c: p, ldc: n)
                for row in rows {
                    let pr = p + (row - rows.lowerBound) * n, seen = visible(row, keys)
                    mask(pr, count: n, visible: seen)
                    _ = exponentiateRow(pr + seen.lowerBound, count: seen.count, shift: lse[row * heads + head])
                }
                sgemm(.plain, .transposed, m: m, n: n, k: headDim, a: dOuth, lda: ldq, b: vh, ldb: ldk, beta: 0, c: dp, ldc: n)
                sgemm(.transposed, .plain, m: n, n: headDim, k: m, a: p, lda: n, b: dOuth, ldb: ldq, beta: 1, c: dvh, ldc: ldk)
                // dS = P ∘ (dP − D) over P, D_i = Σ dO_i ∘ O_i (masked entries of P stay 0).
                for row in rows {
                    let i = row - rows.lowerBound
                    let d = dot(dOut + row * ldq + head * headDim, out + row * ldq + head * headDim, headDim)
                    subtractAndMultiply(p + i * n, dp + i * n, d, visible: visible(row, keys))
                }
                // dQ = dS K · scale; dK += dSᵀ Q · scale.
                sgemm(m: m, n: headDim, k: n, alpha: scale, a: p, lda: n, b: kh, ldb: ldk, beta: 0, c: dq + offset, ldc: ldq)
                sgemm(.transposed, .plain, m: n, n: headDim, k: m, alpha: scale, a: p, lda: n, b: qh, ldb: ldq,
                      beta: 1, c: dkh, ldc: ldk)
            }
        }
    }

    /// The keys `row` sees, as offsets into the unit's key range `keys`.
    @inline(__always)
    private func visible(_ row: Int, _ keys: Range<Int>) -> Range<Int> {
        let first = window.map { max(keys.lowerBound, row - $0 + 1) } ?? keys.lowerBound
        return (first - keys.lowerBound)..<(row + 1 - keys.lowerBound)
    }

    // MARK: - Drivers

    /// `forward` on every thread of `pool` (which has `threads` threads), each on its own units.
    /// `scratch`: `driverScratchCount` floats.
    public func forward(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                        out: UnsafeMutablePointer<Float>, lse: UnsafeMutablePointer<Float>,
                        pool: ThreadPool, scratch: UnsafeMutablePointer<Float>) {
        precondition(pool.threadCount == threads, "the layout was split for \(threads) threads")
        pool.run { thread in
            forward(units: unitRanges[thread], q: q, k: k, v: v, out: out, lse: lse,
                    scratch: scratch + thread * scratchCount)
        }
    }

    /// `backward` on every thread of `pool` (which has `threads` threads): dq is overwritten at the segments' rows;
    /// dk and dv [T, KV·hd] are overwritten at all rows 0..<tokens (zero where no segment is).
    /// `scratch`: `driverScratchCount` floats.
    public func backward(q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                         out: UnsafePointer<Float>, lse: UnsafePointer<Float>, dOut: UnsafePointer<Float>,
                         dq: UnsafeMutablePointer<Float>, dk: UnsafeMutablePointer<Float>, dv: UnsafeMutablePointer<Float>,
                         pool: ThreadPool, scratch: UnsafeMutablePointer<Float>) {
        precondition(pool.threadCount == threads, "the layout was split for \(threads) threads")
        let half = partialGradientCount / 2, partials = scratch + threads * scratchCount
        // Thread 0 sums into dk and dv themselves, thread t > 0 into partials + (t − 1) · partialGradientCount.
        let target = { (thread: Int) -> (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) in
            thread == 0 ? (dk, dv) : (partials + (thread - 1) * 2 * half, partials + (thread - 1) * 2 * half + half)
        }
        pool.run { thread in
            let (dkt, dvt) = target(thread)
            dkt.update(repeating: 0, count: half)
            dvt.update(repeating: 0, count: half)
            backward(units: unitRanges[thread], q: q, k: k, v: v, out: out, lse: lse, dOut: dOut, dq: dq, dk: dkt,
                     dv: dvt, scratch: scratch + thread * scratchCount)
        }
        guard threads > 1 else { return }
        let width = kvHeads * headDim
        pool.run { thread in
            let rows = ThreadPool.chunk(tokens, part: thread, of: threads)
            guard !rows.isEmpty else { return }
            let start = rows.lowerBound * width, count = rows.count * width
            for other in 1..<threads {
                let (dko, dvo) = target(other)
                addInPlace(dk + start, dko + start, count: count)
                addInPlace(dv + start, dvo + start, count: count)
            }
        }
    }
}

// MARK: - Row helpers

/// p[j] ← 0 for j in 0..<count outside `visible`.
@inline(__always)
private func mask(_ p: UnsafeMutablePointer<Float>, count: Int, visible: Range<Int>) {
    p.update(repeating: 0, count: visible.lowerBound)
    (p + visible.upperBound).update(repeating: 0, count: count - visible.upperBound)
}

/// p[j] ← p[j] · (dp[j] − d) for j in `visible` (the rest of p is already 0).
@inline(__always)
private func subtractAndMultiply(_ p: UnsafeMutablePointer<Float>, _ dp: UnsafePointer<Float>, _ d: Float,
                                 visible: Range<Int>) {
    let dv = SIMD16<Float>(repeating: d)
    var j = visible.lowerBound
    while j + 16 <= visible.upperBound {
        UnsafeMutableRawPointer(p + j).storeBytes(of: load16(p, j) * (load16(dp, j) - dv), as: SIMD16<Float>.self)
        j += 16
    }
    while j < visible.upperBound { p[j] *= dp[j] - d; j += 1 }
}
