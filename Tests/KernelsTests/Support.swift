import Foundation
import Kernels

// Helpers shared by the kernel tests: a seeded generator, owned byte/float arrays with guard zones, naive references.

/// SplitMix64: a small seeded generator, so every test sees the same numbers on every run.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func randomFloats(_ count: Int, in range: ClosedRange<Float> = -1...1, seed: UInt64) -> [Float] {
    var g = SeededGenerator(seed: seed)
    return (0..<count).map { _ in Float.random(in: range, using: &g) }
}

/// `values` quantized to `dtype` (whole rows of `cols`), as raw bytes.
func quantized(_ values: [Float], dtype: DType) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: dtype.byteCount(elements: values.count)!)
    values.withUnsafeBufferPointer { src in
        bytes.withUnsafeMutableBytes { dst in
            quantize(src.baseAddress!, count: values.count, dtype: dtype, into: dst.baseAddress!)
        }
    }
    return bytes
}

/// `count` elements stored as `dtype` in `bytes`, as float32.
func dequantized(_ bytes: [UInt8], dtype: DType, count: Int) -> [Float] {
    var out = [Float](repeating: .nan, count: count)
    bytes.withUnsafeBytes { src in
        out.withUnsafeMutableBufferPointer { dst in
            dequantize(src.baseAddress!, dtype: dtype, count: count, into: dst.baseAddress!)
        }
    }
    return out
}

/// The value a float16 bit pattern stands for.
func half(_ bits: UInt16) -> Float { Float(Float16(bitPattern: bits)) }
func halfBits(_ value: Float) -> UInt16 { Float16(value).bitPattern }

/// A weight matrix in owned memory, optionally starting at an odd address (rows in files are not aligned).
final class OwnedMatrix {
    let storage: ByteStorage
    let matrix: WeightMatrix
    /// The weights as the kernels see them, dequantized: [rows, cols].
    let reference: [Float]

    init(rows: Int, cols: Int, dtype: DType, seed: UInt64, misaligned: Bool = false) {
        let values = randomFloats(rows * cols, seed: seed)
        let bytes = quantized(values, dtype: dtype)
        let shift = misaligned ? 1 : 0
        storage = ByteStorage(count: bytes.count + shift)
        let base = storage.pointer + shift
        bytes.withUnsafeBytes { base.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
        matrix = WeightMatrix(data: UnsafeRawPointer(base), dtype: dtype, rows: rows, cols: cols)!
        reference = dequantized(bytes, dtype: dtype, count: rows * cols)
    }
}

/// Floats with `guardCount` sentinel values on each side, to catch writes outside [0, count).
final class GuardedFloats {
    static let sentinel: Float = -12345.5
    let count: Int
    let guardCount: Int
    private let storage: UnsafeMutablePointer<Float>

    init(count: Int, guardCount: Int = 64, fill: Float = sentinel) {
        self.count = count
        self.guardCount = guardCount
        storage = .allocate(capacity: count + 2 * guardCount)
        storage.initialize(repeating: Self.sentinel, count: count + 2 * guardCount)
        (storage + guardCount).update(repeating: fill, count: count)
    }

    convenience init(_ values: [Float], guardCount: Int = 64) {
        self.init(count: values.count, guardCount: guardCount)
        for (i, v) in values.enumerated() { pointer[i] = v }
    }

    deinit { storage.deallocate() }

    var pointer: UnsafeMutablePointer<Float> { storage + guardCount }
    var array: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }

    /// True when nothing was written outside [0, count).
    var guardsIntact: Bool {
        (0..<guardCount).allSatisfy { storage[$0] == Self.sentinel && storage[guardCount + count + $0] == Self.sentinel }
    }
}

/// Σ_c w[r, c]·x[c] in float64, and Σ_c |w[r, c]·x[c]| (the scale of its rounding error).
func naiveRow(_ w: [Float], row r: Int, cols: Int, _ x: [Float]) -> (value: Double, magnitude: Double) {
    var s = 0.0, m = 0.0
    for c in 0..<cols {
        let p = Double(w[r * cols + c]) * Double(x[c])
        s += p
        m += abs(p)
    }
    return (s, m)
}

/// Per-dtype tolerance of a float32 dot product, relative to Σ|w·x|, over the matvec, matmul and low-rank shapes of
/// these tests: measured max 6.2e-8 for the float types, 1.2e-6 for q8_0 (which folds the block offset into one
/// subtraction per block, see MatVec.swift) and 8.5e-6 for q4_0 / q4_1 (matvec takes 16-bit activations there:
/// IntegerDot.swift), all in matvec. A dropped or doubled element of a 2080-long row (~5e-4), a wrong nibble or a
/// wrong scale is far above them.
func dotTolerance(_ dtype: DType) -> Double {
    switch dtype {
    case .f32, .f16, .bf16: 2.5e-7
    case .q8_0: 5e-6
    case .q4_0, .q4_1: 3e-5
    }
}
