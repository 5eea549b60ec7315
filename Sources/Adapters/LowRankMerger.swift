import Kernels

/// Dense updates of weight matrices by sums of low-rank products: target = source + Σ_t f_t · B_t A_t. The one
/// merge of the project — `MergedAdapters` switching experts, and `fuse` folding LoRAs into a model's files.
///
/// The factors are gathered once per matrix as float32 (B_t columns scaled by f_t beside each other, A_t rows
/// below each other), then each thread updates its tiles of rows with one sgemm each. Everything is allocated at
/// creation, so a merge allocates nothing.
final class LowRankMerger {
    /// The terms of the next `apply`.
    private var terms: [(pair: LowRankPair, factor: Float)] = []
    private let maxSummedRank: Int
    /// [out, Σ r] scaled Bs and [Σ r, in] As, float32.
    private let bScratch: FloatBuffer
    private let aScratch: FloatBuffer
    private let bRow: FloatBuffer
    /// Per thread: a tile of rows in float32 (targets that are not float32, sources that are not the target).
    private let tiles: [FloatBuffer]
    private static let tileRows = 64

    /// For matrices up to `rows` × `cols`, at most `terms` terms of rank up to `rank`, on `threads` threads.
    init(rows: Int, cols: Int, terms: Int, rank: Int, threads: Int) {
        maxSummedRank = max(1, terms * rank)
        self.terms.reserveCapacity(terms)
        bScratch = FloatBuffer(count: max(1, rows * maxSummedRank))
        aScratch = FloatBuffer(count: max(1, maxSummedRank * cols))
        bRow = FloatBuffer(count: max(1, rank))
        tiles = (0..<threads).map { _ in FloatBuffer(count: Self.tileRows * max(1, cols), zeroed: false) }
    }

    func removeAll() { terms.removeAll(keepingCapacity: true) }

    /// Adds f · B A (of `pair`) to the next `apply`.
    func add(_ pair: LowRankPair, factor: Float) { terms.append((pair, factor)) }

    /// target = source + Σ terms, row tiles split between the pool's threads. `source` may be `target` itself (an
    /// in-place update) or any matrix of the same shape, quantized included; `target` must be float.
    func apply(source: WeightMatrix, target: WeightMatrix, pool: ThreadPool) {
        precondition(source.rows == target.rows && source.cols == target.cols && !target.dtype.isQuantized)
        let out = target.rows, cols = target.cols
        precondition(pool.threadCount == tiles.count)
        let kr = terms.reduce(0) { $0 + $1.pair.rank }
        precondition(kr <= maxSummedRank)
        let b = bScratch.pointer, a = aScratch.pointer, row = bRow.pointer
        var column = 0
        for (pair, factor) in terms {
            for q in 0..<pair.rank { pair.a.dequantizeRow(q, into: a + (column + q) * cols) }
            for r in 0..<out {
                pair.b.dequantizeRow(r, into: row)
                for q in 0..<pair.rank { b[r * kr + column + q] = row[q] * factor }
            }
            column += pair.rank
        }
        job = (source, target, kr)
        guard kr > 0 || source.data != target.data else { return }
        pool.run(region)
    }

    /// What `region` works on.
    private var job: (source: WeightMatrix, target: WeightMatrix, kr: Int)?
    private lazy var region = ParallelJob { [unowned self] thread in self.update(thread: thread) }

    /// This thread's tiles of rows of the job's target.
    private func update(thread: Int) {
        guard let (source, target, kr) = job else { return }
        let out = target.rows, cols = target.cols, threads = tiles.count
        let b = bScratch.pointer, a = aScratch.pointer, inPlace = source.data == target.data
        let rows = ThreadPool.chunk(out, part: thread, of: threads, granularity: 16)
        var r = rows.lowerBound
        while r < rows.upperBound {
            let n = min(Self.tileRows, rows.upperBound - r)
            let destination = UnsafeMutableRawPointer(mutating: target.row(r))
            if target.dtype == .f32 {
                // A float32 target is updated where it lies.
                let c = destination.assumingMemoryBound(to: Float.self)
                if !inPlace { dequantize(source.row(r), dtype: source.dtype, count: n * cols, into: c) }
                if kr > 0 { sgemmAccumulate(m: n, n: cols, k: kr, a: b + r * kr, lda: kr, b: a, ldb: cols, c: c, ldc: cols) }
            } else {
                let tile = tiles[thread].pointer
                dequantize(source.row(r), dtype: source.dtype, count: n * cols, into: tile)
                if kr > 0 { sgemmAccumulate(m: n, n: cols, k: kr, a: b + r * kr, lda: kr, b: a, ldb: cols, c: tile, ldc: cols) }
                quantize(tile, count: n * cols, dtype: target.dtype, into: destination)
            }
            r += n
        }
    }
}
