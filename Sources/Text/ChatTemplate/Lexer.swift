import Foundation

// MARK: - Tokens

/// One token of a template, as Jinja2's lexer produces them: runs of literal text (`data`), the delimiters of
/// `{{ }}` and `{% %}` tags, and the expression tokens inside tags. Comments produce no tokens.
enum TokenKind: Equatable {
    case data(String)
    case variableBegin, variableEnd, blockBegin, blockEnd
    case name(String)
    case string(String)
    case integer(Int)
    case float(Double)
    /// An operator or punctuation, spelled as in the source: `+`, `//`, `==`, `(`, `|`, `.`…
    case op(String)
    case eof

    /// How Jinja2 describes a token in its messages (`describe_token`).
    var description: String {
        switch self {
        case let .data(text): return "template data \(pythonRepr(text))"
        case .variableBegin: return "begin of print statement"
        case .variableEnd: return "end of print statement"
        case .blockBegin: return "begin of statement block"
        case .blockEnd: return "end of statement block"
        case let .name(n): return n
        case let .string(s): return pythonRepr(s)
        case let .integer(i): return String(i)
        case let .float(d): return pythonFloatRepr(d)
        case let .op(o): return o
        case .eof: return "end of template"
        }
    }
}

struct Token {
    let kind: TokenKind
    let location: TemplateLocation
}

// MARK: - Lexer

/// Splits a template into tokens exactly as Jinja2 3.1's `Lexer.tokeniter` does with the environment transformers
/// builds (`trim_blocks=True, lstrip_blocks=True`, default delimiters, no line statements):
///
/// - the source's newlines are normalised to `\n` and one trailing newline is dropped (`keep_trailing_newline`
///   is off);
/// - `{%-`, `{{-`, `{#-` strip all whitespace before the tag; `-%}`, `-}}`, `-#}` strip all whitespace after it;
/// - trim_blocks: a block or comment tag (`%}`, `#}`, not `}}`) swallows the one newline right after it, unless it
///   ends with `+%}`;
/// - lstrip_blocks: spaces and tabs between the start of a line and a block or comment tag are dropped, unless
///   the tag starts with `{%+`. "Start of a line" includes the case where the previous tag's match ended with a
///   newline (Jinja2's `line_starting`), which is how a tag after a trimmed tag on the previous line is stripped.
/// - `{% raw %}…{% endraw %}` is literal text; note that, as in Jinja2, trim_blocks does not apply after
///   `{% raw %}` itself.
struct Lexer {
    private let s: [Unicode.Scalar]
    private let lineStarts: [Int]
    private let trimBlocks: Bool
    private let lstripBlocks: Bool
    private var tokens: [Token] = []

    init(source: String, trimBlocks: Bool = true, lstripBlocks: Bool = true) {
        // Newline normalisation, as tokeniter's `newline_re.split(source)[::2]` and "\n".join(lines).
        var scalars: [Unicode.Scalar] = []
        scalars.reserveCapacity(source.unicodeScalars.count)
        var previousWasCR = false
        for u in source.unicodeScalars {
            if u == "\r" {
                scalars.append("\n")
                previousWasCR = true
                continue
            }
            if u == "\n" && previousWasCR {
                previousWasCR = false
                continue
            }
            previousWasCR = false
            scalars.append(u)
        }
        // keep_trailing_newline=False: the last line is dropped when it is empty, i.e. one final newline goes.
        if scalars.last == "\n" { scalars.removeLast() }
        s = scalars
        var starts = [0]
        for (i, u) in scalars.enumerated() where u == "\n" { starts.append(i + 1) }
        lineStarts = starts
        self.trimBlocks = trimBlocks
        self.lstripBlocks = lstripBlocks
    }

    func location(_ offset: Int) -> TemplateLocation {
        // The last line start at or before `offset`.
        var lo = 0, hi = lineStarts.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if lineStarts[mid] <= offset { lo = mid } else { hi = mid - 1 }
        }
        return TemplateLocation(line: lo + 1, column: offset - lineStarts[lo] + 1)
    }

    private func starts(with text: String, at i: Int) -> Bool {
        var j = i
        for u in text.unicodeScalars {
            guard j < s.count, s[j] == u else { return false }
            j += 1
        }
        return true
    }

    /// trim_blocks: a block or comment tag ending at `i` also takes one following newline.
    private func afterTrimmedNewline(_ i: Int) -> Int {
        trimBlocks && i < s.count && s[i] == "\n" ? i + 1 : i
    }

    private func skipWhitespace(from i: Int) -> Int {
        var j = i
        while j < s.count, s[j].isPythonWhitespace { j += 1 }
        return j
    }

    private enum TagKind { case variable, block, comment }

    mutating func tokenize() throws -> [Token] {
        var pos = 0
        // Jinja2's `line_starting`: did the previous match end with a newline (true at the start of the source)?
        var lineStarting = true
        while pos < s.count {
            // The root rule: the earliest `{{`, `{%` or `{#` from here.
            var p = pos
            var found: TagKind?
            while p + 1 < s.count {
                if s[p] == "{" {
                    switch s[p + 1] {
                    case "{": found = .variable
                    case "%": found = .block
                    case "#": found = .comment
                    default: break
                    }
                    if found != nil { break }
                }
                p += 1
            }
            guard let kind = found else {
                emit(.data(String(String.UnicodeScalarView(s[pos...]))), at: pos)
                break
            }
            var sign: Unicode.Scalar?
            if p + 2 < s.count, s[p + 2] == "-" || s[p + 2] == "+" { sign = s[p + 2] }
            // `{% raw %}` is tried before the plain block opener, as the first alternative of the root regex.
            let raw = kind == .block ? matchRawBegin(at: p) : nil
            if let raw { sign = raw.sign }
            let text = stripped(Array(s[pos..<p]), sign: sign, isVariable: kind == .variable,
                                lineStarting: lineStarting)
            if !text.isEmpty { emit(.data(String(String.UnicodeScalarView(text))), at: pos) }

            if let raw {
                (pos, lineStarting) = try lexRawBody(from: raw.end, opener: p,
                                                     lineStarting: s[raw.end - 1] == "\n")
                continue
            }
            pos = p + 2 + (sign == nil ? 0 : 1)
            lineStarting = false
            switch kind {
            case .comment:
                pos = try skipComment(from: pos, opener: p, lineStarting: &lineStarting)
            case .variable, .block:
                emit(kind == .block ? .blockBegin : .variableBegin, at: p)
                pos = try lexTag(from: pos, isBlock: kind == .block, opener: p, lineStarting: &lineStarting)
            }
        }
        tokens.append(Token(kind: .eof, location: location(s.count)))
        return tokens
    }

    private mutating func emit(_ kind: TokenKind, at offset: Int) {
        tokens.append(Token(kind: kind, location: location(offset)))
    }

    /// The text before a tag after whitespace control (Jinja2's `OptionalLStrip` handling in `tokeniter`).
    private func stripped(_ text: [Unicode.Scalar], sign: Unicode.Scalar?, isVariable: Bool,
                          lineStarting: Bool) -> [Unicode.Scalar] {
        if sign == "-" {
            // `text.rstrip()`: every kind of whitespace, newlines included.
            var end = text.count
            while end > 0, text[end - 1].isPythonWhitespace { end -= 1 }
            return Array(text[..<end])
        }
        guard sign != "+", lstripBlocks, !isVariable else { return text }
        // lstrip_blocks: only whitespace between the last newline (or the start of a line) and the tag goes.
        let lPos = (text.lastIndex(of: "\n") ?? -1) + 1
        guard lPos > 0 || lineStarting else { return text }
        let tail = text[lPos...]
        if !tail.isEmpty, tail.allSatisfy({ $0.isPythonWhitespace }) { return Array(text[..<lPos]) }
        return text
    }

    /// Matches `{%(-|+|)\s*raw\s*(?:-%}\s*|%})` at `p`; returns where the match ends and its sign.
    private func matchRawBegin(at p: Int) -> (end: Int, sign: Unicode.Scalar?)? {
        var i = p + 2
        var sign: Unicode.Scalar?
        if i < s.count, s[i] == "-" || s[i] == "+" { sign = s[i]; i += 1 }
        i = skipWhitespace(from: i)
        guard starts(with: "raw", at: i) else { return nil }
        i = skipWhitespace(from: i + 3)
        if starts(with: "-%}", at: i) { return (skipWhitespace(from: i + 3), sign) }
        if starts(with: "%}", at: i) { return (i + 2, sign) }
        return nil
    }

    /// The body of a raw block up to and including its `{% endraw %}`; returns the offset after it and whether
    /// that match ended with a newline.
    private mutating func lexRawBody(from start: Int, opener: Int,
                                     lineStarting: Bool) throws -> (end: Int, lineStarting: Bool) {
        var i = start
        while i + 1 < s.count {
            if s[i] == "{", s[i + 1] == "%" {
                var j = i + 2
                var sign: Unicode.Scalar?
                if j < s.count, s[j] == "-" || s[j] == "+" { sign = s[j]; j += 1 }
                j = skipWhitespace(from: j)
                if starts(with: "endraw", at: j) {
                    j = skipWhitespace(from: j + 6)
                    var end: Int?
                    if starts(with: "+%}", at: j) {
                        end = j + 3
                    } else if starts(with: "-%}", at: j) {
                        end = skipWhitespace(from: j + 3)
                    } else if starts(with: "%}", at: j) {
                        end = afterTrimmedNewline(j + 2)
                    }
                    if let end {
                        let text = stripped(Array(s[start..<i]), sign: sign, isVariable: false,
                                            lineStarting: lineStarting)
                        if !text.isEmpty { emit(.data(String(String.UnicodeScalarView(text))), at: start) }
                        return (end, s[end - 1] == "\n")
                    }
                }
            }
            i += 1
        }
        throw TemplateError.syntax("Missing end of raw directive", at: location(opener))
    }

    /// Skips a comment's body and closing `#}` (with its whitespace control); returns the offset after it.
    private func skipComment(from start: Int, opener: Int, lineStarting: inout Bool) throws -> Int {
        var i = start
        while i < s.count {
            var end: Int?
            if (s[i] == "-" || s[i] == "+"), starts(with: "#}", at: i + 1) {
                end = s[i] == "-" ? skipWhitespace(from: i + 3) : i + 3
            } else if starts(with: "#}", at: i) {
                end = afterTrimmedNewline(i + 2)
            }
            if let end {
                lineStarting = s[end - 1] == "\n"
                return end
            }
            i += 1
        }
        throw TemplateError.syntax("Missing end of comment tag", at: location(opener))
    }

    /// The tokens inside `{{ }}` or `{% %}` up to and including the closing delimiter.
    private mutating func lexTag(from start: Int, isBlock: Bool, opener: Int,
                                 lineStarting: inout Bool) throws -> Int {
        var i = start
        // Jinja2 only recognises the closing delimiter while brackets are balanced, so `{{ {'a': {}} }}` works.
        var balancing: [Unicode.Scalar] = []
        while true {
            guard i < s.count else {
                let expected = isBlock ? "end of statement block" : "end of print statement"
                throw TemplateError.syntax("unexpected end of template, expected '\(expected)'", at: location(s.count))
            }
            if balancing.isEmpty {
                var end: Int?
                if isBlock {
                    if starts(with: "+%}", at: i) {
                        end = i + 3
                    } else if starts(with: "-%}", at: i) {
                        end = skipWhitespace(from: i + 3)
                    } else if starts(with: "%}", at: i) {
                        end = afterTrimmedNewline(i + 2)
                    }
                } else if starts(with: "-}}", at: i) {
                    end = skipWhitespace(from: i + 3)
                } else if starts(with: "}}", at: i) {
                    end = i + 2
                }
                if let end {
                    emit(isBlock ? .blockEnd : .variableEnd, at: i)
                    lineStarting = s[end - 1] == "\n"
                    return end
                }
            }
            let u = s[i]
            if u.isPythonWhitespace {
                i = skipWhitespace(from: i)
                continue
            }
            if let (value, end) = matchFloat(at: i) {
                emit(.float(value), at: i)
                i = end
                continue
            }
            if let (value, end) = try matchInteger(at: i) {
                emit(.integer(value), at: i)
                i = end
                continue
            }
            if u == "_" || u.properties.isXIDStart {
                var j = i + 1
                while j < s.count, s[j].properties.isXIDContinue { j += 1 }
                emit(.name(String(String.UnicodeScalarView(s[i..<j]))), at: i)
                i = j
                continue
            }
            if u == "'" || u == "\"" {
                let (value, end) = try matchString(at: i)
                emit(.string(value), at: i)
                i = end
                continue
            }
            if let op = Self.operators.first(where: { starts(with: $0, at: i) }) {
                switch op {
                case "{": balancing.append("}")
                case "(": balancing.append(")")
                case "[": balancing.append("]")
                case "}", ")", "]":
                    guard let expected = balancing.popLast() else {
                        throw TemplateError.syntax("unexpected '\(op)'", at: location(i))
                    }
                    if String(expected) != op {
                        throw TemplateError.syntax("unexpected '\(op)', expected '\(expected)'", at: location(i))
                    }
                default: break
                }
                emit(.op(op), at: i)
                i += op.unicodeScalars.count
                continue
            }
            throw TemplateError.syntax("unexpected char \(pythonRepr(String(u))) at \(i)", at: location(i))
        }
    }

    /// Jinja2's operators, longest first (as `operator_re` sorts them).
    private static let operators = ["//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[", "]", "(",
                                    ")", "{", "}", ">", "<", "=", ".", ":", "|", ",", ";"]

    // MARK: Literals

    /// `(\d+_)*\d+`: digits with single underscores between them; returns the end offset.
    private func matchDigits(at i: Int, isDigit: (Unicode.Scalar) -> Bool = { $0.isASCIIDigit }) -> Int? {
        var j = i
        guard j < s.count, isDigit(s[j]) else { return nil }
        while true {
            while j < s.count, isDigit(s[j]) { j += 1 }
            if j + 1 < s.count, s[j] == "_", isDigit(s[j + 1]) { j += 1 } else { return j }
        }
    }

    /// Jinja2's `float_re`: `(?<!\.)(\d+_)*\d+((\.(\d+_)*\d+)?e[+\-]?(\d+_)*\d+|\.(\d+_)*\d+)`.
    private func matchFloat(at i: Int) -> (Double, Int)? {
        if i > 0, s[i - 1] == "." { return nil }
        guard let intEnd = matchDigits(at: i) else { return nil }
        func exponent(at k: Int) -> Int? {
            guard k < s.count, s[k] == "e" || s[k] == "E" else { return nil }
            var m = k + 1
            if m < s.count, s[m] == "+" || s[m] == "-" { m += 1 }
            return matchDigits(at: m)
        }
        var end: Int?
        if intEnd < s.count, s[intEnd] == ".", let fracEnd = matchDigits(at: intEnd + 1) {
            end = exponent(at: fracEnd) ?? fracEnd
        } else {
            end = exponent(at: intEnd)
        }
        guard let end else { return nil }
        let text = String(String.UnicodeScalarView(s[i..<end].filter { $0 != "_" }))
        guard let value = Double(text) else { return nil }
        return (value, end)
    }

    /// Jinja2's `integer_re`: binary, octal, hex (with optional single underscores), decimal without leading zeros.
    private func matchInteger(at i: Int) throws -> (Int, Int)? {
        guard s[i].isASCIIDigit else { return nil }
        var end: Int
        var radix = 10
        var digitsStart = i
        if s[i] == "0", i + 1 < s.count, let r = ["b": 2, "o": 8, "x": 16][String(s[i + 1]).lowercased()] {
            // 0b(_?[0-1])+ and friends
            let isDigit: (Unicode.Scalar) -> Bool = { u in
                guard u.isASCII, let d = Int(String(u), radix: 16) else { return false }
                return d < r
            }
            var j = i + 2
            while j < s.count {
                if isDigit(s[j]) { j += 1 } else if s[j] == "_", j + 1 < s.count, isDigit(s[j + 1]) { j += 2 } else { break }
            }
            if j > i + 2 {
                radix = r
                digitsStart = i + 2
                end = j
            } else {
                end = i + 1  // `0(_?0)*` then matches the lone zero
            }
        } else if s[i] == "0" {
            end = i + 1
            while end < s.count {
                if s[end] == "0" { end += 1 } else if s[end] == "_", end + 1 < s.count, s[end + 1] == "0" { end += 2 } else { break }
            }
        } else {
            end = matchDigits(at: i) ?? i + 1
        }
        let digits = String(String.UnicodeScalarView(s[digitsStart..<end].filter { $0 != "_" }))
        guard let value = Int(digits, radix: radix) else {
            throw TemplateError.unsupported("integer literal \(digits) is too large (64-bit integers only)",
                                            at: location(i))
        }
        return (value, end)
    }

    /// A quoted string; escapes are decoded as Jinja2 does (`encode("ascii", "backslashreplace")` then
    /// `decode("unicode-escape")`, i.e. Python's escapes, with unknown escapes kept literally).
    private func matchString(at i: Int) throws -> (String, Int) {
        let quote = s[i]
        var j = i + 1
        while j < s.count, s[j] != quote {
            j += s[j] == "\\" ? 2 : 1
        }
        guard j < s.count else { throw TemplateError.syntax("unterminated string literal", at: location(i)) }
        let body = Array(s[(i + 1)..<j])
        var out = String.UnicodeScalarView()
        var k = 0
        func fail(_ message: String) -> TemplateError { .syntax(message, at: location(i)) }
        func hex(_ count: Int, _ name: String) throws -> Unicode.Scalar {
            guard k + count <= body.count else { throw fail("truncated \(name) escape") }
            let text = String(String.UnicodeScalarView(body[k..<(k + count)]))
            guard text.unicodeScalars.allSatisfy({ $0.isASCII && $0.properties.isASCIIHexDigit }),
                  let code = UInt32(text, radix: 16) else { throw fail("truncated \(name) escape") }
            guard let scalar = Unicode.Scalar(code) else {
                // Python strings may hold lone surrogates; Swift strings cannot.
                let escape = String(name.prefix(2)) + text  // `\u` or `\U` and the digits
                throw TemplateError.unsupported("the escape \(escape) (a surrogate or a code point out of range)",
                                                at: location(i))
            }
            k += count
            return scalar
        }
        while k < body.count {
            let u = body[k]
            k += 1
            guard u == "\\", k < body.count else { out.append(u); continue }
            let e = body[k]
            k += 1
            switch e {
            case "\n": break  // a backslash-newline is a line continuation
            case "\\": out.append("\\")
            case "'": out.append("'")
            case "\"": out.append("\"")
            case "a": out.append("\u{07}")
            case "b": out.append("\u{08}")
            case "f": out.append("\u{0C}")
            case "n": out.append("\n")
            case "r": out.append("\r")
            case "t": out.append("\t")
            case "v": out.append("\u{0B}")
            case "0"..."7":
                var code = e.value - 48
                var n = 1
                while n < 3, k < body.count, ("0"..."7").contains(body[k]) {
                    code = code * 8 + body[k].value - 48
                    k += 1
                    n += 1
                }
                guard let scalar = Unicode.Scalar(code) else { throw fail("invalid octal escape") }
                out.append(scalar)
            case "x": out.append(try hex(2, "\\xXX"))
            case "u": out.append(try hex(4, "\\uXXXX"))
            case "U": out.append(try hex(8, "\\UXXXXXXXX"))
            case "N":
                throw TemplateError.unsupported("named Unicode escapes (\\N{...}) in string literals", at: location(i))
            default:
                if e.isASCII {
                    out.append("\\")
                    out.append(e)
                } else {
                    // backslashreplace wrote the character as `\xe9`; the backslash before it escapes that
                    // escape's backslash, leaving the text `\xe9` itself.
                    out.append(contentsOf: pythonBackslashReplace(e).unicodeScalars)
                }
            }
        }
        return (String(out), j + 1)
    }
}

// MARK: - Python character classes

extension Unicode.Scalar {
    /// Python's `str.isspace()`, which is also what `\s` matches in Jinja2's (Unicode) regular expressions and what
    /// `str.strip()` removes: bidirectional classes WS, B and S plus category Zs.
    var isPythonWhitespace: Bool {
        switch value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000:
            return true
        default:
            return false
        }
    }

    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}

/// The escape Python's "backslashreplace" error handler writes for a non-ASCII character: `\xe9`, `\u20ac`,
/// `\U0001f600`.
func pythonBackslashReplace(_ u: Unicode.Scalar) -> String {
    let hex = String(u.value, radix: 16)
    if u.value < 0x100 { return "\\x" + String(repeating: "0", count: 2 - hex.count) + hex }
    if u.value < 0x10000 { return "\\u" + String(repeating: "0", count: 4 - hex.count) + hex }
    return "\\U" + String(repeating: "0", count: 8 - hex.count) + hex
}
