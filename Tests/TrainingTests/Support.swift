import Foundation
import Testing
import TestSupport
import Text
@testable import Training

// Fixture tokenizers and JSONL files for the data tests.

/// Tests/Fixtures/tokenizers, found from this file's path (Tests/TrainingTests/Support.swift).
let tokenizerFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/tokenizers").path

/// The default model's vocabulary (ChatML template, no BOS, no EOS added).
func smolLM2() throws -> Tokenizer { try loadedSmolLM2.get() }
/// A Llama 2 layout tokenizer.json (adds BOS `<s>` = 1, not EOS; Llama 2's chat template).
func spmLlama2() throws -> Tokenizer { try loadedSpmLlama2.get() }
/// GPT-2 set-up (no BOS, no chat template).
func gpt2() throws -> Tokenizer { try Tokenizer.load(folder: tokenizerFixtures + "/bytelevel-gpt2") }

// Loaded once for every test (tokenizers are immutable; the 49152-token vocabulary takes a while in debug builds).
private let loadedSmolLM2 = Result { try Tokenizer.load(model: tokenizerFixtures + "/smollm2.gguf") }
private let loadedSpmLlama2 = Result { try Tokenizer.load(folder: tokenizerFixtures + "/spm-llama2") }

/// `lines` written as a JSONL file in `folder`, loaded.
func load(_ lines: [String], in folder: TemporaryFolder, tokenizer: Tokenizer?, vocabularySize: Int? = nil,
          maxSequenceLength: Int = 1024) throws -> TrainingData {
    let path = try folder.write("data.jsonl", lines.joined(separator: "\n") + "\n")
    return try TrainingData.load(path: path, tokenizer: tokenizer,
                                 vocabularySize: vocabularySize ?? tokenizer?.vocabularySize ?? 1000,
                                 maxSequenceLength: maxSequenceLength)
}

/// The one example of a one-line file.
func example(_ line: String, tokenizer: Tokenizer?) throws -> TrainingExample {
    let folder = try TemporaryFolder()
    let data = try load([line], in: folder, tokenizer: tokenizer)
    try #require(data.examples.count == 1)
    return data.examples[0]
}

/// -100 everywhere but on `ranges`, where the label is the token.
func labels(_ tokens: [Int], labelled ranges: [Range<Int>]) -> [Int] {
    var labels = [Int](repeating: -100, count: tokens.count)
    for r in ranges { for i in r { labels[i] = tokens[i] } }
    return labels
}

/// The message of the error `body` throws (nil when it throws none).
func errorMessage(_ body: () throws -> Void) -> String? {
    do {
        try body()
        return nil
    } catch {
        return error.localizedDescription
    }
}
