import Foundation
import Testing
import TestSupport
import Text
@testable import Training

// Every way a line can be wrong: one error, naming the file and the line.

@Suite struct DataErrorTests {
    /// A bad line and what its message says.
    struct Case: CustomTestStringConvertible, Sendable {
        let line: String
        let says: String
        var testDescription: String { line }
    }

    static let cases: [Case] = [
        Case(line: "not json", says: "not valid JSON"),
        Case(line: #"{"text": "a"} x"#, says: "not valid JSON: trailing characters"),
        Case(line: "[1, 2]", says: "a line must be a JSON object, not an array"),
        Case(line: #""text""#, says: "a line must be a JSON object, not a string"),
        Case(line: "{}", says: "an empty object"),
        Case(line: #"{"txt": "a"}"#, says: #"unexpected key "txt""#),
        Case(line: #"{"text": 5}"#, says: #""text" must be a string, not a number"#),
        Case(line: #"{"text": ""}"#, says: #""text" is empty"#),
        Case(line: #"{"text": "a", "prompt": "b"}"#, says: #"the keys "text", "prompt" fit no format"#),
        Case(line: #"{"prompt": "a"}"#, says: #"the keys "prompt" fit no format"#),
        Case(line: #"{"completion": "a", "labels": [1]}"#, says: "fit no format"),
        Case(line: #"{"prompt": "a", "completion": ""}"#, says: #""completion" is empty"#),
        Case(line: #"{"prompt": null, "completion": "a"}"#, says: #""prompt" must be a string, not null"#),
        Case(line: #"{"messages": "hi"}"#, says: #""messages" must be an array, not a string"#),
        Case(line: #"{"messages": []}"#, says: #""messages" is empty"#),
        Case(line: #"{"messages": ["hi"]}"#, says: "message 1 must be an object"),
        Case(line: #"{"messages": [{"role": "user"}]}"#, says: #"message 1: "content" must be a string, and is missing"#),
        Case(line: #"{"messages": [{"role": "user", "content": "a"}, {"content": "b"}]}"#,
             says: #"message 2: "role" must be a string, and is missing"#),
        Case(line: #"{"messages": [{"role": "user", "content": ["a"]}]}"#,
             says: #"message 1: "content" must be a string, and is an array"#),
        Case(line: #"{"messages": [{"role": "user", "content": "a"}]}"#, says: "no assistant message"),
        Case(line: #"{"messages": [{"role": "assistant", "content": "a"}]}"#,
             says: "writes the conversation before message 1 (assistant) differently"),
        Case(line: #"{"input_ids": [1, 2, 3], "labels": [1, 2]}"#,
             says: #""labels" has 2 entries and "input_ids" 3; they must match"#),
        Case(line: #"{"input_ids": [], "labels": []}"#, says: #""input_ids" is empty"#),
        Case(line: #"{"input_ids": [1, 2.5], "labels": [1, 2]}"#, says: #""input_ids"[1] must be an integer, not a number"#),
        Case(line: #"{"input_ids": [1, 2], "labels": "x"}"#, says: #""labels" must be an array of integers, not a string"#),
        Case(line: #"{"input_ids": [1, 49152], "labels": [1, 2]}"#,
             says: #""input_ids"[1] = 49152 is outside the model's vocabulary 0..<49152"#),
        Case(line: #"{"input_ids": [1, -1], "labels": [1, 2]}"#, says: "is outside the model's vocabulary"),
        Case(line: #"{"input_ids": [1, 2], "labels": [1, -5]}"#,
             says: #""labels"[1] = -5 is neither -100 nor in the model's vocabulary"#),
        Case(line: #"{"input_ids": [1, 2, 3], "labels": [-100, -100, -100]}"#, says: "no token to learn: every label is -100"),
        Case(line: #"{"input_ids": [1, 2, 3], "labels": [1, -100, -100]}"#, says: "no token to learn"),
        Case(line: #"{"text": "a"}"#, says: "no token to learn: a single token has nothing before it to predict it"),
    ]

    /// Each bad line as line 3, after a good line and a blank one.
    @Test(arguments: cases) func aBadLineIsAnErrorNamingFileAndLine(_ c: Case) throws {
        let folder = try TemporaryFolder()
        let path = try folder.write("data.jsonl", #"{"text": "Hello world"}"# + "\n\n" + c.line + "\n" + #"{"text": "Hello world"}"#)
        let message = try #require(errorMessage {
            _ = try TrainingData.load(path: path, tokenizer: try smolLM2(), vocabularySize: 49152, maxSequenceLength: 64)
        })
        #expect(message.hasPrefix("\(path):3: "), "\(message)")
        #expect(message.contains(c.says), "\(message)")
        #expect(!message.contains("\n"))
    }

    @Test func invalidUTF8IsAnError() throws {
        let folder = try TemporaryFolder()
        let path = try folder.write("data.jsonl", Array(#"{"text": "a"#.utf8) + [0xFF] + Array(#""}"#.utf8))
        let message = errorMessage { _ = try TrainingData.load(path: path, tokenizer: try smolLM2(), vocabularySize: 49152, maxSequenceLength: 8) }
        #expect(message == "\(path):1: not valid UTF-8")
    }

    @Test func anEmptyFileIsAnError() throws {
        let folder = try TemporaryFolder()
        for (name, contents) in [("empty.jsonl", ""), ("blank.jsonl", "\n  \n\t\r\n")] {
            let path = try folder.write(name, contents)
            let message = errorMessage { _ = try TrainingData.load(path: path, tokenizer: nil, vocabularySize: 8, maxSequenceLength: 8) }
            #expect(message == "\(path): no training examples (the file is empty or holds only blank lines)")
        }
    }

    @Test func aMissingFileIsAnError() throws {
        let folder = try TemporaryFolder()
        let path = folder.file("absent.jsonl")
        let message = errorMessage { _ = try TrainingData.load(path: path, tokenizer: nil, vocabularySize: 8, maxSequenceLength: 8) }
        #expect(message == "\(path): cannot read the training data: no such file")
    }

    @Test func textFormatsWithoutATokenizerAreAnError() throws {
        let folder = try TemporaryFolder()
        for (line, format) in [(#"{"text": "a"}"#, "text"), (#"{"prompt": "a", "completion": "b"}"#, "prompt/completion"),
                               (FormatTests.conversation, "messages")] {
            let path = try folder.write("data.jsonl", #"{"input_ids": [1, 2], "labels": [1, 2]}"# + "\n" + line)
            let message = errorMessage { _ = try TrainingData.load(path: path, tokenizer: nil, vocabularySize: 8, maxSequenceLength: 8) }
            #expect(message == "\(path):2: a \(format) example needs the model's tokenizer, and there is none " +
                    "(pre-tokenized input_ids and labels need none)")
        }
    }

    @Test func tokensOutsideTheModelsVocabularyAreAnError() throws {
        let folder = try TemporaryFolder()
        let message = errorMessage { _ = try load([#"{"text": "Hello world"}"#], in: folder, tokenizer: try smolLM2(), vocabularySize: 1000) }
        #expect(message?.hasSuffix(":1: the tokenizer gave token 19556, outside the model's vocabulary of 1000") == true)
    }

    @Test func aPromptLongerThanTheLimitLeavesNothingToLearn() throws {
        let folder = try TemporaryFolder()
        let message = errorMessage {
            _ = try load([#"{"prompt": "The capital of France is", "completion": " Paris."}"#], in: folder,
                         tokenizer: try smolLM2(), maxSequenceLength: 4)
        }
        #expect(message?.hasSuffix(":1: no labelled token within the first 4 tokens (the maximum sequence length)") == true)
    }

    @Test func messagesWithoutAChatTemplateAreAnError() throws {
        let folder = try TemporaryFolder()
        let message = errorMessage { _ = try load([FormatTests.conversation], in: folder, tokenizer: try gpt2()) }
        #expect(message?.hasSuffix(":1: a messages example needs the model's chat template, and its tokenizer has none") == true)
    }

    /// Llama 2's template raises when roles do not alternate: the template's own message, on the line.
    @Test func aTemplateThatRaisesIsAnError() throws {
        let folder = try TemporaryFolder()
        let message = errorMessage {
            _ = try load([#"{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, "# +
                          #"{"role": "assistant", "content": "c"}]}"#], in: folder, tokenizer: try spmLlama2())
        }
        #expect(message?.contains(":1: the chat template fails on this conversation: ") == true, "\(message ?? "")")
        #expect(message?.contains("Conversation roles must alternate") == true)
    }

    /// A template that shortens earlier assistant turns once a later message follows (as reasoning templates drop
    /// earlier thinking): labelling from the shorter rendering would be wrong, so it is an error.
    @Test func aTemplateThatRewritesEarlierTurnsIsAnError() throws {
        let folder = try TemporaryFolder()
        let model = folder.file("model")
        try FileManager.default.createDirectory(atPath: model, withIntermediateDirectories: true)
        _ = try folder.copy(tokenizerFixtures + "/bytelevel-gpt2/tokenizer.json", as: "model/tokenizer.json")
        let template = "{% for m in messages %}{% if m.role == 'assistant' and not loop.last %}[a]" +
            "{% else %}[{{ m.role }}]{{ m.content }}{% endif %}{% endfor %}"
        let config = try JSONSerialization.data(withJSONObject: ["chat_template": template])
        try writeBytes([UInt8](config), to: model + "/tokenizer_config.json")
        let tokenizer = try Tokenizer.load(folder: model)
        let single = try load([#"{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}"#],
                              in: folder, tokenizer: tokenizer)
        #expect(single.examples[0].labelledCount > 0)
        let message = errorMessage {
            _ = try load([#"{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, "# +
                          #"{"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]}"#],
                         in: folder, tokenizer: tokenizer)
        }
        #expect(message?.contains(":1: the chat template renders message 2 (assistant) differently once later messages follow") == true,
                "\(message ?? "")")
    }

    @Test func parametersOutOfRangeAreAnError() throws {
        let folder = try TemporaryFolder()
        let path = try folder.write("data.jsonl", #"{"input_ids": [1, 2], "labels": [1, 2]}"#)
        #expect(errorMessage { _ = try TrainingData.load(path: path, tokenizer: nil, vocabularySize: 8, maxSequenceLength: 1) } ==
                "maximum sequence length: 1 leaves no token to predict (at least 2)")
    }
}
