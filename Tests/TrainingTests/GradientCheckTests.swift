import Foundation
import Kernels
import Model
import Testing
@testable import Training

// Whole-model gradients against central differences of the loss itself (float32, so a directional check: the
// derivative along a random direction of every parameter at once). PyTorch's autograd is the sharper reference
// (GradientFixtureTests); this one needs nothing but the forward pass.

let modelFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/models")

/// Parameters of `shape` on `model` with every value random: A and routers as initialized, B ~ U(±0.05) instead of
/// 0 (so that every gradient is non-zero, and the adapters move the logits by a fraction of the backbone's).
func randomParameters(_ shape: AdapterShape, model: LanguageModel, seed: UInt64) throws -> AdapterParameters {
    let parameters = try AdapterParameters(shape: shape, model: model, seed: seed)
    var random = SplitMix(seed: seed &+ 1)
    for t in parameters.tensors where t.name.contains("lora_B") {
        for i in 0..<t.count { t.value[i] = random.nextSymmetric(0.05) }
    }
    return parameters
}

/// Three examples of different lengths, the first two positions of one unlabelled.
func smallStep(vocabulary: Int, seed: UInt64) -> [TrainingExample] {
    var random = SplitMix(seed: seed)
    return [7, 12, 5].enumerated().map { index, length in
        let tokens = (0..<length).map { _ in Int(random.next() % UInt64(vocabulary)) }
        var labels = tokens
        if index == 1 { labels[0] = -100; labels[1] = -100; labels[2] = -100 }
        return TrainingExample(tokens: tokens, labels: labels)
    }
}

@Suite("Gradients against finite differences")
struct GradientCheckTests {
    static let loraShapes: [(String, AdapterShape)] = [
        ("lora", AdapterShape(kind: .lora, rank: 4, alpha: 8, targets: LayerTensor.projections, layers: [0, 1])),
        ("lora-layer1-qvdown", AdapterShape(kind: .lora, rank: 3, alpha: 3, rsLoRA: true, targets: [.q, .v, .down], layers: [1])),
        ("lora-q4", AdapterShape(kind: .lora, rank: 4, alpha: 8, targets: LayerTensor.projections, layers: [0, 1])),
    ]
    static let shapes: [(String, AdapterShape)] = [
        ("lora", AdapterShape(kind: .lora, rank: 4, alpha: 8, targets: LayerTensor.projections, layers: [0, 1])),
        ("moe-token", AdapterShape(kind: .moeToken, experts: 4, topK: 2, rank: 4, alpha: 8, targets: LayerTensor.projections,
                                   layers: [0, 1])),
        ("moe-token-router1", AdapterShape(kind: .moeToken, experts: 4, topK: 2, rank: 4, alpha: 8,
                                           targets: [.q, .v, .down], layers: [1], routerLayer: 1)),
        ("moe-layer", AdapterShape(kind: .moeLayer, experts: 4, topK: 2, rank: 4, alpha: 8, targets: LayerTensor.projections,
                                   layers: [0, 1])),
    ]

    /// ⟨∇loss, u⟩ against central differences of the loss along a random direction u: D(ε) = (loss(θ + εu) −
    /// loss(θ − εu)) / 2ε, extrapolated (4·D(ε/2) − D(ε)) / 3 to cancel the curvature's ε² term. LoRA only: under
    /// a mixture a finite step flips near-tied top-k choices (a constant of the gradient), which the loss's
    /// differences see and the gradient does not; mixtures are checked against autograd (GradientFixtureTests).
    /// Measured ≤ 3.5e-5 relative; 2e-4 allowed.
    @Test(arguments: loraShapes.map(\.0))
    func directionalDerivative(name: String) throws {
        let shape = Self.loraShapes.first { $0.0 == name }!.1
        let model = try LanguageModel.load(path: modelFixtures.appendingPathComponent(name.hasSuffix("q4") ? "llama-q4_1.gguf" : "llama-gqa").path)
        let parameters = try randomParameters(shape, model: model, seed: 11)
        let examples = smallStep(vocabulary: model.configuration.vocabSize, seed: 3)
        let step = [MicroBatch(packing: Array(examples[0..<2])), MicroBatch(packing: [examples[2]])]
        let objective = try TrainingObjective(model: model, parameters: parameters, pool: ThreadPool(threads: 2), capacity: 32,
                                              auxCoefficient: 0.05, zCoefficient: 0.01)
        _ = try objective.gradient(step)
        var random = SplitMix(seed: 5)
        var directional = 0.0
        var direction: [[Float]] = []
        for t in parameters.tensors {
            let u = (0..<t.count).map { _ in random.nextSymmetric(1) }
            for i in 0..<t.count { directional += Double(u[i]) * Double(t.gradient[i]) }
            direction.append(u)
        }
        func shifted(_ sign: Float, _ epsilon: Float) throws -> Double {
            for (t, u) in zip(parameters.tensors, direction) { for i in 0..<t.count { t.value[i] += sign * epsilon * u[i] } }
            defer { for (t, u) in zip(parameters.tensors, direction) { for i in 0..<t.count { t.value[i] -= sign * epsilon * u[i] } } }
            return try objective.loss(step).total
        }
        // The top-k choice is a constant of the gradient: a step that flips a choice would break the comparison.
        func central(_ epsilon: Float) throws -> Double { (try shifted(1, epsilon) - shifted(-1, epsilon)) / (2 * Double(epsilon)) }
        let numeric = (4 * (try central(2e-3)) - (try central(4e-3))) / 3
        let relative = abs(numeric - directional) / max(abs(directional), 1e-3)
        #expect(relative <= 2e-4, "\(name): analytic \(directional), numeric \(numeric), relative \(relative)")
    }

    /// Micro-batches change nothing: one batch of three examples and three micro-batches of one give the same loss
    /// and gradients (the aux term's fᵢ is the whole step's in both).
    @Test(arguments: shapes.map(\.0))
    func gradientAccumulationIsOneBatch(name: String) throws {
        let shape = Self.shapes.first { $0.0 == name }!.1
        let model = try LanguageModel.load(path: modelFixtures.appendingPathComponent("llama-gqa").path)
        let parameters = try randomParameters(shape, model: model, seed: 12)
        let examples = smallStep(vocabulary: model.configuration.vocabSize, seed: 4)
        let objective = try TrainingObjective(model: model, parameters: parameters, pool: ThreadPool(threads: 2), capacity: 32,
                                              auxCoefficient: 0.05, zCoefficient: 0.01)
        let whole = try objective.gradient([MicroBatch(packing: examples)])
        let first = parameters.tensors.map { $0.gradient.toArray() }
        let split = try objective.gradient(examples.map { MicroBatch(packing: [$0]) })
        #expect(abs(whole.total - split.total) <= 1e-6 * abs(whole.total), "\(whole.total) vs \(split.total)")
        #expect(whole.utilization == split.utilization)
        var worst: Float = 0, largest: Float = 0
        for (t, a) in zip(parameters.tensors, first) {
            for i in 0..<t.count {
                worst = max(worst, abs(t.gradient[i] - a[i]))
                largest = max(largest, abs(a[i]))
            }
        }
        #expect(worst <= 1e-5 * largest, "\(name): max |Δ| \(worst) of \(largest)")
    }
}
