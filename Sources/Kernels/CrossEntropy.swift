#if canImport(Glibc)
import Glibc
#endif

// Softmax cross-entropy over the vocabulary with its gradient written over the logits (llm.c's
// crossentropy_softmax_backward fused with the forward): for a row z with target y,
// loss = logsumexp(z) − z_y and ∂loss/∂z = softmax(z) − onehot(y).
//
// Shapes: T rows (tokens), V the vocabulary; logits [T, V]; targets [T], a negative target (HF's −100) marks a row
// without a label, which adds nothing to the loss and gets a zero gradient.

/// For each row t in `rows` of logits [T, vocab] (row stride vocab): adds the row's loss
/// logsumexp(z_t) − z_t[targets[t]] (shifted by the row's maximum; the log and the sums of losses in Double) and
/// overwrites the row with its gradient (softmax(z_t) − onehot(targets[t])) · gradientScale. Rows whose target is
/// negative are zeroed and not counted. Targets otherwise lie in 0..<vocab.
///
/// Returns the summed loss of the labelled rows (not scaled) and their number. `gradientScale` is the caller's
/// weight of each row's loss, e.g. 1 / (labelled rows of the batch) for a mean.
public func crossEntropy(_ logits: UnsafeMutablePointer<Float>, vocab: Int, targets: UnsafePointer<Int>,
                         rows: Range<Int>, gradientScale: Float) -> (loss: Double, count: Int) {
    var loss = 0.0, count = 0
    for t in rows {
        let z = logits + t * vocab, target = targets[t]
        guard target >= 0 else {
            z.update(repeating: 0, count: vocab)
            continue
        }
        precondition(target < vocab, "target \(target) outside the vocabulary of \(vocab)")
        let labelled = z[target]
        let maximum = rowMaximum(z, count: vocab)
        let sum = exponentiateRow(z, count: vocab, shift: maximum) // z ← e^(z − max)
        loss += Double(maximum) + log(Double(sum)) - Double(labelled)
        count += 1
        scaleRow(z, count: vocab, by: gradientScale / sum)
        z[target] -= gradientScale
    }
    return (loss, count)
}

/// `crossEntropy` over rows 0..<tokens, split between the pool's threads; the threads' sums are added in thread
/// order (the same result on every run).
public func crossEntropy(_ logits: UnsafeMutablePointer<Float>, vocab: Int, targets: UnsafePointer<Int>, tokens: Int,
                         gradientScale: Float, pool: ThreadPool) -> (loss: Double, count: Int) {
    let threads = pool.threadCount
    let losses = UnsafeMutablePointer<Double>.allocate(capacity: threads)
    let counts = UnsafeMutablePointer<Int>.allocate(capacity: threads)
    defer { losses.deallocate(); counts.deallocate() }
    pool.run { thread in
        let rows = ThreadPool.chunk(tokens, part: thread, of: threads)
        (losses[thread], counts[thread]) = crossEntropy(logits, vocab: vocab, targets: targets, rows: rows,
                                                        gradientScale: gradientScale)
    }
    var loss = 0.0, count = 0
    for thread in 0..<threads { loss += losses[thread]; count += counts[thread] }
    return (loss, count)
}
