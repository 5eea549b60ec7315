import Foundation

// The syntax tree a template parses to. Its shapes follow Jinja2's `nodes.py` (Output, If, For, Assign,
// AssignBlock, Macro, FilterBlock, With; Const, Name, Getattr, Getitem, Slice, Call, Filter, Test, CondExpr,
// Compare, Concat, And/Or/Not and the arithmetic nodes), so that the evaluator can mirror the code Jinja2's
// compiler generates for each. Every node carries the location of the token it started at, for error messages.

// MARK: - Expressions

/// A literal (Jinja2's `Const`).
enum Constant: Sendable, Equatable {
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
}

enum UnaryOperator: String, Sendable {
    case negate = "-", plus = "+", not
}

enum BinaryOperator: String, Sendable {
    case add = "+", subtract = "-", multiply = "*", divide = "/", floorDivide = "//", modulo = "%", power = "**"
}

enum CompareOperator: String, Sendable {
    case equal = "==", notEqual = "!=", less = "<", lessEqual = "<=", greater = ">", greaterEqual = ">="
    case isIn = "in", notIn = "not in"
}

/// The arguments of a call, filter or test: `f(a, b, key=c, *rest, **options)`.
struct Arguments: Sendable {
    var positional: [Expr] = []
    var keyword: [(name: String, value: Expr)] = []
    var star: Expr?
    var doubleStar: Expr?

    static let none = Arguments()
}

struct Expr: Sendable {
    let kind: Kind
    let location: TemplateLocation

    indirect enum Kind: Sendable {
        case constant(Constant)
        case name(String)
        case list([Expr])
        case tuple([Expr])
        case dict([(key: Expr, value: Expr)])
        /// `object.name`: attribute first, then item (Jinja2's `Environment.getattr`).
        case getattr(Expr, String)
        /// `object[key]`: item first, then attribute (Jinja2's `Environment.getitem`).
        case getitem(Expr, Expr)
        /// `start:stop:step`, only inside a subscript.
        case slice(start: Expr?, stop: Expr?, step: Expr?)
        case call(Expr, Arguments)
        /// `value|name(args)`.
        case filter(Expr, name: String, Arguments)
        /// `value is name(args)`; `is not` parses as `not (value is name)`, as in Jinja2.
        case test(Expr, name: String, Arguments)
        case unary(UnaryOperator, Expr)
        case binary(BinaryOperator, Expr, Expr)
        /// `a ~ b ~ c`: string conversion and concatenation of all operands.
        case concat([Expr])
        /// `a < b < c`: chained like Python's, each operand evaluated once.
        case compare(Expr, [(op: CompareOperator, operand: Expr)])
        case and(Expr, Expr)
        case or(Expr, Expr)
        /// `then if test else otherwise`; without `else`, an undefined value (Jinja2's `CondExpr`).
        case conditional(test: Expr, then: Expr, otherwise: Expr?)
    }
}

/// One filter of a chain applied to a block's output: `{% filter upper %}`, `{% set x | trim %}`.
struct FilterCall: Sendable {
    let name: String
    let arguments: Arguments
    let location: TemplateLocation
}

// MARK: - Statements

/// Where `set`, `for` and `with` store values.
indirect enum AssignTarget: Sendable {
    case name(String)
    /// `a, b` (unpacking).
    case tuple([AssignTarget])
    /// `ns.attribute` (Jinja2's `NSRef`): only valid on a `namespace()` object.
    case namespaceAttribute(String, String)
}

struct ForLoop: Sendable {
    let target: AssignTarget
    let iterable: Expr
    /// `for x in xs if condition`: items failing it are skipped before the loop sees them, so `loop.length` and
    /// `loop.last` count only the kept items, as in Jinja2.
    let condition: Expr?
    let body: [Node]
    /// Rendered when the loop ran zero times.
    let otherwise: [Node]
    let recursive: Bool
}

struct MacroDefinition: Sendable {
    let name: String
    let parameters: [String]
    /// The default expressions of the last `defaults.count` parameters.
    let defaults: [Expr]
    let body: [Node]
    /// Whether the body mentions `varargs` / `kwargs`: only then does Jinja2 accept extra arguments.
    let usesVarargs: Bool
    let usesKwargs: Bool
}

struct Node: Sendable {
    let kind: Kind
    let location: TemplateLocation

    indirect enum Kind: Sendable {
        /// Literal template text.
        case text(String)
        /// `{{ expression }}` (and `{% print expression %}`).
        case output(Expr)
        /// `if` with its `elif` branches in order, then `else`.
        case ifChain(branches: [(test: Expr, body: [Node])], otherwise: [Node])
        case forLoop(ForLoop)
        case set(AssignTarget, Expr)
        /// `{% set x %}…{% endset %}`, optionally with filters applied to the captured text.
        case setBlock(AssignTarget, filters: [FilterCall], body: [Node])
        case macro(MacroDefinition)
        case filterBlock([FilterCall], body: [Node])
        case with([(target: AssignTarget, value: Expr)], body: [Node])
        case breakLoop
        case continueLoop
        /// `{% generation %}…{% endgeneration %}`: transformers' AssistantTracker extension, which only records
        /// where the assistant's text is; rendering is the body's.
        case generation([Node])
    }
}
