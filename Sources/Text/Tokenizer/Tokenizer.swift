import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Text ↔ token ids for a model: the vocabulary, how text is cut and merged, which special tokens exist and which
/// are added around a sequence. Built from a Hugging Face `tokenizer.json` (+ `tokenizer_config.json`) or from a
/// GGUF file's `tokenizer.ggml.*` metadata; immutable and shareable.
///
/// Encoding: special and added tokens are split out of the text first (longest first); each stretch between them
/// is normalized, pre-tokenized and merged by the vocabulary's algorithm; BOS/EOS are added as the files say.
/// Decoding maps each token to its bytes (byte-level alphabet, `▁` spaces, `<0xNN>` byte tokens) and reads the
/// bytes as UTF-8.
public final class Tokenizer: @unchecked Sendable {
    /// How pieces become tokens.
    public enum Algorithm: Sendable, Equatable {
        /// GPT-2 style: bytes spelled in the byte-level alphabet, merged by rank.
        case byteLevelBPE
        /// SentencePiece style merged by rank (Llama-2 tokenizer.json): characters, `▁` for spaces, byte fallback.
        case sentencePieceBPE
        /// SentencePiece merged by score (llama.cpp's SPM for GGUF `llama` vocabularies): as above, by scores.
        case sentencePieceScores
    }

    /// A token that is matched in the raw text before anything else (HF `added_tokens`, GGUF control and
    /// user-defined tokens).
    public struct AddedToken: Sendable, Equatable {
        public var content: String
        public var id: Int
        /// Special tokens are dropped by `decode(skipSpecialTokens: true)`.
        public var special: Bool
        /// Whitespace on that side is absorbed into the token (HF `lstrip` / `rstrip`).
        public var lstrip = false
        public var rstrip = false
    }

    public let algorithm: Algorithm
    public let addedTokens: [AddedToken]
    public let bosToken: Int?
    /// The end-of-sequence token the files name (what templates call `eos_token`).
    public let eosToken: Int?
    /// Every token that ends generation: EOS and the turn-ending tokens of chat vocabularies.
    public let eosTokens: Set<Int>
    public let unknownToken: Int?
    public let addBOS: Bool
    public let addEOS: Bool
    /// Byte-level: the pre-tokenizer; nil to treat each stretch as one piece.
    public let preTokenizer: PreTokenizer?
    /// Apply Unicode NFC first (Qwen2).
    public let normalizeNFC: Bool
    /// SentencePiece: prepend `▁` to the text (HF `Prepend("▁")`, llama.cpp `add_space_prefix`).
    public let addSpacePrefix: Bool
    /// SentencePiece decoding: drop the space that starts the decoded text (HF `Strip(start: 1)`).
    public let stripLeadingSpace: Bool
    /// The model's chat template (Jinja), if its files carry one.
    public let chatTemplate: String?

    /// Token texts by id, as the vocabulary spells them, and token id by piece bytes.
    let table: PieceTable
    let bpe: BPE?
    let scored: ScoredMerges?
    /// Byte-level: whole pieces found in the vocabulary skip merging (HF `ignore_merges`, Llama 3).
    let ignoreMerges: Bool
    /// Token id of each byte's `<0xNN>` token (SentencePiece byte fallback), -1 where missing.
    let byteTokens: [Int32]
    /// Token id of each byte's byte-level character, -1 where missing.
    let byteLevelTokens: [Int32]
    /// The bytes each token decodes to, by id.
    let tokenBytes: PackedBytes
    let specialIDs: Set<Int>
    /// Added tokens by their first byte, longest first, for leftmost-longest matching.
    let addedByFirstByte: [UInt8: [(bytes: [UInt8], token: AddedToken)]]

    public var vocabularySize: Int { table.count }

    /// Token `id`'s text as the vocabulary spells it (nil outside the vocabulary).
    public func piece(_ id: Int) -> String? { id >= 0 && id < table.count ? table.piece(id) : nil }

    init(algorithm: Algorithm, table: PieceTable, addedTokens: [AddedToken],
         merges: [UInt64: (rank: Int32, result: Int32)]?,
         scores: [Float]?, bosToken: Int?, eosToken: Int?, eosTokens: Set<Int>, unknownToken: Int?, addBOS: Bool, addEOS: Bool,
         preTokenizer: PreTokenizer?, normalizeNFC: Bool, addSpacePrefix: Bool, stripLeadingSpace: Bool,
         ignoreMerges: Bool, chatTemplate: String?) {
        self.algorithm = algorithm
        self.addedTokens = addedTokens
        self.bosToken = bosToken
        self.eosToken = eosToken
        self.eosTokens = eosTokens.union(eosToken.map { [$0] } ?? [])
        self.unknownToken = unknownToken
        self.addBOS = addBOS
        self.addEOS = addEOS
        self.preTokenizer = preTokenizer
        self.normalizeNFC = normalizeNFC
        self.addSpacePrefix = addSpacePrefix
        self.stripLeadingSpace = stripLeadingSpace
        self.ignoreMerges = ignoreMerges
        self.chatTemplate = chatTemplate
        self.table = table
        bpe = merges.map { BPE(merges: $0) }
        scored = scores.map { ScoredMerges(table: table, scores: $0) }

        var bytes = [Int32](repeating: -1, count: 256)
        var levelBytes = [Int32](repeating: -1, count: 256)
        for b in 0..<256 {
            bytes[b] = table.id(byteTokenName(UInt8(b))) ?? -1
            levelBytes[b] = table.id(String(ByteLevel.scalars[b])) ?? -1
        }
        byteTokens = bytes
        byteLevelTokens = levelBytes
        specialIDs = Set(addedTokens.filter(\.special).map(\.id))
        var byFirst: [UInt8: [(bytes: [UInt8], token: AddedToken)]] = [:]
        for token in addedTokens where !token.content.isEmpty {
            let b = Array(token.content.utf8)
            byFirst[b[0], default: []].append((b, token))
        }
        for key in byFirst.keys { byFirst[key]!.sort { $0.bytes.count > $1.bytes.count } }
        addedByFirstByte = byFirst
        let addedContent = Dictionary(addedTokens.map { ($0.id, $0.content) }, uniquingKeysWith: { a, _ in a })
        var tokenBytes = PackedBytes(reservingCount: table.count, bytes: table.byteCount)
        for id in 0..<table.count {
            let piece = table.piece(id)
            if let content = addedContent[id] {
                tokenBytes.append(content.utf8)
                continue
            }
            switch algorithm {
            case .byteLevelBPE:
                if let decoded = ByteLevel.decode(piece) { tokenBytes.append(decoded) } else { tokenBytes.append(piece.utf8) }
            case .sentencePieceBPE, .sentencePieceScores:
                if let b = byteFallbackValue(piece) { tokenBytes.append(CollectionOfOne(b)) } else {
                    tokenBytes.append(piece.replacingOccurrences(of: "\u{2581}", with: " ").utf8)
                }
            }
        }
        self.tokenBytes = tokenBytes
    }

    // MARK: - Encoding

    /// Token ids for `text`. `addSpecialTokens` adds BOS/EOS as the tokenizer's files ask; `parseSpecial` matches
    /// special and added tokens written in the text (as transformers and `llama-cli` do for chat prompts).
    public func encode(_ text: String, addSpecialTokens: Bool = true, parseSpecial: Bool = true) -> [Int] {
        var out: [Int] = []
        if addSpecialTokens, addBOS, let bos = bosToken { out.append(bos) }
        let bytes = Array(text.utf8)
        bytes.withUnsafeBytes { raw in
            var start = 0
            var i = 0
            // Added tokens are found in the raw bytes, leftmost and longest first; the stretches between them are
            // encoded by the vocabulary's algorithm.
            while i < raw.count {
                guard parseSpecial, let candidates = addedByFirstByte[raw[i]],
                      let match = candidates.first(where: { c in
                          c.bytes.count <= raw.count - i && c.bytes.withUnsafeBytes { memcmp($0.baseAddress!, raw.baseAddress! + i, c.bytes.count) == 0 }
                      }) else {
                    i += 1
                    continue
                }
                var end = i
                if match.token.lstrip { while end > start, isASCIIWhitespace(raw[end - 1]) { end -= 1 } }
                if end > start { encodeStretch(UnsafeRawBufferPointer(rebasing: raw[start..<end]), into: &out) }
                out.append(match.token.id)
                i += match.bytes.count
                if match.token.rstrip { while i < raw.count, isASCIIWhitespace(raw[i]) { i += 1 } }
                start = i
            }
            if start < raw.count { encodeStretch(UnsafeRawBufferPointer(rebasing: raw[start..<raw.count]), into: &out) }
        }
        if addSpecialTokens, addEOS, let eos = eosToken { out.append(eos) }
        return out
    }

    /// One stretch of text between added tokens.
    private func encodeStretch(_ stretch: UnsafeRawBufferPointer, into out: inout [Int]) {
        switch algorithm {
        case .byteLevelBPE:
            var text = String(decoding: stretch, as: UTF8.self)
            if normalizeNFC { text = text.precomposedStringWithCanonicalMapping }
            let scalars = Array(text.unicodeScalars)
            let ranges = preTokenizer?.split(scalars) ?? [0..<scalars.count]
            var piece: [UInt8] = []
            for range in ranges {
                piece.removeAll(keepingCapacity: true)
                for s in scalars[range] { piece.append(contentsOf: String(s).utf8) }
                encodeBytes(piece, into: &out)
            }
        case .sentencePieceBPE, .sentencePieceScores:
            // Spaces become ▁; HF's normalizer prepends ▁ to every stretch between added tokens, llama.cpp at the
            // start and after each special token — the same stretches.
            var normalized: [UInt8] = addSpacePrefix ? [0xE2, 0x96, 0x81] : []
            for b in stretch {
                if b == 0x20 { normalized += [0xE2, 0x96, 0x81] } else { normalized.append(b) }
            }
            normalized.withUnsafeBytes { text in
                if algorithm == .sentencePieceScores, let scored {
                    scored.encode(text, byteTokens: byteTokens, unknown: Int32(unknownToken ?? 0), into: &out)
                } else {
                    encodeCharacters(text, into: &out)
                }
            }
        }
    }

    /// Byte-level BPE of one piece.
    private func encodeBytes(_ bytes: [UInt8], into out: inout [Int]) {
        if ignoreMerges, let id = table.id(Array(ByteLevel.encode(bytes).utf8)) {
            out.append(Int(id))
            return
        }
        var symbols: [Int32] = []
        symbols.reserveCapacity(bytes.count)
        for b in bytes {
            let id = byteLevelTokens[Int(b)]
            if id >= 0 { symbols.append(id) } else if let unknown = unknownToken { symbols.append(Int32(unknown)) }
        }
        bpe?.merge(&symbols)
        for s in symbols { out.append(Int(s)) }
    }

    /// SentencePiece-style BPE by rank: characters, byte fallback for those missing, then merges.
    private func encodeCharacters(_ text: UnsafeRawBufferPointer, into out: inout [Int]) {
        var symbols: [Int32] = []
        var i = 0
        while i < text.count {
            let n = min(utf8Length(text[i]), text.count - i)
            if let id = table.id(UnsafeRawBufferPointer(rebasing: text[i..<(i + n)])) {
                symbols.append(id)
            } else {
                for b in text[i..<(i + n)] {
                    let id = byteTokens[Int(b)]
                    if id >= 0 { symbols.append(id) } else if let unknown = unknownToken { symbols.append(Int32(unknown)) }
                }
            }
            i += n
        }
        bpe?.merge(&symbols)
        for s in symbols { out.append(Int(s)) }
    }

    // MARK: - Decoding

    /// The bytes a token stands for (its text for special tokens).
    public func bytes(of token: Int) -> [UInt8] {
        guard token >= 0, token < tokenBytes.count else { return [] }
        return Array(tokenBytes[token])
    }

    public func isSpecial(_ token: Int) -> Bool { specialIDs.contains(token) }

    /// The text of `ids`; invalid UTF-8 becomes U+FFFD, as HF and llama.cpp do.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) throws -> String {
        var bytes: [UInt8] = []
        for id in ids {
            guard id >= 0, id < vocabularySize else {
                throw TokenizerError.tokenOutOfRange(token: id, vocabularySize: vocabularySize)
            }
            if skipSpecialTokens && specialIDs.contains(id) { continue }
            bytes.append(contentsOf: tokenBytes[id])
        }
        var text = String(decoding: bytes, as: UTF8.self)
        if stripLeadingSpace, text.hasPrefix(" ") { text.removeFirst() }
        return text
    }
}

/// The byte of a SentencePiece byte token `<0xNN>`.
func byteFallbackValue(_ piece: String) -> UInt8? {
    let u = Array(piece.utf8)
    guard u.count == 6, u[0] == 0x3C, u[1] == 0x30, u[2] == 0x78, u[5] == 0x3E else { return nil }
    func hex(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x41...0x46: return c - 0x41 + 10
        case 0x61...0x66: return c - 0x61 + 10
        default: return nil
        }
    }
    guard let h = hex(u[3]), let l = hex(u[4]) else { return nil }
    return h << 4 | l
}

/// `<0xNN>` with upper-case hex digits, as SentencePiece names byte tokens.
func byteTokenName(_ byte: UInt8) -> String {
    let digits = Array("0123456789ABCDEF")
    return "<0x\(digits[Int(byte >> 4)])\(digits[Int(byte & 15)])>"
}

@inline(__always)
func isASCIIWhitespace(_ b: UInt8) -> Bool { b == 0x20 || (0x09...0x0D).contains(b) }
