import Foundation
import Synchronization
import Testing
@testable import Kernels

/// Counters that many threads may bump at once.
private final class Counters: @unchecked Sendable {
    final class Counter: @unchecked Sendable { let value = Atomic<Int>(0) }
    let values: [Counter]
    init(_ count: Int) { values = (0..<count).map { _ in Counter() } }
    func bump(_ i: Int) { values[i].value.add(1, ordering: .relaxed) }
    func value(_ i: Int) -> Int { values[i].value.load(ordering: .relaxed) }
}

@Suite("ThreadPool")
struct ThreadPoolTests {
    @Test(arguments: [1, 2, 3, 4])
    func runGivesEachIndexOnce(threads: Int) {
        let pool = ThreadPool(threads: threads)
        #expect(pool.threadCount == threads)
        for _ in 0..<50 {
            let counters = Counters(threads + 1)
            pool.run { index in
                if index >= 0 && index < threads { counters.bump(index) } else { counters.bump(threads) }
            }
            #expect((0..<threads).allSatisfy { counters.value($0) == 1 }, "an index ran not exactly once")
            #expect(counters.value(threads) == 0, "an index outside 0..<\(threads) ran")
        }
    }

    @Test func atLeastOneThread() {
        #expect(ThreadPool(threads: 0).threadCount == 1)
        #expect(ThreadPool(threads: -3).threadCount == 1)
    }

    @Test func singleThreadRunsOnTheCaller() {
        let pool = ThreadPool(threads: 1)
        let caller = Thread.current
        var ran = 0
        var sameThread = false
        pool.run { index in
            ran += 1
            sameThread = Thread.current == caller && index == 0
        }
        #expect(ran == 1 && sameThread)
        var chunks: [Range<Int>] = []
        pool.parallelFor(10, granularity: 4) { chunks.append($0) }
        #expect(chunks == [0..<10])
    }

    @Test func callerRunsIndexZero() {
        let pool = ThreadPool(threads: 2)
        let caller = Thread.current
        var zeroOnCaller = false
        pool.run { index in if index == 0 { zeroOnCaller = Thread.current == caller } }
        #expect(zeroOnCaller)
    }

    /// Many short jobs in a row, as decoding opens them: every one completes with every index, and the writes of one
    /// job are visible to the caller when `run` returns.
    @Test func manyConsecutiveRuns() {
        let pool = ThreadPool(threads: 2)
        let slots = FloatBuffer(count: 2 * 16)
        let p = slots.pointer
        var mismatches = 0
        for iteration in 0..<10_000 {
            pool.run { index in p[16 * index] = Float(iteration) }
            if p[0] != Float(iteration) || p[16] != Float(iteration) { mismatches += 1 }
        }
        #expect(mismatches == 0)
    }

    /// After the workers have gone to sleep (idle for longer than their spin), a new job still wakes them.
    @Test func wakesSleepingWorkers() {
        let pool = ThreadPool(threads: 2)
        for _ in 0..<3 {
            Thread.sleep(forTimeInterval: 0.05)
            let counters = Counters(2)
            pool.run { counters.bump($0) }
            #expect(counters.value(0) == 1 && counters.value(1) == 1)
        }
    }

    /// Callers on several threads share one pool: their jobs never overlap (each job sees the pool to itself), and
    /// every index of every job runs once.
    @Test(arguments: [1, 2, 3])
    func callersOnSeveralThreadsTakeTurns(threads: Int) {
        let pool = ThreadPool(threads: threads)
        let inFlight = Counters(1), overlaps = Counters(1), runs = Counters(threads)
        let callers = 3, jobs = 400
        DispatchQueue.concurrentPerform(iterations: callers) { _ in
            for _ in 0..<jobs {
                pool.run { index in
                    if index == 0 {
                        if inFlight.values[0].value.add(1, ordering: .sequentiallyConsistent).newValue != 1 { overlaps.bump(0) }
                    }
                    runs.bump(index)
                    // A little work, so that another caller's job would overlap if it could.
                    var x = 0.0
                    for i in 0..<200 { x += Double(i).squareRoot() }
                    if x < 0 { runs.bump(index) }
                    if index == 0 { inFlight.values[0].value.subtract(1, ordering: .sequentiallyConsistent) }
                }
            }
        }
        #expect(overlaps.value(0) == 0, "jobs of different callers overlapped")
        #expect((0..<threads).allSatisfy { runs.value($0) == callers * jobs })
    }

    @Test func poolsComeAndGo() {
        for _ in 0..<50 {
            let pool = ThreadPool(threads: 2)
            let counters = Counters(2)
            pool.run { counters.bump($0) }
            #expect(counters.value(0) == 1 && counters.value(1) == 1)
        }
    }

    @Test func chunkPartitionsExactly() {
        var g = SeededGenerator(seed: 42)
        var cases: [(Int, Int, Int)] = []
        for count in [0, 1, 2, 15, 16, 17, 31, 100, 1000, 4097] {
            for parts in [1, 2, 3, 4, 7, 16] {
                for granularity in [1, 2, 16, 64] { cases.append((count, parts, granularity)) }
            }
        }
        for _ in 0..<2000 {
            cases.append((Int.random(in: 0...50_000, using: &g), Int.random(in: 1...64, using: &g),
                          Int.random(in: 1...128, using: &g)))
        }
        for (count, parts, granularity) in cases {
            let chunks = (0..<parts).map { ThreadPool.chunk(count, part: $0, of: parts, granularity: granularity) }
            var next = 0
            var ok = true
            for (i, c) in chunks.enumerated() {
                // Contiguous, in order, starting at multiples of the granularity; only the last non-empty one ragged.
                if c.lowerBound != next { ok = false }
                if c.lowerBound % granularity != 0 && !c.isEmpty { ok = false }
                let laterNonEmpty = chunks[(i + 1)...].contains { !$0.isEmpty }
                if laterNonEmpty && c.count % granularity != 0 { ok = false }
                next = c.upperBound
            }
            if next != count { ok = false }
            // Balanced: sizes in units of granularity differ by at most one.
            let units = chunks.map { ($0.count + granularity - 1) / granularity }
            if let lo = units.min(), let hi = units.max(), hi - lo > 1 { ok = false }
            #expect(ok, "chunk(\(count), of: \(parts), granularity: \(granularity)) = \(chunks)")
            if !ok { return }
        }
    }

    @Test(arguments: [1, 2, 3])
    func parallelForCoversEveryIndexOnce(threads: Int) {
        let pool = ThreadPool(threads: threads)
        for (count, granularity) in [(0, 1), (1, 1), (5, 16), (16, 16), (17, 16), (1000, 1), (1000, 64), (3, 1)] {
            let counters = Counters(max(1, count))
            pool.parallelFor(count, granularity: granularity) { range in
                #expect(range.lowerBound % granularity == 0)
                for i in range { counters.bump(i) }
            }
            #expect((0..<count).allSatisfy { counters.value($0) == 1 }, "count \(count) granularity \(granularity)")
        }
    }
}

@Suite("FloatBuffer")
struct FloatBufferTests {
    @Test func zeroedAlignedAndIndexable() {
        for count in [0, 1, 17, 1000] {
            let b = FloatBuffer(count: count)
            #expect(b.count == count)
            #expect(Int(bitPattern: b.pointer) % 64 == 0)
            #expect(b.toArray() == [Float](repeating: 0, count: count))
            #expect(b.buffer.count == count)
        }
        let b = FloatBuffer(count: 4)
        b[2] = 3.5
        b.pointer[3] = -1
        #expect(b.toArray() == [0, 0, 3.5, -1])
        #expect(b[2] == 3.5)
        let u = FloatBuffer(count: 100, zeroed: false)
        #expect(u.count == 100 && Int(bitPattern: u.pointer) % 64 == 0)
        u.buffer.update(repeating: 2)
        #expect(u.toArray().allSatisfy { $0 == 2 })
    }

    @Test func byteStorage() {
        let s = ByteStorage(count: 100)
        #expect(s.count == 100 && Int(bitPattern: s.pointer) % 64 == 0)
        s.pointer.storeBytes(of: 0xABCD, toByteOffset: 98, as: UInt16.self)
        #expect(s.pointer.load(fromByteOffset: 98, as: UInt16.self) == 0xABCD)
        #expect(ByteStorage(count: 0).count == 0)
    }
}
