import Foundation
import Testing
import TestSupport
import Text

// `loraswitch eval` and `loraswitch perplexity` on the evaluation fixtures (Tests/Fixtures/eval): the figures of
// scripts/make_eval_fixtures.py's reference, the JSON files, bigbench:NAME through LORASWITCH_DATA, and one clear
// line for every refusal.

private let evalFixtures = fixtures.appendingPathComponent("eval").path

/// A JSON file read with the Text module's parser (Foundation's JSONSerialization on Linux rounds some decimal
/// numbers wrongly), as Foundation's kinds.
private func readJSON(_ path: String) throws -> [String: Any] {
    let value = try TemplateValue(json: try String(contentsOfFile: path, encoding: .utf8))
    func plain(_ value: TemplateValue) -> Any {
        switch value {
        case .undefined, .none: return NSNull()
        case .bool(let b): return b
        case .int(let i): return i
        case .double(let d): return d
        case .string(let s): return s
        case .array(let list): return list.map(plain)
        case .object(let object): return Dictionary(uniqueKeysWithValues: object.entries.map { ($0.key, plain($0.value)) })
        }
    }
    return try #require(plain(value) as? [String: Any])
}

/// The reference for the GPT-2 tokenizer set-up.
private func reference() throws -> [String: Any] {
    let all = try readJSON(evalFixtures + "/expected.json")
    return try #require((all["tokenizers"] as? [String: Any])?["bytelevel-gpt2"] as? [String: Any])
}

@Suite("loraswitch eval and perplexity")
struct EvalCLITests {
    let folder: TemporaryFolder
    /// The fixture model with the bytelevel-gpt2 tokenizer beside it.
    let model: String

    init() throws {
        folder = try TemporaryFolder()
        model = folder.file("model")
        try FileManager.default.createDirectory(atPath: model, withIntermediateDirectories: true)
        for file in ["config.json", "model.safetensors"] {
            try FileManager.default.copyItem(atPath: evalFixtures + "/model/" + file, toPath: model + "/" + file)
        }
        let tokenizer = fixtures.appendingPathComponent("tokenizers/bytelevel-gpt2").path
        for file in ["tokenizer.json", "tokenizer_config.json"] {
            try FileManager.default.copyItem(atPath: tokenizer + "/" + file, toPath: model + "/" + file)
        }
    }

    /// Every example's log-likelihoods and the metrics of `json` against the reference run `name` (base or lora).
    private func check(_ json: [String: Any], against name: String) throws {
        let run = try #require(try reference()[name] as? [String: Any])
        let examples = try #require(run["examples"] as? [[String: Any]])
        let ours = try #require(json["examples"] as? [[String: Any]])
        try #require(ours.count == examples.count)
        for (a, b) in zip(ours, examples) {
            let mine = try #require(a["loglik"] as? [Double])
            let theirs = try #require(b["choices"] as? [[String: Any]]).compactMap { $0["loglik"] as? Double }
            #expect(mine.count == theirs.count && zip(mine, theirs).allSatisfy { abs($0 - $1) < 1e-4 }, "\(mine) vs \(theirs)")
        }
        for key in ["n", "acc", "acc_norm", "acc_stderr", "acc_norm_stderr"] {
            #expect("\(json[key] ?? "none")" == "\(run[key] ?? "missing")", "\(key)")
        }
    }

    @Test func evalMatchesTheReference() throws {
        let out = folder.file("eval.json")
        let result = try runLoraswitch(["eval", "--model", model, "--task", evalFixtures + "/task.jsonl", "--json", out,
                                        "--threads", "2"])
        #expect(result.status == 0 && result.stderr.isEmpty, "\(result)")
        let lines = result.stdout.split(separator: "\n")
        #expect(lines.first == "task      \(evalFixtures)/task.jsonl, 0 shots")
        #expect(lines.contains("acc       0.2222  ± 0.1470") && lines.contains("n         9"), "\(result.stdout)")
        let json = try readJSON(out)
        try check(json, against: "base")
        #expect(json["task"] as? String == evalFixtures + "/task.jsonl" && json["split"] is NSNull && json["seed"] is NSNull)
        #expect(json["shots"] as? Int == 0 && json["model"] as? String == model && json["strategy"] is NSNull)
        #expect((json["examples"] as? [[String: Any]])?.map { $0["gold"] as? Int } == [0, 0, 1, 0, 0, 2, 0, 0, 1])
    }

    @Test(arguments: ["reference", "fused", "auto"]) func evalWithTheLoRA(strategy: String) throws {
        let out = folder.file("eval-\(strategy).json")
        let result = try runLoraswitch(["eval", "--model", model, "--task", evalFixtures + "/task.jsonl", "--json", out,
                                        "--adapter", evalFixtures + "/lora", "--strategy", strategy, "--threads", "2"])
        #expect(result.status == 0, "\(result)")
        let json = try readJSON(out)
        try check(json, against: "lora")
        #expect(json["adapters"] as? [String] == [evalFixtures + "/lora"] && json["strategy"] as? String == strategy)
    }

    @Test func perplexityMatchesTheReference() throws {
        let run = try #require(try reference()["perplexity"] as? [String: Any])
        let out = folder.file("ppl.json")
        let result = try runLoraswitch(["perplexity", "--model", model, "--text", evalFixtures + "/text.txt",
                                        "--context", "16", "--stride", "6", "--json", out])
        #expect(result.status == 0 && result.stderr.isEmpty, "\(result)")
        #expect(result.stdout.contains("windows       16 of 16 tokens, stride 6; 103 tokens scored (all but the first)"), "\(result.stdout)")
        let json = try readJSON(out)
        for key in ["tokens", "bytes", "context", "stride"] {
            #expect(json[key] as? Int == run[key] as? Int, "\(key)")
        }
        #expect(json["scored_tokens"] as? Int == run["scored"] as? Int)
        #expect(json["windows"] as? Int == (run["windows"] as? [Any])?.count)
        let nllSum = try #require(json["nll_sum"] as? Double), want = try #require(run["nll"] as? Double)
        #expect(abs(nllSum - want) < 1e-3)
        #expect(abs(try #require(json["nll"] as? Double) - want / 103) < 1e-5)
        #expect(abs(try #require(json["perplexity"] as? Double) / (try #require(run["perplexity"] as? Double)) - 1) < 1e-5)
        #expect(abs(try #require(json["bits_per_byte"] as? Double) - (try #require(run["bits_per_byte"] as? Double))) < 1e-5)
    }

    @Test func bigBenchThroughTheEnvironment() throws {
        // data/bigbench/tiny: the fixture task as its test split, a train split to draw shots from.
        let data = folder.file("data")
        let task = data + "/bigbench/tiny"
        try FileManager.default.createDirectory(atPath: task, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: evalFixtures + "/task.jsonl", toPath: task + "/test.jsonl")
        try FileManager.default.copyItem(atPath: evalFixtures + "/task.jsonl", toPath: task + "/train.jsonl")
        let out = folder.file("tiny.json")
        let result = try runLoraswitch(["eval", "--model", model, "--task", "bigbench:tiny", "--json", out],
                                       environment: ["LORASWITCH_DATA": data])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.hasPrefix("task      bigbench:tiny (test), 0 shots\n"), "\(result.stdout)")
        let json = try readJSON(out)
        try check(json, against: "base")
        #expect(json["split"] as? String == "test")
        // Shots change the scores, deterministically; --limit scores a prefix.
        let shot = folder.file("shot.json"), again = folder.file("again.json")
        for path in [shot, again] {
            let r = try runLoraswitch(["eval", "--model", model, "--task", "bigbench:tiny", "--shots", "2", "--seed", "9",
                                       "--limit", "4", "--json", path], environment: ["LORASWITCH_DATA": data])
            #expect(r.status == 0 && r.stdout.hasPrefix("task      bigbench:tiny (test), 2 shots\n"), "\(r)")
        }
        #expect(try readBytes(shot) == readBytes(again))
        let shotJSON = try readJSON(shot)
        #expect(shotJSON["n"] as? Int == 4 && shotJSON["seed"] as? Int == 9 && shotJSON["shots"] as? Int == 2)
        #expect("\((shotJSON["examples"] as? [[String: Any]])?.first?["loglik"] ?? "")"
            != "\((json["examples"] as? [[String: Any]])?.first?["loglik"] ?? "")")
        // A missing split file and an unknown task: one line each.
        let missing = try runLoraswitch(["eval", "--model", model, "--task", "bigbench:tiny", "--split", "validation"],
                                        environment: ["LORASWITCH_DATA": data])
        #expect(missing.status == 1 && missing.stderrLines == ["loraswitch: error: \(task)/validation.jsonl: cannot read it: no such file"], "\(missing)")
        let unknown = try runLoraswitch(["eval", "--model", model, "--task", "bigbench:nope"], environment: ["LORASWITCH_DATA": data])
        #expect(unknown.status == 1 && unknown.stderrLines == ["loraswitch: error: bigbench:nope: no such task in \(data)/bigbench (it holds tiny)"], "\(unknown)")
    }

    @Test func aBadTaskLineIsOneLineWithItsNumber() throws {
        let task = try folder.write("bad.jsonl", """
            {"context": "a", "choices": ["b", "c"], "gold": 0}

            {"context": "a", "choices": ["b", "c"], "gold": 2}

            """)
        let out = folder.file("never.json")
        let result = try runLoraswitch(["eval", "--model", model, "--task", task, "--json", out])
        #expect(result.status == 1 && result.stdout.isEmpty, "\(result)")
        #expect(result.stderrLines == ["loraswitch: error: \(task):3: \"gold\" is 2, outside the 2 choices (0...1)"], "\(result)")
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    @Test func usageMistakes() throws {
        let task = evalFixtures + "/task.jsonl", text = evalFixtures + "/text.txt"
        for (arguments, message) in [
            (["eval", "--model", model], "--task is required"),
            (["eval", "--model", model, "--task", task, "--split", "test"], "--split goes with bigbench:NAME; a task file is scored whole"),
            (["eval", "--model", model, "--task", task, "--seed", "3"], "--seed chooses the shots: it goes with --shots K (K ≥ 1)"),
            (["eval", "--model", model, "--task", task, "--strategy", "fused"], "--strategy goes with --adapter"),
            (["eval", "--model", model, "--task", task, "--show-routing"], "unknown option --show-routing"),
            (["perplexity", "--model", model, "--text", text, "--context", "8", "--stride", "8"],
             "--stride 8 must be below --context 8: a window's first scored token needs one before it"),
            (["perplexity", "--model", model, "--text", text, "--context", "129"], "--context 129 exceeds the model's context of 128 positions"),
        ] {
            let result = try runLoraswitch(arguments)
            #expect(result.status == 2, "\(arguments): \(result)")
            #expect(result.stderrLines.first == "loraswitch \(arguments[0]): \(message)", "\(result)")
        }
        // More shots than the file has other examples, and a text too short to score: errors, exit 1.
        let shots = try runLoraswitch(["eval", "--model", model, "--task", task, "--shots", "9"])
        #expect(shots.status == 1 && shots.stderrLines == ["loraswitch: error: \(task): 9 shots asked for, but only 8 examples to draw them from"], "\(shots)")
        let short = try runLoraswitch(["perplexity", "--model", model, "--text", try folder.write("one.txt", "a")])
        #expect(short.status == 1 && short.stderrLines.count == 1 && short.stderr.contains("nothing to predict"), "\(short)")
    }
}
