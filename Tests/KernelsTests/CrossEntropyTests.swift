import Foundation
import Testing
@testable import Kernels

// Softmax cross-entropy: the loss against a float64 logsumexp, the gradient against central differences of it.

@Suite("Cross-entropy")
struct CrossEntropyTests {
    /// logsumexp(z) − z_target in float64.
    private static func loss(_ z: [Double], target: Int) -> Double {
        let m = z.max()!
        return m + log(z.reduce(0) { $0 + exp($1 - m) }) - z[target]
    }

    /// Rows with targets (two ignored, −100 and −1), logits spread over ±8 and shifted by up to 1000 (the shift must
    /// not matter). Loss: measured error ≤ 2.4e-9 relative to the float64 sum (the logs and the sum are in Double);
    /// tolerance 2e-8. Gradient per element against central differences of the float64 loss (step 1e-4) times the
    /// scale: measured ≤ 7.1e-8 of the largest |gradient|; tolerance 5e-7.
    @Test(arguments: [1, 17, 64, 1000])
    func matchesReference(vocab: Int) {
        let tokens = 6, scale: Float = 0.25
        let targets = [3 % vocab, -100, vocab - 1, 0, -1, (vocab / 2)]
        var logits = randomFloats(tokens * vocab, in: -8...8, seed: UInt64(vocab))
        for t in 0..<tokens { for j in 0..<vocab { logits[t * vocab + j] += [0, 1000, -500, 30, 0, 7][t] } }
        let buffer = GuardedFloats(logits)
        let (loss, count) = crossEntropy(buffer.pointer, vocab: vocab, targets: targets, rows: 0..<tokens, gradientScale: scale)
        #expect(buffer.guardsIntact)
        #expect(count == 4)
        var expectedLoss = 0.0
        for t in 0..<tokens {
            let row = doubles(Array(logits[(t * vocab)..<(t * vocab + vocab)]))
            let got = Array(buffer.array[(t * vocab)..<(t * vocab + vocab)])
            guard targets[t] >= 0 else {
                #expect(got.allSatisfy { $0 == 0 }, "ignored row \(t) has a gradient")
                continue
            }
            expectedLoss += Self.loss(row, target: targets[t])
            let expected = numericGradient(at: row, step: 1e-4) { Self.loss($0, target: targets[t]) }.map { $0 * Double(scale) }
            let error = relativeError(got, expected)
            #expect(error <= 5e-7, "vocab \(vocab) row \(t): gradient error \(error)")
            // softmax − onehot sums to 0.
            #expect(abs(got.reduce(0.0) { $0 + Double($1) }) <= 1e-6, "row \(t)")
        }
        let lossError = abs(loss - expectedLoss) / max(expectedLoss, 1) // vocab 1: the loss is 0
        #expect(lossError <= 2e-8, "vocab \(vocab): loss \(loss) vs \(expectedLoss)")
    }

    /// The pool driver: the same losses, gradients and count as one call over all rows, for any number of threads;
    /// no labelled row gives (0, 0).
    @Test(arguments: [1, 2, 3])
    func driver(threads: Int) {
        let tokens = 7, vocab = 50
        let targets = [1, -100, 2, 3, -100, 4, 49]
        let logits = randomFloats(tokens * vocab, in: -5...5, seed: 3)
        let one = GuardedFloats(logits), pooled = GuardedFloats(logits)
        let expected = crossEntropy(one.pointer, vocab: vocab, targets: targets, rows: 0..<tokens, gradientScale: 0.2)
        let got = targets.withUnsafeBufferPointer {
            crossEntropy(pooled.pointer, vocab: vocab, targets: $0.baseAddress!, tokens: tokens, gradientScale: 0.2,
                         pool: ThreadPool(threads: threads))
        }
        #expect(got.count == 5 && expected.count == 5)
        #expect(abs(got.loss - expected.loss) <= 1e-12 * expected.loss)
        #expect(pooled.array == one.array)

        let none = GuardedFloats(logits)
        let empty = crossEntropy(none.pointer, vocab: vocab, targets: [Int](repeating: -100, count: tokens), tokens: tokens,
                                 gradientScale: 1, pool: ThreadPool(threads: threads))
        #expect(empty.loss == 0 && empty.count == 0)
        #expect(none.array.allSatisfy { $0 == 0 })
    }
}
