#if canImport(Glibc)
import Glibc
#endif

/// The router's decision for one input: the top-k of a softmax over all N experts, computed in float32, with the
/// kept probabilities renormalized to sum 1 (MoLA / LoRA-Switch). Ties go to the lower expert index.
///
/// - logits: [N] router outputs; probabilities: scratch [N]
/// - experts, gates: [k] outputs, by descending gate
func selectExperts(logits: UnsafePointer<Float>, count n: Int, topK k: Int, probabilities: UnsafeMutablePointer<Float>,
                   experts: UnsafeMutablePointer<Int32>, gates: UnsafeMutablePointer<Float>) {
    _ = routerSoftmax(logits, count: n, into: probabilities)
    var kept: Float = 0
    for j in 0..<k {
        var best = -1
        for i in 0..<n where best < 0 || probabilities[i] > probabilities[best] {
            var taken = false
            for q in 0..<j where experts[q] == Int32(i) { taken = true }
            if !taken { best = i }
        }
        experts[j] = Int32(best)
        gates[j] = probabilities[best]
        kept += probabilities[best]
    }
    for j in 0..<k { gates[j] /= kept }
}

/// A router's probabilities p = softmax(z) over `n` logits, in float32 shifted by the maximum (the routing's
/// softmax: what `selectExperts` keeps the top-k of, and what training's aux and z-loss read). Returns
/// logsumexp(z). p: [n].
public func routerSoftmax(_ z: UnsafePointer<Float>, count n: Int, into p: UnsafeMutablePointer<Float>) -> Float {
    var m = z[0]
    for i in 1..<n { m = max(m, z[i]) }
    var sum: Float = 0
    for i in 0..<n {
        p[i] = expf(z[i] - m)
        sum += p[i]
    }
    for i in 0..<n { p[i] /= sum }
    return m + logf(sum)
}
