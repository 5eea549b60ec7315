import Adapters
import Kernels
import Model

/// How far in-place merging drifts: `switches` random selections merged in place (each subtracting the previous
/// one), against the same final selection rebuilt from the pristine base — the weights, and the logits of a few
/// decoded tokens. Returns the report's lines.
func measureDrift(session: InferenceSession, adapter: Adapter, switches: Int, progress: Progress) throws -> [String] {
    let model = session.model, c = model.configuration
    let inPlace = try MergedAdapters(adapter: adapter, session: session, inPlace: true)
    let rebuilt = try MergedAdapters(adapter: adapter, session: session, inPlace: false)
    let k = adapter.routing.topK, n = adapter.numExperts
    var generator = SplitMix(seed: 11)
    var experts: [Int32] = [], gates: [Float] = []
    let start = now()
    for i in 0..<switches {
        var candidates = Array(0..<Int32(n))
        experts = (0..<k).map { _ in candidates.remove(at: Int(generator.next() % UInt64(candidates.count))) }
        let raw = (0..<k).map { _ in Float(generator.next() % 1000 + 1) }
        let total = raw.reduce(0, +)
        gates = raw.map { $0 / total }
        inPlace.merge(experts: experts, gates: gates)
        progress.update("in-place switches", done: i + 1, of: switches)
    }
    let perSwitch = (now() - start) / Double(max(1, switches))
    rebuilt.merge(experts: experts, gates: gates)

    // Weights: every adapted matrix of both, as float32.
    var worst: Float = 0, largest: Float = 0
    let widest = max(c.hiddenSize, c.intermediateSize, c.queryDimension)
    let rowA = FloatBuffer(count: widest), rowB = FloatBuffer(count: widest)
    for l in 0..<c.numHiddenLayers {
        let la = inPlace.weights(layer: l, tokens: 1)!, lb = rebuilt.weights(layer: l, tokens: 1)!
        for (i, tensor) in LayerTensor.projections.enumerated() where adapter.projections[l][i] != nil {
            let wa = la.projection(tensor)!.weight, wb = lb.projection(tensor)!.weight
            for r in 0..<wa.rows {
                wa.dequantizeRow(r, into: rowA.pointer)
                wb.dequantizeRow(r, into: rowB.pointer)
                for j in 0..<wa.cols {
                    worst = max(worst, abs(rowA[j] - rowB[j]))
                    largest = max(largest, abs(rowB[j]))
                }
            }
        }
    }

    // Logits: the same tokens decoded with each; both follow the router, so both merge the same selections.
    let tokens = (0..<16).map { _ in Int(generator.next() % UInt64(c.vocabSize)) }
    func decodeAll(_ adapters: MergedAdapters) throws -> [Float] {
        session.adapters = .fused(adapters)
        defer { session.adapters = nil }
        session.reset()
        var all: [Float] = []
        for token in tokens { all += try session.decode(token) }
        return all
    }
    let la = try decodeAll(inPlace), lb = try decodeAll(rebuilt)
    let logitDrift = zip(la, lb).map { abs($0 - $1) }.max() ?? 0
    let logitScale = lb.map(abs).max() ?? 0
    let dtype = model.weights.layers[0].q.weight.dtype
    return [
        "drift after \(switches) in-place switches at \(dtype) (\(fmt(perSwitch * 1000, 1)) ms a switch): weights max |Δ| \(String(format: "%.3g", worst)) (largest |w| \(String(format: "%.3g", largest))), logits of \(tokens.count) decoded tokens max |Δ| \(String(format: "%.3g", logitDrift)) (largest |logit| \(String(format: "%.3g", logitScale))) against a rebuild from the base",
    ]
}
