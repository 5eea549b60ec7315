import Foundation
import Kernels
import Model

/// `loraswitch bench`: prefill and decode speed of a model shape with random weights (or a model file), beside the
/// machine's own read bandwidth and sgemm rate, measured in the same run.
struct BenchCommand: Command {
    static let name = "bench"
    static let summary = "measure prefill and decode speed against the machine's memory bandwidth"
    static let usage = """
    [--config tiny|smollm2-135m|tinyllama-1.1b] [--dtype f32|f16|bf16|q8_0|q4_0|q4_1] [--model PATH]
                           [--prompt N] [--tokens N] [--threads N] [--json FILE]
      --config   model shape built with random weights (default smollm2-135m)
      --dtype    weight type of the random model (default f32)
      --model    measure a model file or folder instead of a random model
      --prompt   prompt tokens for the prefill measurement (default 128)
      --tokens   decoded tokens for the decode measurement (default 64)
      --threads  threads (default: one per core)
      --json     also write the figures to FILE
    """

    let shape: BenchmarkShape
    let dtype: DType
    let modelPath: String?
    let promptTokens: Int
    let decodeTokens: Int
    let threads: Int
    let jsonPath: String?

    init(_ arguments: inout Arguments) throws {
        shape = BenchmarkShape(rawValue: try arguments.choice("config", BenchmarkShape.allCases.map(\.rawValue)) ?? "smollm2-135m")!
        dtype = DType(rawValue: try arguments.choice("dtype", DType.allCases.map(\.rawValue)) ?? "f32")!
        modelPath = try arguments.option("model")
        promptTokens = try arguments.integer("prompt", in: 1...1_000_000) ?? 128
        decodeTokens = try arguments.integer("tokens", in: 1...1_000_000) ?? 64
        threads = try arguments.integer("threads", in: 1...256) ?? defaultThreadCount
        jsonPath = try arguments.option("json")
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

        progress.say("prefill of \(promptTokens) tokens")
        var prefillSeconds = Double.infinity
        for _ in 0..<2 {
            session.reset()
            let start = now()
            try session.prefill(prompt)
            prefillSeconds = min(prefillSeconds, now() - start)
        }

        // The read bandwidth of shared hosts drifts from minute to minute, so it is measured right before and right
        // after decoding and the higher figure is the reference. The probe's buffer is freed again and the
        // peak-memory mark reset around it, so that the peak reported is the model's.
        var peak = peakResidentBytes()
        progress.say("measuring the machine's read bandwidth")
        let bandwidthBefore = measureReadBandwidth(pool: pool)
        resetPeakResident()

        var times: [Double] = []
        times.reserveCapacity(decodeTokens)
        for (i, token) in followers.enumerated() {
            let start = now()
            _ = try session.decode(token)
            times.append(now() - start)
            progress.update("decode", done: i + 1, of: decodeTokens)
        }
        progress.finish()
        let decodeMs = median(times) * 1000

        // Bytes per decoded token: the weights, plus the KV cache at the mean decode position.
        let meanPosition = Double(promptTokens) + Double(decodeTokens) / 2
        let kvBytes = Int(2 * Double(c.numHiddenLayers * c.keyValueDimension * 4) * meanPosition)
        let bytesPerToken = model.weights.bytesPerToken + kvBytes
        let gbs = Double(bytesPerToken) / (decodeMs / 1000) / 1e9

        let row = BenchRow(name: "backbone", config: configName, dtype: dtypeName, decodeMsPerToken: decodeMs,
                           prefillTokensPerSecond: Double(promptTokens) / prefillSeconds,
                           bytesPerToken: bytesPerToken, gbs: gbs)
        let prefillGFLOPS = prefillFLOPs(c, tokens: promptTokens) / prefillSeconds / 1e9
        peak = max(peak, peakResidentBytes())

        progress.say("measuring the machine's read bandwidth and sgemm rate")
        let bandwidthAfter = measureReadBandwidth(pool: pool)
        let bandwidth = max(bandwidthBefore, bandwidthAfter)
        let gflops = measureSgemmGFLOPS(pool: pool)
        progress.finish()

        print("machine: read bandwidth \(fmt(bandwidth, 1)) GB/s (before/after decoding: \(fmt(bandwidthBefore, 1))/\(fmt(bandwidthAfter, 1))), sgemm \(fmt(gflops, 0)) GFLOP/s (n=1024), \(threads) threads")
        print("model:   \(configName) \(dtypeName), \(fmt(Double(model.parameterCount) / 1e6, 1)) M parameters, \(fmt(Double(model.weights.bytesPerToken) / 1e6, 1)) MB of weights read per token")
        print("prompt \(promptTokens) tokens, decode \(decodeTokens) tokens")
        print("")
        print(BenchRow.header)
        print(row.line(bandwidth: bandwidth))
        print("")
        print("decode reaches \(fmt(100 * gbs / bandwidth, 1))% of the measured read bandwidth; prefill runs at \(fmt(prefillGFLOPS, 0)) GFLOP/s (\(fmt(100 * prefillGFLOPS / gflops, 0))% of sgemm)")
        print("peak resident memory: \(fmt(Double(peak) / 1_048_576, 1)) MiB")

        if let jsonPath {
            let report = BenchReport(machine: .init(read_gbs: bandwidth, sgemm_gflops: gflops, threads: threads),
                                     rows: [row], peak_resident_bytes: peak)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(report).write(to: URL(fileURLWithPath: jsonPath), options: .atomic)
        }
    }
}

/// One measured configuration (later issues add adapter rows with the same keys).
struct BenchRow: Encodable {
    let name: String
    let config: String
    let dtype: String
    let decodeMsPerToken: Double
    let prefillTokensPerSecond: Double
    let bytesPerToken: Int
    let gbs: Double

    enum CodingKeys: String, CodingKey {
        case name, config, dtype
        case decodeMsPerToken = "decode_ms_per_token"
        case prefillTokensPerSecond = "prefill_tokens_per_s"
        case bytesPerToken = "bytes_per_token"
        case gbs
    }

    static let header = "name         config                  dtype   prefill tok/s   decode ms/tok   MB/token    GB/s   % of read bw"

    func line(bandwidth: Double) -> String {
        name.padding(toLength: 13, withPad: " ", startingAt: 0) +
            config.prefix(23).padding(toLength: 24, withPad: " ", startingAt: 0) +
            dtype.padding(toLength: 6, withPad: " ", startingAt: 0) +
            fmt(prefillTokensPerSecond, 1).leftPadded(to: 15) +
            fmt(decodeMsPerToken, 2).leftPadded(to: 16) +
            fmt(Double(bytesPerToken) / 1e6, 1).leftPadded(to: 11) +
            fmt(gbs, 1).leftPadded(to: 8) +
            fmt(100 * gbs / bandwidth, 1).leftPadded(to: 15)
    }
}

struct BenchReport: Encodable {
    struct Machine: Encodable {
        let read_gbs: Double
        let sgemm_gflops: Double
        let threads: Int
    }
    let machine: Machine
    let rows: [BenchRow]
    let peak_resident_bytes: Int
}

/// Floating-point operations of a prefill of `t` tokens: every layer's projections for each token, attention over
/// the causal prefix, and the head for the last token only.
func prefillFLOPs(_ c: ModelConfiguration, tokens t: Int) -> Double {
    let perLayer = Double(c.hiddenSize) * Double(c.queryDimension + 2 * c.keyValueDimension) +
        Double(c.queryDimension) * Double(c.hiddenSize) + 3 * Double(c.hiddenSize) * Double(c.intermediateSize)
    let projections = 2 * perLayer * Double(c.numHiddenLayers) * Double(t)
    let attention = 4 * Double(c.numHiddenLayers * c.numAttentionHeads * c.headDim) * Double(t) * Double(t + 1) / 2
    return projections + attention + 2 * Double(c.vocabSize) * Double(c.hiddenSize)
}

/// SplitMix64: the benchmark's token ids.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return .nan }
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

func fmt(_ value: Double, _ decimals: Int) -> String { String(format: "%.\(decimals)f", value) }

/// Resets the kernel's peak-resident mark (VmHWM) to the current resident set (Linux: clear_refs "5").
func resetPeakResident() {
    try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
}

/// The process's peak resident set (VmHWM), in bytes.
func peakResidentBytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
    for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let digits = line.split(separator: " ").compactMap { Int($0) }
        return (digits.first ?? 0) * 1024
    }
    return 0
}
