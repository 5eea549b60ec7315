import Foundation
import Formats
import Kernels
import Model

/// One expert's low-rank update of one projection: Δy = scale · B (A x). The scale formula is written once, here:
/// `lora_alpha / r`, or `lora_alpha / √r` with rsLoRA.
public struct LowRankPair: @unchecked Sendable {
    /// [r, in]
    public let a: WeightMatrix
    /// [out, r]
    public let b: WeightMatrix
    public let scale: Float

    public init(a: WeightMatrix, b: WeightMatrix, scale: Float) {
        self.a = a
        self.b = b
        self.scale = scale
    }

    public var rank: Int { a.rows }

    public static func scale(alpha: Double, rank: Int, rsLoRA: Bool) -> Float {
        Float(rsLoRA ? alpha / Double(rank).squareRoot() : alpha / Double(rank))
    }

    /// Bytes of A and B.
    public var byteCount: Int { a.byteCount + b.byteCount }
}

/// The adapters of one projection of one layer: its experts by index (nil where an expert leaves the projection
/// alone) and, for layer routing, its router.
public struct AdaptedProjection: @unchecked Sendable {
    public let experts: [LowRankPair?]
    /// [N, in]: layer routing's router for this projection.
    public let router: WeightMatrix?

    public init(experts: [LowRankPair?], router: WeightMatrix?) {
        self.experts = experts
        self.router = router
    }
}

/// How the experts of a token are chosen.
public enum Routing: Sendable, Equatable {
    /// Every expert, always, with these gates: static LoRAs (one adapter, or several with weights).
    case fixed(gates: [Float])
    /// LoRA-Switch: one router on the normalized input of layer `Adapter.routerLayer` (0 in the paper) decides top-k
    /// experts for every adapted projection of the token; adapted layers are at or above it.
    case token(topK: Int)
    /// One router per adapted projection on that projection's input (MoLA, MixLoRA, MoRAL).
    case layer(topK: Int)

    public var topK: Int {
        switch self {
        case .fixed(let gates): return gates.count
        case .token(let k), .layer(let k): return k
        }
    }
}

/// An adapter bound to a model: for every layer and projection the experts' low-rank pairs (in the orientation of
/// the model's own rows), the routing, and the storage they live in.
public final class Adapter: @unchecked Sendable {
    public let routing: Routing
    public let numExperts: Int
    /// [layer][index in `LayerTensor.projections`]
    public let projections: [[AdaptedProjection?]]
    /// Token routing's router [N, hidden].
    public let tokenRouter: WeightMatrix?
    /// Token routing: the layer whose normalized attention input the router reads (config `router_layer`); every
    /// adapted layer is at or above it, so a token's decision is known before any of its adapted projections.
    /// 0 for other routings.
    public let routerLayer: Int
    /// Where it came from, for messages.
    public let name: String
    /// Keeps the files or memory the matrices point into alive.
    let storage: [AnyObject]

    /// An adapter over matrices kept alive by `storage` (checked against a model by `check(fits:)` before it runs).
    public init(routing: Routing, numExperts: Int, projections: [[AdaptedProjection?]], tokenRouter: WeightMatrix?,
                routerLayer: Int = 0, name: String, storage: [AnyObject]) {
        self.projections = projections
        self.routerLayer = routerLayer
        self.routing = routing
        self.numExperts = numExperts
        self.tokenRouter = tokenRouter
        self.name = name
        self.storage = storage
        maxRank = projections.joined().compactMap { $0 }.flatMap(\.experts).compactMap { $0?.rank }.max() ?? 0
    }

    public func projection(layer: Int, _ tensor: LayerTensor) -> AdaptedProjection? {
        guard let i = tensor.projectionIndex, layer < projections.count else { return nil }
        return projections[layer][i]
    }

    /// The largest rank of any expert (scratch sizes).
    public let maxRank: Int

    /// The same LoRAs (sharing their matrices) with every update's weight multiplied by `factor`: a per-sequence
    /// scale. Nil for a mixture of experts, whose router sets the gates.
    public func scaled(by factor: Float) -> Adapter? {
        guard case .fixed(let gates) = routing else { return nil }
        return Adapter(routing: .fixed(gates: gates.map { $0 * factor }), numExperts: numExperts, projections: projections,
                       tokenRouter: tokenRouter, routerLayer: routerLayer, name: name, storage: storage)
    }

    /// Expert `e`'s pair for projection slot `index` (in `LayerTensor.projections`) of `layer`, if it has one.
    func pair(_ layer: Int, _ index: Int, _ e: Int) -> LowRankPair? {
        guard let p = projections[layer][index], e < p.experts.count else { return nil }
        return p.experts[e]
    }

    /// The factors laid out for decoding on `partition`'s threads, made on first use and kept (sessions with the
    /// same thread count share them).
    func decodingLayout(_ partition: DecodingPartition) -> DecodingLayout {
        layoutLock.lock()
        defer { layoutLock.unlock() }
        if let layout = layouts.first(where: { $0.partition == partition }) { return layout }
        let layout = DecodingLayout(self, partition: partition)
        layouts.append(layout)
        return layout
    }

    private var layouts: [DecodingLayout] = []
    private let layoutLock = NSLock()

    /// Throws unless every factor and router fits `model`'s shapes (an adapter is loaded for one model; attached to
    /// another, its products would read out of bounds).
    public func check(fits model: LanguageModel) throws {
        let c = model.configuration
        guard projections.count <= c.numHiddenLayers else {
            throw AdapterError.incompatible(detail: "\(name) adapts \(projections.count) layers; \(model.path) has \(c.numHiddenLayers)")
        }
        if let below = projections.prefix(routerLayer).firstIndex(where: { $0.contains { $0 != nil } }) {
            throw AdapterError.incompatible(detail: "\(name): layer \(below) is adapted below its router's layer \(routerLayer)")
        }
        if let router = tokenRouter, router.cols != c.hiddenSize || router.rows != numExperts {
            throw AdapterError.incompatible(detail: "\(name): its router [\(router.rows), \(router.cols)] does not fit \(model.path) (hidden \(c.hiddenSize))")
        }
        for (l, layer) in projections.enumerated() {
            for (i, p) in layer.enumerated() {
                guard let p else { continue }
                let w = model.weights.layers[l].projection(LayerTensor.projections[i])!.weight
                let tensor = "layer \(l) \(LayerTensor.projections[i].rawValue)"
                if let r = p.router, r.cols != w.cols || r.rows != numExperts {
                    throw AdapterError.incompatible(detail: "\(name): the router of \(tensor) does not fit \(model.path)")
                }
                for pair in p.experts.compactMap({ $0 }) where pair.a.cols != w.cols || pair.b.rows != w.rows || pair.b.cols != pair.a.rows {
                    throw AdapterError.incompatible(detail: "\(name): \(tensor) is [\(pair.b.rows), \(pair.a.cols)] in the adapter, [\(w.rows), \(w.cols)] in \(model.path)")
                }
            }
        }
    }

    /// Bytes of adapter weights read to decode one token when `k` experts are active: every adapted projection's
    /// active pairs, and the routers.
    public var bytesPerToken: Int { bytesPerStep(rows: 1) }

    /// Bytes of adapter weights a pass of `rows` rows that all use this adapter reads, each weight once: the routers,
    /// and per adapted projection the pairs its rows choose — all of them under fixed routing; under routing, the
    /// expected count of distinct experts among `rows` independent, uniform top-k choices, N·(1 − (1 − k/N)^rows)
    /// (k for one row).
    public func bytesPerStep(rows: Int) -> Int {
        var total = Double(tokenRouter?.byteCount ?? 0)
        for layer in projections {
            for p in layer.compactMap({ $0 }) {
                let pairs = p.experts.compactMap { $0 }
                guard !pairs.isEmpty else { continue }
                let mean = Double(pairs.reduce(0) { $0 + $1.byteCount }) / Double(pairs.count)
                let n = Double(pairs.count), k = Double(min(routing.topK, pairs.count))
                let distinct = k == n ? n : n * (1 - pow(1 - k / n, Double(max(1, rows))))
                total += mean * distinct + Double(p.router?.byteCount ?? 0)
            }
        }
        return Int(total.rounded())
    }
}
