#if canImport(Glibc)
import Glibc
#endif
import Kernels

/// The learning rate of each step: a linear warmup from 0, then the schedule from the peak to 0 (cosine, linear) or
/// flat (constant), over `totalSteps`.
public struct LearningRateSchedule: Equatable, Sendable {
    public enum Shape: String, CaseIterable, Sendable { case cosine, linear, constant }

    public var peak: Double
    public var warmup: Int
    public var totalSteps: Int
    public var shape: Shape

    public init(peak: Double, warmup: Int = 0, totalSteps: Int, shape: Shape = .cosine) {
        self.peak = peak
        self.warmup = max(0, warmup)
        self.totalSteps = max(1, totalSteps)
        self.shape = shape
    }

    /// The rate of step `step` (0-based): warmup steps rise as (step + 1) / warmup · peak, as transformers'
    /// schedules do; then the decay over the remaining steps.
    public func rate(step: Int) -> Double {
        if step < warmup { return peak * Double(step + 1) / Double(warmup) }
        let span = max(1, totalSteps - warmup)
        let progress = min(1, Double(step - warmup) / Double(span))
        switch shape {
        case .constant: return peak
        case .linear: return peak * (1 - progress)
        case .cosine: return peak * 0.5 * (1 + cos(Double.pi * progress))
        }
    }
}

/// AdamW (decoupled weight decay; Loshchilov & Hutter) or plain SGD over an adapter's parameters, with clipping by
/// the global gradient norm. Deterministic: the same gradients give the same values, bit for bit.
///
/// AdamW, as PyTorch's `torch.optim.AdamW`: θ ← θ − lr·wd·θ; m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²;
/// θ ← θ − lr · (m / (1−β₁ᵗ)) / (√(v / (1−β₂ᵗ)) + ε). SGD: θ ← θ − lr·wd·θ − lr·g.
public final class Optimizer {
    public enum Kind: String, CaseIterable, Sendable { case adamw, sgd }

    public let kind: Kind
    public let weightDecay: Float
    public let beta1: Float = 0.9
    public let beta2: Float = 0.999
    public let epsilon: Float = 1e-8
    /// Steps taken.
    public internal(set) var step = 0
    /// The moments, one pair of buffers per parameter tensor (AdamW only).
    public let firstMoments: [FloatBuffer]
    public let secondMoments: [FloatBuffer]

    let pool: ThreadPool
    /// Each thread's tensors: consecutive runs of about the same number of values.
    let shares: [Range<Int>]

    public init(kind: Kind, parameters: AdapterParameters, weightDecay: Float, pool: ThreadPool) {
        self.kind = kind
        self.weightDecay = weightDecay
        self.pool = pool
        let counts = kind == .adamw ? parameters.tensors.map(\.count) : []
        firstMoments = counts.map { FloatBuffer(count: $0) }
        secondMoments = counts.map { FloatBuffer(count: $0) }
        let total = parameters.parameterCount, threads = pool.threadCount
        var shares: [Range<Int>] = [], start = 0, seen = 0
        for (i, t) in parameters.tensors.enumerated() {
            seen += t.count
            if seen * threads >= total * (shares.count + 1) || i == parameters.tensors.count - 1 {
                shares.append(start..<(i + 1))
                start = i + 1
            }
        }
        while shares.count < threads { shares.append(start..<start) }
        self.shares = shares
    }

    /// The L2 norm of every gradient together: per-tensor sums in Float, added up in Double in tensor order (the same
    /// on any thread count).
    public func gradientNorm(_ parameters: AdapterParameters) -> Double {
        var partial = [Double](repeating: 0, count: parameters.tensors.count)
        partial.withUnsafeMutableBufferPointer { partial in
            pool.run { thread in
                for index in shares[thread] {
                    let t = parameters.tensors[index], g = t.gradient.pointer
                    var sum: Float = 0
                    for i in 0..<t.count { sum += g[i] * g[i] }
                    partial[index] = Double(sum)
                }
            }
        }
        return partial.reduce(0, +).squareRoot()
    }

    /// One update with learning rate `rate`, the gradients first scaled to a global norm of at most `clip`
    /// (0: no clipping). Returns the gradients' norm before clipping.
    @discardableResult
    public func update(_ parameters: AdapterParameters, rate: Double, clip: Double) -> Double {
        let norm = gradientNorm(parameters)
        let factor: Float = clip > 0 && norm > clip ? Float(clip / (norm + 1e-6)) : 1
        step += 1
        let lr = Float(rate), decay = 1 - lr * weightDecay
        let correction1 = 1 - powf(beta1, Float(step)), correction2 = 1 - powf(beta2, Float(step))
        pool.run { thread in
        for index in shares[thread] {
            let t = parameters.tensors[index], theta = t.value.pointer, g = t.gradient.pointer
            switch kind {
            case .sgd:
                for i in 0..<t.count { theta[i] = theta[i] * decay - lr * (g[i] * factor) }
            case .adamw:
                let m = firstMoments[index].pointer, v = secondMoments[index].pointer
                let stepSize = lr / correction1, root = 1 / correction2.squareRoot()
                for i in 0..<t.count {
                    let gi = g[i] * factor
                    m[i] = beta1 * m[i] + (1 - beta1) * gi
                    v[i] = beta2 * v[i] + (1 - beta2) * gi * gi
                    theta[i] = theta[i] * decay - stepSize * m[i] / ((v[i]).squareRoot() * root + epsilon)
                }
            }
        }
        }
        return norm
    }
}
