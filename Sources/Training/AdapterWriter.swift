import Adapters
import Foundation
import Formats
import Kernels
import Model

/// Writes trained parameters as an adapter folder, float32: PEFT's LORA format for a static LoRA (loadable by PEFT
/// itself), our MOE_LORA format for mixtures of experts (DESIGN.md, "Formats"). The folder appears whole or not at
/// all: it is written beside the destination under a temporary name and renamed over it.
///
/// Tensors are written in Hugging Face's orientation: for a GGUF llama base, whose q and k rows are stored permuted
/// for interleaved rotary pairs, the q and k lora_B rows are put back in the checkpoint's order (the loader permutes
/// them again for such a base).
public enum AdapterWriter {
    public static func write(_ parameters: AdapterParameters, model: LanguageModel, to folder: String,
                             auxCoefficient: Float = 0, baseName: String? = nil) throws {
        try writeFolder(folder) { temporary in
            try writeFiles(parameters, model: model, into: temporary, auxCoefficient: auxCoefficient, baseName: baseName)
        }
    }

    /// adapter_config.json and adapter_model.safetensors into an existing folder.
    static func writeFiles(_ parameters: AdapterParameters, model: LanguageModel, into folder: String,
                           auxCoefficient: Float, baseName: String?) throws {
        let shape = parameters.shape, c = model.configuration
        let interleaved = model.weights.rope.layout == .interleaved
        var tensors: [TensorBytes] = [], kept: [FloatBuffer] = []
        for t in parameters.tensors {
            var source = t.value
            if interleaved, t.name.contains(".lora_B"), t.name.contains("q_proj") || t.name.contains("k_proj") {
                let heads = t.name.contains("q_proj") ? c.numAttentionHeads : c.numKeyValueHeads
                source = halvesOrder(t.value, rank: t.shape[1], heads: heads, headDim: c.headDim)
                kept.append(source)
            }
            tensors.append(TensorBytes(name: t.name, dtype: .f32, shape: t.shape,
                                       bytes: UnsafeRawBufferPointer(start: source.pointer, count: t.count * 4)))
        }
        var config: [String: Any] = [
            "r": shape.rank, "lora_alpha": shape.alpha, "use_rslora": shape.rsLoRA,
            "target_modules": shape.targets.map { moduleName($0) },
            "layers_to_transform": shape.layers,
            "base_model_name_or_path": baseName ?? ((model.path as NSString).lastPathComponent),
            "bias": "none", "fan_in_fan_out": false, "lora_dropout": 0.0, "task_type": "CAUSAL_LM",
            "inference_mode": true, "init_lora_weights": true,
        ]
        switch shape.kind {
        case .lora:
            config["peft_type"] = "LORA"
        case .moeLayer, .moeToken:
            config["peft_type"] = "MOE_LORA"
            config["routing"] = shape.kind == .moeToken ? "token" : "layer"
            config["num_experts"] = shape.experts
            config["top_k"] = shape.topK
            // The coefficient as it was written on the command line, not the Float's widened binary value.
            config["router_aux_loss_coef"] = Double("\(auxCoefficient)") ?? Double(auxCoefficient)
            if shape.kind == .moeToken { config["router_layer"] = shape.routerLayer }
        }
        let json = try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])
        try json.write(to: URL(fileURLWithPath: (folder as NSString).appendingPathComponent("adapter_config.json")))
        try withExtendedLifetime(kept) {
            try SafetensorsWriter.write(tensors, metadata: ["format": "pt"],
                                        to: (folder as NSString).appendingPathComponent("adapter_model.safetensors"))
        }
    }

    /// Hugging Face's module name of a projection (`q_proj`, ..., `down_proj`).
    static func moduleName(_ tensor: LayerTensor) -> String {
        String(TensorNaming.huggingFace.module(tensor, layer: 0).split(separator: ".").last!)
    }

    /// B [heads · hd, r] with each head's rows from interleaved-pair order (GGUF llama) back to halves order.
    static func halvesOrder(_ b: FloatBuffer, rank r: Int, heads: Int, headDim hd: Int) -> FloatBuffer {
        let out = FloatBuffer(count: b.count)
        reorderRotaryRows(b.pointer, into: out.pointer, rowBytes: r * 4, heads: heads, headDim: hd, toInterleaved: false)
        return out
    }
}

/// Makes `folder` by writing into a fresh temporary folder beside it and renaming that over it once `body` is done,
/// replacing any earlier folder of that name; on failure nothing is left behind.
func writeFolder(_ folder: String, _ body: (String) throws -> Void) throws {
    let manager = FileManager.default
    let url = URL(fileURLWithPath: folder).standardizedFileURL
    let parent = url.deletingLastPathComponent().path
    var isFolder: ObjCBool = false
    guard manager.fileExists(atPath: parent, isDirectory: &isFolder), isFolder.boolValue else {
        throw TrainingError.invalidOptions("\(folder): its parent folder \(parent) does not exist")
    }
    guard manager.isWritableFile(atPath: parent) else {
        throw TrainingError.invalidOptions("\(folder): cannot write in \(parent)")
    }
    let temporary = parent + "/." + url.lastPathComponent + ".partial-\(getpid())"
    try? manager.removeItem(atPath: temporary)
    do {
        try manager.createDirectory(atPath: temporary, withIntermediateDirectories: false)
        try body(temporary)
        if manager.fileExists(atPath: url.path) {
            // Swap: the old folder goes aside first, so a crash leaves either the old or the new one whole.
            let old = parent + "/." + url.lastPathComponent + ".old-\(getpid())"
            try? manager.removeItem(atPath: old)
            try manager.moveItem(atPath: url.path, toPath: old)
            try manager.moveItem(atPath: temporary, toPath: url.path)
            try? manager.removeItem(atPath: old)
        } else {
            try manager.moveItem(atPath: temporary, toPath: url.path)
        }
    } catch {
        try? manager.removeItem(atPath: temporary)
        if let e = error as? TrainingError { throw e }
        throw TrainingError.invalidOptions("\(folder): \(error.localizedDescription)")
    }
}
