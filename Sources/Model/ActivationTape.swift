import Kernels

/// What `ReferenceForward` keeps of a pass for the backward pass that training runs: per layer, every activation an
/// operation's gradient reads, for up to `capacity` rows. Made once and reused step after step; layers below
/// `firstLayer` (where nothing below is trained) are not kept.
///
/// Floats per row and layer: 4·D + 2·Q + 2·K + H + 3·F (SmolLM2-135M: 8,457, ~33 KB; 256 rows × 30 layers ≈ 260 MB).
public final class ActivationTape {
    public let capacity: Int
    public let firstLayer: Int
    /// Rows of the last pass recorded.
    public internal(set) var rows = 0

    /// One layer's activations, each [rows, width] row-major.
    public final class Layer {
        /// The residual stream entering the layer [T, D].
        public let input: FloatBuffer
        /// RMSNorm(input): q, k and v's input [T, D].
        public let normalized: FloatBuffer
        /// q and k after RoPE [T, Q], [T, K]; v [T, K].
        public let q, k, v: FloatBuffer
        /// The attention output, o's input [T, Q], and the log-sum-exp of each head's scaled scores [T, H].
        public let attention: FloatBuffer
        public let logSumExp: FloatBuffer
        /// The residual stream after the attention block [T, D] and its RMSNorm, gate and up's input [T, D].
        public let middle: FloatBuffer
        public let mlpNormalized: FloatBuffer
        /// gate and up before the activation [T, F], and SiLU(gate)·up, down's input [T, F].
        public let gate, up, activation: FloatBuffer

        init(_ c: ModelConfiguration, rows t: Int) {
            input = FloatBuffer(count: t * c.hiddenSize, zeroed: false)
            normalized = FloatBuffer(count: t * c.hiddenSize, zeroed: false)
            q = FloatBuffer(count: t * c.queryDimension, zeroed: false)
            k = FloatBuffer(count: t * c.keyValueDimension, zeroed: false)
            v = FloatBuffer(count: t * c.keyValueDimension, zeroed: false)
            attention = FloatBuffer(count: t * c.queryDimension, zeroed: false)
            logSumExp = FloatBuffer(count: t * c.numAttentionHeads, zeroed: false)
            middle = FloatBuffer(count: t * c.hiddenSize, zeroed: false)
            mlpNormalized = FloatBuffer(count: t * c.hiddenSize, zeroed: false)
            gate = FloatBuffer(count: t * c.intermediateSize, zeroed: false)
            up = FloatBuffer(count: t * c.intermediateSize, zeroed: false)
            activation = FloatBuffer(count: t * c.intermediateSize, zeroed: false)
        }
    }

    /// [numHiddenLayers]: nil below `firstLayer`.
    public let layers: [Layer?]
    /// The residual stream after the last layer [T, D] (the final norm's input).
    public let output: FloatBuffer
    /// Each row's RoPE cos and sin [T, headDim / 2] (its position's angles).
    public let cosines: FloatBuffer
    public let sines: FloatBuffer

    public init(configuration c: ModelConfiguration, capacity: Int, firstLayer: Int = 0) {
        self.capacity = max(1, capacity)
        self.firstLayer = max(0, firstLayer)
        layers = (0..<c.numHiddenLayers).map { l in l >= firstLayer ? Layer(c, rows: max(1, capacity)) : nil }
        output = FloatBuffer(count: max(1, capacity) * c.hiddenSize, zeroed: false)
        cosines = FloatBuffer(count: max(1, capacity) * c.headDim / 2, zeroed: false)
        sines = FloatBuffer(count: max(1, capacity) * c.headDim / 2, zeroed: false)
    }

    /// Bytes held once every row is written.
    public var byteCount: Int {
        layers.compactMap { $0 }.reduce(output.count * 4) { total, layer in
            total + 4 * [layer.input, layer.normalized, layer.q, layer.k, layer.v, layer.attention, layer.logSumExp,
                         layer.middle, layer.mlpNormalized, layer.gate, layer.up, layer.activation].reduce(0) { $0 + $1.count }
        }
    }
}
