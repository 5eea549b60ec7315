import Adapters
import Engine
import Formats
import Foundation
import Model
import Text

/// One line of a `generate --batch` file: `{"prompt", "adapter"?, "scale"?, "max_tokens"?, "temperature"?, "seed"?}`,
/// the adapter's path relative to the file's folder.
struct BatchLine {
    static let keys: Set<String> = ["prompt", "adapter", "scale", "max_tokens", "temperature", "seed"]

    let prompt: String
    let adapter: String?
    let scale: Float?
    let maxTokens: Int?
    let temperature: Float?
    let seed: UInt64?

    /// Every line of `path` (blank lines skipped), each checked; a bad one is an error naming the file and line.
    static func load(_ path: String) throws -> [(line: Int, value: BatchLine)] {
        let jsonLines: JSONLines
        do { jsonLines = try JSONLines(path: path) } catch let e as JSONLines.Unreadable { throw BatchFileError(path, 0, e.reason) }
        let folder = (path as NSString).deletingLastPathComponent
        var lines: [(Int, BatchLine)] = []
        for (lineNumber, line) in jsonLines {
            func fail(_ detail: String) -> BatchFileError { BatchFileError(path, lineNumber, detail) }
            guard let object = (try? JSONSerialization.jsonObject(with: Data(line))) as? [String: Any] else {
                throw fail("not a JSON object")
            }
            if let unknown = object.keys.sorted().first(where: { !keys.contains($0) }) {
                throw fail("unknown key '\(unknown)' (keys: \(keys.sorted().joined(separator: ", ")))")
            }
            guard let prompt = object["prompt"] as? String else { throw fail("'prompt' must be a string") }
            func number(_ key: String) throws -> Double? {
                guard let value = object[key] else { return nil }
                guard !(value is Bool), let n = value as? NSNumber, n.doubleValue.isFinite else {
                    throw fail("'\(key)' must be a number")
                }
                return n.doubleValue
            }
            var adapter: String?
            if let value = object["adapter"] {
                guard let p = value as? String, !p.isEmpty else { throw fail("'adapter' must be a path") }
                adapter = p.hasPrefix("/") ? p : (folder as NSString).appendingPathComponent(p)
            }
            let maxTokens = try number("max_tokens")
            if let m = maxTokens, m != m.rounded() || m < 1 || m > 1_000_000 { throw fail("'max_tokens' must be a whole number from 1 to 1000000") }
            let temperature = try number("temperature")
            if let t = temperature, t < 0 { throw fail("'temperature' must be ≥ 0") }
            let seed = try number("seed")
            if let s = seed, s != s.rounded() || s < 0 || s > 9.007e15 { throw fail("'seed' must be a whole number ≥ 0") }
            let scale = try number("scale")
            if scale != nil && adapter == nil { throw fail("'scale' needs an 'adapter'") }
            lines.append((lineNumber, BatchLine(prompt: prompt, adapter: adapter, scale: scale.map(Float.init), maxTokens: maxTokens.map { Int($0) },
                                            temperature: temperature.map(Float.init), seed: seed.map { UInt64($0) })))
        }
        guard !lines.isEmpty else { throw BatchFileError(path, 0, "no requests in it") }
        return lines
    }
}

/// A line of a batch file that cannot be run.
struct BatchFileError: Error, LocalizedError {
    let message: String
    init(_ path: String, _ line: Int, _ detail: String) { message = line > 0 ? "\(path):\(line): \(detail)" : "\(path): \(detail)" }
    var errorDescription: String? { message }
}

/// `generate --n N` and `generate --batch FILE`: sequences generated together (`BatchGenerator`).
struct BatchedGeneration {
    let generation: GenerationArguments
    /// The prompt's tokens from its text (through the chat template with --chat).
    let encode: (String, Tokenizer) throws -> [Int]

    /// N samples of one prompt, sample i with seed + i; printed in order once all are done.
    func samples(_ prompt: String, count: Int) throws {
        let engine = try generation.engine()
        let adapter = try generation.adapters.register(with: engine)
        let tokens = try encode(prompt, try engine.tokenizer())
        let batch = try BatchGenerator(engine: engine, maxRows: max(count, 16), context: generation.context)
        let started = now()
        for i in 0..<count {
            var options = generation.options
            options.sampling.seed = generation.options.sampling.seed &+ UInt64(i)
            try batch.submit(.init(prompt: tokens, adapter: adapter, options: options))
        }
        var results = [GenerationResult?](repeating: nil, count: count)
        try batch.runToCompletion { if let r = $0.result { results[$0.id] = r } }
        let seconds = now() - started
        for (i, result) in results.enumerated() {
            StandardOutput.write("[sample \(i + 1)/\(count), seed \(generation.options.sampling.seed &+ UInt64(i))]\n\(result!.text)\n\n")
        }
        if generation.stats { printError(aggregateLine(results.compactMap { $0 }, seconds: seconds)) }
    }

    /// Every line of `path` as a sequence, `parallel` at a time; one JSONL line per input line on standard output,
    /// in input order, as soon as it and those before it are done.
    func file(_ path: String, parallel: Int) throws {
        let lines = try BatchLine.load(path)
        let engine = try generation.engine()
        let tokenizer = try engine.tokenizer()
        // Everything that can be refused is, before the first pass: adapters load, prompts encode.
        var registered: Set<String> = []
        var requests: [BatchGenerator.Request] = []
        for (number, line) in lines {
            // Each adapter path is registered once, under its path.
            if let adapter = line.adapter, !registered.contains(adapter) {
                do {
                    try engine.register(adapter, specs: [AdapterSpec(path: adapter)], strategy: .fused)
                } catch {
                    throw BatchFileError(path, number, error.localizedDescription)
                }
                registered.insert(adapter)
            }
            let name = line.adapter
            var options = generation.options
            if let m = line.maxTokens { options.maxTokens = m }
            if let t = line.temperature { options.sampling.temperature = t }
            if let s = line.seed { options.sampling.seed = s }
            let prompt = try encode(line.prompt, tokenizer)
            guard !prompt.isEmpty else { throw BatchFileError(path, number, "the prompt is empty (no tokens)") }
            requests.append(.init(prompt: prompt, adapter: name, scale: line.scale, options: options))
        }
        let batch = try BatchGenerator(engine: engine, maxRows: max(parallel, 16), context: generation.context)
        for (request, (number, _)) in zip(requests, lines) {
            do { try batch.check(request) } catch { throw BatchFileError(path, number, error.localizedDescription) }
        }
        var results = [GenerationResult?](repeating: nil, count: requests.count)
        var submitted = 0, written = 0
        let progress = Progress()
        let started = now()
        while written < requests.count {
            while submitted < requests.count, batch.active < parallel {
                let id = try batch.submit(requests[submitted])
                precondition(id == submitted, "batch ids follow submission order")
                submitted += 1
            }
            for update in try batch.step() where update.result != nil { results[update.id] = update.result }
            while written < requests.count, let result = results[written] {
                let record: [String: Any] = ["index": written, "line": lines[written].line, "text": result.text,
                                             "prompt_tokens": requests[written].prompt.count, "completion_tokens": result.tokens.count,
                                             "finish_reason": finishReason(result.stopReason)]
                let json = try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys, .withoutEscapingSlashes])
                StandardOutput.write(String(decoding: json, as: UTF8.self) + "\n")
                written += 1
                progress.update("requests", done: written, of: requests.count)
            }
        }
        progress.finish()
        if generation.stats { printError(aggregateLine(results.compactMap { $0 }, seconds: now() - started)) }
    }

    private func finishReason(_ reason: StopReason) -> String {
        switch reason {
        case .endOfSequence, .stopString: return "stop"
        case .maxTokens: return "length"
        case .contextFull: return "context_full"
        case .cancelled: return "cancelled"
        }
    }

    private func aggregateLine(_ results: [GenerationResult], seconds: Double) -> String {
        let tokens = results.reduce(0) { $0 + $1.tokens.count }, prompts = results.reduce(0) { $0 + $1.promptTokensEvaluated }
        return "\(results.count) sequences: \(prompts) prompt tokens evaluated, \(tokens) generated in \(fmt(seconds, 2)) s " +
            "(\(fmt(Double(tokens) / seconds, 1)) generated tokens/s in aggregate)"
    }
}
