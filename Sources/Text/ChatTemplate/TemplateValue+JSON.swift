import Foundation

extension TemplateValue {
    /// Parses JSON keeping the order of object keys (Foundation's JSONSerialization does not), so tool schemas
    /// and other JSON inputs print through `tojson` and iterate in the order they were written, as they do in
    /// Python. Integers that fit in `Int` stay integers; other numbers become doubles.
    public init(json: String) throws {
        var parser = JSONParser(scalars: Array(json.unicodeScalars))
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        guard parser.index == parser.scalars.count else { throw parser.fail("trailing characters") }
        self = value
    }
}

/// Errors from `TemplateValue(json:)`.
public struct TemplateJSONError: Error, LocalizedError, Equatable {
    public let offset: Int
    public let reason: String
    public var errorDescription: String? { "invalid JSON at offset \(offset): \(reason)" }
}

private struct JSONParser {
    let scalars: [Unicode.Scalar]
    var index = 0

    init(scalars: [Unicode.Scalar]) { self.scalars = scalars }

    func fail(_ reason: String) -> TemplateJSONError { TemplateJSONError(offset: index, reason: reason) }

    mutating func skipWhitespace() {
        while index < scalars.count, [" ", "\t", "\n", "\r"].contains(scalars[index]) { index += 1 }
    }

    private mutating func expect(_ word: String) throws {
        for u in word.unicodeScalars {
            guard index < scalars.count, scalars[index] == u else { throw fail("expected '\(word)'") }
            index += 1
        }
    }

    mutating func parseValue(depth: Int) throws -> TemplateValue {
        guard depth < 512 else { throw fail("nesting too deep") }
        guard index < scalars.count else { throw fail("unexpected end of input") }
        switch scalars[index] {
        case "{":
            index += 1
            var object = TemplateObject()
            skipWhitespace()
            if index < scalars.count, scalars[index] == "}" { index += 1; return .object(object) }
            while true {
                skipWhitespace()
                guard index < scalars.count, scalars[index] == "\"" else { throw fail("expected a string key") }
                let key = try parseString()
                skipWhitespace()
                try expect(":")
                skipWhitespace()
                object[key] = try parseValue(depth: depth + 1)
                skipWhitespace()
                guard index < scalars.count else { throw fail("unterminated object") }
                if scalars[index] == "," { index += 1; continue }
                if scalars[index] == "}" { index += 1; return .object(object) }
                throw fail("expected ',' or '}'")
            }
        case "[":
            index += 1
            var items: [TemplateValue] = []
            skipWhitespace()
            if index < scalars.count, scalars[index] == "]" { index += 1; return .array(items) }
            while true {
                skipWhitespace()
                items.append(try parseValue(depth: depth + 1))
                skipWhitespace()
                guard index < scalars.count else { throw fail("unterminated array") }
                if scalars[index] == "," { index += 1; continue }
                if scalars[index] == "]" { index += 1; return .array(items) }
                throw fail("expected ',' or ']'")
            }
        case "\"":
            return .string(try parseString())
        case "t": try expect("true"); return .bool(true)
        case "f": try expect("false"); return .bool(false)
        case "n": try expect("null"); return .none
        default:
            return try parseNumber()
        }
    }

    private mutating func parseNumber() throws -> TemplateValue {
        let start = index
        var isInteger = true
        if index < scalars.count, scalars[index] == "-" { index += 1 }
        while index < scalars.count {
            let u = scalars[index]
            if ("0"..."9").contains(u) {
                index += 1
            } else if u == "." || u == "e" || u == "E" || ((u == "+" || u == "-") && index > start) {
                isInteger = false
                index += 1
            } else {
                break
            }
        }
        let text = String(String.UnicodeScalarView(scalars[start..<index]))
        guard !text.isEmpty, text != "-" else { throw fail("unexpected character") }
        if isInteger, let i = Int(text) { return .int(i) }
        guard let d = Double(text) else { throw fail("invalid number '\(text)'") }
        return .double(d)
    }

    private mutating func parseString() throws -> String {
        index += 1  // the opening quote
        var out = String.UnicodeScalarView()
        while true {
            guard index < scalars.count else { throw fail("unterminated string") }
            let u = scalars[index]
            index += 1
            if u == "\"" { return String(out) }
            guard u == "\\" else {
                guard u.value >= 0x20 else { throw fail("control character in string") }
                out.append(u)
                continue
            }
            guard index < scalars.count else { throw fail("unterminated escape") }
            let e = scalars[index]
            index += 1
            switch e {
            case "\"": out.append("\"")
            case "\\": out.append("\\")
            case "/": out.append("/")
            case "b": out.append("\u{08}")
            case "f": out.append("\u{0C}")
            case "n": out.append("\n")
            case "r": out.append("\r")
            case "t": out.append("\t")
            case "u":
                var code = try hex4()
                if (0xD800..<0xDC00).contains(code), index + 1 < scalars.count, scalars[index] == "\\", scalars[index + 1] == "u" {
                    index += 2
                    let low = try hex4()
                    guard (0xDC00..<0xE000).contains(low) else { throw fail("invalid surrogate pair") }
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                }
                guard let scalar = Unicode.Scalar(code) else { throw fail("lone surrogate \\u\(String(code, radix: 16))") }
                out.append(scalar)
            default:
                throw fail("invalid escape '\\\(e)'")
            }
        }
    }

    private mutating func hex4() throws -> UInt32 {
        guard index + 4 <= scalars.count else { throw fail("truncated \\u escape") }
        let text = String(String.UnicodeScalarView(scalars[index..<(index + 4)]))
        guard let v = UInt32(text, radix: 16) else { throw fail("invalid \\u escape") }
        index += 4
        return v
    }
}
