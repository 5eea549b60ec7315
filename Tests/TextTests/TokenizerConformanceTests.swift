import Foundation
import Testing
@testable import Text

/// Tests/Fixtures/tokenizers: tokenizer.json files and vocab-only GGUF files with the ids the `tokenizers` library
/// and llama.cpp give for a committed corpus (scripts/make_text_fixtures.py).
let tokenizerFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../Fixtures/tokenizers").standardized

struct ExpectedTokens: Decodable {
    var texts: [String]
    var add_special_tokens: Bool
    var ids: [[Int]]?
    var decoded: [String]?
    var llamacpp_ids: [[Int]]?
    var llamacpp_decoded: [String]?
}

func expectedTokens(_ name: String) throws -> ExpectedTokens {
    let data = try Data(contentsOf: tokenizerFixtures.appendingPathComponent("\(name).expected.json"))
    return try JSONDecoder().decode(ExpectedTokens.self, from: data)
}

/// Records the first few mismatches between `got` and `expected` for each text.
func compare(_ got: (String) -> [Int], _ expected: [[Int]], texts: [String], label: String) {
    var failures = 0
    for (text, want) in zip(texts, expected) {
        let ids = got(text)
        if ids != want {
            failures += 1
            if failures <= 5 { Issue.record("\(label): \(text.debugDescription)\n  got      \(ids)\n  expected \(want)") }
        }
    }
    #expect(failures == 0, "\(label): \(failures) of \(texts.count) texts differ")
}

@Suite("Tokenizer conformance")
struct TokenizerConformanceTests {
    /// tokenizer.json files against the `tokenizers` library.
    @Test(arguments: ["bytelevel-gpt2", "bytelevel-llama3", "bytelevel-qwen2", "spm-llama2"])
    func tokenizerJSON(name: String) throws {
        let tokenizer = try Tokenizer.load(folder: tokenizerFixtures.appendingPathComponent(name).path)
        let expected = try expectedTokens(name)
        let ids = try #require(expected.ids)
        compare({ tokenizer.encode($0, addSpecialTokens: expected.add_special_tokens) }, ids, texts: expected.texts, label: name)
        if let decoded = expected.decoded {
            for (i, want) in decoded.enumerated() {
                #expect(try tokenizer.decode(ids[i]) == want, "\(name) decode of text \(i) \(expected.texts[i].debugDescription)")
            }
        }
    }

    /// GGUF vocabularies against llama.cpp (the default model's included).
    @Test(arguments: ["smollm2", "spm-llama2"])
    func ggufVocabulary(name: String) throws {
        let path = tokenizerFixtures.appendingPathComponent(name + ".gguf").path
        guard FileManager.default.fileExists(atPath: path) else {
            Issue.record("missing fixture \(path)")
            return
        }
        let expected = try expectedTokens(name)
        let ids = try #require(expected.llamacpp_ids)
        let tokenizer = try Tokenizer.load(model: path)
        compare({ tokenizer.encode($0, addSpecialTokens: expected.add_special_tokens) }, ids, texts: expected.texts,
                label: "\(name).gguf")
        if let decoded = expected.llamacpp_decoded {
            var failures = 0
            for (i, want) in decoded.enumerated() where (try? tokenizer.decode(ids[i])) != want {
                failures += 1
                if failures <= 5 {
                    Issue.record("\(name).gguf decode of \(expected.texts[i].debugDescription): \((try? tokenizer.decode(ids[i])).debugDescription) vs \(want.debugDescription)")
                }
            }
            #expect(failures == 0)
        }
    }
}
