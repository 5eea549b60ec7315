import Foundation
import Kernels

/// The machine's figures for `auto` (`MachineFigures.probe`), probed once per CPU model and thread count and kept
/// in `$XDG_CACHE_HOME/loraswitch/machine.json` (else `~/.cache/loraswitch`), beside the default model.
public struct MachineCache: Sendable {
    /// One probe's figures.
    public struct Entry: Codable, Sendable {
        let cpu: String
        let threads: Int
        let read_gbs: Double
        let sgemm_gflops: Double
    }

    /// The file: entries keyed by "CPU model name, N threads" (", unoptimized build" for a debug build's probe,
    /// which runs the probe's loops several times slower).
    public struct File: Codable, Sendable {
        var machines: [String: Entry]
    }

    public let path: String

    public init(path: String = cacheDirectory() + "/machine.json") { self.path = path }

    /// The cached figures of this CPU at `pool`'s thread count, else a probe, written to the cache. A file that
    /// cannot be read as a cache is replaced; one that cannot be written leaves the figures marked probed (and says
    /// why in `problem`).
    public func figures(pool: ThreadPool) -> (figures: MachineFigures, problem: String?) {
        let cpu = Self.cpuName(), key = "\(cpu), \(pool.threadCount) threads" + Self.build
        var file = (try? Data(contentsOf: URL(fileURLWithPath: path))).flatMap { try? JSONDecoder().decode(File.self, from: $0) }
            ?? File(machines: [:])
        if let entry = file.machines[key] {
            return (MachineFigures(bandwidth: entry.read_gbs * 1e9, flops: entry.sgemm_gflops * 1e9, source: .cachedProbe), nil)
        }
        let probed = MachineFigures.probe(pool: pool)
        file.machines[key] = Entry(cpu: cpu, threads: pool.threadCount, read_gbs: probed.bandwidth / 1e9,
                                   sgemm_gflops: probed.flops / 1e9)
        do {
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                    withIntermediateDirectories: true)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(file).write(to: URL(fileURLWithPath: path), options: .atomic)
            return (probed, nil)
        } catch {
            return (probed, "could not cache the machine's figures in \(path): \(error.localizedDescription)")
        }
    }

    #if DEBUG
    static let build = ", unoptimized build"
    #else
    static let build = ""
    #endif

    /// /proc/cpuinfo's first "model name" (Linux), else "unknown CPU".
    static func cpuName() -> String {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown CPU" }
        for line in info.split(separator: "\n") where line.hasPrefix("model name") {
            if let colon = line.firstIndex(of: ":") {
                return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        return "unknown CPU"
    }
}

/// The project's cache folder: `$XDG_CACHE_HOME/loraswitch`, else `~/.cache/loraswitch` (the default model, the
/// machine's figures).
public func cacheDirectory() -> String {
    let environment = ProcessInfo.processInfo.environment
    if let cache = environment["XDG_CACHE_HOME"], !cache.isEmpty { return cache + "/loraswitch" }
    return (environment["HOME"] ?? NSHomeDirectory()) + "/.cache/loraswitch"
}
