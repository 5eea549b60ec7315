import Foundation
import Formats

extension Tokenizer {
    // MARK: - Hugging Face folders

    /// Reads `tokenizer.json` of a model folder, with `tokenizer_config.json` (BOS/EOS behaviour, chat template)
    /// and the EOS ids of `generation_config.json` / `config.json` where present. A file that is there is read in
    /// full: a malformed key it has is an error naming the file and key, never a value silently left out.
    public static func load(folder: String) throws -> Tokenizer {
        func file(_ name: String) -> String { (folder as NSString).appendingPathComponent(name) }
        let path = file("tokenizer.json")
        let json: TokenizerJSON = try readJSON(path)
        let configPath = file("tokenizer_config.json")
        let config: TokenizerConfigJSON? = FileManager.default.fileExists(atPath: configPath) ? try readJSON(configPath) : nil
        var extraEOS: [(file: String, ids: [Int])] = []
        for p in [file("generation_config.json"), file("config.json")] where FileManager.default.fileExists(atPath: p) {
            let eos: EOSIdsJSON = try readJSON(p)
            extraEOS.append((p, eos.ids))
        }
        return try Tokenizer(json: json, config: config.map { ($0, configPath) }, extraEOS: extraEOS, path: path)
    }

    /// `config` with the path of the tokenizer_config.json it was read from; `extraEOS` the `eos_token_id`s of
    /// each file that has them.
    convenience init(json: TokenizerJSON, config configFile: (json: TokenizerConfigJSON, path: String)?,
                     extraEOS: [(file: String, ids: [Int])], path: String) throws {
        let config = configFile?.json
        func unsupported(_ what: String, _ supported: String) -> TokenizerError {
            .unsupported(file: path, what: what, supported: supported)
        }
        let model = json.model
        guard model.type == nil || model.type == "BPE" else {
            throw unsupported("model type '\(model.type ?? "")'", "BPE")
        }
        guard model.continuingSubwordPrefix == nil, model.endOfWordSuffix == nil else {
            throw unsupported("BPE with continuing_subword_prefix or end_of_word_suffix", "plain BPE")
        }

        // The vocabulary: model vocab plus added tokens, by id.
        var byID: [Int: String] = [:]
        for (piece, id) in model.vocab { byID[id] = piece }
        for t in json.addedTokens { byID[t.id] = t.content }
        let size = (byID.keys.max() ?? -1) + 1
        guard size > 0, size <= 4_000_000 else {
            throw TokenizerError.invalid(file: path, key: "model.vocab", detail: "an empty or implausible vocabulary")
        }
        var pieces = [String](repeating: "", count: size)
        for (id, piece) in byID {
            guard id >= 0 else { throw TokenizerError.invalid(file: path, key: "model.vocab", detail: "negative id \(id)") }
            pieces[id] = piece
        }

        // What the components describe.
        let normalizers = json.normalizer?.flattened ?? []
        let preTokenizers = json.preTokenizer?.flattened ?? []
        let decoders = json.decoder?.flattened ?? []
        let byteLevel = preTokenizers.contains { $0.type == "ByteLevel" } || decoders.contains { $0.type == "ByteLevel" }
        var nfc = false, prefix = false, spaceToMeta = false
        for n in normalizers {
            switch n.type {
            case "NFC": nfc = true
            case "Prepend" where n.prepend == "\u{2581}": prefix = true
            case "Replace" where n.pattern?.string == " " && n.content == "\u{2581}": spaceToMeta = true
            default: throw unsupported("normalizer '\(n.type)'", "NFC, Prepend(▁), Replace(' ', ▁)")
            }
        }
        var preTokenizer: PreTokenizer?
        if byteLevel {
            var digits = false
            var pattern: SplitPattern?
            for p in preTokenizers {
                switch p.type {
                case "ByteLevel":
                    guard p.addPrefixSpace != true else { throw unsupported("ByteLevel with add_prefix_space", "add_prefix_space false") }
                    if p.useRegex ?? true { pattern = pattern ?? .gpt2 }
                case "Digits":
                    guard p.individualDigits == true else { throw unsupported("Digits without individual_digits", "individual digits") }
                    digits = true
                case "Split":
                    guard let regex = p.pattern?.regex, let known = SplitPattern(regex: regex) else {
                        throw unsupported("pre-tokenizer pattern \(p.pattern?.regex ?? p.pattern?.string ?? "?")",
                                          "the GPT-2, Llama 3 and Qwen2 patterns")
                    }
                    guard p.behavior == nil || p.behavior == "Isolated", p.invert != true else {
                        throw unsupported("Split with behavior \(p.behavior ?? "?")", "Isolated")
                    }
                    pattern = known
                default:
                    throw unsupported("pre-tokenizer '\(p.type)'", "ByteLevel, Split, Digits")
                }
            }
            preTokenizer = pattern.map { PreTokenizer(individualDigits: digits, pattern: $0) }
        } else {
            for p in preTokenizers {
                guard p.type == "Metaspace", p.replacement == nil || p.replacement == "\u{2581}" else {
                    throw unsupported("pre-tokenizer '\(p.type)'", "ByteLevel, Split, Digits, Metaspace")
                }
                spaceToMeta = true
                if p.prependScheme != "never" { prefix = true }
            }
            guard spaceToMeta else {
                throw unsupported("a tokenizer that is neither byte-level nor SentencePiece-style", "byte-level and SentencePiece BPE")
            }
        }
        var strip = false
        for d in decoders where d.type == "Strip" && (d.start ?? 0) > 0 || d.type == "Metaspace" && d.prependScheme != "never" {
            strip = true
        }

        // Merges as token-id pairs.
        let table = try PieceTable(pieces, file: path, key: "model.vocab")
        func id(_ piece: String) -> Int? { table.id(piece).map(Int.init) }
        var merges: [UInt64: (rank: Int32, result: Int32)] = [:]
        merges.reserveCapacity(model.merges.count)
        for (rank, pair) in model.merges.enumerated() {
            guard pair.count == 2, let a = id(pair[0]), let b = id(pair[1]), let r = id(pair[0] + pair[1]) else {
                throw TokenizerError.invalid(file: path, key: "model.merges",
                                             detail: "merge \(rank) (\(pair.joined(separator: " "))) names tokens outside the vocabulary")
            }
            let key = BPE.key(Int32(a), Int32(b))
            if merges[key] == nil { merges[key] = (Int32(rank), Int32(r)) }
        }

        // BOS/EOS: the post-processor's template, overridden by tokenizer_config.json where it says.
        // A token these name must be in the vocabulary: one that is not is an error, not a BOS or EOS left out.
        func vocabularyID(_ piece: String, file: String, key: String) throws -> Int {
            guard let token = id(piece) else {
                throw TokenizerError.invalid(file: file, key: key, detail: "'\(piece)' is not a token of \(path)")
            }
            return token
        }
        var bos: Int?, addBOS = false, addEOS = false, eosFromTemplate: Int?
        if let post = json.postProcessor {
            for p in post.flattened where p.type == "TemplateProcessing" {
                let single = p.single ?? []
                let key = "post_processor.single"
                if let first = single.first?.specialToken?.id { bos = try vocabularyID(first, file: path, key: key); addBOS = true }
                if single.count > 1, let last = single.last?.specialToken?.id {
                    eosFromTemplate = try vocabularyID(last, file: path, key: key)
                    addEOS = true
                }
            }
        }
        if let configFile, let piece = configFile.json.bosToken {
            bos = try vocabularyID(piece, file: configFile.path, key: "bos_token")
        }
        if let flag = config?.addBOSToken { addBOS = flag && bos != nil }
        var eos = Set<Int>()
        for (file, ids) in extraEOS {
            for token in ids {
                guard token >= 0 && token < size else {
                    throw TokenizerError.invalid(file: file, key: "eos_token_id",
                                                 detail: "token id \(token) is outside the vocabulary of \(path) (0..<\(size))")
                }
                eos.insert(token)
            }
        }
        var declaredEOS = eosFromTemplate
        if let configFile, let piece = configFile.json.eosToken {
            declaredEOS = try vocabularyID(piece, file: configFile.path, key: "eos_token")
        }
        if let id = declaredEOS { eos.insert(id) }
        if let flag = config?.addEOSToken { addEOS = flag && declaredEOS != nil }

        let added = json.addedTokens.map {
            AddedToken(content: $0.content, id: $0.id, special: $0.special, lstrip: $0.lstrip, rstrip: $0.rstrip)
        }
        self.init(algorithm: byteLevel ? .byteLevelBPE : .sentencePieceBPE, table: table, addedTokens: added,
                  merges: merges, scores: nil, bosToken: bos, eosToken: declaredEOS, eosTokens: eos,
                  unknownToken: try model.unkToken.map { try vocabularyID($0, file: path, key: "model.unk_token") }, addBOS: addBOS, addEOS: addEOS,
                  preTokenizer: preTokenizer, normalizeNFC: nfc, addSpacePrefix: prefix, stripLeadingSpace: strip,
                  ignoreMerges: model.ignoreMerges, chatTemplate: config?.chatTemplate)
    }

    // MARK: - GGUF

    /// `tokenizer.ggml.pre` values and the split they stand for in llama.cpp (llama-vocab.cpp).
    static let ggufPreTokenizers: [String: PreTokenizer] = [
        "default": PreTokenizer(pattern: .gpt2), "gpt2": PreTokenizer(pattern: .gpt2),
        "gpt-2": PreTokenizer(pattern: .gpt2), "mpt": PreTokenizer(pattern: .gpt2), "olmo": PreTokenizer(pattern: .gpt2),
        "llama3": PreTokenizer(pattern: .llama3), "llama-v3": PreTokenizer(pattern: .llama3),
        "llama-bpe": PreTokenizer(pattern: .llama3), "smaug-bpe": PreTokenizer(pattern: .llama3),
        "qwen2": PreTokenizer(pattern: .qwen2), "stablelm2": PreTokenizer(pattern: .qwen2),
        "smollm": PreTokenizer(individualDigits: true, pattern: .gpt2),
        "starcoder": PreTokenizer(individualDigits: true, pattern: .gpt2),
        "refact": PreTokenizer(individualDigits: true, pattern: .gpt2),
        "codeshell": PreTokenizer(individualDigits: true, pattern: .gpt2),
    ]

    /// The tokenizer of a GGUF file (`tokenizer.ggml.model` gpt2 or llama), as llama.cpp builds it.
    public convenience init(gguf file: GGUFFile) throws {
        let path = file.path
        let m = file.metadata
        func key(_ k: String) -> String { "tokenizer.ggml.\(k)" }
        // A key that is there must have its type: one of another type is an error, not a value left out.
        func invalid(_ fullKey: String, _ detail: String) -> TokenizerError {
            .invalid(file: path, key: fullKey, detail: detail)
        }
        func string(_ fullKey: String) throws -> String? {
            guard let v = m[fullKey] else { return nil }
            guard let s = v.stringValue else { throw invalid(fullKey, "is not a string") }
            return s
        }
        func array(_ k: String) throws -> GGUFArray? {
            guard let v = m[key(k)] else { return nil }
            guard let a = v.arrayValue else { throw invalid(key(k), "is not an array") }
            return a
        }
        func flag(_ k: String) throws -> Bool? {
            guard let v = m[key(k)] else { return nil }
            guard case .bool(let b) = v else { throw invalid(key(k), "is not a boolean") }
            return b
        }
        guard let kind = try string(key("model")) else {
            throw TokenizerError.invalid(file: path, key: key("model"), detail: "required key is missing (the file has no vocabulary)")
        }
        guard kind == "gpt2" || kind == "llama" else {
            throw TokenizerError.unsupported(file: path, what: "tokenizer model '\(kind)'", supported: "gpt2, llama")
        }
        guard let tokenArray = try array("tokens"), !tokenArray.isEmpty else {
            throw TokenizerError.invalid(file: path, key: key("tokens"), detail: "required list of token texts is missing")
        }
        var pieces: [String] = []
        pieces.reserveCapacity(tokenArray.count)
        for (i, v) in tokenArray.enumerated() {
            guard let s = v.stringValue else { throw TokenizerError.invalid(file: path, key: key("tokens"), detail: "element \(i) is not a string") }
            pieces.append(s)
        }
        let n = pieces.count
        var types = [Int](repeating: 1, count: n)
        if let typeArray = try array("token_type") {
            guard typeArray.count == n else {
                throw TokenizerError.invalid(file: path, key: key("token_type"), detail: "\(typeArray.count) entries for \(n) tokens")
            }
            for (i, v) in typeArray.enumerated() {
                guard let type = v.intValue else { throw invalid(key("token_type"), "element \(i) is not an integer") }
                types[i] = type
            }
        }
        func tokenID(_ k: String) throws -> Int? {
            guard let v = m[key(k)] else { return nil }
            guard let id = v.intValue, id >= 0, id < n else {
                throw TokenizerError.invalid(file: path, key: key(k), detail: "not a token id below \(n)")
            }
            return id
        }
        let bos = try tokenID("bos_token_id"), eos = try tokenID("eos_token_id")
        let eot = try tokenID("eot_token_id"), unk = try tokenID("unknown_token_id")

        // Unknown (2), control (3) and user-defined (4) tokens are matched in the text first, as llama.cpp does.
        let added = (0..<n).filter { types[$0] == 2 || types[$0] == 3 || types[$0] == 4 }
            .map { AddedToken(content: pieces[$0], id: $0, special: types[$0] != 4) }
        let table = try PieceTable(pieces, file: path, key: key("tokens"))
        // End of generation: EOS, EOT, and the control tokens llama.cpp recognises by name.
        let endNames: Set<String> = ["<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                     "<|end_of_text|>", "</s>", "<EOT>", "<|eom_id|>"]
        var eog = Set([eos, eot].compactMap { $0 })
        for t in added where t.special && endNames.contains(t.content) { eog.insert(t.id) }

        let template = try string("tokenizer.chat_template")
        let addBOS = try flag("add_bos_token"), addEOS = try flag("add_eos_token")
        if kind == "gpt2" {
            let pre = try string(key("pre")) ?? "default"
            guard let preTokenizer = Self.ggufPreTokenizers[pre] else {
                throw TokenizerError.unsupported(file: path, what: "pre-tokenizer '\(pre)'",
                                                 supported: Self.ggufPreTokenizers.keys.sorted().joined(separator: ", "))
            }
            func id(_ piece: String) -> Int? { table.id(piece).map(Int.init) }
            var merges: [UInt64: (rank: Int32, result: Int32)] = [:]
            if let mergeArray = try array("merges") {
                merges.reserveCapacity(mergeArray.count)
                for (rank, v) in mergeArray.enumerated() {
                    guard let line = v.stringValue, let space = line.firstIndex(of: " "),
                          let a = id(String(line[..<space])), let b = id(String(line[line.index(after: space)...])),
                          let r = id(String(line[..<space]) + String(line[line.index(after: space)...])) else {
                        throw TokenizerError.invalid(file: path, key: key("merges"), detail: "merge \(rank) is not two tokens of the vocabulary")
                    }
                    let k = BPE.key(Int32(a), Int32(b))
                    if merges[k] == nil { merges[k] = (Int32(rank), Int32(r)) }
                }
            }
            self.init(algorithm: .byteLevelBPE, table: table, addedTokens: added, merges: merges, scores: nil,
                      bosToken: bos, eosToken: eos, eosTokens: eog, unknownToken: unk,
                      addBOS: (addBOS ?? false) && bos != nil,
                      addEOS: (addEOS ?? false) && eos != nil, preTokenizer: preTokenizer,
                      normalizeNFC: false, addSpacePrefix: false, stripLeadingSpace: false, ignoreMerges: pre == "llama-bpe" || pre == "llama3",
                      chatTemplate: template)
        } else {
            var scores = [Float](repeating: 0, count: n)
            if let scoreArray = try array("scores") {
                guard scoreArray.count == n else {
                    throw TokenizerError.invalid(file: path, key: key("scores"), detail: "\(scoreArray.count) entries for \(n) tokens")
                }
                for (i, v) in scoreArray.enumerated() {
                    guard let score = v.doubleValue else { throw invalid(key("scores"), "element \(i) is not a number") }
                    scores[i] = Float(score)
                }
            }
            self.init(algorithm: .sentencePieceScores, table: table, addedTokens: added, merges: nil,
                      scores: scores,
                      bosToken: bos, eosToken: eos, eosTokens: eog, unknownToken: unk,
                      addBOS: (addBOS ?? true) && bos != nil,
                      addEOS: (addEOS ?? false) && eos != nil, preTokenizer: nil, normalizeNFC: false,
                      addSpacePrefix: try flag("add_space_prefix") ?? true, stripLeadingSpace: true, ignoreMerges: false,
                      chatTemplate: template)
        }
    }
}

/// Decodes a JSON file, turning every problem into one `TokenizerError` naming the file and key.
func readJSON<T: Decodable>(_ path: String) throws -> T {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw TokenizerError.unreadable(file: path, reason: "no such file or not readable")
    }
    do {
        return try JSONDecoder().decode(T.self, from: data)
    } catch let error as TokenizerError {
        throw error
    } catch {
        throw TokenizerError.invalid(file: path, key: decodingKeyPath(error), detail: decodingProblem(error))
    }
}


extension Tokenizer {
    /// The tokenizer of a model: a Hugging Face folder's tokenizer.json or a GGUF file's vocabulary.
    public static func load(model path: String) throws -> Tokenizer {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
            throw TokenizerError.unreadable(file: path, reason: "no such file or folder")
        }
        return isFolder.boolValue ? try load(folder: path) : try Tokenizer(gguf: GGUFFile(path: path))
    }
}
