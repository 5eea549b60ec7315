// MARK: - Element types of weights

/// The element types a weight may be stored in. Floats are stored element by element; the quantized types
/// (GGML's block formats) store blocks of 32 elements, each with its own scale.
///
/// Block layouts (little-endian, as GGML writes them):
/// - `q8_0`: f16 d, then 32 × int8 q; x = d·q
/// - `q4_0`: f16 d, then 16 bytes; byte j holds element j (low nibble) and j+16 (high nibble); x = d·(q − 8)
/// - `q4_1`: f16 d, f16 m, then 16 bytes as q4_0; x = d·q + m
public enum DType: String, CaseIterable, Sendable, CustomStringConvertible {
    case f32, f16, bf16, q8_0, q4_0, q4_1

    /// Elements per block (1 for the float types).
    public var blockElements: Int {
        switch self {
        case .f32, .f16, .bf16: return 1
        case .q8_0, .q4_0, .q4_1: return 32
        }
    }

    /// Bytes per block.
    public var blockBytes: Int {
        switch self {
        case .f32: return 4
        case .f16, .bf16: return 2
        case .q8_0: return 34
        case .q4_0: return 18
        case .q4_1: return 20
        }
    }

    public var isQuantized: Bool { blockElements > 1 }

    public var description: String { rawValue }

    /// Bytes taken by `count` elements, or nil when `count` is not a whole number of blocks or overflows.
    public func byteCount(elements count: Int) -> Int? {
        guard count >= 0, count % blockElements == 0 else { return nil }
        let (bytes, overflow) = (count / blockElements).multipliedReportingOverflow(by: blockBytes)
        return overflow ? nil : bytes
    }
}

// MARK: - Scalar conversions

/// bfloat16 is the top half of an IEEE float32.
@inline(__always)
public func bf16ToFloat(_ bits: UInt16) -> Float {
    Float(bitPattern: UInt32(bits) << 16)
}

/// Round-to-nearest-even float32 → bfloat16, as PyTorch does (NaN stays NaN).
@inline(__always)
public func floatToBF16(_ value: Float) -> UInt16 {
    let bits = value.bitPattern
    if value.isNaN { return UInt16(truncatingIfNeeded: (bits >> 16) | 0x40) }
    let rounding = UInt32(0x7FFF) + ((bits >> 16) & 1)
    return UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
}

@inline(__always)
func f16ToFloat(_ bits: UInt16) -> Float {
    Float(Float16(bitPattern: bits))
}
