import Adapters
import Foundation
import Kernels
import Model

/// `bench --batch B,...`: decoding B sequences at once, one row per sequence in every forward pass
/// (`InferenceSession.step`), bare and with adapters: every sequence sharing one random LoRA, one token-routed or one
/// layer-routed MoE-LoRA (fused), and `mixed`, where the sequences cycle through distinct adapters of the three kinds.
/// Each batch size's rows run interleaved in rounds over the same B sequences (rewound to the same positions), so
/// they see the same minutes; the figures are medians of the step times.
struct BatchBenchmark {
    static let rows = ["backbone", "lora", "token", "layer", "mixed"]

    let model: LanguageModel
    let pool: ThreadPool
    let sizes: [Int]
    let promptTokens: Int
    let steps: Int
    let rounds: Int
    let rowNames: [String]
    let experts: Int
    let topK: Int
    let rank: Int
    let targets: [LayerTensor]
    let routerLayer: Int

    struct Row: Encodable {
        let name: String
        let batch: Int
        let aggregate_tokens_per_s: Double
        let ms_per_step: Double
        let ms_per_step_min: Double
        let ms_per_step_max: Double
        /// Modelled: base weights once, the adapters' expected distinct experts once, and every sequence's KV cache.
        let bytes_per_step: Int
        let gbs: Double
    }

    /// The rows for every batch size, in order.
    func run(progress: Progress) throws -> [Row] {
        let c = model.configuration
        let capacity = promptTokens + steps
        guard capacity <= c.maxPositionEmbeddings else {
            throw UsageError("--prompt + --tokens (\(capacity)) exceed the model's context of \(c.maxPositionEmbeddings)")
        }
        let adapterType: DType = model.weights.layers[0].q.weight.dtype.isQuantized ? .f16 : model.weights.layers[0].q.weight.dtype
        if rowNames.contains(where: { $0 != "backbone" }) {
            progress.say("building random adapters (\(experts) experts, top-\(topK), rank \(rank))")
        }
        func random(_ kind: String, seed: UInt64) throws -> Adapter {
            switch kind {
            case "lora": return try Adapter.random(.lora, model: model, rank: rank, targets: targets, dtype: adapterType, seed: seed)
            case "layer": return try Adapter.random(.mixture(routing: "layer", experts: experts, topK: topK), model: model,
                                                    rank: rank, targets: targets, dtype: adapterType, seed: seed)
            default: return try Adapter.random(.mixture(routing: "token", experts: experts, topK: topK), model: model, rank: rank,
                                               targets: targets, dtype: adapterType, firstLayer: routerLayer, seed: seed)
            }
        }
        // Only the adapters the rows asked for.
        let shared = try Dictionary(uniqueKeysWithValues: ["lora", "token", "layer"].filter(rowNames.contains).map { ($0, try random($0, seed: 1)) })
        let mixedKinds = ["token", "layer", "lora"]
        let mixed = rowNames.contains("mixed")
            ? try (0..<min(sizes.max() ?? 1, 8)).map { i in try random(mixedKinds[i % 3], seed: UInt64(10 + i)) } : []

        var generator = SplitMix(seed: 7)
        let prompt = (0..<promptTokens).map { _ in Int(generator.next() % UInt64(c.vocabSize)) }
        let followers = (0..<steps).map { _ in Int(generator.next() % UInt64(c.vocabSize)) }
        let kvPerPosition = 2 * c.numHiddenLayers * c.keyValueDimension * 4
        var results: [Row] = []
        for b in sizes {
            let engine = InferenceSession(model: model, pool: pool, capacity: capacity, chunkSize: max(b, min(promptTokens, 64)))
            let sequences = (0..<b).map { _ in SequenceState(model: model, capacity: capacity) }
            let logits = FloatBuffer(count: b * c.vocabSize, zeroed: false)
            progress.say("batch \(b): prefilling \(b) prompts of \(promptTokens) tokens")
            for s in sequences {
                var start = 0
                while start < prompt.count {
                    let n = min(engine.chunkSize, prompt.count - start)
                    try engine.step((start..<(start + n)).map { .init(sequence: s, token: prompt[$0], wantsLogits: $0 == prompt.count - 1) },
                                    logits: logits.pointer)
                    start += n
                }
            }
            // Each row's adapters per sequence (nil: bare), made once for this batch size's passes.
            var plans: [(name: String, adapters: [ForwardAdapters?], bytes: Int)] = []
            for name in rowNames {
                switch name {
                case "backbone": plans.append((name, Array(repeating: nil, count: b), 0))
                case "mixed":
                    let used = (0..<b).map { $0 % mixed.count }
                    let runtimes = try mixed.prefix(min(b, mixed.count)).map { try fused($0, engine) }
                    let counts = Dictionary(grouping: used, by: { $0 }).mapValues(\.count)
                    let bytes = counts.reduce(0) { $0 + mixed[$1.key].bytesPerStep(rows: $1.value) }
                    // Rows of one adapter next to each other: one group each.
                    plans.append((name, used.sorted().map { runtimes[$0] }, bytes))
                default:
                    let runtime = try fused(shared[name]!, engine)
                    plans.append((name, Array(repeating: runtime, count: b), shared[name]!.bytesPerStep(rows: b)))
                }
            }
            var times = plans.map { _ in [Double]() }
            for round in 0..<rounds {
                let slice = (round * steps / rounds)..<((round + 1) * steps / rounds)
                for (i, plan) in plans.enumerated() {
                    for s in sequences { s.truncate(to: promptTokens + slice.lowerBound) }
                    for j in slice {
                        let rows = (0..<b).map { InferenceSession.Row(sequence: sequences[$0], token: followers[j], adapters: plan.adapters[$0]) }
                        let start = now()
                        try engine.step(rows, logits: logits.pointer)
                        times[i].append(now() - start)
                        progress.update("batch \(b), round \(round + 1)/\(rounds): \(plan.name)", done: j - slice.lowerBound + 1, of: slice.count)
                    }
                }
            }
            for (plan, seconds) in zip(plans, times) {
                let step = median(seconds)
                let kv = b * kvPerPosition * (promptTokens + steps / 2)
                let bytes = model.weights.bytesPerToken + plan.bytes + kv
                results.append(Row(name: plan.name, batch: b, aggregate_tokens_per_s: Double(b) / step, ms_per_step: step * 1000,
                                   ms_per_step_min: (seconds.min() ?? .nan) * 1000, ms_per_step_max: (seconds.max() ?? .nan) * 1000,
                                   bytes_per_step: bytes, gbs: Double(bytes) / step / 1e9))
            }
        }
        return results
    }

    private func fused(_ adapter: Adapter, _ engine: InferenceSession) throws -> ForwardAdapters {
        guard case .fused(let runtime) = try adapter.runtime(.fused, for: engine) else {
            throw UsageError("bench --batch: the fused strategy did not give a fused runtime")
        }
        return runtime
    }

    /// The table: per row, aggregate tokens/s and its ratio to the same row at B = 1, and GB/s beside the bare batch's
    /// and the machine's bandwidth.
    static func print(_ rows: [Row], bandwidth: Double) {
        Swift.print("batch  row        tokens/s (aggregate)   vs B=1   ms/step (min–max)        MB/step   GB/s   vs bare   % of read")
        for row in rows {
            let single = rows.first { $0.name == row.name && $0.batch == 1 }
            let bare = rows.first { $0.name == "backbone" && $0.batch == row.batch }
            Swift.print(String(row.batch).leftPadded(to: 5) + "  " + row.name.padding(toLength: 9, withPad: " ", startingAt: 0) +
                        fmt(row.aggregate_tokens_per_s, 1).leftPadded(to: 22) +
                        (single.map { "x" + fmt(row.aggregate_tokens_per_s / $0.aggregate_tokens_per_s, 2) } ?? "-").leftPadded(to: 9) +
                        "   " + "\(fmt(row.ms_per_step, 2)) (\(fmt(row.ms_per_step_min, 2))–\(fmt(row.ms_per_step_max, 2)))".padding(toLength: 22, withPad: " ", startingAt: 0) +
                        fmt(Double(row.bytes_per_step) / 1e6, 1).leftPadded(to: 10) + fmt(row.gbs, 1).leftPadded(to: 7) +
                        (bare.map { fmt(100 * row.gbs / $0.gbs, 0) + "%" } ?? "-").leftPadded(to: 10) +
                        (fmt(100 * row.gbs / bandwidth, 0) + "%").leftPadded(to: 11))
        }
    }
}
