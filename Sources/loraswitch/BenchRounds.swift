import Adapters
import Foundation
import Model

/// One row of `bench`: how to make its adapters (none: the backbone), and how to model the bytes a decoded token
/// moves beyond the backbone's.
struct BenchPlan {
    /// Bytes beyond the backbone's, from tensor sizes.
    enum Traffic {
        /// The same every token: the fused or reference pass's adapter reads (0 for a LoRA merged once).
        case perToken(Int)
        /// A merged mixture: the router every token, and a switch's reads and writes on every change of selection
        /// (the switch rate is measured in the row).
        case switches(router: Int, perSwitch: Int)
    }

    let name: String
    let make: (() throws -> SessionAdapters)?
    let traffic: Traffic

    /// The backbone: no adapters, decoded tokens unpaired.
    static func backbone() -> BenchPlan { BenchPlan(name: "backbone", make: nil, traffic: .perToken(0)) }
}

/// What the rounds gave one row.
struct BenchMeasurement {
    /// Per round: median decode seconds with the row's adapters, and (paired rows) over the median without.
    var seconds: [Double] = []
    var ratios: [Double] = []
    var prefillSeconds = Double.infinity
    var adapterTokens = 0
    var switches = 0
    var skipped: String?
}

/// Runs every row's decoding in `rounds` rounds, interleaved: round 1 of every row, then round 2…, so that every row
/// sees the same minutes of a machine whose bandwidth drifts. Round r decodes the r-th contiguous slice of the
/// followers at the same positions for every row (the KV cache's contents do not change the work). Adapter rows
/// alternate decoded tokens with and without their adapters, so each round gives a ratio of medians taken over
/// the same seconds. Each row's adapters are made afresh for every round (and freed after it), so only one row's
/// merged copies exist at a time.
struct BenchRounds {
    let session: InferenceSession
    let prompt: [Int]
    let followers: [Int]
    let rounds: Int
    let progress: Progress

    func run(_ plans: [BenchPlan]) throws -> [BenchMeasurement] {
        var results = [BenchMeasurement](repeating: BenchMeasurement(), count: plans.count)
        var with: [Double] = [], without: [Double] = []
        with.reserveCapacity(followers.count)
        without.reserveCapacity(followers.count)
        defer { session.adapters = nil }
        for round in 0..<rounds {
            let slice = (round * followers.count / rounds)..<((round + 1) * followers.count / rounds)
            for (i, plan) in plans.enumerated() where results[i].skipped == nil {
                let adapters: SessionAdapters?
                do {
                    adapters = try plan.make?()
                } catch let error as AdapterError {
                    results[i].skipped = error.localizedDescription
                    continue
                }
                if round == 0 { results[i].prefillSeconds = try prefill(plan.name, adapters) }
                // Every row of round r starts where round r−1 ended (round 0: right after the prompt).
                session.truncate(to: prompt.count + slice.lowerBound)
                precondition(session.position == prompt.count + slice.lowerBound, "bench: rounds out of step")
                let merges = adapters?.merged?.merges ?? 0
                with.removeAll(keepingCapacity: true)
                without.removeAll(keepingCapacity: true)
                let label = "round \(round + 1)/\(rounds): \(plan.name): decode"
                for j in slice {
                    let on = adapters == nil || (j - slice.lowerBound) % 2 == 0
                    session.adapters = on ? adapters : nil
                    let start = now()
                    _ = try session.decode(followers[j])
                    if on { with.append(now() - start) } else { without.append(now() - start) }
                    progress.update(label, done: j - slice.lowerBound + 1, of: slice.count)
                }
                session.adapters = nil
                results[i].seconds.append(median(with))
                if adapters != nil { results[i].ratios.append(median(with) / median(without)) }
                results[i].adapterTokens += with.count
                results[i].switches += (adapters?.merged?.merges ?? 0) - merges
            }
        }
        return results
    }

    /// Best of two prefills of the prompt with `adapters`; leaves the session right after the prompt.
    private func prefill(_ name: String, _ adapters: SessionAdapters?) throws -> Double {
        progress.say("\(name): prefill of \(prompt.count) tokens")
        session.adapters = adapters
        defer { session.adapters = nil }
        var best = Double.infinity
        for _ in 0..<2 {
            session.reset()
            let start = now()
            try session.prefill(prompt)
            best = min(best, now() - start)
        }
        return best
    }
}

extension BenchMeasurement {
    /// The row as reported: medians across rounds with their min–max, and the modelled bytes of a token — the
    /// backbone's `backboneBytes` plus the row's traffic.
    func row(_ plan: BenchPlan, config: String, dtype: String, promptTokens: Int, backboneBytes: Int) -> BenchRow {
        var row = BenchRow(name: plan.name, config: config, dtype: dtype)
        if let skipped {
            row.skipped = skipped
            return row
        }
        let ms = seconds.map { $0 * 1000 }
        row.decodeMsPerToken = median(ms)
        row.decodeMsMin = ms.min() ?? .nan
        row.decodeMsMax = ms.max() ?? .nan
        row.rounds = seconds.count
        row.prefillTokensPerSecond = Double(promptTokens) / prefillSeconds
        if !ratios.isEmpty {
            row.ratioVsBackbone = median(ratios)
            row.ratioMin = ratios.min()
            row.ratioMax = ratios.max()
        }
        var adapterBytes: Int?
        switch plan.traffic {
        case .perToken(let bytes):
            adapterBytes = plan.make == nil ? nil : bytes
        case .switches(let router, let perSwitch):
            let rate = Double(switches) / Double(max(1, adapterTokens))
            row.switchRate = rate
            row.switchBytes = perSwitch
            adapterBytes = router + Int((rate * Double(perSwitch)).rounded())
        }
        row.adapterBytesPerToken = adapterBytes
        row.bytesPerToken = backboneBytes + (adapterBytes ?? 0)
        row.gbs = Double(row.bytesPerToken) / (row.decodeMsPerToken / 1000) / 1e9
        return row
    }
}

extension SessionAdapters {
    /// The merging runtime, if this is one.
    var merged: MergedAdapters? {
        if case .fused(let fused) = self { return fused as? MergedAdapters }
        return nil
    }
}
