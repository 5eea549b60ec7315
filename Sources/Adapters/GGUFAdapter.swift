import Formats
import Kernels
import Model

// llama.cpp's LoRA files: a GGUF with `general.type` = "adapter", `adapter.type` = "lora", `adapter.lora.alpha`,
// and tensors `blk.{l}.{attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down}.weight.lora_a` ([r, in]
// row-major; GGUF lists [in, r]) and `.lora_b` ([out, r]). The scale is alpha / r, or 1 when alpha is 0 — as
// llama.cpp's llama_adapter_lora applies it. q/k lora_b rows are in llama.cpp's permuted order for llama models.

extension Adapter {
    static func loadGGUF(path: String, model: LanguageModel) throws -> AdapterParts {
        let file = try GGUFFile(path: path)
        let m = file.metadata
        guard m["general.type"]?.stringValue == "adapter" else {
            throw AdapterError.notAnAdapter(path: path, detail: "a GGUF model, not an adapter (general.type is not \"adapter\")")
        }
        guard let type = m["adapter.type"]?.stringValue, type == "lora" else {
            throw AdapterError.unsupported(file: path, what: "adapter.type '\(m["adapter.type"]?.stringValue ?? "")'", detail: "lora is")
        }
        if let arch = m["general.architecture"]?.stringValue, arch != model.configuration.modelType.ggufArchitecture {
            throw AdapterError.incompatible(detail: "\(path): a LoRA for architecture '\(arch)', the model is \(model.configuration.modelType.rawValue) (\(AdapterError.otherBaseHint))")
        }
        let alpha = m["adapter.lora.alpha"]?.doubleValue ?? 0
        var parts = AdapterParts(name: path, routing: .fixed(gates: [1]), numExperts: 1,
                                 layers: model.configuration.numHiddenLayers, storage: [file])
        var halves: [String: (a: TensorView?, b: TensorView?)] = [:]
        for name in file.tensorNames {
            let isA = name.hasSuffix(".weight.lora_a"), isB = name.hasSuffix(".weight.lora_b")
            guard isA || isB else {
                throw AdapterError.unexpectedTensor(file: path, tensor: name, detail: "not a projection's lora_a or lora_b")
            }
            let module = String(name.dropLast(".weight.lora_a".count))
            var entry = halves[module] ?? (nil, nil)
            if isA { entry.a = file.tensor(name) } else { entry.b = file.tensor(name) }
            halves[module] = entry
        }
        for (module, entry) in halves.sorted(by: { $0.key < $1.key }) {
            guard let a = entry.a else { throw AdapterError.missingTensor(file: path, tensor: module + ".weight.lora_a", detail: "every lora_b needs its lora_a") }
            guard let b = entry.b else { throw AdapterError.missingTensor(file: path, tensor: module + ".weight.lora_b", detail: "every lora_a needs its lora_b") }
            guard let (layer, tensor) = ggufModule(module), layer < model.configuration.numHiddenLayers else {
                throw AdapterError.unexpectedTensor(file: path, tensor: a.name,
                    detail: "not a projection of this \(model.configuration.numHiddenLayers)-layer model (\(AdapterError.otherBaseHint))")
            }
            let base = model.weights.layers[layer].projection(tensor)!
            let rank = a.shape.first ?? 0
            guard a.shape.count == 2, rank >= 1, a.shape[1] == base.inputs else {
                throw AdapterError.shapeMismatch(file: path, tensor: a.name, expected: [rank, base.inputs], found: a.shape, hint: AdapterError.otherBaseHint)
            }
            guard b.shape == [base.outputs, rank] else {
                throw AdapterError.shapeMismatch(file: path, tensor: b.name, expected: [base.outputs, rank], found: b.shape, hint: AdapterError.otherBaseHint)
            }
            for t in [a, b] where t.dtype.isQuantized {
                throw AdapterError.unsupported(file: path, what: "a \(t.dtype) LoRA tensor ('\(t.name)')", detail: "F32, F16 and BF16 are")
            }
            let pair = LowRankPair(a: WeightMatrix(data: a.data, dtype: a.dtype, rows: rank, cols: base.inputs)!,
                                   b: WeightMatrix(data: b.data, dtype: b.dtype, rows: base.outputs, cols: rank)!,
                                   scale: alpha == 0 ? 1 : Float(alpha / Double(rank)))
            parts.set(pair, layer: layer, tensor: tensor.projectionIndex!, expert: 0)
        }
        try parts.checkComplete(file: path)
        return parts
    }

    /// "blk.3.attn_q" → (3, .q).
    private static func ggufModule(_ module: String) -> (Int, LayerTensor)? {
        let parts = module.split(separator: ".")
        guard parts.count == 3, parts[0] == "blk", let layer = Int(parts[1]) else { return nil }
        guard let tensor = LayerTensor.projections.first(where: { TensorNaming.gguf.module($0, layer: layer) == module }) else { return nil }
        return (layer, tensor)
    }
}

extension ModelConfiguration.ModelType {
    /// The GGUF `general.architecture` of this model type (mistral models are written as llama).
    var ggufArchitecture: String { self == .qwen2 ? "qwen2" : "llama" }
}
