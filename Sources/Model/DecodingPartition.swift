import Kernels

/// How one decoded token's projection regions share their work between threads: which output rows of each
/// projection a thread computes, and which inputs of the next projections its region makes final. The session's
/// regions split by these rules, and adapters use them to lay their factors out in the order each thread reads them
/// (see the Adapters module's `DecodingLayout`).
public struct DecodingPartition: Sendable, Equatable {
    public let threads: Int
    let queryDimension: Int
    let keyValueDimension: Int
    let hiddenSize: Int
    let intermediateSize: Int

    public init(_ c: ModelConfiguration, threads: Int) {
        self.threads = threads
        queryDimension = c.queryDimension
        keyValueDimension = c.keyValueDimension
        hiddenSize = c.hiddenSize
        intermediateSize = c.intermediateSize
    }

    /// A parallel region with adapted projections, in the order a layer runs them: the projections it computes
    /// (on the same input), those of them whose input side it may start itself (`startsInOwnRegion`), and the
    /// projections whose input it finishes — of the same layer, or of the next.
    public struct Region: Sendable {
        public let projections: [LayerTensor]
        public let starts: [LayerTensor]
        public let folds: [LayerTensor]
        public let foldsNextLayer: Bool
    }

    /// q, k, v; o, whose input is the attention output (then the residual, which finishes gate and up's input);
    /// gate and up (then SiLU·up, down's input); down (then the residual, which finishes the next layer's q, k and
    /// v input).
    public static let regions = [
        Region(projections: [.q, .k, .v], starts: [.q, .k, .v], folds: [], foldsNextLayer: false),
        Region(projections: [.o], starts: [.o], folds: [.gate, .up], foldsNextLayer: false),
        Region(projections: [.gate, .up], starts: [], folds: [.down], foldsNextLayer: false),
        Region(projections: [.down], starts: [], folds: [.q, .k, .v], foldsNextLayer: true),
    ]

    /// Whether `projection`'s input side starts in its own region in `layer`, each thread on its share of the
    /// input, which is whole before the region: o's (the attention output, not produced by rows) and q, k and v's
    /// in `decisionLayer`, the layer where a token's experts become known (0, or a token router's layer; no region
    /// before it knows them). Every other input side is folded by the region before.
    @inline(__always)
    public static func startsInOwnRegion(_ projection: LayerTensor, layer: Int, decisionLayer: Int) -> Bool {
        switch projection {
        case .o: return true
        case .q, .k, .v: return layer == decisionLayer
        case .gate, .up, .down, .attentionNorm, .mlpNorm: return false
        }
    }

    /// Part `thread` of `count` rows, in multiples of 16 so that no tile of 16 rows straddles two threads.
    @inline(__always)
    public func split(_ count: Int, thread: Int) -> Range<Int> {
        ThreadPool.chunk(count, part: thread, of: threads, granularity: 16)
    }

    /// The rows of `projection`'s output that `thread` computes. q, k and v are one range of Q + 2K rows, split
    /// evenly; o and down split D, gate and up split F.
    public func rows(_ projection: LayerTensor, thread: Int) -> Range<Int> {
        let qd = queryDimension, kd = keyValueDimension
        let span: Range<Int>
        switch projection {
        case .q: span = 0..<qd
        case .k: span = qd..<(qd + kd)
        case .v: span = (qd + kd)..<(qd + 2 * kd)
        case .o, .down: return split(hiddenSize, thread: thread)
        case .gate, .up: return split(intermediateSize, thread: thread)
        case .attentionNorm, .mlpNorm: return 0..<0
        }
        let range = split(qd + 2 * kd, thread: thread).clamped(to: span)
        return (range.lowerBound - span.lowerBound)..<(range.upperBound - span.lowerBound)
    }

    /// The inputs of `projection` whose share of its input side `thread` computes: the rows it computes of the
    /// region before, or a split of the input when the projection's region starts its own (the same split for the
    /// first layer's q, k and v; for o, of the attention output).
    public func foldedInputs(_ projection: LayerTensor, thread: Int) -> Range<Int> {
        switch projection {
        case .q, .k, .v, .gate, .up: return split(hiddenSize, thread: thread)
        case .down: return split(intermediateSize, thread: thread)
        case .o: return split(queryDimension, thread: thread)
        case .attentionNorm, .mlpNorm: return 0..<0
        }
    }
}
