import Engine
import Formats
import Foundation

// The JSON the API answers with, in OpenAI's shapes (snake_case keys; absent optionals written as null where
// OpenAI writes null).

struct ModelList: Encodable {
    let object = "list"
    let data: [ModelEntry]
}

struct ModelEntry: Encodable {
    let id: String
    let object = "model"
    let created: Int
    let ownedBy: String
    /// The base model an adapter applies to; null for the base itself.
    @JSONNull var parent: String?

    enum CodingKeys: String, CodingKey { case id, object, created, ownedBy = "owned_by", parent }
}

struct AdapterList: Encodable {
    let object = "list"
    let data: [AdapterEntry]
}

struct AdapterEntry: Encodable {
    let name: String
    /// lora, moe-token or moe-layer.
    let kind: String
    let experts: Int
    let topK: Int
    let routerLayer: Int?
    let paths: [String]

    enum CodingKeys: String, CodingKey { case name, kind, experts, topK = "top_k", routerLayer = "router_layer", paths }
}

struct Usage: Encodable {
    let promptTokens: Int
    let completionTokens: Int
    let totalTokens: Int

    init(prompt: Int, completion: Int) {
        promptTokens = prompt
        completionTokens = completion
        totalTokens = prompt + completion
    }

    enum CodingKeys: String, CodingKey {
        case promptTokens = "prompt_tokens", completionTokens = "completion_tokens", totalTokens = "total_tokens"
    }
}

/// One generated token's routing (the extension field `routing` of a choice): the experts of the position whose
/// logits chose it, by decreasing weight, and their gates.
struct RoutingEntry: Encodable {
    let experts: [Int]
    let gates: [Float]

    init(_ r: BatchGenerator.TokenRouting) {
        experts = r.experts
        gates = r.gates
    }
}

/// A choice's `logprobs`: chat's shape (`content`: token, logprob, bytes, top_logprobs) or the completions' (parallel
/// lists `tokens`, `token_logprobs`, `top_logprobs` as token → logprob, `text_offset`).
enum LogprobsValue: Encodable {
    struct Entry: Encodable {
        let token: String
        let logprob: Float
        let bytes: [Int]
        var topLogprobs: [Entry]?

        enum CodingKeys: String, CodingKey { case token, logprob, bytes, topLogprobs = "top_logprobs" }
    }

    case chat([Entry])
    case completion(tokens: [String], logprobs: [Float], top: [[String: Float]], offsets: [Int])

    func encode(to encoder: Encoder) throws {
        enum Keys: String, CodingKey {
            case content, refusal, tokens, tokenLogprobs = "token_logprobs", topLogprobs = "top_logprobs", textOffset = "text_offset"
        }
        var c = encoder.container(keyedBy: Keys.self)
        switch self {
        case let .chat(entries):
            try c.encode(entries, forKey: .content)
            try c.encodeNil(forKey: .refusal)
        case let .completion(tokens, logprobs, top, offsets):
            try c.encode(tokens, forKey: .tokens)
            try c.encode(logprobs, forKey: .tokenLogprobs)
            try c.encode(top, forKey: .topLogprobs)
            try c.encode(offsets, forKey: .textOffset)
        }
    }
}

/// What every response and chunk of one generation shares, and how each is built.
struct ChunkShape {
    let id: String
    let created: Int
    let model: String
    /// Chat completions (messages, deltas) rather than completions (text).
    let chat: Bool

    struct Message: Encodable {
        var role: String?
        var content: String?
    }

    /// A choice: `text` for completions, `message` or `delta` for chat (absent keys left out), `logprobs` and
    /// `finish_reason` null until there are some.
    struct Choice: Encodable {
        let index = 0
        var text: String?
        var message: Message?
        var delta: Message?
        @JSONNull var finishReason: String?
        var routing: [RoutingEntry]? = nil
        @JSONNull var logprobs: LogprobsValue? = nil

        enum CodingKeys: String, CodingKey { case index, text, message, delta, logprobs, finishReason = "finish_reason", routing }
    }

    /// A response or chunk (`usage` left out when nil).
    struct Body: Encodable {
        let id: String
        let object: String
        let created: Int
        let model: String
        let choices: [Choice]
        let usage: Usage?
    }

    /// The whole answer of a request that does not stream.
    func whole(text: String, finish: String, usage: Usage, routing: [RoutingEntry]?, logprobs: LogprobsValue?) -> Body {
        var choice = chat ? Choice(message: Message(role: "assistant", content: text), finishReason: finish)
            : Choice(text: text, finishReason: finish)
        choice.routing = routing
        choice.logprobs = logprobs
        return Body(id: id, object: chat ? "chat.completion" : "text_completion", created: created, model: model,
                    choices: [choice], usage: usage)
    }

    /// One streamed chunk: the role first (chat), then text, `finish` on the last one.
    func chunk(role: Bool, text: String, finish: String?, routing: [RoutingEntry]? = nil, logprobs: LogprobsValue? = nil) -> Body {
        var choice = chat ? Choice(delta: Message(role: role ? "assistant" : nil, content: text), finishReason: finish)
            : Choice(text: text, finishReason: finish)
        choice.routing = routing
        choice.logprobs = logprobs
        return Body(id: id, object: chat ? "chat.completion.chunk" : "text_completion", created: created, model: model,
                    choices: [choice], usage: nil)
    }

    /// The chunk with the usage (`stream_options.include_usage`): no choices.
    func usageChunk(_ usage: Usage) -> Body {
        Body(id: id, object: chat ? "chat.completion.chunk" : "text_completion", created: created, model: model,
             choices: [], usage: usage)
    }
}

/// What `/metrics` counts (Prometheus text).
public final class Counters: @unchecked Sendable {
    private let lock = NSLock()
    private var requests = 0
    private var finished = 0
    private var rejected = 0
    private var promptTokens = 0
    private var completionTokens = 0
    private var perAdapter: [String: Int] = [:]

    func start(adapter: String?) {
        lock.lock()
        requests += 1
        perAdapter[adapter ?? "", default: 0] += 1
        lock.unlock()
    }

    func finish(adapter: String?, promptTokens prompt: Int, completionTokens completion: Int) {
        lock.lock()
        finished += 1
        promptTokens += prompt
        completionTokens += completion
        lock.unlock()
    }

    func add(rejected n: Int) {
        lock.lock()
        rejected += n
        lock.unlock()
    }

    func prometheus(queue: Int, busy: Int, parallel: Int) -> String {
        lock.lock()
        defer { lock.unlock() }
        var lines = [
            "# HELP loraswitch_requests_total Generation requests admitted.", "# TYPE loraswitch_requests_total counter",
            "loraswitch_requests_total \(requests)",
            "# HELP loraswitch_requests_finished_total Generations that ran to their end.",
            "# TYPE loraswitch_requests_finished_total counter", "loraswitch_requests_finished_total \(finished)",
            "# HELP loraswitch_requests_rejected_total Requests refused with 503 (queue full).",
            "# TYPE loraswitch_requests_rejected_total counter", "loraswitch_requests_rejected_total \(rejected)",
            "# HELP loraswitch_prompt_tokens_total Prompt tokens of finished generations.",
            "# TYPE loraswitch_prompt_tokens_total counter", "loraswitch_prompt_tokens_total \(promptTokens)",
            "# HELP loraswitch_completion_tokens_total Generated tokens of finished generations.",
            "# TYPE loraswitch_completion_tokens_total counter", "loraswitch_completion_tokens_total \(completionTokens)",
            "# HELP loraswitch_queue_depth Requests waiting for a slot.", "# TYPE loraswitch_queue_depth gauge",
            "loraswitch_queue_depth \(queue)",
            "# HELP loraswitch_slots_busy Sequences in the batch.", "# TYPE loraswitch_slots_busy gauge",
            "loraswitch_slots_busy \(busy)",
            "# HELP loraswitch_slots_total Sequences the batch runs at most.", "# TYPE loraswitch_slots_total gauge",
            "loraswitch_slots_total \(parallel)",
            "# HELP loraswitch_adapter_requests_total Requests per adapter (\"\" is the base model).",
            "# TYPE loraswitch_adapter_requests_total counter",
        ]
        for (name, n) in perAdapter.sorted(by: { $0.key < $1.key }) {
            let escaped = name.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            lines.append("loraswitch_adapter_requests_total{adapter=\"\(escaped)\"} \(n)")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
