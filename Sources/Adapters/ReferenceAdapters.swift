import Kernels
import Model

/// An adapter through the reference forward (`--strategy reference`, and training): after each projection's base
/// product, its share as separate steps, grouped by expert as SGMV kernels group it — the rows that chose expert e
/// are one batch: H_e = X_e A_eᵀ, then Y[rows] += (g·s ∘ H_e) B_eᵀ.
///
/// Routing: token routing decides once per row at the router's layer (softmax over all N in float32, top-k,
/// renormalized) for every adapted projection of the row; layer routing decides per projection on its input; fixed
/// routing (static LoRAs) applies every adapter with its weight.
///
/// With `recording`, every decision and every H_e of the last pass stays readable until the next: the router logits,
/// the experts and gates of each row, and each (layer, projection)'s rows grouped by expert with their H — what a
/// backward pass reads.
public final class ReferenceAdapters: ProjectionAdapters {
    public let adapter: Adapter
    /// The most rows one pass takes.
    public let capacity: Int
    public let recording: Bool
    /// Called with each row's decision (row in the pass, experts, gates) under token routing: `--show-routing`.
    public var observer: ((Int, [Int], [Float]) -> Void)?
    /// Layer routing: called with each (layer, projection, row)'s decision, as each router decides.
    var layerObserver: ((Int, LayerTensor, Int, [Int], [Float]) -> Void)?

    /// Experts per row (k) and in all (N).
    public let k: Int
    public let n: Int
    let layers: Int
    let width: Int

    /// One router's decisions for the rows of a pass.
    public final class Decisions {
        /// [T, N] router outputs (nil under fixed routing).
        public let logits: FloatBuffer?
        /// [T, k] each row's experts (by descending gate) and renormalized gates.
        public let experts: UnsafeMutablePointer<Int32>
        public let gates: UnsafeMutablePointer<Float>
        /// The (row, slot) pairs grouped by expert: expert e's are `offsets[e]..<offsets[e + 1]` of `rows` / `slots`
        /// (slot j: the row's j-th choice).
        public internal(set) var offsets: [Int]
        public let rows: UnsafeMutablePointer<Int32>
        public let slots: UnsafeMutablePointer<Int32>

        init(capacity t: Int, k: Int, n: Int, routed: Bool) {
            logits = routed ? FloatBuffer(count: t * n, zeroed: false) : nil
            experts = .allocate(capacity: max(1, t * k))
            gates = .allocate(capacity: max(1, t * k))
            offsets = [Int](repeating: 0, count: n + 1)
            rows = .allocate(capacity: max(1, t * k))
            slots = .allocate(capacity: max(1, t * k))
        }

        deinit {
            experts.deallocate()
            gates.deallocate()
            rows.deallocate()
            slots.deallocate()
        }

        /// The first row of the grouped entries `run` (of one expert) when their rows are consecutive, as under fixed
        /// routing, so that their inputs and outputs are read and written in place; nil otherwise. (An expert's rows
        /// ascend and never repeat, so the ends tell.)
        public func consecutiveRows(_ run: Range<Int>) -> Int? {
            let first = Int(rows[run.lowerBound])
            return Int(rows[run.upperBound - 1]) - first == run.count - 1 ? first : nil
        }

        /// Groups the first `t` rows' choices by expert (each expert's rows in ascending order).
        func group(rows t: Int, k: Int, n: Int) {
            var counts = [Int](repeating: 0, count: n + 1)
            for i in 0..<(t * k) { counts[Int(experts[i]) + 1] += 1 }
            for e in 0..<n { counts[e + 1] += counts[e] }
            offsets = counts
            var next = counts
            for row in 0..<t {
                for j in 0..<k {
                    let e = Int(experts[row * k + j])
                    rows[next[e]] = Int32(row)
                    slots[next[e]] = Int32(j)
                    next[e] += 1
                }
            }
        }
    }

    /// Token and fixed routing: the one decision set of a pass.
    public let token: Decisions
    /// Layer routing: per (layer, projection index), [layers · 7] (nil where not adapted).
    public let perProjection: [Decisions?]
    /// With `recording`: H of every (layer, projection), [layers · 7], each [T·k, maxRank] in grouped order.
    public let hidden: [FloatBuffer?]

    // Scratch.
    private let scaled: FloatBuffer   // [T·k, maxRank] g·s ∘ H in grouped order
    private let transient: FloatBuffer // [T·k, maxRank] H when not recording
    private let gathered: [FloatBuffer] // per thread [T, maxIn]
    private let outputs: [FloatBuffer]  // per thread [T, maxOut]
    private let tiles: [FloatBuffer]
    private let probabilities: FloatBuffer

    /// For passes of up to `capacity` rows over `model` (which the adapter must fit) on `threads` threads.
    public init(adapter: Adapter, model: LanguageModel, threads: Int, capacity: Int, recording: Bool = false) throws {
        try adapter.check(fits: model)
        let c = model.configuration
        self.adapter = adapter
        self.capacity = max(1, capacity)
        self.recording = recording
        k = max(1, adapter.routing.topK)
        n = max(1, adapter.numExperts)
        layers = c.numHiddenLayers
        width = max(1, adapter.maxRank)
        let t = self.capacity, kinds = LayerTensor.projections.count
        var routed = false
        if case .token = adapter.routing { routed = true }
        token = Decisions(capacity: t, k: k, n: n, routed: routed)
        var perProjection = [Decisions?](repeating: nil, count: layers * kinds)
        var hidden = [FloatBuffer?](repeating: nil, count: layers * kinds)
        for l in 0..<layers {
            for (i, tensor) in LayerTensor.projections.enumerated() {
                guard let p = adapter.projection(layer: l, tensor) else { continue }
                if p.router != nil { perProjection[l * kinds + i] = Decisions(capacity: t, k: k, n: n, routed: true) }
                if recording { hidden[l * kinds + i] = FloatBuffer(count: t * k * width, zeroed: false) }
            }
        }
        self.perProjection = perProjection
        self.hidden = hidden
        let k = k, width = width
        scaled = FloatBuffer(count: t * k * width, zeroed: false)
        transient = FloatBuffer(count: recording ? 1 : t * k * width, zeroed: false)
        let widest = max(c.hiddenSize, c.intermediateSize, c.queryDimension)
        gathered = (0..<threads).map { _ in FloatBuffer(count: t * widest, zeroed: false) }
        outputs = (0..<threads).map { _ in FloatBuffer(count: t * widest, zeroed: false) }
        tiles = (0..<threads).map { _ in FloatBuffer(count: matmulScratchCount(cols: max(widest, width)), zeroed: false) }
        probabilities = FloatBuffer(count: max(1, adapter.numExperts))
        if case .fixed(let gates) = adapter.routing {
            for row in 0..<t {
                for j in 0..<k {
                    token.experts[row * k + j] = Int32(j)
                    token.gates[row * k + j] = gates[j]
                }
            }
        }
    }

    /// The decisions that apply to `projection` of `layer` in the last pass.
    public func decisions(layer: Int, projection: LayerTensor) -> Decisions {
        perProjection[layer * LayerTensor.projections.count + projection.projectionIndex!] ?? token
    }

    // MARK: ProjectionAdapters

    public func begin(rows t: Int, pool: ThreadPool) throws {
        guard t <= capacity, pool.threadCount <= gathered.count else {
            throw AdapterError.strategy(detail: "\(adapter.name): a pass of \(t) rows on \(pool.threadCount) threads exceeds the reference adapters' \(capacity) rows on \(gathered.count) threads")
        }
    }

    public func adapts(layer: Int, projection: LayerTensor) -> Bool { adapter.projection(layer: layer, projection) != nil }

    public func didNormalize(layer: Int, normalized: UnsafePointer<Float>, rows t: Int, pool: ThreadPool) {
        switch adapter.routing {
        case .fixed:
            if layer == 0 { token.group(rows: t, k: k, n: n) }
        case .token:
            guard layer == adapter.routerLayer else { return }
            guard let router = adapter.tokenRouter else { return }
            route(router, input: normalized, rows: t, into: token, pool: pool)
            if let observer {
                for row in 0..<t {
                    observer(row, (0..<k).map { Int(token.experts[row * k + $0]) }, (0..<k).map { token.gates[row * k + $0] })
                }
            }
        case .layer:
            break
        }
    }

    public func apply(layer: Int, projection tensor: LayerTensor, input x: UnsafePointer<Float>, rows t: Int,
                      output y: UnsafeMutablePointer<Float>, ldy: Int, pool: ThreadPool) {
        guard let p = adapter.projection(layer: layer, tensor) else { return }
        let site = layer * LayerTensor.projections.count + tensor.projectionIndex!
        let decisions = perProjection[site] ?? token
        if let router = p.router {
            route(router, input: x, rows: t, into: decisions, pool: pool)
            if let layerObserver {
                for row in 0..<t {
                    layerObserver(layer, tensor, row, (0..<self.k).map { Int(decisions.experts[row * self.k + $0]) },
                                  (0..<self.k).map { decisions.gates[row * self.k + $0] })
                }
            }
        }
        let h = (hidden[site] ?? transient).pointer, hs = scaled.pointer, width = width, k = k
        let inputs = p.experts.compactMap { $0 }.first?.a.cols ?? 0
        let outs = p.experts.compactMap { $0 }.first?.b.rows ?? 0
        let entries = decisions.offsets[n]
        // H_e = X_e A_eᵀ and g·s ∘ H_e for every expert's rows: the grouped list split between threads at expert
        // boundaries' runs.
        pool.run { thread in
            let mine = ThreadPool.chunk(entries, part: thread, of: pool.threadCount)
            guard !mine.isEmpty else { return }
            let x_e = gathered[thread].pointer
            for (e, pair) in p.experts.enumerated() {
                guard let pair else { continue }
                let run = (decisions.offsets[e]..<decisions.offsets[e + 1]).clamped(to: mine)
                guard !run.isEmpty else { continue }
                var input = UnsafePointer(x_e)
                if let first = decisions.consecutiveRows(run) {
                    input = x + first * inputs
                } else {
                    for (i, entry) in run.enumerated() {
                        (x_e + i * inputs).update(from: x + Int(decisions.rows[entry]) * inputs, count: inputs)
                    }
                }
                matmul(pair.a, input, tokens: run.count, h + run.lowerBound * width, ldy: width, rows: 0..<pair.rank,
                       scratch: tiles[thread].pointer)
                for entry in run {
                    let row = Int(decisions.rows[entry]), j = Int(decisions.slots[entry])
                    let g = decisions.gates[row * k + j] * pair.scale
                    for q in 0..<pair.rank { hs[entry * width + q] = g * h[entry * width + q] }
                }
            }
        }
        // Y[rows, o] += (g·s ∘ H_e) B_e[o]ᵀ for this thread's outputs o, expert by expert.
        pool.run { thread in
            let columns = ThreadPool.chunk(outs, part: thread, of: pool.threadCount, granularity: 16)
            guard !columns.isEmpty else { return }
            let out = outputs[thread].pointer
            for (e, pair) in p.experts.enumerated() {
                guard let pair else { continue }
                let run = decisions.offsets[e]..<decisions.offsets[e + 1]
                guard !run.isEmpty else { continue }
                var scaledRows = UnsafePointer(hs + run.lowerBound * width)
                if pair.rank < width {
                    // matmul reads rank-wide rows: pack them.
                    for (i, entry) in run.enumerated() {
                        for q in 0..<pair.rank { gathered[thread].pointer[i * pair.rank + q] = hs[entry * width + q] }
                    }
                    scaledRows = UnsafePointer(gathered[thread].pointer)
                }
                if let first = decisions.consecutiveRows(run) {
                    matmul(pair.b, scaledRows, tokens: run.count, y + first * ldy, ldy: ldy, rows: columns,
                           accumulate: true, scratch: tiles[thread].pointer)
                    continue
                }
                matmul(pair.b, scaledRows, tokens: run.count, out, ldy: outs, rows: columns, scratch: tiles[thread].pointer)
                for (i, entry) in run.enumerated() {
                    let row = Int(decisions.rows[entry])
                    addInPlace(y + row * ldy + columns.lowerBound, out + i * outs + columns.lowerBound, count: columns.count)
                }
            }
        }
    }

    /// Router logits [T, N] = X Rᵀ, then each row's top-k and renormalized gates, grouped by expert.
    private func route(_ router: WeightMatrix, input x: UnsafePointer<Float>, rows t: Int, into d: Decisions, pool: ThreadPool) {
        let logits = d.logits!.pointer, n = n
        pool.run { thread in
            matmul(router, x, tokens: t, logits, ldy: n, rows: ThreadPool.chunk(n, part: thread, of: pool.threadCount),
                   scratch: tiles[thread].pointer)
        }
        for row in 0..<t {
            selectExperts(logits: logits + row * n, count: n, topK: k, probabilities: probabilities.pointer,
                          experts: d.experts + row * k, gates: d.gates + row * k)
        }
        d.group(rows: t, k: k, n: n)
    }
}
