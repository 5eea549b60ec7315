import Foundation
import Formats
import Kernels
import Testing
@testable import Adapters
@testable import Model

/// Tests/Fixtures, from this file's path.
let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures")

/// An adapter fixture: its expected logits, token sequence, base model and adapters (Tests/Fixtures/adapters).
struct AdapterCase: CustomStringConvertible, Sendable {
    let name: String
    let tokens: [Int]
    let base: String
    let specs: [AdapterSpec]
    var description: String { name }

    /// Every file in adapters/expected, sorted; a file that cannot be read as a fixture is an error that names it
    /// (the tests that take these cases as arguments then fail), never a case left out.
    static func all() throws -> [AdapterCase] {
        let folder = fixtures.appendingPathComponent("adapters/expected")
        return try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted().map { file in
            let path = folder.appendingPathComponent(file).path
            guard file.hasSuffix(".safetensors") else { throw FixtureError(path: path, problem: "not a .safetensors file") }
            let f = try SafetensorsFile(path: path)
            func metadata(_ key: String) throws -> String {
                guard let value = f.metadata[key] else { throw FixtureError(path: path, problem: "no \(key) in the metadata") }
                return value
            }
            let specs = try metadata("adapters").split(separator: ";").map { item -> AdapterSpec in
                guard var spec = AdapterSpec(argument: String(item)) else {
                    throw FixtureError(path: path, problem: "adapter '\(item)' is not PATH[:WEIGHT]")
                }
                spec.path = fixtures.appendingPathComponent(spec.path).path
                return spec
            }
            let tokens = try metadata("tokens").split(separator: ",").map { item -> Int in
                guard let token = Int(item) else { throw FixtureError(path: path, problem: "token '\(item)' is not a number") }
                return token
            }
            return AdapterCase(name: String(file.dropLast(".safetensors".count)), tokens: tokens,
                               base: fixtures.appendingPathComponent(try metadata("base")).path, specs: specs)
        }
    }

    /// The fixture called `name`.
    static func named(_ name: String) throws -> AdapterCase {
        try #require(try all().first { $0.name == name }, "no adapter fixture \(name)")
    }

    private func file() throws -> SafetensorsFile {
        try SafetensorsFile(path: fixtures.appendingPathComponent("adapters/expected/\(name).safetensors").path)
    }

    /// `tensor` of the expected file: F32 [T, columns], as rows.
    private func rows(_ f: SafetensorsFile, _ tensor: String) throws -> [[Float]] {
        let t = try #require(f.tensor(tensor), "\(name): no \(tensor)")
        try #require(t.dtype == .f32 && t.shape.count == 2 && t.shape[0] == tokens.count, "\(name): \(tensor) is \(t.dtype) \(t.shape)")
        let columns = t.shape[1]
        return (0..<tokens.count).map { i in
            (0..<columns).map { t.data.loadUnaligned(fromByteOffset: 4 * (i * columns + $0), as: Float.self) }
        }
    }

    func expected() throws -> (logits: [Float], vocabulary: Int) {
        let logits = try rows(try file(), "logits")
        return (logits.flatMap { $0 }, logits[0].count)
    }

    /// A MoE fixture's decisions, per token: the experts chosen (`routing`, ids stored as floats) and their gates, each
    /// [T, k] — token routing's, or under layer routing those of layer 0's q_proj (scripts/adapterfix/moe.py).
    func decisions() throws -> (experts: [[Int]], gates: [[Float]]) {
        let f = try file()
        let ids = try rows(f, "routing")
        let experts = try ids.map { row in
            try row.map { id in
                try #require(Int(exactly: id), "\(name): expert id \(id)")
            }
        }
        return (experts, try rows(f, "gates"))
    }
}

/// An expected file that cannot be read as an adapter fixture.
struct FixtureError: Error, CustomStringConvertible {
    let path: String
    let problem: String
    var description: String { "\(path): \(problem)" }
}

/// max |Δlogit| against the reference of one pass over the sequence, every strategy, threads 1–3: measured max 7.3e-6
/// (lora-all-linear-qwen2, reference strategy).
let onePassTolerance: Float = 3e-5
/// The same, decoding token by token: measured max 1.1e-5 (gguf-lora-on-q8, reference, 3 threads). 4-bit bases
/// decode with 16-bit activations (Kernels/IntegerDot.swift): 2.3e-4 (moe-token-top2-q4, fused, 1 thread).
func decodeTolerance(_ model: LanguageModel) -> Float {
    [.q4_0, .q4_1].contains(model.weights.layers[0].q.weight.dtype) ? 1e-3 : 4e-5
}

/// max |Δgate| against the MoE references' gates (a float32 softmax over the router's outputs on both sides): measured
/// max 1.8e-7 (moe-token-top2-q4, decoding, threads 1–3); top-1 gates are exactly 1.
let gateTolerance: Float = 6e-7

func maxDifference(_ a: UnsafePointer<Float>, _ b: [Float]) -> Float {
    var m: Float = 0
    for i in b.indices { m = max(m, abs(a[i] - b[i])) }
    return m
}

@Suite("Adapters against PEFT, PyTorch and llama.cpp references")
struct AdapterFixtureTests {
    @Test func everyFixtureIsFound() throws {
        let names = try AdapterCase.all().map(\.name)
        #expect(names.count == 14, "\(names)")
        #expect(Set(names) == ["gguf-lora", "gguf-lora-f16", "gguf-lora-on-q8", "lora-all-linear-qwen2", "lora-basic",
                               "lora-pair", "lora-rslora-patterns", "moe-layer-top1", "moe-layer-top2", "moe-token-router1",
                               "moe-token-top1", "moe-token-top2", "moe-token-top2-q4", "peft-lora-for-gguf"])
    }

    /// Every fixture, every strategy that applies: the logits of one pass over the sequence.
    @Test(arguments: try AdapterCase.all())
    func onePass(_ fixture: AdapterCase) throws {
        let model = try LanguageModel.load(path: fixture.base)
        let adapter = try Adapter.load(fixture.specs, model: model)
        let (expected, vocabulary) = try fixture.expected()
        for strategy in strategies(for: adapter, model: model) {
            let session = InferenceSession(model: model, pool: ThreadPool(threads: 2), capacity: fixture.tokens.count)
            session.adapters = try adapter.runtime(strategy, for: session)
            let logits = FloatBuffer(count: fixture.tokens.count * vocabulary)
            try session.logits(for: fixture.tokens, into: logits.pointer)
            let d = maxDifference(logits.pointer, expected)
            #expect(d <= onePassTolerance, "\(fixture) \(strategy): max |Δ| \(d)")
        }
    }

    /// Prefill of a few tokens, then one token at a time: decoding runs each strategy's single-token path (merged
    /// copies, per-token routing) and must give the reference's logits at every position. Fused decoding splits its
    /// input-side products between the threads, so it also runs on one and on three.
    @Test(arguments: try AdapterCase.all())
    func prefillThenDecode(_ fixture: AdapterCase) throws {
        let model = try LanguageModel.load(path: fixture.base)
        let adapter = try Adapter.load(fixture.specs, model: model)
        let (expected, vocabulary) = try fixture.expected()
        let prompt = 3
        let runs = strategies(for: adapter, model: model).map { ($0, 2) } + [(.fused, 1), (.fused, 3)]
        for (strategy, threads) in runs {
            let session = InferenceSession(model: model, pool: ThreadPool(threads: threads), capacity: fixture.tokens.count)
            session.adapters = try adapter.runtime(strategy, for: session)
            let first = try session.prefill(Array(fixture.tokens[0..<prompt]))
            var worst = maxDifference(first.baseAddress!, Array(expected[((prompt - 1) * vocabulary)..<(prompt * vocabulary)]))
            for i in prompt..<fixture.tokens.count {
                let logits = try session.decode(fixture.tokens[i])
                worst = max(worst, maxDifference(logits.baseAddress!, Array(expected[(i * vocabulary)..<((i + 1) * vocabulary)])))
            }
            #expect(worst <= decodeTolerance(model), "\(fixture) \(strategy), \(threads) threads: max |Δ| \(worst)")
        }
    }

    /// The experts and gates our router picks for every token equal the reference's: token routing's decision, and
    /// under layer routing that of layer 0's q_proj (what the fixtures store) — in one pass and decoding (on one to
    /// three threads), under every strategy.
    @Test(arguments: try AdapterCase.all().filter { $0.name.hasPrefix("moe-") })
    func routingMatchesTheReference(_ fixture: AdapterCase) throws {
        let model = try LanguageModel.load(path: fixture.base)
        let adapter = try Adapter.load(fixture.specs, model: model)
        let reference = try fixture.decisions()
        let k = adapter.routing.topK
        #expect(reference.experts.allSatisfy { $0.count == k } && reference.gates.allSatisfy { $0.count == k })
        for strategy in strategies(for: adapter, model: model) {
            for (decode, threads) in [(false, 2), (true, 1), (true, 2), (true, 3)] {
                let session = InferenceSession(model: model, pool: ThreadPool(threads: threads), capacity: fixture.tokens.count)
                let runtime = try adapter.runtime(strategy, for: session)
                session.adapters = runtime
                var experts: [[Int]] = [], gates: [[Float]] = []
                let record = { (chosen: [Int], weights: [Float]) in
                    experts.append(chosen)
                    gates.append(weights)
                }
                let layerZeroQ = { (layer: Int, projection: LayerTensor, _: Int, e: [Int], g: [Float]) in
                    if layer == 0 && projection == .q { record(e, g) }
                }
                switch (adapter.routing, runtime) {
                case (.token, .fused(let fused as AdapterRuntime)): fused.observer = { _, e, g in record(e, g) }
                case (.token, .fused(let merged as MergedAdapters)): merged.routingObserver = { _, e, g in record(e, g) }
                case (.token, .reference(let plain as ReferenceAdapters)): plain.observer = { _, e, g in record(e, g) }
                case (.layer, .fused(let fused as AdapterRuntime)): fused.layerObserver = layerZeroQ
                case (.layer, .reference(let plain as ReferenceAdapters)): plain.layerObserver = layerZeroQ
                default: Issue.record("\(fixture) \(strategy): no way to observe \(adapter.routing) in \(type(of: runtime))")
                }
                if decode {
                    try session.prefill(Array(fixture.tokens[0..<3]))
                    for token in fixture.tokens[3...] { _ = try session.decode(token) }
                } else {
                    let logits = FloatBuffer(count: fixture.tokens.count * model.configuration.vocabSize)
                    try session.logits(for: fixture.tokens, into: logits.pointer)
                }
                let run = "\(fixture) \(strategy)\(decode ? ", decoding" : ""), \(threads) threads"
                #expect(experts == reference.experts, "\(run): experts \(experts) vs \(reference.experts)")
                try #require(gates.count == reference.gates.count, "\(run): \(gates.count) decisions")
                let worst = zip(gates, reference.gates).flatMap { zip($0, $1).map { abs($0 - $1) } }.max() ?? 0
                #expect(worst <= gateTolerance, "\(run): max |Δgate| \(worst)")
            }
        }
    }

    /// The strategies an adapter can run under on this model (merging needs float weights and no layer routing).
    private func strategies(for adapter: Adapter, model: LanguageModel) -> [AdapterStrategy] {
        var list: [AdapterStrategy] = [.fused, .reference, .auto]
        let float = !model.weights.layers[0].q.weight.dtype.isQuantized
        if float, adapter.routing != .layer(topK: adapter.routing.topK) { list += [.merged, .mergedInPlace] }
        return list
    }
}

@Suite("Adapter files that must be refused")
struct AdapterRejectionTests {
    private func expectRefusal(_ folder: String, base: String = "models/llama-gqa", mentioning words: [String]) throws {
        let model = try LanguageModel.load(path: fixtures.appendingPathComponent(base).path)
        do {
            _ = try Adapter.load([AdapterSpec(path: fixtures.appendingPathComponent("adapters/\(folder)").path)], model: model)
            Issue.record("\(folder) was accepted")
        } catch let error as AdapterError {
            let message = error.localizedDescription
            for word in words { #expect(message.contains(word), "\(folder): \(message)") }
            #expect(!message.contains("\n"))
        }
    }

    @Test func unsupportedKinds() throws {
        try expectRefusal("lora-dora", mentioning: ["DoRA"])
        try expectRefusal("lora-bias", mentioning: ["bias"])
    }

    @Test func badMixturesOfExperts() throws {
        try expectRefusal("moe-bad-missing-b", mentioning: ["lora_B", "missing"])
        try expectRefusal("moe-bad-module", mentioning: ["qkv_proj", "another base model"])
        try expectRefusal("moe-bad-num-experts", mentioning: ["num_experts"])
        try expectRefusal("moe-bad-router-shape", mentioning: ["router", "[5, 32]"])
        try expectRefusal("moe-bad-topk", mentioning: ["top_k"])
    }

    @Test func adapterForAnotherModel() throws {
        // A LoRA of llama-gqa (hidden 32) against the GGUF llama fixture (hidden 64).
        try expectRefusal("lora-basic", base: "models/llama-f32.gguf", mentioning: ["shape", "another base model"])
    }

    @Test func strategiesThatCannotApply() throws {
        let q4 = try LanguageModel.load(path: fixtures.appendingPathComponent("models/llama-q4_1.gguf").path)
        let adapter = try Adapter.load([AdapterSpec(path: fixtures.appendingPathComponent("adapters/moe-token-top2-q4").path)], model: q4)
        let session = InferenceSession(model: q4, pool: ThreadPool(threads: 1), capacity: 8)
        #expect(throws: AdapterError.self) { try adapter.runtime(.merged, for: session) }
        #expect(AutoStrategy(adapter: adapter, model: q4).choice == .fused)
    }
}
