import Foundation

/// The functions every template can call: Jinja2's defaults (`range`, `dict`, `namespace`, `cycler`, `joiner`)
/// and the two transformers adds (`raise_exception`, `strftime_now`). Variables passed to `render` shadow them,
/// as in Jinja2, where the render context is searched before the environment's globals.
enum Globals {
    static let names: Set<String> = ["range", "dict", "namespace", "cycler", "joiner", "lipsum", "raise_exception",
                                     "strftime_now"]

    static func value(named name: String) -> Value? {
        names.contains(name) ? .function(Function(kind: .global(name))) : nil
    }

    /// The sandbox's limit on `range()` (jinja2.sandbox.MAX_RANGE).
    static let maxRange = 100_000

    static func call(_ name: String, _ arguments: CallArguments, evaluator: Evaluator) throws -> Value {
        switch name {
        case "range":
            return try range(arguments)
        case "dict":
            // transformers' TemplateDict: dict(mapping or pairs, **kwargs).
            guard arguments.positional.count <= 1 else {
                throw ValueError.type("dict expected at most 1 argument, got \(arguments.positional.count)")
            }
            var d = try arguments.positional.first.map(dictFrom) ?? Dict()
            for (k, v) in arguments.keyword { try d.set(.string(k), v) }
            return .dict(d)
        case "dict.fromkeys":
            let args = try arguments.bind("fromkeys", ["iterable", "value"], required: 1)
            var d = Dict()
            for key in try args[0]!.iterate() { try d.set(key, args[1] ?? .none) }
            return .dict(d)
        case "namespace":
            // Jinja2's Namespace(*args, **kwargs) is dict(*args, **kwargs) kept as attributes.
            let namespace = Namespace()
            guard arguments.positional.count <= 1 else {
                throw ValueError.type("dict expected at most 1 argument, got \(arguments.positional.count)")
            }
            var d = try arguments.positional.first.map(dictFrom) ?? Dict()
            for (k, v) in arguments.keyword { try d.set(.string(k), v) }
            for key in d.keys {
                if case let .string(s) = key, s.hasPrefix("_") {
                    throw ValueError.runtime("Chat templates cannot store underscore-prefixed attributes on a namespace, but got \(pythonRepr(s)). Please rename the attribute.")
                }
            }
            namespace.attributes = d
            return .namespace(namespace)
        case "raise_exception":
            // transformers: raise jinja2.exceptions.TemplateError(message).
            let message = try arguments.bind("raise_exception", ["message"], required: 1)[0]!
            throw ValueError.raised(try message.str())
        case "strftime_now":
            let format = try arguments.bind("strftime_now", ["format"], required: 1)[0]!
            return .string(try Strftime.format(try format.asString("strftime_now() format"), evaluator.now))
        case "cycler":
            guard !arguments.positional.isEmpty else { throw ValueError.runtime("at least one item has to be provided") }
            return .function(Function(kind: .cyclerNext(Cycler(items: arguments.positional))))
        case "joiner":
            let separator = try arguments.bind("joiner", ["sep"])[0] ?? .string(", ")
            return .function(Function(kind: .joiner(Joiner(separator: try separator.str()))))
        default:
            throw ValueError.unsupported("the '\(name)' function")
        }
    }

    private static func range(_ arguments: CallArguments) throws -> Value {
        guard arguments.keyword.isEmpty else { throw ValueError.type("range() takes no keyword arguments") }
        let ints = try arguments.positional.map { v -> Int in
            switch v {
            case let .int(i): return i
            case let .bool(b): return b ? 1 : 0
            case let .undefined(u): throw u.error
            default: throw ValueError.type("'\(v.typeName)' object cannot be interpreted as an integer")
            }
        }
        let start: Int, stop: Int, step: Int
        switch ints.count {
        case 1: (start, stop, step) = (0, ints[0], 1)
        case 2: (start, stop, step) = (ints[0], ints[1], 1)
        case 3: (start, stop, step) = (ints[0], ints[1], ints[2])
        case 0: throw ValueError.type("range expected at least 1 argument, got 0")
        default: throw ValueError.type("range expected at most 3 arguments, got \(ints.count)")
        }
        guard step != 0 else { throw ValueError.runtime("range() arg 3 must not be zero") }
        // The length, computed without overflow: a span that does not fit in Int is certainly too big.
        let (span, overflow) = step > 0 ? stop.subtractingReportingOverflow(start) : start.subtractingReportingOverflow(stop)
        let count = overflow ? Int.max : (span <= 0 ? 0 : (span - 1) / step.magnitude.clampedToInt + 1)
        guard count <= maxRange else {
            throw ValueError.runtime("Range too big. The sandbox blocks ranges larger than MAX_RANGE (\(maxRange)).")
        }
        let items = (0..<count).map { Value.int(start + $0 * step) }
        return .view(View(kind: .range(start: start, stop: stop, step: step), items: items))
    }

    /// `dict(x)`: a copy of a mapping, or a dict built from key/value pairs.
    static func dictFrom(_ v: Value) throws -> Dict {
        if case let .dict(d) = v { return d }
        if case let .namespace(n) = v { return n.attributes }
        var d = Dict()
        for (i, pair) in try v.iterate().enumerated() {
            let items = try pair.iterate()
            guard items.count == 2 else {
                throw ValueError.runtime("dictionary update sequence element #\(i) has length \(items.count); 2 is required")
            }
            try d.set(items[0], items[1])
        }
        return d
    }
}

private extension UInt {
    var clampedToInt: Int { self > UInt(Int.max) ? Int.max : Int(self) }
}
