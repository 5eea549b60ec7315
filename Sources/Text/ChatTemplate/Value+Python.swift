import Foundation

// Python's semantics for the values a template holds: type names, truthiness, `==` and `<`, `str()` and
// `repr()`, iteration and `len()`. Jinja2 delegates all of these to Python, so templates see exactly these rules.

extension Value {
    /// `type(value).__name__`, as Python's error messages spell it.
    var typeName: String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .markup: return "Markup"
        case .list: return "list"
        case .tuple: return "tuple"
        case .dict: return "dict"
        case let .view(v): return v.typeName
        case let .iterator(i): return i.typeName
        case .namespace: return "Namespace"
        case .loop: return "LoopContext"
        case let .function(f):
            if case .macro = f.kind { return "Macro" }
            return "builtin_function_or_method"
        }
    }

    /// Jinja2's `object_type_repr`, used in "has no attribute" messages: `dict object`, `None`…
    var objectTypeRepr: String {
        switch self {
        case .none: return "None"
        case .namespace: return "jinja2.utils.Namespace object"
        case .loop: return "jinja2.runtime.LoopContext object"
        case .undefined: return "jinja2.runtime.Undefined object"
        case .markup: return "markupsafe.Markup object"
        default: return "\(typeName) object"
        }
    }

    var isUndefined: Bool {
        if case .undefined = self { return true }
        return false
    }

    /// Raises the undefined value's error when an operation other than printing, testing or iterating touches
    /// it (Jinja2's `_fail_with_undefined_error`).
    func failIfUndefined() throws {
        if case let .undefined(u) = self { throw u.error }
    }

    // MARK: Truthiness

    /// Python's `bool(value)`. Iterators and functions are always true, even when an iterator is empty.
    var isTruthy: Bool {
        switch self {
        case .undefined, .none: return false
        case let .bool(b): return b
        case let .int(i): return i != 0
        case let .double(d): return d != 0
        case let .string(s), let .markup(s): return !s.isEmpty
        case let .list(items), let .tuple(items): return !items.isEmpty
        case let .dict(d): return !d.isEmpty
        case let .view(v): return !v.items.isEmpty
        case let .loop(l): return l.length > 0
        case .iterator, .namespace, .function: return true
        }
    }

    // MARK: Equality and order

    /// The value as a number if it is one (bool counts, as a Python `int` subclass).
    var number: Number? {
        switch self {
        case let .bool(b): return .int(b ? 1 : 0)
        case let .int(i): return .int(i)
        case let .double(d): return .double(d)
        default: return nil
        }
    }

    enum Number {
        case int(Int)
        case double(Double)

        var asDouble: Double {
            switch self {
            case let .int(i): return Double(i)
            case let .double(d): return d
            }
        }
    }

    /// Python's `==`.
    func pythonEquals(_ other: Value) throws -> Bool {
        if let a = number, let b = other.number { return Value.compareNumbers(a, b) == .orderedSame }
        switch (self, other) {
        case (.undefined, .undefined), (.none, .none): return true
        case let (.string(a), .string(b)), let (.markup(a), .markup(b)), let (.string(a), .markup(b)),
             let (.markup(a), .string(b)):
            return a.utf8.elementsEqual(b.utf8)
        case let (.list(a), .list(b)), let (.tuple(a), .tuple(b)):
            guard a.count == b.count else { return false }
            for (x, y) in zip(a, b) where try !x.pythonEquals(y) { return false }
            return true
        case let (.dict(a), .dict(b)):
            guard a.count == b.count else { return false }
            for (k, v) in a.pairs {
                guard let w = try b.get(k), try v.pythonEquals(w) else { return false }
            }
            return true
        case let (.view(a), .view(b)):
            guard a.kind == b.kind || (a.kind != .values && b.kind != .values) else { return false }
            if case .values = a.kind { return false }  // dict_values compare by identity
            return try Value.list(a.items).pythonEquals(.list(b.items))
        case let (.namespace(a), .namespace(b)): return a === b
        case let (.loop(a), .loop(b)): return a === b
        case let (.iterator(a), .iterator(b)): return a === b
        default: return false
        }
    }

    /// Compares two numbers exactly, as Python does for `int` against `float` (no rounding of large ints).
    static func compareNumbers(_ a: Number, _ b: Number) -> ComparisonResult? {
        switch (a, b) {
        case let (.int(x), .int(y)): return x < y ? .orderedAscending : (x > y ? .orderedDescending : .orderedSame)
        case let (.double(x), .double(y)):
            if x.isNaN || y.isNaN { return nil }
            return x < y ? .orderedAscending : (x > y ? .orderedDescending : .orderedSame)
        case let (.int(x), .double(y)):
            return compareNumbers(.double(y), .int(x)).map { $0 == .orderedAscending ? .orderedDescending : ($0 == .orderedDescending ? .orderedAscending : .orderedSame) }
        case let (.double(x), .int(y)):
            if x.isNaN { return nil }
            if x == .infinity { return .orderedDescending }
            if x == -.infinity { return .orderedAscending }
            // Compare the integral parts exactly, then the fraction.
            let whole = x.rounded(.down)
            // Beyond Int's range (±2^63, exactly representable) the double is larger/smaller than any Int.
            if whole >= 9223372036854775808.0 { return .orderedDescending }
            if whole < -9223372036854775808.0 { return .orderedAscending }
            let w = Int(whole)
            if w != y { return w < y ? .orderedAscending : .orderedDescending }
            return x > whole ? .orderedDescending : .orderedSame
        }
    }

    /// Python's `<`, `<=`, `>`, `>=` (which one is given by `symbol`, for the message).
    func pythonCompare(_ other: Value, _ symbol: String) throws -> ComparisonResult? {
        try failIfUndefined()
        try other.failIfUndefined()
        if let a = number, let b = other.number { return Value.compareNumbers(a, b) }
        switch (self.markupAsString, other.markupAsString) {
        case let (.string(a), .string(b)):
            // UTF-8 byte order is code point order, which is Python's string order.
            if a.utf8.elementsEqual(b.utf8) { return .orderedSame }
            return a.utf8.lexicographicallyPrecedes(b.utf8) ? .orderedAscending : .orderedDescending
        case let (.list(a), .list(b)), let (.tuple(a), .tuple(b)):
            for (x, y) in zip(a, b) where try !x.pythonEquals(y) {
                return try x.pythonCompare(y, symbol)
            }
            return a.count < b.count ? .orderedAscending : (a.count > b.count ? .orderedDescending : .orderedSame)
        default:
            throw ValueError.type("'\(symbol)' not supported between instances of '\(typeName)' and '\(other.typeName)'")
        }
    }

    /// Python refuses lists, dicts and dict views as dict keys or set members.
    func checkHashable() throws {
        switch self {
        case .list, .dict: throw ValueError.type("unhashable type: '\(typeName)'")
        case let .view(v):
            if case .range = v.kind { return }
            throw ValueError.type("unhashable type: '\(typeName)'")
        case let .tuple(items): for item in items { try item.checkHashable() }
        default: return
        }
    }

    // MARK: str() and repr()

    /// Python's `str(value)`, which is what `{{ value }}`, `~` and `|string` produce. Values whose Python text
    /// contains a memory address (functions, generators) cannot be reproduced and are refused.
    func str() throws -> String {
        switch self {
        case .undefined: return ""
        case let .string(s), let .markup(s): return s
        default: return try repr()
        }
    }

    /// Python's `repr(value)`: how values print inside a printed list or dict.
    func repr() throws -> String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "None"
        case let .bool(b): return b ? "True" : "False"
        case let .int(i): return String(i)
        case let .double(d): return pythonFloatRepr(d)
        case let .string(s): return pythonRepr(s)
        case let .markup(s): return "Markup(" + pythonRepr(s) + ")"
        case let .list(items): return "[" + (try items.map { try $0.repr() }.joined(separator: ", ")) + "]"
        case let .tuple(items):
            if items.count == 1 { return "(" + (try items[0].repr()) + ",)" }
            return "(" + (try items.map { try $0.repr() }.joined(separator: ", ")) + ")"
        case let .dict(d): return try Value.dictRepr(d)
        case let .view(v):
            switch v.kind {
            case let .range(start, stop, step):
                return step == 1 ? "range(\(start), \(stop))" : "range(\(start), \(stop), \(step))"
            default:
                return "\(v.typeName)(" + (try Value.list(v.items).repr()) + ")"
            }
        case let .namespace(n): return "<Namespace " + (try Value.dictRepr(n.attributes)) + ">"
        case let .loop(l): return "<LoopContext \(l.index0 + 1)/\(l.length)>"
        case let .iterator(i):
            throw ValueError.unsupported("printing a \(i.typeName) object (Python prints its memory address); convert it with |list first")
        case let .function(f):
            if case let .macro(definition, _) = f.kind { return "<Macro \(pythonRepr(definition.name))>" }
            throw ValueError.unsupported("printing a function (\(f.description)); Python prints its memory address")
        }
    }

    private static func dictRepr(_ d: Dict) throws -> String {
        "{" + (try d.pairs.map { try $0.key.repr() + ": " + $0.value.repr() }.joined(separator: ", ")) + "}"
    }

    // MARK: Iteration and length

    /// The items of `for x in value`, `list(value)` and the filters that iterate: list and tuple items, a
    /// string's characters, a dict's keys. Undefined iterates as empty; an iterator is consumed.
    func iterate() throws -> [Value] {
        switch self {
        case .undefined: return []
        case let .list(items), let .tuple(items): return items
        case let .string(s): return s.unicodeScalars.map { .string(String($0)) }
        case let .dict(d): return d.keys
        case let .view(v): return v.items
        case let .iterator(i): return i.drain()
        case .markup:
            throw ValueError.unsupported("iterating over a Markup string (the output of |safe or |escape)")
        case .loop:
            // Python iterates a LoopContext as (item, loop) pairs of the remaining items; nobody does that.
            throw ValueError.unsupported("iterating over a loop object")
        default: throw ValueError.type("'\(typeName)' object is not iterable")
        }
    }

    /// Python's `len(value)` (`|length`, `|count`). Undefined has length 0; iterators have none.
    func length() throws -> Int {
        switch self {
        case .undefined: return 0
        case let .string(s): return s.unicodeScalars.count
        case let .list(items), let .tuple(items): return items.count
        case let .dict(d): return d.count
        case let .view(v): return v.items.count
        case let .namespace(n): return n.attributes.count
        case let .loop(l): return l.length
        case let .markup(s): return s.unicodeScalars.count
        default: throw ValueError.type("object of type '\(typeName)' has no len()")
        }
    }

    /// A Markup string as a plain one, for the operations where the two behave alike.
    var markupAsString: Value {
        if case let .markup(s) = self { return .string(s) }
        return self
    }

    /// Python's `needle in self`.
    func contains(_ needle: Value) throws -> Bool {
        if case .markup = self { return try markupAsString.contains(needle.markupAsString) }
        switch self {
        case let .string(s):
            guard case let .string(n) = needle else {
                if case let .undefined(u) = needle { throw u.error }
                throw ValueError.type("'in <string>' requires string as left operand, not \(needle.typeName)")
            }
            return pythonFind(s, n) != nil
        case let .dict(d):
            return try d.index(of: needle) != nil
        case let .view(v) where v.kind == .keys:
            return try v.items.contains { try $0.pythonEquals(needle) }
        case let .iterator(i):
            while let item = i.nextItem() {
                if try item.pythonEquals(needle) { return true }
            }
            return false
        case .undefined, .list, .tuple, .view:
            return try iterate().contains { try $0.pythonEquals(needle) }
        default:
            throw ValueError.type("argument of type '\(typeName)' is not iterable")
        }
    }
}

extension Undefined {
    var error: ValueError { security ? .runtime(message) : .undefined(message) }
}
