import AllocationCounter
import Kernels
import Testing
@testable import Adapters
@testable import Model

// The decode hot path allocates nothing per token, with adapters fused or without. Counted on the calling thread,
// which runs part 0 of every parallel region as well as all the serial steps (Tests/AllocationCounter). Only
// optimized code can keep that promise (an unoptimized build boxes and copies where the optimizer does not), so the
// suite runs in release: scripts/test.sh runs it a second time, built with -c release.

#if DEBUG
private let optimized = false
#else
private let optimized = true
#endif

@Suite("decoding allocates nothing", .enabled(if: optimized, "unoptimized builds allocate; scripts/test.sh runs this in release"))
struct AllocationTests {
    /// Allocations made by `tokens.count` decoded tokens, after a prompt and two warm-up tokens.
    private func allocations(_ session: InferenceSession, _ tokens: [Int]) throws -> Int {
        try session.prefill(Array(tokens[0..<3]))
        _ = try session.decode(tokens[3])
        _ = try session.decode(tokens[4])
        let before = loraswitch_thread_allocations()
        for token in tokens[5...] { _ = try session.decode(token) }
        return loraswitch_thread_allocations() - before
    }

    @Test(arguments: try AdapterCase.all().filter { !$0.name.hasPrefix("gguf-lora-on") })
    func fusedAdapters(_ fixture: AdapterCase) throws {
        let model = try LanguageModel.load(path: fixture.base)
        let adapter = try Adapter.load(fixture.specs, model: model)
        let bare = InferenceSession(model: model, pool: ThreadPool(threads: 2), capacity: fixture.tokens.count)
        let bareCount = try allocations(bare, fixture.tokens)
        #expect(bareCount == 0, "the bare model allocates while decoding: \(bareCount)")
        let session = InferenceSession(model: model, pool: ThreadPool(threads: 2), capacity: fixture.tokens.count)
        session.adapters = try adapter.runtime(.fused, for: session)
        let count = try allocations(session, fixture.tokens)
        #expect(count == 0, "\(fixture) fused allocates while decoding: \(count)")
    }
}
