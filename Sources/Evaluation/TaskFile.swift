import Formats
import Foundation
import Text

/// One multiple-choice question: each choice is scored as a continuation of the context, and `gold` is the index of
/// the right one.
public struct MultipleChoiceExample: Sendable, Equatable {
    public var context: String
    public var choices: [String]
    public var gold: Int
    /// The 1-based line of the example in its file (0 for one made in memory).
    public var line: Int

    public init(context: String, choices: [String], gold: Int, line: Int = 0) {
        self.context = context
        self.choices = choices
        self.gold = gold
        self.line = line
    }
}

/// A task file: JSONL, one example a line, `{"context": str, "choices": [str], "gold": int}`.
///
/// Lines end with `\n` or `\r\n`; a UTF-8 byte order mark at the start is skipped, and so are blank lines (spaces,
/// tabs and `\r` only). Every other line must be an example: a JSON object with exactly those three keys, a string
/// context (it may be empty: the continuation is then scored after the BOS, or the EOS where there is none), at
/// least one choice, every choice a non-empty string (acc_norm divides by its length), and an integer gold index
/// within the choices. The first line that is not stops the load with an `EvaluationError` naming the file and
/// line, before anything is scored.
public struct TaskFile: Sendable {
    /// The file the examples came from.
    public let path: String
    public let examples: [MultipleChoiceExample]

    public init(path: String, examples: [MultipleChoiceExample]) {
        self.path = path
        self.examples = examples
    }

    /// Reads and checks every example of `path`.
    public static func load(path: String) throws -> TaskFile {
        let lines: JSONLines
        do { lines = try JSONLines(path: path) } catch let e as JSONLines.Unreadable {
            throw EvaluationError.unreadable(file: path, reason: e.reason)
        }
        var examples: [MultipleChoiceExample] = []
        for (lineNumber, line) in lines {
            do {
                examples.append(try readExample(line, lineNumber: lineNumber))
            } catch let problem as LineProblem {
                throw EvaluationError.invalidLine(file: path, line: lineNumber, problem: problem.message)
            }
        }
        guard !examples.isEmpty else { throw EvaluationError.noExamples(file: path) }
        return TaskFile(path: path, examples: examples)
    }

    static let format = #"a line is {"context": str, "choices": [str], "gold": int}"#

    /// The example one line holds.
    static func readExample(_ line: ArraySlice<UInt8>, lineNumber: Int) throws -> MultipleChoiceExample {
        let object = try TemplateValue.jsonObject(line: line, format: format)
        let known: Set<String> = ["context", "choices", "gold"]
        if let unknown = object.keys.first(where: { !known.contains($0) }) {
            throw LineProblem("unexpected key \"\(unknown)\" (\(format))")
        }
        for key in ["context", "choices", "gold"] where object[key] == nil {
            throw LineProblem("no \"\(key)\" (\(format))")
        }
        guard case let .string(context)? = object["context"] else {
            throw LineProblem("\"context\" must be a string, not \((object["context"] ?? .none).jsonKind)")
        }
        guard case let .array(list)? = object["choices"] else {
            throw LineProblem("\"choices\" must be an array of strings, not \((object["choices"] ?? .none).jsonKind)")
        }
        guard !list.isEmpty else { throw LineProblem("\"choices\" is empty") }
        let choices = try list.enumerated().map { i, value -> String in
            guard case let .string(choice) = value else {
                throw LineProblem("\"choices\"[\(i)] must be a string, not \(value.jsonKind)")
            }
            guard !choice.isEmpty else { throw LineProblem("\"choices\"[\(i)] is empty") }
            return choice
        }
        if case let .double(number)? = object["gold"] {
            throw LineProblem("\"gold\" must be an integer, not \(number)")
        }
        guard case let .int(gold)? = object["gold"] else {
            throw LineProblem("\"gold\" must be an integer, not \((object["gold"] ?? .none).jsonKind)")
        }
        guard gold >= 0 && gold < choices.count else {
            throw LineProblem("\"gold\" is \(gold), outside the \(choices.count) choices (0...\(choices.count - 1))")
        }
        return MultipleChoiceExample(context: context, choices: choices, gold: gold, line: lineNumber)
    }
}
