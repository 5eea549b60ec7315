import Foundation
import Testing
import TestSupport

/// `generate --n` and `generate --batch`: each sequence gives what `generate` gives it alone.
@Suite("loraswitch generate --n, --batch")
struct BatchCLITests {
    let folder: TemporaryFolder
    init() throws { folder = try TemporaryFolder() }

    let model = modelPath("llama-f32.gguf")

    /// The text `generate` prints alone for `extra`.
    func alone(_ extra: [String]) throws -> String {
        let result = try runLoraswitch(["generate", "--model", model] + (extra.contains("--max-tokens") ? [] : ["--max-tokens", "5"]) + extra)
        #expect(result.status == 0, "\(result)")
        return String(result.stdout.dropLast())   // its closing newline
    }

    @Test func samplesFollowTheirSeeds() throws {
        let result = try runLoraswitch(["generate", "--model", model, "--prompt", "t5 t6", "--max-tokens", "5", "--temperature", "1.1",
                                        "--seed", "40", "--n", "3", "--stats"])
        #expect(result.status == 0, "\(result)")
        for i in 0..<3 {
            let text = try alone(["--prompt", "t5 t6", "--temperature", "1.1", "--seed", "\(40 + i)"])
            #expect(result.stdout.contains("[sample \(i + 1)/3, seed \(40 + i)]\n\(text)\n"), "sample \(i): \(result.stdout)")
        }
        #expect(result.stderr.contains("3 sequences") && result.stderr.contains("tokens/s"), "\(result.stderr)")
    }

    @Test func aBatchFileGivesEachLineItsOwnGeneration() throws {
        let lora = adapterPath("peft-lora-for-gguf")
        try folder.write("requests.jsonl", """
        {"prompt": "t5 t6 t7", "max_tokens": 4}
        {"prompt": "t8", "adapter": "\(lora)", "scale": 0.5}

        {"prompt": "t9 t10", "temperature": 0.9, "seed": 5, "adapter": "\(lora)"}
        {"prompt": "t11"}
        """)
        let result = try runLoraswitch(["generate", "--model", model, "--batch", folder.file("requests.jsonl"), "--parallel", "2",
                                        "--max-tokens", "5", "--temperature", "0"])
        #expect(result.status == 0, "\(result)")
        let records = try result.stdout.split(separator: "\n").map { line -> [String: Any] in
            try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        }
        #expect(records.map { $0["index"] as? Int } == [0, 1, 2, 3] && records.map { $0["line"] as? Int } == [1, 2, 4, 5])
        var expected: [String] = []
        expected.append(try alone(["--prompt", "t5 t6 t7", "--max-tokens", "4", "--temperature", "0"]))
        expected.append(try alone(["--prompt", "t8", "--adapter", lora + ":0.5", "--temperature", "0", "--strategy", "fused"]))
        expected.append(try alone(["--prompt", "t9 t10", "--temperature", "0.9", "--seed", "5", "--adapter", lora, "--strategy", "fused"]))
        expected.append(try alone(["--prompt", "t11", "--temperature", "0"]))
        let texts: [String?] = records.map { $0["text"] as? String }
        #expect(texts == expected.map { Optional($0) })
        let reasons: [String] = records.map { ($0["finish_reason"] as? String) ?? "none" }
        #expect(reasons.allSatisfy { $0 == "length" || $0 == "stop" }, "\(reasons)")
        #expect(records[0]["completion_tokens"] as? Int == 4)
    }

    /// A bad line is refused with its number before anything is generated; so are options that do not batch.
    @Test func refusals() throws {
        let lora = adapterPath("peft-lora-for-gguf")
        for (content, mention) in [
            ("{\"prompt\": \"t5\"}\n{\"prompt\": 3}\n", ":2: 'prompt' must be a string"),
            ("{\"prompt\": \"t5\"}\nnot json\n", ":2: not a JSON object"),
            ("{\"prompt\": \"t5\", \"colour\": 1}\n", ":1: unknown key 'colour'"),
            ("{\"prompt\": \"t5\", \"scale\": 2}\n", ":1: 'scale' needs an 'adapter'"),
            ("{\"prompt\": \"t5\", \"max_tokens\": 0}\n", ":1: 'max_tokens'"),
            ("{\"prompt\": \"t5\"}\n{\"prompt\": \"t6\", \"adapter\": \"missing\"}\n", "bad.jsonl:2:"),
            ("{\"prompt\": \"t5\"}\n{\"prompt\": \"t6\", \"temperature\": -1}\n", ":2: 'temperature'"),
            ("", "no requests"),
        ] {
            let file = try folder.write("bad.jsonl", content)
            let result = try runLoraswitch(["generate", "--model", model, "--batch", file])
            #expect(result.status == 1 && result.stdout.isEmpty && result.stderrLines.count == 1, "\(content): \(result)")
            #expect(result.stderr.contains(mention), "\(content): \(result.stderr)")
        }
        let file = try folder.write("ok.jsonl", "{\"prompt\": \"t5\"}\n")
        for extra in [["--batch", file, "--prompt", "t5"], ["--batch", file, "--n", "2"], ["--prompt", "t5", "--parallel", "2"],
                      ["--prompt", "t5", "--n", "2", "--show-tokens"], ["--prompt", "t5", "--n", "2", "--adapter", lora, "--strategy", "merged"]] {
            let result = try runLoraswitch(["generate", "--model", model] + extra)
            #expect(result.status == 2 && result.stdout.isEmpty, "\(extra): \(result)")
        }
    }
}
