import Foundation
import Formats
import Testing
import TestSupport


/// The reference logits and tokens of an adapter fixture (Tests/Fixtures/adapters/expected).
private func adapterReference(_ name: String) throws -> (tokens: String, logits: [Float]) {
    let path = adapterPath("expected/\(name).safetensors")
    return (try #require(try SafetensorsFile(path: path).metadata["tokens"]), try logitsFile(path))
}

/// max |Δlogit| of `loraswitch logits` with adapters against the fixture's reference: measured max 1.8e-6
/// (moe-token-top2 under every strategy; lora-pair 1.5e-6, fused lora-basic 1.7e-6).
private let adapterTolerance: Float = 1e-5

private func logitsFile(_ path: String) throws -> [Float] {
    let f = try SafetensorsFile(path: path)
    let t = try #require(f.tensor("logits"))
    return Array(UnsafeBufferPointer(start: t.data.assumingMemoryBound(to: Float.self), count: t.elementCount))
}

@Suite("loraswitch with adapters")
struct AdapterCLITests {
    let folder: TemporaryFolder
    init() throws { folder = try TemporaryFolder() }

    @Test(arguments: ["auto", "fused", "reference", "merged", "merged-inplace"])
    func logitsUnderEveryStrategy(strategy: String) throws {
        let (tokens, expected) = try adapterReference("moe-token-top2")
        let out = folder.file("\(strategy).safetensors")
        let result = try runLoraswitch(["logits", "--model", modelPath("llama-gqa"), "--tokens", tokens, "--out", out,
                                        "--adapter", adapterPath("moe-token-top2"), "--strategy", strategy])
        #expect(result.status == 0, "\(result)")
        let logits = try logitsFile(out)
        #expect(logits.count == expected.count)
        let worst = zip(logits, expected).map { abs($0 - $1) }.max() ?? .infinity
        #expect(worst <= adapterTolerance, "\(strategy): max |Δ| \(worst)")
    }

    @Test func weightedLoRAs() throws {
        let (tokens, expected) = try adapterReference("lora-pair")
        let out = folder.file("pair.safetensors")
        let result = try runLoraswitch(["logits", "--model", modelPath("llama-gqa"), "--tokens", tokens, "--out", out,
                                        "--adapter", adapterPath("lora-basic") + ":0.7", "--adapter", adapterPath("lora-second") + ":-0.3"])
        #expect(result.status == 0, "\(result)")
        let worst = zip(try logitsFile(out), expected).map { abs($0 - $1) }.max() ?? .infinity
        #expect(worst <= adapterTolerance, "max |Δ| \(worst)")
    }

    @Test func generateShowsTheRouting() throws {
        let result = try runLoraswitch(["generate", "--model", modelPath("llama-q4_1.gguf"), "--prompt", "hello",
                                        "--max-tokens", "4", "--temperature", "0", "--adapter", adapterPath("moe-token-top2-q4"),
                                        "--show-routing"])
        #expect(result.status == 0, "\(result)")
        let routing = result.stderrLines.filter { $0.hasPrefix("[routing] position ") }
        #expect(routing.count >= 4, "\(result.stderr)")
        #expect(routing.allSatisfy { $0.contains("experts ") && $0.contains("gates ") })
    }

    @Test func autoSaysWhatItChoseWithWhichFigures() throws {
        // Token routing on float weights: auto weighs the machine's figures, probed once and then read from the cache.
        let cache = folder.file("cache")
        let arguments = ["generate", "--model", modelPath("llama-f32.gguf"), "--prompt", "hello", "--max-tokens", "2",
                         "--temperature", "0", "--adapter", adapterPath("moe-token-top2-q4"), "--stats"]
        let first = try runLoraswitch(arguments, environment: ["XDG_CACHE_HOME": cache])
        #expect(first.status == 0, "\(first)")
        let probed = try #require(first.stderrLines.first { $0.hasPrefix("auto chose ") }, "\(first.stderr)")
        #expect(probed.contains(" GB/s and ") && probed.hasSuffix(" GFLOP/s (probed now)"), "\(probed)")
        let file = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: cache + "/loraswitch/machine.json"))) as? [String: Any])
        let machines = try #require(file["machines"] as? [String: [String: Any]])
        #expect(machines.count == 1 && machines.values.first?["read_gbs"] is Double && machines.keys.first?.contains(" threads") == true, "\(file)")
        let second = try runLoraswitch(arguments, environment: ["XDG_CACHE_HOME": cache])
        #expect(second.stderrLines.first { $0.hasPrefix("auto chose ") }?.hasSuffix("(cached probe)") == true, "\(second.stderr)")
        // A cache that is not one is probed over.
        try "not json".write(toFile: cache + "/loraswitch/machine.json", atomically: true, encoding: .utf8)
        let third = try runLoraswitch(arguments, environment: ["XDG_CACHE_HOME": cache])
        #expect(third.stderrLines.first { $0.hasPrefix("auto chose ") }?.hasSuffix("(probed now)") == true, "\(third.stderr)")
        // Without --stats, nothing is said.
        let quiet = try runLoraswitch(Array(arguments.dropLast()), environment: ["XDG_CACHE_HOME": cache])
        #expect(quiet.status == 0 && quiet.stderr.isEmpty, "\(quiet)")

        // Quantized weights: fused whatever the machine, and nothing probed.
        let bare = folder.file("bare-cache")
        let quantized = try runLoraswitch(["generate", "--model", modelPath("llama-q4_1.gguf"), "--prompt", "hello", "--max-tokens", "2",
                                           "--temperature", "0", "--adapter", adapterPath("moe-token-top2-q4"), "--stats"],
                                          environment: ["XDG_CACHE_HOME": bare])
        #expect(quantized.stderrLines.contains("auto chose fused: quantized weights cannot be merged (no machine figures needed)"),
                "\(quantized.stderr)")
        #expect(!FileManager.default.fileExists(atPath: bare + "/loraswitch/machine.json"))
    }

    @Test func optionMistakesAreUsageErrors() throws {
        let base = ["logits", "--model", modelPath("llama-gqa"), "--tokens", "1,2", "--out", folder.file("x.safetensors")]
        for extra in [["--strategy", "fused"], ["--show-routing"], ["--adapter", adapterPath("lora-basic"), "--strategy", "fast"],
                      ["--adapter", adapterPath("lora-basic"), "--show-routing"]] {
            let result = try runLoraswitch(base + extra)
            #expect(result.status == 2, "\(extra): \(result)")
        }
        #expect(try folder.contents().isEmpty)
    }

    /// `logits` with `adapter` on `model` must exit 1 with one line naming `words`, writing nothing.
    private func expectFailure(adapter: String, model: String = modelPath("llama-gqa"), strategy: String? = nil,
                               mentioning words: [String], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let out = folder.file("out.safetensors")
        let result = try runLoraswitch(["logits", "--model", model, "--tokens", "1,2,3", "--out", out, "--adapter", adapter]
                                       + (strategy.map { ["--strategy", $0] } ?? []), sourceLocation: sourceLocation)
        #expect(result.exitedNormally && result.status == 1, "\(result)", sourceLocation: sourceLocation)
        #expect(result.stderrLines.count == 1 && result.stderr.hasPrefix("loraswitch: error: "), "\(result.stderr)",
                sourceLocation: sourceLocation)
        for word in words { #expect(result.stderr.contains(word), "'\(word)' in: \(result.stderr)", sourceLocation: sourceLocation) }
        #expect(!FileManager.default.fileExists(atPath: out), sourceLocation: sourceLocation)
    }

    private func copyAdapter(_ name: String) throws -> String {
        try folder.copy(adapterPath(name), as: "\(name)-\(UUID().uuidString)")
    }

    @Test func truncatedAdapterWeights() throws {
        let copy = try copyAdapter("lora-basic")
        let weights = copy + "/adapter_model.safetensors"
        let bytes = try readBytes(weights)
        for n in [0, 7, 100, bytes.count / 2, bytes.count - 1] {
            try writeBytes(Array(bytes[0..<n]), to: weights)
            try expectFailure(adapter: copy, mentioning: [weights])
        }
    }

    @Test func adapterOffsetOutsideTheFile() throws {
        let copy = try copyAdapter("lora-basic")
        let weights = copy + "/adapter_model.safetensors"
        var name = ""
        try editSafetensorsHeader(weights) { header, dataSize in
            name = header.keys.filter { $0 != "__metadata__" }.sorted()[0]
            var entry = header[name] as! [String: Any]
            let offsets = entry["data_offsets"] as! [Int]
            entry["data_offsets"] = [dataSize + 64, dataSize + 64 + offsets[1] - offsets[0]]
            header[name] = entry
        }
        try expectFailure(adapter: copy, mentioning: [weights, name])
    }

    @Test func badAdapterConfigs() throws {
        let copy = try copyAdapter("lora-basic")
        let config = copy + "/adapter_config.json"
        let original = try readBytes(config)
        try writeBytes(Array("{\"r\": 8, ".utf8), to: config)
        try expectFailure(adapter: copy, mentioning: [config])
        var json = try #require(try JSONSerialization.jsonObject(with: Data(original)) as? [String: Any])
        json["r"] = "eight"
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: config))
        try expectFailure(adapter: copy, mentioning: [config, "r"])
        try FileManager.default.removeItem(atPath: config)
        try expectFailure(adapter: copy, mentioning: [copy])
        try expectFailure(adapter: folder.file("no-such-adapter"), mentioning: ["no-such-adapter"])
    }

    @Test func truncatedGGUFLoRA() throws {
        let copy = try copyAdapter("gguf-lora.gguf")
        let bytes = try readBytes(copy)
        for n in [0, 3, 30, bytes.count / 2, bytes.count - 1] {
            try writeBytes(Array(bytes[0..<n]), to: copy)
            try expectFailure(adapter: copy, model: modelPath("llama-f32.gguf"), mentioning: [copy])
        }
    }

    @Test func adapterThatDoesNotFit() throws {
        try expectFailure(adapter: adapterPath("lora-basic"), model: modelPath("llama-f32.gguf"), mentioning: ["another base model"])
        try expectFailure(adapter: adapterPath("moe-token-top2-q4"), model: modelPath("llama-q4_1.gguf"), strategy: "merged",
                          mentioning: ["merged"])
    }

    @Test func fuseAndUnfuse() throws {
        let (tokens, expected) = try adapterReference("lora-basic")
        let fused = folder.file("fused"), unfused = folder.file("unfused")
        let fuse = try runLoraswitch(["fuse", "--model", modelPath("llama-gqa"), "--adapter", adapterPath("lora-basic"), "--out", fused])
        #expect(fuse.status == 0 && fuse.stdout.contains("wrote"), "\(fuse)")
        let out = folder.file("fused.safetensors")
        #expect(try runLoraswitch(["logits", "--model", fused, "--tokens", tokens, "--out", out]).status == 0)
        let worst = zip(try logitsFile(out), expected).map { abs($0 - $1) }.max() ?? .infinity
        #expect(worst <= adapterTolerance, "fused: max |Δ| \(worst)")
        let unfuse = try runLoraswitch(["unfuse", "--model", fused, "--adapter", adapterPath("lora-basic"), "--out", unfused])
        #expect(unfuse.status == 0, "\(unfuse)")
        #expect(FileManager.default.fileExists(atPath: unfused + "/model.safetensors"))
    }

    @Test func fuseRefusals() throws {
        let out = folder.file("fused")
        let mixture = try runLoraswitch(["fuse", "--model", modelPath("llama-gqa"), "--adapter", adapterPath("moe-token-top2"), "--out", out])
        #expect(mixture.status == 1 && mixture.stderrLines.count == 1 && mixture.stderr.contains("mixture of experts"), "\(mixture)")
        let dtype = try runLoraswitch(["fuse", "--model", modelPath("llama-gqa"), "--adapter", adapterPath("lora-basic"), "--out", out,
                                       "--dtype", "q4_0"])
        #expect(dtype.status == 2, "\(dtype)")
        let noAdapter = try runLoraswitch(["fuse", "--model", modelPath("llama-gqa"), "--out", out])
        #expect(noAdapter.status == 2, "\(noAdapter)")
        #expect(try folder.contents().isEmpty, "nothing may be written on failure")
    }
}

@Suite("loraswitch bench with adapters")
struct BenchCLITests {
    /// `bench --config tiny --prompt 4 --experts 4 --rank 4 …` with `arguments`: the result and the JSON report.
    private func bench(_ arguments: [String]) throws -> (RunResult, [String: Any]) {
        let folder = try TemporaryFolder()
        let json = folder.file("bench.json")
        let result = try runLoraswitch(["bench", "--config", "tiny", "--prompt", "4", "--experts", "4", "--rank", "4",
                                        "--json", json] + arguments)
        #expect(result.status == 0, "\(result)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any])
        return (result, report)
    }

    @Test func adapterRowsUnderOneStrategy() throws {
        let (result, report) = try bench(["--tokens", "4", "--strategy", "fused"])
        let rows = try #require(report["rows"] as? [[String: Any]])
        #expect(rows.compactMap { $0["name"] as? String } == ["backbone", "lora", "layer-fused", "token-fused"])
        // Four tokens: two rounds by default (a round needs a token with and one without the adapter).
        #expect(report["rounds"] as? Int == 2)
        for row in rows {
            #expect(row["rounds"] as? Int == 2, "\(row)")
            let ms = try #require(row["decode_ms_per_token"] as? Double), low = try #require(row["decode_ms_per_token_min"] as? Double),
                high = try #require(row["decode_ms_per_token_max"] as? Double)
            #expect(0 < low && low <= ms && ms <= high, "\(row)")
        }
        #expect(rows[0]["ratio_vs_backbone"] == nil && rows[0]["adapter_bytes_per_token"] == nil)
        for row in rows.dropFirst() {
            let ratio = try #require(row["ratio_vs_backbone"] as? Double), low = try #require(row["ratio_min"] as? Double),
                high = try #require(row["ratio_max"] as? Double)
            #expect(0 < low && low <= ratio && ratio <= high, "\(row)")
            #expect((row["adapter_bytes_per_token"] as? Int).map { $0 > 0 } == true, "\(row)")
            #expect(row["switch_rate"] == nil, "\(row)")
        }
        // What is measured and what is modelled, in the JSON and under the table.
        #expect(report["measured"] as? [String] == ["decode_ms_per_token", "decode_ms_per_token_min", "decode_ms_per_token_max",
                                                    "prefill_tokens_per_s", "ratio_vs_backbone", "ratio_min", "ratio_max", "switch_rate"])
        #expect(report["modelled"] as? [String] == ["bytes_per_token", "adapter_bytes_per_token", "gbs", "switch_bytes"])
        let lines = result.stdout.split(separator: "\n")
        let header = try #require(lines.first { $0.hasPrefix("name ") })
        for column in ["decode ms/token (min–max)", "vs backbone (min–max)", "model MB/token", "model adapter MB", "model GB/s",
                       "model % of read bw"] {
            #expect(header.contains(column), "\(header)")
        }
        let fused = try #require(lines.first { $0.hasPrefix("token-fused ") })
        #expect(fused.contains(" x") && fused.contains("–"), "a ratio with its spread: \(fused)")
        #expect(lines.contains { $0.hasPrefix("measured: ") && $0.contains("decode ms/token") && $0.contains("read bandwidth") })
        #expect(lines.contains { $0.hasPrefix("modelled from tensor sizes: ") && $0.contains("switch rate") })
        #expect(result.stdout.contains("adapter/backbone bytes per token"))
        #expect(result.stdout.contains("in 2 rounds"))
    }

    @Test func mergedRowsCountWhatASwitchRewrites() throws {
        let (result, report) = try bench(["--tokens", "6", "--rounds", "3",
                                          "--rows", "lora-merged,token-fused,token-merged-rebuild,token-merged-inplace,auto"])
        let rows = try #require(report["rows"] as? [[String: Any]])
        func row(_ name: String) throws -> [String: Any] { try #require(rows.first { $0["name"] as? String == name }) }
        #expect(rows.allSatisfy { $0["rounds"] as? Int == 3 })
        let backboneBytes = try #require(try row("backbone")["bytes_per_token"] as? Int)
        #expect(try row("lora-merged")["adapter_bytes_per_token"] as? Int == 0)
        let fusedBytes = try #require(try row("token-fused")["adapter_bytes_per_token"] as? Int)
        var perSwitch: [String: Int] = [:]
        for name in ["token-merged-rebuild", "token-merged-inplace"] {
            let merged = try row(name)
            let rate = try #require(merged["switch_rate"] as? Double), bytes = try #require(merged["switch_bytes"] as? Int)
            let adapterBytes = try #require(merged["adapter_bytes_per_token"] as? Int)
            // Random tokens switch almost every time; a switch rewrites every adapted matrix, far beyond the fused reads.
            #expect(rate > 0.5 && rate <= 1, "\(merged)")
            #expect(bytes > 10 * fusedBytes, "\(merged)")
            #expect(Double(adapterBytes) >= rate * Double(bytes) && Double(adapterBytes) < rate * Double(bytes) + Double(fusedBytes), "\(merged)")
            #expect(merged["bytes_per_token"] as? Int == backboneBytes + adapterBytes, "\(merged)")
            #expect(result.stdout.contains("\(name): switch rate "), "\(result.stdout)")
            perSwitch[name] = bytes
        }
        #expect(perSwitch["token-merged-inplace"]! > perSwitch["token-merged-rebuild"]!)
        // auto decided with the figures measured before the rows, and says so.
        let auto = try #require(report["auto"] as? [String: Any]), machine = try #require(report["machine"] as? [String: Any])
        #expect(auto["choice"] as? String == "fused" && auto["figures"] as? String == "measured in this run", "\(auto)")
        #expect(auto["read_gbs"] as? Double == machine["read_gbs_before"] as? Double)
        #expect(auto["sgemm_gflops"] as? Double == machine["sgemm_gflops_before"] as? Double)
        let note = try #require(result.stdout.split(separator: "\n").first { $0.hasPrefix("auto chose fused: ") })
        #expect(note.contains(" GB/s and ") && note.contains(" GFLOP/s (measured in this run)"), "\(note)")
        #expect(try row("auto")["adapter_bytes_per_token"] as? Int == fusedBytes)
    }

    /// The token rows' router on a later layer: their adapter covers fewer layers (fewer bytes a token), and every
    /// strategy decodes with it.
    @Test func routerOnALaterLayer() throws {
        let (_, first) = try bench(["--tokens", "4", "--rounds", "1", "--rows", "token-fused"])
        let (result, later) = try bench(["--tokens", "4", "--rounds", "1", "--router-layer", "2",
                                         "--rows", "token-reference,token-fused,token-merged-rebuild"])
        func bytes(_ report: [String: Any], _ name: String) throws -> Int {
            let rows = try #require(report["rows"] as? [[String: Any]])
            return try #require(rows.first { $0["name"] as? String == name }?["adapter_bytes_per_token"] as? Int)
        }
        #expect(try bytes(later, "token-fused") < bytes(first, "token-fused"), "\(result.stdout)")
        for name in ["token-reference", "token-merged-rebuild"] { _ = try bytes(later, name) }
        let wrong = try runLoraswitch(["bench", "--config", "tiny", "--experts", "4", "--tokens", "2", "--router-layer", "99"])
        #expect(wrong.status == 1 && wrong.stderr.contains("99"), "\(wrong)")
    }

    @Test func optionMistakes() throws {
        for arguments in [["--switches", "10"], ["--experts", "2", "--top-k", "3"], ["--experts", "4", "--rows", "token-fast"],
                          ["--experts", "4", "--strategy", "fast"], ["--rounds", "0"],
                          ["--experts", "2", "--tokens", "5", "--rounds", "3"], ["--tokens", "2", "--rounds", "3"]] {
            let result = try runLoraswitch(["bench", "--config", "tiny"] + arguments)
            #expect(result.status == 2, "\(arguments): \(result)")
        }
    }
}
