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
    /// Per projection being merged: scaled B_sel [out, kr] and A_sel [kr, in] in float32.
    private let bScratch: FloatBuffer
    private let aScratch: FloatBuffer
    /// Per thread: a tile of rows in float32 (f16/bf16 copies).
    private let tiles: [FloatBuffer]
    private static let tileRows = 64

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
        fused = AdapterRuntime(adapter: adapter, configuration: c, threads: session.pool.threadCount, chunk: session.chunkSize)

        var layers = model.weights.layers
        var copies: [ByteStorage] = []
        var widest = 0, largestB = 0, largestA = 0
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
                let kr = 2 * k * adapter.maxRank
                widest = max(widest, base.cols)
                largestB = max(largestB, base.rows * kr)
                largestA = max(largestA, kr * base.cols)
            }
        }
        mergedLayers = layers
        self.copies = copies
        bScratch = FloatBuffer(count: max(1, largestB))
        aScratch = FloatBuffer(count: max(1, largestA))
        tiles = (0..<session.pool.threadCount).map { _ in FloatBuffer(count: Self.tileRows * max(1, widest), zeroed: false) }
        if case .fixed(let gates) = adapter.routing {
            merge(experts: (0..<Int32(k)).map { $0 }, gates: gates)
        }
    }

    // MARK: ForwardAdapters

    public var runsUnfused: Bool { false }

    public func weights(layer: Int, tokens: Int) -> LayerWeights? {
        if layer == 0 { singleToken = tokens == 1 }
        return usesCopies ? mergedLayers[layer] : nil
    }

    public func adapts(layer: Int, projection: LayerTensor) -> Bool {
        !usesCopies && fused.adapts(layer: layer, projection: projection)
    }

    public func didNormalize(layer: Int, normalized: UnsafePointer<Float>, tokens: Int, pool: ThreadPool) {
        fused.didNormalize(layer: layer, normalized: normalized, tokens: tokens, pool: pool)
        guard layer == 0, singleToken, case .token = adapter.routing else { return }
        let experts = Array(fused.chunkExperts[0..<k]), gates = Array(fused.chunkGates[0..<k])
        if let current, current.experts == experts, current.gates == gates { return }
        merge(experts: experts, gates: gates)
    }

    public func prepare(layer: Int, projections: [LayerTensor], input x: UnsafePointer<Float>, tokens: Int, pool: ThreadPool) {
        if !usesCopies { fused.prepare(layer: layer, projections: projections, input: x, tokens: tokens, pool: pool) }
    }

    public func adjust(layer: Int, projection: LayerTensor, input x: UnsafePointer<Float>, tokens: Int,
                       output y: UnsafeMutablePointer<Float>, ldy: Int, rows: Range<Int>, thread: Int) {
        fused.adjust(layer: layer, projection: projection, input: x, tokens: tokens, output: y, ldy: ldy, rows: rows, thread: thread)
    }

    public func adjustUnfused(layer: Int, projection: LayerTensor, input x: UnsafePointer<Float>, tokens: Int,
                              output y: UnsafeMutablePointer<Float>, ldy: Int, pool: ThreadPool) {}

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

    /// One projection: gathers the scaled factors, then each thread updates its tiles of rows.
    private func mergeProjection(_ p: AdaptedProjection, base: WeightMatrix, copy: WeightMatrix, experts: [Int32],
                                 gates: [Float], previous: (experts: [Int32], gates: [Float])?) {
        // Factors: columns of Bs (scaled by ±g·s) beside rows of As, for the new selection and (in place) the old.
        var terms: [(pair: LowRankPair, factor: Float)] = []
        for (e, g) in zip(experts, gates) { if let pair = p.experts[Int(e)] { terms.append((pair, g * pair.scale)) } }
        if let previous {
            for (e, g) in zip(previous.experts, previous.gates) { if let pair = p.experts[Int(e)] { terms.append((pair, -g * pair.scale)) } }
        }
        let kr = terms.reduce(0) { $0 + $1.pair.rank }
        guard kr > 0 else { return }
        let out = base.rows, cols = base.cols
        let b = bScratch.pointer, a = aScratch.pointer
        var column = 0
        for (pair, factor) in terms {
            for q in 0..<pair.rank { pair.a.dequantizeRow(q, into: a + (column + q) * cols) }
            let row = UnsafeMutablePointer<Float>.allocate(capacity: pair.rank)
            for r in 0..<out {
                pair.b.dequantizeRow(r, into: row)
                for q in 0..<pair.rank { b[r * kr + column + q] = row[q] * factor }
            }
            row.deallocate()
            column += pair.rank
        }
        let inPlace = previous != nil
        let source = inPlace ? copy : base
        pool.run { thread in
            let rows = ThreadPool.chunk(out, part: thread, of: pool.threadCount, granularity: 16)
            var r = rows.lowerBound
            while r < rows.upperBound {
                let n = min(Self.tileRows, rows.upperBound - r)
                if copy.dtype == .f32 {
                    // The copy is float32: update it where it lies.
                    let target = UnsafeMutableRawPointer(mutating: copy.row(r)).assumingMemoryBound(to: Float.self)
                    if !inPlace { dequantize(source.row(r), dtype: .f32, count: n * cols, into: target) }
                    sgemmAccumulate(m: n, n: cols, k: kr, a: b + r * kr, lda: kr, b: a, ldb: cols, c: target, ldc: cols)
                } else {
                    let tile = tiles[thread].pointer
                    dequantize(source.row(r), dtype: source.dtype, count: n * cols, into: tile)
                    sgemmAccumulate(m: n, n: cols, k: kr, a: b + r * kr, lda: kr, b: a, ldb: cols, c: tile, ldc: cols)
                    quantize(tile, count: n * cols, dtype: copy.dtype, into: UnsafeMutableRawPointer(mutating: copy.row(r)))
                }
                r += n
            }
        }
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
