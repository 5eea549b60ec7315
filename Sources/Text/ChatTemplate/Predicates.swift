import Foundation

/// Jinja2's tests (`value is defined`, `x is divisibleby 3`, `a is equalto b`), with `jinja2/tests.py`'s
/// definitions applied to Python's view of each value: `true is number` holds (bool is an int), `{} is sequence`
/// holds (a dict has `len` and `[]`), an undefined value `is iterable` (it iterates as empty).
enum Predicates {
    /// Every test Jinja2 3.1 defines (`jinja2.tests.TESTS`), for the compile-time "No test named" check.
    static let jinjaNames: Set<String> = [
        "odd", "even", "divisibleby", "defined", "undefined", "filter", "test", "none", "boolean", "false", "true",
        "integer", "float", "lower", "upper", "string", "mapping", "number", "sequence", "iterable", "callable",
        "sameas", "escaped", "in", "==", "eq", "equalto", "!=", "ne", ">", "gt", "greaterthan", "ge", ">=", "<",
        "lt", "lessthan", "<=", "le",
    ]
}

extension Evaluator {
    func applyTest(_ name: String, to value: Value, _ arguments: CallArguments) throws -> Bool {
        func argument(_ parameter: String) throws -> Value {
            try arguments.bind(name, [parameter], required: 1)[0]!
        }
        func noArguments() throws { try arguments.bindNone(name) }
        switch name {
        case "defined": try noArguments(); return !value.isUndefined
        case "undefined": try noArguments(); return value.isUndefined
        case "none":
            try noArguments()
            if case .none = value { return true }
            return false
        case "boolean":
            try noArguments()
            if case .bool = value { return true }
            return false
        case "true", "false":
            try noArguments()
            if case let .bool(b) = value { return b == (name == "true") }
            return false
        case "integer":
            try noArguments()
            if case .int = value { return true }
            return false
        case "float":
            try noArguments()
            if case .double = value { return true }
            return false
        case "number":
            try noArguments()
            return value.number != nil
        case "string":
            try noArguments()
            switch value {
            case .string, .markup: return true
            default: return false
            }
        case "mapping":
            try noArguments()
            if case .dict = value { return true }
            return false
        case "iterable":
            try noArguments()
            switch value {
            case .undefined, .string, .markup, .list, .tuple, .dict, .view, .iterator, .loop: return true
            default: return false
            }
        case "sequence":
            // Has both `len()` and `[]`.
            try noArguments()
            switch value {
            case .undefined, .string, .markup, .list, .tuple, .dict: return true
            case let .view(v): if case .range = v.kind { return true } else { return false }
            default: return false
            }
        case "callable":
            try noArguments()
            switch value {
            case .function, .undefined, .loop: return true
            default: return false
            }
        case "odd", "even":
            try noArguments()
            let remainder = try Operators.apply(.modulo, value, .int(2))
            return try remainder.pythonEquals(.int(name == "odd" ? 1 : 0))
        case "divisibleby":
            let remainder = try Operators.apply(.modulo, value, try argument("num"))
            return try remainder.pythonEquals(.int(0))
        case "lower", "upper":
            try noArguments()
            let text = try value.str()
            return name == "lower" ? pythonIsLower(text) : pythonIsUpper(text)
        case "in":
            return try argument("seq").contains(value)
        case "==", "eq", "equalto": return try Operators.compare(.equal, value, try argument("b"))
        case "!=", "ne": return try Operators.compare(.notEqual, value, try argument("b"))
        case ">", "gt", "greaterthan": return try Operators.compare(.greater, value, try argument("b"))
        case ">=", "ge": return try Operators.compare(.greaterEqual, value, try argument("b"))
        case "<", "lt", "lessthan": return try Operators.compare(.less, value, try argument("b"))
        case "<=", "le": return try Operators.compare(.lessEqual, value, try argument("b"))
        case "sameas":
            return try sameAs(value, try argument("other"))
        case "escaped":
            try noArguments()
            if case .markup = value { return true }
            return false
        case "filter":
            try noArguments()
            if case let .string(s) = value { return Filters.jinjaNames.contains(s) }
            return false
        case "test":
            try noArguments()
            if case let .string(s) = value { return Predicates.jinjaNames.contains(s) }
            return false
        default:
            if Predicates.jinjaNames.contains(name) { throw ValueError.unsupported("the '\(name)' test") }
            throw ValueError.runtime("No test named '\(name)' found.")
        }
    }

    /// Python's `is`: decidable here for singletons, CPython's cached small integers and reference objects.
    private func sameAs(_ a: Value, _ b: Value) throws -> Bool {
        switch (a, b) {
        case (.none, .none): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.int(x), .int(y)) where (-5...256).contains(x): return x == y
        case let (.namespace(x), .namespace(y)): return x === y
        case let (.loop(x), .loop(y)): return x === y
        case let (.iterator(x), .iterator(y)): return x === y
        case (.none, _), (_, .none), (.bool, _), (_, .bool): return false
        default:
            throw ValueError.unsupported("'sameas' on \(a.typeName) and \(b.typeName) values (object identity is not modelled)")
        }
    }
}
