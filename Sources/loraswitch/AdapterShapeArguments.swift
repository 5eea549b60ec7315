import Foundation
import Model
import Training

/// `--type --experts --top-k --rank --alpha --rslora --targets --layers --router-layer`: what adapter `train` makes.
/// Each is kept as given (nil when absent) so that an adapter to start from (`--init`, `--resume`) can fix the shape
/// and a flag that disagrees with it is named instead of being ignored.
struct AdapterShapeArguments {
    static let usage = """
      --type T              lora|moe-layer|moe-token (default moe-token)
      --experts N           experts of a MoE-LoRA (default 8)
      --top-k K             experts each token uses (default 2, at most --experts)
      --rank R              rank of every expert (default 16)
      --alpha A             scale = alpha / rank (default 2 × rank: 32 for rank 16)
      --rslora              scale = alpha / √rank instead (default off)
      --targets LIST        all|attention|mlp or a list of q,k,v,o,gate,up,down (default all)
      --layers LIST         the adapted layers, e.g. 0,2,5 (default all; moe-token: every layer ≥ --router-layer)
      --router-layer L      moe-token: the layer whose normalized input the router reads (default 0)
    """

    static let defaultKind = AdapterShape.Kind.moeToken
    static let defaultExperts = 8
    static let defaultTopK = 2
    static let defaultRank = 16

    var kind: AdapterShape.Kind?
    var experts: Int?
    var topK: Int?
    var rank: Int?
    var alpha: Double?
    var rsLoRA: Bool
    var targets: [LayerTensor]?
    var layers: [Int]?
    var routerLayer: Int?

    init(_ arguments: inout Arguments) throws {
        kind = try arguments.choice("type", AdapterShape.Kind.allCases.map(\.rawValue)).map { AdapterShape.Kind(rawValue: $0)! }
        experts = try arguments.integer("experts", in: 1...1024)
        topK = try arguments.integer("top-k", in: 1...1024)
        rank = try arguments.integer("rank", in: 1...4096)
        alpha = try arguments.double("alpha", atLeast: 0)
        if alpha == 0 { throw UsageError("--alpha must be above 0 (it scales every update)") }
        rsLoRA = arguments.flag("rslora")
        targets = try arguments.option("targets").map(BenchCommand.parseTargets)
        layers = try arguments.option("layers").map(Self.parseLayers)
        routerLayer = try arguments.integer("router-layer", in: 0...100_000)

        if kind == .lora, experts != nil || topK != nil || routerLayer != nil {
            throw UsageError("--experts, --top-k and --router-layer go with --type moe-layer or moe-token, not lora")
        }
        if kind == .moeLayer, routerLayer != nil {
            throw UsageError("--router-layer goes with --type moe-token (moe-layer has a router in every projection)")
        }
        if let routerLayer, let layers, let below = layers.first(where: { $0 < routerLayer }) {
            throw UsageError("--layers \(below) is below --router-layer \(routerLayer): the router must sit at or below every adapted layer")
        }
    }

    static func parseLayers(_ list: String) throws -> [Int] {
        let items = list.split(separator: ",", omittingEmptySubsequences: false)
        let layers = items.compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }.filter { $0 >= 0 }
        guard layers.count == items.count else {
            throw UsageError("--layers must be a comma-separated list of layer numbers, not '\(list)'")
        }
        guard Set(layers).count == layers.count else { throw UsageError("--layers lists a layer twice: '\(list)'") }
        return layers
    }

    /// The shape of a new adapter for a model of `layerCount` layers: the flags given, the defaults for the rest.
    func fresh(layerCount: Int) throws -> AdapterShape {
        let kind = self.kind ?? Self.defaultKind
        let rank = self.rank ?? Self.defaultRank
        let experts = self.experts ?? Self.defaultExperts
        let routerLayer = self.routerLayer ?? 0
        if let topK, topK > experts {
            throw UsageError("--top-k \(topK) exceeds the \(experts) experts" + (self.experts == nil ? " (the default; see --experts)" : ""))
        }
        guard routerLayer < layerCount else {
            throw UsageError("--router-layer \(routerLayer): the model has \(layerCount) layers (0–\(layerCount - 1))")
        }
        if let layers, let outside = layers.first(where: { $0 >= layerCount }) {
            throw UsageError("--layers \(outside): the model has \(layerCount) layers (0–\(layerCount - 1))")
        }
        let first = kind == .moeToken ? routerLayer : 0
        return AdapterShape(kind: kind, experts: experts, topK: topK ?? min(Self.defaultTopK, experts), rank: rank,
                            alpha: alpha ?? Double(2 * rank), rsLoRA: rsLoRA, targets: targets ?? LayerTensor.projections,
                            layers: layers ?? Array(first..<layerCount), routerLayer: routerLayer)
    }

    /// Refuses every flag given that disagrees with `shape`, the shape of the adapter `option` (`--init`,
    /// `--resume`) names at `path`: that adapter fixes the shape.
    func check(against shape: AdapterShape, option: String, path: String) throws {
        func conflict(_ flag: String, _ given: String, _ theirs: String) -> UsageError {
            UsageError("\(flag) \(given) conflicts with \(option) \(path), \(theirs)")
        }
        let moe = shape.kind != .lora
        if let kind, kind != shape.kind { throw conflict("--type", kind.rawValue, "which is \(shape.kind.rawValue)") }
        if let experts, !moe || experts != shape.experts {
            throw conflict("--experts", "\(experts)", moe ? "which has \(shape.experts) experts" : "which is a LoRA (no experts)")
        }
        if let topK, !moe || topK != shape.topK {
            throw conflict("--top-k", "\(topK)", moe ? "whose top-k is \(shape.topK)" : "which is a LoRA (no experts)")
        }
        if let rank, rank != shape.rank { throw conflict("--rank", "\(rank)", "whose rank is \(shape.rank)") }
        if let alpha, alpha != shape.alpha { throw conflict("--alpha", "\(alpha)", "whose alpha is \(shape.alpha)") }
        if rsLoRA, !shape.rsLoRA { throw conflict("--rslora", "", "which scales by alpha / rank") }
        if let targets, Set(targets) != Set(shape.targets) {
            throw conflict("--targets", targets.map(\.rawValue).joined(separator: ","),
                           "which adapts \(shape.targets.map(\.rawValue).joined(separator: ","))")
        }
        if let layers, Set(layers) != Set(shape.layers) {
            throw conflict("--layers", layers.map(String.init).joined(separator: ","),
                           "which adapts layers \(shape.layers.map(String.init).joined(separator: ","))")
        }
        if let routerLayer, shape.kind != .moeToken || routerLayer != shape.routerLayer {
            throw conflict("--router-layer", "\(routerLayer)", shape.kind == .moeToken
                ? "whose router reads layer \(shape.routerLayer)" : "which has no token router")
        }
    }
}

extension AdapterShape {
    /// One line: "moe-token, 8 experts top-2, rank 16, alpha 32, q,k,v,o,gate,up,down of layers 0–29, router on layer 0".
    var summary: String {
        var parts = [kind.rawValue]
        if kind != .lora { parts.append("\(experts) experts top-\(topK)") }
        parts.append("rank \(rank)")
        parts.append("alpha \(fmtNumber(alpha))" + (rsLoRA ? " (rsLoRA)" : ""))
        let contiguous = layers.count > 2 && layers.last! - layers[0] == layers.count - 1
        let layerText = contiguous ? "\(layers[0])–\(layers.last!)" : layers.map(String.init).joined(separator: ",")
        parts.append("\(targets.map(\.rawValue).joined(separator: ",")) of layer\(layers.count == 1 ? "" : "s") \(layerText)")
        if kind == .moeToken { parts.append("router on layer \(routerLayer)") }
        return parts.joined(separator: ", ")
    }
}

/// A number as short as it reads: 32 rather than 32.0.
func fmtNumber(_ value: Double) -> String {
    value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : "\(value)"
}

extension Arguments {
    /// A finite number option, at least `minimum`.
    mutating func double(_ name: String, atLeast minimum: Double) throws -> Double? {
        guard let text = try option(name) else { return nil }
        guard let value = Double(text), value.isFinite, value >= minimum else {
            throw UsageError("--\(name) must be a number ≥ \(fmtNumber(minimum)), not '\(text)'")
        }
        return value
    }
}
