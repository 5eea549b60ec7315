import Foundation
import Kernels
import Model
import TestSupport
import Testing
@testable import Adapters
@testable import Training

// Trained parameters written as an adapter folder and read back: the same values bit for bit, on a Hugging Face base
// and on a GGUF llama base (whose q and k rows are permuted in memory and written in the checkpoint's order).

@Suite("Adapter folders written from training")
struct AdapterWriterTests {
    static let shapes: [AdapterShape] = [
        AdapterShape(kind: .lora, rank: 4, alpha: 8, rsLoRA: true, targets: [.q, .k, .down], layers: [0, 1]),
        AdapterShape(kind: .moeToken, experts: 3, topK: 2, rank: 2, alpha: 4, targets: LayerTensor.projections, layers: [1],
                     routerLayer: 1),
        AdapterShape(kind: .moeLayer, experts: 2, topK: 1, rank: 3, alpha: 3, targets: [.k, .o, .up], layers: [0]),
    ]

    @Test(arguments: ["llama-gqa", "llama-q4_1.gguf"], [0, 1, 2])
    func writtenAndReadBack(base: String, shapeIndex: Int) throws {
        let folder = try TemporaryFolder()
        let model = try LanguageModel.load(path: modelFixtures.appendingPathComponent(base).path)
        let shape = Self.shapes[shapeIndex]
        let parameters = try randomParameters(shape, model: model, seed: 21)
        let path = folder.file("adapter")
        try AdapterWriter.write(parameters, model: model, to: path, auxCoefficient: 0.01)
        let config = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path + "/adapter_config.json"))) as? [String: Any])
        #expect(config["peft_type"] as? String == (shape.kind == .lora ? "LORA" : "MOE_LORA"))
        let loaded = try Adapter.load([AdapterSpec(path: path)], model: model)
        let readShape = try AdapterShape(of: loaded, folder: path)
        #expect(readShape == shape)
        let copy = try AdapterParameters(copying: loaded, shape: readShape, model: model)
        #expect(copy.tensors.map(\.name) == parameters.tensors.map(\.name))
        for (a, b) in zip(parameters.tensors, copy.tensors) {
            #expect(a.value.toArray() == b.value.toArray(), "\(base): \(a.name)")
        }
        // Writing again replaces the folder whole; nothing is left beside it.
        try AdapterWriter.write(copy, model: model, to: path)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted() == ["adapter"])
    }

    @Test func unwritableDestinationsAreRefused() throws {
        let model = try LanguageModel.load(path: modelFixtures.appendingPathComponent("llama-gqa").path)
        let parameters = try AdapterParameters(shape: Self.shapes[0], model: model, seed: 1)
        #expect(throws: TrainingError.self) {
            try AdapterWriter.write(parameters, model: model, to: "/nonexistent-folder/adapter")
        }
    }
}
