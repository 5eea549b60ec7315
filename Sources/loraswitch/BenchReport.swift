import Foundation
import Model

/// One measured configuration: the backbone, or the backbone with an adapter under a strategy.
struct BenchRow: Encodable {
    let name: String
    let config: String
    let dtype: String
    let decodeMsPerToken: Double
    let prefillTokensPerSecond: Double
    /// Bytes read to decode one token: weights (backbone and active adapter), and the KV cache.
    let bytesPerToken: Int
    let gbs: Double
    /// Decode time over the backbone's (adapter rows).
    var ratioVsBackbone: Double?
    /// Adapter bytes read per decoded token (adapter rows).
    var adapterBytesPerToken: Int?
    /// Why a row could not run (merging quantized weights…).
    var skipped: String?

    enum CodingKeys: String, CodingKey {
        case name, config, dtype
        case decodeMsPerToken = "decode_ms_per_token"
        case prefillTokensPerSecond = "prefill_tokens_per_s"
        case bytesPerToken = "bytes_per_token"
        case gbs
        case ratioVsBackbone = "ratio_vs_backbone"
        case adapterBytesPerToken = "adapter_bytes_per_token"
        case skipped
    }

    static let header = "name                  prefill tok/s   decode ms/tok   vs backbone   MB/token   adapter MB    GB/s   % of read bw"

    func line(bandwidth: Double) -> String {
        let label = name.padding(toLength: 20, withPad: " ", startingAt: 0)
        if let skipped { return label + "  n/a: " + skipped }
        return label +
            fmt(prefillTokensPerSecond, 1).leftPadded(to: 15) +
            fmt(decodeMsPerToken, 2).leftPadded(to: 16) +
            (ratioVsBackbone.map { "x" + fmt($0, 3) } ?? "").leftPadded(to: 14) +
            fmt(Double(bytesPerToken) / 1e6, 1).leftPadded(to: 11) +
            (adapterBytesPerToken.map { fmt(Double($0) / 1e6, 2) } ?? "").leftPadded(to: 13) +
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
    let config: String
    let dtype: String
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
