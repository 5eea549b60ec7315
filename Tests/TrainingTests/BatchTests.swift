import Kernels
import Testing
@testable import Training

// The order of an epoch and the packing of micro-batches and steps.

@Suite struct OrderTests {
    /// splitmix64.c's first output for seed 0.
    @Test func splitMixMatchesTheReference() {
        var g = SplitMix(seed: 0)
        #expect(g.next() == 0xE220_A839_7B1D_CDAF)
    }

    /// The permutations the documented algorithm gives, computed in Python from ExampleOrder's doc comment.
    @Test func orderMatchesThePythonTranscription() {
        #expect(ExampleOrder.shuffled(count: 10, seed: 0, epoch: 0) == [0, 1, 4, 6, 3, 9, 8, 7, 2, 5])
        #expect(ExampleOrder.shuffled(count: 10, seed: 0, epoch: 1) == [4, 2, 1, 3, 7, 9, 5, 0, 6, 8])
        #expect(ExampleOrder.shuffled(count: 10, seed: 42, epoch: 0) == [9, 4, 2, 8, 1, 3, 0, 6, 5, 7])
    }

    @Test func orderIsAPureFunctionAndAPermutation() {
        for epoch in 0..<5 {
            let a = ExampleOrder.shuffled(count: 57, seed: 7, epoch: epoch)
            #expect(a == ExampleOrder.shuffled(count: 57, seed: 7, epoch: epoch))
            #expect(a.sorted() == Array(0..<57))
        }
        #expect(ExampleOrder.shuffled(count: 57, seed: 7, epoch: 0) != ExampleOrder.shuffled(count: 57, seed: 7, epoch: 1))
        #expect(ExampleOrder.shuffled(count: 57, seed: 7, epoch: 0) != ExampleOrder.shuffled(count: 57, seed: 8, epoch: 0))
        #expect(ExampleOrder.shuffled(count: 0, seed: 1, epoch: 0) == [])
        #expect(ExampleOrder.shuffled(count: 1, seed: 1, epoch: 0) == [0])
    }
}

@Suite struct PackingTests {
    /// Example k has k + 2 tokens 100k, 100k+1, ... and its first position unlabelled, its third masked.
    static let examples: [TrainingExample] = (0..<7).map { k in
        let tokens = (0..<(k + 2)).map { 100 * k + $0 }
        var labels = tokens
        labels[0] = -100
        if labels.count > 2 { labels[2] = -100 }
        return TrainingExample(tokens: tokens, labels: labels)
    }

    @Test func aMicroBatchPacksExamplesWithoutCrossingThem() {
        let batch = MicroBatch(packing: [2, 0, 1], of: Self.examples)
        #expect(batch.examples == [2, 0, 1])
        #expect(batch.tokens == [200, 201, 202, 203, 0, 1, 100, 101, 102])
        #expect(batch.segments == [0..<4, 4..<6, 6..<9])
        // Row i predicts the next token of its own example; each example's last row predicts nothing.
        #expect(batch.targets == [201, -100, 203, -100, 1, -100, 101, -100, -100])
        #expect(batch.labelledCount == 4)
        #expect(batch.labelledCount == [2, 0, 1].map { Self.examples[$0].labelledCount }.reduce(0, +))
        for s in batch.segments { #expect(batch.targets[s.upperBound - 1] == -100) }
        let given = MicroBatch(packing: [2, 0, 1].map { Self.examples[$0] })
        #expect(given.examples == [0, 1, 2])
        #expect(given.tokens == batch.tokens && given.segments == batch.segments && given.targets == batch.targets)
    }

    /// 7 examples, 2 per micro-batch, 2 micro-batches per step: steps of 4 and 3 examples (the last kept smaller).
    @Test func stepsCoverEveryExampleOncePerEpoch() throws {
        let batches = try Batches(examples: Self.examples, batchSize: 2, gradientAccumulation: 2, seed: 3)
        #expect(batches.examplesPerStep == 4)
        #expect(batches.stepsPerEpoch == 2)
        #expect(batches.maxRows == 16)
        for epoch in 0..<3 {
            let steps = batches.steps(epoch: epoch)
            #expect(steps.map { $0.microBatches.map(\.examples.count) } == [[2, 2], [2, 1]])
            #expect(steps.map(\.index) == [0, 1])
            #expect(steps.allSatisfy { $0.epoch == epoch })
            let visited = steps.flatMap { $0.microBatches.flatMap(\.examples) }
            #expect(visited == batches.order(epoch: epoch))
            #expect(visited.sorted() == Array(0..<7))
            for step in steps {
                #expect(step.labelledCount == step.microBatches.flatMap(\.examples).map { Self.examples[$0].labelledCount }.reduce(0, +))
            }
        }
        #expect(batches.order(epoch: 0) != batches.order(epoch: 1))
    }

    /// Step n of the run is step n % stepsPerEpoch of epoch n / stepsPerEpoch, whoever asks and when.
    @Test func aStepByNumberIsTheSameStepAgain() throws {
        let batches = try Batches(examples: Self.examples, batchSize: 3, gradientAccumulation: 1, seed: 11)
        #expect(batches.stepsPerEpoch == 3)
        let run = (0..<3).flatMap { batches.steps(epoch: $0) }
        for n in run.indices { #expect(try batches.step(n) == run[n]) }
        let again = try Batches(examples: Self.examples, batchSize: 3, gradientAccumulation: 1, seed: 11)
        #expect(try again.step(7) == run[7])
        #expect(run[7].epoch == 2 && run[7].index == 1)
    }

    @Test func withoutShufflingTheFileOrderIsKept() throws {
        let batches = try Batches(examples: Self.examples, batchSize: 4, seed: 0, shuffle: false)
        #expect(batches.order(epoch: 5) == Array(0..<7))
        #expect(batches.steps(epoch: 0).map { $0.microBatches[0].examples } == [[0, 1, 2, 3], [4, 5, 6]])
    }

    @Test func parametersOutOfRangeAreAnError() {
        #expect(throws: TrainingDataError.invalidParameter(name: "batch size", problem: "0 is below 1")) {
            try Batches(examples: Self.examples, batchSize: 0, seed: 0)
        }
        #expect(throws: TrainingDataError.self) { try Batches(examples: Self.examples, batchSize: 1, gradientAccumulation: 0, seed: 0) }
        #expect(throws: TrainingDataError.self) { try Batches(examples: [], batchSize: 1, seed: 0) }
        #expect(throws: TrainingDataError.self) { try Batches(examples: Self.examples, batchSize: 1, seed: 0).step(-1) }
    }
}
