import Adapters
import Kernels
import Model

/// The backward pass of the reference forward (`ReferenceForward` with an `ActivationTape`), llm.c style: each
/// operation's gradient in reverse order, from the final norm down to the lowest adapted layer, through the frozen
/// backbone in its stored type (dX = dY·W; quantized weights dequantized a tile at a time) into the adapters'
/// gradients. Nothing below the lowest adapted layer runs: no parameter there would receive a gradient.
final class ModelBackward {
    let model: LanguageModel
    let pool: ThreadPool
    let capacity: Int
    let c: ModelConfiguration
    let gradients: AdapterGradients
    // [T, width] gradients.
    let dx: FloatBuffer, dNormalized: FloatBuffer, dAttention: FloatBuffer, dq: FloatBuffer, dk: FloatBuffer, dv: FloatBuffer
    let dActivation: FloatBuffer, dGate: FloatBuffer, dUp: FloatBuffer
    /// [T, k] the gates' gradients: token routing's, summed over every adapted projection; layer routing's, one
    /// projection at a time.
    let gateGradient: FloatBuffer
    let productScratch: FloatBuffer
    var attentionScratch: FloatBuffer

    init(model: LanguageModel, pool: ThreadPool, capacity t: Int, shape: AdapterShape) {
        self.model = model
        self.pool = pool
        capacity = t
        c = model.configuration
        let widest = max(c.hiddenSize, c.intermediateSize, c.queryDimension)
        gradients = AdapterGradients(capacity: t, topK: shape.topK, experts: shape.experts, rank: shape.rank, widest: widest,
                                     pool: pool)
        dx = FloatBuffer(count: t * c.hiddenSize, zeroed: false)
        dNormalized = FloatBuffer(count: t * c.hiddenSize, zeroed: false)
        dAttention = FloatBuffer(count: t * c.queryDimension, zeroed: false)
        dq = FloatBuffer(count: t * c.queryDimension, zeroed: false)
        dk = FloatBuffer(count: t * c.keyValueDimension, zeroed: false)
        dv = FloatBuffer(count: t * c.keyValueDimension, zeroed: false)
        dActivation = FloatBuffer(count: t * c.intermediateSize, zeroed: false)
        dGate = FloatBuffer(count: t * c.intermediateSize, zeroed: false)
        dUp = FloatBuffer(count: t * c.intermediateSize, zeroed: false)
        gateGradient = FloatBuffer(count: t * shape.topK)
        var scratch = transposedProductScratchCount(model.weights.lmHead)
        for layer in model.weights.layers {
            for tensor in LayerTensor.projections {
                scratch = max(scratch, transposedProductScratchCount(layer.projection(tensor)!.weight))
            }
        }
        productScratch = FloatBuffer(count: max(1, scratch * pool.threadCount), zeroed: false)
        attentionScratch = FloatBuffer(count: 1, zeroed: false)
    }

    /// dX (+)= dY · W over all rows, split between the threads by columns.
    private func throughWeight(_ w: WeightMatrix, _ dy: UnsafePointer<Float>, rows t: Int, into dx: UnsafeMutablePointer<Float>,
                               accumulate: Bool) {
        transposedProduct(w, dy, ldy: w.rows, tokens: t, dx, ldx: w.cols, accumulate: accumulate, pool: pool,
                          scratch: productScratch.pointer)
    }

    /// The gradients of every adapter parameter for one pass of `rows` rows whose final-norm output received
    /// `dFinal` [rows, D]: accumulated into `parameters`. `routerTerms` gives each router's aux / z weights and the
    /// step's expert fractions.
    func run(dFinal: UnsafePointer<Float>, rows t: Int, segments: [Range<Int>], tape: ActivationTape,
             parameters: AdapterParameters, forward plain: ReferenceAdapters,
             routerTerms: AdapterGradients.RouterTerms) {
        let w = model.weights, d = c.hiddenSize, eps = c.rmsNormEps, shape = parameters.shape
        let lowest = shape.layers[0]
        pool.parallelFor(t) { rows in
            rmsNormBackward(tape.output.pointer, weight: w.finalNorm.pointer, eps: eps, count: d, rows: rows, dOut: dFinal,
                            into: self.dx.pointer, accumulate: false)
        }
        gateGradient.pointer.update(repeating: 0, count: t * shape.topK)
        let attention = TrainingAttention(segments: segments, heads: c.numAttentionHeads, kvHeads: c.numKeyValueHeads,
                                          headDim: c.headDim, window: c.slidingWindow, threads: pool.threadCount)!
        if attentionScratch.count < attention.driverScratchCount {
            attentionScratch = FloatBuffer(count: attention.driverScratchCount, zeroed: false)
        }

        /// The adapters of `tensor` (input x, output gradient dy; input gradient into dxIn when wanted), and under
        /// layer routing its router.
        func adapters(_ l: Int, _ tensor: LayerTensor, input x: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                      dxIn: UnsafeMutablePointer<Float>, inputGradient: Bool) {
            guard plain.adapts(layer: l, projection: tensor) else { return }
            let layerRouting = shape.kind == .moeLayer
            if layerRouting { gateGradient.pointer.update(repeating: 0, count: t * shape.topK) }
            gradients.projection(layer: l, tensor, parameters: parameters, forward: plain, input: x, outputGradient: dy,
                                 rows: t, inputGradient: dxIn, gateGradient: gateGradient.pointer)
            if layerRouting, let r = parameters.routers[l][tensor.projectionIndex!] {
                let router = parameters.tensors[r]
                let site = RouterSite.layer(l, tensor)
                gradients.router(decisions: plain.decisions(layer: l, projection: tensor), k: shape.topK,
                                                   experts: shape.experts, fractions: routerTerms.fractions[site]!, terms: routerTerms,
                                                   gateGradient: gateGradient.pointer, input: x, inputs: router.shape[1],
                                                   rows: t, router: router, inputGradient: inputGradient ? dxIn : nil)
            }
        }

        for l in (lowest..<c.numHiddenLayers).reversed() {
            let layer = tape.layers[l]!, lw = w.layers[l], below = l > lowest
            // MLP block: x_out = middle + down(SiLU(gate(n)) · up(n)), n = RMSNorm(middle). dx holds ∂L/∂x_out.
            throughWeight(lw.down.weight, dx.pointer, rows: t, into: dActivation.pointer, accumulate: false)
            adapters(l, .down, input: layer.activation.pointer, dy: dx.pointer, dxIn: dActivation.pointer, inputGradient: true)
            let f = c.intermediateSize
            pool.parallelFor(t * f, granularity: 16) { range in
                siluMulBackward(gate: layer.gate.pointer + range.lowerBound, up: layer.up.pointer + range.lowerBound,
                                dOut: self.dActivation.pointer + range.lowerBound, count: range.count,
                                dGate: self.dGate.pointer + range.lowerBound, dUp: self.dUp.pointer + range.lowerBound)
            }
            throughWeight(lw.gate.weight, dGate.pointer, rows: t, into: dNormalized.pointer, accumulate: false)
            throughWeight(lw.up.weight, dUp.pointer, rows: t, into: dNormalized.pointer, accumulate: true)
            adapters(l, .gate, input: layer.mlpNormalized.pointer, dy: dGate.pointer, dxIn: dNormalized.pointer, inputGradient: true)
            adapters(l, .up, input: layer.mlpNormalized.pointer, dy: dUp.pointer, dxIn: dNormalized.pointer, inputGradient: true)
            pool.parallelFor(t) { rows in
                rmsNormBackward(layer.middle.pointer, weight: lw.mlpNorm.pointer, eps: eps, count: d, rows: rows,
                                dOut: self.dNormalized.pointer, into: self.dx.pointer, accumulate: true)
            }

            // Attention block: middle = input + o(attention(rope(q(n)), rope(k(n)), v(n))), n = RMSNorm(input).
            throughWeight(lw.o.weight, dx.pointer, rows: t, into: dAttention.pointer, accumulate: false)
            adapters(l, .o, input: layer.attention.pointer, dy: dx.pointer, dxIn: dAttention.pointer, inputGradient: true)
            attention.backward(q: layer.q.pointer, k: layer.k.pointer, v: layer.v.pointer, out: layer.attention.pointer,
                               lse: layer.logSumExp.pointer, dOut: dAttention.pointer, dq: dq.pointer, dk: dk.pointer,
                               dv: dv.pointer, pool: pool, scratch: attentionScratch.pointer)
            let rope = w.rope, half = c.headDim / 2, qd = c.queryDimension, kd = c.keyValueDimension
            pool.parallelFor(t) { rows in
                for i in rows {
                    let cos = tape.cosines.pointer + i * half, sin = tape.sines.pointer + i * half
                    rope.rotateBackward(self.dq.pointer + i * qd, heads: self.c.numAttentionHeads, cos: cos, sin: sin)
                    rope.rotateBackward(self.dk.pointer + i * kd, heads: self.c.numKeyValueHeads, cos: cos, sin: sin)
                }
            }
            if below {
                throughWeight(lw.q.weight, dq.pointer, rows: t, into: dNormalized.pointer, accumulate: false)
                throughWeight(lw.k.weight, dk.pointer, rows: t, into: dNormalized.pointer, accumulate: true)
                throughWeight(lw.v.weight, dv.pointer, rows: t, into: dNormalized.pointer, accumulate: true)
            }
            for (tensor, dy) in [(LayerTensor.q, dq), (.k, dk), (.v, dv)] {
                adapters(l, tensor, input: layer.normalized.pointer, dy: dy.pointer, dxIn: dNormalized.pointer, inputGradient: below)
            }
            if below {
                pool.parallelFor(t) { rows in
                    rmsNormBackward(layer.input.pointer, weight: lw.attentionNorm.pointer, eps: eps, count: d, rows: rows,
                                    dOut: self.dNormalized.pointer, into: self.dx.pointer, accumulate: true)
                }
            }
        }

        // Token routing: the one router, on its layer's normalized input, with every projection's gate gradients.
        if shape.kind == .moeToken, let r = parameters.tokenRouter {
            let input = tape.layers[shape.routerLayer]!.normalized.pointer
            gradients.router(decisions: plain.token, k: shape.topK, experts: shape.experts,
                                                            fractions: routerTerms.fractions[RouterSite.token]!, terms: routerTerms,
                                                            gateGradient: gateGradient.pointer, input: input, inputs: d, rows: t,
                                                            router: parameters.tensors[r], inputGradient: nil)
        }
    }
}
