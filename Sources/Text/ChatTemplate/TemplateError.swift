import Foundation

/// A position in a template's source: 1-based line and column, the column counted in Unicode scalars (what Python
/// calls characters). Lines are counted after Jinja2's newline normalisation (`\r\n` and `\r` count as one line
/// break each), so they agree with the line numbers in Jinja2's own messages.
public struct TemplateLocation: Sendable, Equatable, CustomStringConvertible {
    public var line: Int
    public var column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    public var description: String { "line \(line), column \(column)" }
}

/// What can go wrong while parsing or rendering a chat template. Every case carries where in the template it
/// happened; `errorDescription` is one line that starts with that position.
///
/// The split mirrors Jinja2's exception classes, so a caller can tell a broken template (`syntax`), a template
/// that is fine for Jinja2 but uses something this interpreter leaves out (`unsupported`), and a template that
/// deliberately refused the conversation (`raised`, from `raise_exception(...)`: the chat templates of Llama-2,
/// Mistral and others reject conversations whose roles do not alternate this way).
public enum TemplateError: Error, LocalizedError, Equatable {
    /// The source is not a valid template (Jinja2's `TemplateSyntaxError`).
    case syntax(String, at: TemplateLocation)
    /// A construct Jinja2 accepts but this interpreter does not implement. The message names the construct.
    case unsupported(String, at: TemplateLocation)
    /// The template called `raise_exception(message)`; the message is the template's own, unchanged.
    case raised(String, at: TemplateLocation)
    /// An undefined value was used in a way Jinja2's default `Undefined` refuses (called, compared, added…), or
    /// an attribute was read from one (Jinja2's `UndefinedError`; the message is Jinja2's).
    case undefined(String, at: TemplateLocation)
    /// An operation was applied to values of the wrong type (Python's `TypeError`); the message names it.
    case type(String, at: TemplateLocation)
    /// Any other failure while rendering: division by zero, a bad argument, an index out of range, an
    /// operation the sandbox forbids (list.append…).
    case runtime(String, at: TemplateLocation)

    /// The message without its position: for `raised`, exactly the string the template passed.
    public var message: String {
        switch self {
        case let .syntax(m, _), let .unsupported(m, _), let .raised(m, _), let .undefined(m, _), let .type(m, _),
             let .runtime(m, _):
            return m
        }
    }

    public var location: TemplateLocation {
        switch self {
        case let .syntax(_, l), let .unsupported(_, l), let .raised(_, l), let .undefined(_, l), let .type(_, l),
             let .runtime(_, l):
            return l
        }
    }

    public var errorDescription: String? {
        switch self {
        case let .syntax(m, l): return "chat template \(l): syntax error: \(m)"
        case let .unsupported(m, l): return "chat template \(l): not supported: \(m)"
        case let .raised(m, l): return "chat template \(l): raised: \(m)"
        case let .undefined(m, l): return "chat template \(l): undefined: \(m)"
        case let .type(m, l): return "chat template \(l): type error: \(m)"
        case let .runtime(m, l): return "chat template \(l): \(m)"
        }
    }
}

/// An error raised inside a value operation that does not know where in the template it is. The evaluator
/// catches it at the nearest expression node and turns it into a `TemplateError` carrying that node's location,
/// so the many small helpers (arithmetic, filters, string methods) need not thread positions through.
enum ValueError: Error {
    case type(String)
    case undefined(String)
    case runtime(String)
    case unsupported(String)
    case raised(String)

    func at(_ location: TemplateLocation) -> TemplateError {
        switch self {
        case let .type(m): return .type(m, at: location)
        case let .undefined(m): return .undefined(m, at: location)
        case let .runtime(m): return .runtime(m, at: location)
        case let .unsupported(m): return .unsupported(m, at: location)
        case let .raised(m): return .raised(m, at: location)
        }
    }
}
