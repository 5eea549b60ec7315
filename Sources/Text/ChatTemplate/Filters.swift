import Foundation

/// Jinja2's built-in filters (`jinja2/filters.py`), plus transformers' `tojson`. Each follows its Python source:
/// the same parameters (positional or by name), the same conversions (`soft_str` for the text filters, so
/// `{{ 3|upper }}` is "3"), the same results for undefined input, and generators where Jinja2 returns generators
/// (`map`, `select`, `reject`, `unique`, `batch`, `items`).
enum Filters {
    /// Every filter Jinja2 3.1 defines (`jinja2.filters.FILTERS`), for the compile-time "No filter named" check.
    static let jinjaNames: Set<String> = [
        "abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape",
        "filesizeformat", "first", "float", "forceescape", "format", "groupby", "indent", "int", "join", "last",
        "length", "list", "lower", "items", "map", "min", "max", "pprint", "random", "reject", "rejectattr",
        "replace", "reverse", "round", "safe", "select", "selectattr", "slice", "sort", "string", "striptags",
        "sum", "title", "trim", "truncate", "unique", "upper", "urlencode", "urlize", "wordcount", "wordwrap",
        "xmlattr", "tojson",
    ]

    /// The filters that treat a Markup input like a plain string (the others would return Markup, which escapes
    /// what is later added to it: refused, see `Value.markup`).
    static let markupSafe: Set<String> = ["safe", "e", "escape", "forceescape", "string", "length", "count", "default",
                                          "d", "tojson"]

    /// Filters whose output cannot be reproduced (random) or that are not implemented; they fail by name.
    static let unsupported: Set<String> = ["groupby", "pprint", "random", "striptags", "urlencode", "urlize",
                                           "wordwrap", "xmlattr"]

    /// Jinja2's `ignore_case`: strings compare lower-cased unless `case_sensitive`.
    static func ignoreCase(_ v: Value) -> Value {
        if case let .string(s) = v { return .string(pythonLower(s)) }
        return v
    }
}

extension Evaluator {
    func applyFilter(_ name: String, to value: Value, _ a: CallArguments) throws -> Value {
        func bind(_ names: [String], required: Int = 0) throws -> [Value?] {
            try a.bind("\(name) filter", names, required: required)
        }
        /// `soft_str(value)`: the value as text (undefined is "").
        func text() throws -> String { try value.str() }
        if case .markup = value, !Filters.markupSafe.contains(name) {
            throw ValueError.unsupported("the '\(name)' filter on a Markup string (the output of |safe or |escape)")
        }
        switch name {
        // MARK: Text
        case "upper": _ = try bind([]); return .string(pythonUpper(try text()))
        case "lower": _ = try bind([]); return .string(pythonLower(try text()))
        case "capitalize": _ = try bind([]); return .string(pythonCapitalize(try text()))
        case "title": _ = try bind([]); return .string(jinjaTitle(try text()))
        case "trim":
            let chars = try bind(["chars"])[0]?.asOptionalString("trim chars")
            return .string(pythonStrip(try text(), chars))
        case "replace":
            let args = try bind(["old", "new", "count"], required: 2)
            let count = try args[2].orNone?.asInt("replace count") ?? -1
            return .string(pythonReplace(try text(), try args[0]!.str(), try args[1]!.str(), count: count))
        case "center":
            let width = try checkedSize(try bind(["width"])[0]?.asInt("center width") ?? 80, "a padded string")
            return .string(pythonCenter(try text(), width))
        case "indent":
            // Jinja2 does `s += "\n"` without converting: only strings (and undefined, which then fails) work.
            guard case let .string(s) = value else {
                try value.failIfUndefined()
                throw ValueError.type("unsupported operand type(s) for +=: '\(value.typeName)' and 'str'")
            }
            return .string(try indent(s, bind(["width", "first", "blank"])))
        case "truncate":
            return try truncate(value, bind(["length", "killwords", "end", "leeway"]))
        case "wordcount":
            _ = try bind([])
            var count = 0, inWord = false
            for u in try text().unicodeScalars {
                let isWord = u == "_" || u.properties.numericType != nil || u.properties.isAlphabetic
                if isWord && !inWord { count += 1 }
                inWord = isWord
            }
            return .int(count)
        case "string":
            // soft_str keeps Markup as it is.
            _ = try bind([])
            if case .markup = value { return value }
            return .string(try text())
        case "safe": _ = try bind([]); return .markup(try text())
        case "e", "escape", "forceescape":
            _ = try bind([])
            if case .markup = value, name != "forceescape" { return value }  // already escaped
            return .markup(htmlEscape(try text()))
        case "format":
            if !a.positional.isEmpty && !a.keyword.isEmpty {
                throw ValueError.runtime("can't handle positional and keyword arguments at the same time")
            }
            var keywords = Dict()
            for (k, v) in a.keyword { try keywords.set(.string(k), v) }
            let arguments: Value = a.keyword.isEmpty ? .tuple(a.positional) : .dict(keywords)
            return .string(try PercentFormat.format(try text(), arguments))
        case "filesizeformat":
            return .string(try fileSize(value, bind(["binary"])[0]?.isTruthy ?? false))

        // MARK: Conversion
        case "tojson":
            let args = try bind(["ensure_ascii", "indent", "separators", "sort_keys"])
            let encoder = try PythonJSONEncoder(ensureASCII: args[0], indent: args[1], separators: args[2], sortKeys: args[3])
            return .string(try encoder.encode(value))
        case "int":
            let args = try bind(["default", "base"])
            return try toInt(value, default: args[0] ?? .int(0), base: try args[1]?.asInt("int base") ?? 10)
        case "float":
            let fallback = try bind(["default"])[0] ?? .double(0)
            return try toFloat(value) ?? fallback
        case "list": _ = try bind([]); return .list(try value.iterate())
        case "length", "count": _ = try bind([]); return .int(try value.length())
        case "abs":
            _ = try bind([])
            switch value.number {
            case let .int(i)?:
                guard i != .min else { throw ValueError.unsupported("integer overflow in abs") }
                return .int(Swift.abs(i))
            case let .double(d)?: return .double(Swift.abs(d))
            case nil: throw ValueError.type("bad operand type for abs(): '\(value.typeName)'")
            }
        case "round":
            return try round(value, bind(["precision", "method"]))
        case "items":
            _ = try bind([])
            if value.isUndefined { return .iterator(IteratorBox(typeName: "generator", items: [])) }
            guard case let .dict(d) = value else { throw ValueError.type("Can only get item pairs from a mapping.") }
            return .iterator(IteratorBox(typeName: "generator", items: d.pairs.map { .tuple([$0.key, $0.value]) }))
        case "dictsort":
            return try dictSort(value, bind(["case_sensitive", "by", "reverse"]))

        // MARK: Defaults and selection
        case "default", "d":
            let args = try bind(["default_value", "boolean"])
            let boolean = args[1]?.isTruthy ?? false
            if value.isUndefined || (boolean && !value.isTruthy) { return args[0] ?? .emptyString }
            return value
        case "attr":
            let attribute = try bind(["name"], required: 1)[0]!.asString("attribute name")
            if case let .dict(d) = value {
                // Only real attributes (dict methods), never keys.
                return try Methods.lookup(value, attribute) ?? .undefined(.noAttribute(.dict(d), attribute))
            }
            return try getAttribute(value, attribute)
        case "first":
            _ = try bind([])
            if case let .iterator(i) = value {
                return i.nextItem() ?? .undefined(Undefined(message: "No first item, sequence was empty."))
            }
            return try value.iterate().first ?? .undefined(Undefined(message: "No first item, sequence was empty."))
        case "last":
            _ = try bind([])
            if case let .iterator(i) = value { throw ValueError.type("'\(i.typeName)' object is not reversible") }
            return try value.iterate().last ?? .undefined(Undefined(message: "No last item, sequence was empty."))
        case "join":
            let args = try bind(["d", "attribute"])
            var items = try value.iterate()
            if let attribute = args[1].orNone { items = try items.map { try attributeGetter(attribute)($0) } }
            return .string(try items.map { try $0.str() }.joined(separator: try args[0]?.str() ?? ""))
        case "reverse":
            _ = try bind([])
            switch value {
            case let .string(s): return .string(String(scalars: s.scalars.reversed()))
            case .iterator:
                return .list(try value.iterate().reversed())  // not reversible: Jinja2 falls back to a list
            case .list: return .iterator(IteratorBox(typeName: "list_reverseiterator", items: try value.iterate().reversed()))
            default: return .iterator(IteratorBox(typeName: "reversed", items: try value.iterate().reversed()))
            }
        case "sort":
            let args = try bind(["reverse", "case_sensitive", "attribute"])
            let key = try multiAttributeKey(args[2].orNone, caseSensitive: args[1]?.isTruthy ?? false)
            return .list(try sorted(try value.iterate(), key: key, reverse: args[0]?.isTruthy ?? false))
        case "unique":
            let args = try bind(["case_sensitive", "attribute"])
            let getter = try attributeGetter(args[1].orNone)
            let caseSensitive = args[0]?.isTruthy ?? false
            var seen: [Value] = []
            var result: [Value] = []
            for item in try value.iterate() {
                var key = try getter(item)
                if !caseSensitive { key = Filters.ignoreCase(key) }
                try key.checkHashable()
                if try !seen.contains(where: { try $0.pythonEquals(key) }) {
                    seen.append(key)
                    result.append(item)
                }
            }
            return .iterator(IteratorBox(typeName: "generator", items: result))
        case "min", "max":
            let args = try bind(["case_sensitive", "attribute"])
            let items = try value.iterate()
            guard var best = items.first else {
                return .undefined(Undefined(message: "No aggregated item, sequence was empty."))
            }
            let getter = try attributeGetter(args[1].orNone)
            let caseSensitive = args[0]?.isTruthy ?? false
            func key(_ v: Value) throws -> Value {
                let k = try getter(v)
                return caseSensitive ? k : Filters.ignoreCase(k)
            }
            var bestKey = try key(best)
            for item in items.dropFirst() {
                let k = try key(item)
                let better = name == "min" ? try k.pythonCompare(bestKey, "<") == .orderedAscending
                                           : try k.pythonCompare(bestKey, ">") == .orderedDescending
                if better { best = item; bestKey = k }
            }
            return best
        case "sum":
            let args = try bind(["attribute", "start"])
            var total = args[1] ?? .int(0)
            if case .string = total { throw ValueError.type("sum() can't sum strings [use ''.join(seq) instead]") }
            let getter = try attributeGetter(args[0].orNone)
            for item in try value.iterate() { total = try Operators.apply(.add, total, try getter(item)) }
            return total
        case "map":
            return try map(value, a)
        case "select", "reject", "selectattr", "rejectattr":
            return try select(value, a, keep: name.hasPrefix("select"), lookupAttribute: name.hasSuffix("attr"))
        case "batch":
            let args = try bind(["linecount", "fill_with"], required: 1)
            // Jinja2's loop, quirks included (a linecount of 0 yields one empty batch first).
            let size = try args[0]!.asInt("batch linecount")
            var batches: [Value] = []
            var current: [Value] = []
            for item in try value.iterate() {
                if current.count == size { batches.append(.list(current)); current = [] }
                current.append(item)
            }
            if !current.isEmpty {
                if let fill = args[1].orNone, current.count < size {
                    _ = try checkedSize(size, "a batch")
                    current += Array(repeating: fill, count: size - current.count)
                }
                batches.append(.list(current))
            }
            return .iterator(IteratorBox(typeName: "generator", items: batches))
        case "slice":
            let args = try bind(["slices", "fill_with"], required: 1)
            let slices = try args[0]!.asInt("slice count")
            let seq = try value.iterate()
            guard slices > 0 else { throw ValueError.runtime("integer division or modulo by zero") }
            _ = try checkedSize(slices, "a slice list")
            let perSlice = seq.count / slices, withExtra = seq.count % slices
            var offset = 0
            var result: [Value] = []
            for n in 0..<slices {
                let start = offset + n * perSlice
                if n < withExtra { offset += 1 }
                let end = offset + (n + 1) * perSlice
                var part = Array(seq[start..<end])
                if let fill = args[1].orNone, n >= withExtra { part.append(fill) }
                result.append(.list(part))
            }
            return .iterator(IteratorBox(typeName: "generator", items: result))
        default:
            if Filters.unsupported.contains(name) { throw ValueError.unsupported("the '\(name)' filter") }
            throw ValueError.runtime("No filter named '\(name)' found.")
        }
    }

    // MARK: - Attribute getters (make_attrgetter)

    /// Jinja2's `make_attrgetter`: `"a.b.0"` looks up `a`, then `b`, then item `0`, each with `getitem` rules;
    /// nil returns items unchanged. `default` replaces an undefined result.
    func attributeGetter(_ attribute: Value?, default fallback: Value? = nil) throws -> (Value) throws -> Value {
        guard let attribute else { return { $0 } }
        let parts: [Value]
        switch attribute {
        case let .string(s):
            parts = try pythonSplit(s, ".").map { part in
                part.unicodeScalars.allSatisfy({ $0.isASCIIDigit }) && !part.isEmpty ? .int(Int(part) ?? 0) : .string(part)
            }
        case .int: parts = [attribute]
        default: throw ValueError.type("attribute must be a string or an integer, not \(attribute.typeName)")
        }
        return { item in
            var v = item
            for part in parts {
                v = try self.getItem(v, part)
                if let fallback, v.isUndefined { v = fallback }
            }
            return v
        }
    }

    /// `make_multi_attrgetter` for `sort`: `"age,name"` gives a list key; case folded unless `caseSensitive`.
    private func multiAttributeKey(_ attribute: Value?, caseSensitive: Bool) throws -> (Value) throws -> Value {
        let fold: (Value) -> Value = caseSensitive ? { $0 } : Filters.ignoreCase
        guard case let .string(s)? = attribute else {
            let getter = try attributeGetter(attribute)
            return { attribute == nil ? fold(try getter($0)) : .list([fold(try getter($0))]) }
        }
        let getters = try pythonSplit(s, ",").map { try attributeGetter(.string($0)) }
        return { item in .list(try getters.map { fold(try $0(item)) }) }
    }

    private func sorted(_ items: [Value], key: (Value) throws -> Value, reverse: Bool) throws -> [Value] {
        let keyed = try items.map { (key: try key($0), item: $0) }
        let ordered = try stableSorted(keyed) { a, b in
            reverse ? try b.key.pythonCompare(a.key, "<") == .orderedAscending
                    : try a.key.pythonCompare(b.key, "<") == .orderedAscending
        }
        return ordered.map(\.item)
    }

    // MARK: - map / select

    /// `map(attribute='x', default=…)` or `map('filter', args…)`; a generator, empty for falsy input.
    private func map(_ value: Value, _ a: CallArguments) throws -> Value {
        guard value.isTruthy else { return .iterator(IteratorBox(typeName: "generator", items: [])) }
        let function: (Value) throws -> Value
        if a.positional.isEmpty, let attribute = a.keyword.first(where: { $0.name == "attribute" })?.value {
            let fallback = a.keyword.first(where: { $0.name == "default" })?.value
            if let extra = a.keyword.first(where: { $0.name != "attribute" && $0.name != "default" }) {
                throw ValueError.runtime("Unexpected keyword argument \(pythonRepr(extra.name))")
            }
            function = try attributeGetter(attribute, default: fallback)
        } else {
            guard let filterName = a.positional.first else { throw ValueError.runtime("map requires a filter argument") }
            let name = try filterName.asString("map filter name")
            guard Filters.jinjaNames.contains(name) else { throw ValueError.runtime("No filter named '\(name)'.") }
            let rest = CallArguments(positional: Array(a.positional.dropFirst()), keyword: a.keyword)
            function = { try self.applyFilter(name, to: $0, rest) }
        }
        return .iterator(IteratorBox(typeName: "generator", items: try value.iterate().map(function)))
    }

    /// `select`/`reject` (a test on each item) and `selectattr`/`rejectattr` (on an attribute of each item).
    private func select(_ value: Value, _ a: CallArguments, keep: Bool, lookupAttribute: Bool) throws -> Value {
        guard value.isTruthy else { return .iterator(IteratorBox(typeName: "generator", items: [])) }
        var positional = a.positional
        var transform: (Value) throws -> Value = { $0 }
        if lookupAttribute {
            guard !positional.isEmpty else { throw ValueError.runtime("Missing parameter for attribute name") }
            transform = try attributeGetter(positional.removeFirst())
        }
        var test: (Value) throws -> Bool = { $0.isTruthy }
        if !positional.isEmpty {
            let testName = try positional.removeFirst().asString("test name")
            guard Predicates.jinjaNames.contains(testName) else { throw ValueError.runtime("No test named '\(testName)'.") }
            let rest = CallArguments(positional: positional, keyword: a.keyword)
            test = { try self.applyTest(testName, to: $0, rest) }
        }
        let kept = try value.iterate().filter { try test(try transform($0)) == keep }
        return .iterator(IteratorBox(typeName: "generator", items: kept))
    }

    // MARK: - Helpers

    /// Jinja2's `do_title`, which is not `str.title`: words start after `-`, whitespace, or one of `({[<`.
    private func jinjaTitle(_ s: String) -> String {
        let separators = Set("-({[<".unicodeScalars)
        var out = ""
        var item = Scalars()
        var inSeparatorRun = false
        func flush() {
            guard let first = item.first else { return }
            out += pythonUpper(String(first)) + pythonLower(String(scalars: item.dropFirst()))
            item = []
        }
        for u in s.unicodeScalars {
            let isSeparator = u.isPythonWhitespace || separators.contains(u)
            if isSeparator != inSeparatorRun { flush() }
            inSeparatorRun = isSeparator
            item.append(u)
        }
        flush()
        return out
    }

    private func indent(_ s: String, _ args: [Value?]) throws -> String {
        let indention: String
        switch args[0] {
        case let .string(t)?: indention = t
        case nil: indention = "    "
        case let w?: indention = String(repeating: " ", count: Swift.max(0, try checkedSize(try w.asInt("indent width"), "an indent")))
        }
        let first = args[1]?.isTruthy ?? false, blank = args[2]?.isTruthy ?? false
        // Jinja2 appends a newline before splitting ("this quirk is necessary for splitlines method").
        var lines = pythonSplitLines(s + "\n")
        var result: String
        if blank {
            result = lines.joined(separator: "\n" + indention)
        } else {
            result = lines.isEmpty ? "" : lines.removeFirst()
            if !lines.isEmpty {
                result += "\n" + lines.map { $0.isEmpty ? $0 : indention + $0 }.joined(separator: "\n")
            }
        }
        return first ? indention + result : result
    }

    /// `do_truncate`, which does not convert its input: anything with a length short enough comes back as is.
    private func truncate(_ value: Value, _ args: [Value?]) throws -> Value {
        let length = try args[0]?.asInt("truncate length") ?? 255
        let killWords = args[1]?.isTruthy ?? false
        let end = try args[2]?.str() ?? "..."
        let leeway = try args[3].orNone?.asInt("truncate leeway") ?? 5  // the "truncate.leeway" policy
        let endCount = end.unicodeScalars.count
        guard length >= endCount else { throw ValueError.runtime("expected length >= \(endCount), got \(length)") }
        guard leeway >= 0 else { throw ValueError.runtime("expected leeway >= 0, got \(leeway)") }
        if try value.length() <= length + leeway { return value }
        guard case let .string(s) = value else {
            throw ValueError.unsupported("truncating a \(value.typeName) (only strings are supported)")
        }
        let scalars = s.scalars
        let head = String(scalars: scalars.prefix(length - endCount))
        if killWords { return .string(head + end) }
        return .string((try pythonRSplit(head, " ", maxSplit: 1).first ?? "") + end)
    }

    private func htmlEscape(_ s: String) -> String {
        var out = ""
        for u in s.unicodeScalars {
            switch u {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&#34;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(u)
            }
        }
        return out
    }

    private func fileSize(_ value: Value, _ binary: Bool) throws -> String {
        guard let bytes = try toFloat(value)?.number?.asDouble else {
            throw ValueError.runtime("could not convert \(value.typeName) to float")
        }
        let base = binary ? 1024.0 : 1000.0
        let prefixes = binary ? ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"]
                              : ["kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
        if bytes == 1 { return "1 Byte" }
        if bytes < base { return "\(Int(bytes)) Bytes" }
        var unit = base
        for prefix in prefixes {
            unit *= base
            if bytes < unit || prefix == prefixes.last { return PercentFormat.formatFloat(base * bytes / unit, "f", 1) + " " + prefix }
        }
        return ""
    }

    /// `do_int`: `int(value)` (with `base` for strings), else `int(float(value))`, else `default`.
    private func toInt(_ value: Value, default fallback: Value, base: Int) throws -> Value {
        switch value {
        case let .int(i): return .int(i)
        case let .bool(b): return .int(b ? 1 : 0)
        case let .double(d):
            guard d.isFinite else { return fallback }  // int(inf) and int(nan) raise; do_int returns the default
            guard Swift.abs(d) < 9.2e18 else { throw ValueError.unsupported("int() of \(pythonFloatRepr(d)) (a big integer in Python; only 64-bit integers are supported)") }
            return .int(Int(d))
        case let .string(s):
            let t = pythonStrip(s, nil).replacingOccurrences(of: "_", with: "")
            var digits = Substring(t)
            var negative = false
            if let sign = digits.first, sign == "-" || sign == "+" { negative = sign == "-"; digits = digits.dropFirst() }
            var radix = base
            let lower = digits.lowercased()
            if base == 16 && lower.hasPrefix("0x") || base == 8 && lower.hasPrefix("0o") || base == 2 && lower.hasPrefix("0b") {
                digits = digits.dropFirst(2)
            } else if base == 0 {
                radix = lower.hasPrefix("0x") ? 16 : lower.hasPrefix("0o") ? 8 : lower.hasPrefix("0b") ? 2 : 10
                if radix != 10 { digits = digits.dropFirst(2) }
            }
            if !digits.isEmpty, digits.allSatisfy({ $0.isASCII }), let n = Int(digits, radix: radix) { return .int(negative ? -n : n) }
            if case let .double(d)? = try toFloat(value) { return try toInt(.double(d), default: fallback, base: 10) }
            return fallback
        case let .undefined(u):
            throw u.error
        default:
            return fallback
        }
    }

    /// `float(value)`, or nil where Python raises TypeError/ValueError.
    private func toFloat(_ value: Value) throws -> Value? {
        switch value {
        case let .int(i): return .double(Double(i))
        case let .bool(b): return .double(b ? 1 : 0)
        case let .double(d): return .double(d)
        case let .string(s):
            let t = pythonStrip(s, nil).lowercased()
            switch t {
            case "inf", "+inf", "infinity", "+infinity": return .double(.infinity)
            case "-inf", "-infinity": return .double(-.infinity)
            case "nan", "+nan", "-nan": return .double(.nan)
            default: break
            }
            let allowed = Set("0123456789+-.e_")
            guard !t.isEmpty, t.allSatisfy({ allowed.contains($0) }), !t.hasPrefix("_"), !t.hasSuffix("_"),
                  !t.contains("__"), let d = Double(t.replacingOccurrences(of: "_", with: "")) else { return nil }
            return .double(d)
        case let .undefined(u):
            throw u.error
        default:
            return nil
        }
    }

    /// `round(value, precision)` for "common", `floor`/`ceil` of `value * 10**precision` otherwise.
    private func round(_ value: Value, _ args: [Value?]) throws -> Value {
        let precision = try args[0]?.asInt("round precision") ?? 0
        let method = try args[1]?.asString("round method") ?? "common"
        guard ["common", "ceil", "floor"].contains(method) else {
            throw ValueError.runtime("method must be common, ceil or floor")
        }
        try value.failIfUndefined()
        guard let number = value.number else {
            throw ValueError.type("type \(value.typeName) doesn't define __round__ method")
        }
        if method != "common" {
            let scale = Foundation.pow(10.0, Double(precision))
            let scaled = number.asDouble * scale
            return .double((method == "floor" ? scaled.rounded(.down) : scaled.rounded(.up)) / scale)
        }
        switch number {
        case let .int(i):
            guard precision < 0 else { return .int(i) }
            // Python rounds integers half to even at a negative precision; |i| < 10^19 rounds to 0 from -19 on.
            guard precision > -19 else { return .int(0) }
            var p = 1
            for _ in 0..<(-precision) { p *= 10 }
            let (q, r) = (i / p, i % p)
            var rounded = q
            let twiceRemainder = r.magnitude * 2
            if twiceRemainder > p.magnitude || (twiceRemainder == p.magnitude && q % 2 != 0) { rounded += i < 0 ? -1 : 1 }
            let (result, overflow) = rounded.multipliedReportingOverflow(by: p)
            if overflow { throw ValueError.unsupported("round() to a big integer (only 64-bit integers are supported)") }
            return .int(result)
        case let .double(d):
            guard d.isFinite else { return .double(d) }
            if precision < 0 || precision > 300 {
                let scale = Foundation.pow(10.0, Double(precision))
                return .double((d * scale).rounded(.toNearestOrEven) / scale)
            }
            // C's %.*f rounds the exact binary value half-to-even, as Python's round() does.
            return .double(Double(String(format: "%.\(precision)f", d)) ?? d)
        }
    }

    private func dictSort(_ value: Value, _ args: [Value?]) throws -> Value {
        guard case let .dict(d) = value else {
            try value.failIfUndefined()
            throw ValueError.type("dictsort requires a mapping, not \(value.typeName)")
        }
        let caseSensitive = args[0]?.isTruthy ?? false
        let by = try args[1]?.asString("dictsort by") ?? "key"
        guard by == "key" || by == "value" else { throw ValueError.runtime("You can only sort by either \"key\" or \"value\"") }
        let pairs = d.pairs.map { Value.tuple([$0.key, $0.value]) }
        let position = by == "key" ? 0 : 1
        return .list(try sorted(pairs, key: { pair in
            guard case let .tuple(kv) = pair else { return pair }
            return caseSensitive ? kv[position] : Filters.ignoreCase(kv[position])
        }, reverse: args[2]?.isTruthy ?? false))
    }
}
