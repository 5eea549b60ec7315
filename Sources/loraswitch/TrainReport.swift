import Foundation
import Model
import Training

/// What `train` shows while it runs. Each step: on a terminal one line on standard error, redrawn in place;
/// otherwise plain lines on standard error (every step of a run of up to 200 steps, else about a hundred, and the
/// first and last). What the run is, each evaluation with the routers' use of their experts, intermediate checkpoints
/// and the summary go to standard output. With --log, every step, evaluation, checkpoint and the summary is also a
/// JSON line. Tokens per second count the steps' own time, not evaluations and saves (a large MoE-LoRA's checkpoint
/// with its optimizer state is hundreds of MB); the ETA goes by the wall clock.
final class TrainReport {
    enum Stop { case interrupted, stopAfter }

    let trainer: Trainer
    let log: TrainLog?
    private let terminal = isatty(STDERR_FILENO) != 0
    private let lineEvery: Int
    /// Steps done before this process (a resumed run).
    private let firstStep: Int
    private var started = now()
    private var lastDraw = 0.0
    private var drawn = false
    private var tokens = 0
    /// Seconds spent in this run's steps (not in evaluations or saves): what tokens/s divides by.
    private var stepSeconds = 0.0
    private var last: Trainer.StepReport?
    private var validationLoss: Double?

    init(trainer: Trainer, log: TrainLog?) {
        self.trainer = trainer
        self.log = log
        firstStep = trainer.step
        let steps = trainer.totalSteps - firstStep
        lineEvery = steps <= 200 ? 1 : (steps + 99) / 100
    }

    private var moe: Bool { trainer.parameters.shape.kind != .lora }

    // MARK: - Events

    /// What is trained on what; `origin` says where the adapter's values come from.
    func start(model: String, train: TrainingData, valid: TrainingData?, maxSequenceLength: Int, out: String, origin: String) {
        let shape = trainer.parameters.shape, o = trainer.options, batches = trainer.batches
        var data = "data: \(train.examples.count) examples, \(train.labelledCount) labelled tokens"
        if train.truncated > 0 { data += " (\(train.truncated) cut to \(maxSequenceLength) tokens)" }
        if let valid { data += "; validation: \(valid.examples.count) examples, \(valid.labelledCount) labelled tokens" }
        let epochs = plural(o.epochs, "epoch")
        var run = "run: \(plural(trainer.totalSteps, "step")) (\(epochs) of \(batches.stepsPerEpoch), "
        run += "\(plural(batches.examplesPerStep, "example")) a step), \(o.optimizer.rawValue) lr \(fmtRate(o.learningRate)) \(o.schedule.rawValue)"
        if o.warmup > 0 { run += " after \(o.warmup) warmup steps" }
        if firstStep > 0 { run += "; from step \(firstStep)" }
        say("adapter: \(shape.summary); \(trainer.parameters.parameterCount) trainable parameters, \(origin)")
        say(data)
        say(run)

        var record = JSONRecord(type: "start")
        record.add("model", model)
        record.add("data", train.path)
        record.add("valid", valid?.path)
        record.add("out", out)
        record.add("step", firstStep)
        record.add("total_steps", trainer.totalSteps)
        record.add("examples", train.examples.count)
        record.add("valid_examples", valid?.examples.count ?? 0)
        record.add("parameters", trainer.parameters.parameterCount)
        record.add("adapter", shape.kind.rawValue)
        record.add("experts", shape.experts)
        record.add("top_k", shape.topK)
        record.add("rank", shape.rank)
        record.add("alpha", shape.alpha)
        record.add("rslora", shape.rsLoRA)
        record.add("targets", shape.targets.map(\.rawValue).joined(separator: ","))
        record.add("layers", shape.layers)
        record.add("router_layer", shape.routerLayer)
        log?.write(record)
        started = now()
    }

    func step(_ r: Trainer.StepReport) {
        tokens += r.value.tokens
        stepSeconds += r.seconds
        last = r
        var record = JSONRecord(type: "step")
        record.add("step", r.step)
        record.add("epoch", r.epoch)
        record.add("loss", r.value.total)
        record.add("ce", r.value.crossEntropy)
        record.add("aux", r.value.aux)
        record.add("z", r.value.z)
        record.add("lr", r.learningRate)
        record.add("grad_norm", r.gradientNorm)
        record.add("tokens", r.value.tokens)
        record.add("labelled", r.value.labelled)
        record.add("seconds", r.seconds)
        log?.write(record)

        let done = r.step - firstStep, elapsed = now() - started
        var line = "step \(r.step)/\(r.totalSteps)  loss \(fmt(r.value.total, 3))"
        if moe { line += "  aux \(fmt(r.value.aux, 2))" }
        line += "  lr \(fmtRate(r.learningRate))  \(fmt(stepSeconds > 0 ? Double(tokens) / stepSeconds : 0, 0)) tok/s"
        line += "  ETA \(duration(elapsed / Double(done) * Double(r.totalSteps - r.step)))"
        if terminal {
            let t = now()
            guard r.step == r.totalSteps || t - lastDraw > 0.1 else { return }
            lastDraw = t
            FileHandle.standardError.write(Data("\r\u{1B}[K\(line)".utf8))
            drawn = true
        } else if done == 1 || r.step == r.totalSteps || r.step % lineEvery == 0 {
            printError(line)
        }
    }

    func evaluation(_ e: Trainer.Evaluation) {
        if let loss = e.validationLoss {
            validationLoss = loss
            say("step \(e.step): valid loss \(fmt(loss, 4))")
        }
        let routers = e.utilization.sorted { $0.key < $1.key }.map { (name: routerName($0.key), shares: $0.value) }
        if let line = utilizationLine(routers) { say("step \(e.step): \(line)") }
        var record = JSONRecord(type: "eval")
        record.add("step", e.step)
        record.add("valid_loss", e.validationLoss)
        record.add("utilization", routers.map { ($0.name, $0.shares) })
        log?.write(record)
    }

    func saved(step: Int, path: String) {
        let every = trainer.options.saveEvery
        if every > 0, step % every == 0, step < trainer.totalSteps { say("step \(step): checkpoint saved to \(path)") }
        var record = JSONRecord(type: "checkpoint")
        record.add("step", step)
        record.add("path", path)
        log?.write(record)
    }

    /// The summary, once the last checkpoint is written.
    func finish(stop: Stop?, out: String) {
        let elapsed = now() - started, steps = trainer.step - firstStep
        let rate = stepSeconds > 0 ? Double(tokens) / stepSeconds : 0
        var line: String
        switch stop {
        case nil: line = "done: \(plural(steps, "step"))"
        case .interrupted?: line = "stopped (Ctrl-C) at step \(trainer.step) of \(trainer.totalSteps): \(plural(steps, "step"))"
        case .stopAfter?: line = "stopped (--stop-after) at step \(trainer.step) of \(trainer.totalSteps): \(plural(steps, "step"))"
        }
        if firstStep > 0 { line += " (\(firstStep + 1)–\(trainer.step))" }
        line += " in \(duration(elapsed)), \(tokens) tokens at \(fmt(rate, 1)) tokens/s (in the steps: \(duration(stepSeconds)))"
        if let last { line += "; train loss \(fmt(last.value.total, 4)) (step \(last.step))" }
        if let validationLoss { line += ", valid loss \(fmt(validationLoss, 4))" }
        say(line)
        say("adapter: \(out) (use it with --adapter \(out)" + (stop == nil ? ")" : "; continue with --resume \(out))"))

        var record = JSONRecord(type: "done")
        record.add("step", trainer.step)
        record.add("total_steps", trainer.totalSteps)
        record.add("steps", steps)
        record.add("tokens", tokens)
        record.add("seconds", elapsed)
        record.add("step_seconds", stepSeconds)
        record.add("tokens_per_second", rate)
        record.add("train_loss", last?.value.total)
        record.add("valid_loss", validationLoss)
        record.add("out", out)
        record.add("stopped", stop.map { $0 == .interrupted ? "interrupt" : "stop-after" })
        log?.write(record)
    }

    // MARK: - Text

    /// A line on standard output, the progress line cleared first.
    private func say(_ text: String) {
        if drawn {
            FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
            drawn = false
        }
        StandardOutput.write(text + "\n")
    }

    /// The token router is "router"; a layer router is named by its module, "model.layers.1.mlp.down_proj".
    private func routerName(_ site: Int) -> String {
        guard let (layer, projection) = Trainer.Evaluation.router(site: site) else { return "router" }
        return TensorNaming.huggingFace.module(projection, layer: layer)
    }

    /// Each expert's share of the top-k slots, so that a collapse shows at a glance: the shares of the one token
    /// router; for layer routing the range of shares over every router and the most collapsed one.
    private func utilizationLine(_ routers: [(name: String, shares: [Double])]) -> String? {
        guard let first = routers.first, !first.shares.isEmpty else { return nil }
        let balanced = "balanced \(percent(1 / Double(first.shares.count)))"
        if routers.count == 1 {
            return "experts' shares " + first.shares.map(percent).joined(separator: " ") + " (\(balanced))"
        }
        let all = routers.flatMap(\.shares)
        let worst = routers.max { $0.shares.max()! < $1.shares.max()! }!
        let expert = worst.shares.firstIndex(of: worst.shares.max()!)!
        return "\(routers.count) routers, experts' shares \(percent(all.min()!))–\(percent(all.max()!)) (\(balanced)); " +
            "most collapsed: \(worst.name), expert \(expert) at \(percent(worst.shares[expert]))"
    }
}

/// "1 step", "3 steps".
private func plural(_ count: Int, _ noun: String) -> String { "\(count) \(noun)" + (count == 1 ? "" : "s") }

private func percent(_ share: Double) -> String { fmt(100 * share, 1) + "%" }

/// A learning rate: "1e-04" style, as it is usually written.
func fmtRate(_ rate: Double) -> String { String(format: "%.1e", rate) }

/// "45s", "1m05s", "2h03m".
func duration(_ seconds: Double) -> String {
    guard seconds.isFinite, seconds >= 0 else { return "?" }
    let s = Int(seconds.rounded())
    if s < 60 { return seconds < 10 ? fmt(seconds, 1) + "s" : "\(s)s" }
    if s < 3600 { return "\(s / 60)m" + String(format: "%02ds", s % 60) }
    return "\(s / 3600)h" + String(format: "%02dm", (s % 3600) / 60)
}
