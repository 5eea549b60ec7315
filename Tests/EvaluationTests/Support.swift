import Foundation
import Kernels
import Model
import Testing
import TestSupport
import Text
@testable import Evaluation

// The evaluation fixtures (Tests/Fixtures/eval, written by scripts/make_eval_fixtures.py) and helpers around them.

let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures")
let evalFixtures = fixtures.appendingPathComponent("eval").path
let packageRoot = fixtures.deletingLastPathComponent().deletingLastPathComponent().path

/// The two tokenizer set-ups the reference covers: GPT-2's (no BOS) and Llama 3's (BOS by its post-processor).
let tokenizerNames = ["bytelevel-gpt2", "bytelevel-llama3"]

/// The fixture model with `tokenizer`'s files beside it, in `folder`.
func fixtureModel(tokenizer: String, in folder: TemporaryFolder) throws -> String {
    let model = folder.file("model-\(tokenizer)")
    try FileManager.default.createDirectory(atPath: model, withIntermediateDirectories: true)
    for file in ["config.json", "model.safetensors"] {
        try FileManager.default.copyItem(atPath: evalFixtures + "/model/" + file, toPath: model + "/" + file)
    }
    let source = fixtures.appendingPathComponent("tokenizers/\(tokenizer)").path
    for file in ["tokenizer.json", "tokenizer_config.json"] {
        try FileManager.default.copyItem(atPath: source + "/" + file, toPath: model + "/" + file)
    }
    return model
}

/// expected.json as nested dictionaries, read by the Text module's JSON parser: Foundation's JSONSerialization on
/// Linux does not round decimal numbers correctly (0.2222222222222222 comes back as 0.22222222222222218), and the
/// metrics are compared to the bit.
let expected: [String: Any] = {
    guard let text = try? String(contentsOfFile: evalFixtures + "/expected.json", encoding: .utf8),
          let value = try? TemplateValue(json: text) else { return [:] }
    return plain(value) as? [String: Any] ?? [:]
}()

/// A parsed JSON value as Foundation's kinds: [String: Any], [Any], String, Int, Double, Bool, NSNull.
func plain(_ value: TemplateValue) -> Any {
    switch value {
    case .undefined, .none: return NSNull()
    case .bool(let b): return b
    case .int(let i): return i
    case .double(let d): return d
    case .string(let s): return s
    case .array(let list): return list.map(plain)
    case .object(let object):
        var out: [String: Any] = [:]
        for (key, value) in object.entries { out[key] = plain(value) }
        return out
    }
}

/// The reference for one tokenizer.
func reference(_ tokenizer: String) throws -> [String: Any] {
    let all = try #require(expected["tokenizers"] as? [String: Any], "Tests/Fixtures/eval/expected.json is missing or unreadable")
    return try #require(all[tokenizer] as? [String: Any])
}

/// One example of a reference run: its tokens and per choice tokens, start and log-likelihood.
struct ReferenceExample {
    let context: [Int]
    let tokens: [[Int]]
    let starts: [Int]
    let characters: [Int]
    let logLikelihoods: [Double]
}

func referenceExamples(_ run: [String: Any]) throws -> [ReferenceExample] {
    let examples = try #require(run["examples"] as? [[String: Any]])
    return try examples.map { example in
        let choices = try #require(example["choices"] as? [[String: Any]])
        return ReferenceExample(
            context: try #require(example["context_tokens"] as? [Int]),
            tokens: try choices.map { try #require($0["tokens"] as? [Int]) },
            starts: try choices.map { try #require($0["start"] as? Int) },
            characters: try choices.map { try #require($0["characters"] as? Int) },
            logLikelihoods: try choices.map { try #require($0["loglik"] as? Double) })
    }
}

/// A session over `model` holding `capacity` positions, on two threads.
func session(_ model: LanguageModel, capacity: Int = 128, chunkSize: Int = 128) -> InferenceSession {
    InferenceSession(model: model, pool: ThreadPool(threads: 2), capacity: capacity, chunkSize: chunkSize)
}

/// The message of the error `body` throws (nil when it throws none).
func errorMessage(_ body: () throws -> Void) -> String? {
    do {
        try body()
        return nil
    } catch {
        return error.localizedDescription
    }
}

/// Σ log p of `tokens[start...]`, each after everything before it, from one forward pass over the whole sequence in
/// a fresh session: the scorer's result without any reuse of the cache.
func fromScratch(_ session: InferenceSession, tokens: [Int], start: Int) throws -> Double {
    let vocabulary = session.model.configuration.vocabSize
    let logits = FloatBuffer(count: tokens.count * vocabulary)
    session.reset()
    try session.logits(for: tokens, into: logits.pointer)
    var total = 0.0
    for p in start..<tokens.count {
        total += logProbability(of: tokens[p], in: logits.pointer + (p - 1) * vocabulary, count: vocabulary)
    }
    return total
}
