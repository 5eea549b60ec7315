import Foundation

/// The evaluated arguments of a call, filter or test, bound to Python-style parameter lists the way Python binds
/// a `def f(a, b=1, *, c=None)` signature. Filters and methods declare their parameters by name so that both
/// `x|join(", ")` and `x|join(d=", ")` work, and anything Python would reject is rejected with its message.
struct CallArguments {
    var positional: [Value] = []
    var keyword: [(name: String, value: Value)] = []

    /// Binds to `names` (positional-or-keyword parameters, in order); returns one slot per name, nil where the
    /// caller gave nothing. The first `required` names must be given.
    func bind(_ function: String, _ names: [String], required: Int = 0) throws -> [Value?] {
        guard positional.count <= names.count else {
            throw ValueError.type("\(function)() takes at most \(names.count) argument\(names.count == 1 ? "" : "s") (\(positional.count) given)")
        }
        var slots = [Value?](repeating: nil, count: names.count)
        for (i, v) in positional.enumerated() { slots[i] = v }
        for (name, value) in keyword {
            guard let i = names.firstIndex(of: name) else {
                throw ValueError.type("\(function)() got an unexpected keyword argument '\(name)'")
            }
            guard slots[i] == nil else {
                throw ValueError.type("\(function)() got multiple values for argument '\(name)'")
            }
            slots[i] = value
        }
        for i in 0..<required where slots[i] == nil {
            throw ValueError.type("\(function)() missing required argument '\(names[i])'")
        }
        return slots
    }

    /// For functions that take no arguments.
    func bindNone(_ function: String) throws {
        _ = try bind(function, [])
    }
}

/// The largest string or list a template may build by repetition or padding (`'x' * n`, `center(n)`, `%*s`).
/// Python would try and run out of memory; a template from the Hub must not be able to take the process down.
let maxBuiltSize = 1 << 26

func checkedSize(_ n: Int, _ what: String) throws -> Int {
    guard n <= maxBuiltSize else {
        throw ValueError.unsupported("\(what) of \(n) elements (more than \(maxBuiltSize))")
    }
    return n
}

// MARK: - Argument conversions, with Python's TypeErrors.

extension Value {
    /// An `int` argument (`bool` counts, as in Python).
    func asInt(_ what: String) throws -> Int {
        switch self {
        case let .int(i): return i
        case let .bool(b): return b ? 1 : 0
        case let .undefined(u): throw u.error
        default: throw ValueError.type("\(what) must be an integer, not '\(typeName)'")
        }
    }

    func asString(_ what: String) throws -> String {
        switch self {
        case let .string(s): return s
        case let .undefined(u): throw u.error
        default: throw ValueError.type("\(what) must be str, not \(typeName)")
        }
    }

    /// `None` or a string (the optional `chars`/`sep` of str methods).
    func asOptionalString(_ what: String) throws -> String? {
        if case .none = self { return nil }
        return try asString(what)
    }
}

extension Optional where Wrapped == Value {
    /// A bound optional argument with `None` treated as absent.
    var orNone: Value? {
        if case .some(.none) = self { return nil }
        return self
    }
}
