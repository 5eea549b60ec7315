import Foundation
import Testing
import TestSupport
import Text
@testable import Training

// Each format against ids from the reference tokenizers: transformers 5.25 `AutoTokenizer` on the same fixtures
// (smollm2 through `gguf_file=`), `apply_chat_template(..., tokenize=True)` for conversations, and
// lm-evaluation-harness's `_encode_pair` for prompt/completion.

@Suite struct FormatTests {
    // MARK: text

    @Test func textOnSmolLM2HasNeitherBOSNorEOS() throws {
        let e = try example(#"{"text": "Hello world"}"#, tokenizer: try smolLM2())
        #expect(e.tokens == [19556, 905])
        #expect(e.labels == e.tokens)
        #expect(e.labelledCount == 1)
        #expect(e.targets == [905, -100])
    }

    @Test func textOnLlama2StartsWithBOS() throws {
        let e = try example(#"{"text": "Hello world"}"#, tokenizer: try spmLlama2())
        #expect(e.tokens == [1, 649, 653])
        #expect(e.labels == e.tokens)
        #expect(e.labelledCount == 2)
    }

    @Test func textOnGPT2() throws {
        let e = try example(#"{"text": "Hello world"}"#, tokenizer: try gpt2())
        #expect(e.tokens == [490, 647])
        #expect(e.labels == e.tokens)
    }

    // MARK: prompt / completion

    @Test func promptCompletionOnSmolLM2() throws {
        let e = try example(#"{"prompt": "The capital of France is ", "completion": "Paris."}"#, tokenizer: try smolLM2())
        let tokens = [504, 3575, 282, 4649, 314, 7042, 30]
        #expect(e.tokens == tokens)
        #expect(e.labels == labels(tokens, labelled: [5..<7]))
        #expect(try smolLM2().decode(Array(tokens[5...])) == " Paris.")
    }

    @Test func promptCompletionOnLlama2() throws {
        let e = try example(#"{"prompt": "The capital of France is ", "completion": "Paris."}"#, tokenizer: try spmLlama2())
        let tokens = [1, 321, 276, 425, 286, 294, 302, 581, 1115, 528, 320, 386, 280, 313, 1051]
        #expect(e.tokens == tokens)
        #expect(e.labels == labels(tokens, labelled: [11..<15]))
    }

    /// The prompt's trailing whitespace belongs to the completion: both spellings give one example, whose first
    /// labelled token is " Paris" (not a lone space).
    @Test func trailingSpacesOfThePromptMoveToTheCompletion() throws {
        let tokenizer = try smolLM2()
        let a = try example(#"{"prompt": "The capital of France is ", "completion": "Paris."}"#, tokenizer: tokenizer)
        let b = try example(#"{"prompt": "The capital of France is", "completion": " Paris."}"#, tokenizer: tokenizer)
        #expect(a == b)
        let newline = try example(#"{"prompt": "Q: 2+2?\nA:\n", "completion": "4"}"#, tokenizer: tokenizer)
        let moved = try example(#"{"prompt": "Q: 2+2?\nA:", "completion": "\n4"}"#, tokenizer: tokenizer)
        #expect(newline == moved)
    }

    /// A tokenizer configured to add EOS ends text and completions with it, labelled (so a model learns to stop),
    /// and the prompt's own tokens carry no EOS that would end the common prefix early.
    @Test func anEOSTheTokenizerAddsIsLabelled() throws {
        let folder = try TemporaryFolder()
        let model = try folder.copy(tokenizerFixtures + "/spm-llama2", as: "spm-eos")
        let configPath = model + "/tokenizer_config.json"
        var config = try #require(try JSONSerialization.jsonObject(with: Data(readBytes(configPath))) as? [String: Any])
        config["add_eos_token"] = true
        try writeBytes([UInt8](try JSONSerialization.data(withJSONObject: config)), to: configPath)
        let tokenizer = try Tokenizer.load(folder: model)
        #expect(tokenizer.addBOS && tokenizer.addEOS)

        let text = try example(#"{"text": "Hello world"}"#, tokenizer: tokenizer)
        #expect(text.tokens == [1, 649, 653, 2])
        #expect(text.labels == text.tokens)
        let pair = try example(#"{"prompt": "The capital of France is ", "completion": "Paris."}"#, tokenizer: tokenizer)
        let tokens = [1, 321, 276, 425, 286, 294, 302, 581, 1115, 528, 320, 386, 280, 313, 1051, 2]
        #expect(pair.tokens == tokens)
        #expect(pair.labels == labels(tokens, labelled: [11..<16]))
    }

    // MARK: messages

    static let conversation = #"{"messages": [{"role": "system", "content": "Be brief."}, "# +
        #"{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}, "# +
        #"{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]}"#

    /// ChatML: each assistant turn is labelled from its content through `<|im_end|>` and the newline after it.
    @Test func messagesOnSmolLM2LabelTheAssistantTurns() throws {
        let tokenizer = try smolLM2()
        let e = try example(Self.conversation, tokenizer: tokenizer)
        let tokens = [1, 9690, 198, 6077, 5453, 30, 2, 198, 1, 4093, 198, 26843, 2, 198, 1, 520, 9531, 198, 19556, 17, 2,
                      198, 1, 4093, 198, 34, 27, 34, 47, 2, 198, 1, 520, 9531, 198, 36, 2, 198]
        #expect(e.tokens == tokens)
        #expect(e.labels == labels(tokens, labelled: [18..<22, 35..<38]))
        #expect(try tokenizer.decode(Array(tokens[18..<22])) == "Hello!<|im_end|>\n")
        #expect(try tokenizer.decode(Array(tokens[35..<38])) == "4<|im_end|>\n")
    }

    /// Llama 2: the template writes `<s>` itself (not added twice); each turn is labelled through ` </s>`.
    @Test func messagesOnLlama2LabelTheAssistantTurns() throws {
        let tokenizer = try spmLlama2()
        let e = try example(Self.conversation, tokenizer: tokenizer)
        let tokens = [1, 334, 1078, 1083, 1087, 1088, 1096, 466, 1065, 1087, 1092, 1087, 1067, 1067, 13, 1071, 1102, 289,
                      740, 349, 1051, 13, 1065, 422, 1087, 1092, 1087, 1067, 1067, 13, 13, 1077, 1106, 334, 1052, 1078,
                      1083, 1087, 1088, 1096, 649, 1038, 1162, 2, 1, 334, 1078, 1083, 1087, 1088, 1096, 332, 1048, 1055,
                      1068, 334, 1052, 1078, 1083, 1087, 1088, 1096, 465, 1162, 2]
        #expect(e.tokens == tokens)
        #expect(e.labels == labels(tokens, labelled: [40..<44, 62..<65]))
        #expect(e.tokens.filter { $0 == 1 }.count == 2)
    }

    /// Keys beyond role and content reach the template (as transformers passes them).
    @Test func messagesKeepTheirOtherKeys() throws {
        let tokenizer = try smolLM2()
        let plain = try example(#"{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}"#,
                                tokenizer: tokenizer)
        let named = try example(#"{"messages": [{"role": "user", "content": "Hi", "name": "x"}, "# +
                                #"{"role": "assistant", "content": "Yo"}]}"#, tokenizer: tokenizer)
        #expect(plain == named)
    }

    // MARK: pre-tokenized

    @Test func preTokenizedNeedsNoTokenizer() throws {
        let folder = try TemporaryFolder()
        let data = try load([#"{"input_ids": [5, 6, 7, 8], "labels": [-100, 6, -100, 8]}"#,
                             #"{"labels": [1, 2, 3], "input_ids": [1, 2, 3]}"#],
                            in: folder, tokenizer: nil, vocabularySize: 10)
        #expect(data.examples == [TrainingExample(tokens: [5, 6, 7, 8], labels: [-100, 6, -100, 8]),
                                  TrainingExample(tokens: [1, 2, 3], labels: [1, 2, 3])])
        #expect(data.examples[0].labelledCount == 2)
        #expect(data.examples[0].targets == [6, -100, 8, -100])
        // labels[0] is never scored.
        #expect(data.examples[1].labelledCount == 2)
        #expect(data.labelledCount == 4)
        #expect(data.truncated == 0)
    }

    /// Labels need not equal the tokens (HF's convention allows any target).
    @Test func preTokenizedLabelsAreKeptAsGiven() throws {
        let e = try example(#"{"input_ids": [1, 2, 3], "labels": [-100, 9, 0]}"#, tokenizer: nil)
        #expect(e.labels == [-100, 9, 0])
    }

    // MARK: the file

    @Test func longExamplesAreCutAndCounted() throws {
        let folder = try TemporaryFolder()
        let data = try load([#"{"input_ids": [1, 2, 3, 4, 5], "labels": [1, 2, 3, 4, 5]}"#,
                             #"{"input_ids": [1, 2], "labels": [1, 2]}"#,
                             #"{"text": "The capital of France is Paris, and the capital of Italy is Rome."}"#],
                            in: folder, tokenizer: try smolLM2(), maxSequenceLength: 3)
        #expect(data.truncated == 2)
        #expect(data.examples.map(\.tokens.count) == [3, 2, 3])
        #expect(data.examples[0] == TrainingExample(tokens: [1, 2, 3], labels: [1, 2, 3]))
        #expect(data.longestExample == 3)
    }

    @Test func blankLinesAreSkippedAndExamplesKeepTheirLineNumbers() throws {
        let folder = try TemporaryFolder()
        let path = try folder.write("data.jsonl", "\n  \t\r\n" + #"{"input_ids": [1, 2], "labels": [1, 2]}"# + "\r\n\n" +
                                    #"{"input_ids": [3, 4], "labels": [3, 4]}"#)
        let data = try TrainingData.load(path: path, tokenizer: nil, vocabularySize: 10, maxSequenceLength: 8)
        #expect(data.examples.count == 2)
        #expect(data.lines == [3, 5])
        #expect(data.path == path)
        let marked = try folder.write("bom.jsonl", [0xEF, 0xBB, 0xBF] + Array(#"{"input_ids": [1, 2], "labels": [1, 2]}"#.utf8))
        #expect(try TrainingData.load(path: marked, tokenizer: nil, vocabularySize: 10, maxSequenceLength: 8).lines == [1])
    }

    @Test func textFormatsMixInOneFile() throws {
        let folder = try TemporaryFolder()
        let data = try load([#"{"text": "Hello world"}"#, #"{"prompt": "a", "completion": " b"}"#, Self.conversation,
                             #"{"input_ids": [1, 2], "labels": [1, 2]}"#], in: folder, tokenizer: try smolLM2())
        #expect(data.examples.count == 4)
    }
}
