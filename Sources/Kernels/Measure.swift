#if canImport(Glibc)
import Glibc
#endif
import CBLAS

// Measurements of the machine itself, so that benchmark figures can be set beside what the hardware allows.

/// Read bandwidth in GB/s (10⁹ bytes/s): every thread of the pool sums its share of a buffer of `bytes`, best of
/// `repeats` passes. The buffer should be well beyond the last-level cache; it is filled with random bits, since
/// pages of equal content may be merged by the host and then served from cache.
public func measureReadBandwidth(pool: ThreadPool, bytes: Int = 1 << 28, repeats: Int = 10) -> Double {
    let count = bytes / 4
    let buffer = FloatBuffer(count: count, zeroed: false)
    let words = UnsafeMutableRawPointer(buffer.pointer).bindMemory(to: UInt32.self, capacity: count)
    var state: UInt32 = 0x9E37_79B9
    for i in 0..<count {
        state ^= state << 13; state ^= state >> 17; state ^= state << 5
        words[i] = state & 0x3FFF_FFFF // finite floats
    }
    UnsafeMutableRawPointer(words).bindMemory(to: Float.self, capacity: count)
    let p = buffer.pointer
    var best = Double.infinity
    var sink: Float = 0
    let sums = FloatBuffer(count: pool.threadCount * 16)
    for _ in 0..<repeats {
        let start = monotonicNanoseconds()
        pool.run { thread in
            let range = ThreadPool.chunk(count, part: thread, of: pool.threadCount, granularity: 64)
            var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
            var i = range.lowerBound
            while i + 64 <= range.upperBound {
                let raw = UnsafeRawPointer(p + i)
                a0 += raw.load(as: SIMD16<Float>.self)
                a1 += raw.load(fromByteOffset: 64, as: SIMD16<Float>.self)
                a2 += raw.load(fromByteOffset: 128, as: SIMD16<Float>.self)
                a3 += raw.load(fromByteOffset: 192, as: SIMD16<Float>.self)
                i += 64
            }
            sums[16 * thread] = horizontalSum(a0 + a1 + a2 + a3)
        }
        let seconds = Double(monotonicNanoseconds() - start) / 1e9
        best = min(best, seconds)
        sink += sums[0]
    }
    withExtendedLifetime(sink) {}
    return Double(count * 4) / best / 1e9
}

/// OpenBLAS sgemm GFLOP/s on n×n×n, the pool's threads each computing a share of the columns (the way prefill
/// uses it), best of `repeats`.
public func measureSgemmGFLOPS(pool: ThreadPool, n: Int = 1024, repeats: Int = 3) -> Double {
    openblas_set_num_threads(1)
    let a = FloatBuffer(count: n * n), b = FloatBuffer(count: n * n), c = FloatBuffer(count: n * n)
    for i in 0..<(n * n) { a[i] = Float(i % 13) * 0.01; b[i] = Float(i % 7) * 0.01 }
    let ap = a.pointer, bp = b.pointer, cp = c.pointer
    var best = Double.infinity
    for _ in 0..<repeats {
        let start = monotonicNanoseconds()
        pool.run { thread in
            let cols = ThreadPool.chunk(n, part: thread, of: pool.threadCount, granularity: 16)
            guard !cols.isEmpty else { return }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(cols.count), Int32(n), 1,
                        ap, Int32(n), bp + cols.lowerBound * n, Int32(n), 0, cp + cols.lowerBound, Int32(n))
        }
        best = min(best, Double(monotonicNanoseconds() - start) / 1e9)
    }
    return 2 * Double(n) * Double(n) * Double(n) / best / 1e9
}

/// What the `auto` strategy's cost model needs to know of the machine: read bandwidth and sgemm rate, and where
/// the figures came from (so that whoever prints a decision can say what it rested on).
public struct MachineFigures: Sendable, Equatable {
    /// Where the figures came from.
    public enum Source: String, Sendable {
        case measured = "measured in this run"
        case probed = "probed now"
        case cachedProbe = "cached probe"
        case defaults = "default constants"
    }

    /// Read bandwidth, bytes/s.
    public var bandwidth: Double
    /// sgemm rate, FLOP/s.
    public var flops: Double
    public var source: Source

    public init(bandwidth: Double, flops: Double, source: Source) {
        self.bandwidth = bandwidth
        self.flops = flops
        self.source = source
    }

    /// Figures of a 2-core machine as `loraswitch bench` measured it, for when nothing better is known.
    public static let defaults = MachineFigures(bandwidth: 30e9, flops: 150e9, source: .defaults)

    /// A quick measurement (~0.2 s): read bandwidth over 128 MB, best of 5 passes, and sgemm at n = 1024, best of
    /// 2. Smaller and shorter than `loraswitch bench`'s, so a little less steady; `source` is `.probed`.
    public static func probe(pool: ThreadPool) -> MachineFigures {
        MachineFigures(bandwidth: measureReadBandwidth(pool: pool, bytes: 1 << 27, repeats: 5) * 1e9,
                       flops: measureSgemmGFLOPS(pool: pool, n: 1024, repeats: 2) * 1e9, source: .probed)
    }

    /// "31.2 GB/s and 150 GFLOP/s (measured in this run)".
    public var summary: String {
        "\(Self.format(bandwidth / 1e9)) GB/s and \(Self.format(flops / 1e9)) GFLOP/s (\(source.rawValue))"
    }

    private static func format(_ value: Double) -> String {
        guard value < 1e15 else { return String(value) }
        return value >= 100 ? String(Int(value.rounded())) : String((value * 10).rounded() / 10)
    }
}

/// Nanoseconds of the monotonic clock.
public func monotonicNanoseconds() -> UInt64 {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
}
