import Kernels
import Model

/// An adapter's factors laid out for decoding one token on a given number of threads, in the order each thread reads
/// them. Every (expert, thread) pair owns one stretch of memory that runs through all layers and regions
/// (`DecodingPartition.regions`) in decoding order; for each region it holds the Aᵀ rows of the thread's share of the
/// inputs of the projections whose input side the region starts (o; q, k and v of the decision layer), the B tiles of
/// the thread's output rows of the region's projections, then the Aᵀ rows of the thread's share of the inputs the
/// region finishes (`foldInput`).
///
/// Why: read in pieces of 9–18 KB scattered over the adapter, memory gives ~60% of the bandwidth it gives to one
/// long stream (~22 vs ~36 GB/s on the 2-core Zen 4 VM, two threads), because every piece starts cold for the
/// hardware prefetcher. Kept per thread and region, a token's adapter reads are two blocks (top-2) of 30–150 KB
/// per thread and region; and since token routing keeps one selection for every layer, each of those blocks
/// continues where the thread's previous region left off, so a thread reads its two experts as two streams through
/// the whole token (~1.7 points less overhead on smollm2-135m f32 than with the blocks ordered by layer first).
final class DecodingLayout: @unchecked Sendable {
    let partition: DecodingPartition
    let experts: Int
    let storage: ByteStorage
    /// [((layer · 7 + projection) · N + expert) · threads + thread]: the tiles holding the thread's output rows.
    let tiles: UnsafeMutablePointer<LowRankTiles?>
    /// Same index: Aᵀ for the thread's folded inputs, [inputs.count, r] (nil under layer routing, which folds
    /// nothing).
    let folds: UnsafeMutablePointer<WeightMatrix?>
    private let count: Int

    init(_ adapter: Adapter, partition: DecodingPartition) {
        self.partition = partition
        let layers = adapter.projections.count, kinds = LayerTensor.projections.count, threads = partition.threads
        experts = max(1, adapter.numExperts)
        count = layers * kinds * experts * threads
        tiles = .allocate(capacity: count)
        tiles.initialize(repeating: nil, count: count)
        folds = .allocate(capacity: count)
        folds.initialize(repeating: nil, count: count)
        var folding = true
        if case .layer = adapter.routing { folding = false } // its experts are known only after the region

        // Every piece in memory order: (pair, projection slot, layer, thread, fold?).
        var pieces: [Piece] = []
        for e in 0..<experts {
            for thread in 0..<threads {
                for layer in 0..<layers {
                    for region in DecodingPartition.regions {
                        let foldLayer = layer + (region.foldsNextLayer ? 1 : 0)
                        for tensor in region.starts
                        where folding && DecodingPartition.startsInOwnRegion(tensor, layer: layer, decisionLayer: adapter.routerLayer) {
                            let index = tensor.projectionIndex!
                            guard let pair = adapter.pair(layer, index, e),
                                  !partition.foldedInputs(tensor, thread: thread).isEmpty else { continue }
                            pieces.append(Piece(pair: pair, index: index, layer: layer, expert: e, thread: thread, fold: true))
                        }
                        for tensor in region.projections {
                            let index = tensor.projectionIndex!
                            guard let pair = adapter.pair(layer, index, e),
                                  !partition.rows(tensor, thread: thread).isEmpty else { continue }
                            pieces.append(Piece(pair: pair, index: index, layer: layer, expert: e, thread: thread, fold: false))
                        }
                        guard folding, foldLayer < layers else { continue }
                        for tensor in region.folds
                        where !DecodingPartition.startsInOwnRegion(tensor, layer: foldLayer, decisionLayer: adapter.routerLayer) {
                            let index = tensor.projectionIndex!
                            guard let pair = adapter.pair(foldLayer, index, e),
                                  !partition.foldedInputs(tensor, thread: thread).isEmpty else { continue }
                            pieces.append(Piece(pair: pair, index: index, layer: foldLayer, expert: e, thread: thread, fold: true))
                        }
                    }
                }
            }
        }
        func bytes(_ piece: Piece) -> Int {
            let size: Int
            if piece.fold {
                let tensor = LayerTensor.projections[piece.index]
                size = partition.foldedInputs(tensor, thread: piece.thread).count * piece.pair.rank * piece.pair.a.dtype.blockBytes
            } else {
                size = LowRankTiles.byteCount(of: piece.pair.b, rows: partition.rows(LayerTensor.projections[piece.index], thread: piece.thread))
            }
            return (size + 63) / 64 * 64
        }
        storage = ByteStorage(count: pieces.reduce(0) { $0 + bytes($1) }, hugePages: true)
        var offset = 0
        for piece in pieces {
            let tensor = LayerTensor.projections[piece.index]
            let pair = piece.pair
            let slot = Self.slot(layer: piece.layer, projection: piece.index, expert: piece.expert, thread: piece.thread,
                                 experts: experts, threads: threads)
            let destination = storage.pointer + offset
            if piece.fold {
                folds[slot] = transposed(pair.a, inputs: partition.foldedInputs(tensor, thread: piece.thread), into: destination)
            } else {
                tiles[slot] = LowRankTiles.tile(pair.b, rows: partition.rows(tensor, thread: piece.thread), into: destination)
            }
            offset += bytes(piece)
        }
    }

    private struct Piece {
        let pair: LowRankPair
        let index, layer, expert, thread: Int
        let fold: Bool
    }

    deinit {
        tiles.deinitialize(count: count)
        tiles.deallocate()
        folds.deinitialize(count: count)
        folds.deallocate()
    }

    /// Index in `tiles` and `folds` of thread `thread`'s piece for expert `expert` of projection slot `index` of
    /// `layer`, with `experts` experts and `threads` threads.
    @inline(__always)
    static func slot(layer: Int, projection index: Int, expert: Int, thread: Int, experts: Int, threads: Int) -> Int {
        ((layer * LayerTensor.projections.count + index) * experts + expert) * threads + thread
    }
}
