import Foundation
import Formats
import Kernels
import Model

/// `fuse` and `unfuse`: static LoRAs folded into a model's weights, W + Σ w·s·B A (or taken back out, W − Σ …),
/// written as a model of the same format — a Hugging Face folder (config, tokenizer and every other file copied)
/// or a GGUF file (metadata kept byte for byte, so the vocabulary and chat template travel with it).
///
/// Adapted matrices are written as floats: `dtype`, by default the model's own float type (f16 for a quantized
/// model, whose adapted matrices cannot take a dense update and stay quantized). Every other tensor is copied
/// unchanged. Unfusing a model fused at f32 gives back the base to rounding; at f16/bf16, to half-precision
/// rounding of the sum.
public enum Fusion {
    /// Writes `model` with `adapter` fused (or, with `subtract`, unfused) to `output`, which must not exist yet.
    /// `progress(done, total)` is called after each adapted matrix.
    public static func write(model: LanguageModel, adapter: Adapter, subtract: Bool = false, dtype: DType? = nil,
                             to output: String, pool: ThreadPool, progress: ((Int, Int) -> Void)? = nil) throws {
        guard case .fixed(let gates) = adapter.routing else {
            throw AdapterError.strategy(detail: "\(adapter.name): a mixture of experts picks its experts per token, so it has no one set of weights to fuse; run it with --adapter")
        }
        if let dtype, dtype.isQuantized {
            throw AdapterError.strategy(detail: "fused matrices are written as f32, f16 or bf16, not \(dtype)")
        }
        guard !FileManager.default.fileExists(atPath: output) else {
            throw AdapterError.incompatible(detail: "\(output) already exists; choose a new path")
        }
        let c = model.configuration, weights = model.weights
        var adapted: [String: (layer: Int, index: Int)] = [:]
        for l in 0..<c.numHiddenLayers {
            for (i, tensor) in LayerTensor.projections.enumerated() where adapter.projections[l][i] != nil {
                adapted[weights.naming.module(tensor, layer: l) + ".weight"] = (l, i)
            }
        }

        // Every tensor of the source, in its order: adapted ones merged into new buffers, the rest as they lie.
        var merged: [ByteStorage] = []
        var tensors: [TensorBytes] = []
        let widest = max(c.hiddenSize, c.intermediateSize, c.queryDimension)
        let merger = LowRankMerger(rows: widest, cols: widest, terms: gates.count, rank: adapter.maxRank, threads: pool.threadCount)
        for name in weights.source.tensorNames {
            let view = weights.source.tensor(name)!
            guard let (l, i) = adapted[name] else {
                tensors.append(TensorBytes(name: name, dtype: view.dtype, shape: view.shape,
                                           bytes: UnsafeRawBufferPointer(start: view.data, count: view.byteCount)))
                continue
            }
            let base = weights.layers[l].projection(LayerTensor.projections[i])!.weight
            let type = dtype ?? (base.dtype.isQuantized ? .f16 : base.dtype)
            let storage = ByteStorage(count: type.byteCount(elements: base.rows * base.cols)!)
            let target = WeightMatrix(data: storage.pointer, dtype: type, rows: base.rows, cols: base.cols)!
            merger.removeAll()
            for (e, pair) in adapter.projections[l][i]!.experts.enumerated() {
                guard let pair else { continue }
                merger.add(pair, factor: (subtract ? -1 : 1) * gates[e] * pair.scale)
            }
            merger.apply(source: base, target: target, pool: pool)
            merged.append(storage)
            tensors.append(TensorBytes(name: name, dtype: type, shape: view.shape,
                                       bytes: UnsafeRawBufferPointer(start: storage.pointer, count: storage.count)))
            progress?(merged.count, adapted.count)
        }

        switch model.format {
        case .gguf:
            guard let file = weights.source as? GGUFFile else { preconditionFailure("a GGUF model reads a GGUF file") }
            try GGUFWriter.write(tensors, metadataOf: file, to: output)
        case .huggingFace:
            try writeFolder(tensors, copyingFrom: model.path, to: output)
        }
        withExtendedLifetime(merged) {}
    }

    /// A Hugging Face folder at `output`: one model.safetensors, and every other file of `source` (config,
    /// tokenizer, generation settings) copied. Built beside `output` and renamed into place once complete.
    private static func writeFolder(_ tensors: [TensorBytes], copyingFrom source: String, to output: String) throws {
        let fm = FileManager.default
        let temporary = temporaryPath(beside: output)
        do {
            try fm.createDirectory(atPath: temporary, withIntermediateDirectories: false)
            for file in try fm.contentsOfDirectory(atPath: source).sorted()
            where !file.hasSuffix(".safetensors") && file != SafetensorsFolder.indexFile && !file.hasPrefix(".") {
                var isFolder: ObjCBool = false
                let path = (source as NSString).appendingPathComponent(file)
                guard fm.fileExists(atPath: path, isDirectory: &isFolder), !isFolder.boolValue else { continue }
                try fm.copyItem(atPath: path, toPath: (temporary as NSString).appendingPathComponent(file))
            }
            try SafetensorsWriter.write(tensors, metadata: ["format": "pt"],
                                        to: (temporary as NSString).appendingPathComponent(SafetensorsFolder.singleFile))
            try fm.moveItem(atPath: temporary, toPath: output)
        } catch {
            try? fm.removeItem(atPath: temporary)
            if error is FormatError { throw error }
            throw AdapterError.incompatible(detail: "\(output): cannot write the model folder (\(error.localizedDescription))")
        }
    }
}
