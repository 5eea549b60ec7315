#if canImport(Glibc)
import Glibc
#endif

/// Rotary position embedding for one head size.
///
/// Two layouts of the rotated pairs exist in the wild, and both are kept as stored (no permuted copy of weights):
/// - `.halves`: element i pairs with i + d/2 (HF `rotate_half`; ggml's "NEOX" mode; GGUF qwen2).
/// - `.interleaved`: element 2i pairs with 2i + 1 (ggml's "NORM" mode). llama.cpp's converter permutes the rows of
///   a llama checkpoint's q and k projections so that the HF pairs (i, i + d/2) land at (2i, 2i + 1); rotating the
///   GGUF rows interleaved therefore gives the HF result up to that fixed permutation within each head, which q·k
///   does not see.
public struct Rope: Sendable {
    public enum Layout: Sendable { case halves, interleaved }

    public let layout: Layout
    /// Rotated dimensions per head (the head size).
    public let dimensions: Int
    /// Angle per position for each pair: [dimensions / 2].
    public let inverseFrequencies: [Float]

    /// inverseFrequencies[i] = base^(−2i/d), as HF computes them, before any scaling.
    public static func baseFrequencies(base: Double, dimensions d: Int) -> [Float] {
        (0..<(d / 2)).map { i in Float(1 / pow(base, Double(2 * i) / Double(d))) }
    }

    public init(layout: Layout, inverseFrequencies: [Float]) {
        self.layout = layout
        self.dimensions = 2 * inverseFrequencies.count
        self.inverseFrequencies = inverseFrequencies
    }

    /// cos and sin of position · frequency, each [dimensions / 2].
    public func angles(position: Int, cos c: UnsafeMutablePointer<Float>, sin s: UnsafeMutablePointer<Float>) {
        let p = Float(position)
        for i in 0..<inverseFrequencies.count {
            let a = p * inverseFrequencies[i]
            c[i] = cosf(a)
            s[i] = sinf(a)
        }
    }

    /// Rotates `heads` consecutive head vectors of `dimensions` elements at `x` in place.
    public func rotate(_ x: UnsafeMutablePointer<Float>, heads: Int,
                       cos c: UnsafePointer<Float>, sin s: UnsafePointer<Float>) {
        rotate(x, heads: heads, cos: c, sin: s, sign: 1)
    }

    /// The backward pass of `rotate`: rotates each pair by the opposite angle (the rotation's transpose is its
    /// inverse), turning ∂L/∂(rotated) into ∂L/∂(unrotated) in place. Same arguments as `rotate`.
    public func rotateBackward(_ x: UnsafeMutablePointer<Float>, heads: Int,
                               cos c: UnsafePointer<Float>, sin s: UnsafePointer<Float>) {
        rotate(x, heads: heads, cos: c, sin: s, sign: -1)
    }

    /// Each pair (a, b) ← (a·cos − b·sin·sign, b·cos + a·sin·sign): by the angle (sign 1) or its opposite (−1).
    @inline(__always)
    private func rotate(_ x: UnsafeMutablePointer<Float>, heads: Int, cos c: UnsafePointer<Float>,
                        sin s: UnsafePointer<Float>, sign: Float) {
        let half = dimensions / 2
        for h in 0..<heads {
            let v = x + h * dimensions
            switch layout {
            case .halves:
                for i in 0..<half {
                    let a = v[i], b = v[i + half], si = sign * s[i]
                    v[i] = a * c[i] - b * si
                    v[i + half] = b * c[i] + a * si
                }
            case .interleaved:
                for i in 0..<half {
                    let a = v[2 * i], b = v[2 * i + 1], si = sign * s[i]
                    v[2 * i] = a * c[i] - b * si
                    v[2 * i + 1] = b * c[i] + a * si
                }
            }
        }
    }
}
