import Foundation
import Kernels
import Model
import Training

/// `loraswitch bench --train`: training tokens/s of a static LoRA, a layer-routed and a token-routed MoE-LoRA on
/// one model, each a few optimizer steps on random sequences, beside the machine's sgemm rate and read bandwidth
/// measured in the same run.
struct TrainBenchmark {
    let model: LanguageModel
    let configName: String
    let dtypeName: String
    let pool: ThreadPool
    let sequence: Int
    let batchSize: Int
    let steps: Int
    let experts: Int
    let topK: Int
    let rank: Int
    let targets: [LayerTensor]
    let routerLayer: Int
    let rows: [String]
    let jsonPath: String?

    static let rows = ["train-lora", "train-layer", "train-token"]

    struct Row: Encodable {
        let name: String
        /// Measured: tokens of a step over its time, the median over the steps (after one warm-up step), and the
        /// steps' extremes.
        let train_tokens_per_s: Double
        let train_tokens_per_s_min: Double
        let train_tokens_per_s_max: Double
        /// Measured: the peak resident memory while the row ran (the model's mapped pages included).
        let peak_resident_bytes: Int
        /// Modelled FLOPs of the products of a step (forward and backward: the backbone's projections and head,
        /// attention, the adapters) over the measured median step time.
        let products_gflops: Double
        /// The activations kept for the backward pass.
        let tape_bytes: Int
    }

    func run(progress: Progress) throws {
        let c = model.configuration
        guard routerLayer < c.numHiddenLayers else {
            throw UsageError("--router-layer must be a layer of the model (0..<\(c.numHiddenLayers))")
        }
        guard sequence >= 2, sequence <= c.maxPositionEmbeddings else {
            throw UsageError("--seq must be between 2 and the model's context of \(c.maxPositionEmbeddings)")
        }
        progress.say("measuring the machine's read bandwidth and sgemm rate")
        let bandwidth = measureReadBandwidth(pool: pool), sgemm = measureSgemmGFLOPS(pool: pool)
        var generator = SplitMix(seed: 7)
        let examples = (0..<batchSize).map { _ -> TrainingExample in
            let tokens = (0..<sequence).map { _ in Int(generator.next() % UInt64(c.vocabSize)) }
            return TrainingExample(tokens: tokens, labels: tokens)
        }
        let batch = MicroBatch(packing: examples)
        let layers = Array(0..<c.numHiddenLayers)
        let plans: [(String, AdapterShape)] = [
            ("train-lora", AdapterShape(kind: .lora, rank: rank, alpha: Double(2 * rank), targets: targets, layers: layers)),
            ("train-layer", AdapterShape(kind: .moeLayer, experts: experts, topK: topK, rank: rank, alpha: Double(2 * rank),
                                         targets: targets, layers: layers)),
            ("train-token", AdapterShape(kind: .moeToken, experts: experts, topK: topK, rank: rank, alpha: Double(2 * rank),
                                         targets: targets, layers: Array(routerLayer..<c.numHiddenLayers),
                                         routerLayer: routerLayer)),
        ]
        var rows: [Row] = []
        for (name, shape) in plans where self.rows.contains(name) {
            resetPeakResident()
            let parameters = try AdapterParameters(shape: shape, model: model, seed: 1)
            // B away from 0, so that routers and gates see the gradients a trained adapter gives them.
            var random = SplitMix(seed: 2)
            for t in parameters.tensors where t.name.contains("lora_B") {
                for i in 0..<t.count { t.value[i] = random.nextSymmetric(0.01) }
            }
            let objective = try TrainingObjective(model: model, parameters: parameters, pool: pool, capacity: batch.rows,
                                                  auxCoefficient: 0.01)
            let optimizer = Optimizer(kind: .adamw, parameters: parameters, weightDecay: 0, pool: pool)
            var rates: [Double] = []
            for step in 0...steps {
                progress.update("\(name): steps", done: step, of: steps + 1)
                let start = monotonicNanoseconds()
                _ = try objective.gradient([batch])
                optimizer.update(parameters, rate: 1e-4, clip: 1)
                let seconds = Double(monotonicNanoseconds() - start) / 1e9
                if step > 0 { rates.append(Double(batch.rows) / seconds) }
            }
            let perSecond = median(rates)
            let flops = productFLOPs(shape, tokens: batch.rows, sequence: sequence)
            rows.append(Row(name: name, train_tokens_per_s: perSecond, train_tokens_per_s_min: rates.min()!,
                            train_tokens_per_s_max: rates.max()!, peak_resident_bytes: peakResidentBytes(),
                            products_gflops: flops * perSecond / Double(batch.rows) / 1e9, tape_bytes: objective.tapeBytes))
        }
        progress.finish()
        print("machine: read bandwidth \(fmt(bandwidth, 1)) GB/s, sgemm \(fmt(sgemm, 0)) GFLOP/s (n=1024), \(pool.threadCount) threads")
        print("model:   \(configName) \(dtypeName), \(fmt(Double(model.parameterCount) / 1e6, 1)) M parameters")
        print("train:   batch \(batchSize) × \(sequence) tokens, AdamW; \(steps) measured steps after 1 warm-up; adapters rank \(rank) on \(targets.map(\.rawValue).joined(separator: ",")), MoE \(experts) experts top-\(topK)")
        print("")
        let header = "name          tokens/s (min–max)          peak RSS MiB   tape MiB   model GFLOP/s   % of sgemm"
        print(header)
        for row in rows {
            let name = row.name.padding(toLength: 14, withPad: " ", startingAt: 0)
            let rate = "\(fmt(row.train_tokens_per_s, 1)) (\(fmt(row.train_tokens_per_s_min, 1))–\(fmt(row.train_tokens_per_s_max, 1)))"
            print("\(name)\(rate.padding(toLength: 28, withPad: " ", startingAt: 0))\(pad(fmt(Double(row.peak_resident_bytes) / 1_048_576, 1), 12))\(pad(fmt(Double(row.tape_bytes) / 1_048_576, 1), 11))\(pad(fmt(row.products_gflops, 1), 16))\(pad(fmt(100 * row.products_gflops / sgemm, 0), 13))")
        }
        print("")
        print("measured: tokens/s (median over the steps, min–max), peak resident memory, read bandwidth and sgemm; modelled: the products' FLOPs of a step (forward and backward through the frozen backbone, head, attention, adapters) over the measured median step time")
        if let jsonPath {
            struct Report: Encodable {
                let machine: [String: Double]
                let config: String, dtype: String, seq: Int, batch_size: Int, steps: Int
                let rows: [Row]
            }
            let report = Report(machine: ["read_gbs": bandwidth, "sgemm_gflops": sgemm, "threads": Double(pool.threadCount)],
                                config: configName, dtype: dtypeName, seq: sequence, batch_size: batchSize, steps: steps, rows: rows)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(report).write(to: URL(fileURLWithPath: jsonPath), options: .atomic)
        }
    }

    private func pad(_ text: String, _ width: Int) -> String {
        String(repeating: " ", count: max(0, width - text.count)) + text
    }

    /// FLOPs of a step's products: forward through every layer and the head; backward through the layers down to
    /// the lowest adapted one (its q, k, v input side skipped) and the head; causal attention (QKᵀ and PV forward;
    /// four products backward); the adapters (forward A and B; backward three products each, per chosen expert).
    func productFLOPs(_ shape: AdapterShape, tokens t: Int, sequence: Int) -> Double {
        let c = model.configuration
        let d = Double(c.hiddenSize), q = Double(c.queryDimension), kv = Double(c.keyValueDimension), f = Double(c.intermediateSize)
        let layers = Double(c.numHiddenLayers), tokens = Double(t)
        let perLayer = d * q + 2 * d * kv + q * d + 3 * d * f
        let forward = 2 * perLayer * layers * tokens + 2 * Double(c.vocabSize) * d * tokens
        let backward = 2 * (perLayer * layers - (d * q + 2 * d * kv)) * tokens + 2 * Double(c.vocabSize) * d * tokens
        // Causal: each row sees (i + 1) keys; per head 2·hd per key for QKᵀ and as much for PV.
        let keys = Double(sequence + 1) / 2
        let attention = layers * tokens * keys * Double(c.numAttentionHeads) * Double(c.headDim) * 2 * (2 + 4)
        var adapter = 0.0
        let active = Double(shape.topK), r = Double(shape.rank)
        for tensor in shape.targets {
            let w = model.weights.layers[0].projection(tensor)!
            adapter += Double(shape.layers.count) * tokens * active * 2 * r * Double(w.inputs + w.outputs) * 4
        }
        return forward + backward + attention + adapter
    }
}
