#if canImport(Glibc)
import Glibc
#endif
import Adapters
import Kernels
import Model

/// The adapters' backward pass, grouped by expert as their forward is (`ReferenceAdapters`): for a projection with
/// input x [T, in] and output gradient dy [T, out], each (row, choice j, expert e) entry with gate g and scale s,
/// h = A_e x (kept by the forward) and v = B_eᵀ dy:
///
///     dB_e += g·s · dy hᵀ,   dA_e += g·s · v xᵀ,   dx += g·s · A_eᵀ v,   c_j += s · ⟨v, h⟩
///
/// where c_j = ⟨dy, s·B_e A_e x⟩ is what the gate g_j receives (summed over every projection the decision feeds).
/// A router with logits z, p = softmax(z), then takes dz_i = g_i (c_i − Σ_j g_j c_j) for its chosen experts (the
/// choice itself is a constant), plus the aux and z-loss terms (DESIGN.md, "Training math").
///
/// A router is known by its site: layer · 7 + projection index under layer routing, −1 for the token router.
enum RouterSite {
    static let token = -1
    static func layer(_ l: Int, _ tensor: LayerTensor) -> Int { l * LayerTensor.projections.count + tensor.projectionIndex! }

    /// The decisions of the router at `site` in `plain`'s last pass.
    static func decisions(_ site: Int, in plain: ReferenceAdapters) -> ReferenceAdapters.Decisions {
        guard site != token else { return plain.token }
        let kinds = LayerTensor.projections.count
        return plain.decisions(layer: site / kinds, projection: LayerTensor.projections[site % kinds])
    }
}

/// Three parallel steps per projection: the entries split between threads (v, c, the scaled factors); B's rows
/// split (dB); the input columns split (dA, dx). No two threads write the same value.
final class AdapterGradients {
    let capacity: Int
    let width: Int
    let pool: ThreadPool
    /// [T·k, out] dy's rows in grouped order; [T·k, r] v scaled by g·s, and g·s ∘ h.
    let gatheredGradient: FloatBuffer
    let scaledV: FloatBuffer
    let scaledH: FloatBuffer
    /// Per thread: [T·k, in-columns] gathered inputs and [T·k, in-columns] products to scatter.
    let gatheredInput: [FloatBuffer]
    let product: [FloatBuffer]
    /// Routers: [T, N] dz.
    let dz: FloatBuffer

    init(capacity t: Int, topK k: Int, experts n: Int, rank: Int, widest: Int, pool: ThreadPool) {
        capacity = t
        width = rank
        self.pool = pool
        gatheredGradient = FloatBuffer(count: t * k * widest, zeroed: false)
        scaledV = FloatBuffer(count: t * k * rank, zeroed: false)
        scaledH = FloatBuffer(count: t * k * rank, zeroed: false)
        gatheredInput = (0..<pool.threadCount).map { _ in FloatBuffer(count: t * k * widest, zeroed: false) }
        product = (0..<pool.threadCount).map { _ in FloatBuffer(count: t * k * widest, zeroed: false) }
        dz = FloatBuffer(count: t * n, zeroed: false)
    }

    /// Gradients of one adapted projection for the last pass's `rows` rows: accumulates dA, dB of its experts into
    /// `parameters`, the adapters' share of dx [rows, in] into `dx`, and each entry's c into `gateGradient` [rows, k].
    func projection(layer l: Int, _ tensor: LayerTensor, parameters: AdapterParameters, forward plain: ReferenceAdapters,
                    input x: UnsafePointer<Float>, outputGradient dy: UnsafePointer<Float>, rows t: Int,
                    inputGradient dx: UnsafeMutablePointer<Float>, gateGradient: UnsafeMutablePointer<Float>) {
        let index = tensor.projectionIndex!
        let decisions = plain.decisions(layer: l, projection: tensor)
        guard let h = plain.hidden[l * LayerTensor.projections.count + index]?.pointer else { return }
        let k = plain.k, r = width, scale = parameters.shape.scale
        let experts = (0..<parameters.shape.experts).map { parameters.pair(l, index, $0) }
        guard let first = experts.compactMap({ $0 }).first else { return }
        let out = parameters.tensors[first.b].shape[0], inputs = parameters.tensors[first.a].shape[1]
        let entries = decisions.offsets[parameters.shape.experts]
        let dyg = gatheredGradient.pointer, v = scaledV.pointer, hs = scaledH.pointer
        let tensors = parameters.tensors
        // dy's rows of the grouped entries `run` of expert e: in place when the expert's rows are consecutive (fixed
        // routing), else gathered by step 1.
        func gradientRows(_ e: Int, _ run: Range<Int>) -> UnsafePointer<Float> {
            guard let first = decisions.consecutiveRows(decisions.offsets[e]..<decisions.offsets[e + 1]) else {
                return UnsafePointer(dyg + run.lowerBound * out)
            }
            return dy + (first + run.lowerBound - decisions.offsets[e]) * out
        }

        // 1. Per entry: dy's row gathered, v = B_eᵀ dy, c = s·⟨v, h⟩, then v and h scaled by g·s.
        pool.run { thread in
            let mine = ThreadPool.chunk(entries, part: thread, of: pool.threadCount)
            guard !mine.isEmpty else { return }
            for (e, pair) in experts.enumerated() {
                guard let pair else { continue }
                let run = (decisions.offsets[e]..<decisions.offsets[e + 1]).clamped(to: mine)
                guard !run.isEmpty else { continue }
                if decisions.consecutiveRows(decisions.offsets[e]..<decisions.offsets[e + 1]) == nil {
                    for entry in run {
                        (dyg + entry * out).update(from: dy + Int(decisions.rows[entry]) * out, count: out)
                    }
                }
                sgemm(m: run.count, n: r, k: out, a: gradientRows(e, run), lda: out,
                      b: tensors[pair.b].value.pointer, ldb: r, beta: 0, c: v + run.lowerBound * r, ldc: r)
                for entry in run {
                    let row = Int(decisions.rows[entry]), j = Int(decisions.slots[entry])
                    let ve = v + entry * r, he = h + entry * width
                    gateGradient[row * k + j] += scale * dot(ve, he, r)
                    let gs = decisions.gates[row * k + j] * scale
                    for q in 0..<r {
                        ve[q] *= gs
                        hs[entry * r + q] = gs * he[q]
                    }
                }
            }
        }
        // 2. dB_e[o, :] += Σ (g·s) dy[o] hᵀ over the expert's entries, for this thread's rows o of B.
        pool.run { thread in
            let rows = ThreadPool.chunk(out, part: thread, of: pool.threadCount, granularity: 16)
            guard !rows.isEmpty else { return }
            for (e, pair) in experts.enumerated() {
                guard let pair else { continue }
                let run = decisions.offsets[e]..<decisions.offsets[e + 1]
                guard !run.isEmpty else { continue }
                sgemm(.transposed, .plain, m: rows.count, n: r, k: run.count,
                      a: gradientRows(e, run) + rows.lowerBound, lda: out, b: hs + run.lowerBound * r, ldb: r,
                      beta: 1, c: tensors[pair.b].gradient.pointer + rows.lowerBound * r, ldc: r)
            }
        }
        // 3. dA_e[:, cols] += (g·s v)ᵀ x[:, cols]; dx[row, cols] += (g·s v) A_e[:, cols], for this thread's columns.
        pool.run { thread in
            let columns = ThreadPool.chunk(inputs, part: thread, of: pool.threadCount, granularity: 16)
            guard !columns.isEmpty else { return }
            let n = columns.count, xg = gatheredInput[thread].pointer, p = product[thread].pointer
            for (e, pair) in experts.enumerated() {
                guard let pair else { continue }
                let run = decisions.offsets[e]..<decisions.offsets[e + 1]
                guard !run.isEmpty else { continue }
                if let first = decisions.consecutiveRows(run) {
                    // In place: x's and dx's rows of the run are consecutive.
                    sgemm(.transposed, .plain, m: r, n: n, k: run.count, a: v + run.lowerBound * r, lda: r,
                          b: x + first * inputs + columns.lowerBound, ldb: inputs,
                          beta: 1, c: tensors[pair.a].gradient.pointer + columns.lowerBound, ldc: inputs)
                    sgemm(m: run.count, n: n, k: r, a: v + run.lowerBound * r, lda: r,
                          b: tensors[pair.a].value.pointer + columns.lowerBound, ldb: inputs, beta: 1,
                          c: dx + first * inputs + columns.lowerBound, ldc: inputs)
                    continue
                }
                for (i, entry) in run.enumerated() {
                    (xg + i * n).update(from: x + Int(decisions.rows[entry]) * inputs + columns.lowerBound, count: n)
                }
                sgemm(.transposed, .plain, m: r, n: n, k: run.count, a: v + run.lowerBound * r, lda: r, b: xg, ldb: n,
                      beta: 1, c: tensors[pair.a].gradient.pointer + columns.lowerBound, ldc: inputs)
                sgemm(m: run.count, n: n, k: r, a: v + run.lowerBound * r, lda: r,
                      b: tensors[pair.a].value.pointer + columns.lowerBound, ldb: inputs, beta: 0, c: p, ldc: n)
                for (i, entry) in run.enumerated() {
                    addInPlace(dx + Int(decisions.rows[entry]) * inputs + columns.lowerBound, p + i * n, count: n)
                }
            }
        }
    }

    /// What one router adds to the loss and its gradients.
    struct RouterTerms {
        /// auxCoefficient / routers and zCoefficient / routers: each router's share of the mean over routers.
        var auxWeight: Float
        var zWeight: Float
        /// Tokens of the whole step (the means' denominator).
        var stepTokens: Int
        /// Each router's fᵢ over the step: the share of the k·T top-k slots that chose expert i (a constant), by
        /// `RouterSite`.
        var fractions: [Int: [Float]]
    }

    /// A router's backward pass for the last pass's `rows` rows: dz from the gates' gradients `gateGradient`
    /// [rows, k] and the aux and z-loss terms, then dR += dzᵀ u and (`inputGradient`, layer routing) du += dz R.
    func router(decisions d: ReferenceAdapters.Decisions, k: Int, experts n: Int, fractions: [Float], terms: RouterTerms,
                gateGradient: UnsafePointer<Float>, input u: UnsafePointer<Float>, inputs: Int, rows t: Int,
                router: AdapterParameters.Tensor, inputGradient du: UnsafeMutablePointer<Float>?) {
        let logits = d.logits!.pointer, dz = dz.pointer
        let auxScale = terms.auxWeight * Float(n) / Float(terms.stepTokens)
        let zScale = terms.zWeight * 2 / Float(terms.stepTokens)
        var p = [Float](repeating: 0, count: n)
        for row in 0..<t {
            let g = dz + row * n
            let lse = routerSoftmax(logits + row * n, count: n, into: &p)
            var fp: Float = 0
            for i in 0..<n { fp += fractions[i] * p[i] }
            for i in 0..<n { g[i] = auxScale * p[i] * (fractions[i] - fp) + zScale * lse * p[i] }
            // The gates: g_j = softmax over the chosen of z, so dz_i = g_i (c_i − Σ_j g_j c_j) for i chosen.
            var mean: Float = 0
            for j in 0..<k { mean += d.gates[row * k + j] * gateGradient[row * k + j] }
            for j in 0..<k {
                let i = Int(d.experts[row * k + j])
                g[i] += d.gates[row * k + j] * (gateGradient[row * k + j] - mean)
            }
        }
        pool.run { thread in
            let columns = ThreadPool.chunk(inputs, part: thread, of: pool.threadCount, granularity: 16)
            guard !columns.isEmpty else { return }
            sgemm(.transposed, .plain, m: n, n: columns.count, k: t, a: dz, lda: n, b: u + columns.lowerBound, ldb: inputs,
                  beta: 1, c: router.gradient.pointer + columns.lowerBound, ldc: inputs)
            if let du {
                sgemm(m: t, n: columns.count, k: n, a: dz, lda: n, b: router.value.pointer + columns.lowerBound, ldb: inputs,
                      beta: 1, c: du + columns.lowerBound, ldc: inputs)
            }
        }
    }
}
