import Foundation

// Python's text operations, on Unicode scalars (Python's "characters"), not Swift's grapheme clusters: a Python
// string of "e" + U+0301 has length 2, and "e\u{301}".startswith("e") is true; Swift's String would say 1 and
// false. Everything here mirrors CPython's `unicodeobject.c` behaviour for the methods templates use.

typealias Scalars = [Unicode.Scalar]

extension String {
    var scalars: Scalars { Array(unicodeScalars) }
    init(scalars: some Sequence<Unicode.Scalar>) {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        self.init(view)
    }
}

// MARK: - repr

/// Python's `repr(str)`: single quotes unless the text has a single quote and no double quote; escapes for
/// backslash, the quote, `\t`, `\n`, `\r`, other control characters and non-printable characters.
func pythonRepr(_ s: String) -> String {
    let quote: Unicode.Scalar = s.unicodeScalars.contains("'") && !s.unicodeScalars.contains("\"") ? "\"" : "'"
    var out = String.UnicodeScalarView()
    out.append(quote)
    for u in s.unicodeScalars {
        switch u {
        case quote, "\\": out.append("\\"); out.append(u)
        case "\t": out.append(contentsOf: "\\t".unicodeScalars)
        case "\n": out.append(contentsOf: "\\n".unicodeScalars)
        case "\r": out.append(contentsOf: "\\r".unicodeScalars)
        default:
            if u.value < 0x20 || u.value == 0x7F || (u.value > 0x7F && !u.isPythonPrintable) {
                out.append(contentsOf: pythonBackslashReplace(u).unicodeScalars)
            } else {
                out.append(u)
            }
        }
    }
    out.append(quote)
    return String(out)
}

extension Unicode.Scalar {
    /// Python's `str.isprintable()` for one character: not in categories Cc, Cf, Cs, Co, Cn, Zl, Zp, Zs (but the
    /// ASCII space is printable).
    var isPythonPrintable: Bool {
        if self == " " { return true }
        switch properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator,
             .spaceSeparator:
            return false
        default:
            return true
        }
    }
}

/// Python's `repr(float)` (also `str(float)` and what `json.dumps` writes): the shortest digits that round-trip,
/// in positional notation when the decimal exponent is in -4..<16, else `1e+16` style; always with a `.0` or
/// an exponent so it reads as a float.
func pythonFloatRepr(_ d: Double) -> String {
    if d.isNaN { return "nan" }
    if d.isInfinite { return d < 0 ? "-inf" : "inf" }
    if d == 0 { return d.sign == .minus ? "-0.0" : "0.0" }
    // Swift's description has the same shortest round-trip digits; only the layout differs.
    let text = "\(Swift.abs(d))"
    var mantissa = Substring(text)
    var exponent = 0
    if let e = text.firstIndex(where: { $0 == "e" || $0 == "E" }) {
        mantissa = text[..<e]
        exponent = Int(text[text.index(after: e)...]) ?? 0
    }
    let parts = mantissa.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
    var digits = Array(parts[0] + (parts.count > 1 ? parts[1] : ""))
    var decimalPoint = parts[0].count + exponent  // value = 0.d1d2… × 10^decimalPoint
    while digits.first == "0" {
        digits.removeFirst()
        decimalPoint -= 1
    }
    while digits.last == "0" { digits.removeLast() }
    let sign = d < 0 ? "-" : ""
    let n = digits.count
    if decimalPoint > -4 && decimalPoint <= 16 {
        if decimalPoint <= 0 {
            return sign + "0." + String(repeating: "0", count: -decimalPoint) + String(digits)
        }
        if decimalPoint >= n {
            return sign + String(digits) + String(repeating: "0", count: decimalPoint - n) + ".0"
        }
        return sign + String(digits[..<decimalPoint]) + "." + String(digits[decimalPoint...])
    }
    let e = decimalPoint - 1
    let expText = (e < 0 ? "-" : "+") + (Swift.abs(e) < 10 ? "0" : "") + String(Swift.abs(e))
    let rest = n > 1 ? "." + String(digits[1...]) : ""
    return sign + String(digits[0]) + rest + "e" + expText
}

// MARK: - Searching

/// The scalar offset of the first occurrence of `needle` in `haystack` at or after `start`, like `str.find`.
func pythonFind(_ haystack: String, _ needle: String, start: Int = 0, end: Int? = nil) -> Int? {
    pythonFind(haystack.scalars, needle.scalars, start: start, end: end)
}

func pythonFind(_ h: Scalars, _ n: Scalars, start: Int = 0, end: Int? = nil) -> Int? {
    let stop = Swift.min(end ?? h.count, h.count)
    guard start >= 0, stop - start >= n.count else { return nil }
    if n.isEmpty { return start }
    var i = start
    while i + n.count <= stop {
        if h[i] == n[0] && h[i..<(i + n.count)].elementsEqual(n) { return i }
        i += 1
    }
    return nil
}

func pythonRFind(_ h: Scalars, _ n: Scalars, start: Int = 0, end: Int? = nil) -> Int? {
    let stop = Swift.min(end ?? h.count, h.count)
    guard start >= 0, stop - start >= n.count else { return nil }
    var i = stop - n.count
    while i >= start {
        if h[i..<(i + n.count)].elementsEqual(n) { return i }
        i -= 1
    }
    return nil
}

/// Non-overlapping occurrences, as `str.count`.
func pythonCount(_ h: Scalars, _ n: Scalars, start: Int = 0, end: Int? = nil) -> Int {
    let stop = Swift.min(end ?? h.count, h.count)
    if start > stop { return 0 }
    if n.isEmpty { return stop - start + 1 }
    var count = 0
    var i = start
    while let found = pythonFind(h, n, start: i, end: stop) {
        count += 1
        i = found + n.count
    }
    return count
}

/// Python's slice-bound normalisation for `start`/`end` arguments of str methods: negative counts from the end,
/// then clamped to the string.
func pythonClampIndex(_ i: Int?, count: Int, default value: Int) -> Int {
    guard var i else { return value }
    if i < 0 { i += count }
    return Swift.max(0, Swift.min(i, count))
}

// MARK: - Stripping, splitting, replacing

func pythonStrip(_ s: String, _ chars: String?, left: Bool = true, right: Bool = true) -> String {
    let set = chars.map { Set($0.unicodeScalars) }
    func strips(_ u: Unicode.Scalar) -> Bool { set.map { $0.contains(u) } ?? u.isPythonWhitespace }
    let a = s.scalars
    var lo = 0, hi = a.count
    if left { while lo < hi, strips(a[lo]) { lo += 1 } }
    if right { while hi > lo, strips(a[hi - 1]) { hi -= 1 } }
    return String(scalars: a[lo..<hi])
}

/// `str.split(sep, maxsplit)`; `sep == nil` splits on runs of whitespace and drops empty strings.
func pythonSplit(_ s: String, _ separator: String?, maxSplit: Int = -1) throws -> [String] {
    let a = s.scalars
    var result: [String] = []
    guard let separator else {
        var i = 0
        var splits = 0
        while true {
            while i < a.count, a[i].isPythonWhitespace { i += 1 }
            if i == a.count { break }
            if maxSplit >= 0 && splits == maxSplit {
                result.append(String(scalars: a[i...]))
                break
            }
            let start = i
            while i < a.count, !a[i].isPythonWhitespace { i += 1 }
            result.append(String(scalars: a[start..<i]))
            splits += 1
        }
        return result
    }
    let sep = separator.scalars
    guard !sep.isEmpty else { throw ValueError.runtime("empty separator") }
    var start = 0
    var splits = 0
    while maxSplit < 0 || splits < maxSplit, let found = pythonFind(a, sep, start: start) {
        result.append(String(scalars: a[start..<found]))
        start = found + sep.count
        splits += 1
    }
    result.append(String(scalars: a[start...]))
    return result
}

/// `str.rsplit(sep, maxsplit)`.
func pythonRSplit(_ s: String, _ separator: String?, maxSplit: Int = -1) throws -> [String] {
    if maxSplit < 0 { return try pythonSplit(s, separator) }
    let a = s.scalars
    var result: [String] = []
    guard let separator else {
        var i = a.count
        var splits = 0
        while true {
            while i > 0, a[i - 1].isPythonWhitespace { i -= 1 }
            if i == 0 { break }
            if splits == maxSplit {
                result.append(String(scalars: a[..<i]))
                break
            }
            let end = i
            while i > 0, !a[i - 1].isPythonWhitespace { i -= 1 }
            result.append(String(scalars: a[i..<end]))
            splits += 1
        }
        return result.reversed()
    }
    let sep = separator.scalars
    guard !sep.isEmpty else { throw ValueError.runtime("empty separator") }
    var end = a.count
    var splits = 0
    while splits < maxSplit, let found = pythonRFind(a, sep, end: end) {
        result.append(String(scalars: a[(found + sep.count)..<end]))
        end = found
        splits += 1
    }
    result.append(String(scalars: a[..<end]))
    return result.reversed()
}

/// `str.splitlines(keepends)`: Python's line boundaries include `\r`, `\v`, `\f`, `\x1c`–`\x1e`, `\x85`, U+2028
/// and U+2029, with `\r\n` as one.
func pythonSplitLines(_ s: String, keepEnds: Bool = false) -> [String] {
    let a = s.scalars
    var lines: [String] = []
    var start = 0
    var i = 0
    while i < a.count {
        let u = a[i]
        switch u.value {
        case 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029:
            var end = i + 1
            if u == "\r", end < a.count, a[end] == "\n" { end += 1 }
            lines.append(String(scalars: a[start..<(keepEnds ? end : i)]))
            start = end
            i = end
        default:
            i += 1
        }
    }
    if start < a.count { lines.append(String(scalars: a[start...])) }
    return lines
}

/// `str.replace(old, new, count)`; an empty `old` inserts `new` between characters, as Python does.
func pythonReplace(_ s: String, _ old: String, _ new: String, count: Int = -1) -> String {
    let a = s.scalars, o = old.scalars, n = new.scalars
    var out = Scalars()
    var replaced = 0
    if o.isEmpty {
        for u in a {
            if count < 0 || replaced < count { out += n; replaced += 1 }
            out.append(u)
        }
        if count < 0 || replaced < count { out += n }
        return String(scalars: out)
    }
    var i = 0
    while count < 0 || replaced < count, let found = pythonFind(a, o, start: i) {
        out += a[i..<found]
        out += n
        i = found + o.count
        replaced += 1
    }
    out += a[i...]
    return String(scalars: out)
}

// MARK: - Case

extension Unicode.Scalar {
    var isCased: Bool { properties.isCased }
}

/// Lower-cases the character at `i` of `a`, with Greek capital sigma's final form as CPython's `lower_ucs4`.
private func lowerFull(_ a: Scalars, _ i: Int) -> String {
    let u = a[i]
    if u == "\u{03A3}" {
        // Final_Sigma: preceded by a cased letter and not followed by one (case-ignorable characters skipped).
        var j = i - 1
        while j >= 0, a[j].properties.isCaseIgnorable { j -= 1 }
        let before = j >= 0 && a[j].isCased
        var k = i + 1
        while k < a.count, a[k].properties.isCaseIgnorable { k += 1 }
        let after = k < a.count && a[k].isCased
        return before && !after ? "\u{03C2}" : "\u{03C3}"
    }
    return u.properties.lowercaseMapping
}

func pythonLower(_ s: String) -> String {
    let a = s.scalars
    var out = ""
    for i in a.indices { out += lowerFull(a, i) }
    return out
}

func pythonUpper(_ s: String) -> String {
    var out = ""
    for u in s.unicodeScalars { out += u.properties.uppercaseMapping }
    return out
}

/// `str.title()`: a character is title-cased after an uncased one, lower-cased after a cased one.
func pythonTitle(_ s: String) -> String {
    let a = s.scalars
    var out = ""
    var previousCased = false
    for i in a.indices {
        out += previousCased ? lowerFull(a, i) : a[i].properties.titlecaseMapping
        previousCased = a[i].isCased
    }
    return out
}

/// `str.capitalize()` (Python 3.8+): the first character title-cased, the rest lower-cased.
func pythonCapitalize(_ s: String) -> String {
    let a = s.scalars
    guard !a.isEmpty else { return "" }
    var out = a[0].properties.titlecaseMapping
    for i in a.indices.dropFirst() { out += lowerFull(a, i) }
    return out
}

func pythonSwapCase(_ s: String) -> String {
    let a = s.scalars
    var out = ""
    for i in a.indices {
        let p = a[i].properties
        if p.isUppercase { out += lowerFull(a, i) } else if p.isLowercase { out += p.uppercaseMapping } else { out.unicodeScalars.append(a[i]) }
    }
    return out
}

/// `str.islower()` / `str.isupper()`: at least one cased character and none of the other case.
func pythonIsLower(_ s: String) -> Bool {
    var cased = false
    for u in s.unicodeScalars {
        let p = u.properties
        if p.isUppercase || p.generalCategory == .titlecaseLetter { return false }
        if p.isLowercase { cased = true }
    }
    return cased
}

func pythonIsUpper(_ s: String) -> Bool {
    var cased = false
    for u in s.unicodeScalars {
        let p = u.properties
        if p.isLowercase || p.generalCategory == .titlecaseLetter { return false }
        if p.isUppercase { cased = true }
    }
    return cased
}

// MARK: - Padding

/// `str.center(width, fill)`, with CPython's rule for where the odd padding character goes.
func pythonCenter(_ s: String, _ width: Int, fill: Unicode.Scalar = " ") -> String {
    let n = s.unicodeScalars.count
    guard width > n else { return s }
    let margin = width - n
    let left = margin / 2 + (margin & width & 1)
    return String(repeating: String(fill), count: left) + s + String(repeating: String(fill), count: margin - left)
}
