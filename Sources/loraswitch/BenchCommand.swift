import Adapters
import Foundation
import Kernels
import Model

/// `loraswitch bench`: prefill and decode speed of a model shape with random weights (or a model file), bare and
/// with random adapters under each strategy, beside the machine's read bandwidth and sgemm rate measured in the
/// same run.
struct BenchCommand: Command {
    static let name = "bench"
    static let summary = "measure prefill and decode speed (bare and with adapters) against the machine's bandwidth"
    static let usage = """
    [--config tiny|smollm2-135m|tinyllama-1.1b] [--dtype f32|f16|bf16|q8_0|q4_0|q4_1] [--model PATH]
                           [--prompt N] [--tokens N] [--threads N] [--json FILE]
                           [--experts N --top-k K --rank R [--targets all|attention|mlp|q,v,...] [--rows a,b,...]
                            [--strategy S] [--switches N]]
      --config   model shape built with random weights (default smollm2-135m)
      --dtype    weight type of the random model (default f32)
      --model    measure a model file or folder instead of a random model
      --prompt   prompt tokens for the prefill measurement (default 128)
      --tokens   decoded tokens for the decode measurement (default 64)
      --threads  threads (default: one per core)
      --json     also write the figures to FILE
      --experts  add adapter rows: random LoRA and MoE-LoRA adapters with this many experts (top-k 2, rank 16,
                 all seven projections by default), stored in the model's float type (f16 for quantized models)
      --rows     only these rows: \(BenchCommand.adapterRows.joined(separator: ","))
      --strategy only the rows run under S: auto|reference|fused|merged|merged-inplace
      --switches also measure the drift of in-place merging after N switches against a rebuild (float weights)
    """

    /// The adapter rows, in order, with the strategy each runs under.
    static let adapterPlan: [(row: String, strategy: AdapterStrategy)] = [
        ("lora", .fused), ("lora-merged", .merged), ("layer-reference", .reference), ("layer-fused", .fused),
        ("token-reference", .reference), ("token-fused", .fused), ("token-merged-rebuild", .merged),
        ("token-merged-inplace", .mergedInPlace), ("auto", .auto),
    ]
    static var adapterRows: [String] { adapterPlan.map(\.row) }

    let shape: BenchmarkShape
    let dtype: DType
    let modelPath: String?
    let promptTokens: Int
    let decodeTokens: Int
    let threads: Int
    let jsonPath: String?
    let experts: Int?
    let topK: Int
    let rank: Int
    let targets: [LayerTensor]
    var rows: [String]
    let switches: Int?

    init(_ arguments: inout Arguments) throws {
        shape = BenchmarkShape(rawValue: try arguments.choice("config", BenchmarkShape.allCases.map(\.rawValue)) ?? "smollm2-135m")!
        dtype = DType(rawValue: try arguments.choice("dtype", DType.allCases.map(\.rawValue)) ?? "f32")!
        modelPath = try arguments.option("model")
        promptTokens = try arguments.integer("prompt", in: 1...1_000_000) ?? 128
        decodeTokens = try arguments.integer("tokens", in: 1...1_000_000) ?? 64
        threads = try arguments.integer("threads", in: 1...256) ?? defaultThreadCount
        jsonPath = try arguments.option("json")
        experts = try arguments.integer("experts", in: 1...256)
        topK = try arguments.integer("top-k", in: 1...256) ?? 2
        rank = try arguments.integer("rank", in: 1...4096) ?? 16
        let targetList = try arguments.option("targets") ?? "all"
        targets = try Self.parseTargets(targetList)
        rows = try arguments.option("rows").map { list in
            let names = list.split(separator: ",").map(String.init)
            for name in names where !Self.adapterRows.contains(name) {
                throw UsageError("--rows: unknown row '\(name)' (rows: \(Self.adapterRows.joined(separator: ", ")))")
            }
            return names
        } ?? Self.adapterRows
        if let name = try arguments.choice("strategy", AdapterStrategy.allCases.map(\.rawValue)) {
            let strategy = AdapterStrategy(rawValue: name)!
            rows = rows.filter { row in Self.adapterPlan.contains { $0.row == row && $0.strategy == strategy } }
        }
        switches = try arguments.integer("switches", in: 1...1_000_000)
        if switches != nil && experts == nil { throw UsageError("--switches goes with --experts") }
        if let experts, topK > experts { throw UsageError("--top-k (\(topK)) exceeds --experts (\(experts))") }
    }

    static func parseTargets(_ list: String) throws -> [LayerTensor] {
        switch list {
        case "all": return LayerTensor.projections
        case "attention": return [.q, .k, .v, .o]
        case "mlp": return [.gate, .up, .down]
        default:
            let names: [String: LayerTensor] = ["q": .q, "k": .k, "v": .v, "o": .o, "gate": .gate, "up": .up, "down": .down]
            return try list.split(separator: ",").map { item in
                guard let t = names[String(item)] else {
                    throw UsageError("--targets takes all, attention, mlp or a list of q,k,v,o,gate,up,down, not '\(list)'")
                }
                return t
            }
        }
    }

    func run() throws {
        let progress = Progress()
        let pool = ThreadPool(threads: threads)
        let model: LanguageModel
        let configName: String, dtypeName: String
        if let modelPath {
            progress.say("loading \(modelPath)")
            model = try LanguageModel.load(path: modelPath)
            configName = ((modelPath as NSString).lastPathComponent as NSString).deletingPathExtension
            dtypeName = model.weights.layers.first.map { $0.q.weight.dtype.rawValue } ?? "?"
        } else {
            progress.say("building \(shape.rawValue) with random \(dtype) weights")
            model = try LanguageModel.random(configuration: shape.configuration, dtype: dtype, pool: pool)
            configName = shape.rawValue
            dtypeName = dtype.rawValue
        }
        let c = model.configuration
        let capacity = promptTokens + decodeTokens
        guard capacity <= c.maxPositionEmbeddings else {
            throw UsageError("--prompt + --tokens (\(capacity)) exceed the model's context of \(c.maxPositionEmbeddings)")
        }
        let session = InferenceSession(model: model, pool: pool, capacity: capacity)
        var generator = SplitMix(seed: 7)
        let prompt = (0..<promptTokens).map { _ in Int(generator.next() % UInt64(c.vocabSize)) }
        let followers = (0..<decodeTokens).map { _ in Int(generator.next() % UInt64(c.vocabSize)) }
        let kvBytes = Int(2 * Double(c.numHiddenLayers * c.keyValueDimension * 4) * (Double(promptTokens) + Double(decodeTokens) / 2))
        let backboneBytes = model.weights.bytesPerToken + kvBytes

        /// Prefill (best of two) and decode (median ms/token) with `adapters` attached. With `paired`, decoded
        /// tokens alternate with and without the adapters, so that the ratio to the backbone compares the same
        /// minutes of a machine whose bandwidth drifts (the KV cache's contents do not change the work).
        func measure(_ name: String, _ adapters: SessionAdapters?, paired: Bool = false, adapterBytes: Int?) throws -> BenchRow {
            session.adapters = adapters
            defer { session.adapters = nil }
            progress.say("\(name): prefill of \(promptTokens) tokens")
            var prefillSeconds = Double.infinity
            for _ in 0..<2 {
                session.reset()
                let start = now()
                try session.prefill(prompt)
                prefillSeconds = min(prefillSeconds, now() - start)
            }
            var times: [Double] = [], bare: [Double] = []
            times.reserveCapacity(decodeTokens)
            bare.reserveCapacity(decodeTokens)
            let label = "\(name): decode"
            for (i, token) in followers.enumerated() {
                let with = !paired || i % 2 == 0
                session.adapters = with ? adapters : nil
                let start = now()
                _ = try session.decode(token)
                if with { times.append(now() - start) } else { bare.append(now() - start) }
                progress.update(label, done: i + 1, of: decodeTokens)
            }
            let ms = median(times) * 1000
            let bytes = backboneBytes + (adapterBytes ?? 0)
            var row = BenchRow(name: name, config: configName, dtype: dtypeName, decodeMsPerToken: ms,
                               prefillTokensPerSecond: Double(promptTokens) / prefillSeconds, bytesPerToken: bytes,
                               gbs: Double(bytes) / (ms / 1000) / 1e9, adapterBytesPerToken: adapterBytes)
            if paired { row.ratioVsBackbone = ms / (median(bare) * 1000) }
            return row
        }

        // The read bandwidth of shared hosts drifts from minute to minute, so it is measured right before and right
        // after the rows and the higher figure is the reference. The probe's buffer is freed again and the
        // peak-memory mark reset around it, so that the peak reported is the model's.
        var peak = peakResidentBytes()
        progress.say("measuring the machine's read bandwidth")
        let bandwidthBefore = measureReadBandwidth(pool: pool)
        resetPeakResident()

        var results = [try measure("backbone", nil, adapterBytes: nil)]
        var notes: [String] = []
        if let experts {
            let adapterType: DType = dtype.isQuantized || modelPath != nil && model.weights.layers[0].q.weight.dtype.isQuantized
                ? .f16 : (modelPath == nil ? dtype : model.weights.layers[0].q.weight.dtype)
            progress.say("building random adapters (\(experts) experts, top-\(topK), rank \(rank))")
            let lora = try Adapter.random(.lora, model: model, rank: rank, targets: targets, dtype: adapterType)
            let layer = try Adapter.random(.mixture(routing: "layer", experts: experts, topK: topK), model: model, rank: rank,
                                           targets: targets, dtype: adapterType)
            let token = try Adapter.random(.mixture(routing: "token", experts: experts, topK: topK), model: model, rank: rank,
                                           targets: targets, dtype: adapterType)
            let adapters = ["lora": lora, "layer": layer, "token": token]
            let plan = Self.adapterPlan.map { item in
                (item.row, item.row == "auto" ? token : adapters[String(item.row.prefix { $0 != "-" })]!, item.strategy)
            }
            for (name, adapter, strategy) in plan where rows.contains(name) {
                do {
                    let runtime = try adapter.runtime(strategy, for: session)
                    results.append(try measure(name, runtime, paired: true,
                                               adapterBytes: strategy == .merged && name == "lora-merged" ? 0 : adapter.bytesPerToken))
                } catch let error as AdapterError {
                    var row = BenchRow(name: name, config: configName, dtype: dtypeName, decodeMsPerToken: 0,
                                       prefillTokensPerSecond: 0, bytesPerToken: 0, gbs: 0)
                    row.skipped = error.localizedDescription
                    results.append(row)
                }
            }
            if let switches {
                notes += try measureDrift(session: session, adapter: token, switches: switches, progress: progress)
            }
            let auto = AutoStrategy(adapter: token, model: model)
            notes.append("vs backbone: decoded tokens alternate with and without the adapter, so both halves see the same minutes")
            notes.append("auto chose \(auto.choice.rawValue): \(auto.reason)")
            notes.append("adapters: \(experts) experts, top-\(topK), rank \(rank), \(adapterType) on \(targets.map(\.rawValue).joined(separator: ",")); adapter/backbone bytes per token \(fmt(100 * Double(token.bytesPerToken) / Double(model.weights.bytesPerToken), 1))% (token routing), \(fmt(100 * Double(lora.bytesPerToken) / Double(model.weights.bytesPerToken), 1))% (LoRA)")
        }
        peak = max(peak, peakResidentBytes())

        progress.say("measuring the machine's read bandwidth and sgemm rate")
        let bandwidthAfter = measureReadBandwidth(pool: pool)
        let bandwidth = max(bandwidthBefore, bandwidthAfter)
        let gflops = measureSgemmGFLOPS(pool: pool)
        progress.finish()

        let backbone = results[0]
        let prefillGFLOPS = prefillFLOPs(c, tokens: promptTokens) * backbone.prefillTokensPerSecond / Double(promptTokens) / 1e9
        print("machine: read bandwidth \(fmt(bandwidth, 1)) GB/s (before/after: \(fmt(bandwidthBefore, 1))/\(fmt(bandwidthAfter, 1))), sgemm \(fmt(gflops, 0)) GFLOP/s (n=1024), \(threads) threads")
        print("model:   \(configName) \(dtypeName), \(fmt(Double(model.parameterCount) / 1e6, 1)) M parameters, \(fmt(Double(model.weights.bytesPerToken) / 1e6, 1)) MB of weights read per token")
        print("prompt \(promptTokens) tokens, decode \(decodeTokens) tokens")
        print("")
        print(BenchRow.header)
        for row in results { print(row.line(bandwidth: bandwidth)) }
        print("")
        print("backbone decode reaches \(fmt(100 * backbone.gbs / bandwidth, 1))% of the measured read bandwidth; prefill runs at \(fmt(prefillGFLOPS, 0)) GFLOP/s (\(fmt(100 * prefillGFLOPS / gflops, 0))% of sgemm)")
        for note in notes { print(note) }
        print("peak resident memory: \(fmt(Double(peak) / 1_048_576, 1)) MiB")

        if let jsonPath {
            let report = BenchReport(machine: .init(read_gbs: bandwidth, sgemm_gflops: gflops, threads: threads),
                                     config: configName, dtype: dtypeName, rows: results, peak_resident_bytes: peak)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(report).write(to: URL(fileURLWithPath: jsonPath), options: .atomic)
        }
    }
}
