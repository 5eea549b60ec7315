/// Splits text into the pieces BPE runs on, by the regular expressions of the byte-level families.
///
/// The patterns are matched by hand-written scanners rather than a regex engine: they are few, fixed, and on the
/// hot path of every prompt. Each scanner implements one known pattern exactly, alternative by alternative in
/// order, as a backtracking regex engine would match it (leftmost alternative wins):
///
/// - `.gpt2`: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+` (GPT-2, SmolLM2 after
///   its digit split, StarCoder…)
/// - `.llama3`: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|`
///   `\s*[\r\n]+|\s+(?!\S)|\s+` (Llama 3)
/// - `.qwen2`: as `.llama3` with `\p{N}` single digits (Qwen2)
public enum SplitPattern: String, Sendable, CaseIterable {
    case gpt2, llama3, qwen2

    /// The pattern text as tokenizer.json files and llama.cpp spell it.
    public var regex: String {
        switch self {
        case .gpt2:
            return #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
        case .llama3:
            return #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        case .qwen2:
            return #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        }
    }

    /// The known pattern a regex spells, or nil.
    public init?(regex: String) {
        guard let known = Self.allCases.first(where: { $0.regex == regex }) else { return nil }
        self = known
    }
}

/// How a text is cut before BPE.
public struct PreTokenizer: Sendable, Equatable {
    /// Split every decimal digit into a piece of its own first (HF `Digits(individual_digits: true)`; SmolLM2).
    public var individualDigits: Bool
    public var pattern: SplitPattern

    public init(individualDigits: Bool = false, pattern: SplitPattern) {
        self.individualDigits = individualDigits
        self.pattern = pattern
    }

    /// The pieces of `text`, as ranges of its Unicode scalars. Every scalar belongs to exactly one piece.
    public func split(_ scalars: [Unicode.Scalar]) -> [Range<Int>] {
        var pieces: [Range<Int>] = []
        if individualDigits {
            // Each digit isolated, the text between them split by the pattern.
            var start = 0
            for i in scalars.indices where scalars[i].isNumber {
                if start < i { scan(scalars, start..<i, into: &pieces) }
                pieces.append(i..<(i + 1))
                start = i + 1
            }
            if start < scalars.count { scan(scalars, start..<scalars.count, into: &pieces) }
        } else {
            scan(scalars, 0..<scalars.count, into: &pieces)
        }
        return pieces
    }

    private func scan(_ s: [Unicode.Scalar], _ range: Range<Int>, into pieces: inout [Range<Int>]) {
        var i = range.lowerBound
        let end = range.upperBound
        while i < end {
            let n = pattern == .gpt2 ? gpt2Match(s, i, end) : llamaMatch(s, i, end, digits: pattern == .llama3 ? 3 : 1)
            pieces.append(i..<(i + n))
            i += n
        }
    }

    // MARK: Scanners. Each returns the length (≥ 1) of the match at i.

    private func gpt2Match(_ s: [Unicode.Scalar], _ i: Int, _ end: Int) -> Int {
        if let n = contraction(s, i, end, caseInsensitive: false) { return n }
        let space = s[i] == " " && i + 1 < end ? 1 : 0
        let j = i + space
        if j < end {
            let c = s[j]
            if c.isLetter { return space + run(s, j, end) { $0.isLetter } }
            if c.isNumber { return space + run(s, j, end) { $0.isNumber } }
            if !c.isSpace { return space + run(s, j, end) { !$0.isSpace && !$0.isLetter && !$0.isNumber } }
        }
        return whitespace(s, i, end)
    }

    private func llamaMatch(_ s: [Unicode.Scalar], _ i: Int, _ end: Int, digits: Int) -> Int {
        if let n = contraction(s, i, end, caseInsensitive: true) { return n }
        let c = s[i]
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if c.isLetter { return run(s, i, end) { $0.isLetter } }
        if c != "\r" && c != "\n" && !c.isNumber && i + 1 < end && s[i + 1].isLetter {
            return 1 + run(s, i + 1, end) { $0.isLetter }
        }
        // \p{N}{1,digits}
        if c.isNumber { return min(digits, run(s, i, end) { $0.isNumber }) }
        //  ?[^\s\p{L}\p{N}]+[\r\n]*
        let space = c == " " && i + 1 < end ? 1 : 0
        let j = i + space
        if j < end, !s[j].isSpace, !s[j].isLetter, !s[j].isNumber {
            var k = j + run(s, j, end) { !$0.isSpace && !$0.isLetter && !$0.isNumber }
            while k < end, s[k] == "\r" || s[k] == "\n" { k += 1 }
            return k - i
        }
        // \s*[\r\n]+ : the whitespace run up to and including its last line break.
        let spaces = run(s, i, end) { $0.isSpace }
        if let last = (i..<(i + spaces)).last(where: { s[$0] == "\r" || s[$0] == "\n" }) {
            return last + 1 - i
        }
        return whitespace(s, i, end)
    }

    /// `\s+(?!\S)|\s+` at i (i holds whitespace): the run, less its last scalar when a non-space follows it.
    private func whitespace(_ s: [Unicode.Scalar], _ i: Int, _ end: Int) -> Int {
        let n = run(s, i, end) { $0.isSpace }
        if n == 0 { return 1 } // not reached by the patterns above; keeps the scan moving
        if i + n < end && n > 1 { return n - 1 }
        return n
    }

    /// 's 't 're 've 'm 'll 'd at i.
    private func contraction(_ s: [Unicode.Scalar], _ i: Int, _ end: Int, caseInsensitive: Bool) -> Int? {
        guard s[i] == "'", i + 1 < end else { return nil }
        func lower(_ c: Unicode.Scalar) -> Unicode.Scalar {
            caseInsensitive && ("A"..."Z").contains(c) ? Unicode.Scalar(c.value + 32)! : c
        }
        let a = lower(s[i + 1])
        if a == "s" || a == "t" || a == "m" || a == "d" { return 2 }
        guard i + 2 < end else { return nil }
        let b = lower(s[i + 2])
        if (a == "r" && b == "e") || (a == "v" && b == "e") || (a == "l" && b == "l") { return 3 }
        return nil
    }

    @inline(__always)
    private func run(_ s: [Unicode.Scalar], _ i: Int, _ end: Int, _ p: (Unicode.Scalar) -> Bool) -> Int {
        var k = i
        while k < end && p(s[k]) { k += 1 }
        return k - i
    }
}

// MARK: - Character classes as the patterns define them

extension Unicode.Scalar {
    /// `\p{L}`: general category Letter.
    var isLetter: Bool {
        if value < 0x80 { return (0x41...0x5A).contains(value) || (0x61...0x7A).contains(value) }
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    /// `\p{N}`: general category Number.
    var isNumber: Bool {
        if value < 0x80 { return (0x30...0x39).contains(value) }
        switch properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    /// `\s`: Unicode White_Space.
    var isSpace: Bool {
        if value < 0x80 { return value == 0x20 || (0x09...0x0D).contains(value) }
        return properties.isWhitespace
    }
}
