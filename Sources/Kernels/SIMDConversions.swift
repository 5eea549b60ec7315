// Lane-wise conversions written as element loops on purpose.
//
// The standard library's converting initialisers (`SIMD16<Float>(someIntegerVector)`,
// `init(truncatingIfNeeded:)`, `init(lowHalf:highHalf:)`) compile to calls into pre-specialised copies, out of
// line, which costs more than the arithmetic in a kernel's inner loop. An element loop over a fixed-size vector is
// turned by LLVM into the single instruction it stands for (vcvtph2ps, vpmovzxwd…), inline.

/// float16 → float32, 16 lanes.
@inline(__always)
func widen(_ v: SIMD16<Float16>) -> SIMD16<Float> {
    var r = SIMD16<Float>()
    for i in 0..<16 { r[i] = Float(v[i]) }
    return r
}

/// 16-bit → 32-bit lanes, zero-extended, 8 lanes (vpmovzxwd).
@inline(__always)
func zeroExtend(_ v: SIMD8<UInt16>) -> SIMD8<UInt32> {
    var r = SIMD8<UInt32>()
    for i in 0..<8 { r[i] = UInt32(v[i]) }
    return r
}

/// bfloat16 bits → float32 (bfloat16 is the top half of a float32), 16 lanes.
@inline(__always)
func bf16ToFloat(_ bits: SIMD16<UInt16>) -> SIMD16<Float> {
    var r = SIMD16<UInt32>()
    for i in 0..<16 { r[i] = UInt32(bits[i]) &<< 16 }
    return unsafeBitCast(r, to: SIMD16<Float>.self)
}

/// Horizontal sum by halving (tree order). The standard library's `sum()` adds lanes one by one, out of line.
@inline(__always)
public func horizontalSum(_ v: SIMD16<Float>) -> Float {
    horizontalSum(v.lowHalf + v.highHalf)
}

@inline(__always)
public func horizontalSum(_ v: SIMD8<Float>) -> Float {
    let b = v.lowHalf + v.highHalf
    let c = b.lowHalf + b.highHalf
    return c[0] + c[1]
}
