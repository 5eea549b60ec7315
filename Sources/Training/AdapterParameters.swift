import Foundation
import Adapters
import Kernels
import Model

/// What an adapter being trained looks like: its kind, experts, rank, scale and where it sits.
public struct AdapterShape: Equatable, Sendable {
    public enum Kind: String, CaseIterable, Sendable {
        /// A static LoRA (PEFT's LORA format).
        case lora
        /// A router per adapted projection (MoLA, MixLoRA).
        case moeLayer = "moe-layer"
        /// LoRA-Switch: one router per token, at `routerLayer`.
        case moeToken = "moe-token"
    }

    public var kind: Kind
    public var experts: Int
    public var topK: Int
    public var rank: Int
    public var alpha: Double
    public var rsLoRA: Bool
    /// The adapted projections of every adapted layer.
    public var targets: [LayerTensor]
    /// The adapted layers, ascending.
    public var layers: [Int]
    /// Token routing: the layer whose normalized input the router reads (≤ every adapted layer).
    public var routerLayer: Int

    public init(kind: Kind, experts: Int = 1, topK: Int = 1, rank: Int, alpha: Double, rsLoRA: Bool = false,
                targets: [LayerTensor], layers: [Int], routerLayer: Int = 0) {
        self.kind = kind
        self.experts = kind == .lora ? 1 : experts
        self.topK = kind == .lora ? 1 : topK
        self.rank = rank
        self.alpha = alpha
        self.rsLoRA = rsLoRA
        self.targets = LayerTensor.projections.filter(targets.contains)
        self.layers = Array(Set(layers)).sorted()
        self.routerLayer = routerLayer
    }

    public var scale: Float { LowRankPair.scale(alpha: alpha, rank: rank, rsLoRA: rsLoRA) }

    public var routing: Routing {
        switch kind {
        case .lora: return .fixed(gates: [1])
        case .moeLayer: return .layer(topK: topK)
        case .moeToken: return .token(topK: topK)
        }
    }
}

/// The trainable tensors of an adapter in float32, each with its gradient: every expert's A [r, in] and B [out, r] of
/// every adapted (layer, projection), and the routers. `adapter` views them as an `Adapter`, so the forward passes
/// (reference, fused, merged) run over the values as the optimizer leaves them.
///
/// Tensors are named as the adapter file names them (PEFT's names; `lora_A.{e}` for experts), in a fixed order:
/// by layer, projection and expert, A before B; layer routers after their projection's experts; the token router
/// last.
public final class AdapterParameters {
    public struct Tensor {
        public let name: String
        /// [rows, cols]
        public let shape: [Int]
        public let value: FloatBuffer
        public let gradient: FloatBuffer
        public var count: Int { value.count }
    }

    public let shape: AdapterShape
    public let tensors: [Tensor]
    public let adapter: Adapter
    /// [layer][projection index][expert]: indices of A and B in `tensors`.
    let pairs: [[[(a: Int, b: Int)?]]]
    /// Layer routing: [layer][projection index], the router's index.
    let routers: [[Int?]]
    let tokenRouter: Int?

    /// Every value, in `tensors` order.
    public var parameterCount: Int { tensors.reduce(0) { $0 + $1.count } }

    /// New parameters as PEFT initializes LoRA: A ~ U(−1/√in, 1/√in) (kaiming-uniform with a = √5, nn.Linear's
    /// default), B = 0, so training starts at the base model; routers as nn.Linear, U(−1/√in, 1/√in). Deterministic
    /// for a seed.
    public convenience init(shape: AdapterShape, model: LanguageModel, seed: UInt64) throws {
        var random = SplitMix(seed: seed)
        try self.init(shape: shape, model: model) { kind, values, rows, cols in
            let bound = kind == .b ? 0 : 1 / Float(cols).squareRoot()
            for i in 0..<(rows * cols) { values[i] = bound == 0 ? 0 : random.nextSymmetric(bound) }
        }
    }

    /// Parameters copied from a loaded adapter (`--init`): its factors and routers dequantized to float32, with q/k
    /// rows as the model holds them.
    public convenience init(copying source: Adapter, shape: AdapterShape, model: LanguageModel) throws {
        try self.init(shape: shape, model: model) { _, _, _, _ in }
        for (l, layer) in pairs.enumerated() {
            for (i, experts) in layer.enumerated() {
                for (e, indices) in experts.enumerated() {
                    guard let indices else { continue }
                    guard let pair = source.projection(layer: l, LayerTensor.projections[i])?.experts[e] else {
                        throw TrainingError.invalidInit("\(source.name): layer \(l) \(LayerTensor.projections[i].rawValue) expert \(e) is missing")
                    }
                    copy(pair.a, into: tensors[indices.a])
                    copy(pair.b, into: tensors[indices.b])
                }
                if let r = routers[l][i], let router = source.projection(layer: l, LayerTensor.projections[i])?.router {
                    copy(router, into: tensors[r])
                }
            }
        }
        if let r = tokenRouter, let router = source.tokenRouter { copy(router, into: tensors[r]) }
    }

    private func copy(_ matrix: WeightMatrix, into tensor: Tensor) {
        for r in 0..<matrix.rows { matrix.dequantizeRow(r, into: tensor.value.pointer + r * matrix.cols) }
    }

    enum Part { case a, b, router }

    private init(shape: AdapterShape, model: LanguageModel,
                 fill: (Part, UnsafeMutablePointer<Float>, Int, Int) -> Void) throws {
        let c = model.configuration
        guard shape.rank >= 1, shape.experts >= 1, shape.topK >= 1, shape.topK <= shape.experts else {
            throw TrainingError.invalidShape("rank, experts and top-k must be ≥ 1, top-k ≤ experts")
        }
        guard !shape.targets.isEmpty, !shape.layers.isEmpty,
              shape.layers.allSatisfy({ (0..<c.numHiddenLayers).contains($0) }) else {
            throw TrainingError.invalidShape("no projection or layer to adapt (layers 0..<\(c.numHiddenLayers))")
        }
        if shape.kind == .moeToken {
            guard (0..<c.numHiddenLayers).contains(shape.routerLayer), shape.layers[0] >= shape.routerLayer else {
                throw TrainingError.invalidShape("the router's layer \(shape.routerLayer) must be a layer at or below every adapted layer")
            }
        }
        self.shape = shape
        var tensors: [Tensor] = []
        func add(_ name: String, _ rows: Int, _ cols: Int, _ part: Part) -> Int {
            let value = FloatBuffer(count: rows * cols), gradient = FloatBuffer(count: rows * cols)
            fill(part, value.pointer, rows, cols)
            tensors.append(Tensor(name: name, shape: [rows, cols], value: value, gradient: gradient))
            return tensors.count - 1
        }
        let kinds = LayerTensor.projections.count, moe = shape.kind != .lora
        var pairs = [[[(a: Int, b: Int)?]]](repeating: [[(a: Int, b: Int)?]](repeating: [], count: kinds), count: c.numHiddenLayers)
        var routers = [[Int?]](repeating: [Int?](repeating: nil, count: kinds), count: c.numHiddenLayers)
        for l in shape.layers {
            for tensor in shape.targets {
                let i = tensor.projectionIndex!, w = model.weights.layers[l].projection(tensor)!
                let module = "base_model.model." + TensorNaming.huggingFace.module(tensor, layer: l)
                pairs[l][i] = (0..<shape.experts).map { e in
                    let suffix = moe ? ".\(e).weight" : ".weight"
                    let a = add("\(module).lora_A\(suffix)", shape.rank, w.inputs, .a)
                    let b = add("\(module).lora_B\(suffix)", w.outputs, shape.rank, .b)
                    return (a, b)
                }
                if shape.kind == .moeLayer { routers[l][i] = add("\(module).router.weight", shape.experts, w.inputs, .router) }
            }
        }
        tokenRouter = shape.kind == .moeToken ? add("base_model.model.router.weight", shape.experts, c.hiddenSize, .router) : nil
        self.tensors = tensors
        self.pairs = pairs
        self.routers = routers

        func view(_ index: Int) -> WeightMatrix {
            let t = tensors[index]
            return WeightMatrix(data: t.value.pointer, dtype: .f32, rows: t.shape[0], cols: t.shape[1])!
        }
        let scale = shape.scale
        let projections = (0..<c.numHiddenLayers).map { l in
            (0..<kinds).map { i -> AdaptedProjection? in
                guard !pairs[l][i].isEmpty else { return nil }
                let experts = pairs[l][i].map { p in p.map { LowRankPair(a: view($0.a), b: view($0.b), scale: scale) } }
                return AdaptedProjection(experts: experts, router: routers[l][i].map(view))
            }
        }
        adapter = Adapter(routing: shape.routing, numExperts: shape.experts, projections: projections,
                          tokenRouter: tokenRouter.map(view), routerLayer: shape.kind == .moeToken ? shape.routerLayer : 0,
                          name: "adapter in training", storage: tensors.map(\.value))
        try adapter.check(fits: model)
    }

    /// Sets every gradient to zero, the tensors split between `pool`'s threads.
    public func zeroGradients(pool: ThreadPool) {
        pool.parallelFor(tensors.count) { range in
            for t in self.tensors[range] { t.gradient.pointer.update(repeating: 0, count: t.count) }
        }
    }

    /// The indices in `tensors` of A and B of `expert` of projection `index` of `layer`.
    func pair(_ layer: Int, _ index: Int, _ expert: Int) -> (a: Int, b: Int)? {
        let experts = pairs[layer][index]
        return expert < experts.count ? experts[expert] : nil
    }
}

extension AdapterShape {
    /// The shape of a loaded adapter (`--init`, `--resume`): kind, experts and top-k from its routing; rank, targets
    /// and layers from its factors; alpha and rsLoRA from its adapter_config.json in `folder`. Training takes one
    /// rank and the same projections in every adapted layer.
    public init(of adapter: Adapter, folder: String) throws {
        let configPath = (folder as NSString).appendingPathComponent("adapter_config.json")
        guard let data = FileManager.default.contents(atPath: configPath),
              let config = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw TrainingError.invalidInit("\(configPath): cannot read it as a JSON object")
        }
        var layers: [Int] = [], targets: Set<LayerTensor> = [], ranks: Set<Int> = []
        for (l, projections) in adapter.projections.enumerated() {
            let adapted = LayerTensor.projections.enumerated().filter { projections[$0.offset] != nil }.map(\.element)
            guard !adapted.isEmpty else { continue }
            if !layers.isEmpty, Set(adapted) != targets {
                throw TrainingError.invalidInit("\(folder): layer \(l) adapts other projections than layer \(layers[0]); training takes the same in every layer")
            }
            layers.append(l)
            targets = Set(adapted)
            for p in projections.compactMap({ $0 }) { for pair in p.experts.compactMap({ $0 }) { ranks.insert(pair.rank) } }
        }
        guard ranks.count == 1, let rank = ranks.first else {
            throw TrainingError.invalidInit("\(folder): its experts have ranks \(ranks.sorted()); training takes one rank")
        }
        guard let alpha = (config["lora_alpha"] as? NSNumber)?.doubleValue else {
            throw TrainingError.invalidInit("\(configPath): 'lora_alpha' must be a number")
        }
        let kind: Kind
        switch adapter.routing {
        case .fixed: kind = .lora
        case .token: kind = .moeToken
        case .layer: kind = .moeLayer
        }
        self.init(kind: kind, experts: adapter.numExperts, topK: adapter.routing.topK, rank: rank, alpha: alpha,
                  rsLoRA: (config["use_rslora"] as? Bool) ?? false, targets: Array(targets), layers: layers,
                  routerLayer: adapter.routerLayer)
    }
}
