import Adapters
import Foundation
import Kernels
import Model
import Text

/// Many sequences generated at once (continuous batching): requests join and leave between passes, and every pass
/// (`InferenceSession.step`) holds one row for each decoding sequence and fills its other rows with chunks of the
/// waiting prompts, so a long prompt never stalls the others. Each sequence has its own adapters (a registered one,
/// a static LoRA with its own scale, or none) and its own sampler; rows that share adapters run as one group, so a
/// pass reads the base weights once and each adapter in use once.
///
/// A prompt's common prefix with a sequence already in the cache (running or recently finished) is copied instead of
/// computed, when both run the same adapters with the same scale; requests for the same prompt submitted together
/// (`generate --n`) compute it once.
public final class BatchGenerator {
    public struct Request: Sendable {
        public var prompt: [Int]
        /// A registered adapter's name; nil for the bare model.
        public var adapter: String?
        /// A static LoRA's weight for this sequence (multiplying the registered weights); nil for as registered.
        public var scale: Float?
        public var options: GenerationOptions
        /// Report the experts of every generated token (`Update.routing`; a MoE-LoRA with token routing only).
        public var routing: Bool
        /// Report every generated token's log-probability and this many of the most likely alternatives
        /// (`Update.logprob`); nil: none.
        public var logprobs: Int?

        public init(prompt: [Int], adapter: String? = nil, scale: Float? = nil, options: GenerationOptions,
                    routing: Bool = false, logprobs: Int? = nil) {
            self.prompt = prompt
            self.adapter = adapter
            self.scale = scale
            self.options = options
            self.routing = routing
            self.logprobs = logprobs
        }
    }

    /// A generated token's log-probability under the model (log-softmax of its logits: before temperature, penalty
    /// or truncation), and the most likely tokens' (most likely first).
    public struct TokenLogprob: Sendable, Equatable {
        public struct Alternative: Sendable, Equatable {
            public let token: Int
            public let logprob: Float
        }

        public let token: Int
        public let logprob: Float
        public let top: [Alternative]
    }

    /// A token router's decision for one row: experts by decreasing weight and their renormalized gates.
    public struct TokenRouting: Sendable, Equatable {
        public let experts: [Int]
        public let gates: [Float]
    }

    /// What one pass did for a sequence: the text it made final, and the whole result once the sequence ended.
    public struct Update {
        public let id: Int
        public let piece: String
        public let result: GenerationResult?
        /// For a request with `routing`: the experts of the position whose logits chose this pass's token (the
        /// router's decision for the row that produced it).
        public let routing: TokenRouting?
        /// For a request with `logprobs`: this pass's token's log-probability and alternatives.
        public let logprob: TokenLogprob?
    }

    public let engine: Engine
    /// Rows per pass.
    public let maxRows: Int
    /// Prompt tokens a sequence feeds per pass at most.
    public let prefillChunk: Int
    /// Positions each sequence holds.
    public let context: Int

    private let forward: InferenceSession
    private let tokenizer: Tokenizer
    private let logits: FloatBuffer
    /// Fused runtimes for the forward pass, by adapter name and scale.
    private var runtimes: [String: ForwardAdapters] = [:]
    /// This pass's routing decisions of the runtimes that report them, by key and row within the key's group.
    private var routingRows: [String: [Int: TokenRouting]] = [:]
    private var running: [Entry] = []
    /// Finished sequences whose caches may serve a later prompt's prefix (most recent last).
    private var finished: [Entry] = []
    private var nextID = 0

    /// One sequence in flight.
    private final class Entry {
        let id: Int
        let request: Request
        /// Runs of rows with the same key share one adapters object.
        let key: String
        let adapters: ForwardAdapters?
        let sequence: SequenceState
        /// Tokens whose keys and values the cache holds, in order (the prompt's, then the generated ones fed back).
        var history: [Int] = []
        var completion: Completion
        /// The token to feed next once the prompt is in (the last one sampled).
        var next: Int?
        var reused = 0
        var started: Double?
        var promptDone: Double?

        init(id: Int, request: Request, key: String, adapters: ForwardAdapters?, sequence: SequenceState, completion: Completion) {
            self.id = id
            self.request = request
            self.key = key
            self.adapters = adapters
            self.sequence = sequence
            self.completion = completion
        }

        var prompt: [Int] { request.prompt }
        var prefilling: Bool { history.count < prompt.count }
    }

    /// - Parameters:
    ///   - maxRows: rows per pass (decoding sequences and prompt chunks together).
    ///   - prefillChunk: prompt tokens one sequence feeds per pass at most.
    ///   - context: positions per sequence (default: the engine's).
    public init(engine: Engine, maxRows: Int = 32, prefillChunk: Int = 32, context: Int? = nil) throws {
        self.engine = engine
        self.maxRows = max(1, maxRows)
        self.prefillChunk = max(1, prefillChunk)
        self.context = context ?? engine.defaultContext
        forward = InferenceSession(model: engine.model, pool: engine.pool, capacity: self.context, chunkSize: self.maxRows)
        tokenizer = try engine.tokenizer()
        logits = FloatBuffer(count: self.maxRows * engine.model.configuration.vocabSize, zeroed: false)
    }

    /// Sequences submitted and not yet ended.
    public var active: Int { running.count }

    /// Queues a request; it joins the next pass. Returns its id (in submission order from 0).
    @discardableResult
    public func submit(_ request: Request) throws -> Int {
        let (key, adapters) = try check(request)
        let entry = Entry(id: nextID, request: request, key: key, adapters: adapters,
                          sequence: SequenceState(model: engine.model, capacity: context),
                          completion: Completion(options: request.options, tokenizer: tokenizer,
                                                 vocabularySize: engine.model.configuration.vocabSize))
        nextID += 1
        running.append(entry)
        return entry.id
    }

    /// Throws what `submit` would refuse `request` for (its adapters are made ready), queueing nothing: a caller
    /// with many requests checks them all before the first pass.
    @discardableResult
    public func check(_ request: Request) throws -> (key: String, adapters: ForwardAdapters?) {
        try request.options.sampling.validate()
        guard !request.prompt.isEmpty else { throw GenerationError.emptyPrompt }
        let vocabulary = engine.model.configuration.vocabSize
        if let bad = request.prompt.first(where: { $0 < 0 || $0 >= vocabulary }) {
            throw ModelError.tokenOutOfRange(model: engine.model.path, token: bad, vocabularySize: vocabulary)
        }
        guard request.prompt.count < context else {
            throw ModelError.contextFull(needed: request.prompt.count + 1, capacity: context)
        }
        return try runtime(request)
    }

    /// Ends a running sequence as cancelled (its result comes with the next pass's updates).
    public func cancel(_ id: Int) {
        running.first { $0.id == id }?.completion.cancel()
    }

    /// One pass over every running sequence that gets a row; returns what it made final, in row order.
    public func step() throws -> [Update] {
        var updates: [Update] = []
        // Sequences cancelled since the last pass end now.
        for entry in running where entry.completion.stopReason != nil { updates.append(end(entry, piece: "")) }
        guard !running.isEmpty else { return updates }

        // Decoding sequences first (one row each), then prompt chunks in the rows left; grouped by adapters.
        var budget = maxRows
        var chosen: [(entry: Entry, tokens: ArraySlice<Int>)] = []
        for entry in running where !entry.prefilling && budget > 0 {
            chosen.append((entry, [entry.next!]))
            budget -= 1
        }
        for entry in running where entry.prefilling && budget > 0 {
            reusePrefix(entry)
            if waitsForSharedPrefix(entry) { continue }
            let start = entry.history.count, n = min(prefillChunk, entry.prompt.count - start, budget)
            chosen.append((entry, entry.prompt[start..<(start + n)]))
            budget -= n
        }
        guard !chosen.isEmpty else { return updates }
        // Stable: rows of one key keep their order (decoding first, then submission order).
        chosen = chosen.enumerated().sorted { ($0.element.entry.key, $0.offset) < ($1.element.entry.key, $1.offset) }.map(\.element)
        var rows: [InferenceSession.Row] = []
        var owners: [(entry: Entry, groupRow: Int)] = []
        var groupRows: [String: Int] = [:]
        let now = Self.now()
        for (entry, tokens) in chosen {
            if entry.started == nil { entry.started = now }
            for (j, token) in tokens.enumerated() {
                let last = j == tokens.count - 1 && entry.history.count + tokens.count >= entry.prompt.count
                rows.append(.init(sequence: entry.sequence, token: token, adapters: entry.adapters, wantsLogits: last))
                if last { owners.append((entry, groupRows[entry.key, default: 0])) }
                groupRows[entry.key, default: 0] += 1
            }
            entry.history += tokens
        }
        routingRows.removeAll(keepingCapacity: true)
        try forward.step(rows, logits: logits.pointer)

        let vocabulary = engine.model.configuration.vocabSize, done = Self.now()
        for (j, (entry, groupRow)) in owners.enumerated() {
            let routing = entry.request.routing ? routingRows[entry.key]?[groupRow] : nil
            if entry.promptDone == nil { entry.promptDone = done }
            let row = UnsafeBufferPointer(start: logits.pointer + j * vocabulary, count: vocabulary)
            let (token, piece) = entry.completion.next(logits: row, history: entry.history[...],
                                                       room: entry.sequence.position < entry.sequence.capacity)
            entry.next = token
            let logprob = entry.request.logprobs.map { Self.logprob(of: entry.completion.tokens.last!, in: row, top: $0) }
            if entry.completion.stopReason != nil {
                updates.append(end(entry, piece: piece, routing: routing, logprob: logprob))
            } else {
                updates.append(Update(id: entry.id, piece: piece, result: nil, routing: routing, logprob: logprob))
            }
        }
        return updates
    }

    /// Runs passes until every submitted sequence has ended; `onUpdate` gets every update as it comes.
    public func runToCompletion(_ onUpdate: (Update) -> Void = { _ in }) throws {
        while !running.isEmpty {
            for update in try step() { onUpdate(update) }
        }
    }

    // MARK: - Internals

    /// The adapters a request runs with, made once per (name, scale) for this batch's forward pass.
    /// A request that reports its routing gets a runtime of its own that records the router's decisions (the
    /// others record nothing, so they pay nothing for it).
    private func runtime(_ request: Request) throws -> (String, ForwardAdapters?) {
        guard let name = request.adapter else {
            if request.scale != nil { throw BatchError.scaleWithoutAdapter }
            if request.routing { throw EngineError.routingWithoutRouter(nil) }
            return ("", nil)
        }
        let registered = try engine.adapter(name)
        if request.routing {
            guard case .token = registered.adapter.routing else { throw EngineError.routingWithoutRouter(name) }
        }
        let key = name + "\u{0}" + (request.scale.map { "\($0)" } ?? "") + (request.routing ? "\u{0}routing" : "")
        if let runtime = runtimes[key] { return (key, runtime) }
        var adapter = registered.adapter
        if let scale = request.scale {
            guard let scaled = adapter.scaled(by: scale) else { throw BatchError.scaleOfMixture(name) }
            adapter = scaled
        }
        let observer: RoutingObserver? = request.routing ? { [unowned self] row, experts, gates in
            routingRows[key, default: [:]][row] = TokenRouting(experts: experts, gates: gates)
        } : nil
        guard case .fused(let runtime) = try adapter.runtime(.fused, for: forward, observer: observer) else {
            throw BatchError.scaleWithoutAdapter
        }
        runtimes[key] = runtime
        return (key, runtime)
    }

    /// Copies the longest prefix of `entry`'s prompt that a sequence with the same adapters holds in its cache
    /// (all but the prompt's last token at most: that one runs for its logits).
    private func reusePrefix(_ entry: Entry) {
        var best: Entry?, length = entry.history.count
        for other in running + finished where other !== entry && other.key == entry.key {
            let held = other.history.prefix(other.sequence.position)
            var n = 0
            let limit = min(held.count, entry.prompt.count - 1)
            while n < limit, held[n] == entry.prompt[n] { n += 1 }
            if n > length { (best, length) = (other, n) }
        }
        guard let best else { return }
        entry.sequence.copyPrefix(of: best.sequence, count: length)
        entry.history = Array(entry.prompt[..<length])
        entry.reused = length
    }

    /// Whether an earlier sequence with the same adapters is computing the prompt tokens `entry` needs next: then
    /// `entry` waits and copies them once they are in.
    private func waitsForSharedPrefix(_ entry: Entry) -> Bool {
        let start = entry.history.count
        for other in running {
            if other === entry { return false }
            guard other.key == entry.key, other.prefilling, other.history.count <= start,
                  other.prompt.count > start, entry.prompt[..<(start + 1)] == other.prompt[..<(start + 1)] else { continue }
            return true
        }
        return false
    }

    /// Ends `entry`: its result, and its cache kept for later prefixes.
    private func end(_ entry: Entry, piece: String, routing: TokenRouting? = nil, logprob: TokenLogprob? = nil) -> Update {
        let rest = entry.completion.finish()
        running.removeAll { $0 === entry }
        finished.append(entry)
        if finished.count > maxRows { finished.removeFirst(finished.count - maxRows) }
        let now = Self.now()
        let started = entry.started ?? now, promptDone = entry.promptDone ?? now
        let result = GenerationResult(tokens: entry.completion.tokens, text: entry.completion.text,
                                      stopReason: entry.completion.stopReason ?? .cancelled,
                                      promptTokensEvaluated: entry.prompt.count - entry.reused,
                                      promptSeconds: promptDone - started, decodeSeconds: now - promptDone)
        return Update(id: entry.id, piece: piece + rest, result: result, routing: routing, logprob: logprob)
    }

    private static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    /// `token`'s log-softmax in `row` and the `top` most likely tokens' (ties: the lower id first).
    static func logprob(of token: Int, in row: UnsafeBufferPointer<Float>, top: Int) -> TokenLogprob {
        let base = row.baseAddress!, lse = logSumExp(base, count: row.count)
        var best: [(token: Int, logit: Float)] = []
        if top > 0 {
            best.reserveCapacity(top + 1)
            for (i, logit) in row.enumerated() where best.count < top || logit > best[best.count - 1].logit {
                let at = best.firstIndex { logit > $0.logit } ?? best.count
                best.insert((i, logit), at: at)
                if best.count > top { best.removeLast() }
            }
        }
        return TokenLogprob(token: token, logprob: Float(Double(row[token]) - lse),
                            top: best.map { .init(token: $0.token, logprob: Float(Double($0.logit) - lse)) })
    }
}

/// A request a batch refuses, in one line.
public enum BatchError: Error, LocalizedError, Equatable {
    case scaleWithoutAdapter
    case scaleOfMixture(String)

    public var errorDescription: String? {
        switch self {
        case .scaleWithoutAdapter: return "a scale needs an adapter to scale"
        case let .scaleOfMixture(name): return "'\(name)' is a mixture of experts: its router sets the gates, so it takes no scale"
        }
    }
}
