import Adapters
import Kernels
import Model

/// The loss of one optimizer step and its gradient with respect to every adapter parameter, exactly:
///
///     loss = Σ cross-entropy of the step's labelled tokens / their number
///          + aux · mean over routers of N · Σᵢ fᵢ Pᵢ  +  z · mean over routers and tokens of logsumexp(router logits)²
///
/// over all the step's micro-batches, so that B examples in G micro-batches give the gradient of one batch of B·G.
/// For a router, over every token of the step: fᵢ = the share of the k·T top-k slots that chose expert i (a
/// constant), Pᵢ = the mean softmax probability of expert i. Since fᵢ is the whole step's, a step of several
/// micro-batches with an aux term first runs each forward once to count the choices (routing only, no backward).
public final class TrainingObjective {
    public let model: LanguageModel
    public let parameters: AdapterParameters
    public let pool: ThreadPool
    /// The most rows of one micro-batch.
    public let capacity: Int
    public var auxCoefficient: Float
    public var zCoefficient: Float

    let forward: ReferenceForward
    let plain: ReferenceAdapters
    let tape: ActivationTape
    let backward: ModelBackward
    /// The routers' sites (`RouterSite`), in a fixed order.
    public let routers: [Int]
    // The head: labelled rows gathered, their logits (then gradients), and the final norm's gradient.
    let headRows = 64
    let compact: FloatBuffer, logits: FloatBuffer, compactGradient: FloatBuffer, dFinal: FloatBuffer
    let headScratch: [FloatBuffer]
    let productScratch: FloatBuffer

    /// The value of the loss over a step, its terms, and what the routers did.
    public struct Value: Equatable, Sendable {
        /// The whole loss, as the gradient differentiates it.
        public var total: Double
        /// Mean cross-entropy of the labelled tokens.
        public var crossEntropy: Double
        /// Mean over routers of N · Σ fᵢ Pᵢ (before its coefficient; 1 when perfectly balanced).
        public var aux: Double
        /// Mean over routers and tokens of logsumexp² (before its coefficient).
        public var z: Double
        public var labelled: Int
        public var tokens: Int
        /// Each router's fᵢ, by site (`RouterSite`: −1 the token router, layer · 7 + projection under layer routing).
        public var utilization: [Int: [Double]]
    }

    public init(model: LanguageModel, parameters: AdapterParameters, pool: ThreadPool, capacity: Int,
                auxCoefficient: Float = 0, zCoefficient: Float = 0) throws {
        self.model = model
        self.parameters = parameters
        self.pool = pool
        self.capacity = max(1, capacity)
        self.auxCoefficient = auxCoefficient
        self.zCoefficient = zCoefficient
        let c = model.configuration, shape = parameters.shape
        forward = ReferenceForward(model: model, pool: pool, capacity: self.capacity)
        plain = try ReferenceAdapters(adapter: parameters.adapter, model: model, threads: pool.threadCount,
                                      capacity: self.capacity, recording: true)
        let first = shape.kind == .moeToken ? min(shape.routerLayer, shape.layers[0]) : shape.layers[0]
        tape = ActivationTape(configuration: c, capacity: self.capacity, firstLayer: first)
        backward = ModelBackward(model: model, pool: pool, capacity: self.capacity, shape: shape)
        switch shape.kind {
        case .lora: routers = []
        case .moeToken: routers = [RouterSite.token]
        case .moeLayer: routers = shape.layers.flatMap { l in shape.targets.map { RouterSite.layer(l, $0) } }
        }
        compact = FloatBuffer(count: headRows * c.hiddenSize, zeroed: false)
        logits = FloatBuffer(count: headRows * c.vocabSize, zeroed: false)
        compactGradient = FloatBuffer(count: headRows * c.hiddenSize, zeroed: false)
        dFinal = FloatBuffer(count: self.capacity * c.hiddenSize, zeroed: false)
        headScratch = (0..<pool.threadCount).map { _ in FloatBuffer(count: matmulScratchCount(cols: c.hiddenSize), zeroed: false) }
        productScratch = FloatBuffer(count: max(1, pool.threadCount * transposedProductScratchCount(model.weights.lmHead)),
                                     zeroed: false)
    }

    /// Bytes of activations kept for the backward pass (the tape, sized for `capacity` rows).
    public var tapeBytes: Int { tape.byteCount }

    /// Sets the parameters' gradients to those of the step's loss and returns its value.
    public func gradient(_ step: [MicroBatch]) throws -> Value {
        parameters.zeroGradients(pool: pool)
        return try run(step, differentiate: true)
    }

    /// The step's loss without gradients (validation).
    public func loss(_ step: [MicroBatch]) throws -> Value {
        try run(step, differentiate: false)
    }

    private func run(_ step: [MicroBatch], differentiate: Bool) throws -> Value {
        let labelled = step.reduce(0) { $0 + $1.labelledCount }, tokens = step.reduce(0) { $0 + $1.rows }
        guard labelled > 0 else { throw TrainingError.invalidOptions("a step with no labelled token has no loss") }
        for batch in step where batch.rows > capacity {
            throw TrainingError.invalidOptions("a micro-batch of \(batch.rows) rows exceeds the \(capacity) the objective holds")
        }
        let shape = parameters.shape, n = shape.experts, k = shape.topK
        var counts = [Int: [Int]](uniqueKeysWithValues: routers.map { ($0, [Int](repeating: 0, count: n)) })
        func count(rows t: Int) {
            for site in routers {
                let d = RouterSite.decisions(site, in: plain)
                for i in 0..<(t * k) { counts[site]![Int(d.experts[i])] += 1 }
            }
        }
        // The step's fᵢ before any backward pass when it takes several micro-batches.
        let counted = differentiate && auxCoefficient != 0 && !routers.isEmpty && step.count > 1
        if counted {
            for batch in step {
                try forward.run(tokens: batch.tokens, segments: batch.segments, adapters: plain)
                count(rows: batch.rows)
            }
        }
        var fractions = [Int: [Float]]()
        func setFractions() {
            for site in routers { fractions[site] = counts[site]!.map { Float($0) / Float(k * tokens) } }
        }
        if counted { setFractions() }

        var crossEntropy = 0.0, probabilities = [Int: [Double]](), squares = 0.0
        for site in routers { probabilities[site] = [Double](repeating: 0, count: n) }
        var p = [Float](repeating: 0, count: n)
        for batch in step {
            let t = batch.rows
            try forward.run(tokens: batch.tokens, segments: batch.segments, adapters: plain, tape: differentiate ? tape : nil)
            if !counted { count(rows: t) }
            for site in routers {
                let d = RouterSite.decisions(site, in: plain)
                let z = d.logits!.pointer
                for row in 0..<t {
                    let lse = routerSoftmax(z + row * n, count: n, into: &p)
                    squares += Double(lse) * Double(lse)
                    for i in 0..<n { probabilities[site]![i] += Double(p[i]) }
                }
            }
            crossEntropy += head(batch, scale: 1 / Float(labelled), differentiate: differentiate)
            guard differentiate else { continue }
            if step.count == 1 { setFractions() }
            let weight = Float(max(1, routers.count))
            backward.run(dFinal: dFinal.pointer, rows: t, segments: batch.segments, tape: tape, parameters: parameters,
                         forward: plain,
                         routerTerms: .init(auxWeight: auxCoefficient / weight, zWeight: zCoefficient / weight,
                                            stepTokens: tokens, fractions: fractions.isEmpty ? zeroFractions(n) : fractions))
        }
        if fractions.isEmpty { setFractions() }
        var aux = 0.0
        for site in routers {
            for i in 0..<n { aux += Double(n) * Double(fractions[site]![i]) * probabilities[site]![i] / Double(tokens) }
        }
        let routerCount = Double(max(1, routers.count))
        aux /= routerCount
        let z = routers.isEmpty ? 0 : squares / Double(tokens) / routerCount
        let meanCE = crossEntropy / Double(labelled)
        return Value(total: meanCE + Double(auxCoefficient) * aux + Double(zCoefficient) * z, crossEntropy: meanCE,
                     aux: aux, z: z, labelled: labelled, tokens: tokens,
                     utilization: fractions.mapValues { $0.map(Double.init) })
    }

    private func zeroFractions(_ n: Int) -> [Int: [Float]] {
        Dictionary(uniqueKeysWithValues: routers.map { ($0, [Float](repeating: 0, count: n)) })
    }

    /// The cross-entropy of the batch's labelled rows (summed) and, when differentiating, ∂loss/∂(final norm output)
    /// into `dFinal` [rows, D] with each labelled row weighted by `scale`. Labelled rows go through the head
    /// `headRows` at a time; the others get no logits and a zero gradient.
    private func head(_ batch: MicroBatch, scale: Float, differentiate: Bool) -> Double {
        let c = model.configuration, d = c.hiddenSize, v = c.vocabSize, lmHead = model.weights.lmHead
        let labelledRows = batch.targets.indices.filter { batch.targets[$0] >= 0 }
        if differentiate { dFinal.pointer.update(repeating: 0, count: batch.rows * d) }
        var total = 0.0
        var start = 0
        while start < labelledRows.count {
            let rows = Array(labelledRows[start..<min(start + headRows, labelledRows.count)])
            let m = rows.count
            for (i, row) in rows.enumerated() {
                (compact.pointer + i * d).update(from: forward.normalizedOutput.pointer + row * d, count: d)
            }
            pool.run { thread in
                matmul(lmHead, compact.pointer, tokens: m, logits.pointer, ldy: v,
                       rows: ThreadPool.chunk(v, part: thread, of: pool.threadCount, granularity: 16),
                       scratch: headScratch[thread].pointer)
            }
            let targets = rows.map { batch.targets[$0] }
            let (loss, _) = targets.withUnsafeBufferPointer { targets in
                crossEntropy(logits.pointer, vocab: v, targets: targets.baseAddress!, tokens: m, gradientScale: scale, pool: pool)
            }
            total += loss
            if differentiate {
                transposedProduct(lmHead, logits.pointer, ldy: v, tokens: m, compactGradient.pointer, ldx: d, accumulate: false,
                                  pool: pool, scratch: productScratch.pointer)
                for (i, row) in rows.enumerated() {
                    (dFinal.pointer + row * d).update(from: compactGradient.pointer + i * d, count: d)
                }
            }
            start += m
        }
        return total
    }
}
