import Foundation
import Testing
import Formats
import Kernels
@testable import Model

// Prefill + decode against one pass, chunked prefill, reset, truncate, and the session's errors.

private let sessionFixtures = ["llama-gqa", "mistral", "qwen2", "llama-headdim", "llama-rope-llama3", "llama-bias",
                               "llama-f16", "llama-q8_0.gguf", "llama-q4_1.gguf", "qwen2-f32.gguf"]

/// Positions of a prefill / decode run must match the one-pass logits this closely (measured over threads 1–3).
/// Float weights: measured max 5.5e-6 (qwen2, qwen2-f32.gguf). Q8_0 weights decode through the block kernels
/// (matvec), whose rounding differs from the dequantize + sgemm of a batch: 1.8e-5 (llama-q8_0.gguf). Prefill runs
/// float products; decoding 4-bit weights uses 16-bit activations (Kernels/IntegerDot.swift): 2.8e-4
/// (llama-q4_1.gguf).
private func incrementalTolerance(_ name: String) -> Float {
    ["q4_0", "q4_1"].contains { name.contains($0) } ? 1e-3 : name.contains("q8_0") ? 6e-5 : 2e-5
}
/// The float fixtures' (mistral, llama-gqa, qwen2) in the tests below: measured max 5.5e-6 (qwen2, two sessions).
private let incrementalTolerance: Float = 2e-5

@Suite("InferenceSession")
struct SessionTests {
    /// Prefill the first k tokens (in chunks of `chunkSize`), then decode the rest one by one: every position's
    /// logits equal the one-pass logits.
    @Test(arguments: sessionFixtures)
    func prefillThenDecodeEqualsOnePass(name: String) throws {
        let model = try LanguageModel.load(path: modelPath(name))
        let tokens = try Expected(name).tokens
        let v = model.configuration.vocabSize
        let onePass = try allLogits(model, tokens)
        let pool = ThreadPool(threads: 2)
        for (k, chunkSize) in [(1, 128), (5, 128), (11, 128), (8, 3), (7, 1)] {
            let session = InferenceSession(model: model, pool: pool, chunkSize: chunkSize)
            let last = Array(try session.prefill(Array(tokens[0..<k])))
            #expect(session.position == k)
            #expect(maxAbsDifference(last, onePass[((k - 1) * v)..<(k * v)]) <= incrementalTolerance(name),
                    "\(name): prefill of \(k) (chunks of \(chunkSize)), position \(k - 1)")
            for i in k..<tokens.count {
                let logits = Array(try session.decode(tokens[i]))
                let delta = maxAbsDifference(logits, onePass[(i * v)..<((i + 1) * v)])
                #expect(delta <= incrementalTolerance(name), "\(name): prefill \(k) (chunks of \(chunkSize)), decode position \(i): \(delta)")
            }
            #expect(session.position == tokens.count)
        }
    }

    /// All-position logits in chunks of 3 (and in two calls) equal one pass.
    @Test(arguments: sessionFixtures)
    func chunkedLogitsEqualOnePass(name: String) throws {
        let model = try LanguageModel.load(path: modelPath(name))
        let tokens = try Expected(name).tokens
        let v = model.configuration.vocabSize
        let onePass = try allLogits(model, tokens)
        for chunk in [1, 3, 5] {
            let chunked = try allLogits(model, tokens, chunkSize: chunk)
            #expect(maxAbsDifference(chunked, onePass) <= incrementalTolerance(name), "\(name) in chunks of \(chunk)")
        }
        // Two calls: the second continues after the first's positions.
        let session = InferenceSession(model: model, pool: ThreadPool(threads: 2))
        let first = FloatBuffer(count: 5 * v), second = FloatBuffer(count: 7 * v)
        try session.logits(for: Array(tokens[0..<5]), into: first.pointer)
        try session.logits(for: Array(tokens[5...]), into: second.pointer)
        #expect(maxAbsDifference(first.toArray() + second.toArray(), onePass) <= incrementalTolerance(name))
    }

    @Test func resetStartsOver() throws {
        let model = try LanguageModel.load(path: modelPath("mistral"))
        let tokens = try Expected("mistral").tokens
        let v = model.configuration.vocabSize
        let session = InferenceSession(model: model, pool: ThreadPool(threads: 2))
        let a = FloatBuffer(count: tokens.count * v), b = FloatBuffer(count: tokens.count * v)
        try session.logits(for: tokens, into: a.pointer)
        session.reset()
        #expect(session.position == 0)
        try session.logits(for: tokens, into: b.pointer)
        #expect(a.toArray() == b.toArray(), "after reset the same tokens give the same logits")
        // A different sequence after reset sees nothing of the first one.
        session.reset()
        let other = Array(tokens.reversed())
        let c = FloatBuffer(count: tokens.count * v)
        try session.logits(for: other, into: c.pointer)
        let fresh = try allLogits(model, other)
        #expect(maxAbsDifference(c.toArray(), fresh) <= incrementalTolerance)
        // Decode after reset equals decode in a fresh session.
        session.reset()
        let decoded = Array(try session.decode(tokens[0]))
        #expect(maxAbsDifference(decoded, a.toArray()[0..<v]) <= incrementalTolerance)
    }

    @Test func truncateRewinds() throws {
        let model = try LanguageModel.load(path: modelPath("llama-gqa"))
        let tokens = try Expected("llama-gqa").tokens
        let v = model.configuration.vocabSize
        let onePass = try allLogits(model, tokens)
        let session = InferenceSession(model: model, pool: ThreadPool(threads: 2))
        try session.prefill(tokens)
        session.truncate(to: 6)
        #expect(session.position == 6)
        for i in 6..<tokens.count {
            let logits = Array(try session.decode(tokens[i]))
            #expect(maxAbsDifference(logits, onePass[(i * v)..<((i + 1) * v)]) <= incrementalTolerance, "position \(i)")
        }
        session.truncate(to: 100)
        #expect(session.position == tokens.count, "truncate never moves forward")
        session.truncate(to: -5)
        #expect(session.position == 0)
    }

    @Test func contextFull() throws {
        let model = try LanguageModel.load(path: modelPath("llama-gqa"))
        let tokens = try Expected("llama-gqa").tokens
        let session = InferenceSession(model: model, pool: ThreadPool(threads: 2), capacity: 4)
        #expect(session.capacity == 4)
        let out = FloatBuffer(count: 5 * model.configuration.vocabSize)
        #expect(throws: ModelError.contextFull(needed: 5, capacity: 4)) {
            try session.logits(for: Array(tokens[0..<5]), into: out.pointer)
        }
        #expect(throws: ModelError.contextFull(needed: 5, capacity: 4)) { try session.prefill(Array(tokens[0..<5])) }
        #expect(session.position == 0, "a refused call changes nothing")
        try session.prefill(Array(tokens[0..<3]))
        #expect(throws: ModelError.contextFull(needed: 5, capacity: 4)) { try session.prefill(Array(tokens[3..<5])) }
        _ = try session.decode(tokens[3])
        #expect(session.position == 4)
        #expect(throws: ModelError.contextFull(needed: 5, capacity: 4)) { try session.decode(tokens[4]) }
        #expect(session.position == 4)
        let message = ModelError.contextFull(needed: 5, capacity: 4).errorDescription ?? ""
        #expect(message.contains("5") && message.contains("4"))
        // Default capacity: the model's context.
        #expect(InferenceSession(model: model, pool: ThreadPool(threads: 1)).capacity == model.configuration.maxPositionEmbeddings)
        #expect(InferenceSession(model: model, pool: ThreadPool(threads: 1), capacity: 0).capacity >= 1)
    }

    @Test func tokenOutOfRange() throws {
        let model = try LanguageModel.load(path: modelPath("llama-gqa"))
        let tokens = try Expected("llama-gqa").tokens
        let v = model.configuration.vocabSize
        let session = InferenceSession(model: model, pool: ThreadPool(threads: 2))
        let out = FloatBuffer(count: 3 * v)
        for bad in [v, -1, Int.max, Int.min] {
            #expect(throws: ModelError.tokenOutOfRange(model: session.model.path, token: bad, vocabularySize: v)) {
                try session.logits(for: [tokens[0], bad, tokens[1]], into: out.pointer)
            }
            #expect(throws: ModelError.tokenOutOfRange(model: session.model.path, token: bad, vocabularySize: v)) { try session.prefill([bad]) }
            #expect(throws: ModelError.tokenOutOfRange(model: session.model.path, token: bad, vocabularySize: v)) { try session.decode(bad) }
        }
        #expect(session.position == 0, "a refused call changes nothing")
        // The session still works, and from position 0.
        let logits = Array(try session.decode(tokens[0]))
        // One token either way, through the same matrix-vector products: bit for bit (measured 0).
        #expect(logits == (try allLogits(model, [tokens[0]])))
        let message = ModelError.tokenOutOfRange(model: "m", token: 999, vocabularySize: v).errorDescription ?? ""
        #expect(message.contains("999") && message.contains("\(v)"))
    }

    @Test func emptyCalls() throws {
        let model = try LanguageModel.load(path: modelPath("llama-gqa"))
        let session = InferenceSession(model: model, pool: ThreadPool(threads: 2))
        let out = FloatBuffer(count: 1)
        try session.logits(for: [], into: out.pointer)
        try session.prefill([])
        #expect(session.position == 0)
    }

    /// Two sessions over one model do not share state.
    @Test func sessionsAreIndependent() throws {
        let model = try LanguageModel.load(path: modelPath("qwen2"))
        let tokens = try Expected("qwen2").tokens
        let v = model.configuration.vocabSize
        let onePass = try allLogits(model, tokens)
        let pool = ThreadPool(threads: 2)
        let a = InferenceSession(model: model, pool: pool), b = InferenceSession(model: model, pool: pool)
        try a.prefill(Array(tokens[0..<6]))
        try b.prefill(Array(tokens.reversed()))
        for i in 6..<tokens.count {
            let logits = Array(try a.decode(tokens[i]))
            #expect(maxAbsDifference(logits, onePass[(i * v)..<((i + 1) * v)]) <= incrementalTolerance)
        }
    }
}
