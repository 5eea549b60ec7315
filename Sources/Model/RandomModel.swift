import Formats
import Kernels

/// Model shapes the benchmark builds with random weights (the shapes of the peers' benchmark scripts).
public enum BenchmarkShape: String, CaseIterable, Sendable {
    case tiny
    case smollm2_135m = "smollm2-135m"
    case tinyllama_1_1b = "tinyllama-1.1b"

    public var configuration: ModelConfiguration {
        switch self {
        case .tiny:
            return ModelConfiguration(modelType: .llama, hiddenSize: 256, intermediateSize: 704, numHiddenLayers: 4,
                                      numAttentionHeads: 4, numKeyValueHeads: 2, vocabSize: 4096)
        case .smollm2_135m:
            return ModelConfiguration(modelType: .llama, hiddenSize: 576, intermediateSize: 1536, numHiddenLayers: 30,
                                      numAttentionHeads: 9, numKeyValueHeads: 3, vocabSize: 49152, ropeTheta: 100000,
                                      tieWordEmbeddings: true, maxPositionEmbeddings: 8192)
        case .tinyllama_1_1b:
            return ModelConfiguration(modelType: .llama, hiddenSize: 2048, intermediateSize: 5632, numHiddenLayers: 22,
                                      numAttentionHeads: 32, numKeyValueHeads: 4, vocabSize: 32000,
                                      maxPositionEmbeddings: 2048)
        }
    }
}

extension LanguageModel {
    /// A model of `configuration` with random weights (uniform, std ≈ 0.02; norms 1) stored as `dtype`, built in
    /// memory with HF tensor names — for benchmarks and tests. Deterministic for a seed and thread count.
    public static func random(configuration c: ModelConfiguration, dtype: DType, seed: UInt64 = 1,
                              pool: ThreadPool) throws -> LanguageModel {
        try c.validate(file: "random model")
        // Block types store rows of whole blocks: the input width of every matrix must be one.
        for (key, width) in [("hidden_size", c.hiddenSize), ("intermediate_size", c.intermediateSize),
                             ("num_attention_heads × head_dim", c.queryDimension)] where width % dtype.blockElements != 0 {
            throw ModelError.invalidConfiguration(file: "random model", key: key,
                detail: "\(width) is not a multiple of \(dtype.blockElements), as \(dtype) weights need")
        }
        let tensors = InMemoryTensors(label: "random \(dtype) model")
        let naming = TensorNaming.huggingFace
        var index: UInt64 = 0
        func matrix(_ name: String, _ rows: Int, _ cols: Int) {
            index += 1
            fillRandom(tensors.add(name, dtype: dtype, shape: [rows, cols]), dtype: dtype, rows: rows, cols: cols,
                       seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ index, pool: pool)
        }
        func ones(_ name: String, _ count: Int) {
            tensors.add(name, dtype: .f32, shape: [count]).initializeMemory(as: Float.self, repeating: 1, count: count)
        }
        matrix(naming.embedding, c.vocabSize, c.hiddenSize)
        for l in 0..<c.numHiddenLayers {
            let module = { (t: LayerTensor) in naming.module(t, layer: l) }
            ones(module(.attentionNorm) + ".weight", c.hiddenSize)
            matrix(module(.q) + ".weight", c.queryDimension, c.hiddenSize)
            matrix(module(.k) + ".weight", c.keyValueDimension, c.hiddenSize)
            matrix(module(.v) + ".weight", c.keyValueDimension, c.hiddenSize)
            matrix(module(.o) + ".weight", c.hiddenSize, c.queryDimension)
            ones(module(.mlpNorm) + ".weight", c.hiddenSize)
            matrix(module(.gate) + ".weight", c.intermediateSize, c.hiddenSize)
            matrix(module(.up) + ".weight", c.intermediateSize, c.hiddenSize)
            matrix(module(.down) + ".weight", c.hiddenSize, c.intermediateSize)
            if c.qkvBias {
                for t in [LayerTensor.q, .k, .v] {
                    let n = t == .q ? c.queryDimension : c.keyValueDimension
                    tensors.add(module(t) + ".bias", dtype: .f32, shape: [n]).initializeMemory(as: Float.self, repeating: 0, count: n)
                }
            }
            if c.outputBias {
                tensors.add(module(.o) + ".bias", dtype: .f32, shape: [c.hiddenSize])
                    .initializeMemory(as: Float.self, repeating: 0, count: c.hiddenSize)
            }
        }
        ones(naming.finalNorm, c.hiddenSize)
        if !c.tieWordEmbeddings { matrix(naming.lmHead, c.vocabSize, c.hiddenSize) }
        let weights = try ModelWeights(configuration: c, source: tensors, naming: naming, path: tensors.label)
        return LanguageModel(path: tensors.label, format: .huggingFace, weights: weights)
    }
}

/// Fills a [rows, cols] matrix of `dtype` with uniform values in ±0.0346 (std 0.02), rows split over the pool.
private func fillRandom(_ data: UnsafeMutableRawPointer, dtype: DType, rows: Int, cols: Int, seed: UInt64, pool: ThreadPool) {
    let rowBytes = dtype.byteCount(elements: cols)!
    let scratch = (0..<pool.threadCount).map { _ in FloatBuffer(count: cols) }
    pool.run { thread in
        let range = ThreadPool.chunk(rows, part: thread, of: pool.threadCount, granularity: 64)
        let row = scratch[thread].pointer
        var state = seed ^ (UInt64(range.lowerBound) &* 0xD1B5_4A32_D192_ED03) | 1
        for r in range {
            for i in 0..<cols {
                // xorshift64*: fast, and good enough for weights nobody reads.
                state ^= state >> 12; state ^= state << 25; state ^= state >> 27
                let bits = (state &* 0x2545_F491_4F6C_DD1D) >> 40 // 24 random bits
                row[i] = (Float(bits) / Float(1 << 24) - 0.5) * 0.0693
            }
            quantize(row, count: cols, dtype: dtype, into: data + r * rowBytes)
        }
    }
}
