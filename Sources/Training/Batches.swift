/// One forward pass: examples packed one after another as row segments, none attending to another (what
/// `ReferenceForward.run(tokens:segments:)` takes). R is the total number of rows (tokens).
public struct MicroBatch: Sendable, Equatable {
    /// The examples packed, as indices into the data's examples, in row order.
    public var examples: [Int]
    /// Every example's tokens, concatenated. [R]
    public var tokens: [Int]
    /// Each example's rows, in order, covering 0..<R.
    public var segments: [Range<Int>]
    /// Row i's logits are scored against `targets[i]`: the label of the next position of the same example, -100 at
    /// each example's last row and where the next position has no label — no target crosses an example boundary. [R]
    public var targets: [Int]
    /// Rows with a target (≥ 0).
    public var labelledCount: Int

    public var rows: Int { tokens.count }

    /// `examples`, packed in the order given (`self.examples` numbers them 0, 1, ...).
    public init(packing examples: [TrainingExample]) {
        self.init(packing: Array(examples.indices), of: examples)
    }

    /// The examples of `data` at `examples` (valid indices: `Batches` draws them from its order), packed in order.
    init(packing examples: [Int], of data: [TrainingExample]) {
        self.examples = examples
        tokens = []
        segments = []
        targets = []
        labelledCount = 0
        for index in examples {
            let example = data[index]
            let start = tokens.count
            tokens += example.tokens
            segments.append(start..<tokens.count)
            targets += example.targets
            labelledCount += example.labelledCount
        }
    }
}

/// One optimizer step: `gradientAccumulation` micro-batches whose gradients add up before the update.
public struct TrainingStep: Sendable, Equatable {
    /// The epoch (from 0) and the step's place in it (from 0).
    public var epoch: Int
    public var index: Int
    public var microBatches: [MicroBatch]
    /// Targets over every micro-batch: the step's loss is the sum of their cross-entropies divided by this (a mean
    /// over the step's tokens, not a mean of micro-batch means).
    public var labelledCount: Int { microBatches.reduce(0) { $0 + $1.labelledCount } }
}

/// How the examples are cut into steps: each epoch visits every example once, in `ExampleOrder`'s order (or the
/// file's, without shuffling); consecutive runs of `batchSize` examples make a micro-batch, consecutive runs of
/// `gradientAccumulation` micro-batches a step. Steps are a pure function of (examples, sizes, seed, epoch), so a
/// run resumed at step n sees the steps it would have seen.
///
/// The end of an epoch is kept, not dropped: when the examples do not fill the last step, it is a smaller step —
/// its last micro-batch may hold fewer than `batchSize` examples, and it may have fewer micro-batches. Since the
/// loss is a mean over the step's labelled tokens, a smaller step is a noisier mean, not a differently scaled one.
public struct Batches: Sendable {
    public let examples: [TrainingExample]
    public let batchSize: Int
    public let gradientAccumulation: Int
    public let seed: UInt64
    public let shuffle: Bool

    public init(examples: [TrainingExample], batchSize: Int, gradientAccumulation: Int = 1, seed: UInt64,
                shuffle: Bool = true) throws {
        guard batchSize >= 1 else {
            throw TrainingDataError.invalidParameter(name: "batch size", problem: "\(batchSize) is below 1")
        }
        guard gradientAccumulation >= 1 else {
            throw TrainingDataError.invalidParameter(name: "gradient accumulation", problem: "\(gradientAccumulation) is below 1")
        }
        guard !examples.isEmpty else {
            throw TrainingDataError.invalidParameter(name: "examples", problem: "there are none to batch")
        }
        self.examples = examples
        self.batchSize = batchSize
        self.gradientAccumulation = gradientAccumulation
        self.seed = seed
        self.shuffle = shuffle
    }

    public var examplesPerStep: Int { batchSize * gradientAccumulation }

    /// Optimizer steps per epoch, the last one possibly smaller.
    public var stepsPerEpoch: Int { (examples.count + examplesPerStep - 1) / examplesPerStep }

    /// The most rows a micro-batch can hold: `batchSize` times the longest example.
    public var maxRows: Int { batchSize * (examples.map(\.tokens.count).max() ?? 0) }

    /// The examples' indices in the order epoch `epoch` visits them.
    public func order(epoch: Int) -> [Int] {
        shuffle ? ExampleOrder.shuffled(count: examples.count, seed: seed, epoch: epoch) : Array(examples.indices)
    }

    /// Every step of epoch `epoch`, in order.
    public func steps(epoch: Int) -> [TrainingStep] {
        let order = order(epoch: epoch)
        return (0..<stepsPerEpoch).map { step(index: $0, epoch: epoch, order: order) }
    }

    /// The optimizer step numbered `number` (from 0) of a run whose epochs follow one another: step `number %
    /// stepsPerEpoch` of epoch `number / stepsPerEpoch`.
    public func step(_ number: Int) throws -> TrainingStep {
        guard number >= 0 else {
            throw TrainingDataError.invalidParameter(name: "step", problem: "\(number) is negative")
        }
        let epoch = number / stepsPerEpoch
        return step(index: number % stepsPerEpoch, epoch: epoch, order: order(epoch: epoch))
    }

    private func step(index: Int, epoch: Int, order: [Int]) -> TrainingStep {
        let first = index * examplesPerStep
        let chosen = order[first..<min(first + examplesPerStep, order.count)]
        let micro = stride(from: chosen.startIndex, to: chosen.endIndex, by: batchSize).map { start in
            MicroBatch(packing: Array(chosen[start..<min(start + batchSize, chosen.endIndex)]), of: examples)
        }
        return TrainingStep(epoch: epoch, index: index, microBatches: micro)
    }
}
