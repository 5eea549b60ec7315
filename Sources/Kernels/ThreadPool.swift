#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// A fixed set of worker threads that run one job at a time, each thread with its index — the only parallelism in
/// the project.
///
/// Decoding one token opens a few parallel regions per layer, each a few microseconds long, so the cost of opening
/// one matters: `DispatchQueue.concurrentPerform` costs several microseconds a call. Here the workers spin on a
/// generation counter for a while after each job (~0.1 µs to wake) and only then sleep on a condition, so an idle
/// pool burns no CPU. The calling thread runs index 0 itself.
///
/// Several threads may call `run` at once (two sessions on one pool, say): each job runs whole, one after the
/// other, under a lock taken per job (one uncontended atomic exchange, a few nanoseconds of a region).
public final class ThreadPool: @unchecked Sendable {
    /// Number of threads taking part in a job, the caller's included.
    public let threadCount: Int
    private let shared = Shared()

    /// What the caller and the workers share. Workers hold it strongly, so the pool may go away while they exit.
    private final class Shared: @unchecked Sendable {
        let generation = Atomic<Int>(0)
        let pending = Atomic<Int>(0)
        let sleepers = Atomic<Int>(0)
        let stopping = Atomic<Bool>(false)
        let condition = Condition()
        /// The job in flight, unretained (its owner keeps it alive until `run` returns): handing it over costs no
        /// reference counting, which across two cores costs more than the rest of a region's overhead.
        let job = Atomic<UInt>(0)
        /// Held by the caller whose job is in flight.
        let busy = Atomic<Bool>(false)
    }

    /// How long a worker spins for the next job before it sleeps (about a millisecond).
    private static let spinIterations = 100_000
    /// Spins after which a waiting thread yields its core on each further spin (some tens of microseconds: longer
    /// than the serial steps between a layer's regions, so that decoding never pays for a system call).
    private static let yieldAfter = 20_000

    /// A pool of `threads` threads (at least 1), the caller's included.
    public init(threads: Int) {
        threadCount = max(1, threads)
        for index in 1..<threadCount {
            let shared = self.shared
            startThread { Self.workerLoop(shared, index: index) }
        }
    }

    deinit {
        shared.condition.lock()
        shared.stopping.store(true, ordering: .sequentiallyConsistent)
        shared.generation.add(1, ordering: .sequentiallyConsistent)
        shared.condition.broadcast()
        shared.condition.unlock()
    }

    /// Runs `body(threadIndex)` on every thread of the pool (indices 0..<threadCount) and returns when all are done.
    /// Not reentrant: `body` must not call `run` again. Wrapping a non-escaping closure costs one small allocation;
    /// hot loops keep a `ParallelJob` made once and call `run(_ job:)`.
    public func run(_ body: (Int) -> Void) {
        if threadCount == 1 {
            acquire()
            body(0)
            shared.busy.store(false, ordering: .releasing)
            return
        }
        withoutActuallyEscaping(body) { run(ParallelJob($0)) }
    }

    /// `run` for a job the caller keeps: nothing is allocated or reference-counted per call (~0.1 µs a region).
    public func run(_ job: ParallelJob) {
        acquire()
        defer { shared.busy.store(false, ordering: .releasing) }
        if threadCount == 1 { job.body(0); return }
        let shared = self.shared
        shared.job.store(UInt(bitPattern: Unmanaged.passUnretained(job).toOpaque()), ordering: .relaxed)
        shared.pending.store(threadCount - 1, ordering: .relaxed)
        // Sequentially consistent with the sleeper's increment-then-check: one of the two sees the other.
        shared.generation.add(1, ordering: .sequentiallyConsistent)
        if shared.sleepers.load(ordering: .sequentiallyConsistent) > 0 {
            shared.condition.lock()
            shared.condition.broadcast()
            shared.condition.unlock()
        }
        job.body(0)
        var spins = 0
        while shared.pending.load(ordering: .acquiring) > 0 {
            // A worker that is not running (the machine is oversubscribed) cannot finish while we spin.
            spins += 1
            if spins > Self.yieldAfter { sched_yield() }
        }
    }

    /// Waits until no other caller's job is in flight and takes the pool.
    @inline(__always)
    private func acquire() {
        var spins = 0
        while !shared.busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged {
            spins += 1
            if spins > Self.yieldAfter / 100 { sched_yield() }
        }
    }

    /// Splits `0..<count` into one contiguous chunk per thread (sizes a multiple of `granularity` but the last) and
    /// runs `body(range)` for each non-empty chunk.
    public func parallelFor(_ count: Int, granularity: Int = 1, _ body: (Range<Int>) -> Void) {
        let threads = threadCount
        if threads == 1 || count <= granularity { if count > 0 { body(0..<count) }; return }
        run { index in
            let range = Self.chunk(count, part: index, of: threads, granularity: granularity)
            if !range.isEmpty { body(range) }
        }
    }

    /// The `part`-th of `parts` contiguous chunks of `0..<count`, each a multiple of `granularity` but the last.
    @inline(__always)
    public static func chunk(_ count: Int, part: Int, of parts: Int, granularity: Int = 1) -> Range<Int> {
        let units = (count + granularity - 1) / granularity
        let start = min(count, (units * part / parts) * granularity)
        let end = min(count, (units * (part + 1) / parts) * granularity)
        return start..<end
    }

    private static func workerLoop(_ shared: Shared, index: Int) {
        var seen = 0
        while true {
            var spins = 0
            var current = shared.generation.load(ordering: .acquiring)
            while current == seen {
                spins += 1
                if spins < spinIterations {
                    if spins > yieldAfter { sched_yield() }
                    current = shared.generation.load(ordering: .acquiring)
                    continue
                }
                shared.condition.lock()
                shared.sleepers.add(1, ordering: .sequentiallyConsistent)
                current = shared.generation.load(ordering: .sequentiallyConsistent)
                while current == seen {
                    shared.condition.wait()
                    current = shared.generation.load(ordering: .acquiring)
                }
                shared.sleepers.subtract(1, ordering: .relaxed)
                shared.condition.unlock()
            }
            seen = current
            if shared.stopping.load(ordering: .acquiring) { return }
            let raw = UnsafeRawPointer(bitPattern: shared.job.load(ordering: .relaxed))!
            Unmanaged<ParallelJob>.fromOpaque(raw)._withUnsafeGuaranteedRef { $0.body(index) }
            shared.pending.subtract(1, ordering: .releasing)
        }
    }
}

/// Work for every thread of a pool: `body(threadIndex)`. Made once and kept by its owner, so that running it
/// allocates nothing.
public final class ParallelJob: @unchecked Sendable {
    public let body: (Int) -> Void

    public init(_ body: @escaping (Int) -> Void) { self.body = body }
}

// MARK: - POSIX threads

/// A mutex and condition variable at stable addresses.
final class Condition: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }
    /// Waits for a broadcast; call with the lock held.
    func wait() { pthread_cond_wait(condition, mutex) }
    func broadcast() { pthread_cond_broadcast(condition) }
}

/// Starts a detached thread running `body`.
private func startThread(_ body: @escaping () -> Void) {
    final class Box { let body: () -> Void; init(_ body: @escaping () -> Void) { self.body = body } }
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
    pthread_attr_setstacksize(&attributes, 1 << 20)
    var thread = pthread_t()
    let result = pthread_create(&thread, &attributes, { context in
        let box = Unmanaged<Box>.fromOpaque(context!).takeRetainedValue()
        box.body()
        return nil
    }, box)
    pthread_attr_destroy(&attributes)
    precondition(result == 0, "pthread_create failed: \(result)")
}
