import Foundation
import Kernels
import Testing
@testable import Adapters
@testable import Engine
@testable import Model

/// Tests/Fixtures, from this file's path.
let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures")

func fixture(_ path: String) -> String { fixtures.appendingPathComponent(path).path }

/// An engine over a fixture model, with a machine cache that is never written (no probe runs: tests pick
/// strategies that need no machine figures, or fixed ones).
func engine(_ model: String = "models/llama-gqa", threads: Int = 2) throws -> Engine {
    try Engine(modelPath: fixture(model), threads: threads, machineCache: MachineCache(path: "/nonexistent/machine.json"))
}

@Suite("Engine: the composition root")
struct EngineTests {
    @Test func adaptersAreRegisteredByNameOnce() throws {
        let e = try engine()
        try e.register("lora", specs: [AdapterSpec(path: fixture("adapters/lora-basic"))], strategy: .fused)
        try e.register("moe", specs: [AdapterSpec(path: fixture("adapters/moe-token-top2"))])
        #expect(e.adapters.map(\.name) == ["lora", "moe"])
        #expect(throws: EngineError.duplicateAdapter("lora")) {
            try e.register("lora", specs: [AdapterSpec(path: fixture("adapters/lora-second"))])
        }
        #expect(throws: EngineError.unknownAdapter("other", known: ["lora", "moe"])) { try e.session(adapter: "other") }
        #expect(throws: (any Error).self) {
            try e.register("missing", specs: [AdapterSpec(path: fixture("adapters/no-such-adapter"))])
        }
        #expect(e.adapters.count == 2, "a refused registration leaves the registry as it was")
    }

    /// A session the engine opens gives the logits of one attached by hand, for the bare model and an adapter.
    @Test func sessionsMatchHandMadeOnes() throws {
        let e = try engine()
        try e.register("moe", specs: [AdapterSpec(path: fixture("adapters/moe-token-top2"))], strategy: .fused)
        let tokens = [3, 1, 4, 1, 5, 9, 2, 6]
        let v = e.model.configuration.vocabSize
        for name in [nil, "moe"] as [String?] {
            let ours = try e.session(adapter: name, capacity: 16)
            let hand = InferenceSession(model: e.model, pool: ThreadPool(threads: 2), capacity: 16)
            if name != nil {
                let adapter = try Adapter.load([AdapterSpec(path: fixture("adapters/moe-token-top2"))], model: e.model)
                hand.adapters = try adapter.runtime(.fused, for: hand)
            }
            let a = FloatBuffer(count: tokens.count * v), b = FloatBuffer(count: tokens.count * v)
            try ours.logits(for: tokens, into: a.pointer)
            try hand.logits(for: tokens, into: b.pointer)
            #expect(Array(a.buffer) == Array(b.buffer), "\(name ?? "bare")")
        }
    }

    @Test func routingIsReportedWithPositionsForTokenRoutingOnly() throws {
        let e = try engine()
        try e.register("moe", specs: [AdapterSpec(path: fixture("adapters/moe-token-top2"))], strategy: .fused)
        try e.register("layer", specs: [AdapterSpec(path: fixture("adapters/moe-layer-top2"))], strategy: .fused)
        var positions: [Int] = []
        let session = try e.session(adapter: "moe", capacity: 16) { position, experts, gates in
            positions.append(position)
            #expect(experts.count == 2 && gates.count == 2)
        }
        _ = try session.prefill([1, 2, 3])
        _ = try session.decode(4)
        #expect(positions == [0, 1, 2, 3])
        #expect(throws: EngineError.routingWithoutRouter("layer")) { try e.session(adapter: "layer") { _, _, _ in } }
        #expect(throws: EngineError.routingWithoutRouter(nil)) { try e.session { _, _, _ in } }
    }

    /// Sessions on several threads share the engine's one pool at once.
    @Test func sessionsOnSeveralThreads() throws {
        let e = try engine()
        let tokens = [5, 6, 7, 8, 9]
        let single = try e.session(capacity: 8)
        let expected = Array(try single.prefill(tokens))
        let results = Results(count: 4)
        DispatchQueue.concurrentPerform(iterations: 4) { i in
            let session = try! e.session(capacity: 8)
            for _ in 0..<5 {
                session.reset()
                results.set(i, Array(try! session.prefill(tokens)))
            }
        }
        for i in 0..<4 { #expect(results.get(i) == expected, "thread \(i)") }
    }
}

/// Per-thread results of a concurrent test.
final class Results: @unchecked Sendable {
    private var values: [[Float]]
    private let lock = NSLock()
    init(count: Int) { values = Array(repeating: [], count: count) }
    func set(_ i: Int, _ value: [Float]) { lock.lock(); values[i] = value; lock.unlock() }
    func get(_ i: Int) -> [Float] { lock.lock(); defer { lock.unlock() }; return values[i] }
}
