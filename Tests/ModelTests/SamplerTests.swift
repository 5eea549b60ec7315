import Foundation
import Testing
@testable import Model

@Suite("Sampler")
struct SamplerTests {
    private func sample(_ logits: [Float], _ parameters: SamplingParameters, history: [Int] = [], draws: Int = 1) -> [Int] {
        let sampler = Sampler(parameters: parameters, vocabularySize: logits.count)
        return (0..<draws).map { _ in logits.withUnsafeBufferPointer { sampler.sample($0, history: history[...]) } }
    }

    @Test func greedyTakesTheArgmax() {
        #expect(sample([0.1, 3, -2, 2.9], .greedy) == [1])
        #expect(sample([-5, -1, -3], .greedy) == [1])
    }

    @Test func sameSeedSameChoices() {
        var p = SamplingParameters()
        p.temperature = 1.5; p.topK = 0; p.topP = 1; p.minP = 0
        let logits = (0..<50).map { Float($0 % 7) * 0.3 }
        let a = sample(logits, p, draws: 200)
        #expect(a == sample(logits, p, draws: 200))
        p.seed = 99
        #expect(a != sample(logits, p, draws: 200))
    }

    @Test func temperatureOneFollowsTheSoftmax() {
        var p = SamplingParameters()
        p.temperature = 1; p.topK = 0; p.topP = 1; p.minP = 0
        let logits: [Float] = [0, log(2), log(3), log(4)] // probabilities 0.1, 0.2, 0.3, 0.4
        let draws = sample(logits, p, draws: 20_000)
        for (i, expected) in [0.1, 0.2, 0.3, 0.4].enumerated() {
            let frequency = Double(draws.filter { $0 == i }.count) / Double(draws.count)
            #expect(abs(frequency - expected) < 0.015, "token \(i): \(frequency) vs \(expected)")
        }
    }

    @Test func filters() {
        var p = SamplingParameters()
        p.temperature = 5; p.topP = 1; p.minP = 0
        let logits: [Float] = [1, 4, 2, 3, 0]
        p.topK = 1
        #expect(Set(sample(logits, p, draws: 100)) == [1])
        p.topK = 2
        #expect(Set(sample(logits, p, draws: 300)) == [1, 3])
        // top-p: probabilities ≈ [0.5, 0.3, 0.2]: p = 0.5 keeps only the first.
        p.topK = 0; p.temperature = 1; p.topP = 0.5
        #expect(Set(sample([log(5), log(3), log(2)], p, draws: 200)) == [0])
        // min-p: tokens below 0.5 × the best are dropped.
        p.topP = 1; p.minP = 0.5
        #expect(Set(sample([log(10), log(6), log(4)], p, draws: 300)) == [0, 1])
    }

    @Test func repetitionPenalty() {
        var p = SamplingParameters.greedy
        p.repetitionPenalty = 2
        // Token 0 (logit 3) is penalized to 1.5 and loses to token 1 (2); negative logits are multiplied.
        #expect(sample([3, 2, -1], p, history: [0]) == [1])
        #expect(sample([-1, -1.5, -3], p, history: [0]) == [1])
        p.repetitionWindow = 1
        #expect(sample([3, 2, -1], p, history: [0, 2]) == [0])
    }

    @Test func validation() {
        var p = SamplingParameters()
        p.temperature = -1
        #expect(throws: SamplingError.self) { try p.validate() }
        p = SamplingParameters(); p.topP = 0
        #expect(throws: SamplingError.self) { try p.validate() }
        p = SamplingParameters(); p.minP = 1.5
        #expect(throws: SamplingError.self) { try p.validate() }
        p = SamplingParameters(); p.repetitionPenalty = 0
        #expect(throws: SamplingError.self) { try p.validate() }
        #expect(throws: Never.self) { try SamplingParameters().validate() }
    }
}
