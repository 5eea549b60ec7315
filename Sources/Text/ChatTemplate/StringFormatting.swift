import Foundation

/// Python's printf-style `format % arguments` (also the `|format` filter): conversions `s r a d i u f F e E g G x
/// X o c %` with flags `-+ 0#`, width, precision and mapping keys (`%(name)s`), as `PyUnicode_Format` does them.
enum PercentFormat {
    static func format(_ format: String, _ arguments: Value) throws -> String {
        var positional: [Value]
        var mapping: Dict?
        // PyUnicode_Format: anything subscriptable but a tuple or string (dict, list, undefined) may also feed
        // `%(key)s`, and then unused arguments are not an error.
        var mappingLike = false
        switch arguments {
        case let .tuple(items): positional = items
        case let .dict(d): positional = [arguments]; mapping = d; mappingLike = true
        case .list, .undefined: positional = [arguments]; mappingLike = true
        default: positional = [arguments]
        }
        let f = format.scalars
        var out = ""
        var i = 0
        var next = 0
        func take() throws -> Value {
            guard next < positional.count else { throw ValueError.type("not enough arguments for format string") }
            next += 1
            return positional[next - 1]
        }
        var usedMapping = false
        while i < f.count {
            guard f[i] == "%" else {
                out.unicodeScalars.append(f[i])
                i += 1
                continue
            }
            i += 1
            guard i < f.count else { throw ValueError.runtime("incomplete format") }
            var value: Value?
            if f[i] == "(" {
                if case let .undefined(u) = arguments { throw u.error }
                guard let mapping else { throw ValueError.type("format requires a mapping") }
                var depth = 1, j = i + 1
                while j < f.count, depth > 0 {
                    if f[j] == "(" { depth += 1 } else if f[j] == ")" { depth -= 1 }
                    j += 1
                }
                guard depth == 0 else { throw ValueError.runtime("incomplete format key") }
                let key = String(scalars: f[(i + 1)..<(j - 1)])
                guard let v = try mapping.get(.string(key)) else { throw ValueError.runtime("KeyError: \(pythonRepr(key))") }
                value = v
                usedMapping = true
                i = j
            }
            var flags = Set<Unicode.Scalar>()
            while i < f.count, "-+ #0".unicodeScalars.contains(f[i]) { flags.insert(f[i]); i += 1 }
            var width: Int?
            if i < f.count, f[i] == "*" {
                width = try checkedSize(try take().asInt("* wants int"), "a formatted field")
                i += 1
            } else {
                var w = 0, any = false
                while i < f.count, f[i].isASCIIDigit {
                    w = Swift.min(w * 10 + Int(f[i].value - 48), maxBuiltSize + 1)
                    i += 1
                    any = true
                }
                if any { width = try checkedSize(w, "a formatted field") }
            }
            var precision: Int?
            if i < f.count, f[i] == "." {
                i += 1
                if i < f.count, f[i] == "*" {
                    precision = try checkedSize(try take().asInt("* wants int"), "a formatting precision")
                    i += 1
                } else {
                    var p = 0
                    while i < f.count, f[i].isASCIIDigit { p = Swift.min(p * 10 + Int(f[i].value - 48), maxBuiltSize + 1); i += 1 }
                    precision = try checkedSize(p, "a formatting precision")
                }
            }
            while i < f.count, "hlL".unicodeScalars.contains(f[i]) { i += 1 }
            guard i < f.count else { throw ValueError.runtime("incomplete format") }
            let conversion = f[i]
            i += 1
            if conversion == "%" {
                out += "%"
                continue
            }
            let v = try value ?? take()
            var body: String
            var numeric = false
            switch conversion {
            case "s": body = try v.str(); if let precision { body = String(scalars: body.scalars.prefix(precision)) }
            case "r", "a": body = try v.repr(); if let precision { body = String(scalars: body.scalars.prefix(precision)) }
            case "d", "i", "u":
                numeric = true
                body = String(try integer(v, conversion))
            case "x", "X", "o":
                numeric = true
                let n = try integer(v, conversion)
                let radix = conversion == "o" ? 8 : 16
                var digits = String(Swift.abs(n), radix: radix, uppercase: conversion == "X")
                if flags.contains("#") { digits = (conversion == "o" ? "0o" : (conversion == "X" ? "0X" : "0x")) + digits }
                body = (n < 0 ? "-" : "") + digits
            case "f", "F", "e", "E", "g", "G":
                numeric = true
                guard let d = v.number?.asDouble else {
                    throw ValueError.type("must be real number, not \(v.typeName)")
                }
                body = formatFloat(d, conversion, precision ?? 6, alternate: flags.contains("#"))
            case "c":
                switch v {
                case let .string(s) where s.unicodeScalars.count == 1: body = s
                case let .int(n):
                    guard let u = Unicode.Scalar(UInt32(clamping: Swift.max(0, n))) else { throw ValueError.runtime("%c arg not in range(0x110000)") }
                    body = String(u)
                default: throw ValueError.type("%c requires int or char")
                }
            default:
                throw ValueError.runtime("unsupported format character '\(conversion)' (0x\(String(conversion.value, radix: 16))) at index \(i - 1)")
            }
            if numeric, !body.hasPrefix("-") {
                if flags.contains("+") { body = "+" + body } else if flags.contains(" ") { body = " " + body }
            }
            if let width, body.unicodeScalars.count < width {
                let padding = width - body.unicodeScalars.count
                if flags.contains("-") {
                    body += String(repeating: " ", count: padding)
                } else if flags.contains("0") && numeric {
                    let signLength = body.hasPrefix("-") || body.hasPrefix("+") || body.hasPrefix(" ") ? 1 : 0
                    let sign = String(body.prefix(signLength))
                    body = sign + String(repeating: "0", count: padding) + body.dropFirst(signLength)
                } else {
                    body = String(repeating: " ", count: padding) + body
                }
            }
            out += body
        }
        if next < positional.count && !usedMapping && !mappingLike {
            throw ValueError.type("not all arguments converted during string formatting")
        }
        return out
    }

    private static func integer(_ v: Value, _ conversion: Unicode.Scalar) throws -> Int {
        switch v {
        case let .int(n): return n
        case let .bool(b): return b ? 1 : 0
        case let .double(d) where d.isFinite && Swift.abs(d) < 9.2e18:
            guard conversion == "d" || conversion == "i" || conversion == "u" else {
                throw ValueError.type("%\(conversion) format: an integer is required, not float")
            }
            return Int(d)
        default:
            throw ValueError.type("%\(conversion) format: a real number is required, not \(v.typeName)")
        }
    }

    /// C's `%f`/`%e`/`%g`, which Python's float formatting agrees with (both round the exact binary value).
    static func formatFloat(_ d: Double, _ conversion: Unicode.Scalar, _ precision: Int, alternate: Bool = false) -> String {
        if d.isNaN { return conversion.properties.isUppercase ? "NAN" : "nan" }
        if d.isInfinite {
            let s = conversion.properties.isUppercase ? "INF" : "inf"
            return d < 0 ? "-" + s : s
        }
        return String(format: "%\(alternate ? "#" : "").\(precision)\(Character(conversion))", d)
    }
}

/// `str.format(...)` as the sandbox's `SandboxedFormatter` runs it: `{}`, `{0}`, `{name}`, attribute and item
/// lookups (`{0.role}`, `{d[key]}`) through the template's own attribute rules, conversions `!s`/`!r`/`!a`, and
/// format specs for padding and alignment of strings and numbers.
enum BraceFormat {
    static func format(_ format: String, _ arguments: CallArguments, evaluator: Evaluator) throws -> String {
        let f = format.scalars
        var out = ""
        var i = 0
        var automatic = 0
        var numbering: Bool?  // true once `{}` is used, false once `{0}` is: Python refuses to mix them
        while i < f.count {
            let u = f[i]
            if u == "}" {
                guard i + 1 < f.count, f[i + 1] == "}" else { throw ValueError.runtime("Single '}' encountered in format string") }
                out += "}"
                i += 2
                continue
            }
            guard u == "{" else {
                out.unicodeScalars.append(u)
                i += 1
                continue
            }
            if i + 1 < f.count, f[i + 1] == "{" {
                out += "{"
                i += 2
                continue
            }
            var j = i + 1, depth = 1
            while j < f.count {
                if f[j] == "{" { depth += 1 } else if f[j] == "}" { depth -= 1; if depth == 0 { break } }
                j += 1
            }
            guard j < f.count else { throw ValueError.runtime("expected '}' before end of string") }
            let field = String(scalars: f[(i + 1)..<j])
            i = j + 1
            var spec = ""
            var conversion: Character?
            var name = field
            if let colon = field.firstIndex(of: ":") {
                spec = String(field[field.index(after: colon)...])
                name = String(field[..<colon])
            }
            if let bang = name.firstIndex(of: "!") {
                conversion = name[name.index(after: bang)...].first
                name = String(name[..<bang])
            }
            // The first part of the field name picks the argument; the rest are `.attr` / `[key]` lookups.
            let head = name.prefix { $0 != "." && $0 != "[" }
            var rest = name.dropFirst(head.count)
            var value: Value
            if head.isEmpty || Int(head) != nil {
                let isAutomatic = head.isEmpty
                if let numbering, numbering != isAutomatic {
                    throw ValueError.runtime(isAutomatic ? "cannot switch from manual field specification to automatic field numbering"
                                                         : "cannot switch from automatic field numbering to manual field specification")
                }
                numbering = isAutomatic
            }
            if head.isEmpty {
                guard automatic < arguments.positional.count else {
                    throw ValueError.runtime("Replacement index \(automatic) out of range for positional args tuple")
                }
                value = arguments.positional[automatic]
                automatic += 1
            } else if let n = Int(head) {
                guard n < arguments.positional.count else {
                    throw ValueError.runtime("Replacement index \(n) out of range for positional args tuple")
                }
                value = arguments.positional[n]
            } else {
                guard let v = arguments.keyword.first(where: { $0.name == head })?.value else {
                    throw ValueError.runtime("KeyError: \(pythonRepr(String(head)))")
                }
                value = v
            }
            while let first = rest.first {
                if first == "." {
                    let attribute = rest.dropFirst().prefix { $0 != "." && $0 != "[" }
                    value = try evaluator.getAttribute(value, String(attribute))
                    rest = rest.dropFirst(1 + attribute.count)
                } else {
                    guard let close = rest.firstIndex(of: "]") else { throw ValueError.runtime("Missing ']' in format string") }
                    let key = String(rest[rest.index(after: rest.startIndex)..<close])
                    value = try evaluator.getItem(value, Int(key).map(Value.int) ?? .string(key))
                    rest = rest[rest.index(after: close)...]
                }
            }
            switch conversion {
            case nil: break
            case "s": value = .string(try value.str())
            case "r", "a": value = .string(try value.repr())
            default: throw ValueError.runtime("Unknown conversion specifier \(conversion!)")
            }
            out += try formatSpec(value, spec)
        }
        return out
    }

    /// Python's format-spec mini-language, `[[fill]align][sign][#][0][width][,][.precision][type]`, for strings,
    /// integers and floats.
    static func formatSpec(_ value: Value, _ spec: String) throws -> String {
        if spec.isEmpty { return try value.str() }
        var s = Array(spec)
        var fill: Character = " "
        var align: Character?
        if s.count >= 2, "<>=^".contains(s[1]) {
            fill = s[0]; align = s[1]; s.removeFirst(2)
        } else if let first = s.first, "<>=^".contains(first) {
            align = first; s.removeFirst()
        }
        var sign: Character = "-"
        if let first = s.first, "+- ".contains(first) { sign = first; s.removeFirst() }
        if s.first == "#" { throw ValueError.unsupported("the '#' option in format spec '\(spec)'") }
        if s.first == "0" {
            if align == nil { fill = "0"; align = "=" }
            s.removeFirst()
        }
        var width = 0
        while let d = s.first, let n = d.wholeNumberValue, d.isASCII { width = Swift.min(width * 10 + n, maxBuiltSize + 1); s.removeFirst() }
        _ = try checkedSize(width, "a formatted field")
        var grouping = false
        if s.first == "," { grouping = true; s.removeFirst() }
        var precision: Int?
        if s.first == "." {
            s.removeFirst()
            var p = 0
            while let d = s.first, let n = d.wholeNumberValue, d.isASCII { p = Swift.min(p * 10 + n, maxBuiltSize + 1); s.removeFirst() }
            precision = try checkedSize(p, "a formatting precision")
        }
        let type = s.first
        if s.count > 1 { throw ValueError.runtime("Invalid format specifier '\(spec)'") }

        var body: String
        var isNumber = true
        switch (value, type) {
        case let (.string(text), nil), let (.string(text), "s"?):
            isNumber = false
            body = precision.map { String(scalars: text.scalars.prefix($0)) } ?? text
        case (.int, nil), (.int, "d"?), (.bool, "d"?):
            body = String(try value.asInt("format"))
        case (.int, "x"?), (.int, "X"?), (.int, "o"?), (.int, "b"?):
            let n = try value.asInt("format")
            let radix = type == "o" ? 8 : (type == "b" ? 2 : 16)
            body = (n < 0 ? "-" : "") + String(Swift.abs(n), radix: radix, uppercase: type == "X")
        case (_, "f"?), (_, "F"?), (_, "e"?), (_, "E"?), (_, "g"?), (_, "G"?), (_, "%"?), (.double, nil):
            guard var d = value.number?.asDouble else {
                throw ValueError.runtime("Unknown format code '\(type.map(String.init) ?? "")' for object of type '\(value.typeName)'")
            }
            if type == nil {
                body = precision.map { PercentFormat.formatFloat(d, "g", $0) } ?? pythonFloatRepr(d)
            } else if type == "%" {
                d *= 100
                body = PercentFormat.formatFloat(d, "f", precision ?? 6) + "%"
            } else {
                body = PercentFormat.formatFloat(d, type!.unicodeScalars.first!, precision ?? 6)
            }
        default:
            throw ValueError.unsupported("format spec '\(spec)' for a \(value.typeName) value")
        }
        if isNumber {
            if grouping {
                let negative = body.hasPrefix("-")
                let digits = negative ? String(body.dropFirst()) : body
                let intPart = digits.prefix { $0.isNumber }
                var grouped = ""
                for (k, ch) in intPart.enumerated() {
                    if k > 0 && (intPart.count - k) % 3 == 0 { grouped += "," }
                    grouped.append(ch)
                }
                body = (negative ? "-" : "") + grouped + digits.dropFirst(intPart.count)
            }
            if !body.hasPrefix("-") {
                if sign == "+" { body = "+" + body } else if sign == " " { body = " " + body }
            }
        }
        let count = body.unicodeScalars.count
        guard width > count else { return body }
        let padding = width - count
        switch align ?? (isNumber ? ">" : "<") {
        case "<": return body + String(repeating: fill, count: padding)
        case "^":
            let left = padding / 2
            return String(repeating: fill, count: left) + body + String(repeating: fill, count: padding - left)
        case "=":
            let signed = body.first.map { "+- ".contains($0) } ?? false
            return (signed ? String(body.prefix(1)) : "") + String(repeating: fill, count: padding) + (signed ? String(body.dropFirst()) : body)
        default: return String(repeating: fill, count: padding) + body
        }
    }
}
