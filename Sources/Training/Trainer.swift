import Foundation
import Kernels
import Model

/// How to train: the optimizer, its schedule, the steps and the loss's coefficients.
public struct TrainingOptions: Equatable, Sendable {
    public var optimizer: Optimizer.Kind = .adamw
    public var learningRate: Double = 1e-4
    public var warmup = 0
    public var schedule: LearningRateSchedule.Shape = .cosine
    public var weightDecay: Float = 0
    /// Clip the gradients to this global norm (0: no clipping).
    public var clip: Double = 1
    public var epochs = 1
    /// At most this many optimizer steps (nil: every step of every epoch).
    public var maxSteps: Int?
    public var batchSize = 1
    public var gradientAccumulation = 1
    public var auxCoefficient: Float = 0.01
    public var zCoefficient: Float = 0
    public var seed: UInt64 = 0
    /// Save a checkpoint every this many steps (0: only at the end).
    public var saveEvery = 0
    /// Evaluate the validation data every this many steps (0: only at the end).
    public var evalEvery = 0

    public init() {}
}

/// Trains an adapter's parameters on packed batches of examples: each step the exact gradient of the step's loss
/// (`TrainingObjective`), then the optimizer with the schedule's rate. Reports every step and evaluation through a
/// callback that can stop the run; checkpoints go through the caller's closure (at `saveEvery`, at the end, and
/// when stopped). The same seed gives the same losses bit for bit, and a run resumed from a checkpoint continues
/// with the losses the uninterrupted run had.
public final class Trainer {
    public let model: LanguageModel
    public let parameters: AdapterParameters
    public let options: TrainingOptions
    public let batches: Batches
    public let validation: [MicroBatch]
    public let objective: TrainingObjective
    public let optimizer: Optimizer
    public let schedule: LearningRateSchedule
    /// Steps of the whole run.
    public let totalSteps: Int
    /// Steps done (the next step's index).
    public private(set) var step = 0

    public enum Event {
        case step(StepReport)
        case evaluation(Evaluation)
    }

    public struct StepReport: Sendable {
        public let step: Int
        public let totalSteps: Int
        public let epoch: Int
        public let value: TrainingObjective.Value
        public let learningRate: Double
        public let gradientNorm: Double
        public let seconds: Double
    }

    public struct Evaluation: Sendable {
        public let step: Int
        /// Mean cross-entropy over every labelled token of the validation data (nil without any), and the training
        /// step's router utilization (each router's fᵢ).
        public let validationLoss: Double?
        public let utilization: [Int: [Double]]
    }

    public init(model: LanguageModel, parameters: AdapterParameters, train: TrainingData, validation: TrainingData?,
                options: TrainingOptions, pool: ThreadPool) throws {
        guard options.epochs >= 1, options.batchSize >= 1, options.gradientAccumulation >= 1, options.learningRate >= 0,
              options.clip >= 0, options.saveEvery >= 0, options.evalEvery >= 0, (options.maxSteps ?? 1) >= 1 else {
            throw TrainingError.invalidOptions("epochs, batch size, gradient accumulation and steps must be ≥ 1; rates, clip and intervals ≥ 0")
        }
        self.model = model
        self.parameters = parameters
        self.options = options
        batches = try Batches(examples: train.examples, batchSize: options.batchSize,
                              gradientAccumulation: options.gradientAccumulation, seed: options.seed)
        let valid = validation?.examples ?? []
        self.validation = stride(from: 0, to: valid.count, by: options.batchSize).map { start in
            MicroBatch(packing: Array(valid[start..<min(start + options.batchSize, valid.count)]))
        }
        let rows = max(batches.maxRows, self.validation.map(\.rows).max() ?? 0)
        objective = try TrainingObjective(model: model, parameters: parameters, pool: pool, capacity: rows,
                                          auxCoefficient: options.auxCoefficient, zCoefficient: options.zCoefficient)
        optimizer = Optimizer(kind: options.optimizer, parameters: parameters, weightDecay: options.weightDecay, pool: pool)
        totalSteps = min(options.epochs * batches.stepsPerEpoch, options.maxSteps ?? Int.max)
        schedule = LearningRateSchedule(peak: options.learningRate, warmup: options.warmup, totalSteps: totalSteps,
                                        shape: options.schedule)
    }

    /// Runs the remaining steps. `checkpoint(step)` writes a checkpoint (the caller knows where); `report` returns
    /// false to stop after the current step, which then writes one.
    public func run(checkpoint: (Int) throws -> Void, report: (Event) -> Bool) throws {
        while step < totalSteps {
            let start = monotonicNanoseconds()
            let current = try batches.step(step)
            let value = try objective.gradient(current.microBatches)
            let rate = schedule.rate(step: step)
            let norm = optimizer.update(parameters, rate: rate, clip: options.clip)
            step += 1
            let seconds = Double(monotonicNanoseconds() - start) / 1e9
            var proceed = report(.step(StepReport(step: step, totalSteps: totalSteps, epoch: current.epoch, value: value,
                                                  learningRate: rate, gradientNorm: norm, seconds: seconds)))
            let last = step == totalSteps
            if (options.evalEvery > 0 && step % options.evalEvery == 0) || last || !proceed {
                proceed = report(.evaluation(try evaluate(utilization: value.utilization))) && proceed
            }
            if (options.saveEvery > 0 && step % options.saveEvery == 0) || last || !proceed {
                try checkpoint(step)
            }
            if !proceed { return }
        }
    }

    /// The validation loss at the current parameters.
    public func evaluate(utilization: [Int: [Double]] = [:]) throws -> Evaluation {
        guard !validation.isEmpty else { return Evaluation(step: step, validationLoss: nil, utilization: utilization) }
        var sum = 0.0, count = 0
        for batch in validation where batch.labelledCount > 0 {
            let value = try objective.loss([batch])
            sum += value.crossEntropy * Double(value.labelled)
            count += value.labelled
        }
        return Evaluation(step: step, validationLoss: count > 0 ? sum / Double(count) : nil, utilization: utilization)
    }

    /// Continue from a checkpoint's step and optimizer state (the parameters come with the adapter).
    public func restore(step: Int, optimizerStep: Int) throws {
        guard step >= 0, step <= totalSteps else {
            throw TrainingError.invalidCheckpoint("at step \(step), beyond this run's \(totalSteps) steps")
        }
        self.step = step
        optimizer.step = optimizerStep
    }
}

extension Trainer.Evaluation {
    /// The router a key of `utilization` names: nil for the token router, else the layer and projection whose own
    /// router it is (layer routing).
    public static func router(site: Int) -> (layer: Int, projection: LayerTensor)? {
        guard site != RouterSite.token else { return nil }
        let kinds = LayerTensor.projections.count
        return (site / kinds, LayerTensor.projections[site % kinds])
    }
}
