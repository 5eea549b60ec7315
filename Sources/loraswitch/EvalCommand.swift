import Adapters
import Evaluation
import Engine
import Formats
import Foundation
import Kernels
import Model

/// `loraswitch eval`: scores a multiple-choice task the way lm-evaluation-harness scores log-likelihood requests
/// and prints acc and acc_norm with their standard errors.
struct EvalCommand: Command {
    static let name = "eval"
    static let summary = "score a multiple-choice task (acc, acc_norm) as lm-evaluation-harness does"
    static let usage = """
    --task FILE.jsonl|bigbench:NAME [--model PATH] [--split S] [--shots K] [--limit N] [--seed S] [--json FILE]
                    [--threads N] [adapter options]
      --model PATH          a Hugging Face folder or .gguf file (default: the default model)
      --task T              a JSONL file, one {"context": str, "choices": [str], "gold": int} a line; or bigbench:NAME,
                            the files NAME/{train,validation,test}.jsonl of the BIG-bench data folder: $LORASWITCH_DATA/
                            bigbench when LORASWITCH_DATA is set, else data/bigbench in the current folder or the
                            nearest of its parents that has one, else the same from the executable's folder
      --split S             train|validation|test, bigbench:NAME only (default test); a task file is scored whole
      --shots K             K solved examples (context + gold choice) before each context, joined by blank lines,
                            drawn from the train split (a task file: from the file itself), never the example
                            itself (default 0)
      --limit N             score the first N examples (the BIG-bench files list theirs in random order)
      --seed S              the shots' draw: SplitMix64 seeded with S XOR (example index · 0xD1B54A32D192ED03)
                            (default 1234, lm-evaluation-harness's few-shot seed)
      --json FILE           also write {"task", "split", "shots", "seed", "model", "adapters", "strategy", "n", "acc",
                            "acc_norm", "acc_stderr", "acc_norm_stderr", "examples": [{"loglik": [per choice], "gold"}]}
      --threads N           threads (default: one per core)
    """ + "\n" + AdapterArguments.loadUsage + "\n" + """
    scoring (lm-evaluation-harness's log-likelihood requests): each choice is a continuation of the context; the
    context's trailing whitespace (Python's str.rstrip) moves to the continuation; its tokens are those of
    tokens(context + continuation) after their longest common prefix with tokens(context); BOS as the tokenizer's
    configuration says (as train encodes), never EOS; a continuation nothing precedes (empty context, no BOS) follows
    the BOS token, else the EOS. loglik = Σ log p of the continuation's tokens (log-softmax summed in float64); the
    context runs once and its KV cache serves every choice. acc: the highest loglik (the first of equal ones);
    acc_norm: the highest loglik per character of the choice as the task gives it (Unicode code points). Standard
    errors: sample standard deviation / sqrt(n) (the harness's mean_stderr); n/a below 2 examples.
    """

    let modelPath: String
    let task: TaskReference
    let taskArgument: String
    let split: TaskSplit?
    let shots: Int
    let limit: Int?
    let seed: UInt64
    let jsonPath: String?
    let threads: Int
    let adapters: AdapterArguments

    init(_ arguments: inout Arguments) throws {
        modelPath = try arguments.option("model") ?? DefaultModel.path()
        taskArgument = try arguments.required("task")
        task = TaskReference(taskArgument)
        split = try arguments.choice("split", TaskSplit.allCases.map(\.rawValue)).map { TaskSplit(rawValue: $0)! }
        if case .file = task, split != nil {
            throw UsageError("--split goes with bigbench:NAME; a task file is scored whole")
        }
        shots = try arguments.integer("shots", in: 0...1_000) ?? 0
        limit = try arguments.integer("limit", in: 1...100_000_000)
        if let s = try arguments.option("seed") {
            guard let value = UInt64(s) else { throw UsageError("--seed must be a non-negative integer, not '\(s)'") }
            guard shots > 0 else { throw UsageError("--seed chooses the shots: it goes with --shots K (K ≥ 1)") }
            seed = value
        } else {
            seed = FewShotPrompts.defaultSeed
        }
        jsonPath = try arguments.option("json")
        threads = try arguments.integer("threads", in: 1...256) ?? defaultThreadCount
        adapters = try AdapterArguments(&arguments, routing: false)
    }

    func run() throws {
        if let jsonPath { try OutputFolder.checkWritableFile(jsonPath, option: "--json") }
        let progress = Progress()
        // The task files first: a bad line fails before the model loads.
        let (examples, shotPrompts, file) = try loadExamples()
        progress.say("loading \(modelPath)")
        let engine = try Engine(modelPath: modelPath, threads: threads)
        let model = engine.model
        let tokenizer = try engine.tokenizer()
        progress.say("tokenizing \(examples.count) examples")
        let prepared = try MultipleChoiceTask(file: file, examples: examples, tokenizer: tokenizer, shots: shotPrompts,
                                              vocabularySize: model.configuration.vocabSize,
                                              maxPositions: model.configuration.maxPositionEmbeddings)
        let session = try adapters.session(on: engine, capacity: prepared.positions)
        let started = now()
        let result = try prepared.evaluate(with: ChoiceScorer(session: session)) { done in
            progress.update("examples", done: done, of: examples.count)
        }
        let seconds = now() - started
        progress.finish()
        report(result, examples: examples.count, seconds: seconds)
        if let jsonPath { try writeJSON(result, to: jsonPath) }
    }

    /// The split scored: --split or test for bigbench:NAME, none for a task file.
    private var resolvedSplit: TaskSplit? {
        if case .bigBench = task { return split ?? .test }
        return nil
    }

    /// The examples to score (the first --limit of them), the shots' prompts, and the file they came from.
    private func loadExamples() throws -> ([MultipleChoiceExample], FewShotPrompts?, String) {
        let evaluated: TaskFile
        var pool: TaskFile?
        switch task {
        case .file(let path):
            evaluated = try TaskFile.load(path: path)
            pool = shots > 0 ? evaluated : nil
        case .bigBench(let name):
            var starts = [FileManager.default.currentDirectoryPath]
            if let executable = Bundle.main.executableURL?.resolvingSymlinksInPath() {
                starts.append(executable.deletingLastPathComponent().path)
            }
            let data = try BigBenchData.locate(environment: ProcessInfo.processInfo.environment[BigBenchData.environmentVariable],
                                               searchingUpFrom: starts)
            let split = resolvedSplit ?? .test
            evaluated = try TaskFile.load(path: try data.file(task: name, split: split))
            if shots > 0 {
                pool = split == .train ? evaluated : try TaskFile.load(path: try data.file(task: name, split: .train))
            }
        }
        let examples = Array(evaluated.examples.prefix(limit ?? evaluated.examples.count))
        let prompts = try pool.map {
            try FewShotPrompts(pool: $0.examples, poolFile: $0.path, shots: shots, seed: seed,
                               evaluatesPool: $0.path == evaluated.path)
        }
        return (examples, prompts, evaluated.path)
    }

    private func report(_ result: MultipleChoiceResult, examples: Int, seconds: Double) {
        let m = result.metrics
        func line(_ name: String, _ value: Double, _ stderr: Double?) -> String {
            name.padding(toLength: 10, withPad: " ", startingAt: 0) + fmt(value, 4) + "  ± " + (stderr.map { fmt($0, 4) } ?? "n/a")
        }
        let splitText = resolvedSplit.map { " (\($0.rawValue))" } ?? ""
        print("task      \(taskArgument)\(splitText), \(shots) shot\(shots == 1 ? "" : "s")")
        print(line("acc", m.acc, m.accStderr))
        print(line("acc_norm", m.accNorm, m.accNormStderr))
        print("n         \(m.n)")
        print("time      \(fmt(seconds, 1)) s (\(fmt(Double(examples) / max(seconds, 1e-9), 2)) examples/s)")
    }

    private func writeJSON(_ result: MultipleChoiceResult, to path: String) throws {
        let m = result.metrics
        let report = EvalReport(
            task: taskArgument, split: resolvedSplit?.rawValue, shots: shots,
            seed: shots > 0 ? seed : nil, model: modelPath,
            adapters: adapters.specs.map { $0.weight == 1 ? $0.path : "\($0.path):\($0.weight)" },
            strategy: adapters.specs.isEmpty ? nil : adapters.strategy.rawValue,
            n: m.n, acc: m.acc, accNorm: m.accNorm, accStderr: m.accStderr, accNormStderr: m.accNormStderr,
            examples: result.scores.map { EvalReport.Example(loglik: $0.logLikelihoods, gold: $0.gold) })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        try encoder.encode(report).write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}

/// What `eval --json` writes; absent values are written as null.
private struct EvalReport: Encodable {
    struct Example: Encodable {
        let loglik: [Double]
        let gold: Int
    }

    let task: String
    @JSONNull var split: String?
    let shots: Int
    @JSONNull var seed: UInt64?
    let model: String
    let adapters: [String]
    @JSONNull var strategy: String?
    let n: Int
    let acc: Double
    let accNorm: Double
    @JSONNull var accStderr: Double?
    @JSONNull var accNormStderr: Double?
    let examples: [Example]

    enum CodingKeys: String, CodingKey {
        case task, split, shots, seed, model, adapters, strategy, n, acc, examples
        case accNorm = "acc_norm", accStderr = "acc_stderr", accNormStderr = "acc_norm_stderr"
    }
}
