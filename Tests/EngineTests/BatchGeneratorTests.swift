import Foundation
import Kernels
import Testing
@testable import Adapters
@testable import Engine
@testable import Model

/// Continuous batching against each request generated alone: the same tokens, text and stop reason, whatever the
/// batch around a sequence — other adapters (a PEFT LoRA at its own scale, random token- and layer-routed MoE-LoRAs),
/// prompts fed in chunks beside decoding, sequences joining late and ending early, prompts shared.
@Suite("Batched generation")
struct BatchGeneratorTests {
    /// An engine over the GGUF fixture (it carries a tokenizer) with three adapters, all run fused.
    static func makeEngine() throws -> Engine {
        let e = try engine("models/llama-f32.gguf")
        try e.register("lora", specs: [AdapterSpec(path: fixture("adapters/peft-lora-for-gguf"))], strategy: .fused)
        try e.register("token", adapter: Adapter.random(.mixture(routing: "token", experts: 4, topK: 2), model: e.model, rank: 4,
                                                        targets: LayerTensor.projections, dtype: .f32, seed: 3), strategy: .fused)
        try e.register("layer", adapter: Adapter.random(.mixture(routing: "layer", experts: 4, topK: 2), model: e.model, rank: 4,
                                                        targets: LayerTensor.projections, dtype: .f32, seed: 4), strategy: .fused)
        return e
    }

    static func options(_ maxTokens: Int, temperature: Float = 0, seed: UInt64 = 1) -> GenerationOptions {
        var o = GenerationOptions()
        o.maxTokens = maxTokens
        o.sampling = temperature == 0 ? .greedy : SamplingParameters()
        o.sampling.temperature = temperature
        o.sampling.seed = seed
        return o
    }

    /// `request` alone, through a session of its own with the same adapters and scale.
    static func alone(_ request: BatchGenerator.Request, engine e: Engine) throws -> GenerationResult {
        let session = InferenceSession(model: e.model, pool: e.pool, capacity: 64)
        if let name = request.adapter {
            var adapter = try e.adapter(name).adapter
            if let scale = request.scale { adapter = adapter.scaled(by: scale)! }
            session.adapters = try adapter.runtime(.fused, for: session)
        }
        return try TextGenerator(session: session, tokenizer: try e.tokenizer()).generate(prompt: request.prompt, options: request.options)
    }

    @Test func mixedRequestsGiveWhatEachGivesAlone() throws {
        let e = try Self.makeEngine()
        let requests: [BatchGenerator.Request] = [
            .init(prompt: [5, 6, 7, 8, 9, 10, 11], options: Self.options(8)),
            .init(prompt: [12, 13], adapter: "lora", options: Self.options(10)),
            .init(prompt: [12, 13, 14, 15], adapter: "lora", scale: 0.5, options: Self.options(6)),
            .init(prompt: [20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30], adapter: "token", options: Self.options(7)),
            .init(prompt: [31, 32, 33], adapter: "token", options: Self.options(9, temperature: 1.1, seed: 9)),
            .init(prompt: [40, 41, 42, 43, 44], adapter: "layer", options: Self.options(5)),
            .init(prompt: [7, 7, 7], options: Self.options(1)),
        ]
        let expected = try requests.map { try Self.alone($0, engine: e) }
        let batch = try BatchGenerator(engine: e, maxRows: 6, prefillChunk: 3, context: 64)
        var results = [GenerationResult?](repeating: nil, count: requests.count)
        var streamed = [String](repeating: "", count: requests.count)
        // Four join at once, the rest two passes later.
        for r in requests.prefix(4) { try batch.submit(r) }
        for pass in 0..<1000 where batch.active > 0 || pass < 3 {
            if pass == 2 { for r in requests.dropFirst(4) { try batch.submit(r) } }
            for update in try batch.step() {
                streamed[update.id] += update.piece
                if let result = update.result { results[update.id] = result }
            }
        }
        for (i, (result, alone)) in zip(results, expected).enumerated() {
            let result = try #require(result, "request \(i) never ended")
            #expect(result.tokens == alone.tokens, "request \(i)")
            #expect(result.text == alone.text && streamed[i] == alone.text, "request \(i)")
            #expect(result.stopReason == alone.stopReason, "request \(i)")
        }
    }

    /// Samples of one prompt (`generate --n`): its prefix is computed once and copied, and each sample follows its
    /// own seed as it would alone.
    @Test func samplesOfOnePromptShareItsPrefix() throws {
        let e = try Self.makeEngine()
        let prompt = Array(3..<20)
        let requests = (0..<3).map { BatchGenerator.Request(prompt: prompt, adapter: "token", options: Self.options(6, temperature: 1.0, seed: UInt64(100 + $0))) }
        let batch = try BatchGenerator(engine: e, maxRows: 8, prefillChunk: 8, context: 64)
        for r in requests { try batch.submit(r) }
        var results: [Int: GenerationResult] = [:]
        try batch.runToCompletion { if let r = $0.result { results[$0.id] = r } }
        #expect(results[0]?.promptTokensEvaluated == prompt.count)
        #expect(results[1]?.promptTokensEvaluated == 1 && results[2]?.promptTokensEvaluated == 1,
                "the others copy all but the prompt's last token")
        for (i, r) in requests.enumerated() { #expect(results[i]?.tokens == (try Self.alone(r, engine: e)).tokens, "sample \(i)") }
        // A later prompt with the same start and adapters reuses a finished sequence's cache; another adapter does not.
        try batch.submit(.init(prompt: prompt + [30], adapter: "token", options: Self.options(2)))
        try batch.submit(.init(prompt: prompt + [30], adapter: "layer", options: Self.options(2)))
        try batch.runToCompletion { if let r = $0.result { results[$0.id] = r } }
        #expect(results[3]?.promptTokensEvaluated == 1 && results[4]?.promptTokensEvaluated == prompt.count + 1)
    }

    /// Routing and logprobs asked by some requests of a mixed batch: each generated token's router decision is the
    /// one its sequence's producing position gets alone (the session's observer), and its log-probability is the
    /// log-softmax of the logits it gets alone; requests that do not ask get neither.
    @Test func routingAndLogprobsFollowEachSequence() throws {
        let e = try Self.makeEngine()
        let requests: [BatchGenerator.Request] = [
            .init(prompt: [20, 21, 22, 23, 24], adapter: "token", options: Self.options(6), routing: true, logprobs: 3),
            .init(prompt: [5, 6, 7], options: Self.options(5)),
            .init(prompt: [31, 32, 33, 34, 35, 36, 37, 38], adapter: "token", options: Self.options(7), routing: true),
            .init(prompt: [12, 13], adapter: "lora", options: Self.options(4), logprobs: 0),
            .init(prompt: [40, 41], adapter: "token", options: Self.options(4)),
        ]
        let batch = try BatchGenerator(engine: e, maxRows: 6, prefillChunk: 3, context: 64)
        for r in requests { try batch.submit(r) }
        var routing = [[BatchGenerator.TokenRouting]](repeating: [], count: requests.count)
        var logprobs = [[BatchGenerator.TokenLogprob]](repeating: [], count: requests.count)
        var tokens = [[Int]](repeating: [], count: requests.count)
        try batch.runToCompletion { update in
            if let r = update.routing { routing[update.id].append(r) }
            if let l = update.logprob { logprobs[update.id].append(l) }
            if let result = update.result { tokens[update.id] = result.tokens }
        }
        #expect(routing[1].isEmpty && routing[3].isEmpty && routing[4].isEmpty && logprobs[1].isEmpty && logprobs[2].isEmpty)
        for i in [0, 2, 3] {
            let request = requests[i]
            // Alone: the prompt, then each generated token but the last fed back, one forward pass each.
            let session = InferenceSession(model: e.model, pool: e.pool, capacity: 64)
            var decisions: [Int: BatchGenerator.TokenRouting] = [:]
            let adapter = try e.adapter(request.adapter!).adapter
            session.adapters = try adapter.runtime(.fused, for: session, observer: request.routing ? { row, experts, gates in
                decisions[session.position + row] = .init(experts: experts, gates: gates)
            } : nil)
            var fed = request.prompt
            var row = try session.prefill(request.prompt)
            for (j, token) in tokens[i].enumerated() {
                let position = fed.count - 1
                if request.routing { #expect(routing[i][j] == decisions[position], "request \(i) token \(j)") }
                if let top = request.logprobs {
                    let alone = BatchGenerator.logprob(of: token, in: row, top: top)
                    #expect(abs(logprobs[i][j].logprob - alone.logprob) < 1e-5 && logprobs[i][j].top.map(\.token) == alone.top.map(\.token),
                            "request \(i) token \(j)")
                    #expect(logprobs[i][j].top.count == top)
                }
                guard j + 1 < tokens[i].count else { break }
                fed.append(token)
                row = try session.decode(token)
            }
            #expect(routing[i].count == (request.routing ? tokens[i].count : 0))
        }
        #expect(throws: EngineError.routingWithoutRouter("layer")) {
            try batch.submit(.init(prompt: [1], adapter: "layer", options: Self.options(1), routing: true))
        }
        #expect(throws: EngineError.routingWithoutRouter(nil)) { try batch.submit(.init(prompt: [1], options: Self.options(1), routing: true)) }
    }

    @Test func badRequestsAreRefused() throws {
        let e = try Self.makeEngine()
        let batch = try BatchGenerator(engine: e, maxRows: 4, context: 16)
        #expect(throws: EngineError.unknownAdapter("nope", known: ["lora", "token", "layer"])) {
            try batch.submit(.init(prompt: [1], adapter: "nope", options: Self.options(1)))
        }
        #expect(throws: BatchError.scaleOfMixture("token")) { try batch.submit(.init(prompt: [1], adapter: "token", scale: 2, options: Self.options(1))) }
        #expect(throws: BatchError.scaleWithoutAdapter) { try batch.submit(.init(prompt: [1], scale: 2, options: Self.options(1))) }
        #expect(throws: GenerationError.emptyPrompt) { try batch.submit(.init(prompt: [], options: Self.options(1))) }
        #expect(throws: ModelError.contextFull(needed: 17, capacity: 16)) {
            try batch.submit(.init(prompt: Array(repeating: 1, count: 16), options: Self.options(1)))
        }
        #expect(batch.active == 0)
        let id = try batch.submit(.init(prompt: [1, 2], options: Self.options(50)))
        _ = try batch.step()
        batch.cancel(id)
        let updates = try batch.step()
        #expect(updates.count == 1 && updates[0].result?.stopReason == .cancelled && batch.active == 0)
    }
}
