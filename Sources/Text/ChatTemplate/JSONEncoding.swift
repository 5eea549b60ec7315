import Foundation

/// The `tojson` filter as transformers defines it (it replaces Jinja2's HTML-escaping one):
/// `json.dumps(x, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys)`, reproduced
/// byte for byte: `", "`/`": "` separators (`","` between items when indenting), insertion-ordered keys, floats
/// as Python's `repr`, `NaN`/`Infinity`, and only `"`, `\` and control characters escaped.
struct PythonJSONEncoder {
    var ensureASCII = false
    /// The indent unit (`indent=2` is two spaces, a string is used as given); nil for single-line output.
    var indent: String?
    var itemSeparator = ", "
    var keySeparator = ": "
    var sortKeys = false

    /// Builds the encoder from `tojson`'s arguments, with `json.dumps`'s defaults.
    init(ensureASCII: Value?, indent: Value?, separators: Value?, sortKeys: Value?) throws {
        self.ensureASCII = ensureASCII?.isTruthy ?? false
        switch indent {
        case nil, .none?: self.indent = nil
        case let .int(n)?: self.indent = String(repeating: " ", count: Swift.max(0, n))
        case let .bool(b)?: self.indent = b ? " " : ""
        case let .string(s)?: self.indent = s
        case let other?: throw ValueError.type("can't multiply sequence by non-int of type '\(other.typeName)'")
        }
        if self.indent != nil { itemSeparator = "," }
        if let separators, !(separators.isUndefined), (try? separators.pythonEquals(.none)) != true {
            let parts = try separators.iterate()
            guard parts.count == 2, case let .string(item) = parts[0], case let .string(key) = parts[1] else {
                throw ValueError.runtime("separators must be an (item_separator, key_separator) pair of strings")
            }
            itemSeparator = item
            keySeparator = key
        }
        self.sortKeys = sortKeys?.isTruthy ?? false
    }

    func encode(_ value: Value) throws -> String {
        var out = ""
        try encode(value, level: 0, into: &out)
        return out
    }

    private func encode(_ value: Value, level: Int, into out: inout String) throws {
        switch value {
        case .none: out += "null"
        case let .bool(b): out += b ? "true" : "false"
        case let .int(i): out += String(i)
        case let .double(d): out += Self.floatText(d)
        case let .string(s), let .markup(s): encodeString(s, into: &out)
        case let .list(items), let .tuple(items):
            try encodeContainer(items, open: "[", close: "]", level: level, into: &out) { item, out in
                try encode(item, level: level + 1, into: &out)
            }
        case let .dict(d):
            var pairs = d.pairs
            if sortKeys {
                pairs = try stableSorted(pairs) { try $0.key.pythonCompare($1.key, "<") == .orderedAscending }
            }
            try encodeContainer(pairs, open: "{", close: "}", level: level, into: &out) { pair, out in
                encodeString(try keyText(pair.key), into: &out)
                out += keySeparator
                try encode(pair.value, level: level + 1, into: &out)
            }
        default:
            throw ValueError.type("Object of type \(value.typeName) is not JSON serializable")
        }
    }

    private func encodeContainer<T>(_ items: [T], open: String, close: String, level: Int, into out: inout String,
                                    _ body: (T, inout String) throws -> Void) throws {
        guard !items.isEmpty else {
            out += open + close
            return
        }
        out += open
        let newlineIndent = indent.map { "\n" + String(repeating: $0, count: level + 1) }
        if let newlineIndent { out += newlineIndent }
        for (i, item) in items.enumerated() {
            if i > 0 { out += itemSeparator + (newlineIndent ?? "") }
            try body(item, &out)
        }
        if let indent { out += "\n" + String(repeating: indent, count: level) }
        out += close
    }

    /// Dict keys become strings as `json.dumps` converts them.
    private func keyText(_ key: Value) throws -> String {
        switch key {
        case let .string(s): return s
        case let .int(i): return String(i)
        case let .double(d): return Self.floatText(d)
        case let .bool(b): return b ? "true" : "false"
        case .none: return "null"
        default: throw ValueError.type("keys must be str, int, float, bool or None, not \(key.typeName)")
        }
    }

    static func floatText(_ d: Double) -> String {
        if d.isNaN { return "NaN" }
        if d.isInfinite { return d < 0 ? "-Infinity" : "Infinity" }
        return pythonFloatRepr(d)
    }

    private func encodeString(_ s: String, into out: inout String) {
        out += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if u.value < 0x20 || (ensureASCII && u.value > 0x7E) {
                    if u.value > 0xFFFF {
                        let v = u.value - 0x10000
                        out += Self.hex4(0xD800 + (v >> 10)) + Self.hex4(0xDC00 + (v & 0x3FF))
                    } else {
                        out += Self.hex4(u.value)
                    }
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out += "\""
    }

    private static func hex4(_ v: UInt32) -> String {
        let h = String(v, radix: 16)
        return "\\u" + String(repeating: "0", count: 4 - h.count) + h
    }
}

/// A stable merge sort whose comparison may throw (Python's `sorted` is stable, and comparing mismatched types
/// raises `TypeError`).
func stableSorted<T>(_ items: [T], by less: (T, T) throws -> Bool) rethrows -> [T] {
    guard items.count > 1 else { return items }
    let middle = items.count / 2
    let left = try stableSorted(Array(items[..<middle]), by: less)
    let right = try stableSorted(Array(items[middle...]), by: less)
    var merged: [T] = []
    merged.reserveCapacity(items.count)
    var i = 0, j = 0
    while i < left.count, j < right.count {
        // Take from the right only when strictly smaller, so equal items keep their order.
        if try less(right[j], left[i]) {
            merged.append(right[j]); j += 1
        } else {
            merged.append(left[i]); i += 1
        }
    }
    merged += left[i...]
    merged += right[j...]
    return merged
}
