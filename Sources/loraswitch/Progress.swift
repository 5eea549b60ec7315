import Foundation

/// Progress lines on standard error, redrawn in place with rate and ETA — only when standard error is a terminal,
/// so pipes and logs stay clean.
final class Progress {
    private let enabled = isatty(STDERR_FILENO) != 0
    private var started = now()
    private var label = ""
    private var lastDraw = 0.0
    private var drawn = false

    /// A one-off status line (replaced by the next).
    func say(_ text: String) {
        guard enabled else { return }
        draw(text + "…")
    }

    /// `done` of `total` units of `what`; redrawn at most ten times a second.
    func update(_ what: String, done: Int, of total: Int) {
        guard enabled else { return }
        if what != label { label = what; started = now() }
        let t = now()
        guard done == total || t - lastDraw > 0.1 else { return }
        lastDraw = t
        let elapsed = t - started
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let eta = rate > 0 ? Double(total - done) / rate : 0
        draw("\(what) \(done)/\(total)  \(fmt(rate, 1))/s  ETA \(fmt(eta, 0)) s")
    }

    /// Clears the line.
    func finish() {
        guard enabled, drawn else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
        drawn = false
    }

    private func draw(_ text: String) {
        FileHandle.standardError.write(Data("\r\u{1B}[K\(text)".utf8))
        drawn = true
    }
}
