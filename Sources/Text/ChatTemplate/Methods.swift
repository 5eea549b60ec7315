import Foundation

/// The Python methods of strings, lists, tuples and dicts that templates call (`content.strip()`,
/// `message.get('tool_calls')`, `tools.items()`…). Attribute lookup returns a bound method for every name Python
/// has; the ones not implemented here fail by name when called. The list and dict methods that mutate are
/// refused as transformers' ImmutableSandboxedEnvironment refuses them.
enum Methods {
    static let stringMethods: Set<String> = [
        "capitalize", "casefold", "center", "count", "encode", "endswith", "expandtabs", "find", "format",
        "format_map", "index", "isalnum", "isalpha", "isascii", "isdecimal", "isdigit", "isidentifier", "islower",
        "isnumeric", "isprintable", "isspace", "istitle", "isupper", "join", "ljust", "lower", "lstrip",
        "maketrans", "partition", "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rjust",
        "rpartition", "rsplit", "rstrip", "split", "splitlines", "startswith", "strip", "swapcase", "title",
        "translate", "upper", "zfill",
    ]
    static let listMethods: Set<String> = ["append", "clear", "copy", "count", "extend", "index", "insert", "pop",
                                           "remove", "reverse", "sort"]
    static let tupleMethods: Set<String> = ["count", "index"]
    static let dictMethods: Set<String> = ["clear", "copy", "fromkeys", "get", "items", "keys", "pop", "popitem",
                                           "setdefault", "update", "values"]
    static let numberAttributes: Set<String> = ["real", "imag", "conjugate", "bit_length", "bit_count", "to_bytes",
                                                "as_integer_ratio", "is_integer", "hex", "numerator", "denominator"]
    /// jinja2.sandbox's `_mutable_spec` for lists and dicts.
    static let mutating: Set<String> = ["append", "clear", "extend", "insert", "pop", "remove", "reverse", "sort",
                                        "popitem", "setdefault", "update"]

    /// The bound method `object.name`, if Python has one (or the sandbox's refusal), else nil.
    static func lookup(_ object: Value, _ name: String) throws -> Value? {
        let known: Bool
        switch object {
        case .string: known = stringMethods.contains(name)
        case .list: known = listMethods.contains(name)
        case .tuple: known = tupleMethods.contains(name)
        case .dict: known = dictMethods.contains(name)
        case .int, .bool, .double: known = numberAttributes.contains(name)
        default: known = false
        }
        guard known else { return nil }
        switch object {
        case .list, .dict:
            if mutating.contains(name) {
                return .undefined(Undefined(message: "access to attribute \(pythonRepr(name)) of \(pythonRepr(object.typeName)) object is unsafe.",
                                            security: true))
            }
        default:
            break
        }
        return .function(Function(kind: .method(receiver: object, name: name)))
    }

    static func call(_ receiver: Value, _ name: String, _ a: CallArguments, evaluator: Evaluator) throws -> Value {
        switch receiver {
        case let .string(s): return try callString(s, name, a, evaluator: evaluator)
        case let .list(items), let .tuple(items): return try callSequence(receiver, items, name, a)
        case let .dict(d): return try callDict(d, name, a)
        default: throw ValueError.unsupported("the method '\(name)' of '\(receiver.typeName)'")
        }
    }

    // MARK: - str

    private static func callString(_ s: String, _ name: String, _ a: CallArguments, evaluator: Evaluator) throws -> Value {
        let f = "str.\(name)"
        func charsArgument() throws -> String? {
            try a.bind(f, ["chars"])[0]?.asOptionalString("\(f) arg")
        }
        switch name {
        case "strip": return .string(pythonStrip(s, try charsArgument()))
        case "lstrip": return .string(pythonStrip(s, try charsArgument(), right: false))
        case "rstrip": return .string(pythonStrip(s, try charsArgument(), left: false))
        case "upper": try a.bindNone(f); return .string(pythonUpper(s))
        case "lower": try a.bindNone(f); return .string(pythonLower(s))
        case "title": try a.bindNone(f); return .string(pythonTitle(s))
        case "capitalize": try a.bindNone(f); return .string(pythonCapitalize(s))
        case "swapcase": try a.bindNone(f); return .string(pythonSwapCase(s))
        case "split", "rsplit":
            let args = try a.bind(f, ["sep", "maxsplit"])
            let separator = try args[0]?.asOptionalString("\(f)() sep")
            let maxSplit = try args[1]?.asInt("\(f)() maxsplit") ?? -1
            let parts = name == "split" ? try pythonSplit(s, separator, maxSplit: maxSplit)
                                        : try pythonRSplit(s, separator, maxSplit: maxSplit)
            return .list(parts.map(Value.string))
        case "splitlines":
            let keepEnds = try a.bind(f, ["keepends"])[0]?.isTruthy ?? false
            return .list(pythonSplitLines(s, keepEnds: keepEnds).map(Value.string))
        case "startswith", "endswith":
            let args = try a.bind(f, ["prefix", "start", "end"], required: 1)
            let scalars = s.scalars
            let start = pythonClampIndex(try args[1].orNone?.asInt("slice indices"), count: scalars.count, default: 0)
            let end = pythonClampIndex(try args[2].orNone?.asInt("slice indices"), count: scalars.count, default: scalars.count)
            let candidates: [Value]
            if case let .tuple(items) = args[0]! { candidates = items } else { candidates = [args[0]!] }
            for candidate in candidates {
                guard case let .string(p) = candidate else {
                    throw ValueError.type("\(name) first arg must be str or a tuple of str, not \(candidate.typeName)")
                }
                let affix = p.scalars
                guard end - start >= affix.count else { continue }
                let slice = name == "startswith" ? scalars[start..<(start + affix.count)] : scalars[(end - affix.count)..<end]
                if slice.elementsEqual(affix) { return .bool(true) }
            }
            return .bool(false)
        case "replace":
            let args = try a.bind(f, ["old", "new", "count"], required: 2)
            return .string(pythonReplace(s, try args[0]!.asString("replace() argument 1"),
                                         try args[1]!.asString("replace() argument 2"),
                                         count: try args[2]?.asInt("replace() count") ?? -1))
        case "find", "rfind", "index", "rindex", "count":
            let args = try a.bind(f, ["sub", "start", "end"], required: 1)
            let scalars = s.scalars
            let sub = try args[0]!.asString("\(f)() argument").scalars
            let start = pythonClampIndex(try args[1].orNone?.asInt("slice indices"), count: scalars.count, default: 0)
            let end = pythonClampIndex(try args[2].orNone?.asInt("slice indices"), count: scalars.count, default: scalars.count)
            if name == "count" { return .int(pythonCount(scalars, sub, start: start, end: end)) }
            let found = name.hasPrefix("r") ? pythonRFind(scalars, sub, start: start, end: end)
                                            : pythonFind(scalars, sub, start: start, end: end)
            if let found { return .int(found) }
            if name.hasSuffix("index") { throw ValueError.runtime("substring not found") }
            return .int(-1)
        case "join":
            let iterable = try a.bind(f, ["iterable"], required: 1)[0]!
            var parts: [String] = []
            for (i, item) in try iterable.iterate().enumerated() {
                guard case let .string(text) = item else {
                    throw ValueError.type("sequence item \(i): expected str instance, \(item.typeName) found")
                }
                parts.append(text)
            }
            return .string(parts.joined(separator: s))
        case "center", "ljust", "rjust":
            let args = try a.bind(f, ["width", "fillchar"], required: 1)
            let width = try checkedSize(try args[0]!.asInt("\(f)() width"), "a padded string")
            var fill: Unicode.Scalar = " "
            if let given = args[1] {
                let text = try given.asString("\(f)() fillchar")
                guard text.unicodeScalars.count == 1 else {
                    throw ValueError.type("The fill character must be exactly one character long")
                }
                fill = text.unicodeScalars.first!
            }
            let padding = Swift.max(0, width - s.unicodeScalars.count)
            let pad = { (n: Int) in String(repeating: String(fill), count: n) }
            switch name {
            case "center": return .string(pythonCenter(s, width, fill: fill))
            case "ljust": return .string(s + pad(padding))
            default: return .string(pad(padding) + s)
            }
        case "zfill":
            let width = try checkedSize(try a.bind(f, ["width"], required: 1)[0]!.asInt("zfill() width"), "a padded string")
            let scalars = s.scalars
            let padding = width - scalars.count
            guard padding > 0 else { return .string(s) }
            if let first = scalars.first, first == "+" || first == "-" {
                return .string(String(first) + String(repeating: "0", count: padding) + String(scalars: scalars.dropFirst()))
            }
            return .string(String(repeating: "0", count: padding) + s)
        case "partition", "rpartition":
            let separator = try a.bind(f, ["sep"], required: 1)[0]!.asString("\(f)() sep")
            guard !separator.isEmpty else { throw ValueError.runtime("empty separator") }
            let scalars = s.scalars, sep = separator.scalars
            let found = name == "partition" ? pythonFind(scalars, sep) : pythonRFind(scalars, sep)
            guard let found else {
                return .tuple(name == "partition" ? [.string(s), .emptyString, .emptyString] : [.emptyString, .emptyString, .string(s)])
            }
            return .tuple([.string(String(scalars: scalars[..<found])), .string(separator),
                           .string(String(scalars: scalars[(found + sep.count)...]))])
        case "removeprefix", "removesuffix":
            let affix = try a.bind(f, ["affix"], required: 1)[0]!.asString("\(f)() argument").scalars
            let scalars = s.scalars
            if name == "removeprefix", scalars.starts(with: affix) { return .string(String(scalars: scalars.dropFirst(affix.count))) }
            if name == "removesuffix", !affix.isEmpty, scalars.reversed().starts(with: affix.reversed()) {
                return .string(String(scalars: scalars.dropLast(affix.count)))
            }
            return .string(s)
        case "format":
            return .string(try BraceFormat.format(s, a, evaluator: evaluator))
        case "isalnum", "isalpha", "isascii", "isdecimal", "isdigit", "isnumeric", "isspace", "islower", "isupper":
            try a.bindNone(f)
            return .bool(stringPredicate(s, name))
        default:
            throw ValueError.unsupported("the string method '\(name)'")
        }
    }

    private static func stringPredicate(_ s: String, _ name: String) -> Bool {
        let scalars = s.unicodeScalars
        switch name {
        case "isascii": return scalars.allSatisfy { $0.isASCII }
        case "islower": return pythonIsLower(s)
        case "isupper": return pythonIsUpper(s)
        default: break
        }
        guard !scalars.isEmpty else { return false }
        func isAlpha(_ u: Unicode.Scalar) -> Bool {
            switch u.properties.generalCategory {
            case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
            default: return false
            }
        }
        func isDecimal(_ u: Unicode.Scalar) -> Bool { u.properties.numericType == .decimal }
        func isDigit(_ u: Unicode.Scalar) -> Bool { isDecimal(u) || u.properties.numericType == .digit }
        func isNumeric(_ u: Unicode.Scalar) -> Bool { u.properties.numericType != nil }
        switch name {
        case "isalpha": return scalars.allSatisfy(isAlpha)
        case "isdecimal": return scalars.allSatisfy(isDecimal)
        case "isdigit": return scalars.allSatisfy(isDigit)
        case "isnumeric": return scalars.allSatisfy(isNumeric)
        case "isspace": return scalars.allSatisfy { $0.isPythonWhitespace }
        default: return scalars.allSatisfy { isAlpha($0) || isNumeric($0) }  // isalnum
        }
    }

    // MARK: - list and tuple

    private static func callSequence(_ receiver: Value, _ items: [Value], _ name: String, _ a: CallArguments) throws -> Value {
        let f = "\(receiver.typeName).\(name)"
        switch name {
        case "copy":
            try a.bindNone(f)
            return receiver
        case "count":
            let x = try a.bind(f, ["value"], required: 1)[0]!
            return .int(try items.filter { try $0.pythonEquals(x) }.count)
        case "index":
            let args = try a.bind(f, ["value", "start", "stop"], required: 1)
            let start = pythonClampIndex(try args[1]?.asInt("slice indices"), count: items.count, default: 0)
            let stop = pythonClampIndex(try args[2]?.asInt("slice indices"), count: items.count, default: items.count)
            if start < stop {
                for i in start..<stop where try items[i].pythonEquals(args[0]!) { return .int(i) }
            }
            throw ValueError.runtime("\(try args[0]!.repr()) is not in \(receiver.typeName)")
        default:
            throw ValueError.unsupported("the \(receiver.typeName) method '\(name)'")
        }
    }

    // MARK: - dict

    private static func callDict(_ d: Dict, _ name: String, _ a: CallArguments) throws -> Value {
        let f = "dict.\(name)"
        switch name {
        case "get":
            let args = try a.bind(f, ["key", "default"], required: 1)
            return try d.get(args[0]!) ?? args[1] ?? .none
        case "items":
            try a.bindNone(f)
            return .view(View(kind: .items, items: d.pairs.map { .tuple([$0.key, $0.value]) }))
        case "keys":
            try a.bindNone(f)
            return .view(View(kind: .keys, items: d.keys))
        case "values":
            try a.bindNone(f)
            return .view(View(kind: .values, items: d.values))
        case "copy":
            try a.bindNone(f)
            return .dict(d)
        default:
            throw ValueError.unsupported("the dict method '\(name)'")
        }
    }
}
