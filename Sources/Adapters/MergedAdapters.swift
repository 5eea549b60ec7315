import Kernels
import Model

/// The papers' switch on the CPU: copies of every adapted weight matrix hold W_base + Σ g·s·B A for the current
/// selection, and decoding runs the bare forward pass on them.
///
/// When a token's selection differs from the one merged, every adapted matrix is updated in one parallel pass per
/// projection, as one sgemm per tile of rows: rebuilt from the pristine base, W = W_base + B_sel·A_sel (no drift),
/// or in place, W += [B_new, −B_old]·[A_new; A_old] (LoRA-Switch's SGMM form; rounding accumulates in f16/bf16).
/// An unchanged selection costs nothing. Prefill chunks mix selections, so they run fused on the pristine base.
/// Static LoRAs merge once, at creation, and every chunk uses the copies.
///
/// Weights must be float (f32, f16, bf16): a quantized matrix cannot take a dense update.
public final class MergedAdapters: ForwardAdapters {
    public let adapter: Adapter
    public let inPlace: Bool
    /// Merges performed (selection changes), for measurements.
    public private(set) var merges = 0

    private let fused: AdapterRuntime
    private let model: LanguageModel
    private let pool: ThreadPool
    private let k: Int
    /// Copies of the adapted matrices and the layer weights that point at them.
    private var mergedLayers: [LayerWeights]
    private let copies: [ByteStorage]
    /// The selection merged into the copies (nil: none yet).
    private var current: (experts: [Int32], gates: [Float])?
    private var singleToken = false
    private let merger: LowRankMerger

    public init(adapter: Adapter, session: InferenceSession, inPlace: Bool) throws {
        let c = session.model.configuration
        switch adapter.routing {
        case .layer:
            throw AdapterError.strategy(detail: "merged: layer routing decides inside every layer, so there is no one selection to merge ahead; use fused")
        case .fixed, .token: break
        }
        self.adapter = adapter
        self.inPlace = inPlace
        model = session.model
        pool = session.pool
        k = adapter.routing.topK
        fused = try AdapterRuntime(adapter: adapter, session: session)

        var layers = model.weights.layers
        var copies: [ByteStorage] = []
        var widest = 0, tallest = 0
        for l in 0..<c.numHiddenLayers {
            for (i, tensor) in LayerTensor.projections.enumerated() where adapter.projections[l][i] != nil {
                let base = layers[l].projection(tensor)!.weight
                guard !base.dtype.isQuantized else {
                    throw AdapterError.strategy(detail: "merged: \(base.dtype) weights cannot take a dense update; use fused (or auto)")
                }
                let copy = ByteStorage(count: base.byteCount)
                copy.pointer.copyMemory(from: base.data, byteCount: base.byteCount)
                copies.append(copy)
                layers[l] = layers[l].replacing(tensor, with: WeightMatrix(data: copy.pointer, dtype: base.dtype, rows: base.rows, cols: base.cols)!)
                widest = max(widest, base.cols)
                tallest = max(tallest, base.rows)
            }
        }
        mergedLayers = layers
        self.copies = copies
        merger = LowRankMerger(rows: tallest, cols: widest, terms: 2 * k, rank: adapter.maxRank, threads: pool.threadCount)
        if case .fixed(let gates) = adapter.routing {
            merge(experts: (0..<Int32(k)).map { $0 }, gates: gates)
        }
    }

    // MARK: ForwardAdapters

    public func check(fits session: InferenceSession) throws { try fused.check(fits: session) }

    public var decisionLayer: Int { fused.decisionLayer }

    public func weights(layer: Int, tokens: Int) -> LayerWeights? {
        if layer == 0 { singleToken = tokens == 1 }
        return usesCopies ? mergedLayers[layer] : nil
    }

    public func adapts(layer: Int, projection: LayerTensor) -> Bool {
        !usesCopies && fused.adapts(layer: layer, projection: projection)
    }

    public func didNormalize(layer: Int, normalized: UnsafePointer<Float>, tokens: Int, pool: ThreadPool) {
        fused.didNormalize(layer: layer, normalized: normalized, tokens: tokens, pool: pool)
        guard layer == adapter.routerLayer, singleToken, case .token = adapter.routing else { return }
        let experts = fused.chunkExperts, gates = fused.chunkGates
        if let current, (0..<k).allSatisfy({ current.experts[$0] == experts[$0] && current.gates[$0] == gates[$0] }) { return }
        merge(experts: Array(UnsafeBufferPointer(start: experts, count: k)), gates: Array(UnsafeBufferPointer(start: gates, count: k)))
    }

    public func prepare(layer: Int, projections: [LayerTensor], input x: UnsafePointer<Float>, tokens: Int, decoding: Bool,
                        pool: ThreadPool) {
        if !usesCopies { fused.prepare(layer: layer, projections: projections, input: x, tokens: tokens, decoding: decoding, pool: pool) }
    }

    public var stagedItems: Int { usesCopies ? 0 : fused.stagedItems }

    public func runStaged(item: Int, thread: Int) { fused.runStaged(item: item, thread: thread) }

    public func foldInput(layer: Int, projections: [LayerTensor], source: UnsafePointer<Float>, norm: UnsafePointer<Float>?,
                          inputs: Range<Int>, thread: Int) {
        if !usesCopies {
            fused.foldInput(layer: layer, projections: projections, source: source, norm: norm, inputs: inputs, thread: thread)
        }
    }

    public func decodingTerms(layer: Int, projection: LayerTensor, thread: Int) -> UnsafeBufferPointer<LowRankTerm> {
        usesCopies ? .init(start: nil, count: 0) : fused.decodingTerms(layer: layer, projection: projection, thread: thread)
    }

    public func adjust(layer: Int, projection: LayerTensor, input x: UnsafePointer<Float>, tokens: Int,
                       output y: UnsafeMutablePointer<Float>, ldy: Int, rows: Range<Int>, thread: Int) {
        fused.adjust(layer: layer, projection: projection, input: x, tokens: tokens, output: y, ldy: ldy, rows: rows, thread: thread)
    }

    /// Static LoRAs use the copies for every chunk; MoE only for single tokens.
    private var usesCopies: Bool {
        if case .fixed = adapter.routing { return true }
        return singleToken
    }

    public var routingObserver: ((Int, [Int], [Float]) -> Void)? {
        get { fused.observer }
        set { fused.observer = newValue }
    }

    // MARK: Merging

    /// Makes the copies hold W_base + Σ g·s·B A for `experts` / `gates`.
    public func merge(experts: [Int32], gates: [Float]) {
        let previous = inPlace ? current : nil
        for l in 0..<model.configuration.numHiddenLayers {
            for (i, tensor) in LayerTensor.projections.enumerated() {
                guard let p = adapter.projections[l][i] else { continue }
                mergeProjection(p, base: model.weights.layers[l].projection(tensor)!.weight,
                                copy: mergedLayers[l].projection(tensor)!.weight, experts: experts, gates: gates,
                                previous: previous)
            }
        }
        current = (experts, gates)
        merges += 1
    }

    /// One projection: the new selection's terms, less the old one's (in place) or over the pristine base.
    private func mergeProjection(_ p: AdaptedProjection, base: WeightMatrix, copy: WeightMatrix, experts: [Int32],
                                 gates: [Float], previous: (experts: [Int32], gates: [Float])?) {
        merger.removeAll()
        for (e, g) in zip(experts, gates) { if let pair = p.experts[Int(e)] { merger.add(pair, factor: g * pair.scale) } }
        if let previous {
            for (e, g) in zip(previous.experts, previous.gates) { if let pair = p.experts[Int(e)] { merger.add(pair, factor: -g * pair.scale) } }
        }
        merger.apply(source: previous != nil ? copy : base, target: copy, pool: pool)
    }
}

extension LayerWeights {
    /// The same weights with `tensor`'s matrix replaced (bias kept).
    func replacing(_ tensor: LayerTensor, with weight: WeightMatrix) -> LayerWeights {
        func swap(_ linear: Linear) -> Linear { Linear(weight: weight, bias: linear.bias) }
        return LayerWeights(attentionNorm: attentionNorm, q: tensor == .q ? swap(q) : q, k: tensor == .k ? swap(k) : k,
                            v: tensor == .v ? swap(v) : v, o: tensor == .o ? swap(o) : o, mlpNorm: mlpNorm,
                            gate: tensor == .gate ? swap(gate) : gate, up: tensor == .up ? swap(up) : up,
                            down: tensor == .down ? swap(down) : down)
    }
}
