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
                           [--prompt N] [--tokens N] [--rounds R] [--threads N] [--json FILE]
                           [--experts N --top-k K --rank R [--targets all|attention|mlp|q,v,...] [--rows a,b,...]
                            [--strategy S] [--switches N] [--router-layer L]]
       loraswitch bench --train [--config C --dtype D | --model PATH] [--seq 256] [--batch-size 1] [--steps 3]
                           [--experts 8 --top-k 2 --rank 16 --targets all --router-layer 0] [--rows ...] [--threads N]
                           [--json FILE]
       loraswitch bench --batch B[,B...] [--config C --dtype D | --model PATH] [--prompt 16] [--tokens 24]
                           [--experts 8 --top-k 2 --rank 16 --targets all --router-layer 0] [--rows ...] [--threads N]
                           [--json FILE]
       loraswitch bench --kernels [--config C] [--dtype D] [--batches 1,2,4,8,16,32,64] [--threads N] [--json FILE]
      --config   model shape built with random weights (default smollm2-135m)
      --dtype    weight type of the random model (default f32)
      --model    measure a model file or folder instead of a random model
      --prompt   prompt tokens for the prefill measurement (default 128)
      --tokens   decoded tokens for the decode measurement (default 64)
      --rounds   rounds the decoded tokens are split into, every row's round r running before any row's round
                 r+1; rows report the median across rounds and its min–max (default 5, fewer when --tokens is
                 under 10: a round needs two tokens, one with and one without the adapter)
      --threads  threads (default: one per core)
      --json     also write the figures to FILE
      --experts  add adapter rows: random LoRA and MoE-LoRA adapters with this many experts (top-k 2, rank 16,
                 all seven projections by default), stored in the model's float type (f16 for quantized models)
      --rows     only these rows: \(BenchCommand.adapterRows.joined(separator: ","))
      --strategy only the rows run under S: auto|reference|fused|merged|merged-inplace
      --switches also measure the drift of in-place merging after N switches against a rebuild (float weights)
      --router-layer  the token-routed rows' router reads layer L's normalized input; their experts adapt layers
                 L and up (default 0, the paper's placement)
      --batch    measure batched decoding instead: for each batch size B, B sequences decoded together (one
                 row each per pass): rows backbone, lora, token, layer (every sequence with the same random
                 adapter, fused) and mixed (the sequences cycle through distinct adapters of the three kinds);
                 aggregate tokens/s, ms per step, modelled bytes per step (base weights and the adapters' expected
                 distinct experts once, every sequence's KV cache) and GB/s; defaults --prompt 16 --tokens 24
      --train    measure training instead: rows train-lora, train-layer, train-token (AdamW steps on random
                 sequences of --seq tokens, --batch-size of them a step; --steps measured after one warm-up)
      --kernels  measure the products of a decoding step with B rows instead: matvec per row, sgemm and the batched
                 kernel on one layer's matrices of --config, for --dtype (default: every type) and each of --batches
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
    let rounds: Int
    let threads: Int
    let jsonPath: String?
    let experts: Int?
    let topK: Int
    let rank: Int
    let targets: [LayerTensor]
    var rows: [String]
    let switches: Int?
    /// Token routing's router layer: the token rows' adapters cover layers from it on.
    let routerLayer: Int
    /// `--train`: (sequence length, batch size, measured steps).
    let train: (sequence: Int, batchSize: Int, steps: Int)?
    /// `--batch`: the batch sizes.
    let batchSizes: [Int]?
    /// `--kernels`: the weight types and batch sizes of the kernel benchmark.
    let kernels: (dtypes: [DType], batches: [Int])?

    init(_ arguments: inout Arguments) throws {
        shape = BenchmarkShape(rawValue: try arguments.choice("config", BenchmarkShape.allCases.map(\.rawValue)) ?? "smollm2-135m")!
        let dtypeName = try arguments.choice("dtype", DType.allCases.map(\.rawValue))
        dtype = DType(rawValue: dtypeName ?? "f32")!
        modelPath = try arguments.option("model")
        batchSizes = try arguments.integerList("batch", in: 1...256)
        let batched = batchSizes != nil
        promptTokens = try arguments.integer("prompt", in: 1...1_000_000) ?? (batched ? 16 : 128)
        decodeTokens = try arguments.integer("tokens", in: 1...1_000_000) ?? (batched ? 24 : 64)
        let explicitRounds = try arguments.integer("rounds", in: 1...1_000_000)
        threads = try arguments.integer("threads", in: 1...256) ?? defaultThreadCount
        jsonPath = try arguments.option("json")
        experts = try arguments.integer("experts", in: 1...256)
        topK = try arguments.integer("top-k", in: 1...256) ?? 2
        rank = try arguments.integer("rank", in: 1...4096) ?? 16
        let targetList = try arguments.option("targets") ?? "all"
        targets = try Self.parseTargets(targetList)
        let training = arguments.flag("train")
        if training && batched { throw UsageError("--train and --batch are separate measurements") }
        let known = training ? TrainBenchmark.rows : batched ? BatchBenchmark.rows : Self.adapterRows
        rows = try arguments.option("rows").map { list in
            let names = list.split(separator: ",").map(String.init)
            for name in names where !known.contains(name) {
                throw UsageError("--rows: unknown row '\(name)' (rows: \(known.joined(separator: ", ")))")
            }
            return names
        } ?? known
        if let name = try arguments.choice("strategy", AdapterStrategy.allCases.map(\.rawValue)) {
            let strategy = AdapterStrategy(rawValue: name)!
            rows = rows.filter { row in Self.adapterPlan.contains { $0.row == row && $0.strategy == strategy } }
        }
        if training {
            train = (try arguments.integer("seq", in: 2...1_000_000) ?? 256, try arguments.integer("batch-size", in: 1...4096) ?? 1,
                     try arguments.integer("steps", in: 1...10_000) ?? 3)
        } else {
            train = nil
        }
        if arguments.flag("kernels") {
            let batches = try arguments.integerList("batches", in: 1...1024) ?? [1, 2, 4, 8, 16, 32, 64]
            kernels = (dtypeName.map { [DType(rawValue: $0)!] } ?? DType.allCases, batches)
        } else {
            kernels = nil
        }
        routerLayer = try arguments.integer("router-layer", in: 0...100_000) ?? 0
        switches = try arguments.integer("switches", in: 1...1_000_000)
        if switches != nil && experts == nil { throw UsageError("--switches goes with --experts") }
        if let experts, topK > experts { throw UsageError("--top-k (\(topK)) exceeds --experts (\(experts))") }
        // Adapter rows alternate tokens with and without the adapter: a round needs one of each.
        let perRound = experts == nil ? 1 : 2
        if let explicitRounds, explicitRounds * perRound > decodeTokens {
            throw UsageError("--rounds \(explicitRounds) needs --tokens ≥ \(explicitRounds * perRound) (\(perRound) a round), not \(decodeTokens)")
        }
        rounds = explicitRounds ?? max(1, min(5, decodeTokens / perRound))
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
        if let kernels {
            try KernelBenchmark(configName: shape.rawValue, configuration: shape.configuration, dtypes: kernels.dtypes,
                                batches: kernels.batches, pool: pool, jsonPath: jsonPath).run(progress: progress)
            return
        }
        let (model, configName, dtypeName) = try loadModel(pool: pool, progress: progress)
        if let train {
            try TrainBenchmark(model: model, configName: configName, dtypeName: dtypeName, pool: pool, sequence: train.sequence,
                               batchSize: train.batchSize, steps: train.steps, experts: experts ?? 8, topK: topK, rank: rank,
                               targets: targets, routerLayer: routerLayer, rows: rows, jsonPath: jsonPath).run(progress: progress)
            return
        }
        if let batchSizes {
            try runBatch(batchSizes, model: model, pool: pool, progress: progress)
            return
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

        // The read bandwidth of shared hosts drifts from minute to minute, so it is measured right before and right
        // after the rows and the higher figure is the reference; `auto` decides with the figures from before. The
        // probe's buffer is freed again and the peak-memory mark reset around it, so that the peak is the model's.
        var peak = peakResidentBytes()
        progress.say("measuring the machine's read bandwidth and sgemm rate")
        let before = (bandwidth: measureReadBandwidth(pool: pool), gflops: measureSgemmGFLOPS(pool: pool))
        resetPeakResident()
        let machine = MachineFigures(bandwidth: before.bandwidth * 1e9, flops: before.gflops * 1e9, source: .measured)

        var plans = [BenchPlan.backbone()]
        var notes: [String] = [], auto: AutoStrategy?, token: Adapter?
        if let experts {
            let adapters = try randomAdapters(model: model, experts: experts, progress: progress)
            plans += adapterPlans(adapters, session: session, machine: machine)
            auto = AutoStrategy(adapter: adapters.token, model: model, machine: machine)
            token = adapters.token
            notes.append("vs backbone: in every round decoded tokens alternate with and without the adapter, so both halves see the same minutes")
            notes.append("adapters: \(experts) experts, top-\(topK), rank \(rank), \(adapters.dtype) on \(targets.map(\.rawValue).joined(separator: ",")); adapter/backbone bytes per token \(fmt(100 * Double(adapters.token.bytesPerToken) / Double(model.weights.bytesPerToken), 1))% (token routing), \(fmt(100 * Double(adapters.lora.bytesPerToken) / Double(model.weights.bytesPerToken), 1))% (LoRA)")
        }
        let measurements = try BenchRounds(session: session, prompt: prompt, followers: followers, rounds: rounds,
                                           progress: progress).run(plans)
        let results = zip(plans, measurements).map { plan, measurement in
            measurement.row(plan, config: configName, dtype: dtypeName, promptTokens: promptTokens, backboneBytes: backboneBytes)
        }
        for row in results {
            guard let rate = row.switchRate, let bytes = row.switchBytes else { continue }
            let kind = row.name.hasSuffix("inplace") ? "reads and writes the copies and reads the old and the new selection's factors"
                : "reads the base matrices and the selection's factors, writes the copies"
            notes.append("\(row.name): switch rate \(fmt(rate, 3)) (measured) × \(fmt(Double(bytes) / 1e6, 0)) MB a switch (modelled: \(kind))")
        }
        if let auto { notes.append(auto.summary) }
        if let switches, let token {
            notes += try measureDrift(session: session, adapter: token, switches: switches, progress: progress)
        }
        peak = max(peak, peakResidentBytes())

        progress.say("measuring the machine's read bandwidth and sgemm rate")
        let after = (bandwidth: measureReadBandwidth(pool: pool), gflops: measureSgemmGFLOPS(pool: pool))
        progress.finish()
        let report = BenchReport(
            machine: .init(read_gbs: max(before.bandwidth, after.bandwidth), read_gbs_before: before.bandwidth,
                           read_gbs_after: after.bandwidth, sgemm_gflops: max(before.gflops, after.gflops),
                           sgemm_gflops_before: before.gflops, sgemm_gflops_after: after.gflops, threads: threads),
            config: configName, dtype: dtypeName, rounds: rounds, rows: results, peak_resident_bytes: peak,
            auto: auto.map { a in
                .init(choice: a.choice.rawValue, reason: a.reason, read_gbs: a.usesMachine ? a.machine.bandwidth / 1e9 : nil,
                      sgemm_gflops: a.usesMachine ? a.machine.flops / 1e9 : nil, figures: a.usesMachine ? a.machine.source.rawValue : nil)
            })
        printReport(report, model: model, notes: notes)
        if let jsonPath {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(report).write(to: URL(fileURLWithPath: jsonPath), options: .atomic)
        }
    }

    /// `--batch`: the batched rows beside the machine's figures measured before and after them.
    private func runBatch(_ sizes: [Int], model: LanguageModel, pool: ThreadPool, progress: Progress) throws {
        progress.say("measuring the machine's read bandwidth")
        let before = measureReadBandwidth(pool: pool)
        let benchmark = BatchBenchmark(model: model, pool: pool, sizes: sizes, promptTokens: promptTokens, steps: decodeTokens,
                                       rounds: min(3, decodeTokens), rowNames: rows, experts: experts ?? 8, topK: topK,
                                       rank: rank, targets: targets, routerLayer: routerLayer)
        let results = try benchmark.run(progress: progress)
        progress.say("measuring the machine's read bandwidth")
        let after = measureReadBandwidth(pool: pool)
        progress.finish()
        let bandwidth = max(before, after)
        print("machine: read bandwidth \(fmt(bandwidth, 1)) GB/s (before/after: \(fmt(before, 1))/\(fmt(after, 1))), \(threads) threads")
        print("model:   \(model.path.isEmpty ? shape.rawValue : model.path), \(fmt(Double(model.weights.bytesPerToken) / 1e6, 1)) MB of weights a pass; prompt \(promptTokens), \(decodeTokens) decode steps in \(min(3, decodeTokens)) interleaved rounds")
        print("adapters: \(experts ?? 8) experts, top-\(topK), rank \(rank) on \(targets.map(\.rawValue).joined(separator: ",")), fused")
        print("")
        BatchBenchmark.print(results, bandwidth: bandwidth)
        print("")
        print("measured: step times (median over the steps, min–max) and the read bandwidth; modelled: bytes per step. vs B=1: the row's aggregate tokens/s over its own at B = 1; vs bare: GB/s over the backbone's at the same B")
        if let jsonPath {
            struct Report: Encodable { let read_gbs: Double; let threads: Int; let rows: [BatchBenchmark.Row] }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(Report(read_gbs: bandwidth, threads: threads, rows: results)).write(to: URL(fileURLWithPath: jsonPath), options: .atomic)
        }
    }

    /// The model to measure: `--model`'s file, or `--config`'s shape with random `--dtype` weights; with the names
    /// the report gives them.
    private func loadModel(pool: ThreadPool, progress: Progress) throws -> (LanguageModel, config: String, dtype: String) {
        if let modelPath {
            progress.say("loading \(modelPath)")
            let model = try LanguageModel.load(path: modelPath)
            return (model, ((modelPath as NSString).lastPathComponent as NSString).deletingPathExtension,
                    model.weights.layers.first.map { $0.q.weight.dtype.rawValue } ?? "?")
        }
        progress.say("building \(shape.rawValue) with random \(dtype) weights")
        return (try LanguageModel.random(configuration: shape.configuration, dtype: dtype, pool: pool), shape.rawValue, dtype.rawValue)
    }

    /// The random adapters of the rows, stored in the model's float type (f16 for a quantized model).
    private func randomAdapters(model: LanguageModel, experts: Int, progress: Progress) throws
        -> (lora: Adapter, layer: Adapter, token: Adapter, dtype: DType) {
        let weights = model.weights.layers[0].q.weight.dtype
        let adapterType: DType = weights.isQuantized ? .f16 : weights
        progress.say("building random adapters (\(experts) experts, top-\(topK), rank \(rank))")
        let lora = try Adapter.random(.lora, model: model, rank: rank, targets: targets, dtype: adapterType)
        let layer = try Adapter.random(.mixture(routing: "layer", experts: experts, topK: topK), model: model, rank: rank,
                                       targets: targets, dtype: adapterType)
        let token = try Adapter.random(.mixture(routing: "token", experts: experts, topK: topK), model: model, rank: rank,
                                       targets: targets, dtype: adapterType, firstLayer: routerLayer)
        return (lora, layer, token, adapterType)
    }

    /// The selected adapter rows: each makes its runtime (`auto` with the machine's figures measured in this run)
    /// and models its traffic from what the strategy (auto's choice for `auto`) does per token.
    private func adapterPlans(_ adapters: (lora: Adapter, layer: Adapter, token: Adapter, dtype: DType),
                              session: InferenceSession, machine: MachineFigures) -> [BenchPlan] {
        Self.adapterPlan.filter { rows.contains($0.row) }.map { name, strategy in
            let adapter = name.hasPrefix("lora") ? adapters.lora : name.hasPrefix("layer") ? adapters.layer : adapters.token
            let resolved = strategy == .auto ? AutoStrategy(adapter: adapter, model: session.model, machine: machine).choice : strategy
            let traffic: BenchPlan.Traffic
            switch (resolved, adapter.routing) {
            case (.merged, .fixed), (.mergedInPlace, .fixed):
                traffic = .perToken(0)
            case (.merged, .token), (.mergedInPlace, .token):
                traffic = .switches(router: adapter.tokenRouter?.byteCount ?? 0,
                                    perSwitch: SwitchCost(adapter: adapter, model: session.model).bytes(inPlace: resolved == .mergedInPlace))
            default:
                traffic = .perToken(adapter.bytesPerToken)
            }
            return BenchPlan(name: name, make: { try adapter.runtime(resolved, for: session) }, traffic: traffic)
        }
    }

    private func printReport(_ report: BenchReport, model: LanguageModel, notes: [String]) {
        let m = report.machine, c = model.configuration
        let backbone = report.rows[0]
        let prefillGFLOPS = prefillFLOPs(c, tokens: promptTokens) * backbone.prefillTokensPerSecond / Double(promptTokens) / 1e9
        print("machine: read bandwidth \(fmt(m.read_gbs, 1)) GB/s (before/after: \(fmt(m.read_gbs_before, 1))/\(fmt(m.read_gbs_after, 1))), sgemm \(fmt(m.sgemm_gflops, 0)) GFLOP/s (n=1024, before/after: \(fmt(m.sgemm_gflops_before, 0))/\(fmt(m.sgemm_gflops_after, 0))), \(threads) threads")
        print("model:   \(report.config) \(report.dtype), \(fmt(Double(model.parameterCount) / 1e6, 1)) M parameters, \(fmt(Double(model.weights.bytesPerToken) / 1e6, 1)) MB of weights read per token")
        print("prompt \(promptTokens) tokens, decode \(decodeTokens) tokens in \(rounds) rounds (every row's round r before any row's round r+1)")
        print("")
        print(BenchRow.header)
        for row in report.rows { print(row.line(bandwidth: m.read_gbs)) }
        print("")
        for line in BenchRow.legend { print(line) }
        print("backbone decode: its modelled bytes over its measured time make \(fmt(100 * backbone.gbs / m.read_gbs, 1))% of the measured read bandwidth; prefill: modelled FLOPs over measured time make \(fmt(prefillGFLOPS, 0)) GFLOP/s (\(fmt(100 * prefillGFLOPS / m.sgemm_gflops, 0))% of sgemm)")
        for note in notes { print(note) }
        print("peak resident memory: \(fmt(Double(report.peak_resident_bytes) / 1_048_576, 1)) MiB")
    }
}
