import Foundation
import Formats
import Kernels
import Model
import Testing
@testable import Adapters
@testable import Training

// Whole-model losses and gradients against PyTorch autograd in float64 (Tests/Fixtures/training, made by
// scripts/make_training_fixtures.py): LoRA (also rsLoRA on a Q4_1 GGUF base), token routing (top-2, top-1, a router
// on layer 1, a qwen2 base with biases) and layer routing, with the aux and z-loss terms.

let trainingFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures")

/// Every case in Tests/Fixtures/training (a file that cannot be read fails the test that lists them).
func trainingCases() throws -> [String] {
    let folder = trainingFixtures.appendingPathComponent("training").path
    return try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".safetensors") }
        .map { String($0.dropLast(".safetensors".count)) }.sorted()
}

@Suite("Gradients against PyTorch")
struct GradientFixtureTests {
    @Test func everyCaseIsFound() throws {
        #expect(try trainingCases() == ["lora", "lora-rslora-q4", "moe-layer-top2", "moe-token-qwen2", "moe-token-router1",
                                        "moe-token-top1", "moe-token-top2"])
    }

    /// The loss's terms within 5e-7 relative (measured ≤ 9.3e-8), every gradient tensor within 1e-5 of its largest
    /// element (measured ≤ 2.1e-6, moe-token-top2; the issue's bar is 1e-4): float32 against float64, on 1 to 3
    /// threads, the step as one micro-batch or one per example. A missing aux or z term moves the gradients by ~3e-3.
    @Test(arguments: try trainingCases())
    func matchesAutograd(name: String) throws {
        let file = try SafetensorsFile(path: trainingFixtures.appendingPathComponent("training/\(name).safetensors").path)
        func scalar(_ tensor: String) throws -> Double {
            let view = try #require(file.tensor(tensor), "\(name): no \(tensor)")
            return Double(view.data.loadUnaligned(as: Float.self))
        }
        let base = trainingFixtures.appendingPathComponent(try #require(file.metadata["base"])).path
        let folder = trainingFixtures.appendingPathComponent(try #require(file.metadata["adapter"])).path
        let model = try LanguageModel.load(path: base)
        let adapter = try Adapter.load([AdapterSpec(path: folder)], model: model)
        let shape = try AdapterShape(of: adapter, folder: folder)
        let parameters = try AdapterParameters(copying: adapter, shape: shape, model: model)
        let json = try #require(file.metadata["examples"]?.data(using: .utf8))
        let examples = try #require(try JSONSerialization.jsonObject(with: json) as? [[String: [Int]]]).map {
            TrainingExample(tokens: $0["input_ids"]!, labels: $0["labels"]!)
        }
        let aux = try #require(Float(file.metadata["aux_coef"] ?? "")), z = try #require(Float(file.metadata["z_coef"] ?? ""))
        for (threads, split) in [(2, false), (1, true), (3, true)] {
            let objective = try TrainingObjective(model: model, parameters: parameters, pool: ThreadPool(threads: threads),
                                                  capacity: 64, auxCoefficient: aux, zCoefficient: z)
            let step = split ? examples.map { MicroBatch(packing: [$0]) } : [MicroBatch(packing: examples)]
            let value = try objective.gradient(step)
            let run = "\(name), \(threads) threads\(split ? ", one micro-batch per example" : "")"
            #expect(value.labelled == Int(try scalar("labelled")), "\(run)")
            for (got, key) in [(value.total, "loss"), (value.crossEntropy, "ce"), (value.aux, "aux"), (value.z, "z")] {
                let expected = try scalar(key)
                #expect(abs(got - expected) <= 5e-7 * max(1, abs(expected)), "\(run): \(key) \(got) vs \(expected)")
            }
            let interleaved = model.weights.rope.layout == .interleaved, c = model.configuration
            for t in parameters.tensors {
                let view = try #require(file.tensor("grad." + t.name), "\(name): no gradient of \(t.name)")
                #expect(view.shape == t.shape)
                var gradient = t.gradient
                if interleaved, t.name.contains("lora_B"), t.name.contains("q_proj") || t.name.contains("k_proj") {
                    gradient = AdapterWriter.halvesOrder(t.gradient, rank: t.shape[1],
                                                         heads: t.name.contains("q_proj") ? c.numAttentionHeads : c.numKeyValueHeads,
                                                         headDim: c.headDim)
                }
                var worst: Float = 0, largest: Float = 0
                for i in 0..<t.count {
                    let expected = view.data.loadUnaligned(fromByteOffset: 4 * i, as: Float.self)
                    worst = max(worst, abs(gradient[i] - expected))
                    largest = max(largest, abs(expected))
                }
                #expect(worst <= 1e-5 * largest, "\(run): \(t.name): max |Δ| \(worst) of \(largest)")
            }
        }
    }
}
