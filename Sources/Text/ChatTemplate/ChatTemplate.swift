import Foundation

/// One message of a conversation, as transformers passes it to a chat template: `{"role": ..., "content": ...}`.
public struct ChatMessage: Sendable, Equatable {
    public var role: String
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// A Hugging Face chat template (`chat_template` in tokenizer_config.json, `tokenizer.chat_template` in GGUF),
/// rendered the way transformers' `apply_chat_template(..., tokenize=False)` renders it: Jinja2 3.1 in an
/// `ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])`, with
/// transformers' `raise_exception`, `strftime_now`, `tojson` and `namespace`, and `tools=None`/`documents=None`
/// unless given.
///
/// The interpreter implements the Jinja2 subset chat templates use, with Python's semantics for values; what it
/// does not implement fails with a `TemplateError.unsupported` naming the construct and its position — at parse
/// time for statements (`include`, `extends`, `call`…), at render time for filters, tests and methods (so a
/// template whose tool-calling branch uses something exotic still renders plain conversations).
public struct ChatTemplate: Sendable {
    public let source: String
    let nodes: [Node]

    /// Parses `source`; throws `TemplateError.syntax` (or `.unsupported`) with the line and column.
    public init(source: String) throws {
        self.source = source
        nodes = try Parser.parse(source)
        try ASTWalk.checkFiltersAndTests(nodes)
    }

    /// Renders a conversation. `variables` adds to (or overrides) what the template sees, as the keyword
    /// arguments of `apply_chat_template` do: `bos_token`, `eos_token`, `tools`, `documents`, `date_string`…
    /// `now` is the time `strftime_now` reports (the current time when nil).
    public func render(messages: [ChatMessage], addGenerationPrompt: Bool,
                       variables: [String: TemplateValue] = [:], now: Date? = nil) throws -> String {
        let list = TemplateValue.array(messages.map { .object(["role": .string($0.role), "content": .string($0.content)]) })
        return try render(messages: list, addGenerationPrompt: addGenerationPrompt, variables: variables, now: now)
    }

    /// Renders messages given as values, for messages with more than a role and a text content (`tool_calls`,
    /// structured content…). Each message object is first prepared as transformers prepares it (see
    /// `preparedMessage`).
    public func render(messages: TemplateValue, addGenerationPrompt: Bool,
                       variables: [String: TemplateValue] = [:], now: Date? = nil) throws -> String {
        var context: [String: TemplateValue] = ["tools": .none, "documents": .none]
        for (k, v) in variables { context[k] = v }
        if case let .array(list) = messages {
            context["messages"] = .array(list.map(Self.preparedMessage))
        } else {
            context["messages"] = messages
        }
        context["add_generation_prompt"] = .bool(addGenerationPrompt)
        return try render(context: context, now: now)
    }

    /// What transformers 5 does to each message before rendering: keys whose value is `None` are dropped
    /// (`_normalize_chat_messages`: many templates render a literal "None" for `content=None` but handle a missing
    /// key), and a reasoning text under `reasoning_content`, `thinking` or `reasoning` is also made available as
    /// `thinking` (first key) and `reasoning_content` (`_alias_reasoning_fields`).
    static func preparedMessage(_ message: TemplateValue) -> TemplateValue {
        guard case let .object(object) = message else { return message }
        var kept = TemplateObject()
        for (key, value) in zip(object.keys, object.values) where value != .none { kept[key] = value }
        guard let reasoning = ["reasoning_content", "thinking", "reasoning"].lazy.compactMap({ kept[$0] }).first else {
            return .object(kept)
        }
        var aliased = TemplateObject()
        aliased["thinking"] = reasoning
        for (key, value) in zip(kept.keys, kept.values) { aliased[key] = value }
        aliased["reasoning_content"] = reasoning
        return .object(aliased)
    }

    /// Renders with exactly `context` as the template's variables.
    public func render(context: [String: TemplateValue], now: Date? = nil) throws -> String {
        // An undefined variable is a missing one, so that messages name it as Jinja2 would.
        let defined = context.filter { if case .undefined = $0.value { return false } else { return true } }
        let evaluator = Evaluator(context: defined.mapValues(Value.init), now: now ?? Date())
        do {
            return try evaluator.render(nodes)
        } catch let error as ValueError {
            // Value errors are located where they happen; this only catches one that escaped every node.
            throw error.at(TemplateLocation(line: 1, column: 1))
        }
    }
}

// MARK: - Conversions between the public values and the evaluator's

extension Value {
    init(_ v: TemplateValue) {
        switch v {
        case .undefined: self = .undefined(Undefined(message: "value is undefined"))
        case .none: self = .none
        case let .bool(b): self = .bool(b)
        case let .int(i): self = .int(i)
        case let .double(d): self = .double(d)
        case let .string(s): self = .string(s)
        case let .array(items): self = .list(items.map(Value.init))
        case let .object(o):
            var d = Dict()
            for (k, item) in zip(o.keys, o.values) { try? d.set(.string(k), Value(item)) }
            self = .dict(d)
        }
    }
}
