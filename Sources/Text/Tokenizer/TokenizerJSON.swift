import Foundation

// tokenizer.json as Hugging Face `tokenizers` writes it: typed just far enough to read the families we support.
// Components are type-tagged objects ({"type": "Sequence", "normalizers": [...]}); one struct with optional fields
// reads them all, and `Tokenizer.init(folder:)` decides what a combination means.

struct TokenizerJSON: Decodable {
    var addedTokens: [AddedTokenJSON]
    var normalizer: ComponentJSON?
    var preTokenizer: ComponentJSON?
    var postProcessor: ComponentJSON?
    var decoder: ComponentJSON?
    var model: ModelJSON

    enum CodingKeys: String, CodingKey {
        case addedTokens = "added_tokens", normalizer, preTokenizer = "pre_tokenizer"
        case postProcessor = "post_processor", decoder, model
    }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        addedTokens = try c.decodeIfPresent([AddedTokenJSON].self, forKey: .addedTokens) ?? []
        normalizer = try c.decodeIfPresent(ComponentJSON.self, forKey: .normalizer)
        preTokenizer = try c.decodeIfPresent(ComponentJSON.self, forKey: .preTokenizer)
        postProcessor = try c.decodeIfPresent(ComponentJSON.self, forKey: .postProcessor)
        self.decoder = try c.decodeIfPresent(ComponentJSON.self, forKey: .decoder)
        model = try c.decode(ModelJSON.self, forKey: .model)
    }
}

struct AddedTokenJSON: Decodable {
    var id: Int
    var content: String
    var special: Bool
    var lstrip: Bool
    var rstrip: Bool

    enum CodingKeys: String, CodingKey { case id, content, special, lstrip, rstrip }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(Int.self, forKey: .id)
        content = try c.decode(String.self, forKey: .content)
        special = try c.decodeIfPresent(Bool.self, forKey: .special) ?? false
        lstrip = try c.decodeIfPresent(Bool.self, forKey: .lstrip) ?? false
        rstrip = try c.decodeIfPresent(Bool.self, forKey: .rstrip) ?? false
    }
}

struct ModelJSON: Decodable {
    var type: String?
    var vocab: [String: Int]
    var merges: [[String]]
    var byteFallback: Bool
    var unkToken: String?
    var ignoreMerges: Bool
    var continuingSubwordPrefix: String?
    var endOfWordSuffix: String?

    enum CodingKeys: String, CodingKey {
        case type, vocab, merges, byteFallback = "byte_fallback", unkToken = "unk_token"
        case ignoreMerges = "ignore_merges", continuingSubwordPrefix = "continuing_subword_prefix"
        case endOfWordSuffix = "end_of_word_suffix"
    }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        type = try c.decodeIfPresent(String.self, forKey: .type)
        vocab = try c.decode([String: Int].self, forKey: .vocab)
        // Merges are "a b" strings (tokenizers < 0.20) or ["a", "b"] pairs; anything else is an error.
        if try !c.hasValue(.merges) {
            merges = []
        } else if let strings = try? c.decode([String].self, forKey: .merges) {
            merges = try strings.map { line in
                guard let space = line.firstIndex(of: " ") else {
                    throw DecodingError.dataCorruptedError(forKey: .merges, in: c, debugDescription: "merge '\(line)' is not two tokens")
                }
                return [String(line[..<space]), String(line[line.index(after: space)...])]
            }
        } else if let pairs = try? c.decode([[String]].self, forKey: .merges) {
            merges = pairs
        } else {
            throw DecodingError.dataCorruptedError(forKey: .merges, in: c,
                                                   debugDescription: "is neither a list of \"a b\" strings nor a list of [a, b] pairs")
        }
        byteFallback = try c.decodeIfPresent(Bool.self, forKey: .byteFallback) ?? false
        unkToken = try c.decodeIfPresent(String.self, forKey: .unkToken)
        ignoreMerges = try c.decodeIfPresent(Bool.self, forKey: .ignoreMerges) ?? false
        continuingSubwordPrefix = try c.decodeIfPresent(String.self, forKey: .continuingSubwordPrefix)
        endOfWordSuffix = try c.decodeIfPresent(String.self, forKey: .endOfWordSuffix)
    }
}

/// A normalizer, pre-tokenizer, post-processor or decoder: `type` plus whichever fields that type has.
struct ComponentJSON: Decodable {
    var type: String
    var children: [ComponentJSON]?
    var pattern: PatternJSON?
    var content: String?
    var prepend: String?
    var replacement: String?
    var prependScheme: String?
    var addPrefixSpace: Bool?
    var useRegex: Bool?
    var individualDigits: Bool?
    var behavior: String?
    var invert: Bool?
    var start: Int?
    var stop: Int?
    var single: [TemplatePieceJSON]?

    enum CodingKeys: String, CodingKey {
        case type, normalizers, pretokenizers, decoders, processors, pattern, content, prepend, replacement
        case prependScheme = "prepend_scheme", addPrefixSpace = "add_prefix_space", useRegex = "use_regex"
        case individualDigits = "individual_digits", behavior, invert, start, stop, single
    }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        type = try c.decode(String.self, forKey: .type)
        children = try c.decodeIfPresent([ComponentJSON].self, forKey: .normalizers)
            ?? c.decodeIfPresent([ComponentJSON].self, forKey: .pretokenizers)
            ?? c.decodeIfPresent([ComponentJSON].self, forKey: .decoders)
            ?? c.decodeIfPresent([ComponentJSON].self, forKey: .processors)
        pattern = try c.decodeIfPresent(PatternJSON.self, forKey: .pattern)
        content = try c.decodeIfPresent(String.self, forKey: .content)
        prepend = try c.decodeIfPresent(String.self, forKey: .prepend)
        replacement = try c.decodeIfPresent(String.self, forKey: .replacement)
        prependScheme = try c.decodeIfPresent(String.self, forKey: .prependScheme)
        addPrefixSpace = try c.decodeIfPresent(Bool.self, forKey: .addPrefixSpace)
        useRegex = try c.decodeIfPresent(Bool.self, forKey: .useRegex)
        individualDigits = try c.decodeIfPresent(Bool.self, forKey: .individualDigits)
        behavior = try c.decodeIfPresent(String.self, forKey: .behavior)
        invert = try c.decodeIfPresent(Bool.self, forKey: .invert)
        start = try c.decodeIfPresent(Int.self, forKey: .start)
        stop = try c.decodeIfPresent(Int.self, forKey: .stop)
        single = try c.decodeIfPresent([TemplatePieceJSON].self, forKey: .single)
    }

    /// This component and, for a Sequence, its children, flattened.
    var flattened: [ComponentJSON] {
        type == "Sequence" ? (children ?? []).flatMap(\.flattened) : [self]
    }
}

/// `{"String": " "}` or `{"Regex": "..."}`.
struct PatternJSON: Decodable {
    var string: String?
    var regex: String?

    enum CodingKeys: String, CodingKey { case string = "String", regex = "Regex" }
}

/// One item of TemplateProcessing's `single`: `{"SpecialToken": {"id": "<s>"}}` or `{"Sequence": {"id": "A"}}`.
struct TemplatePieceJSON: Decodable {
    struct Item: Decodable { var id: String }
    var specialToken: Item?
    var sequence: Item?

    enum CodingKeys: String, CodingKey { case specialToken = "SpecialToken", sequence = "Sequence" }
}

/// The keys of tokenizer_config.json we use. A key that is missing or null is absent; one of another form is an
/// error (a dropped `eos_token` or `chat_template` would let generation run past the end of a turn).
struct TokenizerConfigJSON: Decodable {
    var addBOSToken: Bool?
    var addEOSToken: Bool?
    var bosToken: String?
    var eosToken: String?
    var chatTemplate: String?

    enum CodingKeys: String, CodingKey {
        case addBOSToken = "add_bos_token", addEOSToken = "add_eos_token", bosToken = "bos_token"
        case eosToken = "eos_token", chatTemplate = "chat_template"
    }

    /// A special token written as a string or as `{"content": "..."}` (an AddedToken as transformers saves it).
    private struct TokenSpelling: Decodable {
        var content: String
        private enum Keys: String, CodingKey { case content }
        init(from decoder: Decoder) throws {
            if let object = try? decoder.container(keyedBy: Keys.self) {
                content = try object.decode(String.self, forKey: .content)
            } else if let s = try? decoder.singleValueContainer().decode(String.self) {
                content = s
            } else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                        debugDescription: "is neither a string nor {\"content\": \"...\"}"))
            }
        }
    }

    /// `chat_template` as a string or as a list of `{"name", "template"}` (the one named "default" is used).
    private struct NamedTemplate: Decodable { var name: String; var template: String }

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        addBOSToken = try c.decodeIfPresent(Bool.self, forKey: .addBOSToken)
        addEOSToken = try c.decodeIfPresent(Bool.self, forKey: .addEOSToken)
        bosToken = try c.decodeIfPresent(TokenSpelling.self, forKey: .bosToken)?.content
        eosToken = try c.decodeIfPresent(TokenSpelling.self, forKey: .eosToken)?.content
        if try !c.hasValue(.chatTemplate) {
            chatTemplate = nil
        } else if let s = try? c.decode(String.self, forKey: .chatTemplate) {
            chatTemplate = s
        } else if let list = try? c.decode([NamedTemplate].self, forKey: .chatTemplate), !list.isEmpty {
            chatTemplate = (list.first { $0.name == "default" } ?? list[0]).template
        } else {
            throw DecodingError.dataCorruptedError(forKey: .chatTemplate, in: c, debugDescription:
                "is neither a string nor a non-empty list of {\"name\": ..., \"template\": ...}")
        }
    }
}

/// `eos_token_id` of config.json / generation_config.json: one id or a list of ids; missing or null is none.
struct EOSIdsJSON: Decodable {
    var ids: [Int] = []
    enum CodingKeys: String, CodingKey { case eosTokenId = "eos_token_id" }
    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        guard try c.hasValue(.eosTokenId) else { return }
        if let one = try? c.decode(Int.self, forKey: .eosTokenId) { ids = [one] }
        else if let many = try? c.decode([Int].self, forKey: .eosTokenId) { ids = many }
        else {
            throw DecodingError.dataCorruptedError(forKey: .eosTokenId, in: c,
                                                   debugDescription: "is neither a token id nor a list of token ids")
        }
    }
}

extension KeyedDecodingContainer {
    /// Whether `key` is present with a value other than null: the test before trying a key's alternative forms,
    /// so that when none of them matches it is an error rather than a missing key.
    func hasValue(_ key: Key) throws -> Bool { try contains(key) && !decodeNil(forKey: key) }
}
