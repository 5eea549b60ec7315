/// Byte-pair encoding by merge ranks (GPT-2, Llama 3, Qwen2, SmolLM2, and Llama-2-style tokenizer.json files):
/// a piece starts as one symbol per character (or per byte) and the adjacent pair with the lowest merge rank is
/// merged until no listed pair remains — as HF tokenizers' `BPE::merge_word` and llama.cpp's `llm_tokenizer_bpe`.
struct BPE: Sendable {
    /// Merged token and rank for each mergeable pair of token ids, keyed `left << 32 | right`.
    let merges: [UInt64: (rank: Int32, result: Int32)]

    @inline(__always) static func key(_ a: Int32, _ b: Int32) -> UInt64 { UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b)) }

    /// Merges `symbols` (token ids) in place.
    func merge(_ symbols: inout [Int32]) {
        guard symbols.count > 1 else { return }
        // Pieces are short (a word): a linear scan per merge beats a heap here.
        while true {
            var best: Int32 = .max, at = -1, result: Int32 = 0
            for i in 0..<(symbols.count - 1) {
                if let m = merges[Self.key(symbols[i], symbols[i + 1])], m.rank < best {
                    best = m.rank
                    at = i
                    result = m.result
                }
            }
            if at < 0 { return }
            symbols[at] = result
            symbols.remove(at: at + 1)
            // Equal-rank pairs later in the piece (the same pair again) are taken by the next scans, left first.
        }
    }
}

/// SentencePiece's BPE by scores, as llama.cpp runs GGUF `llama` vocabularies (`llm_tokenizer_spm`): symbols start
/// as characters; repeatedly the adjacent pair whose concatenation is in the vocabulary with the highest score is
/// merged (ties to the left); characters missing from the vocabulary fall back to their UTF-8 byte tokens.
struct ScoredMerges: Sendable {
    let table: PieceTable
    let scores: [Float]

    /// Tokens for the UTF-8 `text` (already normalized: spaces as ▁), with byte fallback through `byteTokens`.
    func encode(_ text: UnsafeRawBufferPointer, byteTokens: [Int32], unknown: Int32, into out: inout [Int]) {
        // Symbols as byte ranges of the text, one per UTF-8 character to start with.
        var starts: [Int] = []
        var i = 0
        while i < text.count {
            starts.append(i)
            i += utf8Length(text[i])
        }
        guard !starts.isEmpty else { return }
        var ends = Array(starts.dropFirst()) + [text.count]
        func span(_ a: Int, _ b: Int) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: text[a..<b]) }
        while starts.count > 1 {
            var bestScore = -Float.infinity, at = -1
            for k in 0..<(starts.count - 1) {
                if let id = table.id(span(starts[k], ends[k + 1])), scores[Int(id)] > bestScore {
                    bestScore = scores[Int(id)]
                    at = k
                }
            }
            if at < 0 { break }
            ends[at] = ends[at + 1]
            starts.remove(at: at + 1)
            ends.remove(at: at + 1)
        }
        for k in starts.indices {
            if let id = table.id(span(starts[k], ends[k])) {
                out.append(Int(id))
            } else {
                for b in span(starts[k], ends[k]) { out.append(Int(byteTokens[Int(b)] >= 0 ? byteTokens[Int(b)] : unknown)) }
            }
        }
    }
}

/// Bytes of the UTF-8 sequence a lead byte starts (1 for stray continuation bytes).
@inline(__always)
func utf8Length(_ lead: UInt8) -> Int {
    lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1
}
