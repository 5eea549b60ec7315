import Formats
import Kernels

/// A linear projection y = W·x (+ b). W stays in its file's dtype; the (small) bias is kept in float32.
public struct Linear: @unchecked Sendable {
    /// [out, in]
    public let weight: WeightMatrix
    /// [out], or nil
    public let bias: FloatBuffer?

    public var outputs: Int { weight.rows }
    public var inputs: Int { weight.cols }

    public init(weight: WeightMatrix, bias: FloatBuffer?) {
        self.weight = weight
        self.bias = bias
    }
}

/// The weights of one transformer block.
public struct LayerWeights: @unchecked Sendable {
    public let attentionNorm: FloatBuffer // [hidden]
    public let q: Linear                  // [heads·headDim, hidden]
    public let k: Linear                  // [kvHeads·headDim, hidden]
    public let v: Linear                  // [kvHeads·headDim, hidden]
    public let o: Linear                  // [hidden, heads·headDim]
    public let mlpNorm: FloatBuffer       // [hidden]
    public let gate: Linear               // [intermediate, hidden]
    public let up: Linear                 // [intermediate, hidden]
    public let down: Linear               // [hidden, intermediate]

    public init(attentionNorm: FloatBuffer, q: Linear, k: Linear, v: Linear, o: Linear, mlpNorm: FloatBuffer,
                gate: Linear, up: Linear, down: Linear) {
        self.attentionNorm = attentionNorm
        self.q = q
        self.k = k
        self.v = v
        self.o = o
        self.mlpNorm = mlpNorm
        self.gate = gate
        self.up = up
        self.down = down
    }

    public func projection(_ tensor: LayerTensor) -> Linear? {
        switch tensor {
        case .q: return q
        case .k: return k
        case .v: return v
        case .o: return o
        case .gate: return gate
        case .up: return up
        case .down: return down
        case .attentionNorm, .mlpNorm: return nil
        }
    }
}

/// Every weight of a model, bound by name from a tensor source with strict checks: each expected tensor present
/// with its expected shape, and nothing left over.
public final class ModelWeights: @unchecked Sendable {
    public let configuration: ModelConfiguration
    public let naming: TensorNaming
    public let embedding: WeightMatrix // [vocab, hidden]
    public let layers: [LayerWeights]
    public let finalNorm: FloatBuffer  // [hidden]
    public let lmHead: WeightMatrix    // [vocab, hidden]; the embedding when tied
    public let rope: Rope
    /// Keeps the mapped files (or in-memory storage) the matrices point into alive.
    public let source: TensorSource

    /// Binds the weights of `configuration` from `source`. `path` names the model in messages.
    public init(configuration c: ModelConfiguration, source: TensorSource, naming: TensorNaming, path: String) throws {
        var loader = StrictLoader(source: source, path: path)
        configuration = c
        self.naming = naming
        self.source = source
        embedding = try loader.matrix(naming.embedding, rows: c.vocabSize, cols: c.hiddenSize)
        layers = try (0..<c.numHiddenLayers).map { l in
            func linear(_ t: LayerTensor, _ rows: Int, _ cols: Int, bias: Bool) throws -> Linear {
                let module = naming.module(t, layer: l)
                return Linear(weight: try loader.matrix(module + ".weight", rows: rows, cols: cols),
                              bias: bias ? try loader.vector(module + ".bias", count: rows) : nil)
            }
            let hidden = c.hiddenSize
            return LayerWeights(
                attentionNorm: try loader.vector(naming.module(.attentionNorm, layer: l) + ".weight", count: hidden),
                q: try linear(.q, c.queryDimension, hidden, bias: c.qkvBias),
                k: try linear(.k, c.keyValueDimension, hidden, bias: c.qkvBias),
                v: try linear(.v, c.keyValueDimension, hidden, bias: c.qkvBias),
                o: try linear(.o, hidden, c.queryDimension, bias: c.outputBias),
                mlpNorm: try loader.vector(naming.module(.mlpNorm, layer: l) + ".weight", count: hidden),
                gate: try linear(.gate, c.intermediateSize, hidden, bias: false),
                up: try linear(.up, c.intermediateSize, hidden, bias: false),
                down: try linear(.down, hidden, c.intermediateSize, bias: false))
        }
        finalNorm = try loader.vector(naming.finalNorm, count: c.hiddenSize)
        if c.tieWordEmbeddings {
            // Some checkpoints store the tied head anyway; it must then have the embedding's shape.
            lmHead = try loader.optionalMatrix(naming.lmHead, rows: c.vocabSize, cols: c.hiddenSize) ?? embedding
        } else {
            lmHead = try loader.matrix(naming.lmHead, rows: c.vocabSize, cols: c.hiddenSize)
        }

        var frequencies = c.inverseFrequencies()
        let layout: Rope.Layout = naming == .gguf && c.modelType == .llama ? .interleaved : .halves
        if naming == .gguf, let factors = try loader.optionalVector("rope_freqs.weight", count: c.headDim / 2) {
            // llama.cpp stores Llama 3's frequency scaling as per-pair divisors.
            for i in frequencies.indices { frequencies[i] /= factors[i] }
        }
        rope = Rope(layout: layout, inverseFrequencies: frequencies)
        try loader.finish(ignoring: naming.isIgnorable)
    }

    /// Bytes of weights read to decode one token: every layer matrix, the head, and one embedding row.
    public var bytesPerToken: Int {
        let perLayer = layers.map { l in
            LayerTensor.projections.reduce(0) { $0 + (l.projection($1)?.weight.byteCount ?? 0) } + 2 * configuration.hiddenSize * 4
        }
        return perLayer.reduce(0, +) + lmHead.byteCount + embedding.rowBytes + configuration.hiddenSize * 4
    }
}

/// Takes tensors from a source by name, checking shapes, and remembers which it took so that `finish` can reject
/// the ones nobody asked for.
struct StrictLoader {
    let source: TensorSource
    let path: String
    private(set) var used = Set<String>()

    init(source: TensorSource, path: String) {
        self.source = source
        self.path = path
    }

    mutating func view(_ name: String, shape: [Int]) throws -> TensorView? {
        guard let t = source.tensor(name) else { return nil }
        guard t.shape == shape else {
            throw ModelError.shapeMismatch(file: t.file, tensor: name, expected: shape, found: t.shape)
        }
        used.insert(name)
        return t
    }

    mutating func optionalMatrix(_ name: String, rows: Int, cols: Int) throws -> WeightMatrix? {
        guard let t = try view(name, shape: [rows, cols]) else { return nil }
        guard let m = WeightMatrix(data: t.data, dtype: t.dtype, rows: rows, cols: cols) else {
            throw ModelError.unsupportedTensorType(file: t.file, tensor: name, dtype: t.dtype.rawValue,
                                                   detail: "rows of \(cols) are not whole blocks")
        }
        return m
    }

    mutating func matrix(_ name: String, rows: Int, cols: Int) throws -> WeightMatrix {
        guard let m = try optionalMatrix(name, rows: rows, cols: cols) else {
            throw ModelError.missingTensor(file: path, tensor: name)
        }
        return m
    }

    mutating func optionalVector(_ name: String, count: Int) throws -> FloatBuffer? {
        guard let t = try view(name, shape: [count]) else { return nil }
        guard count % t.dtype.blockElements == 0 else {
            throw ModelError.unsupportedTensorType(file: t.file, tensor: name, dtype: t.dtype.rawValue,
                                                   detail: "\(count) elements are not whole blocks")
        }
        let buffer = FloatBuffer(count: count)
        dequantize(t.data, dtype: t.dtype, count: count, into: buffer.pointer)
        return buffer
    }

    mutating func vector(_ name: String, count: Int) throws -> FloatBuffer {
        guard let v = try optionalVector(name, count: count) else { throw ModelError.missingTensor(file: path, tensor: name) }
        return v
    }

    func finish(ignoring ignorable: (String) -> Bool) throws {
        let extra = source.tensorNames.filter { !used.contains($0) && !ignorable($0) }
        if !extra.isEmpty { throw ModelError.unexpectedTensors(file: path, tensors: extra) }
    }
}
