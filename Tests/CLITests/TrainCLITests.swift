import Foundation
import Testing
import TestSupport

// `loraswitch train` on the tiny fixture models: what it writes, that the loss falls, that a seed fixes every loss
// bit for bit, that a stopped run resumed is the uninterrupted run, and one clear line for every refusal with
// nothing written.


/// Four sequences of 12 token ids below 128 (the HF fixtures' vocabulary), from a fixed linear congruential
/// generator: a task a small adapter can memorize.
private let sequences: [[Int]] = {
    var state: UInt64 = 12345
    return (0..<4).map { _ in
        (0..<12).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int(state >> 33) % 128
        }
    }
}()

/// JSONL lines of pre-tokenized examples, every token labelled.
private func preTokenized(_ sequences: [[Int]]) -> String {
    sequences.map { s in
        let ids = s.map(String.init).joined(separator: ",")
        return "{\"input_ids\":[\(ids)],\"labels\":[\(ids)]}\n"
    }.joined()
}

/// The raw JSON text of `key` in every record of `type` of a --log file: numbers compared as written.
private func logField(_ path: String, type: String, _ key: String) throws -> [String] {
    let text = try String(contentsOfFile: path, encoding: .utf8)
    return text.split(separator: "\n").filter { $0.hasPrefix("{\"type\":\"\(type)\"") }.compactMap { line -> String? in
        guard let start = line.range(of: "\"\(key)\":") else { return nil }
        let rest = line[start.upperBound...]
        return String(rest.prefix { $0 != "," && $0 != "}" })
    }
}

private func jsonObject(_ path: String) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
}

@Suite("loraswitch train")
struct TrainCLITests {
    let folder: TemporaryFolder
    let data: String

    init() throws {
        folder = try TemporaryFolder()
        data = try folder.write("train.jsonl", preTokenized(sequences))
    }

    /// `train` on llama-gqa (a Hugging Face folder without a tokenizer) with small adapters: 4 experts, rank 4.
    private func train(_ extra: [String], model: String = "llama-gqa", data: String? = nil,
                       sourceLocation: SourceLocation = #_sourceLocation) throws -> RunResult {
        var arguments = ["train", "--model", modelPath(model), "--data", data ?? self.data, "--threads", "2", "--rank", "4"]
        if !extra.contains("--init") && !extra.contains("--resume") && !extra.contains("lora") {
            arguments += ["--experts", "4"]
        }
        return try runLoraswitch(arguments + extra, timeout: 60, sourceLocation: sourceLocation)
    }

    private func expectCheckpoint(_ out: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: out).sorted()
        #expect(names == ["adapter_config.json", "adapter_model.safetensors", "training_state.safetensors"],
                sourceLocation: sourceLocation)
        // Saves go through a temporary folder beside --out that is renamed over it: none may be left behind.
        let parent = (out as NSString).deletingLastPathComponent
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: parent).filter { $0.contains(".partial-") || $0.contains(".old-") }
        #expect(leftovers.isEmpty, "\(leftovers)", sourceLocation: sourceLocation)
    }

    /// The written adapter runs: `logits --adapter OUT` succeeds.
    private func expectLoads(_ out: String, model: String = "llama-gqa", sourceLocation: SourceLocation = #_sourceLocation) throws {
        let logits = try runLoraswitch(["logits", "--model", modelPath(model), "--adapter", out, "--tokens", "1,2,3",
                                        "--out", folder.file("logits-\(UUID().uuidString).safetensors")],
                                       sourceLocation: sourceLocation)
        #expect(logits.status == 0, "\(logits)", sourceLocation: sourceLocation)
    }

    // MARK: - What a run writes

    @Test func moeTokenRunWritesACheckpoint() throws {
        let out = folder.file("moe"), log = folder.file("moe.jsonl")
        let valid = try folder.write("valid.jsonl", preTokenized(Array(sequences.prefix(2))))
        let result = try train(["--out", out, "--valid", valid, "--steps", "3", "--log", log])
        #expect(result.status == 0, "\(result)")
        try expectCheckpoint(out)
        let config = try jsonObject(out + "/adapter_config.json")
        #expect(config["peft_type"] as? String == "MOE_LORA" && config["routing"] as? String == "token")
        #expect(config["num_experts"] as? Int == 4 && config["top_k"] as? Int == 2 && config["r"] as? Int == 4)
        #expect(config["lora_alpha"] as? Double == 8, "alpha defaults to 2 × rank")
        try expectLoads(out)

        #expect(result.stdout.contains("adapter: moe-token, 4 experts top-2, rank 4, alpha 8"), "\(result.stdout)")
        #expect(result.stdout.contains("step 3: valid loss "), "\(result.stdout)")
        #expect(result.stdout.contains("step 3: experts' shares "), "\(result.stdout)")
        #expect(result.stdout.contains("done: 3 steps"), "\(result.stdout)")
        #expect(result.stdout.contains("adapter: \(out)"), "\(result.stdout)")
        // Not a terminal: a plain progress line per step on standard error.
        let progress = result.stderrLines.filter { $0.hasPrefix("step ") }
        #expect(progress.count == 3 && progress[2].hasPrefix("step 3/3  loss ") && progress[2].contains("  aux ")
                && progress[2].contains(" tok/s  ETA "), "\(result.stderr)")

        let types = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
            .map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])["type"] as? String }
        #expect(types == ["start", "step", "step", "step", "eval", "checkpoint", "done"])
        #expect(try logField(log, type: "step", "step") == ["1", "2", "3"])
        #expect(try logField(log, type: "eval", "utilization").first?.hasPrefix("{\"router\":[") == true)
        #expect(try logField(log, type: "done", "stopped") == ["null"])
    }

    @Test func loraRunWritesPEFTLoRA() throws {
        let out = folder.file("lora")
        let result = try train(["--out", out, "--type", "lora", "--steps", "2"])
        #expect(result.status == 0, "\(result)")
        try expectCheckpoint(out)
        let config = try jsonObject(out + "/adapter_config.json")
        #expect(config["peft_type"] as? String == "LORA" && config["r"] as? Int == 4 && config["num_experts"] == nil)
        try expectLoads(out)
        #expect(!result.stderr.contains(" aux "), "no aux term for a static LoRA: \(result.stderr)")
    }

    /// Text and prompt/completion lines, tokenized by a GGUF model's own vocabulary, on a Q4_1 backbone.
    @Test func textDataWithTheModelsTokenizer() throws {
        let text = try folder.write("text.jsonl", "{\"text\":\"hello world\"}\n{\"prompt\":\"abc\",\"completion\":\" def\"}\n")
        let out = folder.file("q4")
        let result = try train(["--out", out, "--steps", "2", "--layers", "1"], model: "llama-q4_1.gguf", data: text)
        #expect(result.status == 0, "\(result)")
        try expectCheckpoint(out)
        #expect(try jsonObject(out + "/adapter_config.json")["layers_to_transform"] as? [Int] == [1])
        try expectLoads(out, model: "llama-q4_1.gguf")
    }

    // MARK: - Learning, determinism, resuming

    /// 30 full-batch steps at lr 1e-2 memorize the four sequences: the loss starts near ln 128 = 4.85 and, measured,
    /// ends at 1.72 (lora), 1.06 (moe-token), 1.13 (moe-layer); it must end below 2.5.
    @Test(arguments: ["lora", "moe-token", "moe-layer"])
    func lossFalls(type: String) throws {
        let out = folder.file(type), log = folder.file("\(type).jsonl")
        let result = try train(["--out", out, "--type", type, "--batch-size", "4", "--epochs", "30", "--lr", "1e-2",
                                "--valid", data, "--log", log])
        #expect(result.status == 0, "\(result)")
        let losses = try logField(log, type: "step", "loss").map { try #require(Double($0)) }
        #expect(losses.count == 30)
        #expect(losses.first! > 4.5 && losses.last! < 2.5, "\(type): \(losses)")
        let validText = try #require(try logField(log, type: "eval", "valid_loss").last)
        let valid = try #require(Double(validText))
        #expect(valid < 2.5, "\(type): valid loss \(valid)")
        if type == "moe-layer" {
            #expect(result.stdout.contains("routers, experts' shares ") && result.stdout.contains("most collapsed: model.layers."),
                    "\(result.stdout)")
        }
    }

    @Test func sameSeedSameLosses() throws {
        func run(_ name: String, seed: String) throws -> [String] {
            let result = try train(["--out", folder.file(name), "--epochs", "2", "--lr", "1e-2", "--seed", seed,
                                    "--log", folder.file("\(name).jsonl")])
            #expect(result.status == 0, "\(result)")
            return try logField(folder.file("\(name).jsonl"), type: "step", "loss")
        }
        let first = try run("a", seed: "7"), second = try run("b", seed: "7"), other = try run("c", seed: "8")
        #expect(first.count == 8)
        #expect(first == second)
        #expect(try readBytes(folder.file("a/adapter_model.safetensors")) == readBytes(folder.file("b/adapter_model.safetensors")))
        #expect(first != other, "another seed: other initial values and order")
    }

    /// A run stopped after step 3 (--stop-after, as Ctrl-C) and resumed gives steps 4–6 of the uninterrupted run (3
    /// epochs of 2 steps: the stop is inside the second), bit for bit, and the same adapter and optimizer state at the end.
    @Test func resumeContinuesTheRun() throws {
        let options = ["--epochs", "3", "--batch-size", "2", "--lr", "1e-2", "--warmup", "1", "--z-loss-coef", "1e-3"]
        let whole = try train(options + ["--out", folder.file("whole"), "--save-every", "2", "--log", folder.file("whole.jsonl")])
        #expect(whole.status == 0, "\(whole)")
        #expect(whole.stdout.contains("step 2: checkpoint saved to "), "\(whole.stdout)")
        try expectCheckpoint(folder.file("whole"))

        let stopped = try train(options + ["--out", folder.file("part"), "--stop-after", "3", "--log", folder.file("part1.jsonl")])
        #expect(stopped.status == 0, "\(stopped)")
        #expect(stopped.stdout.contains("stopped (--stop-after) at step 3 of 6"), "\(stopped.stdout)")
        #expect(try logField(folder.file("part1.jsonl"), type: "done", "stopped") == ["\"stop-after\""])
        // The resumed run adds to the stopped run's log.
        let resumed = try train(options + ["--out", folder.file("part"), "--resume", folder.file("part"),
                                           "--log", folder.file("part1.jsonl")])
        #expect(resumed.status == 0, "\(resumed)")
        #expect(resumed.stdout.contains("done: 3 steps (4–6)"), "\(resumed.stdout)")

        let all = try logField(folder.file("whole.jsonl"), type: "step", "loss")
        #expect(try logField(folder.file("part1.jsonl"), type: "step", "step") == ["1", "2", "3", "4", "5", "6"])
        let parts = try logField(folder.file("part1.jsonl"), type: "step", "loss")
        #expect(all.count == 6 && parts == all)
        for file in ["adapter_model.safetensors", "training_state.safetensors"] {
            #expect(try readBytes(folder.file("whole/" + file)) == readBytes(folder.file("part/" + file)), "\(file)")
        }
    }

    @Test func resumeWithOtherOptionsIsRefused() throws {
        let out = folder.file("run")
        #expect(try train(["--out", out, "--stop-after", "1", "--epochs", "2"]).status == 0)
        let before = try readBytes(out + "/adapter_model.safetensors")
        let result = try train(["--out", out, "--resume", out, "--epochs", "2", "--lr", "1e-3"])
        #expect(result.status == 1 && result.stderrLines.count == 1, "\(result)")
        #expect(result.stderr.contains("--resume") && result.stderr.contains("lr"), "\(result.stderr)")
        #expect(try readBytes(out + "/adapter_model.safetensors") == before, "the checkpoint is left as it was")
    }

    @Test func aFinishedRunIsNotResumedButItsAdapterCanStartAnother() throws {
        let out = folder.file("done")
        #expect(try train(["--out", out, "--steps", "1"]).status == 0)
        let resumed = try train(["--out", out, "--resume", out, "--steps", "1"])
        #expect(resumed.status == 1 && resumed.stderrLines.count == 1, "\(resumed)")
        #expect(resumed.stderr.contains("nothing to continue") && resumed.stderr.contains("--init"), "\(resumed.stderr)")
        let further = try train(["--out", folder.file("further"), "--init", out, "--steps", "1"])
        #expect(further.status == 0, "\(further)")
    }

    @Test func initStartsFromAnAdapter() throws {
        let out = folder.file("init")
        let result = try train(["--out", out, "--init", adapterPath("moe-layer-top2"), "--steps", "2", "--type", "moe-layer"])
        #expect(result.status == 0, "\(result)")
        let config = try jsonObject(out + "/adapter_config.json")
        #expect(config["routing"] as? String == "layer" && config["num_experts"] as? Int == 4)
        #expect(config["target_modules"] as? [String] == ["q_proj", "v_proj", "up_proj", "down_proj"])
        try expectLoads(out)
    }

    /// Ctrl-C: the run stops after the step in flight, saves a checkpoint and exits with 130.
    @Test func interruptSavesACheckpoint() throws {
        let out = folder.file("interrupted"), log = folder.file("interrupted.jsonl")
        let process = Process()
        process.executableURL = try loraswitchExecutable()
        process.arguments = ["train", "--model", modelPath("llama-gqa"), "--data", data, "--out", out, "--log", log,
                             "--experts", "4", "--rank", "4", "--epochs", "100000", "--threads", "2"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        process.environment = ProcessInfo.processInfo.environment.merging(["XDG_CACHE_HOME": folder.file("cache")]) { _, new in new }
        try process.run()
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline, process.isRunning,
              (try? logField(log, type: "step", "step").count) ?? 0 < 2 {
            Thread.sleep(forTimeInterval: 0.02)
        }
        process.interrupt()
        while Date() < deadline, process.isRunning { Thread.sleep(forTimeInterval: 0.02) }
        // SIGKILL: the test runner's threads block SIGTERM, and the child inherits that mask.
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        #expect(process.terminationReason == .exit && process.terminationStatus == 130)
        try expectCheckpoint(out)
        #expect(try logField(log, type: "done", "stopped") == ["\"interrupt\""])
        let steps = try logField(log, type: "step", "step")
        #expect(try logField(log, type: "checkpoint", "step") == [steps.last!], "the checkpoint is of the last step done")
    }

    // MARK: - Refusals

    /// Bad input: one line on standard error, exit status 1 (2 for a usage error, whose first line names the problem
    /// and the usage follows), and no --out folder.
    @Test(arguments: [
        ("malformed.jsonl", "{\"input_ids\":[1,2],\"labels\":[1,2]}\n{\"input_ids\":[1,2\n", [], 1, ["malformed.jsonl:2:", "JSON"]),
        ("empty.jsonl", "", [], 1, ["empty.jsonl", "no training examples"]),
        ("masked.jsonl", "{\"input_ids\":[1,2,3],\"labels\":[-100,-100,-100]}\n", [], 1, ["masked.jsonl:1:", "-100"]),
        ("text.jsonl", "{\"text\":\"hello\"}\n", [], 1, ["text.jsonl:1:", "tokenizer"]),
        ("", "", ["--model", "llama-mha", "--init", "lora-basic"], 1, ["lora-basic", "another base model"]),
        ("", "", ["--model", "llama-f32.gguf", "--init", "gguf-lora.gguf"], 1, ["--init", "gguf-lora.gguf", "not an adapter folder"]),
        ("", "", ["--resume", "lora-basic"], 1, ["--resume", "not a training checkpoint"]),
        ("", "", ["--resume", "missing"], 1, ["--resume", "no such folder"]),
        ("", "", ["--init", "lora-basic", "--rank", "8"], 2, ["--rank 8", "lora-basic", "rank is 4"]),
        ("", "", ["--init", "moe-token-top2", "--type", "lora"], 2, ["--type lora", "moe-token-top2", "moe-token"]),
        ("", "", ["--init", "lora-basic", "--experts", "3"], 2, ["--experts 3", "lora-basic", "LoRA"]),
        ("", "", ["--init", "lora-basic", "--resume", "x"], 2, ["--init", "--resume"]),
        ("", "", ["--type", "lora", "--top-k", "1"], 2, ["--top-k", "lora"]),
        ("", "", ["--top-k", "5"], 2, ["--top-k 5", "4 experts"]),
        ("", "", ["--layers", "0,7"], 2, ["--layers 7", "2 layers"]),
        ("", "", ["--max-seq-len", "4096"], 2, ["--max-seq-len 4096", "context of 128"]),
        ("", "", ["--lr", "fast"], 2, ["--lr", "fast"]),
    ] as [(String, String, [String], Int32, [String])])
    func refusal(file: String, content: String, extra: [String], status: Int32, mentions: [String]) throws {
        let data = file.isEmpty ? self.data : try folder.write(file, content)
        var arguments = extra
        for (i, a) in arguments.enumerated() where i > 0 {
            if ["--init", "--resume"].contains(arguments[i - 1]), a != "missing", a != "x" { arguments[i] = adapterPath(a) }
            if arguments[i - 1] == "--model" { arguments[i] = modelPath(a) }
            if arguments[i - 1] == "--resume", a == "missing" { arguments[i] = folder.file("missing") }
        }
        let out = folder.file("out")
        let model = arguments.firstIndex(of: "--model").map { arguments[$0 + 1] }
        if let m = arguments.firstIndex(of: "--model") { arguments.removeSubrange(m...(m + 1)) }
        var full = ["train", "--model", model ?? modelPath("llama-gqa"), "--data", data, "--out", out] + arguments
        if !arguments.contains("--init") && !arguments.contains("lora") { full += ["--experts", "4"] }
        let result = try runLoraswitch(full, timeout: 60)
        try expectRefused(result, status: status, mentions: mentions, out: out)
    }

    @Test func unusableOutputFolders() throws {
        try folder.write("file", "x")
        for (out, mention) in [(folder.file("missing/out"), "does not exist"), (folder.file("file/out"), "is a file"),
                               (folder.file("file"), "is a file, not a folder")] {
            let result = try train(["--out", out])
            try expectRefused(result, status: 1, mentions: [mention], out: out == folder.file("file") ? nil : out)
        }
        // A folder holding anything but a checkpoint is not replaced.
        let busy = folder.file("busy")
        try FileManager.default.createDirectory(atPath: busy, withIntermediateDirectories: false)
        try folder.write("busy/notes.txt", "keep me")
        let result = try train(["--out", busy])
        try expectRefused(result, status: 1, mentions: ["holds other files", "notes.txt"], out: nil)
        #expect(try String(contentsOfFile: busy + "/notes.txt", encoding: .utf8) == "keep me")
        // --log inside --out would be replaced with the folder.
        let inside = try train(["--out", folder.file("o"), "--log", folder.file("o/log.jsonl")])
        try expectRefused(inside, status: 2, mentions: ["--log", "inside --out"], out: folder.file("o"))
    }

    private func expectRefused(_ result: RunResult, status: Int32, mentions: [String], out: String?,
                               sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(result.exitedNormally && result.status == status, "\(result)", sourceLocation: sourceLocation)
        let first = String(result.stderrLines.first ?? "")
        if status == 1 {
            #expect(result.stderrLines.count == 1 && first.hasPrefix("loraswitch: error: "), "\(result.stderr)",
                    sourceLocation: sourceLocation)
        } else {
            #expect(first.hasPrefix("loraswitch train: ") && result.stderrLines.dropFirst().first?.hasPrefix("usage: ") == true,
                    "\(result.stderr)", sourceLocation: sourceLocation)
        }
        for text in mentions { #expect(first.contains(text), "'\(text)' not in: \(first)", sourceLocation: sourceLocation) }
        #expect(result.stdout.isEmpty, "\(result.stdout)", sourceLocation: sourceLocation)
        if let out { #expect(!FileManager.default.fileExists(atPath: out), "\(out) was created", sourceLocation: sourceLocation) }
        let leftovers = try folder.contents().filter { $0.hasPrefix(".") }
        #expect(leftovers.isEmpty, "\(leftovers)", sourceLocation: sourceLocation)
    }

    @Test func helpListsEveryOptionWithItsDefault() throws {
        let result = try runLoraswitch(["train", "--help"])
        #expect(result.status == 0, "\(result)")
        let options = ["model", "data", "valid", "out", "type", "experts", "top-k", "rank", "alpha", "rslora", "targets",
                       "layers", "router-layer", "init", "optimizer", "lr", "warmup", "schedule", "weight-decay", "clip",
                       "epochs", "steps", "batch-size", "grad-accum", "max-seq-len", "aux-loss-coef", "z-loss-coef",
                       "seed", "threads", "save-every", "eval-every", "resume", "stop-after", "log"]
        // Each option's entry: from its line to the next option's.
        let lines = result.stdout.split(separator: "\n").map(String.init)
        for option in options {
            let start = try #require(lines.firstIndex { $0.hasPrefix("  --\(option) ") }, "--\(option) is not listed")
            let end = lines[(start + 1)...].firstIndex { $0.hasPrefix("  --") || !$0.hasPrefix("   ") } ?? lines.count
            let entry = lines[start..<end].joined(separator: " ")
            #expect(entry.contains("(default") || entry.contains("(required)"), "--\(option): \(entry)")
        }
        for text in ["(default moe-token)", "(default 8)", "(default 2, at most --experts)", "(default 16)",
                     "(default 2 × rank: 32 for rank 16)", "(default all)", "(default adamw)", "(default 1e-4)",
                     "(default cosine)", "(default 1.0)", "(default 2048, at most the model's context)", "(default 0.01)",
                     "(default: one per core)", "status 130"] {
            #expect(result.stdout.contains(text), "missing \(text)")
        }
        #expect(try runLoraswitch(["--help"]).stdout.contains("train "))
    }
}
