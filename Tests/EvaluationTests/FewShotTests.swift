import Foundation
import Testing
@testable import Evaluation

// Few-shot prompts: how they are written, that the draw is the documented one (the fixture script draws with its own
// SplitMix64), deterministic, and never the example itself.

@Suite struct FewShotTests {
    private let pool = (0..<10).map {
        MultipleChoiceExample(context: "Q\($0): ", choices: ["wrong\($0)", "right\($0)"], gold: 1, line: $0 + 1)
    }

    @Test func thePromptIsTheShotsThenTheContext() throws {
        let shots = try FewShotPrompts(pool: pool, poolFile: "train.jsonl", shots: 2, seed: 7, evaluatesPool: false)
        let example = MultipleChoiceExample(context: "Question: ", choices: ["x"], gold: 0)
        let drawn = shots.draw(for: 5)
        #expect(shots.context(for: example, at: 5)
            == "Q\(drawn[0]): right\(drawn[0])\n\nQ\(drawn[1]): right\(drawn[1])\n\nQuestion: ")
        let none = try FewShotPrompts(pool: pool, poolFile: "train.jsonl", shots: 0, evaluatesPool: false)
        #expect(none.context(for: example, at: 5) == "Question: ")
    }

    @Test func drawsMatchTheFixtureScript() throws {
        let reference = try #require(expected["shots"] as? [String: Any])
        let seed = try #require(reference["seed"] as? Int), count = try #require(reference["shots"] as? Int)
        #expect(reference["pool"] as? Int == pool.count && seed == Int(FewShotPrompts.defaultSeed))
        for (key, same) in [("separate", false), ("same_split", true)] {
            let draws = try #require(reference[key] as? [String: Any])
            let shots = try FewShotPrompts(pool: pool, poolFile: "train.jsonl", shots: count, evaluatesPool: same)
            for (index, want) in draws {
                #expect(shots.draw(for: try #require(Int(index))) == want as? [Int], "\(key) \(index)")
            }
        }
    }

    @Test func drawsAreDeterministicDistinctAndNeverTheExample() throws {
        let shots = try FewShotPrompts(pool: pool, poolFile: "train.jsonl", shots: 9, seed: 99, evaluatesPool: true)
        for index in pool.indices {
            let drawn = shots.draw(for: index)
            #expect(drawn == shots.draw(for: index))
            #expect(Set(drawn).count == 9 && !drawn.contains(index) && drawn.allSatisfy(pool.indices.contains))
        }
        // The seed and the index both matter.
        let other = try FewShotPrompts(pool: pool, poolFile: "train.jsonl", shots: 3, seed: 100, evaluatesPool: false)
        let base = try FewShotPrompts(pool: pool, poolFile: "train.jsonl", shots: 3, seed: 99, evaluatesPool: false)
        #expect((0..<10).contains { base.draw(for: $0) != other.draw(for: $0) })
        #expect(Set((0..<10).map { base.draw(for: $0) }).count > 1)
    }

    @Test func tooFewExamplesToDrawFrom() {
        #expect(errorMessage { _ = try FewShotPrompts(pool: pool, poolFile: "t.jsonl", shots: 10, evaluatesPool: true) }
            == "t.jsonl: 10 shots asked for, but only 9 examples to draw them from")
        #expect(errorMessage { _ = try FewShotPrompts(pool: pool, poolFile: "t.jsonl", shots: 11, evaluatesPool: false) }
            == "t.jsonl: 11 shots asked for, but only 10 examples to draw them from")
        #expect(errorMessage { _ = try FewShotPrompts(pool: pool, poolFile: "t.jsonl", shots: 10, evaluatesPool: false) } == nil)
    }
}
