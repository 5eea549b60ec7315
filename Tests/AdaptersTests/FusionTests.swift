import Foundation
import Formats
import Kernels
import Testing
import TestSupport
@testable import Adapters
@testable import Model

/// The logits of one pass over `tokens`.
func passLogits(_ model: LanguageModel, _ tokens: [Int], adapter: Adapter? = nil) throws -> [Float] {
    let session = InferenceSession(model: model, pool: ThreadPool(threads: 2), capacity: tokens.count)
    if let adapter { session.adapters = try adapter.runtime(.fused, for: session) }
    let logits = FloatBuffer(count: tokens.count * model.configuration.vocabSize)
    try session.logits(for: tokens, into: logits.pointer)
    return logits.toArray()
}

@Suite("fuse and unfuse")
struct FusionTests {
    let scratch: TemporaryFolder
    init() throws { scratch = try TemporaryFolder() }

    private func fixture(_ name: String) throws -> AdapterCase { try AdapterCase.named(name) }

    /// Fuses `name`'s adapters into its base, reloads the result and compares with the fixture's reference logits.
    private func fuseMatchesReference(_ name: String, output: String, dtype: DType? = nil, tolerance: Float) throws -> LanguageModel {
        let fixture = try fixture(name)
        let model = try LanguageModel.load(path: fixture.base)
        let adapter = try Adapter.load(fixture.specs, model: model)
        try Fusion.write(model: model, adapter: adapter, dtype: dtype, to: output, pool: ThreadPool(threads: 2))
        let fused = try LanguageModel.load(path: output)
        let (expected, _) = try fixture.expected()
        let logits = try passLogits(fused, fixture.tokens)
        let d = maxDifference(logits, expected)
        #expect(d <= tolerance, "\(name) fused: max |Δ| \(d)")
        return fused
    }

    @Test func huggingFaceFolderWithWeightedLoRAs() throws {
        let out = scratch.file("fused")
        _ = try fuseMatchesReference("lora-pair", output: out, tolerance: 1e-5) // measured 1.6e-6
        // Everything but the weights is copied; nothing is left beside the output.
        #expect(try FileManager.default.contentsOfDirectory(atPath: out).sorted() == ["config.json", "model.safetensors"])
        #expect(try scratch.contents() == ["fused"])
    }

    @Test func ggufKeepsItsMetadata() throws {
        let out = scratch.file("fused.gguf")
        let fused = try fuseMatchesReference("peft-lora-for-gguf", output: out, tolerance: 1e-5) // measured 2.1e-6
        let original = try GGUFFile(path: try fixture("peft-lora-for-gguf").base), written = try GGUFFile(path: out)
        #expect(written.metadataKeys == original.metadataKeys)
        #expect(written.metadata == original.metadata)
        #expect(written.tensorNames == original.tensorNames)
        #expect(fused.format == .gguf)
    }

    @Test func quantizedBaseIsWrittenAsFloat() throws {
        // Q8_0 base + GGUF LoRA: the adapted matrices become float; f32 keeps the dequantized base exactly (measured
        // 2.1e-6), f16 rounds the sums (measured 2.0e-3).
        let f32 = try fuseMatchesReference("gguf-lora-on-q8", output: scratch.file("q8-f32.gguf"), dtype: .f32, tolerance: 1e-5)
        #expect(f32.weights.layers[0].q.weight.dtype == .f32)
        #expect(f32.weights.embedding.dtype == .q8_0, "tensors the adapter leaves alone are copied as they are")
        let f16 = try fuseMatchesReference("gguf-lora-on-q8", output: scratch.file("q8.gguf"), tolerance: 1e-2)
        #expect(f16.weights.layers[0].q.weight.dtype == .f16)
    }

    @Test func unfuseGivesBackTheBase() throws {
        let fixture = try fixture("lora-pair")
        let base = try LanguageModel.load(path: fixture.base)
        let adapter = try Adapter.load(fixture.specs, model: base)
        let pool = ThreadPool(threads: 2)
        try Fusion.write(model: base, adapter: adapter, to: scratch.file("fused"), pool: pool)
        let fused = try LanguageModel.load(path: scratch.file("fused"))
        try Fusion.write(model: fused, adapter: try Adapter.load(fixture.specs, model: fused), subtract: true,
                         to: scratch.file("unfused"), pool: pool)
        let unfused = try LanguageModel.load(path: scratch.file("unfused"))
        var worst: Float = 0, changed: Float = 0
        for l in 0..<base.configuration.numHiddenLayers {
            for tensor in LayerTensor.projections {
                let a = base.weights.layers[l].projection(tensor)!.weight, b = unfused.weights.layers[l].projection(tensor)!.weight
                let c = fused.weights.layers[l].projection(tensor)!.weight
                let n = a.rows * a.cols
                let pa = a.data.assumingMemoryBound(to: Float.self), pb = b.data.assumingMemoryBound(to: Float.self)
                let pc = c.data.assumingMemoryBound(to: Float.self)
                for i in 0..<n {
                    worst = max(worst, abs(pa[i] - pb[i]))
                    changed = max(changed, abs(pa[i] - pc[i]))
                }
            }
        }
        #expect(changed > 0.05, "the fused model must differ from the base") // measured 0.156
        // Only the rounding of w + Δ − Δ in float32: measured 3.0e-8.
        #expect(worst <= 1.5e-7, "unfused vs base: max |Δ| \(worst)")
    }

    @Test func refusals() throws {
        let pool = ThreadPool(threads: 1)
        let moe = try fixture("moe-token-top2")
        let model = try LanguageModel.load(path: moe.base)
        let mixture = try Adapter.load(moe.specs, model: model)
        #expect(throws: AdapterError.self) { try Fusion.write(model: model, adapter: mixture, to: scratch.file("a"), pool: pool) }
        let lora = try Adapter.load(try fixture("lora-basic").specs, model: model)
        #expect(throws: AdapterError.self) { try Fusion.write(model: model, adapter: lora, dtype: .q8_0, to: scratch.file("b"), pool: pool) }
        try FileManager.default.createDirectory(atPath: scratch.file("taken"), withIntermediateDirectories: false)
        #expect(throws: AdapterError.self) { try Fusion.write(model: model, adapter: lora, to: scratch.file("taken"), pool: pool) }
        #expect(try scratch.contents() == ["taken"], "nothing may be written on failure")
    }
}
