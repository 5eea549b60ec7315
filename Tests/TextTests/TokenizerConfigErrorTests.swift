import Foundation
import Formats
import Testing
import TestSupport
@testable import Text

// The keys around a tokenizer that decide where generation stops and how a chat is written: `eos_token_id` of
// generation_config.json / config.json, `bos_token`, `eos_token` and `chat_template` of tokenizer_config.json, and
// their GGUF counterparts. A missing or null key is fine; one that is there but malformed is an error naming the file
// and the key — never a value silently dropped (generation would run past the end of a turn).

/// A copy of the spm-llama2 fixture (`<s>` = 1, `</s>` = 2, 1256 tokens, a chat template) in a temporary folder,
/// with tokenizer_config.json and the other JSON files rewritten through `edit`.
private final class FixtureCopy {
    let folder: TemporaryFolder
    var path: String { folder.path }

    init() throws {
        folder = try TemporaryFolder()
        let source = tokenizerFixtures.appendingPathComponent("spm-llama2").path
        for name in ["tokenizer.json", "tokenizer_config.json"] {
            try FileManager.default.copyItem(atPath: source + "/" + name, toPath: folder.file(name))
        }
    }

    /// Rewrites `name` (created empty if absent) as the JSON object `edit` leaves.
    func editJSON(_ name: String, _ edit: (inout [String: Any]) -> Void) throws {
        var object: [String: Any] = [:]
        if let data = FileManager.default.contents(atPath: folder.file(name)) {
            object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        }
        edit(&object)
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: folder.file(name)))
    }

    func write(_ name: String, _ text: String) throws { try folder.write(name, text) }
}

/// Expects loading `copy` to fail with `TokenizerError.invalid` for `key` of `file`, in a one-line message that names
/// both; returns the message.
@discardableResult
private func expectInvalid(_ copy: FixtureCopy, file: String, key: String,
                           sourceLocation: SourceLocation = #_sourceLocation) -> String? {
    do {
        let tokenizer = try Tokenizer.load(folder: copy.path)
        Issue.record("loaded (EOS \(tokenizer.eosTokens.sorted()), template \(tokenizer.chatTemplate != nil)) instead of an error",
                     sourceLocation: sourceLocation)
        return nil
    } catch let error as TokenizerError {
        let message = error.localizedDescription
        guard case let .invalid(errorFile, errorKey, _) = error else {
            Issue.record("not an invalid-key error: \(message)", sourceLocation: sourceLocation)
            return message
        }
        #expect(errorFile == copy.folder.file(file), "\(message)", sourceLocation: sourceLocation)
        #expect(errorKey == key, "\(message)", sourceLocation: sourceLocation)
        #expect(message.contains(file) && message.contains("'\(key)'") && !message.contains("\n"), "\(message)",
                sourceLocation: sourceLocation)
        return message
    } catch {
        Issue.record("not a TokenizerError: \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

@Suite("Tokenizer configuration: malformed keys are errors, missing ones are not")
struct TokenizerConfigErrorTests {
    // MARK: - eos_token_id of generation_config.json and config.json

    @Test(arguments: ["generation_config.json", "config.json"])
    func malformedEOSIdsAreErrors(file: String) throws {
        let malformed: [Any] = ["2", 2.5, [2, "x"], ["eos": 2], true]
        for value in malformed {
            let copy = try FixtureCopy()
            try copy.editJSON(file) { $0["eos_token_id"] = value }
            let message = expectInvalid(copy, file: file, key: "eos_token_id")
            #expect(message?.contains("is neither a token id nor a list of token ids") == true, "\(value): \(message ?? "")")
        }
    }

    @Test func eosIdOutsideTheVocabularyIsAnError() throws {
        for value in [5000, -1] as [Any] + [[2, 5000]] {
            let copy = try FixtureCopy()
            try copy.editJSON("generation_config.json") { $0["eos_token_id"] = value }
            let message = expectInvalid(copy, file: "generation_config.json", key: "eos_token_id")
            #expect(message?.contains("outside the vocabulary") == true, "\(message ?? "")")
        }
    }

    @Test func malformedGenerationConfigIsAnError() throws {
        let copy = try FixtureCopy()
        try copy.write("generation_config.json", "{\"eos_token_id\": 2,")
        let message = expectInvalid(copy, file: "generation_config.json", key: "(top level)")
        #expect(message?.contains("not valid JSON") == true, "\(message ?? "")")
        let list = try FixtureCopy()
        try list.write("generation_config.json", "[2]")
        expectInvalid(list, file: "generation_config.json", key: "(top level)")
    }

    @Test func eosIdsAreReadInEitherForm() throws {
        let copy = try FixtureCopy()
        try copy.editJSON("generation_config.json") { $0["eos_token_id"] = [2, 0] }
        try copy.editJSON("config.json") { $0["eos_token_id"] = 1 }
        let tokenizer = try Tokenizer.load(folder: copy.path)
        #expect(tokenizer.eosTokens == [0, 1, 2])
    }

    @Test func missingOrNullEOSIdsLoad() throws {
        let copy = try FixtureCopy()
        try copy.editJSON("generation_config.json") { $0["eos_token_id"] = NSNull() }
        try copy.editJSON("config.json") { $0["bos_token_id"] = 1 }
        let tokenizer = try Tokenizer.load(folder: copy.path)
        #expect(tokenizer.eosTokens == [2] && tokenizer.eosToken == 2)
    }

    // MARK: - tokenizer_config.json

    @Test func chatTemplateOfAWrongTypeIsAnError() throws {
        let malformed: [Any] = [42, ["a", "b"], [["name": "default"]], [] as [Any], ["default": "{{ x }}"]]
        for value in malformed {
            let copy = try FixtureCopy()
            try copy.editJSON("tokenizer_config.json") { $0["chat_template"] = value }
            let message = expectInvalid(copy, file: "tokenizer_config.json", key: "chat_template")
            #expect(message?.contains("is neither a string nor a non-empty list") == true, "\(value): \(message ?? "")")
        }
    }

    @Test func chatTemplateInEitherForm() throws {
        let copy = try FixtureCopy()
        try copy.editJSON("tokenizer_config.json") {
            $0["chat_template"] = [["name": "tool_use", "template": "T"], ["name": "default", "template": "D"]]
        }
        #expect(try Tokenizer.load(folder: copy.path).chatTemplate == "D")
        try copy.editJSON("tokenizer_config.json") { $0["chat_template"] = [["name": "rag", "template": "R"]] }
        #expect(try Tokenizer.load(folder: copy.path).chatTemplate == "R")
    }

    @Test(arguments: ["bos_token", "eos_token"])
    func specialTokenOfAWrongTypeIsAnError(key: String) throws {
        for value in [5, ["</s>"], false] as [Any] {
            let copy = try FixtureCopy()
            try copy.editJSON("tokenizer_config.json") { $0[key] = value }
            let message = expectInvalid(copy, file: "tokenizer_config.json", key: key)
            #expect(message?.contains("is neither a string nor {\"content\": \"...\"}") == true, "\(value): \(message ?? "")")
        }
        // The object form must hold its content as a string.
        for value in [["text": "<s>"], ["content": 1]] as [[String: Any]] {
            let copy = try FixtureCopy()
            try copy.editJSON("tokenizer_config.json") { $0[key] = value }
            expectInvalid(copy, file: "tokenizer_config.json", key: key + ".content")
        }
    }

    @Test(arguments: ["bos_token", "eos_token"])
    func specialTokenOutsideTheVocabularyIsAnError(key: String) throws {
        let copy = try FixtureCopy()
        try copy.editJSON("tokenizer_config.json") { $0[key] = "<|no such token|>" }
        let message = expectInvalid(copy, file: "tokenizer_config.json", key: key)
        #expect(message?.contains("'<|no such token|>' is not a token of") == true, "\(message ?? "")")
    }

    @Test func specialTokensAsObjects() throws {
        let copy = try FixtureCopy()
        try copy.editJSON("tokenizer_config.json") {
            $0["bos_token"] = ["content": "</s>", "lstrip": false, "__type": "AddedToken"]
            $0["eos_token"] = ["content": "<unk>"]
        }
        let tokenizer = try Tokenizer.load(folder: copy.path)
        #expect(tokenizer.bosToken == 2 && tokenizer.eosToken == 0)
    }

    @Test func missingOrNullKeysLoad() throws {
        let reference = try Tokenizer.load(folder: tokenizerFixtures.appendingPathComponent("spm-llama2").path)
        #expect(reference.bosToken == 1 && reference.eosToken == 2 && reference.chatTemplate != nil)

        let missing = try FixtureCopy()
        try missing.editJSON("tokenizer_config.json") { config in
            for key in ["bos_token", "eos_token", "chat_template"] { config[key] = nil }
        }
        var tokenizer = try Tokenizer.load(folder: missing.path)
        // BOS from tokenizer.json's post-processor; no EOS declared anywhere; no template.
        #expect(tokenizer.bosToken == 1 && tokenizer.eosToken == nil && tokenizer.eosTokens.isEmpty && tokenizer.chatTemplate == nil)

        let null = try FixtureCopy()
        try null.editJSON("tokenizer_config.json") { config in
            for key in ["bos_token", "eos_token", "chat_template"] { config[key] = NSNull() }
        }
        tokenizer = try Tokenizer.load(folder: null.path)
        #expect(tokenizer.bosToken == 1 && tokenizer.eosToken == nil && tokenizer.chatTemplate == nil)

        let noConfig = try FixtureCopy()
        try FileManager.default.removeItem(atPath: noConfig.folder.file("tokenizer_config.json"))
        tokenizer = try Tokenizer.load(folder: noConfig.path)
        #expect(tokenizer.bosToken == 1 && tokenizer.chatTemplate == nil)
    }

    // MARK: - tokenizer.json

    @Test func mergesOfNeitherFormAreAnError() throws {
        let copy = try FixtureCopy()
        try copy.editJSON("tokenizer.json") { json in
            var model = json["model"] as! [String: Any]
            model["merges"] = [1, 2]
            json["model"] = model
        }
        let message = expectInvalid(copy, file: "tokenizer.json", key: "model.merges")
        #expect(message?.contains("is neither a list of \"a b\" strings nor a list of [a, b] pairs") == true, "\(message ?? "")")
    }

    // MARK: - GGUF

    /// spm-llama2.gguf with one more metadata entry `key` of GGUF type `type` (its value bytes `value`), which
    /// overrides an entry of the same key.
    private func ggufWith(_ key: String, type: UInt32, value: [UInt8], in folder: TemporaryFolder) throws -> String {
        let source = try GGUFFile(path: tokenizerFixtures.appendingPathComponent("spm-llama2.gguf").path)
        var bytes: [UInt8] = []
        func append<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        append(UInt32(0x4655_4747))
        append(UInt32(3))
        append(UInt64(0))
        append(UInt64(source.metadataCount + 1))
        bytes += source.rawMetadata
        append(UInt64(key.utf8.count))
        bytes += Array(key.utf8)
        append(type)
        bytes += value
        return try folder.write("edited.gguf", bytes)
    }

    @Test func ggufKeysOfAWrongTypeAreErrors() throws {
        let folder = try TemporaryFolder()
        let uint32: UInt32 = 4, string: UInt32 = 8, bool: UInt32 = 7
        let cases: [(key: String, type: UInt32, value: [UInt8], detail: String)] = [
            ("tokenizer.chat_template", uint32, [1, 0, 0, 0], "is not a string"),
            ("tokenizer.ggml.eos_token_id", string, [1, 0, 0, 0, 0, 0, 0, 0, 0x32], "not a token id below 1256"),
            ("tokenizer.ggml.add_bos_token", uint32, [1, 0, 0, 0], "is not a boolean"),
            ("tokenizer.ggml.scores", bool, [1], "is not an array"),
        ]
        for c in cases {
            let path = try ggufWith(c.key, type: c.type, value: c.value, in: folder)
            let error = #expect(throws: TokenizerError.self) { try Tokenizer(gguf: GGUFFile(path: path)) }
            #expect(error == .invalid(file: path, key: c.key, detail: c.detail), "\(c.key): \(String(describing: error))")
        }
        // A well-typed template is read.
        let template = Array("{{ x }}".utf8)
        let path = try ggufWith("tokenizer.chat_template", type: string,
                                value: withUnsafeBytes(of: UInt64(template.count).littleEndian, Array.init) + template, in: folder)
        #expect(try Tokenizer(gguf: GGUFFile(path: path)).chatTemplate == "{{ x }}")
    }
}
