import Kernels
import Model

/// The `auto` strategy's choice, by a cost model of one decoded token (the rule, also in the README):
///
/// - quantized weights, or layer routing: **fused** (nothing can be merged ahead);
/// - static LoRAs on float weights: **merged** (merged once; decoding then runs at the bare model's speed);
/// - token routing on float weights: **merged** when `switchRate × mergeSeconds < fusedSeconds`, else **fused**,
///   where fusedSeconds = adapter bytes per token / bandwidth (the extra reads of the fused pass),
///   mergeSeconds = 2·kr·(adapted parameters) / sgemm FLOP/s + 2·(adapted bytes) / bandwidth (one rebuild), and
///   switchRate is the share of tokens whose selection differs from the previous token's (1 unless measured).
///
/// Only the last case depends on the machine (`usesMachine`). Its figures are a parameter: the library measures
/// nothing by itself; `MachineFigures.defaults` stands in when the caller knows no better.
public struct AutoStrategy: Sendable {
    public let choice: AdapterStrategy
    public let reason: String
    /// Whether the choice depended on the machine's figures (token routing on float weights).
    public let usesMachine: Bool
    /// The figures the cost model was given.
    public let machine: MachineFigures

    public init(adapter: Adapter, model: LanguageModel, switchRate: Double = 1, machine: MachineFigures = .defaults) {
        self.machine = machine
        let cost = SwitchCost(adapter: adapter, model: model)
        if cost.quantized {
            (choice, reason, usesMachine) = (.fused, "quantized weights cannot be merged", false)
            return
        }
        switch adapter.routing {
        case .layer:
            (choice, reason, usesMachine) = (.fused, "layer routing decides inside each layer; there is nothing to merge ahead", false)
        case .fixed:
            (choice, reason, usesMachine) = (.merged, "a static adapter is merged once; decoding then runs at the bare model's speed", false)
        case .token(let k):
            let kr = Double(k * adapter.maxRank)
            let fusedSeconds = Double(adapter.bytesPerToken) / machine.bandwidth
            let mergeSeconds = 2 * kr * Double(cost.adaptedParameters) / machine.flops + 2 * Double(cost.adaptedBytes) / machine.bandwidth
            let merges = switchRate * mergeSeconds < fusedSeconds
            choice = merges ? .merged : .fused
            usesMachine = true
            reason = "switch rate \(switchRate) × a rebuild of \(Self.megabytes(cost.adaptedBytes)) MB of weights (~\(Self.ms(mergeSeconds)) ms) " +
                (merges ? "<" : "≥") + " the fused pass's reads of \(Self.megabytes(adapter.bytesPerToken)) MB (~\(Self.ms(fusedSeconds)) ms) a token"
        }
    }

    /// "auto chose fused: … at 31.2 GB/s and 150 GFLOP/s (measured in this run)", or without figures where the
    /// choice did not depend on them.
    public var summary: String {
        "auto chose \(choice.rawValue): \(reason)" + (usesMachine ? " at \(machine.summary)" : " (no machine figures needed)")
    }

    /// Three significant figures or so, without Foundation's formatting.
    private static func ms(_ seconds: Double) -> String { rounded(seconds * 1000) }
    private static func megabytes(_ bytes: Int) -> String { rounded(Double(bytes) / 1e6) }
    private static func rounded(_ value: Double) -> String {
        guard value < 1e15 else { return String(value) }
        if value >= 100 { return String(Int(value.rounded())) }
        let scale = value >= 10 ? 10.0 : value >= 1 ? 100.0 : 1000.0
        return String((value * scale).rounded() / scale)
    }
}

/// What one switch of a merged runtime (`MergedAdapters`) touches, from tensor sizes: the adapted matrices and the
/// selected experts' factors. A model of traffic, not a measurement.
public struct SwitchCost: Sendable {
    /// Elements and bytes of every adapted base matrix.
    public let adaptedParameters: Int
    public let adaptedBytes: Int
    /// Bytes of the factors of one selection (top-k experts of every adapted projection), routers excluded.
    public let selectionBytes: Int
    /// Whether any adapted matrix is quantized (then nothing can be merged).
    public let quantized: Bool

    public init(adapter: Adapter, model: LanguageModel) {
        let layers = model.weights.layers
        var parameters = 0, bytes = 0, selection = 0, quantized = false
        for (l, layer) in adapter.projections.enumerated() {
            for (i, p) in layer.enumerated() {
                guard let p else { continue }
                let w = layers[l].projection(LayerTensor.projections[i])!.weight
                parameters += w.rows * w.cols
                bytes += w.byteCount
                quantized = quantized || w.dtype.isQuantized
                let pairs = p.experts.compactMap { $0 }
                if !pairs.isEmpty {
                    selection += pairs.reduce(0) { $0 + $1.byteCount } / pairs.count * min(adapter.routing.topK, pairs.count)
                }
            }
        }
        (adaptedParameters, adaptedBytes, selectionBytes, self.quantized) = (parameters, bytes, selection, quantized)
    }

    /// Bytes one switch reads and writes. A rebuild reads the pristine base and the new selection's factors and
    /// writes the copies; in place reads and writes the copies and reads the old and the new selection's factors.
    public func bytes(inPlace: Bool) -> Int {
        inPlace ? 2 * adaptedBytes + 2 * selectionBytes : 2 * adaptedBytes + selectionBytes
    }
}
