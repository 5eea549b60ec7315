import Adapters
import Engine
import Foundation
import Model
import Text

/// The HTTP API over an engine and its scheduler: OpenAI's completions and chat completions (streamed as server-sent
/// events or not), the models and adapters, tokenize and detokenize, health and metrics.
public final class OpenAIAPI: @unchecked Sendable {
    public struct Settings: Sendable {
        /// The name the base model answers to in `model` (its file name without the extension by default).
        public var modelName: String
        public var apiKey: String?
        public var metrics: Bool
        /// Positions a sequence holds: a prompt must leave room for one generated token.
        public var context: Int

        public init(modelName: String, apiKey: String? = nil, metrics: Bool = false, context: Int) {
            self.modelName = modelName
            self.apiKey = apiKey
            self.metrics = metrics
            self.context = context
        }
    }

    public let engine: Engine
    public let scheduler: Scheduler
    public let settings: Settings
    public let counters = Counters()
    private let tokenizer: Tokenizer
    private let formatter: ChatFormatter?
    private let created = Int(Date().timeIntervalSince1970)
    private let lock = NSLock()
    private var draining = false

    public init(engine: Engine, scheduler: Scheduler, settings: Settings) throws {
        self.engine = engine
        self.scheduler = scheduler
        self.settings = settings
        tokenizer = try engine.tokenizer()
        formatter = try? ChatFormatter(tokenizer: tokenizer, modelPath: engine.model.path)
    }

    /// From now on `/health` answers 503 and new generations are refused.
    public func beginDraining() {
        lock.lock()
        draining = true
        lock.unlock()
    }

    private var isDraining: Bool {
        lock.lock()
        defer { lock.unlock() }
        return draining
    }

    // MARK: - Routing

    /// Gets one line per request when it is over: method, path, status, tokens (prompt + generated), milliseconds.
    public var log: ((String) -> Void)?

    /// What the log line of a request says; a stream's is written when the stream ends.
    private final class Trace: @unchecked Sendable {
        let method: String
        let path: String
        let start = DispatchTime.now().uptimeNanoseconds
        var status = 200
        var tokens: (prompt: Int, completion: Int)?

        init(_ request: HTTPRequest) {
            method = request.method
            path = request.path
        }

        var line: String {
            let ms = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
            let counts = tokens.map { "\($0.prompt)+\($0.completion) tokens" } ?? "-"
            return "\(method) \(path) \(status) \(counts) \(String(format: "%.1f", ms)) ms"
        }
    }

    /// Answers one request (on the connection's thread).
    public func handle(_ request: HTTPRequest) -> HTTPResponse {
        let trace = Trace(request)
        let response = route(request, trace)
        switch response {
        case let .full(status, _, _):
            trace.status = status
            log?(trace.line)
        case .stream: break // logged when it ends
        }
        return response
    }

    /// Every path and the methods it answers.
    private static let routes: [String: [String]] = [
        "/": ["GET"], "/health": ["GET"], "/metrics": ["GET"], "/v1/models": ["GET"], "/v1/adapters": ["GET"],
        "/v1/completions": ["POST"], "/v1/chat/completions": ["POST"], "/tokenize": ["POST"], "/detokenize": ["POST"],
    ]

    private func route(_ request: HTTPRequest, _ trace: Trace) -> HTTPResponse {
        guard let methods = Self.routes[request.path], request.path != "/metrics" || settings.metrics else {
            return APIError(404, "no route \(request.path)", code: "not_found").response
        }
        guard methods.contains(request.method) else {
            return .full(status: 405, headers: [("Content-Type", "application/json"), ("Allow", methods.joined(separator: ", "))],
                         body: APIError(405, "\(request.method) is not allowed on \(request.path)", code: "method_not_allowed").body)
        }
        if let key = settings.apiKey, request.path.hasPrefix("/v1/") || request.path.hasSuffix("tokenize") {
            guard request.header("Authorization") == "Bearer \(key)" else {
                return APIError(401, "a valid API key is required (Authorization: Bearer KEY)", type: "authentication_error",
                                code: "invalid_api_key").response
            }
        }
        do {
            switch request.path {
            case "/": return .full(status: 200, headers: [("Content-Type", "text/html; charset=utf-8")], body: Data(chatPage.utf8))
            case "/health":
                return isDraining ? .json(503, Data(#"{"status":"draining"}"#.utf8)) : .json(200, Data(#"{"status":"ok"}"#.utf8))
            case "/metrics":
                return .full(status: 200, headers: [("Content-Type", "text/plain; version=0.0.4")],
                             body: Data(counters.prometheus(queue: scheduler.queueDepth, busy: scheduler.busy,
                                                            parallel: scheduler.parallel).utf8))
            case "/v1/models": return .json(200, try encode(models()))
            case "/v1/adapters": return .json(200, try encode(adapterList()))
            case "/tokenize": return try tokenize(RequestBody(request.body))
            case "/detokenize": return try detokenize(RequestBody(request.body))
            default: return try generate(request, chat: request.path == "/v1/chat/completions", trace)
            }
        } catch let error as APIError {
            return error.response
        } catch {
            return APIError(500, error.localizedDescription, type: "server_error").response
        }
    }

    // MARK: - Models and tokens

    private func models() -> ModelList {
        var data = [ModelEntry(id: settings.modelName, created: created, ownedBy: "loraswitch", parent: nil)]
        for adapter in engine.adapters where !adapter.name.hasPrefix("\u{0}") {
            data.append(ModelEntry(id: adapter.name, created: created, ownedBy: "loraswitch", parent: settings.modelName))
        }
        return ModelList(data: data)
    }

    private func adapterList() -> AdapterList {
        AdapterList(data: engine.adapters.filter { !$0.name.hasPrefix("\u{0}") }.map { registered in
            let adapter = registered.adapter
            let kind: String
            switch adapter.routing {
            case .fixed: kind = "lora"
            case .token: kind = "moe-token"
            case .layer: kind = "moe-layer"
            }
            return AdapterEntry(name: registered.name, kind: kind, experts: adapter.numExperts, topK: adapter.routing.topK,
                                routerLayer: { if case .token = adapter.routing { return adapter.routerLayer } else { return nil } }(),
                                paths: registered.specs.map(\.path))
        })
    }

    private func tokenize(_ body: RequestBody) throws -> HTTPResponse {
        guard let content = try body.string("content") else { throw APIError.invalid("'content' is required", param: "content") }
        let special = try body.bool("add_special") ?? false
        return .json(200, try encode(["tokens": tokenizer.encode(content, addSpecialTokens: special)]))
    }

    private func detokenize(_ body: RequestBody) throws -> HTTPResponse {
        guard let items = try body.array("tokens") else { throw APIError.invalid("'tokens' is required", param: "tokens") }
        let vocabulary = engine.model.configuration.vocabSize
        let ids: [Int] = try items.map { item in
            guard case let .int(id) = item, id >= 0, id < vocabulary else {
                throw APIError.invalid("'tokens' must hold token ids in 0..<\(vocabulary)", param: "tokens")
            }
            return id
        }
        return .json(200, try encode(["content": tokenizer.decode(ids)]))
    }

    // MARK: - Generation

    /// A generation request, checked: the batch's request and how to answer it.
    private struct Generation {
        var request: BatchGenerator.Request
        var stream: Bool
        var includeUsage: Bool
        var model: String
    }

    private func parse(_ body: RequestBody, chat: Bool) throws -> Generation {
        let model = try body.string("model") ?? settings.modelName
        var adapter: String?
        if model != settings.modelName {
            guard engine.adapters.contains(where: { $0.name == model }), !model.hasPrefix("\u{0}") else {
                throw APIError(400, "unknown model or adapter '\(model)' (known: \(([settings.modelName] + engine.adapters.map(\.name).filter { !$0.hasPrefix("\u{0}") }).joined(separator: ", ")))",
                               param: "model", code: "model_not_found")
            }
            adapter = model
        }
        var scale: Float?
        if let list = try body.array("adapters") {
            (adapter, scale) = try adapters(list)
        }

        var options = GenerationOptions()
        _ = try body.integer("n", in: 1...1) // one choice per request; n > 1 is refused, never ignored
        let maxTokens = try body.integer("max_completion_tokens", in: 1...1_000_000) ?? body.integer("max_tokens", in: 1...1_000_000)
        var sampling = SamplingParameters()
        if let t = try body.number("temperature", in: 0...2) { sampling.temperature = Float(t) }
        if let p = try body.number("top_p", in: 0...1) { sampling.topP = Float(p) }
        if let k = try body.integer("top_k", in: 0...1_000_000) { sampling.topK = k }
        if let m = try body.number("min_p", in: 0...1) { sampling.minP = Float(m) }
        if let s = try body.integer("seed", in: Int(Int64.min)...Int(Int64.max)) { sampling.seed = UInt64(bitPattern: Int64(s)) }
        options.sampling = sampling
        switch body.value("stop") {
        case nil: break
        case let .string(s)?: options.stopStrings = [s]
        case let .array(items)?:
            guard items.count <= 4 else { throw APIError.invalid("'stop' takes at most 4 strings", param: "stop") }
            options.stopStrings = try items.map { item in
                guard case let .string(s) = item, !s.isEmpty else { throw APIError.invalid("'stop' must hold non-empty strings", param: "stop") }
                return s
            }
        case let other?: throw APIError(400, "'stop' must be a string or an array of strings, not \(other.jsonKind)",
                                        param: "stop", code: "invalid_type")
        }
        let routing = try body.object("routing")?.bool("return") ?? false
        if routing {
            let registered = adapter.flatMap { name in engine.adapters.first { $0.name == name } }
            guard let registered, case .token = registered.adapter.routing else {
                throw APIError.invalid("'routing' needs a MoE-LoRA adapter with token routing"
                                       + (adapter.map { ", and '\($0)' is not one" } ?? ""), param: "routing")
            }
        }
        let logprobs: Int?
        if chat {
            let asked = try body.bool("logprobs") ?? false
            let top = try body.integer("top_logprobs", in: 0...20)
            if top != nil && !asked { throw APIError.invalid("'top_logprobs' needs 'logprobs': true", param: "top_logprobs") }
            logprobs = asked ? top ?? 0 : nil
        } else {
            logprobs = try body.integer("logprobs", in: 0...5)
        }
        let stream = try body.bool("stream") ?? false
        let includeUsage = try body.object("stream_options")?.bool("include_usage") ?? false

        let prompt: [Int]
        if chat {
            guard let items = try body.array("messages"), !items.isEmpty else {
                throw APIError.invalid("'messages' is required: a non-empty list of {\"role\", \"content\"}", param: "messages")
            }
            let messages: [ChatMessage] = try items.enumerated().map { i, item in
                guard case let .object(o) = item else { throw APIError.invalid("'messages[\(i)]' must be an object", param: "messages") }
                let m = RequestBody(object: o)
                guard let role = try m.string("role") else { throw APIError.invalid("'messages[\(i)].role' is required", param: "messages") }
                guard let content = try m.string("content") else {
                    throw APIError.invalid("'messages[\(i)].content' must be a string", param: "messages")
                }
                return ChatMessage(role: role, content: content)
            }
            guard let formatter else {
                throw APIError(400, "the model has no chat template: use /v1/completions", param: "messages", code: "no_chat_template")
            }
            do {
                prompt = try formatter.tokens(for: messages)
            } catch {
                throw APIError.invalid("the chat template failed on these messages: \(error.localizedDescription)", param: "messages")
            }
        } else {
            let text: String
            switch body.value("prompt") {
            case let .string(s)?: text = s
            case let .array(items)? where items.count == 1: 
                guard case let .string(s) = items[0] else { throw APIError.invalid("'prompt' must be a string", param: "prompt") }
                text = s
            default: throw APIError.invalid("'prompt' is required: a string", param: "prompt")
            }
            prompt = tokenizer.encode(text)
        }
        guard !prompt.isEmpty else { throw APIError.invalid("the prompt is empty", param: chat ? "messages" : "prompt") }
        guard prompt.count < settings.context else {
            throw APIError(400, "the prompt has \(prompt.count) tokens; the context holds \(settings.context)",
                           param: chat ? "messages" : "prompt", code: "context_length_exceeded")
        }
        options.maxTokens = min(maxTokens ?? settings.context - prompt.count, settings.context - prompt.count)
        return Generation(request: .init(prompt: prompt, adapter: adapter, scale: scale, options: options, routing: routing,
                                         logprobs: logprobs),
                          stream: stream, includeUsage: includeUsage, model: model)
    }

    /// The extension field `adapters: [{"name", "scale"?}]`: none (the bare model), one (any kind; a scale for a
    /// static LoRA only), or several static LoRAs applied together, each at its scale (registered once per
    /// combination, under a name that starts with NUL so that no listing shows it).
    private func adapters(_ list: [TemplateValue]) throws -> (name: String?, scale: Float?) {
        var items: [(registered: RegisteredAdapter, scale: Float?)] = []
        for (i, value) in list.enumerated() {
            guard case let .object(entry) = value else {
                throw APIError.invalid("'adapters' must be a list of {\"name\", \"scale\"} objects", param: "adapters")
            }
            let item = RequestBody(object: entry)
            guard let name = try item.string("name") else { throw APIError.invalid("'adapters[\(i)].name' is required", param: "adapters") }
            guard let registered = engine.adapters.first(where: { $0.name == name }), !name.hasPrefix("\u{0}") else {
                throw APIError(400, "unknown adapter '\(name)'", param: "adapters", code: "adapter_not_found")
            }
            let scale = try item.number("scale", in: -100...100).map(Float.init)
            guard case .fixed = registered.adapter.routing else {
                if scale != nil {
                    throw APIError.invalid("'\(name)' is a mixture of experts: its router sets the gates, so it takes no scale",
                                           param: "adapters")
                }
                guard list.count == 1 else {
                    throw APIError.invalid("'\(name)' is a mixture of experts: it runs alone, not mixed with other adapters",
                                           param: "adapters")
                }
                return (name, nil)
            }
            items.append((registered, scale))
        }
        if items.count <= 1 { return (items.first?.registered.name, items.first?.scale) }
        let name = "\u{0}mix:" + items.map { "\($0.registered.name)*\($0.scale ?? 1)" }.joined(separator: "+")
        lock.lock()
        defer { lock.unlock() }
        if (try? engine.adapter(name)) == nil {
            guard mixtures < Self.maxMixtures else {
                throw APIError.invalid("more than \(Self.maxMixtures) distinct combinations of adapters were asked for", param: "adapters")
            }
            let specs = items.flatMap { item in
                item.registered.specs.map { AdapterSpec(path: $0.path, weight: $0.weight * (item.scale ?? 1)) }
            }
            do {
                try engine.register(name, specs: specs, strategy: .fused)
            } catch {
                throw APIError.invalid("these adapters cannot be applied together: \(error.localizedDescription)", param: "adapters")
            }
            mixtures += 1
        }
        return (name, nil)
    }

    /// Combinations of static LoRAs registered so far (each holds its adapters' weights once more).
    private var mixtures = 0
    private static let maxMixtures = 64

    private func generate(_ request: HTTPRequest, chat: Bool, _ trace: Trace) throws -> HTTPResponse {
        let g = try parse(RequestBody(request.body), chat: chat)
        if isDraining { throw APIError(503, "the server is shutting down", type: "server_error", code: "draining") }
        let ticket: Scheduler.Ticket
        do {
            ticket = try scheduler.submit(g.request)
        } catch Scheduler.SubmitError.queueFull {
            counters.add(rejected: 1)
            return .full(status: 503, headers: [("Content-Type", "application/json"), ("Retry-After", "1")],
                         body: APIError(503, "the server is busy: \(scheduler.parallel) running and the queue full",
                                        type: "server_error", code: "queue_full").body)
        } catch {
            throw APIError(503, "the server is shutting down", type: "server_error", code: "draining")
        }
        counters.start(adapter: g.request.adapter)
        let id = (chat ? "chatcmpl-" : "cmpl-") + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        let created = Int(Date().timeIntervalSince1970)
        let shape = ChunkShape(id: id, created: created, model: g.model, chat: chat)
        return g.stream ? stream(ticket, shape, g, trace) : whole(ticket, shape, g, request, trace)
    }

    /// Waits for the whole generation, then answers once.
    private func whole(_ ticket: Scheduler.Ticket, _ shape: ChunkShape, _ g: Generation, _ request: HTTPRequest,
                       _ trace: Trace) -> HTTPResponse {
        var text = ""
        var tokens = Scheduler.Tokens()
        while true {
            guard let event = ticket.next(timeout: 0.05) else {
                if request.clientGone() { ticket.cancel() }
                continue
            }
            switch event {
            case let .piece(piece, more):
                text += piece
                tokens += more
            case let .failed(message):
                return APIError(500, message, type: "server_error").response
            case let .finished(result, last, more):
                text += last
                tokens += more
                var offset = 0
                let (routing, logprobs) = annotations(tokens, g, chat: shape.chat, offset: &offset)
                let body = shape.whole(text: text, finish: finishReason(result.stopReason), usage: finished(result, g, trace),
                                       routing: routing, logprobs: logprobs)
                return .json(200, (try? encode(body)) ?? Data())
            }
        }
    }

    /// Streams the generation as server-sent events.
    private func stream(_ ticket: Scheduler.Ticket, _ shape: ChunkShape, _ g: Generation, _ trace: Trace) -> HTTPResponse {
        var queued: [Data] = shape.chat ? [event(shape.chunk(role: true, text: "", finish: nil))] : []
        var offset = 0
        func chunk(_ text: String, _ tokens: Scheduler.Tokens, finish: String?) -> Data {
            let (routing, logprobs) = annotations(tokens, g, chat: shape.chat, offset: &offset)
            return event(shape.chunk(role: false, text: text, finish: finish, routing: routing, logprobs: logprobs))
        }
        var done = false
        var finished = false
        let body = StreamBody(next: { [self] in
            while queued.isEmpty {
                if done { return nil }
                guard let e = ticket.next(timeout: 30) else { continue }
                switch e {
                case let .piece(piece, tokens):
                    queued.append(chunk(piece, tokens, finish: nil))
                case let .failed(message):
                    queued.append(Data("data: ".utf8) + errorBody(message, type: "server_error") + Data("\n\n".utf8))
                    done = true
                case let .finished(result, last, tokens):
                    queued.append(chunk(last, tokens, finish: finishReason(result.stopReason)))
                    let usage = self.finished(result, g, trace)
                    if g.includeUsage { queued.append(event(shape.usageChunk(usage))) }
                    queued.append(Data("data: [DONE]\n\n".utf8))
                    finished = true
                    done = true
                }
            }
            return queued.removeFirst()
        }, closed: { [self] in
            if !finished {
                ticket.cancel()
                trace.status = 499 // the client closed the connection before the end (nginx's code)
            }
            log?(trace.line)
        })
        return .stream(status: 200, headers: [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")], body: body)
    }

    /// A finished generation counted (metrics, the request's log line); its usage.
    private func finished(_ result: GenerationResult, _ g: Generation, _ trace: Trace) -> Usage {
        let prompt = g.request.prompt.count, completion = result.tokens.count
        counters.finish(adapter: g.request.adapter, promptTokens: prompt, completionTokens: completion)
        trace.tokens = (prompt, completion)
        return Usage(prompt: prompt, completion: completion)
    }

    /// What the request asked to know of `tokens`: their routing and their logprobs (nil when not asked).
    private func annotations(_ tokens: Scheduler.Tokens, _ g: Generation, chat: Bool,
                             offset: inout Int) -> (routing: [RoutingEntry]?, logprobs: LogprobsValue?) {
        (g.request.routing ? tokens.routing.map(RoutingEntry.init) : nil,
         g.request.logprobs == nil ? nil : logprobsValue(tokens.logprobs, chat: chat, offset: &offset))
    }

    /// `items` in the shape of the endpoint; `offset` (characters of the completion so far) advances past them.
    private func logprobsValue(_ items: [BatchGenerator.TokenLogprob], chat: Bool, offset: inout Int) -> LogprobsValue {
        func text(_ token: Int) -> (String, [Int]) {
            let bytes = tokenizer.bytes(of: token)
            return (String(decoding: bytes, as: UTF8.self), bytes.map(Int.init))
        }
        if chat {
            return .chat(items.map { item in
                let (token, bytes) = text(item.token)
                return .init(token: token, logprob: item.logprob, bytes: bytes, topLogprobs: item.top.map { alternative in
                    let (t, b) = text(alternative.token)
                    return .init(token: t, logprob: alternative.logprob, bytes: b, topLogprobs: nil)
                })
            })
        }
        var tokens: [String] = [], offsets: [Int] = []
        for item in items {
            let token = text(item.token).0
            tokens.append(token)
            offsets.append(offset)
            offset += token.count
        }
        return .completion(tokens: tokens, logprobs: items.map(\.logprob),
                           top: items.map { item in
                               Dictionary(item.top.map { (text($0.token).0, $0.logprob) }, uniquingKeysWith: { a, _ in a })
                           }, offsets: offsets)
    }

    private func event<T: Encodable>(_ value: T) -> Data {
        Data("data: ".utf8) + ((try? encode(value)) ?? Data()) + Data("\n\n".utf8)
    }

    private func encode<T: Encodable>(_ value: T) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return try encoder.encode(value)
    }
}

func finishReason(_ reason: StopReason) -> String {
    switch reason {
    case .endOfSequence, .stopString: return "stop"
    case .maxTokens, .contextFull: return "length"
    case .cancelled: return "cancelled"
    }
}
