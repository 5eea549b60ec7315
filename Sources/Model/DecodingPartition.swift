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
    /// (on the same input), and the projections whose input it finishes — of the same layer, or of the next.
    public struct Region: Sendable {
        public let projections: [LayerTensor]
        public let folds: [LayerTensor]
        public let foldsNextLayer: Bool
    }

    /// q, k, v; o (then the residual, which finishes gate and up's input); gate and up (then SiLU·up, down's input);
    /// down (then the residual, which finishes the next layer's q, k and v input).
    public static let regions = [
        Region(projections: [.q, .k, .v], folds: [], foldsNextLayer: false),
        Region(projections: [.o], folds: [.gate, .up], foldsNextLayer: false),
        Region(projections: [.gate, .up], folds: [.down], foldsNextLayer: false),
        Region(projections: [.down], folds: [.q, .k, .v], foldsNextLayer: true),
    ]

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

    /// The inputs of `projection` that `thread`'s share of the region before it finishes — the rows that region
    /// computes — or nil for o, whose input (the attention output) is not produced by rows.
    public func foldedInputs(_ projection: LayerTensor, thread: Int) -> Range<Int>? {
        switch projection {
        case .q, .k, .v, .gate, .up: return split(hiddenSize, thread: thread)
        case .down: return split(intermediateSize, thread: thread)
        case .o, .attentionNorm, .mlpNorm: return nil
        }
    }
}
