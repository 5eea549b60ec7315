import Engine
import Foundation
import Model

/// Runs the server's generations: up to `parallel` sequences at a time in one `BatchGenerator` (whatever their
/// adapters), the rest waiting in a FIFO of at most `queue`; past it a submission is refused at once. One thread
/// steps the batch; request threads wait on their tickets.
public final class Scheduler: @unchecked Sendable {
    /// What a ticket receives, in order: pieces of text, then one end.
    public enum Event {
        /// Text made final, with what was asked about the tokens it came from.
        case piece(String, Tokens)
        /// The end, with the last piece of text (possibly empty) and its tokens.
        case finished(GenerationResult, last: String, Tokens)
        case failed(String)
    }

    /// What a request asked to know of each generated token: its routing, its log-probability (empty otherwise).
    public struct Tokens {
        public var routing: [BatchGenerator.TokenRouting] = []
        public var logprobs: [BatchGenerator.TokenLogprob] = []

        public static func += (a: inout Tokens, b: Tokens) {
            a.routing += b.routing
            a.logprobs += b.logprobs
        }
    }

    /// One submitted generation, as its request thread sees it.
    public final class Ticket: @unchecked Sendable {
        public let request: BatchGenerator.Request
        private let condition = NSCondition()
        private var events: [Event] = []
        private var ended = false
        fileprivate var cancelRequested = false
        fileprivate var id: Int?
        /// What was asked of the tokens whose text is not final yet (scheduler thread only).
        fileprivate var tokens = Tokens()

        init(_ request: BatchGenerator.Request) { self.request = request }

        /// The next event, waiting at most `timeout` seconds (nil: none came).
        public func next(timeout: Double) -> Event? {
            condition.lock()
            defer { condition.unlock() }
            let deadline = Date(timeIntervalSinceNow: timeout)
            while events.isEmpty {
                if !condition.wait(until: deadline) { return nil }
            }
            return events.removeFirst()
        }

        /// Asks for the generation to end (its sequence leaves the batch before the next pass).
        public func cancel() {
            condition.lock()
            cancelRequested = true
            condition.unlock()
        }

        fileprivate var isCancelled: Bool {
            condition.lock()
            defer { condition.unlock() }
            return cancelRequested
        }

        fileprivate func deliver(_ event: Event) {
            condition.lock()
            if !ended {
                events.append(event)
                if case .piece = event {} else { ended = true }
            }
            condition.signal()
            condition.unlock()
        }
    }

    public enum SubmitError: Error, Equatable {
        case queueFull
        case draining
    }

    public let parallel: Int
    public let queueLimit: Int
    private let generator: BatchGenerator
    private let lock = NSCondition()
    private var waiting: [Ticket] = []
    private var running: [Int: Ticket] = [:]
    private var draining = false
    private var thread: Thread?

    public init(engine: Engine, parallel: Int, queue: Int, context: Int) throws {
        self.parallel = max(1, parallel)
        queueLimit = max(0, queue)
        generator = try BatchGenerator(engine: engine, maxRows: max(32, self.parallel), context: context)
        let thread = Thread { [unowned self] in self.loop() }
        thread.name = "loraswitch-scheduler"
        self.thread = thread
        thread.start()
    }

    /// Requests waiting for a slot.
    public var queueDepth: Int {
        lock.lock()
        defer { lock.unlock() }
        return waiting.count
    }

    /// Sequences in the batch.
    public var busy: Int {
        lock.lock()
        defer { lock.unlock() }
        return running.count
    }

    /// Queues `request`; throws `queueFull` when `parallel` run and `queue` wait, `draining` once draining began.
    public func submit(_ request: BatchGenerator.Request) throws -> Ticket {
        lock.lock()
        defer { lock.unlock() }
        if draining { throw SubmitError.draining }
        if running.count + waiting.count >= parallel + queueLimit { throw SubmitError.queueFull }
        let ticket = Ticket(request)
        waiting.append(ticket)
        lock.broadcast()
        return ticket
    }

    /// Refuses new work from now on; returns once every submitted generation has ended.
    public func drain() {
        lock.lock()
        draining = true
        lock.broadcast()
        while !running.isEmpty || !waiting.isEmpty { lock.wait() }
        lock.unlock()
    }

    private func loop() {
        while true {
            lock.lock()
            while waiting.isEmpty && running.isEmpty { lock.wait() }
            // Admit in arrival order while there are slots; a request the batch refuses ends at once.
            while running.count < parallel, !waiting.isEmpty {
                let ticket = waiting.removeFirst()
                if ticket.isCancelled {
                    ticket.deliver(.failed("cancelled"))
                    continue
                }
                do {
                    let id = try generator.submit(ticket.request)
                    ticket.id = id
                    running[id] = ticket
                } catch {
                    ticket.deliver(.failed(error.localizedDescription))
                }
            }
            for (id, ticket) in running where ticket.isCancelled { generator.cancel(id) }
            lock.unlock()

            let updates: [BatchGenerator.Update]
            do {
                updates = try generator.step()
            } catch {
                // A pass that fails ends every sequence in it (none is left half-run in the batch).
                lock.lock()
                for (id, ticket) in running {
                    generator.cancel(id)
                    ticket.deliver(.failed(error.localizedDescription))
                }
                lock.unlock()
                _ = try? generator.step()
                lock.lock()
                running.removeAll()
                lock.broadcast()
                lock.unlock()
                continue
            }
            lock.lock()
            for update in updates {
                guard let ticket = running[update.id] else { continue }
                if let routing = update.routing { ticket.tokens.routing.append(routing) }
                if let logprob = update.logprob { ticket.tokens.logprobs.append(logprob) }
                if let result = update.result {
                    ticket.deliver(.finished(result, last: update.piece, ticket.tokens))
                    running[update.id] = nil
                } else if !update.piece.isEmpty {
                    ticket.deliver(.piece(update.piece, ticket.tokens))
                    ticket.tokens = Tokens()
                }
            }
            lock.broadcast()
            lock.unlock()
        }
    }
}
