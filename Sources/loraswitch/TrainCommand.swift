import Adapters
import Engine
import Foundation
import Kernels
import Model
import Text
import Training

/// `loraswitch train`: trains a LoRA or MoE-LoRA adapter on JSONL examples with the model frozen, and writes it as a
/// checkpoint folder (the adapter as `--adapter` and PEFT load it, and the state `--resume` continues from).
struct TrainCommand: Command {
    static let name = "train"
    static let summary = "train a LoRA or MoE-LoRA adapter on JSONL examples (writes a checkpoint folder)"
    static let usage = """
    --data FILE --out DIR [--model PATH] [--valid FILE] [adapter options] [training options]
      --model PATH          a Hugging Face folder or .gguf file, frozen (default: the default model)
      --data FILE           training examples, JSONL, one a line: {"text"}, {"prompt", "completion"}, {"messages"},
                            or pre-tokenized {"input_ids", "labels"} (needs no tokenizer) (required)
      --valid FILE          validation examples, same formats (default: none)
      --out DIR             the checkpoint folder: adapter_config.json, adapter_model.safetensors (load it with
                            --adapter DIR) and training_state.safetensors; replaced whole at every save (required)
    adapter (a new one; --init or --resume take these from the adapter, and a flag that disagrees is an error):
    """ + "\n" + AdapterShapeArguments.usage + "\n" + """
      --init DIR            start from this adapter (PEFT LoRA or MoE-LoRA folder) (default: new, A random, B zero)
    training:
      --optimizer O         adamw|sgd (default adamw)
      --lr LR               peak learning rate (default 1e-4)
      --warmup W            steps of linear warmup from 0 (default 0)
      --schedule S          cosine|linear|constant from the peak after the warmup (default cosine)
      --weight-decay WD     decoupled weight decay (default 0)
      --clip C              clip the gradients to global norm C; 0 for none (default 1.0)
      --epochs E            passes over the data (default 1)
      --steps N             at most N optimizer steps (default: no limit, every step of every epoch)
      --batch-size B        examples per forward pass (default 1)
      --grad-accum G        forward passes per optimizer step (default 1)
      --max-seq-len L       examples are cut to L tokens (default 2048, at most the model's context)
      --aux-loss-coef X     coefficient of the load-balancing loss N·Σ fᵢPᵢ, MoE only (default 0.01)
      --z-loss-coef Z       coefficient of the router z-loss (default 0)
      --seed S              the new adapter's values and the order of the examples (default 0)
      --threads N           threads (default: one per core)
      --save-every N        also save a checkpoint to --out every N steps (default 0: only at the end)
      --eval-every N        evaluate --valid and show the routing every N steps (default 0: only at the end)
      --resume DIR          continue the run whose checkpoint is DIR, with the same data and options (checked)
                            (default: none)
      --stop-after N        stop after step N as Ctrl-C would, saving a checkpoint; the schedule still spans the
                            whole run (default: none)
      --log FILE            JSONL records: one per step, evaluation and checkpoint, and a summary; a resumed run
                            adds to the file (default: none)
    Ctrl-C stops the run after the current step, saves a checkpoint to --out and exits with status 130 (a second
    Ctrl-C quits at once, saving nothing).
    """

    let modelPath: String
    let dataPath: String
    let validPath: String?
    let out: String
    let shape: AdapterShapeArguments
    let initPath: String?
    let resumePath: String?
    let options: TrainingOptions
    let maxSequenceLength: Int?
    let threads: Int
    let stopAfter: Int?
    let logPath: String?

    static let defaultMaxSequenceLength = 2048

    init(_ arguments: inout Arguments) throws {
        modelPath = try arguments.option("model") ?? DefaultModel.path()
        dataPath = try arguments.required("data")
        validPath = try arguments.option("valid")
        out = try arguments.required("out")
        shape = try AdapterShapeArguments(&arguments)
        initPath = try arguments.option("init")
        resumePath = try arguments.option("resume")
        if initPath != nil && resumePath != nil {
            throw UsageError("--init and --resume exclude each other (a checkpoint holds its own adapter)")
        }
        var o = TrainingOptions()
        if let name = try arguments.choice("optimizer", Optimizer.Kind.allCases.map(\.rawValue)) { o.optimizer = Optimizer.Kind(rawValue: name)! }
        if let lr = try arguments.double("lr", atLeast: 0) { o.learningRate = lr }
        if let n = try arguments.integer("warmup", in: 0...100_000_000) { o.warmup = n }
        if let name = try arguments.choice("schedule", LearningRateSchedule.Shape.allCases.map(\.rawValue)) {
            o.schedule = LearningRateSchedule.Shape(rawValue: name)!
        }
        if let wd = try arguments.double("weight-decay", atLeast: 0) { o.weightDecay = Float(wd) }
        if let c = try arguments.double("clip", atLeast: 0) { o.clip = c }
        if let n = try arguments.integer("epochs", in: 1...1_000_000) { o.epochs = n }
        o.maxSteps = try arguments.integer("steps", in: 1...100_000_000)
        if let n = try arguments.integer("batch-size", in: 1...1_000_000) { o.batchSize = n }
        if let n = try arguments.integer("grad-accum", in: 1...1_000_000) { o.gradientAccumulation = n }
        maxSequenceLength = try arguments.integer("max-seq-len", in: 2...10_000_000)
        if let x = try arguments.double("aux-loss-coef", atLeast: 0) { o.auxCoefficient = Float(x) }
        if let z = try arguments.double("z-loss-coef", atLeast: 0) { o.zCoefficient = Float(z) }
        if let s = try arguments.option("seed") {
            guard let seed = UInt64(s) else { throw UsageError("--seed must be a non-negative integer, not '\(s)'") }
            o.seed = seed
        }
        threads = try arguments.integer("threads", in: 1...256) ?? defaultThreadCount
        if let n = try arguments.integer("save-every", in: 0...100_000_000) { o.saveEvery = n }
        if let n = try arguments.integer("eval-every", in: 0...100_000_000) { o.evalEvery = n }
        stopAfter = try arguments.integer("stop-after", in: 1...100_000_000)
        logPath = try arguments.option("log")
        options = o
        try OutputFolder.checkArguments(out: out, log: logPath)
    }

    func run() throws {
        // Everything that can be refused is, before the first step: no half-written output for bad input.
        try OutputFolder.checkWritable(out)
        if let logPath { try OutputFolder.checkWritableFile(logPath, option: "--log") }
        if let resumePath { try OutputFolder.checkCheckpoint(resumePath) }

        let engine = try Engine(modelPath: modelPath, threads: threads)
        let model = engine.model
        let context = model.configuration.maxPositionEmbeddings
        if let maxSequenceLength, maxSequenceLength > context {
            throw UsageError("--max-seq-len \(maxSequenceLength) exceeds the model's context of \(context) positions")
        }
        let length = maxSequenceLength ?? min(Self.defaultMaxSequenceLength, context)
        let tokenizer = try engine.tokenizerIfPresent()
        let vocabulary = model.configuration.vocabSize
        let train = try TrainingData.load(path: dataPath, tokenizer: tokenizer, vocabularySize: vocabulary, maxSequenceLength: length)
        let valid = try validPath.map {
            try TrainingData.load(path: $0, tokenizer: tokenizer, vocabularySize: vocabulary, maxSequenceLength: length)
        }
        let parameters = try makeParameters(model)
        let trainer = try Trainer(model: model, parameters: parameters, train: train, validation: valid,
                                  options: options, pool: engine.pool)
        let identity = Checkpoint.Identity(options: options, shape: parameters.shape, trainExamples: train.examples)
        if let resumePath {
            do {
                let state = try Checkpoint.restore(from: resumePath, identity: identity, into: trainer.optimizer, parameters: parameters)
                try trainer.restore(step: state.step, optimizerStep: state.optimizerStep)
            } catch TrainingError.invalidCheckpoint(let detail) {
                throw TrainCommandError("--resume: \(detail)")
            }
            guard trainer.step < trainer.totalSteps else {
                throw TrainCommandError("--resume \(resumePath): its run has done all of its \(trainer.totalSteps) steps; nothing to continue (--init \(resumePath) trains its adapter further in a new run)")
            }
        }
        if let stopAfter, stopAfter <= trainer.step {
            throw UsageError("--stop-after \(stopAfter): the checkpoint is already at step \(trainer.step)")
        }

        let origin = resumePath.map { "resumed from \($0) at step \(trainer.step)" }
            ?? initPath.map { "starting from \($0)" } ?? "new (seed \(options.seed))"
        let report = TrainReport(trainer: trainer, log: try logPath.map { try TrainLog(path: $0, append: resumePath != nil) })
        report.start(model: modelPath, train: train, valid: valid, maxSequenceLength: length, out: out, origin: origin)
        Interrupt.install()
        var stop: TrainReport.Stop?
        try trainer.run(checkpoint: { step in
            try Checkpoint.save(trainer, identity: identity, to: out)
            report.saved(step: step, path: out)
        }, report: { event in
            switch event {
            case .step(let step):
                report.step(step)
                // A stop asked for at the last step is just the end of the run.
                if stop == nil, step.step < step.totalSteps {
                    if Interrupt.requested { stop = .interrupted }
                    else if let stopAfter, step.step >= stopAfter { stop = .stopAfter }
                }
            case .evaluation(let evaluation):
                report.evaluation(evaluation)
            }
            return stop == nil
        })
        report.finish(stop: stop, out: out)
        if stop == .interrupted { exit(130) }
    }

    /// A new adapter, or the one --init or --resume names, whose shape the flags given must agree with.
    private func makeParameters(_ model: LanguageModel) throws -> AdapterParameters {
        guard let (option, path) = initPath.map({ ("--init", $0) }) ?? resumePath.map({ ("--resume", $0) }) else {
            return try AdapterParameters(shape: shape.fresh(layerCount: model.configuration.numHiddenLayers), model: model,
                                         seed: options.seed)
        }
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isFolder), !isFolder.boolValue {
            throw TrainCommandError("\(option) \(path): a file, not an adapter folder (training starts from a PEFT LoRA or MoE-LoRA folder; a GGUF LoRA is run, not trained)")
        }
        do {
            let adapter = try Adapter.load([AdapterSpec(path: path)], model: model)
            let existing = try AdapterShape(of: adapter, folder: path)
            try shape.check(against: existing, option: option, path: path)
            return try AdapterParameters(copying: adapter, shape: existing, model: model)
        } catch TrainingError.invalidInit(let detail) {
            throw TrainCommandError("\(option): \(detail)")
        }
    }
}

/// A reason `train` cannot run, in one line (exit status 1).
struct TrainCommandError: Error, LocalizedError {
    let message: String
    init(_ message: String) { self.message = message }
    var errorDescription: String? { message }
}
