import Foundation
import Synchronization

/// Ctrl-C during `train`: the first SIGINT only sets a flag, which the training callback reads after each step (the
/// run then saves a checkpoint and ends); a second one ends the process at once, as SIGINT does by default. The
/// handler does nothing that is not async-signal-safe: an atomic add, write(2), signal, raise.
enum Interrupt {
    static func install() {
        _ = interrupts.load(ordering: .relaxed) // initialized before any handler can run
        signal(SIGINT) { _ in
            if interrupts.wrappingAdd(1, ordering: .relaxed).newValue > 1 {
                signal(SIGINT, SIG_DFL)
                raise(SIGINT)
                return
            }
            let message: StaticString = "\nloraswitch: interrupted: stopping after this step and saving a checkpoint (Ctrl-C again quits at once)\n"
            _ = write(STDERR_FILENO, message.utf8Start, message.utf8CodeUnitCount)
        }
        // A signal mask is inherited across exec: a parent that spawns us from a thread blocking SIGINT (libdispatch's
        // worker threads block it) would leave Ctrl-C pending forever. This thread runs the training loop; take it.
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGINT)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }

    /// Whether Ctrl-C was pressed.
    static var requested: Bool { interrupts.load(ordering: .relaxed) > 0 }
}

private let interrupts = Atomic<Int>(0)
