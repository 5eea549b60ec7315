import Kernels

/// The order in which an epoch visits the examples: a pure function of (count, seed, epoch), so a resumed run
/// finds the order it left, and every example comes exactly once per epoch.
public enum ExampleOrder {
    /// A permutation of 0..<count. The generator is `SplitMix(seed: seed ^ SplitMix(seed: UInt64(epoch)).next())`
    /// (epochs get unrelated streams, not shifted copies of one); the shuffle is Durstenfeld's Fisher–Yates from
    /// the top: for i = count-1 down to 1, j = next() % (i + 1), swap i and j (the modulo's bias is below
    /// count / 2^64). In Python:
    ///
    ///     order = list(range(count))
    ///     for i in range(count - 1, 0, -1):
    ///         j = next() % (i + 1); order[i], order[j] = order[j], order[i]
    public static func shuffled(count: Int, seed: UInt64, epoch: Int) -> [Int] {
        var order = Array(0..<max(count, 0))
        var epochMix = SplitMix(seed: UInt64(bitPattern: Int64(epoch)))
        var generator = SplitMix(seed: seed ^ epochMix.next())
        var i = order.count - 1
        while i > 0 {
            let j = Int(generator.next() % UInt64(i + 1))
            order.swapAt(i, j)
            i -= 1
        }
        return order
    }
}
