// Conversion between float32 and the stored dtypes, element by element or block by block.
// Block layouts: see `DType`. Quantizers follow ggml's reference quantizers (quantize_row_q*_ref), so a model
// quantized here decodes like one quantized by llama.cpp.

// MARK: - To float32

/// Converts `count` elements stored as `dtype` at `src` into float32 at `out`. For quantized types `count` is a
/// multiple of 32.
public func dequantize(_ src: UnsafeRawPointer, dtype: DType, count: Int, into out: UnsafeMutablePointer<Float>) {
    switch dtype {
    case .f32:
        out.update(from: src.assumingMemoryBound(to: Float.self), count: count)
    case .f16:
        var i = 0
        while i + 16 <= count {
            let h = src.loadUnaligned(fromByteOffset: 2 * i, as: SIMD16<Float16>.self)
            UnsafeMutableRawPointer(out + i).storeBytes(of: widen(h), as: SIMD16<Float>.self)
            i += 16
        }
        while i < count {
            out[i] = f16ToFloat(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
            i += 1
        }
    case .bf16:
        var i = 0
        while i + 16 <= count {
            let b = src.loadUnaligned(fromByteOffset: 2 * i, as: SIMD16<UInt16>.self)
            UnsafeMutableRawPointer(out + i).storeBytes(of: bf16ToFloat(b), as: SIMD16<Float>.self)
            i += 16
        }
        while i < count {
            out[i] = bf16ToFloat(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
            i += 1
        }
    case .q8_0, .q4_0, .q4_1:
        for b in 0..<(count / 32) {
            dequantizeBlock(src + b * dtype.blockBytes, dtype: dtype, into: out + 32 * b)
        }
    }
}

/// One block of 32 quantized values → float32, element by element (LLVM vectorises the loops).
@inline(__always)
func dequantizeBlock(_ block: UnsafeRawPointer, dtype: DType, into out: UnsafeMutablePointer<Float>) {
    let d = f16ToFloat(block.loadUnaligned(as: UInt16.self))
    switch dtype {
    case .q8_0:
        let q = (block + 2).assumingMemoryBound(to: Int8.self)
        for j in 0..<32 { out[j] = Float(Int32(q[j])) * d }
    case .q4_0, .q4_1:
        let m = dtype == .q4_0 ? -8 * d : f16ToFloat(block.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
        let bytes = (block + (dtype == .q4_0 ? 2 : 4)).assumingMemoryBound(to: UInt8.self)
        for j in 0..<16 {
            out[j] = Float(Int32(bytes[j] & 0x0F)) * d + m
            out[j + 16] = Float(Int32(bytes[j] >> 4)) * d + m
        }
    case .f32, .f16, .bf16:
        preconditionFailure("not a block type")
    }
}

// MARK: - From float32

/// Converts `count` float32 values into `dtype` at `dst` (`dtype.byteCount(elements: count)` bytes). For
/// quantized types `count` is a multiple of 32.
public func quantize(_ src: UnsafePointer<Float>, count: Int, dtype: DType, into dst: UnsafeMutableRawPointer) {
    switch dtype {
    case .f32:
        dst.copyMemory(from: src, byteCount: 4 * count)
    case .f16:
        for i in 0..<count { dst.storeBytes(of: Float16(src[i]).bitPattern, toByteOffset: 2 * i, as: UInt16.self) }
    case .bf16:
        for i in 0..<count { dst.storeBytes(of: floatToBF16(src[i]), toByteOffset: 2 * i, as: UInt16.self) }
    case .q8_0, .q4_0, .q4_1:
        for b in 0..<(count / 32) {
            quantizeBlock(src + 32 * b, dtype: dtype, into: dst + b * dtype.blockBytes)
        }
    }
}

private func quantizeBlock(_ x: UnsafePointer<Float>, dtype: DType, into block: UnsafeMutableRawPointer) {
    func storeHalf(_ value: Float, at offset: Int) {
        block.storeBytes(of: Float16(value).bitPattern, toByteOffset: offset, as: UInt16.self)
    }
    switch dtype {
    case .q8_0:
        var amax: Float = 0
        for j in 0..<32 { amax = max(amax, abs(x[j])) }
        let d = amax / 127
        let id: Float = d != 0 ? 1 / d : 0
        storeHalf(d, at: 0)
        for j in 0..<32 {
            block.storeBytes(of: Int8((x[j] * id).rounded()), toByteOffset: 2 + j, as: Int8.self)
        }
    case .q4_0:
        var amax: Float = 0, signedMax: Float = 0
        for j in 0..<32 where abs(x[j]) > amax { amax = abs(x[j]); signedMax = x[j] }
        let d = signedMax / -8
        let id: Float = d != 0 ? 1 / d : 0
        storeHalf(d, at: 0)
        for j in 0..<16 {
            let lo = min(15, Int8(x[j] * id + 8.5)), hi = min(15, Int8(x[j + 16] * id + 8.5))
            block.storeBytes(of: UInt8(lo) | UInt8(hi) << 4, toByteOffset: 2 + j, as: UInt8.self)
        }
    case .q4_1:
        var lowest = Float.infinity, highest = -Float.infinity
        for j in 0..<32 { lowest = min(lowest, x[j]); highest = max(highest, x[j]) }
        let d = (highest - lowest) / 15
        let id: Float = d != 0 ? 1 / d : 0
        storeHalf(d, at: 0)
        storeHalf(lowest, at: 2)
        for j in 0..<16 {
            let lo = min(15, Int8((x[j] - lowest) * id + 0.5)), hi = min(15, Int8((x[j + 16] - lowest) * id + 0.5))
            block.storeBytes(of: UInt8(lo) | UInt8(hi) << 4, toByteOffset: 4 + j, as: UInt8.self)
        }
    case .f32, .f16, .bf16:
        preconditionFailure("not a block type")
    }
}
