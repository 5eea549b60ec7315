import Formats
import Foundation
import Text

/// A training set read from a JSONL file: one JSON object a line, each in one of four formats.
///
/// - `{"text": T}`: loss on every token.
/// - `{"prompt": P, "completion": C}`: loss on the completion only, split as lm-evaluation-harness scores a
///   continuation (see `ExampleEncoder.promptCompletion`).
/// - `{"messages": [{"role": R, "content": C}, ...]}`: rendered by the model's chat template, loss on the assistant
///   turns only, each with the end-of-turn text the template writes (see `ExampleEncoder.messages`).
/// - `{"input_ids": [...], "labels": [...]}`: pre-tokenized in Hugging Face's causal-LM convention (see
///   `TrainingExample`); used as given, so no tokenizer is needed.
///
/// BOS/EOS (the three text formats, as the tokenizer's configuration says — `Tokenizer.addBOS`/`addEOS`):
/// - `text`: BOS? + tokens(T) + EOS?, every position labelled (the EOS too).
/// - `prompt`/`completion`: BOS? + tokens(P + C) + EOS?; the continuation and the EOS are labelled, the BOS and the
///   prompt's tokens not.
/// - `messages`: exactly the template's rendering, tokenized with no BOS/EOS added (as `generate --chat` and
///   transformers' `apply_chat_template(tokenize=True)` do): the template writes the BOS and turn tokens itself.
/// - `input_ids`/`labels`: nothing is added.
///
/// Lines end with `\n` or `\r\n`; a UTF-8 byte order mark at the start of the file is skipped, and so are blank
/// lines (spaces, tabs and `\r` only); every other line must be an example, and the first that is
/// not stops the load with a `TrainingDataError` naming the file and line. Keys other than the formats' are errors
/// too (a misspelt key would otherwise be dropped in silence). Examples longer than `maxSequenceLength` are cut to
/// their first `maxSequenceLength` tokens and counted in `truncated`; one with no labelled position left (every
/// label -100, or only the first position labelled) is an error.
public struct TrainingData: Sendable {
    /// The file the examples came from.
    public let path: String
    public let examples: [TrainingExample]
    /// The 1-based line of each example in the file.
    public let lines: [Int]
    /// How many examples were longer than the maximum sequence length and were cut.
    public let truncated: Int

    /// Examples made in memory (`lines` numbers them 1, 2, ... unless given).
    public init(examples: [TrainingExample], path: String = "", lines: [Int]? = nil, truncated: Int = 0) {
        self.path = path
        self.examples = examples
        self.lines = lines ?? Array(1..<(examples.count + 1))
        self.truncated = truncated
    }

    /// Scored predictions over all examples.
    public var labelledCount: Int { examples.reduce(0) { $0 + $1.labelledCount } }

    /// The most tokens of any example (at most the maximum sequence length it was loaded with).
    public var longestExample: Int { examples.map(\.tokens.count).max() ?? 0 }

    /// Reads and tokenizes every example of `path`. `tokenizer` may be nil when every line is pre-tokenized;
    /// `vocabularySize` is the model's (every token id and label must be below it).
    public static func load(path: String, tokenizer: Tokenizer?, vocabularySize: Int,
                            maxSequenceLength: Int) throws -> TrainingData {
        guard maxSequenceLength >= 2 else {
            throw TrainingDataError.invalidParameter(name: "maximum sequence length",
                                                     problem: "\(maxSequenceLength) leaves no token to predict (at least 2)")
        }
        guard vocabularySize > 0 else {
            throw TrainingDataError.invalidParameter(name: "vocabulary size", problem: "\(vocabularySize) is not positive")
        }
        let jsonLines: JSONLines
        do { jsonLines = try JSONLines(path: path) } catch let e as JSONLines.Unreadable {
            throw TrainingDataError.unreadable(file: path, reason: e.reason)
        }

        let encoder = tokenizer.map(ExampleEncoder.init)
        var examples: [TrainingExample] = []
        var lines: [Int] = []
        var truncated = 0
        for (lineNumber, line) in jsonLines {
            do {
                let example = try readExample(line, encoder: encoder, vocabularySize: vocabularySize)
                let cut = example.truncated(to: maxSequenceLength)
                if cut.tokens.count < example.tokens.count { truncated += 1 }
                guard cut.labelledCount > 0 else {
                    if cut.tokens.count < example.tokens.count {
                        throw LineProblem("no labelled token within the first \(maxSequenceLength) tokens (the maximum sequence length)")
                    }
                    throw LineProblem(example.tokens.count == 1
                        ? "no token to learn: a single token has nothing before it to predict it"
                        : "no token to learn: every label is -100, or only the first position (which nothing predicts) has one")
                }
                examples.append(cut)
                lines.append(lineNumber)
            } catch let problem as LineProblem {
                throw TrainingDataError.invalidLine(file: path, line: lineNumber, problem: problem.message)
            }
        }
        guard !examples.isEmpty else { throw TrainingDataError.noExamples(file: path) }
        return TrainingData(examples: examples, path: path, lines: lines, truncated: truncated)
    }

    // MARK: - One line

    /// The keys of each format, for the messages that list them.
    static let formats = "a line holds \"text\"; \"prompt\" and \"completion\"; \"messages\"; or \"input_ids\" and \"labels\""

    /// The example one line holds, before truncation.
    static func readExample(_ line: ArraySlice<UInt8>, encoder: ExampleEncoder?,
                            vocabularySize: Int) throws -> TrainingExample {
        let object = try TemplateValue.jsonObject(line: line, format: formats)
        let known: Set<String> = ["text", "prompt", "completion", "messages", "input_ids", "labels"]
        if let unknown = object.keys.first(where: { !known.contains($0) }) {
            throw LineProblem("unexpected key \"\(unknown)\" (\(formats))")
        }
        let keys = Set(object.keys)
        let example: TrainingExample
        switch keys {
        case ["input_ids", "labels"]:
            return try preTokenized(object, vocabularySize: vocabularySize)
        case ["text"]:
            let text = try string(object, "text", mayBeEmpty: false)
            example = try needed(encoder, "text").text(text)
        case ["prompt", "completion"]:
            let prompt = try string(object, "prompt", mayBeEmpty: true)
            let completion = try string(object, "completion", mayBeEmpty: false)
            example = try needed(encoder, "prompt/completion").promptCompletion(prompt: prompt, completion: completion)
        case ["messages"]:
            let messages = try self.messages(object)
            example = try needed(encoder, "messages").messages(messages)
        default:
            let listed = object.keys.map { "\"\($0)\"" }.joined(separator: ", ")
            throw LineProblem(keys.isEmpty ? "an empty object (\(formats))" : "the keys \(listed) fit no format (\(formats))")
        }
        if let outside = example.tokens.first(where: { $0 >= vocabularySize }) {
            throw LineProblem("the tokenizer gave token \(outside), outside the model's vocabulary of \(vocabularySize)")
        }
        return example
    }

    static func needed(_ encoder: ExampleEncoder?, _ format: String) throws -> ExampleEncoder {
        guard let encoder else {
            throw LineProblem("a \(format) example needs the model's tokenizer, and there is none " +
                              "(pre-tokenized input_ids and labels need none)")
        }
        return encoder
    }

    static func string(_ object: TemplateObject, _ key: String, mayBeEmpty: Bool) throws -> String {
        guard case let .string(s)? = object[key] else {
            throw LineProblem("\"\(key)\" must be a string, not \((object[key] ?? .none).jsonKind)")
        }
        guard mayBeEmpty || !s.isEmpty else { throw LineProblem("\"\(key)\" is empty") }
        return s
    }

    /// The messages as the template will see them (every key kept, so `tool_calls` or reasoning reach it), each
    /// checked to have a string role and content.
    static func messages(_ object: TemplateObject) throws -> [TemplateValue] {
        guard case let .array(list)? = object["messages"] else {
            throw LineProblem("\"messages\" must be an array, not \((object["messages"] ?? .none).jsonKind)")
        }
        guard !list.isEmpty else { throw LineProblem("\"messages\" is empty") }
        var hasAssistant = false
        for (i, message) in list.enumerated() {
            guard case let .object(fields) = message else {
                throw LineProblem("message \(i + 1) must be an object with \"role\" and \"content\", not \(message.jsonKind)")
            }
            for key in ["role", "content"] {
                guard case .string? = fields[key] else {
                    let found = fields[key].map { "is \(($0).jsonKind)" } ?? "is missing"
                    throw LineProblem("message \(i + 1): \"\(key)\" must be a string, and \(found)")
                }
            }
            if fields["role"] == .string("assistant") { hasAssistant = true }
        }
        guard hasAssistant else { throw LineProblem("no assistant message: nothing to learn") }
        return list
    }

    /// `input_ids` and `labels` as given, checked against the vocabulary.
    static func preTokenized(_ object: TemplateObject, vocabularySize: Int) throws -> TrainingExample {
        func integers(_ key: String) throws -> [Int] {
            guard case let .array(list)? = object[key] else {
                throw LineProblem("\"\(key)\" must be an array of integers, not \((object[key] ?? .none).jsonKind)")
            }
            return try list.enumerated().map { i, value in
                guard case let .int(n) = value else {
                    throw LineProblem("\"\(key)\"[\(i)] must be an integer, not \(value.jsonKind)")
                }
                return n
            }
        }
        let tokens = try integers("input_ids")
        let labels = try integers("labels")
        guard !tokens.isEmpty else { throw LineProblem("\"input_ids\" is empty") }
        guard labels.count == tokens.count else {
            throw LineProblem("\"labels\" has \(labels.count) entries and \"input_ids\" \(tokens.count); they must match")
        }
        if let i = tokens.firstIndex(where: { $0 < 0 || $0 >= vocabularySize }) {
            throw LineProblem("\"input_ids\"[\(i)] = \(tokens[i]) is outside the model's vocabulary 0..<\(vocabularySize)")
        }
        if let i = labels.firstIndex(where: { ($0 < 0 || $0 >= vocabularySize) && $0 != TrainingExample.ignoredLabel }) {
            throw LineProblem("\"labels\"[\(i)] = \(labels[i]) is neither -100 nor in the model's vocabulary 0..<\(vocabularySize)")
        }
        return TrainingExample(tokens: tokens, labels: labels)
    }
}

