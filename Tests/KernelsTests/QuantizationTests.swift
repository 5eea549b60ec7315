import Foundation
import Testing
@testable import Kernels

// quantize / dequantize for every dtype: layouts against blocks written out by hand as ggml defines them, and
// round-trip error bounds on random data.

@Suite("DType")
struct DTypeTests {
    @Test func blockSizes() {
        #expect(DType.f32.blockBytes == 4 && DType.f32.blockElements == 1)
        #expect(DType.f16.blockBytes == 2 && DType.bf16.blockBytes == 2)
        #expect(DType.q8_0.blockBytes == 34 && DType.q8_0.blockElements == 32)
        #expect(DType.q4_0.blockBytes == 18 && DType.q4_0.blockElements == 32)
        #expect(DType.q4_1.blockBytes == 20 && DType.q4_1.blockElements == 32)
        #expect(DType.allCases.filter(\.isQuantized) == [.q8_0, .q4_0, .q4_1])
    }

    @Test func byteCount() {
        #expect(DType.f32.byteCount(elements: 10) == 40)
        #expect(DType.bf16.byteCount(elements: 0) == 0)
        #expect(DType.q8_0.byteCount(elements: 64) == 68)
        #expect(DType.q4_1.byteCount(elements: 96) == 60)
        #expect(DType.q4_0.byteCount(elements: 31) == nil)
        #expect(DType.q4_0.byteCount(elements: 33) == nil)
        #expect(DType.f16.byteCount(elements: -2) == nil)
        #expect(DType.f32.byteCount(elements: Int.max) == nil)
        #expect(DType.q8_0.byteCount(elements: Int.max / 32 * 32) == nil)
    }
}

@Suite("Scalar conversions")
struct ScalarConversionTests {
    @Test func bfloat16() {
        #expect(floatToBF16(1) == 0x3F80)
        #expect(floatToBF16(-2) == 0xC000)
        #expect(bf16ToFloat(0x3F80) == 1)
        #expect(bf16ToFloat(0xC040) == -3)
        // Ties round to even: 0x3F80_8000 is halfway between 0x3F80 and 0x3F81 → 0x3F80; 0x3F81_8000 → 0x3F82.
        #expect(floatToBF16(Float(bitPattern: 0x3F80_8000)) == 0x3F80)
        #expect(floatToBF16(Float(bitPattern: 0x3F81_8000)) == 0x3F82)
        // Above half rounds up, below rounds down.
        #expect(floatToBF16(Float(bitPattern: 0x3F80_8001)) == 0x3F81)
        #expect(floatToBF16(Float(bitPattern: 0x3F80_7FFF)) == 0x3F80)
        #expect(bf16ToFloat(floatToBF16(.nan)).isNaN)
        #expect(bf16ToFloat(floatToBF16(.infinity)) == .infinity)
        #expect(bf16ToFloat(floatToBF16(-.infinity)) == -.infinity)
    }

    @Test func float16() {
        #expect(f16ToFloat(0x3C00) == 1)
        #expect(f16ToFloat(0xC000) == -2)
        #expect(f16ToFloat(0x7BFF) == 65504)
        #expect(f16ToFloat(0x0001) == Float(sign: .plus, exponent: -24, significand: 1))
    }
}

@Suite("Block layouts")
struct BlockLayoutTests {
    private func bytesLE(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8)] }

    // MARK: q8_0: f16 d, then 32 × int8 q; x = d·q

    @Test func q8_0QuantizeUnitScale() {
        // amax = 127 → d = 1 exactly, q = x.
        let x: [Float] = (0..<32).map { Float(($0 * 37) % 255 - 127) }
        #expect(x.map(abs).max() == 127)
        let expected = bytesLE(0x3C00) + x.map { UInt8(bitPattern: Int8($0)) }
        #expect(quantized(x, dtype: .q8_0) == expected)
        #expect(dequantized(expected, dtype: .q8_0, count: 32) == x)
    }

    @Test func q8_0QuantizeHalfScale() {
        // amax = 63.5 → d = 0.5, q = 2x.
        let x: [Float] = (0..<32).map { Float(($0 * 37) % 255 - 127) / 2 }
        let expected = bytesLE(0x3800) + x.map { UInt8(bitPattern: Int8($0 * 2)) }
        #expect(quantized(x, dtype: .q8_0) == expected)
    }

    @Test func q8_0RoundsHalfAwayFromZero() {
        // d = 1 (amax 127); 2.5 → 3 and −2.5 → −3 as roundf does (ggml's reference quantizer).
        var x = [Float](repeating: 0, count: 32)
        x[0] = 127; x[1] = 2.5; x[2] = -2.5; x[3] = 0.49; x[4] = -0.51
        let q = quantized(x, dtype: .q8_0)
        #expect(Array(q[2..<7]).map { Int8(bitPattern: $0) } == [127, 3, -3, 0, -1])
    }

    @Test func q8_0DequantizeLiteral() {
        // d = 2.0 (0x4000); q = 1, −1, 127, −128, then zeros.
        let block: [UInt8] = [0x00, 0x40, 0x01, 0xFF, 0x7F, 0x80] + [UInt8](repeating: 0, count: 28)
        let x = dequantized(block, dtype: .q8_0, count: 32)
        #expect(Array(x[0..<4]) == [2, -2, 254, -256])
        #expect(x[4...].allSatisfy { $0 == 0 })
    }

    // MARK: q4_0: f16 d, then 16 bytes; byte j = element j (low nibble) | element j+16 (high nibble); x = d·(q − 8)

    @Test func q4_0QuantizeNegativeMaximum() {
        // The element of largest magnitude is −8 → d = −8 / −8 = 1, q = x + 8.
        let x: [Float] = (0..<32).map { Float(($0 * 5) % 16 - 8) }
        var expected = bytesLE(0x3C00)
        for j in 0..<16 { expected.append(UInt8(x[j] + 8) | UInt8(x[j + 16] + 8) << 4) }
        #expect(quantized(x, dtype: .q4_0) == expected)
        #expect(dequantized(expected, dtype: .q4_0, count: 32) == x)
    }

    @Test func q4_0QuantizePositiveMaximum() {
        // Largest magnitude +8 → d = 8 / −8 = −1 (stored negative), q = 8 − x.
        let x: [Float] = (0..<32).map { Float(8 - ($0 * 5) % 16) }
        var expected = bytesLE(0xBC00)
        for j in 0..<16 { expected.append(UInt8(8 - x[j]) | UInt8(8 - x[j + 16]) << 4) }
        #expect(quantized(x, dtype: .q4_0) == expected)
        #expect(dequantized(expected, dtype: .q4_0, count: 32) == x)
    }

    @Test func q4_0DequantizeLiteral() {
        // d = 0.5; byte 0 = 0x10: element 0 ← 0, element 16 ← 1; byte 1 = 0xF8: element 1 ← 8, element 17 ← 15.
        let block: [UInt8] = [0x00, 0x38, 0x10, 0xF8] + [UInt8](repeating: 0x88, count: 14)
        let x = dequantized(block, dtype: .q4_0, count: 32)
        #expect(x[0] == -4 && x[16] == -3.5 && x[1] == 0 && x[17] == 3.5)
        for j in 0..<32 where ![0, 1, 16, 17].contains(j) { #expect(x[j] == 0) }
    }

    // MARK: q4_1: f16 d, f16 m, then 16 bytes as q4_0; x = d·q + m

    @Test func q4_1Quantize() {
        // min 3, max 18 → d = 1, m = 3, q = x − 3.
        let x: [Float] = (0..<32).map { Float(($0 * 7) % 16 + 3) }
        var expected = bytesLE(0x3C00) + bytesLE(0x4200)
        for j in 0..<16 { expected.append(UInt8(x[j] - 3) | UInt8(x[j + 16] - 3) << 4) }
        #expect(quantized(x, dtype: .q4_1) == expected)
        #expect(dequantized(expected, dtype: .q4_1, count: 32) == x)
    }

    @Test func q4_1DequantizeLiteral() {
        // d = 2, m = −1; byte 0 = 0x31: element 0 ← 1 → 1, element 16 ← 3 → 5; the rest q = 0 → −1.
        let block: [UInt8] = [0x00, 0x40, 0x00, 0xBC, 0x31] + [UInt8](repeating: 0, count: 15)
        let x = dequantized(block, dtype: .q4_1, count: 32)
        #expect(x[0] == 1 && x[16] == 5)
        for j in 0..<32 where j != 0 && j != 16 { #expect(x[j] == -1) }
    }

    @Test(arguments: [DType.q8_0, .q4_0, .q4_1])
    func zeroBlocksStayZero(dtype: DType) {
        let x = [Float](repeating: 0, count: 64)
        let back = dequantized(quantized(x, dtype: dtype), dtype: dtype, count: 64)
        #expect(back == x)
    }

    @Test func q4_1ConstantBlock() {
        let x = [Float](repeating: 0.3, count: 32)
        let back = dequantized(quantized(x, dtype: .q4_1), dtype: .q4_1, count: 32)
        #expect(back.allSatisfy { $0 == half(halfBits(0.3)) })
    }

    @Test func floatLayouts() {
        let x: [Float] = [1, -2, 0.5, 65504]
        #expect(quantized(x, dtype: .f16) == [0x00, 0x3C, 0x00, 0xC0, 0x00, 0x38, 0xFF, 0x7B])
        #expect(quantized(x, dtype: .bf16) == [0x80, 0x3F, 0x00, 0xC0, 0x00, 0x3F, 0x80, 0x47])
        #expect(quantized(x, dtype: .f32) == x.withUnsafeBytes { Array($0) })
    }
}

@Suite("Round trips")
struct RoundTripTests {
    /// Random rows at several scales (tiny, unit, large), whole blocks.
    static func samples() -> [[Float]] {
        [randomFloats(32 * 40, seed: 1), randomFloats(32 * 8, in: -1e-3...1e-3, seed: 2),
         randomFloats(32 * 8, in: -100...100, seed: 3), randomFloats(32 * 8, in: 0...5, seed: 4),
         randomFloats(32 * 8, in: -7...(-2), seed: 5)]
    }

    @Test(arguments: DType.allCases)
    func errorBounds(dtype: DType) {
        for x in Self.samples() {
            let bytes = quantized(x, dtype: dtype)
            #expect(bytes.count == dtype.byteCount(elements: x.count))
            let back = dequantized(bytes, dtype: dtype, count: x.count)
            // Relative rounding of a normal float16, and the absolute rounding of a subnormal one (scales of tiny
            // blocks are subnormal in float16: d = 1e-3 / 127 < 6.1e-5).
            let f16Epsilon: Float = 1.0 / 2048, f16Subnormal = Float(sign: .plus, exponent: -25, significand: 1)
            for b in 0..<(x.count / 32) {
                let block = Array(x[(32 * b)..<(32 * b + 32)])
                let amax = block.map(abs).max()!
                let lo = block.min()!, hi = block.max()!
                for j in 0..<32 {
                    let i = 32 * b + j
                    let error = abs(back[i] - x[i])
                    let bound: Float
                    switch dtype {
                    case .f32: bound = 0
                    case .f16: bound = abs(x[i]) * f16Epsilon + f16Subnormal
                    case .bf16: bound = abs(x[i]) / 256
                    case .q8_0:
                        // Half a step, plus the rounding of d to float16 times |q| ≤ 127.
                        bound = amax / 127 * 0.5 + amax * f16Epsilon + 127 * f16Subnormal + 1e-9
                    case .q4_0:
                        // Half a step, except at the clamp (q = 16 → 15) on the side opposite the signed maximum: one step.
                        bound = amax / 8 + amax * f16Epsilon + 8 * f16Subnormal + 1e-9
                    case .q4_1:
                        let d = (hi - lo) / 15
                        bound = d * 0.5 + 16 * d * f16Epsilon + abs(lo) * f16Epsilon + 16 * f16Subnormal + 1e-9
                    }
                    #expect(error <= bound, "\(dtype) element \(i): \(x[i]) → \(back[i]), error \(error) > \(bound)")
                    if error > bound { return }
                }
            }
        }
    }

    @Test(arguments: [DType.q8_0, .q4_0, .q4_1])
    func quantizingDequantizedValuesIsStable(dtype: DType) {
        // Values already on the grid of their block quantize back to the same bytes (q4 too: the grid points include
        // the extremes, so the scale is reproduced).
        let x = randomFloats(32 * 16, seed: 9)
        let once = quantized(x, dtype: dtype)
        let grid = dequantized(once, dtype: dtype, count: x.count)
        #expect(quantized(grid, dtype: dtype) == once)
    }

    @Test(arguments: DType.allCases)
    func weightMatrixRows(dtype: DType) {
        let m = OwnedMatrix(rows: 5, cols: 64, dtype: dtype, seed: 11, misaligned: true)
        #expect(m.matrix.rowBytes == dtype.byteCount(elements: 64))
        #expect(m.matrix.byteCount == 5 * m.matrix.rowBytes)
        var row = [Float](repeating: 0, count: 64)
        for r in 0..<5 {
            row.withUnsafeMutableBufferPointer { m.matrix.dequantizeRow(r, into: $0.baseAddress!) }
            #expect(row == Array(m.reference[(64 * r)..<(64 * r + 64)]))
        }
        let sub = m.matrix.rows(2..<4)
        #expect(sub.rows == 2 && sub.cols == 64 && sub.data == m.matrix.row(2))
        // Rows of 48 are not whole blocks: refused for the block types, fine for the float ones.
        #expect((WeightMatrix(data: m.matrix.data, dtype: dtype, rows: 1, cols: 48) == nil) == dtype.isQuantized)
        #expect(WeightMatrix(data: m.matrix.data, dtype: dtype, rows: -1, cols: 64) == nil)
        #expect(WeightMatrix(data: m.matrix.data, dtype: dtype, rows: Int.max / 2, cols: 64) == nil)
    }
}
