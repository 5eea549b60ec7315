/// SplitMix64 (Steele, Lea and Flood): a small, fast generator whose whole state is one word, so a sequence is
/// reproduced from its seed — random benchmark weights, initial adapter weights, the order of training examples.
public struct SplitMix: RandomNumberGenerator, Sendable {
    public private(set) var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 24 bits.
    public mutating func nextUnit() -> Float { Float(next() >> 40) / Float(1 << 24) }

    /// Uniform in [-bound, bound).
    public mutating func nextSymmetric(_ bound: Float) -> Float { (nextUnit() * 2 - 1) * bound }
}
