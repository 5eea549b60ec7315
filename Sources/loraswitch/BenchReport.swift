import Foundation
import Model

/// One measured configuration: the backbone, or the backbone with an adapter under a strategy. Decode figures are
/// medians across rounds (`BenchRounds`) with their min–max; bytes are modelled from tensor sizes.
struct BenchRow: Encodable {
    let name: String
    let config: String
    let dtype: String
    /// Measured: the median across rounds of each round's median decode time, and the rounds' extremes.
    var decodeMsPerToken = 0.0
    var decodeMsMin = 0.0
    var decodeMsMax = 0.0
    var rounds = 0
    /// Measured: prompt tokens over the best of two prefills.
    var prefillTokensPerSecond = 0.0
    /// Modelled: bytes a decoded token reads (and, merged, writes) — weights (backbone and adapter), the KV cache,
    /// and for merged mixtures the measured switch rate times a switch's traffic.
    var bytesPerToken = 0
    /// Modelled bytes over measured time.
    var gbs = 0.0
    /// Measured (adapter rows): the median across rounds of decode time over the backbone's in the same round,
    /// and the rounds' extremes.
    var ratioVsBackbone: Double?
    var ratioMin: Double?
    var ratioMax: Double?
    /// Modelled (adapter rows): the adapter's share of `bytesPerToken`.
    var adapterBytesPerToken: Int?
    /// Merged mixtures: the share of decoded tokens whose selection changed (measured), and the bytes one switch
    /// reads and writes (modelled).
    var switchRate: Double?
    var switchBytes: Int?
    /// Why a row could not run (merging quantized weights…).
    var skipped: String?

    init(name: String, config: String, dtype: String) {
        (self.name, self.config, self.dtype) = (name, config, dtype)
    }

    enum CodingKeys: String, CodingKey {
        case name, config, dtype, rounds, gbs, skipped
        case decodeMsPerToken = "decode_ms_per_token"
        case decodeMsMin = "decode_ms_per_token_min"
        case decodeMsMax = "decode_ms_per_token_max"
        case prefillTokensPerSecond = "prefill_tokens_per_s"
        case bytesPerToken = "bytes_per_token"
        case ratioVsBackbone = "ratio_vs_backbone"
        case ratioMin = "ratio_min"
        case ratioMax = "ratio_max"
        case adapterBytesPerToken = "adapter_bytes_per_token"
        case switchRate = "switch_rate"
        case switchBytes = "switch_bytes"
    }

    /// The row's keys by kind, for the report's "measured" and "modelled" lists.
    static let measuredKeys: [CodingKeys] = [.decodeMsPerToken, .decodeMsMin, .decodeMsMax, .prefillTokensPerSecond,
                                             .ratioVsBackbone, .ratioMin, .ratioMax, .switchRate]
    static let modelledKeys: [CodingKeys] = [.bytesPerToken, .adapterBytesPerToken, .gbs, .switchBytes]

    /// Columns whose header starts with "model" are modelled from tensor sizes (`legend`).
    static let header = "name                  prefill tok/s   decode ms/token (min–max)   vs backbone (min–max)   model MB/token   model adapter MB   model GB/s   model % of read bw"

    static let legend = [
        "measured: prefill tok/s, decode ms/token and vs backbone (median of the rounds, min–max across them), the read bandwidth, sgemm and peak resident memory;",
        "modelled from tensor sizes: the \"model\" columns — bytes a decoded token reads (weights, adapter, KV cache; merged mixtures: router + measured switch rate × bytes a switch reads and writes), and those bytes over the measured ms/token.",
    ]

    func line(bandwidth: Double) -> String {
        let label = name.padding(toLength: 20, withPad: " ", startingAt: 0)
        if let skipped { return label + "  n/a: " + skipped }
        let decode = fmt(decodeMsPerToken, 2) + " (" + fmt(decodeMsMin, 2) + "–" + fmt(decodeMsMax, 2) + ")"
        let ratio = ratioVsBackbone.map { "x" + fmt($0, 3) + " (" + fmt(ratioMin ?? .nan, 3) + "–" + fmt(ratioMax ?? .nan, 3) + ")" }
        return label +
            fmt(prefillTokensPerSecond, 1).leftPadded(to: 15) +
            decode.leftPadded(to: 28) +
            (ratio ?? "").leftPadded(to: 24) +
            fmt(Double(bytesPerToken) / 1e6, 1).leftPadded(to: 17) +
            (adapterBytesPerToken.map { fmt(Double($0) / 1e6, 2) } ?? "").leftPadded(to: 19) +
            fmt(gbs, 1).leftPadded(to: 13) +
            fmt(100 * gbs / bandwidth, 1).leftPadded(to: 21)
    }
}

struct BenchReport: Encodable {
    struct Machine: Encodable {
        let read_gbs: Double
        let read_gbs_before: Double
        let read_gbs_after: Double
        let sgemm_gflops: Double
        let sgemm_gflops_before: Double
        let sgemm_gflops_after: Double
        let threads: Int
    }
    let machine: Machine
    let config: String
    let dtype: String
    /// Decode rounds per row.
    let rounds: Int
    let rows: [BenchRow]
    let peak_resident_bytes: Int
    /// The auto strategy's choice, the reason, and the figures it used with their source.
    let auto: Auto?
    /// Which row keys are measured and which are modelled from tensor sizes (the machine's figures and the peak
    /// resident memory are measured).
    let measured = BenchRow.measuredKeys.map(\.rawValue)
    let modelled = BenchRow.modelledKeys.map(\.rawValue)

    struct Auto: Encodable {
        let choice: String
        let reason: String
        let read_gbs: Double?
        let sgemm_gflops: Double?
        let figures: String?
    }
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
