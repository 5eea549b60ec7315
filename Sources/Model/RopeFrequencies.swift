import Foundation
import Kernels

extension ModelConfiguration {
    /// Rotary inverse frequencies per pair [headDim / 2], with `rope_scaling` applied.
    /// Matches transformers' ROPE_INIT_FUNCTIONS (default, linear, llama3).
    public func inverseFrequencies() -> [Float] {
        let base = Rope.baseFrequencies(base: ropeTheta, dimensions: headDim)
        switch ropeScaling {
        case nil:
            return base
        case .linear(let factor)?:
            return base.map { $0 / Float(factor) }
        case let .llama3(factor, lowFreqFactor, highFreqFactor, original)?:
            // Long wavelengths are divided by `factor`, short ones kept, and the band between interpolated.
            let lowFreqWavelength = Double(original) / lowFreqFactor
            let highFreqWavelength = Double(original) / highFreqFactor
            return base.map { f in
                let frequency = Double(f)
                let wavelength = 2 * Double.pi / frequency
                if wavelength < highFreqWavelength { return f }
                if wavelength > lowFreqWavelength { return Float(frequency / factor) }
                let smooth = (Double(original) / wavelength - lowFreqFactor) / (highFreqFactor - lowFreqFactor)
                return Float((1 - smooth) * frequency / factor + smooth * frequency)
            }
        }
    }
}
