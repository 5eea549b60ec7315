import Foundation
import Formats
import Kernels
import Model

// PEFT folders (adapter_config.json + adapter_model.safetensors, as `save_pretrained` writes them) for LoRA, and
// our MoE-LoRA in the same shape (DESIGN.md): tensors
//   base_model.model.model.layers.{l}.{self_attn|mlp}.{module}.lora_A[.{e}].weight   [r, in]
//   base_model.model.model.layers.{l}.{self_attn|mlp}.{module}.lora_B[.{e}].weight   [out, r]
//   base_model.model.router.weight                                                  [N, hidden]  (token routing)
//   base_model.model.model.layers.{l}.{...}.{module}.router.weight                  [N, in]      (layer routing)

/// adapter_config.json, the keys we read (CodingKeys mirror PEFT's).
struct AdapterConfiguration: Decodable {
    var peftType: String?
    var r: Int
    var loraAlpha: Double
    var targetModules: [String]?
    var allLinear: Bool
    var rankPattern: [String: Int]
    var alphaPattern: [String: Double]
    var useRSLoRA: Bool
    var useDoRA: Bool
    var bias: String
    var fanInFanOut: Bool
    var modulesToSave: [String]?
    var routing: String?
    var numExperts: Int?
    var topK: Int?
    var routerLayer: Int?
    var layersToTransform: [Int]?

    enum CodingKeys: String, CodingKey {
        case peftType = "peft_type", r, loraAlpha = "lora_alpha", targetModules = "target_modules"
        case rankPattern = "rank_pattern", alphaPattern = "alpha_pattern", useRSLoRA = "use_rslora"
        case useDoRA = "use_dora", bias, fanInFanOut = "fan_in_fan_out", modulesToSave = "modules_to_save"
        case routing, numExperts = "num_experts", topK = "top_k", routerLayer = "router_layer"
        case layersToTransform = "layers_to_transform"
    }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        peftType = try c.decodeIfPresent(String.self, forKey: .peftType)
        r = try c.decode(Int.self, forKey: .r)
        loraAlpha = try c.decodeIfPresent(Double.self, forKey: .loraAlpha) ?? Double(r)
        if let text = try? c.decode(String.self, forKey: .targetModules) {
            guard text == "all-linear" else {
                throw DecodingError.dataCorruptedError(forKey: .targetModules, in: c,
                    debugDescription: "a regular expression ('\(text)') is not supported; list the modules or use all-linear")
            }
            allLinear = true
            targetModules = nil
        } else {
            allLinear = false
            targetModules = try c.decodeIfPresent([String].self, forKey: .targetModules)
        }
        rankPattern = try c.decodeIfPresent([String: Int].self, forKey: .rankPattern) ?? [:]
        alphaPattern = try c.decodeIfPresent([String: Double].self, forKey: .alphaPattern) ?? [:]
        useRSLoRA = try c.decodeIfPresent(Bool.self, forKey: .useRSLoRA) ?? false
        useDoRA = try c.decodeIfPresent(Bool.self, forKey: .useDoRA) ?? false
        bias = try c.decodeIfPresent(String.self, forKey: .bias) ?? "none"
        fanInFanOut = try c.decodeIfPresent(Bool.self, forKey: .fanInFanOut) ?? false
        modulesToSave = try c.decodeIfPresent([String].self, forKey: .modulesToSave)
        routing = try c.decodeIfPresent(String.self, forKey: .routing)
        numExperts = try c.decodeIfPresent(Int.self, forKey: .numExperts)
        topK = try c.decodeIfPresent(Int.self, forKey: .topK)
        routerLayer = try c.decodeIfPresent(Int.self, forKey: .routerLayer)
        // PEFT writes one layer as a number or several as a list.
        if let one = try? c.decodeIfPresent(Int.self, forKey: .layersToTransform) {
            layersToTransform = [one]
        } else {
            layersToTransform = try c.decodeIfPresent([Int].self, forKey: .layersToTransform)
        }
    }

    /// PEFT matches pattern keys against the end of a module's name (`.*\.{key}$`).
    func pattern<T>(_ patterns: [String: T], module: String) -> T? {
        patterns.first { module == $0.key || module.hasSuffix("." + $0.key) }?.value
    }
}

/// HF module names of the projections, and the block they sit in.
let moduleNames: [LayerTensor: (block: String, name: String)] = [
    .q: ("self_attn", "q_proj"), .k: ("self_attn", "k_proj"), .v: ("self_attn", "v_proj"), .o: ("self_attn", "o_proj"),
    .gate: ("mlp", "gate_proj"), .up: ("mlp", "up_proj"), .down: ("mlp", "down_proj"),
]

extension Adapter {
    /// Reads a PEFT LoRA or MoE-LoRA folder and binds it to `model`, checking every tensor against the model's
    /// projections.
    static func loadPEFT(folder: String, model: LanguageModel) throws -> AdapterParts {
        let configPath = (folder as NSString).appendingPathComponent("adapter_config.json")
        let weightsPath = (folder as NSString).appendingPathComponent("adapter_model.safetensors")
        guard FileManager.default.fileExists(atPath: configPath) else {
            throw AdapterError.notAnAdapter(path: folder, detail: "an adapter folder needs adapter_config.json")
        }
        guard FileManager.default.fileExists(atPath: weightsPath) else {
            let bin = (folder as NSString).appendingPathComponent("adapter_model.bin")
            throw AdapterError.notAnAdapter(path: folder, detail: FileManager.default.fileExists(atPath: bin)
                ? "adapter_model.bin (pickle) is not read; save the adapter with safetensors"
                : "an adapter folder needs adapter_model.safetensors")
        }
        let config = try readConfiguration(configPath)
        let moe = config.peftType == "MOE_LORA"
        guard moe || config.peftType == nil || config.peftType == "LORA" else {
            throw AdapterError.unsupported(file: configPath, what: "peft_type '\(config.peftType!)'", detail: "LORA and MOE_LORA are")
        }
        guard !config.useDoRA else { throw AdapterError.unsupported(file: configPath, what: "DoRA (use_dora)", detail: "plain LoRA is") }
        guard config.bias == "none" else {
            throw AdapterError.unsupported(file: configPath, what: "bias '\(config.bias)'", detail: "only bias \"none\" is")
        }
        guard !config.fanInFanOut else { throw AdapterError.unsupported(file: configPath, what: "fan_in_fan_out", detail: "Linear layers only") }
        guard config.modulesToSave?.isEmpty ?? true else {
            throw AdapterError.unsupported(file: configPath, what: "modules_to_save", detail: "only low-rank updates are")
        }
        // PEFT matches target_modules entries against the end of module names ("q_proj", "model.layers.0.mlp.down_proj").
        for module in config.targetModules ?? []
        where !moduleNames.values.contains(where: { $0.name == module.split(separator: ".").last.map(String.init) }) {
            throw AdapterError.invalidConfiguration(file: configPath, key: "target_modules",
                detail: "module '\(module)' does not exist in a \(model.configuration.modelType.rawValue) model (\(AdapterError.otherBaseHint))")
        }

        var routing = Routing.fixed(gates: [1])
        var experts = 1
        if moe {
            guard let n = config.numExperts, n >= 1, n <= 256 else {
                throw AdapterError.invalidConfiguration(file: configPath, key: "num_experts", detail: "must be between 1 and 256")
            }
            guard let k = config.topK, k >= 1, k <= n else {
                throw AdapterError.invalidConfiguration(file: configPath, key: "top_k", detail: "must be between 1 and num_experts (\(n))")
            }
            switch config.routing {
            case "token": routing = .token(topK: k)
            case "layer": routing = .layer(topK: k)
            default:
                throw AdapterError.invalidConfiguration(file: configPath, key: "routing", detail: "must be \"token\" or \"layer\"")
            }
            experts = n
        }
        let layerCount = model.configuration.numHiddenLayers
        if let layers = config.layersToTransform {
            guard !layers.isEmpty, layers.allSatisfy({ (0..<layerCount).contains($0) }) else {
                throw AdapterError.invalidConfiguration(file: configPath, key: "layers_to_transform",
                    detail: "must list layers of the model (0..<\(layerCount)), not \(layers)")
            }
        }
        var routerLayer = 0
        if let layer = config.routerLayer {
            guard case .token = routing else {
                throw AdapterError.invalidConfiguration(file: configPath, key: "router_layer", detail: "applies to token routing only")
            }
            guard (0..<layerCount).contains(layer) else {
                throw AdapterError.invalidConfiguration(file: configPath, key: "router_layer",
                    detail: "must be a layer of the model (0..<\(layerCount)), not \(layer)")
            }
            if let below = config.layersToTransform?.first(where: { $0 < layer }) {
                throw AdapterError.invalidConfiguration(file: configPath, key: "layers_to_transform",
                    detail: "layer \(below) is below router_layer \(layer): the router decides for adapted layers at or above its own")
            }
            routerLayer = layer
        }

        let file = try SafetensorsFile(path: weightsPath)
        var parts = AdapterParts(name: folder, routing: routing, numExperts: experts, layers: model.configuration.numHiddenLayers,
                                 storage: [file])
        parts.routerLayer = routerLayer
        var seenA: [String: TensorView] = [:], seenB: [String: TensorView] = [:]
        for name in file.tensorNames {
            let t = file.tensor(name)!
            if name == "base_model.model.router.weight" {
                guard case .token = routing else {
                    throw AdapterError.unexpectedTensor(file: weightsPath, tensor: name, detail: "a token router in an adapter whose routing is not \"token\"")
                }
                let hidden = model.configuration.hiddenSize
                guard t.shape == [experts, hidden] else {
                    throw AdapterError.shapeMismatch(file: weightsPath, tensor: name, expected: [experts, hidden], found: t.shape,
                                                     hint: "num_experts × hidden size")
                }
                parts.tokenRouter = WeightMatrix(data: t.data, dtype: t.dtype, rows: experts, cols: hidden)
                continue
            }
            let key = try parseTensorName(name, file: weightsPath, model: model, moe: moe, experts: experts)
            if let layers = config.layersToTransform, !layers.contains(key.layer) {
                throw AdapterError.unexpectedTensor(file: weightsPath, tensor: name,
                    detail: "layer \(key.layer) is not in layers_to_transform \(layers)")
            }
            if key.layer < routerLayer {
                throw AdapterError.unexpectedTensor(file: weightsPath, tensor: name,
                    detail: "layer \(key.layer) is below router_layer \(routerLayer): the router decides for adapted layers at or above its own")
            }
            if key.isRouter {
                guard case .layer = routing else {
                    throw AdapterError.unexpectedTensor(file: weightsPath, tensor: name, detail: "a per-module router in an adapter whose routing is not \"layer\"")
                }
                let cols = model.weights.layers[key.layer].projection(key.tensor)!.inputs
                guard t.shape == [experts, cols] else {
                    throw AdapterError.shapeMismatch(file: weightsPath, tensor: name, expected: [experts, cols], found: t.shape,
                                                     hint: "num_experts × the module's input size")
                }
                parts.routers[key.layer][key.tensorIndex] = WeightMatrix(data: t.data, dtype: t.dtype, rows: experts, cols: cols)
                continue
            }
            if key.isA { seenA[key.pairID] = t } else { seenB[key.pairID] = t }
        }
        // Both halves of every pair, with shapes that fit the model.
        for (id, a) in seenA {
            guard let b = seenB[id] else {
                throw AdapterError.missingTensor(file: weightsPath, tensor: a.name.replacingOccurrences(of: "lora_A", with: "lora_B"),
                                                 detail: "every lora_A needs its lora_B")
            }
            let key = try parseTensorName(a.name, file: weightsPath, model: model, moe: moe, experts: experts)
            let base = model.weights.layers[key.layer].projection(key.tensor)!
            let moduleName = "model.layers.\(key.layer).\(moduleNames[key.tensor]!.block).\(moduleNames[key.tensor]!.name)"
            let rank = a.shape.first ?? 0
            guard a.shape.count == 2, rank >= 1, a.shape[1] == base.inputs else {
                throw AdapterError.shapeMismatch(file: weightsPath, tensor: a.name, expected: [rank, base.inputs], found: a.shape,
                                                 hint: AdapterError.otherBaseHint)
            }
            guard b.shape == [base.outputs, rank] else {
                throw AdapterError.shapeMismatch(file: weightsPath, tensor: b.name, expected: [base.outputs, rank], found: b.shape,
                                                 hint: b.shape.count == 2 && b.shape[0] == base.outputs ? "rank differs from lora_A's" : AdapterError.otherBaseHint)
            }
            let expectedRank = config.pattern(config.rankPattern, module: moduleName) ?? config.r
            guard moe || rank == expectedRank else {
                throw AdapterError.shapeMismatch(file: weightsPath, tensor: a.name, expected: [expectedRank, base.inputs], found: a.shape,
                                                 hint: "r / rank_pattern in adapter_config.json")
            }
            let alpha = config.pattern(config.alphaPattern, module: moduleName) ?? config.loraAlpha
            let pair = LowRankPair(a: WeightMatrix(data: a.data, dtype: a.dtype, rows: rank, cols: base.inputs)!,
                                   b: WeightMatrix(data: b.data, dtype: b.dtype, rows: base.outputs, cols: rank)!,
                                   scale: LowRankPair.scale(alpha: alpha, rank: rank, rsLoRA: config.useRSLoRA))
            parts.set(pair, layer: key.layer, tensor: key.tensorIndex, expert: key.expert)
        }
        for (id, b) in seenB where seenA[id] == nil {
            throw AdapterError.missingTensor(file: weightsPath, tensor: b.name.replacingOccurrences(of: "lora_B", with: "lora_A"),
                                             detail: "every lora_B needs its lora_A")
        }
        try parts.checkComplete(file: weightsPath)
        return parts
    }

    private static func readConfiguration(_ path: String) throws -> AdapterConfiguration {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AdapterError.notAnAdapter(path: path, detail: "cannot read the file")
        }
        do {
            return try JSONDecoder().decode(AdapterConfiguration.self, from: data)
        } catch {
            throw AdapterError.invalidConfiguration(file: path, key: decodingKeyPath(error), detail: decodingProblem(error))
        }
    }

    /// Where a tensor goes: its layer, projection, expert, and whether it is A, B or a router.
    struct TensorKey {
        var layer: Int
        var tensor: LayerTensor
        var tensorIndex: Int
        var expert: Int
        var isA: Bool
        var isRouter: Bool
        var pairID: String { "\(layer).\(tensorIndex).\(expert)" }
    }

    private static func parseTensorName(_ name: String, file: String, model: LanguageModel, moe: Bool, experts: Int) throws -> TensorKey {
        func unexpected(_ detail: String) -> AdapterError { .unexpectedTensor(file: file, tensor: name, detail: detail) }
        let prefix = "base_model.model.model.layers."
        guard name.hasPrefix(prefix) else {
            throw unexpected(name.contains("embed") || name.contains("lm_head")
                ? "embedding and head adapters are not supported" : "not a projection's lora_A, lora_B or router")
        }
        var parts = name.dropFirst(prefix.count).split(separator: ".").map(String.init)
        guard parts.count >= 5, let layer = Int(parts[0]) else { throw unexpected("not a projection's lora_A, lora_B or router") }
        guard layer >= 0, layer < model.configuration.numHiddenLayers else {
            throw unexpected("layer \(layer) does not exist; the model has \(model.configuration.numHiddenLayers) (\(AdapterError.otherBaseHint))")
        }
        guard let (tensor, _) = moduleNames.first(where: { $0.value.block == parts[1] && $0.value.name == parts[2] }) else {
            throw unexpected("module \(parts[1]).\(parts[2]) does not exist in a \(model.configuration.modelType.rawValue) model (\(AdapterError.otherBaseHint))")
        }
        let index = tensor.projectionIndex!
        parts.removeFirst(3)
        if parts == ["router", "weight"] {
            return TensorKey(layer: layer, tensor: tensor, tensorIndex: index, expert: 0, isA: false, isRouter: true)
        }
        if parts.count == 3, parts[1] == "default" { parts.remove(at: 1) }
        guard parts.last == "weight", let half = parts.first, half == "lora_A" || half == "lora_B" else {
            throw unexpected(parts.first == "lora_magnitude_vector" ? "DoRA is not supported" : "not a projection's lora_A, lora_B or router")
        }
        var expert = 0
        if moe {
            guard parts.count == 3, let e = Int(parts[1]) else { throw unexpected("MoE-LoRA tensors are named \(half).{expert}.weight") }
            guard e >= 0, e < experts else { throw unexpected("expert \(e) is beyond num_experts (\(experts))") }
            expert = e
        } else {
            guard parts.count == 2 else { throw unexpected("LoRA tensors are named \(half).weight") }
        }
        return TensorKey(layer: layer, tensor: tensor, tensorIndex: index, expert: expert, isA: half == "lora_A", isRouter: false)
    }
}

/// An adapter being assembled from a file: pairs by layer, projection and expert; routers.
struct AdapterParts {
    var name: String
    var routing: Routing
    var numExperts: Int
    var pairs: [[[LowRankPair?]]]     // [layer][projection][expert]
    var routers: [[WeightMatrix?]]    // [layer][projection]
    var tokenRouter: WeightMatrix?
    /// Token routing: the layer whose normalized input the router reads.
    var routerLayer = 0
    var storage: [AnyObject]

    init(name: String, routing: Routing, numExperts: Int, layers: Int, storage: [AnyObject]) {
        self.name = name
        self.routing = routing
        self.numExperts = numExperts
        let projections = LayerTensor.projections.count
        pairs = Array(repeating: Array(repeating: Array(repeating: nil, count: numExperts), count: projections), count: layers)
        routers = Array(repeating: Array(repeating: nil, count: projections), count: layers)
        self.storage = storage
    }

    mutating func set(_ pair: LowRankPair, layer: Int, tensor: Int, expert: Int) { pairs[layer][tensor][expert] = pair }

    /// MoE-LoRA: every adapted projection has all N experts and, for layer routing, its router; token routing
    /// has its router.
    func checkComplete(file: String) throws {
        switch routing {
        case .fixed:
            guard pairs.joined().contains(where: { $0[0] != nil }) else {
                throw AdapterError.notAnAdapter(path: file, detail: "holds no lora_A/lora_B pair")
            }
        case .token, .layer:
            for (l, layer) in pairs.enumerated() {
                for (i, experts) in layer.enumerated() where experts.contains(where: { $0 != nil }) {
                    let module = moduleNames[LayerTensor.projections[i]]!
                    if let missing = experts.firstIndex(where: { $0 == nil }) {
                        throw AdapterError.missingTensor(file: file,
                            tensor: "base_model.model.model.layers.\(l).\(module.block).\(module.name).lora_A.\(missing).weight",
                            detail: "num_experts is \(numExperts), and every adapted module needs every expert")
                    }
                    if case .layer = routing, routers[l][i] == nil {
                        throw AdapterError.missingTensor(file: file,
                            tensor: "base_model.model.model.layers.\(l).\(module.block).\(module.name).router.weight",
                            detail: "layer routing needs a router per adapted module")
                    }
                }
            }
            if case .token = routing, tokenRouter == nil {
                throw AdapterError.missingTensor(file: file, tensor: "base_model.model.router.weight", detail: "token routing needs its router")
            }
        }
    }
}
