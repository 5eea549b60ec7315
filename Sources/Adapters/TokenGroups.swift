import Kernels
import Model

/// Several tokens in a pass (a prefill chunk, a batch's rows): per projection slot, the entries (token, j) grouped by
/// expert, tokens ascending within an expert, with their gates; and their scaled input sides u = g·s·A_e x, which
/// `AdapterRuntime.prepare` computes once per pass (SGMV's shrink) for every thread's `adjust` to expand.
final class TokenGroups {
    /// Entries per slot at most: tokens · k.
    let capacity: Int
    let experts: Int
    /// u's row stride per entry (an expert's rows are its rank wide, packed from the expert's first entry).
    let width: Int
    /// [7, N + 1]: expert e's entries of slot s are offsets[s·(N+1) + e] ..< offsets[s·(N+1) + e + 1].
    let offsets: UnsafeMutablePointer<Int>
    /// [7, capacity] each entry's token, and its gate (before the pair's scale).
    let tokens: UnsafeMutablePointer<Int32>
    let gates: UnsafeMutablePointer<Float>
    /// [7, capacity, width]
    let u: UnsafeMutablePointer<Float>
    private let next: UnsafeMutablePointer<Int>
    /// (slot, expert) pairs with entries, for the parallel step; and the layer and input it runs on.
    var work: [(slot: Int, expert: Int)] = []
    var layer = 0
    var input: UnsafePointer<Float>?

    init(tokens: Int, k: Int, experts n: Int, width: Int) {
        let slots = LayerTensor.projections.count
        capacity = max(1, tokens * k)
        experts = max(1, n)
        self.width = width
        offsets = .allocate(capacity: slots * (experts + 1))
        offsets.initialize(repeating: 0, count: slots * (experts + 1))
        self.tokens = .allocate(capacity: slots * capacity)
        self.tokens.initialize(repeating: 0, count: slots * capacity)
        gates = .allocate(capacity: slots * capacity)
        gates.initialize(repeating: 0, count: slots * capacity)
        u = .allocate(capacity: slots * capacity * width)
        next = .allocate(capacity: experts)
        work.reserveCapacity(slots * experts)
    }

    deinit {
        offsets.deallocate()
        tokens.deallocate()
        gates.deallocate()
        u.deallocate()
        next.deallocate()
    }

    /// Slot `slot`'s entries of expert `e`: the range of entries, and their u rows.
    @inline(__always)
    func entries(slot: Int, expert e: Int) -> Range<Int> {
        let o = offsets + slot * (experts + 1)
        return o[e]..<o[e + 1]
    }

    @inline(__always)
    func u(slot: Int, from entry: Int) -> UnsafeMutablePointer<Float> { u + (slot * capacity + entry) * width }

    /// Groups `t` tokens' decisions ([t, k] experts and gates) for slot `slot` by expert.
    func group(slot: Int, experts chosen: UnsafePointer<Int32>, gates gateValues: UnsafePointer<Float>, tokens t: Int, k: Int) {
        let o = offsets + slot * (experts + 1)
        o.update(repeating: 0, count: experts + 1)
        for i in 0..<(t * k) { o[Int(chosen[i]) + 1] += 1 }
        for e in 0..<experts { o[e + 1] += o[e] }
        next.update(from: o, count: experts)
        let slotTokens = tokens + slot * capacity, slotGates = gates + slot * capacity
        for token in 0..<t {
            for j in 0..<k {
                let e = Int(chosen[token * k + j])
                slotTokens[next[e]] = Int32(token)
                slotGates[next[e]] = gateValues[token * k + j]
                next[e] += 1
            }
        }
    }
}
