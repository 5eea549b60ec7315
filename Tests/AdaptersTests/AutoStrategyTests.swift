import Kernels
import Testing
@testable import Adapters
@testable import Model

@Suite("auto's cost model")
struct AutoStrategyTests {
    let model: LanguageModel
    let token: Adapter
    init() throws {
        model = try LanguageModel.random(configuration: BenchmarkShape.tiny.configuration, dtype: .f32, pool: ThreadPool(threads: 1))
        token = try Adapter.random(.mixture(routing: "token", experts: 4, topK: 2), model: model, rank: 4,
                                   targets: LayerTensor.projections, dtype: .f32)
    }

    @Test func tokenRoutingDecidesWithTheFiguresItIsGiven() throws {
        // With switches every token a rebuild (all adapted weights, twice) never beats the fused reads.
        let everyToken = AutoStrategy(adapter: token, model: model,
                                      machine: MachineFigures(bandwidth: 40e9, flops: 1e15, source: .measured))
        #expect(everyToken.choice == .fused && everyToken.usesMachine)
        #expect(everyToken.summary.hasPrefix("auto chose fused: "))
        #expect(everyToken.summary.hasSuffix(" at 40.0 GB/s and 1000000 GFLOP/s (measured in this run)"), "\(everyToken.summary)")
        // Rare switches on a machine with sgemm to spare: merging wins.
        let rare = AutoStrategy(adapter: token, model: model, switchRate: 1e-6,
                                machine: MachineFigures(bandwidth: 40e9, flops: 1e15, source: .cachedProbe))
        #expect(rare.choice == .merged && rare.summary.contains("(cached probe)"), "\(rare.summary)")
        // A slow sgemm makes the same rare switches too dear again.
        let slow = AutoStrategy(adapter: token, model: model, switchRate: 1e-6,
                                machine: MachineFigures(bandwidth: 40e9, flops: 1, source: .defaults))
        #expect(slow.choice == .fused)
    }

    @Test func otherCasesDoNotDependOnTheMachine() throws {
        let lora = try Adapter.random(.lora, model: model, rank: 4, targets: LayerTensor.projections, dtype: .f32)
        let layer = try Adapter.random(.mixture(routing: "layer", experts: 4, topK: 2), model: model, rank: 4,
                                       targets: LayerTensor.projections, dtype: .f32)
        let merged = AutoStrategy(adapter: lora, model: model), fused = AutoStrategy(adapter: layer, model: model)
        #expect(merged.choice == .merged && !merged.usesMachine)
        #expect(fused.choice == .fused && !fused.usesMachine)
        #expect(merged.summary.hasSuffix("(no machine figures needed)"))
    }

    @Test func switchTrafficFromTensorSizes() throws {
        let cost = SwitchCost(adapter: token, model: model)
        var adapted = 0
        for layer in model.weights.layers { for t in LayerTensor.projections { adapted += layer.projection(t)!.weight.byteCount } }
        #expect(cost.adaptedBytes == adapted && !cost.quantized)
        // A selection is what a fused token reads of the experts: everything but the router.
        #expect(cost.selectionBytes == token.bytesPerToken - (token.tokenRouter?.byteCount ?? 0))
        #expect(cost.bytes(inPlace: false) == 2 * adapted + cost.selectionBytes)
        #expect(cost.bytes(inPlace: true) == 2 * adapted + 2 * cost.selectionBytes)
    }
}
