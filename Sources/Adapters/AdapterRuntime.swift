import Kernels
import Model
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// An adapter running inside one `InferenceSession`'s decoding regions: routing decisions for the tokens in flight,
/// and the adapters' share of every projection fused into the projection's own parallel region.
///
/// Fused, one token: the input side u_j = g_j·s_j·A_j x of the token's active experts starts in the region that
/// produces x — each thread multiplies its share of x by the matching rows of Aᵀ (`foldInput`). Where no region
/// produces the input by rows (o's input, the attention output; the first layer's q, k and v), the projection's own
/// region starts it. In the projection's region each thread sums every thread's shares itself (`decodingTerms`;
/// for a share made in the same region, once all are made), then adds B_j u_j to its output rows right after
/// computing them, from B in tiles of 16 rows (Kernels/LowRank.swift). Both read the adapter's `DecodingLayout`,
/// where what one thread reads for one expert runs through the token in one stretch. Token and fixed routing keep
/// one selection for the whole token, so every (B_j, u_j) the token's projections add is listed once per token
/// (once for good under fixed routing) and nothing runs between the regions.
/// Layer routing, whose experts are known only once each router has seen the whole input, routes and computes the
/// input side in `prepare`, with a parallel step of its own. Several tokens (prefill, a batch's rows) are grouped by
/// expert in `prepare`, which runs each expert's tokens through A once (SGMV's shrink, `TokenGroups`); each thread
/// then adds their u B_eᵀ to its output rows (the expand).
///
/// The reference strategy runs the same adapter through `ReferenceAdapters` and the reference forward instead.
public final class AdapterRuntime: ForwardAdapters {
    public let adapter: Adapter
    /// Called on the calling thread with each token's decision (position in the chunk, experts, gates), for
    /// token routing — `--show-routing`.
    public var observer: ((Int, [Int], [Float]) -> Void)?
    /// Called on the calling thread with each layer-routing decision (layer, projection, position in the chunk,
    /// experts, gates), for the tests that compare them with the reference's.
    var layerObserver: ((Int, LayerTensor, Int, [Int], [Float]) -> Void)?

    let k: Int
    let n: Int
    let hidden: Int
    let threads: Int
    /// The model and chunk size it was made for.
    let model: LanguageModel
    let chunk: Int
    /// u's stride: the largest rank.
    let width: Int
    /// Decisions for the chunk in flight: [T, k] experts and gates (token and fixed routing).
    let chunkExperts: UnsafeMutablePointer<Int32>
    let chunkGates: UnsafeMutablePointer<Float>
    var scratch: [Scratch]
    /// Per projection (index in `LayerTensor.projections`).
    let slots: UnsafeMutablePointer<Slot>
    /// `prepare`'s parallel work under layer routing: (projection slot, j) pairs whose A rows are split between
    /// threads.
    var work: [(slot: Int, j: Int, pair: LowRankPair, gate: Float)] = []
    var workRows = 0
    var workInput: UnsafePointer<Float>?
    lazy var inputRegion = ParallelJob { [unowned self] thread in self.computeInputSide(thread: thread) }
    /// Several tokens: the entries grouped by expert and their input sides, staged in `prepare` and computed in the
    /// session's region (`runStaged`).
    let groups: TokenGroups
    /// `foldInput`'s x ∘ norm, each thread writing its own inputs.
    let folded: UnsafeMutablePointer<Float>
    let eps: Float
    /// Every (layer, projection, expert)'s pair, [layers · 7 · N], and whether (layer, projection) is adapted,
    /// [layers · 7]: the hot path's lookups, with no reference counting (`Adapter.projection` copies arrays).
    let pairs: UnsafeMutablePointer<LowRankPair?>
    let adapted: UnsafeMutablePointer<Bool>
    let layers: Int
    /// The factors in each thread's reading order, for fused decoding, and its tables as the regions read them.
    let layout: DecodingLayout
    let layoutTiles: UnsafeMutablePointer<LowRankTiles?>
    let layoutFolds: UnsafeMutablePointer<WeightMatrix?>
    /// Whether the regions before a projection start its input side (`foldInput`): fused under token or fixed
    /// routing, whose selection holds for the whole token (not under layer routing, whose experts are known only
    /// once the router has seen the whole input).
    let folds: Bool
    let layerRouting: Bool
    /// Shares of the input sides started in their projection's own region made so far in this token (every thread
    /// adds one per projection), and per thread (a cache line each) the count at which the ones it started are all
    /// made.
    let regionShares = Atomic<Int>(0)
    let sharesAwaited: UnsafeMutablePointer<Int>
    /// One token under token or fixed routing, [layers · 7 · threads, k]: the (B_j, u_j) each thread's part of each
    /// projection adds, and how many, [layers · 7 · threads]; and g_j·s_j per (layer, projection), [layers · 7, k],
    /// 0 where expert j has no pair.
    let tokenTerms: UnsafeMutablePointer<LowRankTerm>
    let tokenTermCounts: UnsafeMutablePointer<Int>
    let tokenGates: UnsafeMutablePointer<Float>

    /// A projection's state, in raw memory: the regions call `foldInput` and `decodingTerms` on both threads at
    /// once, and reference counting on shared objects there costs contended atomics (~1.5 points of the 4-bit
    /// model's decode time).
    struct Slot {
        /// Layer routing's decisions [T, k].
        let experts: UnsafeMutablePointer<Int32>
        let gates: UnsafeMutablePointer<Float>
        /// Layer routing, one token: the scaled input-side products u_j = g_j·s·A_j x [k, maxRank] that `prepare`
        /// computed, the (B_j, u_j) the projection's matrix-vector product adds on each thread, [threads, k], and how
        /// many each thread has.
        let u: UnsafeMutablePointer<Float>
        let terms: UnsafeMutablePointer<LowRankTerm>
        let termCounts: UnsafeMutablePointer<Int>
        /// Token and fixed routing, one token: each thread's own sum of the input side [threads, k, maxRank];
        /// `foldInput`'s per-thread partial products [threads, k, maxRank] and partial Σx² (one per thread, a cache
        /// line apart), and whether the input was normalized.
        let threadU: UnsafeMutablePointer<Float>
        let partials: UnsafeMutablePointer<Float>
        let squares: UnsafeMutablePointer<Float>
        var foldedNorm = false

        init(chunk: Int, k: Int, width: Int, threads: Int) {
            experts = zeroed(chunk * k)
            gates = zeroed(chunk * k)
            u = zeroed(k * width)
            threadU = zeroed(threads * k * width)
            terms = .allocate(capacity: threads * k)
            termCounts = zeroed(threads)
            partials = zeroed(threads * k * width)
            squares = zeroed(threads * 16) // a cache line per thread
        }

        func deallocate() {
            experts.deallocate()
            gates.deallocate()
            u.deallocate()
            threadU.deallocate()
            partials.deallocate()
            squares.deallocate()
            terms.deallocate()
            termCounts.deallocate()
        }
    }

    /// Per-thread buffers, sized for `chunk` tokens.
    final class Scratch {
        let logits: FloatBuffer     // [T, N] router outputs
        let probabilities: FloatBuffer // [N]
        let gathered: FloatBuffer   // [T, maxIn] the tokens of one expert
        let tile: FloatBuffer       // matmul's scratch

        init(chunk: Int, k: Int, n: Int, maxRank: Int, maxIn: Int) {
            logits = FloatBuffer(count: chunk * n)
            probabilities = FloatBuffer(count: n)
            gathered = FloatBuffer(count: chunk * maxIn, zeroed: false)
            tile = FloatBuffer(count: matmulScratchCount(cols: max(maxIn, maxRank)), zeroed: false)
        }
    }

    /// For `session`: its model (which the adapter must fit), thread count and prefill chunks.
    public init(adapter: Adapter, session: InferenceSession) throws {
        try adapter.check(fits: session.model)
        let c = session.model.configuration, threads = session.pool.threadCount, chunk = session.chunkSize
        self.adapter = adapter
        model = session.model
        self.chunk = chunk
        k = adapter.routing.topK
        n = adapter.numExperts
        hidden = c.hiddenSize
        self.threads = threads
        width = max(1, adapter.maxRank)
        chunkExperts = zeroed(chunk * k)
        chunkGates = zeroed(chunk * k)
        let widest = max(c.hiddenSize, c.intermediateSize, c.queryDimension)
        scratch = (0..<threads).map { _ in
            Scratch(chunk: chunk, k: max(1, adapter.routing.topK), n: max(1, adapter.numExperts), maxRank: adapter.maxRank,
                    maxIn: widest)
        }
        slots = .allocate(capacity: LayerTensor.projections.count)
        for i in LayerTensor.projections.indices {
            (slots + i).initialize(to: Slot(chunk: chunk, k: max(1, adapter.routing.topK), width: width, threads: threads))
        }
        folded = zeroed(widest)
        eps = c.rmsNormEps
        layers = c.numHiddenLayers
        let kinds = LayerTensor.projections.count, experts = max(1, adapter.numExperts)
        pairs = .allocate(capacity: layers * kinds * experts)
        pairs.initialize(repeating: nil, count: layers * kinds * experts)
        adapted = .allocate(capacity: layers * kinds)
        adapted.initialize(repeating: false, count: layers * kinds)
        for l in 0..<layers {
            for (i, tensor) in LayerTensor.projections.enumerated() {
                guard let p = adapter.projection(layer: l, tensor) else { continue }
                adapted[l * kinds + i] = true
                for (e, pair) in p.experts.enumerated() where e < experts { pairs[(l * kinds + i) * experts + e] = pair }
            }
        }
        work.reserveCapacity(3 * max(1, k))
        groups = TokenGroups(tokens: chunk, k: max(1, adapter.routing.topK), experts: adapter.numExperts, width: width)
        layout = adapter.decodingLayout(DecodingPartition(c, threads: threads))
        layoutTiles = layout.tiles
        layoutFolds = layout.folds
        if case .layer = adapter.routing { layerRouting = true } else { layerRouting = false }
        folds = !layerRouting
        sharesAwaited = zeroed(threads * 8)
        tokenTerms = .allocate(capacity: layers * kinds * threads * max(1, k))
        tokenTermCounts = zeroed(layers * kinds * threads)
        tokenGates = zeroed(layers * kinds * max(1, k))
        if case .fixed(let gates) = adapter.routing {
            for t in 0..<chunk {
                for j in 0..<k {
                    chunkExperts[t * k + j] = Int32(j)
                    chunkGates[t * k + j] = gates[j]
                }
            }
            if folds { listTokenTerms() } // the same for every token
        }
    }

    deinit {
        pairs.deallocate()
        adapted.deallocate()
        for i in LayerTensor.projections.indices { slots[i].deallocate() }
        slots.deallocate()
        chunkExperts.deallocate()
        chunkGates.deallocate()
        folded.deallocate()
        sharesAwaited.deallocate()
        tokenTerms.deallocate()
        tokenTermCounts.deallocate()
        tokenGates.deallocate()
    }

    /// Token and fixed routing: the (B_j, u_j) and g_j·s_j of every projection of the token, from its selection
    /// (the chunk's first decision). Each u_j is the thread's own, summed in `decodingTerms`.
    private func listTokenTerms() {
        for layer in 0..<layers {
            for index in LayerTensor.projections.indices where adapted[site(layer, index)] {
                let slot = slots[index]
                for j in 0..<k {
                    tokenGates[site(layer, index) * k + j] = pair(layer, index, chunkExperts[j]).map { chunkGates[j] * $0.scale } ?? 0
                }
                for thread in 0..<threads {
                    let list = site(layer, index) * threads + thread
                    var count = 0
                    for j in 0..<k {
                        guard let tiles = layoutTiles[layoutSlot(layer, index, chunkExperts[j], thread)] else { continue }
                        (tokenTerms + list * k + count).initialize(to: LowRankTerm(b: tiles, u: slot.threadU + (thread * k + j) * width))
                        count += 1
                    }
                    tokenTermCounts[list] = count
                }
            }
        }
    }

    /// Index of projection slot `index` of `layer` in the [layers · 7] tables (and the first index of its run in the
    /// per-expert, per-thread and per-j ones).
    @inline(__always)
    private func site(_ layer: Int, _ index: Int) -> Int { layer * LayerTensor.projections.count + index }

    /// Index in the layout's tables of thread `thread`'s piece for expert `e` of projection slot `index` of `layer`.
    @inline(__always)
    private func layoutSlot(_ layer: Int, _ index: Int, _ e: Int32, _ thread: Int) -> Int {
        DecodingLayout.slot(layer: layer, projection: index, expert: Int(e), thread: thread, experts: max(1, n), threads: threads)
    }

    /// Expert `e`'s pair for projection slot `index` of `layer` (nil: not adapted by it).
    @inline(__always)
    private func pair(_ layer: Int, _ index: Int, _ e: Int32) -> LowRankPair? {
        pairs[site(layer, index) * max(1, n) + Int(e)]
    }

    // MARK: ForwardAdapters

    public var decisionLayer: Int { adapter.routerLayer }

    public func check(fits session: InferenceSession) throws {
        guard session.model === model, session.pool.threadCount == threads, session.chunkSize <= chunk else {
            throw AdapterError.strategy(detail: "\(adapter.name): its fused runtime was made for another session (model, \(threads) threads, chunks of \(chunk))")
        }
    }

    public func weights(layer: Int, tokens: Int) -> LayerWeights? { nil }

    public func adapts(layer: Int, projection: LayerTensor) -> Bool {
        guard layer < layers, let index = projection.projectionIndex else { return false }
        return adapted[site(layer, index)]
    }

    public func didNormalize(layer: Int, normalized: UnsafePointer<Float>, tokens: Int, pool: ThreadPool) {
        if layer == 0, folds, tokens == 1 {
            // A new token: no input side started in a region yet.
            regionShares.store(0, ordering: .relaxed)
            for thread in 0..<threads { sharesAwaited[8 * thread] = 0 }
        }
        guard case .token = adapter.routing, layer == adapter.routerLayer, let router = adapter.tokenRouter else { return }
        route(router, input: normalized, tokens: tokens, cols: hidden, experts: chunkExperts, gates: chunkGates,
              scratch: scratch[0])
        if let observer {
            for t in 0..<tokens {
                observer(t, (0..<k).map { Int(chunkExperts[t * k + $0]) }, (0..<k).map { chunkGates[t * k + $0] })
            }
        }
        if folds, tokens == 1 { listTokenTerms() }
    }

    /// Layer routing: each adapted projection's router on the region's input, and when decoding one token the input
    /// sides of its experts (a parallel step) and the (B_j, u_j) each thread adds. Otherwise, any routing: the
    /// entries grouped by expert, their input sides staged (`runStaged`).
    public func prepare(layer: Int, projections: [LayerTensor], input x: UnsafePointer<Float>, tokens t: Int,
                        decoding: Bool, pool: ThreadPool) {
        groups.work.removeAll(keepingCapacity: true)
        defer { if !decoding { groupInputSides(layer: layer, projections: projections, input: x, tokens: t) } }
        guard layerRouting else { return }
        work.removeAll(keepingCapacity: true)
        workRows = 0
        for tensor in projections {
            guard adapts(layer: layer, projection: tensor), let index = tensor.projectionIndex else { continue }
            let slot = slots[index]
            if let router = adapter.projection(layer: layer, tensor)?.router {
                route(router, input: x, tokens: t, cols: router.cols, experts: slot.experts, gates: slot.gates, scratch: scratch[0])
                report(layer, tensor, tokens: t, experts: slot.experts, gates: slot.gates)
            }
            guard decoding else { continue }
            for thread in 0..<threads { slot.termCounts[thread] = 0 }
            for j in 0..<k {
                guard let pair = pair(layer, index, slot.experts[j]) else { continue }
                let u = slot.u + j * width
                work.append((index, j, pair, slot.gates[j] * pair.scale))
                workRows += pair.rank
                for thread in 0..<threads {
                    guard let tiles = layoutTiles[layoutSlot(layer, index, slot.experts[j], thread)] else { continue }
                    (slot.terms + thread * k + slot.termCounts[thread]).initialize(to: LowRankTerm(b: tiles, u: u))
                    slot.termCounts[thread] += 1
                }
            }
        }
        guard workRows > 0 else { return }
        workInput = x
        pool.run(inputRegion)
    }

    /// Several tokens: groups each adapted projection's entries by expert; each (projection, expert) pair with
    /// tokens is one staged item.
    private func groupInputSides(layer: Int, projections: [LayerTensor], input x: UnsafePointer<Float>, tokens t: Int) {
        for tensor in projections {
            guard adapts(layer: layer, projection: tensor), let index = tensor.projectionIndex else { continue }
            let (experts, gates) = decisions(index)
            groups.group(slot: index, experts: experts, gates: gates, tokens: t, k: k)
            for e in 0..<max(1, n) where !groups.entries(slot: index, expert: e).isEmpty && pair(layer, index, Int32(e)) != nil {
                groups.work.append((index, e))
            }
        }
        groups.layer = layer
        groups.input = x
    }

    public var stagedItems: Int { groups.work.count }

    /// Several tokens, staged item `item` on thread `thread`: a (projection, expert) pair — the expert's tokens
    /// gathered, u = X_e A_eᵀ, each row scaled by its gate and the pair's scale.
    public func runStaged(item: Int, thread: Int) {
        guard let x = groups.input else { return }
        let s = scratch[thread], gathered = s.gathered.pointer
        let (index, e) = groups.work[item]
        let pair = pair(groups.layer, index, Int32(e))!
        let entries = groups.entries(slot: index, expert: e), cols = pair.a.cols
        let tokens = groups.tokens + index * groups.capacity, gates = groups.gates + index * groups.capacity
        for (i, entry) in entries.enumerated() {
            (gathered + i * cols).update(from: x + Int(tokens[entry]) * cols, count: cols)
        }
        let u = groups.u(slot: index, from: entries.lowerBound)
        matmul(pair.a, gathered, tokens: entries.count, u, ldy: pair.rank, rows: 0..<pair.rank, scratch: s.tile.pointer)
        for (i, entry) in entries.enumerated() {
            let g = gates[entry] * pair.scale
            for r in 0..<pair.rank { u[i * pair.rank + r] *= g }
        }
    }

    /// One token, on thread `thread`: its share of the rows of every A in `work`, scaled by gate and scale.
    private func computeInputSide(thread: Int) {
        let mine = ThreadPool.chunk(workRows, part: thread, of: threads)
        guard !mine.isEmpty, let x = workInput else { return }
        var start = 0
        for item in work {
            let rows = (start..<(start + item.pair.rank)).clamped(to: mine)
            if !rows.isEmpty {
                let local = (rows.lowerBound - start)..<(rows.upperBound - start)
                let u = slots[item.slot].u + item.j * width
                matvec(item.pair.a, x, u, rows: local, scratch: scratch[thread].tile.pointer)
                for q in local { u[q] *= item.gate }
            }
            start += item.pair.rank
        }
    }

    public func foldInput(layer: Int, projections: [LayerTensor], source: UnsafePointer<Float>, norm: UnsafePointer<Float>?,
                          inputs: Range<Int>, thread: Int) {
        guard folds else { return }
        var x = source
        var squares: Float = 0
        if let norm {
            let i = inputs.lowerBound
            squares = weightedSquares(source + i, weight: norm + i, count: inputs.count, into: folded + i)
            x = UnsafePointer(folded)
        }
        for tensor in projections {
            guard adapts(layer: layer, projection: tensor), let index = tensor.projectionIndex else { continue }
            let slot = slots[index]
            slot.squares[16 * thread] = squares
            for j in 0..<k {
                let partial = slot.partials + (thread * k + j) * width
                if let at = layoutFolds[layoutSlot(layer, index, chunkExperts[j], thread)] {
                    partialLowRankInput(at, x + inputs.lowerBound, inputs: 0..<inputs.count, into: partial)
                } else {
                    partial.update(repeating: 0, count: width) // no inputs here, or no pair
                }
            }
            if DecodingPartition.startsInOwnRegion(tensor, layer: layer, decisionLayer: adapter.routerLayer) {
                sharesAwaited[8 * thread] += threads
                regionShares.add(1, ordering: .releasing)
            } else if thread == 0 {
                slots[index].foldedNorm = norm != nil
            }
        }
    }

    public func decodingTerms(layer: Int, projection tensor: LayerTensor, thread: Int) -> UnsafeBufferPointer<LowRankTerm> {
        let index = tensor.projectionIndex!
        let slot = (slots + index).pointee
        guard folds else { return UnsafeBufferPointer(start: slot.terms + thread * k, count: slot.termCounts[thread]) }
        var rms: Float = 1
        if DecodingPartition.startsInOwnRegion(tensor, layer: layer, decisionLayer: adapter.routerLayer) {
            // Every thread's share, made at this region's start (the wait is for the slowest).
            var spins = 0
            while regionShares.load(ordering: .acquiring) < sharesAwaited[8 * thread] {
                spins += 1
                if spins > 20_000 { sched_yield() }
            }
        } else if slot.foldedNorm {
            // Made by the region before from x ∘ norm: divide by rms(x).
            var squares: Float = 0
            for other in 0..<threads { squares += slot.squares[16 * other] }
            rms = (squares / Float(hidden) + eps).squareRoot()
        }
        let gates = tokenGates + site(layer, index) * k
        for j in 0..<k where gates[j] != 0 {
            let g = gates[j] / rms, u = slot.threadU + (thread * k + j) * width
            for q in 0..<width {
                var sum: Float = 0
                for other in 0..<threads { sum += slot.partials[(other * k + j) * width + q] }
                u[q] = g * sum
            }
        }
        let list = site(layer, index) * threads + thread
        return UnsafeBufferPointer(start: tokenTerms + list * k, count: tokenTermCounts[list])
    }

    public func adjust(layer: Int, projection tensor: LayerTensor, input x: UnsafePointer<Float>, tokens t: Int,
                       output y: UnsafeMutablePointer<Float>, ldy: Int, rows: Range<Int>, thread: Int) {
        guard let index = tensor.projectionIndex, !rows.isEmpty, adapts(layer: layer, projection: tensor) else { return }
        // y[token, rows] += B_e u per entry, from the input sides `prepare` staged: each thread's rows of B_e are the
        // decoding layout's tiles of 16 rows (addLowRankTerms: u broadcast, no horizontal sums — a product over
        // B_e's rank-long rows costs a horizontal sum per output and row of x).
        let tokens = groups.tokens + index * groups.capacity
        for e in 0..<max(1, n) {
            let entries = groups.entries(slot: index, expert: e)
            guard !entries.isEmpty, let pair = pair(layer, index, Int32(e)),
                  let tiles = layoutTiles[layoutSlot(layer, index, Int32(e), thread)] else { continue }
            let u = groups.u(slot: index, from: entries.lowerBound)
            for (i, entry) in entries.enumerated() {
                var term = LowRankTerm(b: tiles, u: u + i * pair.rank)
                withUnsafePointer(to: &term) {
                    addLowRankTerms(UnsafeBufferPointer(start: $0, count: 1), y + Int(tokens[entry]) * ldy, rows: rows)
                }
            }
        }
    }

    // MARK: Routing

    /// Each token's experts and gates for a projection slot: the chunk's decisions (token and fixed routing), or
    /// the ones `prepare` made with the projection's own router (layer routing).
    private func decisions(_ slot: Int) -> (UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Float>) {
        guard layerRouting else { return (chunkExperts, chunkGates) }
        return (slots[slot].experts, slots[slot].gates)
    }

    /// Router decisions for `tokens` inputs [T, cols].
    private func route(_ router: WeightMatrix, input x: UnsafePointer<Float>, tokens t: Int, cols: Int,
                       experts: UnsafeMutablePointer<Int32>, gates: UnsafeMutablePointer<Float>, scratch s: Scratch) {
        let logits = s.logits.pointer
        matmul(router, x, tokens: t, logits, ldy: n, rows: 0..<n, scratch: s.tile.pointer)
        for token in 0..<t {
            selectExperts(logits: logits + token * n, count: n, topK: k, probabilities: s.probabilities.pointer,
                          experts: experts + token * k, gates: gates + token * k)
        }
    }

    /// Layer routing's decisions for one projection, to `layerObserver`.
    private func report(_ layer: Int, _ tensor: LayerTensor, tokens t: Int, experts: UnsafePointer<Int32>, gates: UnsafePointer<Float>) {
        guard let layerObserver else { return }
        for token in 0..<t {
            layerObserver(layer, tensor, token, (0..<k).map { Int(experts[token * k + $0]) }, (0..<k).map { gates[token * k + $0] })
        }
    }
}

/// `count` zeros on a 64-byte boundary: buffers that threads write side by side (each thread's partial products and
/// sums) then share no cache line across the boundary between threads.
private func zeroed<T: Numeric>(_ count: Int) -> UnsafeMutablePointer<T> {
    UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * MemoryLayout<T>.stride, alignment: 64)
        .initializeMemory(as: T.self, repeating: 0, count: max(1, count))
}
