import Foundation
import Kernels
import Testing
@testable import Adapters
@testable import Model

// Runtimes are made for one session (model, threads, chunk size) and refuse any other; the reference adapters group
// each pass's rows by expert.

private func load(_ folder: String, base: String = "models/llama-gqa") throws -> (LanguageModel, Adapter) {
    let model = try LanguageModel.load(path: fixtures.appendingPathComponent(base).path)
    let adapter = try Adapter.load([AdapterSpec(path: fixtures.appendingPathComponent("adapters/\(folder)").path)], model: model)
    return (model, adapter)
}

@Suite("Runtimes fit their session")
struct RuntimeFitTests {
    /// A fused runtime made for a two-thread session, attached to a three-thread one (or one with longer chunks, or
    /// another model), is refused at the next pass with one line, instead of reading past its buffers.
    @Test func fusedRuntimeInAnotherSession() throws {
        let (model, adapter) = try load("moe-token-top2")
        let two = InferenceSession(model: model, pool: ThreadPool(threads: 2), capacity: 16, chunkSize: 8)
        let runtime = try adapter.runtime(.fused, for: two)
        for other in [InferenceSession(model: model, pool: ThreadPool(threads: 3), capacity: 16, chunkSize: 8),
                      InferenceSession(model: model, pool: ThreadPool(threads: 2), capacity: 16, chunkSize: 16),
                      InferenceSession(model: try LanguageModel.load(path: model.path), pool: ThreadPool(threads: 2),
                                       capacity: 16, chunkSize: 8)] {
            other.adapters = runtime
            do {
                _ = try other.decode(3)
                Issue.record("a runtime of another session was accepted")
            } catch let error as AdapterError {
                #expect(error.localizedDescription.contains("another session"))
            }
        }
        two.adapters = runtime
        #expect(try two.decode(3).count == model.configuration.vocabSize)
    }

    /// Reference adapters sized for 4 rows refuse a pass of 5, and a pool with more threads than they were made for.
    @Test func referenceAdaptersRefuseWhatTheyCannotHold() throws {
        let (model, adapter) = try load("moe-layer-top2")
        let plain = try ReferenceAdapters(adapter: adapter, model: model, threads: 2, capacity: 4)
        let forward = ReferenceForward(model: model, pool: ThreadPool(threads: 2), capacity: 8)
        #expect(throws: AdapterError.self) { try forward.run(tokens: [1, 2, 3, 4, 5], segments: [0..<5], adapters: plain) }
        let wide = ReferenceForward(model: model, pool: ThreadPool(threads: 3), capacity: 8)
        #expect(throws: AdapterError.self) { try wide.run(tokens: [1, 2], segments: [0..<2], adapters: plain) }
        try forward.run(tokens: [1, 2, 3, 4], segments: [0..<4], adapters: plain)
    }

    /// An adapter checked against a model of other shapes names the first projection that does not fit.
    @Test func adapterForAnotherModel() throws {
        let (_, adapter) = try load("lora-basic")
        let other = try LanguageModel.load(path: fixtures.appendingPathComponent("models/llama-headdim").path)
        #expect(throws: AdapterError.self) { try adapter.check(fits: other) }
        #expect(throws: AdapterError.self) { _ = try ReferenceAdapters(adapter: adapter, model: other, threads: 1, capacity: 4) }
    }

    /// Token routing: every row's choices appear once in the grouping, under their expert, rows ascending.
    @Test func rowsAreGroupedByExpert() throws {
        let (model, adapter) = try load("moe-token-top2")
        let plain = try ReferenceAdapters(adapter: adapter, model: model, threads: 2, capacity: 16, recording: true)
        let forward = ReferenceForward(model: model, pool: ThreadPool(threads: 2), capacity: 16)
        let tokens = [5, 9, 1, 30, 2, 7, 7, 11, 0, 3]
        try forward.run(tokens: tokens, segments: [0..<tokens.count], adapters: plain)
        let d = plain.token, k = plain.k
        #expect(d.offsets.first == 0 && d.offsets.last == tokens.count * k)
        var seen = Set<Int>()
        for e in 0..<plain.n {
            var previous = -1
            for entry in d.offsets[e]..<d.offsets[e + 1] {
                let row = Int(d.rows[entry]), j = Int(d.slots[entry])
                #expect(Int(d.experts[row * k + j]) == e && row > previous)
                previous = row
                seen.insert(row * k + j)
            }
        }
        #expect(seen.count == tokens.count * k)
        for row in 0..<tokens.count {
            let gates = (0..<k).map { d.gates[row * k + $0] }
            #expect(abs(gates.reduce(0, +) - 1) <= 1e-6 && gates == gates.sorted(by: >))
        }
    }
}
