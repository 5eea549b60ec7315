import Foundation
import Kernels

/// How the next token is chosen from the logits. The defaults are llama.cpp's.
public struct SamplingParameters: Sendable, Equatable {
    /// 0 picks the most likely token (greedy); higher flattens the distribution.
    public var temperature: Float = 0.8
    /// Keep the k most likely tokens (0: all).
    public var topK: Int = 40
    /// Keep the most likely tokens whose probabilities sum to p (1: all).
    public var topP: Float = 0.95
    /// Drop tokens less likely than minP × the most likely one's probability (0: none).
    public var minP: Float = 0.05
    /// Logits of recently seen tokens are divided by this when positive, multiplied when negative (1: off).
    public var repetitionPenalty: Float = 1.0
    /// How many of the last tokens the penalty looks at.
    public var repetitionWindow: Int = 64
    /// Same seed, same choices.
    public var seed: UInt64 = 0x5EED

    public init() {}

    public static var greedy: SamplingParameters {
        var p = SamplingParameters()
        p.temperature = 0
        return p
    }

    /// Throws for out-of-range values, naming the parameter.
    public func validate() throws {
        func fail(_ name: String, _ detail: String) -> SamplingError { .invalid(parameter: name, detail: detail) }
        guard temperature.isFinite, temperature >= 0 else { throw fail("temperature", "must be ≥ 0") }
        guard topK >= 0 else { throw fail("top-k", "must be ≥ 0") }
        guard topP.isFinite, topP > 0, topP <= 1 else { throw fail("top-p", "must be in (0, 1]") }
        guard minP.isFinite, minP >= 0, minP <= 1 else { throw fail("min-p", "must be in [0, 1]") }
        guard repetitionPenalty.isFinite, repetitionPenalty > 0 else { throw fail("repeat-penalty", "must be > 0") }
        guard repetitionWindow >= 0 else { throw fail("repeat-last-n", "must be ≥ 0") }
    }
}

public enum SamplingError: Error, LocalizedError, Equatable {
    case invalid(parameter: String, detail: String)
    public var errorDescription: String? {
        switch self {
        case let .invalid(parameter, detail): return "sampling parameter \(parameter) \(detail)"
        }
    }
}

/// Picks tokens from logits: repetition penalty, then top-k, top-p and min-p on the probabilities at temperature 1,
/// then temperature, then a draw — llama.cpp's default order. The buffers the parameters need are allocated once,
/// the others not at all: greedy decoding without a penalty reads the scores in place.
public final class Sampler {
    public let parameters: SamplingParameters
    public let vocabularySize: Int
    private var rng: Xoshiro256
    private let penalizes: Bool
    private var logits: [Float]         // [V] the scores, penalized (empty when greedy without a penalty)
    private var candidates: [Int32]     // [V] token ids by descending logit (empty when greedy)
    private var probabilities: [Float]  // [V] (empty when greedy)
    private var penalized: [UInt32]     // [V] call stamps (empty without a penalty)
    private var stamp: UInt32 = 0

    public init(parameters: SamplingParameters, vocabularySize: Int) {
        self.parameters = parameters
        self.vocabularySize = vocabularySize
        rng = Xoshiro256(seed: parameters.seed)
        penalizes = parameters.repetitionPenalty != 1 && parameters.repetitionWindow > 0
        let draws = parameters.temperature != 0
        logits = draws || penalizes ? [Float](repeating: 0, count: vocabularySize) : []
        candidates = draws ? [Int32](repeating: 0, count: vocabularySize) : []
        probabilities = draws ? [Float](repeating: 0, count: vocabularySize) : []
        penalized = penalizes ? [UInt32](repeating: 0, count: vocabularySize) : []
    }

    /// The next token for `scores` [V]; `history` holds the tokens so far (prompt and generated).
    public func sample(_ scores: UnsafeBufferPointer<Float>, history: ArraySlice<Int>) -> Int {
        let v = min(scores.count, vocabularySize)
        let p = parameters
        if p.temperature == 0 && !penalizes {
            var best = 0
            for i in 1..<v where scores[i] > scores[best] { best = i }
            return best
        }
        for i in 0..<v { logits[i] = scores[i] }
        if penalizes {
            // Each distinct recent token once: `penalized` marks them with this call's stamp.
            stamp &+= 1
            for t in history.suffix(p.repetitionWindow) where t >= 0 && t < v && penalized[t] != stamp {
                penalized[t] = stamp
                logits[t] = logits[t] > 0 ? logits[t] / p.repetitionPenalty : logits[t] * p.repetitionPenalty
            }
        }
        if p.temperature == 0 {
            var best = 0
            for i in 1..<v where logits[i] > logits[best] { best = i }
            return best
        }

        // Candidates by descending logit: the top k by partial selection, or all of them.
        var n = v
        for i in 0..<v { candidates[i] = Int32(i) }
        if p.topK > 0 && p.topK < v {
            n = p.topK
            selectTop(n, of: v)
        }
        candidates[0..<n].sort { logits[Int($0)] > logits[Int($1)] }

        // Probabilities at temperature 1 for top-p and min-p.
        let top = logits[Int(candidates[0])]
        var total: Float = 0
        for i in 0..<n {
            probabilities[i] = expf(logits[Int(candidates[i])] - top)
            total += probabilities[i]
        }
        var keep = n
        if p.topP < 1 {
            var cumulative: Float = 0
            for i in 0..<n {
                cumulative += probabilities[i] / total
                if cumulative >= p.topP { keep = i + 1; break }
            }
        }
        if p.minP > 0 {
            // probabilities[0] is the largest (e^0 = 1).
            var k = 1
            while k < keep && probabilities[k] >= p.minP { k += 1 }
            keep = k
        }

        // Temperature on the survivors, then a draw.
        var sum: Float = 0
        for i in 0..<keep {
            probabilities[i] = expf((logits[Int(candidates[i])] - top) / p.temperature)
            sum += probabilities[i]
        }
        var r = Float(rng.nextUnit()) * sum
        for i in 0..<keep {
            r -= probabilities[i]
            if r <= 0 { return Int(candidates[i]) }
        }
        return Int(candidates[keep - 1])
    }

    /// Moves the k largest logits' ids to candidates[0..<k] (quickselect over the first `count`).
    private func selectTop(_ k: Int, of count: Int) {
        var lo = 0, hi = count - 1
        while lo < hi {
            let pivot = logits[Int(candidates[(lo + hi) / 2])]
            var i = lo, j = hi
            while i <= j {
                while logits[Int(candidates[i])] > pivot { i += 1 }
                while logits[Int(candidates[j])] < pivot { j -= 1 }
                if i <= j { candidates.swapAt(i, j); i += 1; j -= 1 }
            }
            if k - 1 <= j { hi = j } else if k - 1 >= i { lo = i } else { return }
        }
    }
}

/// xoshiro256**, seeded through SplitMix64: small, fast, and the same on every machine.
struct Xoshiro256 {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    init(seed: UInt64) {
        var x = SplitMix(seed: seed)
        s = (x.next(), x.next(), x.next(), x.next())
    }

    mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0; s.3 ^= s.1; s.1 ^= s.2; s.0 ^= s.3
        s.2 ^= t
        s.3 = s.3 << 45 | s.3 >> 19
        return result
    }

    /// Uniform in [0, 1).
    mutating func nextUnit() -> Double { Double(next() >> 11) * 0x1p-53 }
}
