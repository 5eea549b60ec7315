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
/// Bandwidth and FLOP/s default to `loraswitch bench` figures of a 2-core machine (30 GB/s, 150 GFLOP/s); with
/// them a rebuild costs tens of milliseconds against well under a millisecond of fused reads, so token routing
/// merges only when a selection persists for hundreds of tokens.
public struct AutoStrategy: Sendable {
    public let choice: AdapterStrategy
    public let reason: String

    public init(adapter: Adapter, model: LanguageModel, switchRate: Double = 1, bandwidth: Double = 30e9,
                flops: Double = 150e9) {
        let layers = model.weights.layers
        var adaptedParameters = 0, adaptedBytes = 0, quantized = false
        for (l, layer) in adapter.projections.enumerated() {
            for (i, p) in layer.enumerated() where p != nil {
                let w = layers[l].projection(LayerTensor.projections[i])!.weight
                adaptedParameters += w.rows * w.cols
                adaptedBytes += w.byteCount
                quantized = quantized || w.dtype.isQuantized
            }
        }
        if quantized {
            (choice, reason) = (.fused, "quantized weights cannot be merged")
            return
        }
        switch adapter.routing {
        case .layer:
            (choice, reason) = (.fused, "layer routing decides inside each layer; there is nothing to merge ahead")
        case .fixed:
            (choice, reason) = (.merged, "a static adapter is merged once; decoding then runs at the bare model's speed")
        case .token(let k):
            let kr = Double(k * adapter.maxRank)
            let fusedSeconds = Double(adapter.bytesPerToken) / bandwidth
            let mergeSeconds = 2 * kr * Double(adaptedParameters) / flops + 2 * Double(adaptedBytes) / bandwidth
            if switchRate * mergeSeconds < fusedSeconds {
                (choice, reason) = (.merged, "selections persist: merging costs less than the fused reads")
            } else {
                (choice, reason) = (.fused, "each switch would rebuild \(adaptedBytes / 1_000_000) MB of weights; the fused pass reads \(adapter.bytesPerToken / 1_000_000) MB")
            }
        }
    }
}
