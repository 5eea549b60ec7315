import Kernels

// The parallel regions of a layer and the one function every projection goes through.

extension InferenceSession {
    /// What the parallel regions work on, set on the calling thread before each region runs.
    struct Pass {
        var layer = 0
        var tokens = 0
        /// This layer's weights (the model's, or a merging strategy's copies), kept alive for `view`.
        var weights: LayerWeights?
        /// The same as the regions read them.
        var view: LayerView?
        var headRows = 0
        /// The adapters' `decisionLayer`.
        var decisionLayer = 0
        var logits: UnsafeMutablePointer<Float>?
        /// The adapters of every row when the pass has one group (else nil), as the regions call them: without
        /// reference counting, which on the shared object costs contended atomics on both threads.
        unowned(unsafe) var adapters: ForwardAdapters?
        /// Groups of rows in `groups`.
        var groupCount = 0
        /// Every row is the one token of its sequence in this pass (batched decoding): the products give each row
        /// what `matvec` gives it alone (`batchedMatvec`), whatever the weight type.
        var decodingRows = false
        /// The items every group's adapters staged for the next `stagedInputs` region.
        var stagedItems = 0
    }

    /// A run of a pass's rows that share adapters (nil: the bare model). The session's adapters, or a `step`'s
    /// rows, keep the adapters alive while the pass runs.
    struct AdapterGroup {
        unowned(unsafe) var adapters: ForwardAdapters?
        var rows: Range<Int>
    }

    /// A linear layer as the regions read it: no references.
    struct LinearView {
        let weight: WeightMatrix
        let bias: UnsafePointer<Float>?

        init(_ linear: Linear) {
            weight = linear.weight
            bias = linear.bias.map { UnsafePointer($0.pointer) }
        }
    }

    /// A layer's weights as the regions read them: views and pointers, no references. (Copying `LayerWeights`,
    /// which holds class references, in every region on both threads costs contended reference counting.)
    struct LayerView {
        let q, k, v, o, gate, up, down: LinearView
        let mlpNorm: UnsafePointer<Float>
        /// The next layer's attention norm (nil after the last layer): the adapters start on its q, k and v.
        let nextAttentionNorm: UnsafePointer<Float>?
    }

    /// The bodies of the parallel regions, made once so that running one allocates nothing.
    struct Regions {
        let qkv, attendDecoding, attendPrefill, output, gateUp, down, head, stagedInputs: ParallelJob
    }

    static func makeRegions(_ session: InferenceSession) -> Regions {
        unowned(unsafe) let s = session
        return Regions(qkv: ParallelJob { s.qkv(thread: $0) }, attendDecoding: ParallelJob { s.attendDecoding(thread: $0) },
                       attendPrefill: ParallelJob { s.attendPrefill(thread: $0) }, output: ParallelJob { s.output(thread: $0) },
                       gateUp: ParallelJob { s.gateUp(thread: $0) }, down: ParallelJob { s.down(thread: $0) },
                       head: ParallelJob { s.head(thread: $0) }, stagedInputs: ParallelJob { s.stagedInputs(thread: $0) })
    }

    /// One transformer block: the serial steps here, the parallel work in `regions`.
    func layer(_ l: Int) {
        let d = c.hiddenSize, qd = c.queryDimension, kd = c.keyValueDimension, half = c.headDim / 2
        let t = pass.tokens, xp = x.pointer, xnp = xn.pointer, qp = q.pointer, kp = k.pointer
        let adapters = pass.groupCount == 1 ? groups[0].adapters : nil
        let w = adapters?.weights(layer: l, tokens: t) ?? model.weights.layers[l]
        pass.layer = l
        pass.weights = w
        pass.view = LayerView(q: LinearView(w.q), k: LinearView(w.k), v: LinearView(w.v), o: LinearView(w.o),
                              gate: LinearView(w.gate), up: LinearView(w.up), down: LinearView(w.down),
                              mlpNorm: w.mlpNorm.pointer,
                              nextAttentionNorm: l + 1 < c.numHiddenLayers ? model.weights.layers[l + 1].attentionNorm.pointer : nil)
        pass.adapters = adapters
        pass.decisionLayer = adapters?.decisionLayer ?? 0

        // Attention block: x += o(attention(rope(q(n(x))), rope(k(n(x))), v(n(x)))).
        for i in 0..<t { rmsNorm(xp + i * d, weight: w.attentionNorm.pointer, eps: c.rmsNormEps, count: d, into: xnp + i * d) }
        for g in 0..<pass.groupCount {
            guard let adapters = groups[g].adapters else { continue }
            let rows = groups[g].rows
            adapters.didNormalize(layer: l, normalized: xnp + rows.lowerBound * d, tokens: rows.count, pool: pool)
        }
        prepareAdapters(Self.qkvRegion.projections, input: xnp, width: d)
        pool.run(regions.qkv)
        for i in 0..<t {
            model.weights.rope.rotate(qp + i * qd, heads: c.numAttentionHeads, cos: cosines.pointer + i * half, sin: sines.pointer + i * half)
            model.weights.rope.rotate(kp + i * kd, heads: c.numKeyValueHeads, cos: cosines.pointer + i * half, sin: sines.pointer + i * half)
            rowCaches[i].store(layer: l, position: rowPositions[i], keys: kp + i * kd, values: v.pointer + i * kd)
        }
        if t == 1 {
            pool.run(regions.attendDecoding)
            mergeDecodingAttention()
        } else {
            pool.run(regions.attendPrefill)
        }
        prepareAdapters(Self.outputRegion.projections, input: attention.pointer, width: qd)
        pool.run(regions.output)

        // MLP block: x += down(silu(gate(n(x))) · up(n(x))).
        for i in 0..<t { rmsNorm(xp + i * d, weight: w.mlpNorm.pointer, eps: c.rmsNormEps, count: d, into: xnp + i * d) }
        prepareAdapters(Self.gateUpRegion.projections, input: xnp, width: d)
        pool.run(regions.gateUp)
        prepareAdapters(Self.downRegion.projections, input: gate.pointer, width: c.intermediateSize)
        pool.run(regions.down)
    }

    static let qkvRegion = DecodingPartition.regions[0]
    static let outputRegion = DecodingPartition.regions[1]
    static let gateUpRegion = DecodingPartition.regions[2]
    static let downRegion = DecodingPartition.regions[3]

    /// The adapters' work on a region's input [T, width], before the region: each group's on its rows. Several rows:
    /// every group's staged input-side products in one region (`stagedInputs`).
    @inline(__always)
    private func prepareAdapters(_ projections: [LayerTensor], input: UnsafePointer<Float>, width: Int) {
        let decoding = pass.tokens == 1
        var staged = 0
        for g in 0..<pass.groupCount {
            guard let adapters = groups[g].adapters else { continue }
            let rows = groups[g].rows
            adapters.prepare(layer: pass.layer, projections: projections, input: input + rows.lowerBound * width,
                             tokens: rows.count, decoding: decoding, pool: pool)
            if !decoding { staged += adapters.stagedItems }
        }
        pass.stagedItems = staged
        if staged > 0 { pool.run(regions.stagedInputs) }
    }

    /// This thread's share of the staged items of every group, in group order.
    func stagedInputs(thread: Int) {
        let mine = ThreadPool.chunk(pass.stagedItems, part: thread, of: pool.threadCount)
        guard !mine.isEmpty else { return }
        var first = 0
        for g in 0..<pass.groupCount {
            guard let adapters = groups[g].adapters else { continue }
            let items = first..<(first + adapters.stagedItems)
            for item in items.clamped(to: mine) { adapters.runStaged(item: item - first, thread: thread) }
            first = items.upperBound
            if first >= mine.upperBound { return }
        }
    }

    @inline(__always) private func rows(_ count: Int, _ thread: Int) -> Range<Int> { partition.split(count, thread: thread) }

    /// This thread's rows (`partition`) of y[T, out] = x[T, in] · Wᵀ + b, plus what the adapters add. Every
    /// projection of the model goes through here.
    @inline(__always)
    private func project(_ tensor: LayerTensor, _ linear: LinearView, _ x: UnsafePointer<Float>,
                         _ y: UnsafeMutablePointer<Float>, thread: Int) {
        let rows = partition.rows(tensor, thread: thread)
        guard !rows.isEmpty else { return }
        let t = pass.tokens
        let out = linear.weight.rows
        if t == 1 {
            // One token: the adapters' output sides ride along in the matrix-vector pass.
            let adapters = pass.adapters
            let adapted = adapters?.adapts(layer: pass.layer, projection: tensor) == true
            let terms = adapted ? adapters!.decodingTerms(layer: pass.layer, projection: tensor, thread: thread) : .init(start: nil, count: 0)
            matvec(linear.weight, x, y, rows: rows, scratch: tiles[thread].pointer, adding: terms)
        } else if pass.decodingRows {
            batchedMatvec(linear.weight, x, tokens: t, y, ldy: out, rows: rows, scratch: tiles[thread].pointer)
        } else {
            matmul(linear.weight, x, tokens: t, y, ldy: out, rows: rows, scratch: tiles[thread].pointer)
        }
        if let bias = linear.bias {
            for i in 0..<t {
                addInPlace(y + i * out + rows.lowerBound, bias + rows.lowerBound, count: rows.count)
            }
        }
        guard t > 1 else { return }
        // Several rows: each group's adapters add their share to its rows.
        let inputs = linear.weight.cols
        for g in 0..<pass.groupCount {
            guard let adapters = groups[g].adapters, adapters.adapts(layer: pass.layer, projection: tensor) else { continue }
            let group = groups[g].rows
            adapters.adjust(layer: pass.layer, projection: tensor, input: x + group.lowerBound * inputs, tokens: group.count,
                            output: y + group.lowerBound * out, ldy: out, rows: rows, thread: thread)
        }
    }

    /// (First layer) the adapters' start on q, k and v's input; then q, k and v as one range of Q + 2K rows,
    /// split evenly.
    func qkv(thread: Int) {
        let w = pass.view!
        if DecodingPartition.startsInOwnRegion(.q, layer: pass.layer, decisionLayer: pass.decisionLayer) {
            foldAdapterInput(layer: pass.layer, Self.qkvRegion.starts, xn.pointer, norm: nil,
                             partition.foldedInputs(.q, thread: thread), thread: thread)
        }
        project(.q, w.q, xn.pointer, q.pointer, thread: thread)
        project(.k, w.k, xn.pointer, k.pointer, thread: thread)
        project(.v, w.v, xn.pointer, v.pointer, thread: thread)
    }

    /// The adapters' start on o's input, then the o projection and the residual add, by rows of D; then the
    /// adapters' start on gate and up's input.
    func output(thread: Int) {
        let w = pass.view!
        let range = partition.rows(.o, thread: thread)
        foldAdapterInput(layer: pass.layer, Self.outputRegion.starts, attention.pointer, norm: nil,
                         partition.foldedInputs(.o, thread: thread), thread: thread)
        project(.o, w.o, attention.pointer, delta.pointer, thread: thread)
        addRows(delta.pointer, into: x.pointer, columns: range)
        foldAdapterInput(layer: pass.layer, Self.outputRegion.folds, x.pointer, norm: w.mlpNorm, range, thread: thread)
    }

    /// gate and up for the same rows of F, then SiLU(gate)·up in place of gate and the adapters' start on down's
    /// input.
    func gateUp(thread: Int) {
        let w = pass.view!
        let range = partition.rows(.gate, thread: thread)
        project(.gate, w.gate, xn.pointer, gate.pointer, thread: thread)
        project(.up, w.up, xn.pointer, up.pointer, thread: thread)
        activate(range)
        foldAdapterInput(layer: pass.layer, Self.gateUpRegion.folds, gate.pointer, norm: nil, range, thread: thread)
    }

    /// down projection and the residual add, by rows of D; then the adapters' start on the next layer's q, k and v.
    func down(thread: Int) {
        let range = partition.rows(.down, thread: thread)
        let w = pass.view!
        project(.down, w.down, gate.pointer, delta.pointer, thread: thread)
        addRows(delta.pointer, into: x.pointer, columns: range)
        guard let norm = w.nextAttentionNorm,
              !DecodingPartition.startsInOwnRegion(.q, layer: pass.layer + 1, decisionLayer: pass.decisionLayer) else { return }
        foldAdapterInput(layer: pass.layer + 1, Self.downRegion.folds, x.pointer, norm: norm, range, thread: thread)
    }

    /// One token: hands this thread's final share of the next projections' input to them.
    @inline(__always)
    private func foldAdapterInput(layer: Int, _ projections: [LayerTensor], _ source: UnsafePointer<Float>,
                                  norm: UnsafePointer<Float>?, _ inputs: Range<Int>, thread: Int) {
        guard pass.tokens == 1, let adapters = pass.adapters else { return }
        adapters.foldInput(layer: layer, projections: projections, source: source, norm: norm, inputs: inputs, thread: thread)
    }

    private func activate(_ range: Range<Int>) {
        let f = c.intermediateSize
        for i in 0..<pass.tokens {
            let row = i * f + range.lowerBound
            siluMul(gate: gate.pointer + row, up: up.pointer + row, count: range.count, into: gate.pointer + row)
        }
    }

    /// x[i, columns] += delta[i, columns] for every token i.
    @inline(__always)
    private func addRows(_ delta: UnsafePointer<Float>, into x: UnsafeMutablePointer<Float>, columns: Range<Int>) {
        let width = c.hiddenSize
        for i in 0..<pass.tokens {
            addInPlace(x + i * width + columns.lowerBound, delta + i * width + columns.lowerBound, count: columns.count)
        }
    }

    /// The head for the normalized rows in xn (`pass.headRows` of them), by rows of V.
    func head(thread: Int) {
        if pass.decodingRows {
            batchedMatvec(model.weights.lmHead, xn.pointer, tokens: pass.headRows, pass.logits!, ldy: c.vocabSize,
                          rows: rows(c.vocabSize, thread), scratch: tiles[thread].pointer)
            return
        }
        matmul(model.weights.lmHead, xn.pointer, tokens: pass.headRows, pass.logits!, ldy: c.vocabSize,
               rows: rows(c.vocabSize, thread), scratch: tiles[thread].pointer)
    }
}
