import Foundation
import Kernels
import Model

/// `loraswitch bench --kernels`: the products of a decoding step with B rows (B sequences) three ways — `matvec`
/// once per row (what one sequence at a time costs), sgemm on dequantized tiles (`matmul`'s path before the batched
/// kernel) and `batchedMatvec` — for each weight type and B, on one layer's seven projection matrices of a model
/// shape with random weights, cycled over enough layers that they come from memory as in decoding; beside the
/// machine's read bandwidth measured in the same run.
struct KernelBenchmark {
    let configName: String
    let configuration: ModelConfiguration
    let dtypes: [DType]
    let batches: [Int]
    let pool: ThreadPool
    let jsonPath: String?

    /// Rounds per (type, B); each round runs every path for `roundSeconds`, paths interleaved, and rows report the
    /// median across rounds (the read bandwidth of shared hosts moves from minute to minute).
    static let rounds = 5
    static let roundSeconds = 0.04
    /// Bytes of weights cycled per type: well past the last-level cache.
    static let workingSet = 192 << 20
    static let paths = ["matvec", "sgemm", "batched"]

    struct Row: Encodable {
        let dtype: String
        let batch: Int
        /// Measured: microseconds per layer (seven products), median across rounds, per path; sgemm from B = 2.
        let matvec_us: Double
        let sgemm_us: Double?
        let batched_us: Double
        /// Modelled: the layer's weight bytes and FLOPs (2·parameters·B) over the measured batched time.
        let weight_bytes: Int
        let batched_gbs: Double
        let batched_gflops: Double
        /// Batched GB/s over the read bandwidth: "bytes" from 2/3 up, "instructions" below.
        let bound: String
        /// Measured: microseconds per call of each projection, per path (matvec, sgemm, batched).
        let shapes: [String: [Double]]
    }

    func run(progress: Progress) throws {
        let c = configuration
        let h = c.hiddenSize, q = c.queryDimension, kv = c.keyValueDimension, i = c.intermediateSize
        let projections: [(name: String, rows: Int, cols: Int)] = [
            ("q", q, h), ("k", kv, h), ("v", kv, h), ("o", h, q), ("gate", i, h), ("up", i, h), ("down", h, i),
        ]
        for p in projections where p.cols % 32 != 0 {
            throw UsageError("--kernels needs inputs in whole blocks of 32; \(configName)'s \(p.name) has \(p.cols)")
        }
        let widest = projections.map(\.cols).max()!, tallest = projections.map(\.rows).max()!
        let maxBatch = batches.max()!
        var random = SplitMix(seed: 11)
        let x = FloatBuffer(count: maxBatch * widest), y = FloatBuffer(count: maxBatch * tallest)
        for k in 0..<x.count { x[k] = random.nextSymmetric(1) }
        let scratch = (0..<pool.threadCount).map { _ in
            FloatBuffer(count: max(matmulScratchCount(cols: widest),
                                   DType.allCases.map { batchedMatvecScratchCount(dtype: $0, cols: widest, tokens: maxBatch) }.max()!))
        }

        progress.say("measuring the machine's read bandwidth")
        let before = measureReadBandwidth(pool: pool)
        var rows: [Row] = []
        for dtype in dtypes {
            progress.say("building \(dtype) weights")
            let layers = try KernelLayers(projections: projections, dtype: dtype, bytes: Self.workingSet, random: &random)
            for batch in batches {
                progress.say("\(dtype), B = \(batch)")
                rows.append(measure(layers, batch: batch, x: x.pointer, y: y.pointer, ldy: tallest, scratch: scratch))
            }
        }
        let after = measureReadBandwidth(pool: pool)
        progress.finish()
        let bandwidth = max(before, after)
        rows = rows.map { row in
            Row(dtype: row.dtype, batch: row.batch, matvec_us: row.matvec_us, sgemm_us: row.sgemm_us, batched_us: row.batched_us,
                weight_bytes: row.weight_bytes, batched_gbs: row.batched_gbs, batched_gflops: row.batched_gflops,
                bound: row.batched_gbs >= bandwidth * 2 / 3 ? "bytes" : "instructions", shapes: row.shapes)
        }
        printReport(rows, projections: projections, bandwidth: (before, after))
        if let jsonPath {
            struct Report: Encodable {
                let machine: [String: Double]
                let cpu: String, config: String
                let projections: [String: [Int]]
                let rows: [Row]
            }
            let report = Report(machine: ["read_gbs": bandwidth, "read_gbs_before": before, "read_gbs_after": after,
                                          "threads": Double(pool.threadCount)],
                                cpu: CPUFeatures.current.description, config: configName,
                                projections: Dictionary(uniqueKeysWithValues: projections.map { ($0.name, [$0.rows, $0.cols]) }),
                                rows: rows)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(report).write(to: URL(fileURLWithPath: jsonPath), options: .atomic)
        }
    }

    /// The three paths at one B: rounds of `roundSeconds` each, paths interleaved, layers cycled.
    private func measure(_ layers: KernelLayers, batch: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                         ldy: Int, scratch: [FloatBuffer]) -> Row {
        let count = layers.projections.count
        let paths = batch == 1 ? [0, 2] : [0, 1, 2]
        // [path][projection]: the per-call times of each round.
        var samples = [[[Double]]](repeating: [[Double]](repeating: [], count: count), count: Self.paths.count)
        var layer = 0
        for _ in 0..<Self.rounds {
            for path in paths {
                var spent = [Double](repeating: 0, count: count), calls = 0
                let start = monotonicNanoseconds()
                repeat {
                    for (k, w) in layers.matrices[layer].enumerated() {
                        let t = monotonicNanoseconds()
                        run(path, w, x: x, batch: batch, y: y, ldy: ldy, scratch: scratch)
                        spent[k] += Double(monotonicNanoseconds() - t) / 1e3
                    }
                    calls += 1
                    layer = (layer + 1) % layers.matrices.count
                } while Double(monotonicNanoseconds() - start) / 1e9 < Self.roundSeconds || calls < layers.matrices.count
                for k in 0..<count { samples[path][k].append(spent[k] / Double(calls)) }
            }
        }
        let perShape = samples.map { $0.map(median) } // [path][projection], µs per call
        let perLayer = perShape.map { $0.reduce(0, +) }
        let bytes = layers.bytesPerLayer, parameters = layers.parametersPerLayer
        var shapes: [String: [Double]] = [:]
        for (k, p) in layers.projections.enumerated() { shapes[p.name] = paths.map { perShape[$0][k] } }
        return Row(dtype: layers.dtype.rawValue, batch: batch, matvec_us: perLayer[0], sgemm_us: batch == 1 ? nil : perLayer[1],
                   batched_us: perLayer[2], weight_bytes: bytes, batched_gbs: Double(bytes) / perLayer[2] / 1e3,
                   batched_gflops: 2 * Double(parameters * batch) / perLayer[2] / 1e3, bound: "", shapes: shapes)
    }

    /// One product over every thread's share of the rows, as a decoding region runs it.
    private func run(_ path: Int, _ w: WeightMatrix, x: UnsafePointer<Float>, batch: Int, y: UnsafeMutablePointer<Float>,
                     ldy: Int, scratch: [FloatBuffer]) {
        let threads = pool.threadCount
        pool.run { thread in
            let rows = ThreadPool.chunk(w.rows, part: thread, of: threads, granularity: 16)
            guard !rows.isEmpty else { return }
            let s = scratch[thread].pointer
            switch path {
            case 0:
                for t in 0..<batch { matvec(w, x + t * w.cols, y + t * ldy, rows: rows, scratch: s) }
            case 1:
                matmulBLAS(w, x, tokens: batch, y, ldy: ldy, rows: rows, scratch: s)
            default:
                batchedMatvec(w, x, tokens: batch, y, ldy: ldy, rows: rows, scratch: s)
            }
        }
    }

    private func printReport(_ rows: [Row], projections: [(name: String, rows: Int, cols: Int)],
                             bandwidth: (before: Double, after: Double)) {
        let read = max(bandwidth.before, bandwidth.after)
        let shapes = projections.map { "\($0.name) \($0.rows)×\($0.cols)" }.joined(separator: ", ")
        print("machine: read bandwidth \(fmt(read, 1)) GB/s (before/after: \(fmt(bandwidth.before, 1))/\(fmt(bandwidth.after, 1))), \(pool.threadCount) threads, \(CPUFeatures.current)")
        print("layer:   \(configName) projections \(shapes); random weights cycled over ≥ \(Self.workingSet >> 20) MB of layers")
        print("")
        print("dtype  B    matvec×B µs  sgemm µs  batched µs  speedup  batched GB/s  % of read  GFLOP/s  bound")
        for row in rows {
            let best = min(row.matvec_us, row.sgemm_us ?? .infinity)
            let columns = [
                row.dtype.padding(toLength: 5, withPad: " ", startingAt: 0), pad(String(row.batch), 3),
                pad(fmt(row.matvec_us, 1), 12), pad(row.sgemm_us.map { fmt($0, 1) } ?? "-", 9), pad(fmt(row.batched_us, 1), 11),
                pad(fmt(best / row.batched_us, 2) + "x", 8), pad(fmt(row.batched_gbs, 1), 13),
                pad(fmt(100 * row.batched_gbs / read, 0) + "%", 10), pad(fmt(row.batched_gflops, 1), 8), "  " + row.bound,
            ]
            print(columns.joined(separator: " "))
        }
        print("")
        print("measured: µs per layer (the seven products, each split over the threads as decoding splits it), median over \(Self.rounds) rounds with the paths interleaved; speedup: the better of the old paths over batched")
        print("modelled: the layer's weight bytes and 2·parameters·B FLOPs over the measured batched time; bound: bytes when the batched path reads at ≥ 2/3 of the read bandwidth, else instructions")
    }

    private func pad(_ text: String, _ width: Int) -> String {
        String(repeating: " ", count: max(0, width - text.count)) + text
    }
}

/// One layer's projection matrices in a weight type, repeated over enough layers (different random values each)
/// that a pass over them does not fit in cache.
private struct KernelLayers {
    let dtype: DType
    let projections: [(name: String, rows: Int, cols: Int)]
    let storage: ByteStorage
    /// [layer][projection]
    let matrices: [[WeightMatrix]]
    let bytesPerLayer: Int
    let parametersPerLayer: Int

    init(projections: [(name: String, rows: Int, cols: Int)], dtype: DType, bytes: Int, random: inout SplitMix) throws {
        self.dtype = dtype
        self.projections = projections
        let sizes = projections.map { dtype.byteCount(elements: $0.rows * $0.cols)! }
        bytesPerLayer = sizes.reduce(0, +)
        parametersPerLayer = projections.reduce(0) { $0 + $1.rows * $1.cols }
        let layerCount = max(2, (bytes + bytesPerLayer - 1) / bytesPerLayer)
        storage = ByteStorage(count: layerCount * bytesPerLayer)
        let values = FloatBuffer(count: projections.map { $0.rows * $0.cols }.max()!, zeroed: false)
        var offset = 0
        var matrices: [[WeightMatrix]] = []
        for _ in 0..<layerCount {
            var layer: [WeightMatrix] = []
            for (p, size) in zip(projections, sizes) {
                let n = p.rows * p.cols
                for k in 0..<n { values[k] = random.nextSymmetric(0.05) }
                quantize(values.pointer, count: n, dtype: dtype, into: storage.pointer + offset)
                layer.append(WeightMatrix(data: storage.pointer + offset, dtype: dtype, rows: p.rows, cols: p.cols)!)
                offset += size
            }
            matrices.append(layer)
        }
        self.matrices = matrices
    }
}
