import Formats
import Kernels
import Model

extension Adapter {
    /// What a random adapter for benchmarks holds.
    public enum RandomKind: Sendable {
        /// One LoRA.
        case lora
        /// A MoE-LoRA of `experts` experts, `topK` active.
        case mixture(routing: String, experts: Int, topK: Int)
    }

    /// An adapter with random weights (A ~ U(±1/√in), B ~ U(±1/√r), routers likewise) of the given shape for
    /// `model`, on `targets` of every layer from `firstLayer` on (token routing: its router reads that layer's
    /// normalized input), stored as `dtype` — for benchmarks; deterministic for a seed.
    public static func random(_ kind: RandomKind, model: LanguageModel, rank: Int, targets: [LayerTensor], dtype: DType,
                              firstLayer: Int = 0, seed: UInt64 = 11) throws -> Adapter {
        guard !dtype.isQuantized else {
            throw AdapterError.incompatible(detail: "random adapters are stored as f32, f16 or bf16, not \(dtype)")
        }
        guard rank >= 1 else { throw AdapterError.incompatible(detail: "the rank must be at least 1") }
        let c = model.configuration
        guard (0..<c.numHiddenLayers).contains(firstLayer) else {
            throw AdapterError.incompatible(detail: "the first adapted layer must be a layer of the model (0..<\(c.numHiddenLayers)), not \(firstLayer)")
        }
        let tensors = InMemoryTensors(label: "random adapter")
        var state = seed | 1
        func fill(_ name: String, rows: Int, cols: Int, bound: Float) -> WeightMatrix {
            let data = tensors.add(name, dtype: dtype, shape: [rows, cols])
            var row = [Float](repeating: 0, count: cols)
            let rowBytes = dtype.byteCount(elements: cols)!
            for r in 0..<rows {
                for i in 0..<cols {
                    state ^= state >> 12; state ^= state << 25; state ^= state >> 27
                    row[i] = (Float((state &* 0x2545_F491_4F6C_DD1D) >> 40) / Float(1 << 24) * 2 - 1) * bound
                }
                row.withUnsafeBufferPointer { quantize($0.baseAddress!, count: cols, dtype: dtype, into: data + r * rowBytes) }
            }
            return WeightMatrix(data: data, dtype: dtype, rows: rows, cols: cols)!
        }
        let experts: Int, routing: Routing
        switch kind {
        case .lora:
            experts = 1
            routing = .fixed(gates: [1])
        case let .mixture(name, n, k):
            guard n >= 1, k >= 1, k <= n else { throw AdapterError.incompatible(detail: "top-k must be between 1 and the number of experts") }
            experts = n
            switch name {
            case "token": routing = .token(topK: k)
            case "layer": routing = .layer(topK: k)
            default: throw AdapterError.incompatible(detail: "routing must be token or layer, not \(name)")
            }
        }
        var parts = AdapterParts(name: "random adapter", routing: routing, numExperts: experts, layers: c.numHiddenLayers,
                                 storage: [tensors])
        if case .token = routing { parts.routerLayer = firstLayer }
        for l in firstLayer..<c.numHiddenLayers {
            for tensor in targets {
                let t = tensor.projectionIndex!
                let base = model.weights.layers[l].projection(tensor)!
                for e in 0..<experts {
                    let a = fill("\(l).\(t).\(e).a", rows: rank, cols: base.inputs, bound: 1 / Float(base.inputs).squareRoot())
                    let b = fill("\(l).\(t).\(e).b", rows: base.outputs, cols: rank, bound: 1 / Float(rank).squareRoot())
                    parts.set(LowRankPair(a: a, b: b, scale: 1), layer: l, tensor: t, expert: e)
                }
                if case .layer = routing {
                    parts.routers[l][t] = fill("\(l).\(t).router", rows: experts, cols: base.inputs, bound: 1)
                }
            }
        }
        if case .token = routing {
            parts.tokenRouter = fill("router", rows: experts, cols: c.hiddenSize, bound: 1)
        }
        return Adapter(routing: routing, parts: parts)
    }
}
