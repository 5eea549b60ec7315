import Foundation
import Formats
import Kernels
import Model

/// A training checkpoint: one folder holding the adapter as `loraswitch` and PEFT load it (adapter_config.json,
/// adapter_model.safetensors) and the state a resumed run needs (training_state.safetensors: the optimizer's moments
/// and, as metadata, the step, the optimizer's step count and what fixes the run — options, data — so that a resume
/// with other settings is refused instead of silently diverging). The data order needs no state: it is a pure
/// function of the seed and the epoch. Written whole or not at all.
public enum Checkpoint {
    public static let stateFile = "training_state.safetensors"

    /// What must match for a resumed run to continue the same run.
    public struct Identity: Equatable, Sendable {
        public var values: [String: String]

        public init(options o: TrainingOptions, shape: AdapterShape, trainExamples: [TrainingExample]) {
            var checksum: UInt64 = 0xCBF2_9CE4_8422_2325 // FNV-1a over every token and label
            for example in trainExamples {
                for value in example.tokens + [-1] + example.labels + [-2] {
                    checksum = (checksum ^ UInt64(bitPattern: Int64(value))) &* 0x100_0000_01B3
                }
            }
            values = [
                "optimizer": o.optimizer.rawValue, "lr": "\(o.learningRate)", "warmup": "\(o.warmup)",
                "schedule": o.schedule.rawValue, "weight_decay": "\(o.weightDecay)", "clip": "\(o.clip)",
                "epochs": "\(o.epochs)", "steps": o.maxSteps.map(String.init) ?? "", "batch_size": "\(o.batchSize)",
                "grad_accum": "\(o.gradientAccumulation)", "aux_loss_coef": "\(o.auxCoefficient)",
                "z_loss_coef": "\(o.zCoefficient)", "seed": "\(o.seed)",
                "type": shape.kind.rawValue, "experts": "\(shape.experts)", "top_k": "\(shape.topK)", "rank": "\(shape.rank)",
                "alpha": "\(shape.alpha)", "rslora": "\(shape.rsLoRA)", "router_layer": "\(shape.routerLayer)",
                "targets": shape.targets.map(\.rawValue).joined(separator: ","),
                "layers": shape.layers.map(String.init).joined(separator: ","),
                "data": "\(trainExamples.count) examples, checksum \(String(checksum, radix: 16))",
            ]
        }
    }

    /// Writes `trainer`'s adapter and state to `folder` (replacing an earlier checkpoint there).
    public static func save(_ trainer: Trainer, identity: Identity, to folder: String) throws {
        let optimizer = trainer.optimizer
        var tensors: [TensorBytes] = []
        for (i, t) in trainer.parameters.tensors.enumerated() where optimizer.kind == .adamw {
            for (prefix, moments) in [("exp_avg.", optimizer.firstMoments[i]), ("exp_avg_sq.", optimizer.secondMoments[i])] {
                tensors.append(TensorBytes(name: prefix + t.name, dtype: .f32, shape: t.shape,
                                           bytes: UnsafeRawBufferPointer(start: moments.pointer, count: t.count * 4)))
            }
        }
        var metadata = identity.values.mapKeys { "run." + $0 }
        metadata["step"] = "\(trainer.step)"
        metadata["optimizer_step"] = "\(optimizer.step)"
        try writeFolder(folder) { temporary in
            try AdapterWriter.writeFiles(trainer.parameters, model: trainer.model, into: temporary,
                                         auxCoefficient: trainer.options.auxCoefficient, baseName: nil)
            try SafetensorsWriter.write(tensors, metadata: metadata, to: (temporary as NSString).appendingPathComponent(stateFile))
        }
    }

    /// The state saved in `folder`: checks that it belongs to a run with `identity`, restores the optimizer's
    /// moments and returns (step, optimizer step). The adapter's values are loaded by the caller (from the folder's
    /// adapter, as any initial adapter is).
    public static func restore(from folder: String, identity: Identity, into optimizer: Optimizer,
                               parameters: AdapterParameters) throws -> (step: Int, optimizerStep: Int) {
        let path = (folder as NSString).appendingPathComponent(stateFile)
        guard FileManager.default.fileExists(atPath: path) else {
            throw TrainingError.invalidCheckpoint("\(folder) holds no \(stateFile) (not a training checkpoint)")
        }
        let file: SafetensorsFile
        do { file = try SafetensorsFile(path: path) } catch {
            throw TrainingError.invalidCheckpoint(error.localizedDescription)
        }
        for (key, value) in identity.values.sorted(by: { $0.key < $1.key }) where file.metadata["run." + key] != value {
            throw TrainingError.invalidCheckpoint("\(folder): its run had \(key) = '\(file.metadata["run." + key] ?? "none")', this one '\(value)'")
        }
        guard let step = file.metadata["step"].flatMap(Int.init), let optimizerStep = file.metadata["optimizer_step"].flatMap(Int.init),
              step >= 0, optimizerStep >= 0 else {
            throw TrainingError.invalidCheckpoint("\(path): 'step' and 'optimizer_step' must be counts")
        }
        if optimizer.kind == .adamw {
            for (i, t) in parameters.tensors.enumerated() {
                for (prefix, moments) in [("exp_avg.", optimizer.firstMoments[i]), ("exp_avg_sq.", optimizer.secondMoments[i])] {
                    guard let view = file.tensor(prefix + t.name), view.dtype == .f32, view.shape == t.shape else {
                        throw TrainingError.invalidCheckpoint("\(path): tensor '\(prefix + t.name)' is missing or not f32 \(t.shape)")
                    }
                    moments.pointer.withMemoryRebound(to: UInt8.self, capacity: t.count * 4) {
                        $0.update(from: view.data.assumingMemoryBound(to: UInt8.self), count: t.count * 4)
                    }
                }
            }
        }
        return (step, optimizerStep)
    }
}

extension Dictionary {
    func mapKeys<K: Hashable>(_ transform: (Key) -> K) -> [K: Value] {
        Dictionary<K, Value>(uniqueKeysWithValues: map { (transform($0.key), $0.value) })
    }
}
