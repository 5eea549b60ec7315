#if arch(x86_64)
import _Builtin_intrinsics.intel.cpuid
#endif

// What the processor offers beyond the AVX2 baseline, asked once with CPUID.
//
// Builds are compiled for the machine they run on (`-target-cpu native`), so LLVM already uses AVX-512 encodings
// wherever the source lets it: 512-bit registers for the SIMD16 types, VNNI for an AVX2 multiply-add followed by an
// add, 32 vector registers, broadcasts folded into memory operands. Swift has no compile-time test for a CPU
// feature, and AVX-512 intrinsics cannot be named in code that must also compile for AVX2 (LLVM fails to select
// them), so the kernels never name them; what they do choose at run time is how much state to keep in registers.

/// The processor's vector features that change how the kernels are laid out.
public struct CPUFeatures: Sendable, Equatable, CustomStringConvertible {
    /// AVX-512 F and VL: 32 vector registers (16 with AVX2 alone).
    public var avx512: Bool
    /// AVX-512 BW: 512-bit 16-bit integer arithmetic.
    public var avx512bw: Bool
    /// AVX-512 VNNI: 16-bit multiply-accumulate into 32-bit lanes in one instruction.
    public var avx512vnni: Bool

    /// This machine's features (CPUID leaf 7; all false on other architectures).
    public static let current: CPUFeatures = {
        #if arch(x86_64)
        var a: UInt32 = 0, b: UInt32 = 0, c: UInt32 = 0, d: UInt32 = 0
        guard __get_cpuid_count(7, 0, &a, &b, &c, &d) != 0 else { return CPUFeatures(avx512: false, avx512bw: false, avx512vnni: false) }
        let f = b & (1 << 16) != 0, vl = b & (1 << 31) != 0
        return CPUFeatures(avx512: f && vl, avx512bw: f && b & (1 << 30) != 0, avx512vnni: f && c & (1 << 11) != 0)
        #else
        return CPUFeatures(avx512: false, avx512bw: false, avx512vnni: false)
        #endif
    }()

    /// "AVX-512 (BW, VNNI)" or "AVX2".
    public var description: String {
        guard avx512 else { return "AVX2" }
        let extras = [avx512bw ? "BW" : nil, avx512vnni ? "VNNI" : nil].compactMap { $0 }
        return extras.isEmpty ? "AVX-512" : "AVX-512 (\(extras.joined(separator: ", ")))"
    }
}
