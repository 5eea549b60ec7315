import Kernels

/// K solved examples written before each context, as lm-evaluation-harness builds a few-shot prompt: each shot is
/// its context followed by its gold choice, the shots and the context joined by a blank line —
/// `shot₁ + "\n\n" + … + shot_K + "\n\n" + context`. (The harness writes `target_delimiter` between a context and
/// its answer; a task file's context carries that separator at its end, e.g. "A: ", so context + choice it is.)
///
/// The shots of the example at 0-based index i of the evaluated file are drawn from `pool` without replacement by a
/// partial Fisher–Yates shuffle driven by SplitMix64 seeded with `seed XOR (i · 0xD1B54A32D192ED03)`, each draw in
/// 0..<m taken as the high word of next() · m. So an example's shots depend on the seed, its index and the pool
/// alone: not on --limit, on the other examples, or on the order they are scored in. When the evaluated examples
/// are the pool itself (the train split, or a task file that is its own pool), example i is never its own shot.
public struct FewShotPrompts: Sendable {
    public let pool: [MultipleChoiceExample]
    public let shots: Int
    public let seed: UInt64
    /// Whether the evaluated examples are `pool` itself, index for index.
    public let evaluatesPool: Bool

    public static let delimiter = "\n\n"
    /// lm-evaluation-harness's default few-shot seed.
    public static let defaultSeed: UInt64 = 1234

    /// `poolFile` names the pool in the error when it holds fewer than `shots` examples to draw from.
    public init(pool: [MultipleChoiceExample], poolFile: String, shots: Int, seed: UInt64 = defaultSeed,
                evaluatesPool: Bool) throws {
        guard shots >= 0 else { throw EvaluationError.invalidParameter(name: "shots", problem: "\(shots) is negative") }
        let available = evaluatesPool ? pool.count - 1 : pool.count
        guard shots <= available else {
            throw EvaluationError.notEnoughShots(file: poolFile, shots: shots, available: max(0, available))
        }
        self.pool = pool
        self.shots = shots
        self.seed = seed
        self.evaluatesPool = evaluatesPool
    }

    /// The pool indices of the shots of the example at `index`, in prompt order.
    public func draw(for index: Int) -> [Int] {
        guard shots > 0 else { return [] }
        var candidates = Array(pool.indices)
        if evaluatesPool { candidates.remove(at: index) }
        var random = SplitMix(seed: seed ^ (UInt64(index) &* 0xD1B5_4A32_D192_ED03))
        for k in 0..<shots {
            let remaining = UInt64(candidates.count - k)
            let j = k + Int(random.next().multipliedFullWidth(by: remaining).high)
            candidates.swapAt(k, j)
        }
        return Array(candidates[..<shots])
    }

    /// The context to score the choices of the example at `index` after: its shots, then its own context.
    public func context(for example: MultipleChoiceExample, at index: Int) -> String {
        guard shots > 0 else { return example.context }
        let solved = draw(for: index).map { pool[$0].context + pool[$0].choices[pool[$0].gold] }
        return (solved + [example.context]).joined(separator: Self.delimiter)
    }
}
