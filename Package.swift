// swift-tools-version:6.0
import PackageDescription

// Every build is compiled for the CPU it runs on: the SIMD kernels are ~10x slower without a target CPU, the AVX2
// intrinsics of the 4-bit kernels (Kernels/IntegerDot.swift) do not compile without one, and a fixed CPU name
// (skylake-avx512, say) traps on AVX2-only machines. Overflow and bounds checks are off in release (-Ounchecked),
// so every size read from a file is validated explicitly before use.
let swiftFlags: [SwiftSetting] = [
    .unsafeFlags(["-Ounchecked"], .when(configuration: .release)),
    .unsafeFlags(["-target-cpu", "native"]),
    .swiftLanguageMode(.v5),
]

let package = Package(
    name: "LoRASwitch",
    products: [
        .library(name: "LoRASwitch",
                 targets: ["Kernels", "Formats", "Text", "Model", "Adapters", "Engine", "Training", "Evaluation", "Server"]),
        .executable(name: "loraswitch", targets: ["loraswitch"]),
    ],
    targets: [
        // OpenBLAS's cblas (Debian: libopenblas-dev), used for the batched prefill products.
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        // GNU libmicrohttpd (Debian: libmicrohttpd-dev), the HTTP server under `loraswitch serve`.
        .systemLibrary(name: "CMicroHTTPD", path: "Sources/CMicroHTTPD", pkgConfig: "libmicrohttpd",
                       providers: [.apt(["libmicrohttpd-dev"])]),
        // Software prefetch, which Swift cannot spell (Kernels' batched products fetch their next tile with it).
        .target(name: "CPrefetch"),
        .target(name: "Kernels", dependencies: ["CBLAS", "CPrefetch"], swiftSettings: swiftFlags),
        .target(name: "Formats", dependencies: ["Kernels"], swiftSettings: swiftFlags),
        .target(name: "Text", dependencies: ["Formats"], swiftSettings: swiftFlags),
        .target(name: "Model", dependencies: ["Kernels", "Formats", "Text"], swiftSettings: swiftFlags),
        .target(name: "Adapters", dependencies: ["Kernels", "Formats", "Model"], swiftSettings: swiftFlags),
        .target(name: "Training", dependencies: ["Kernels", "Formats", "Text", "Model", "Adapters"], swiftSettings: swiftFlags),
        // The composition root: a model, its tokenizer and pool, adapters by name, sessions and batches.
        .target(name: "Engine", dependencies: ["Kernels", "Formats", "Text", "Model", "Adapters"], swiftSettings: swiftFlags),
        .target(name: "Evaluation", dependencies: ["Kernels", "Formats", "Text", "Model", "Adapters"], swiftSettings: swiftFlags),
        // The OpenAI-compatible HTTP API over an engine (libmicrohttpd underneath).
        .target(name: "Server", dependencies: ["CMicroHTTPD", "Formats", "Engine", "Model", "Adapters", "Text"], swiftSettings: swiftFlags),
        // The executable carries the Swift runtime and Foundation (-static-stdlib, at compile time too so that
        // Foundation's static module names the archives it needs): loading a dozen shared Swift libraries cost
        // ~7 MiB of resident memory per run. The libraries and tests link them dynamically as before.
        // It is linked by the toolchain's lld with packed relative relocations (DT_RELR, glibc 2.36+): gold's
        // 74,000 RELA entries (1.7 MB) were read at every start and stayed resident.
        .executableTarget(name: "loraswitch", dependencies: ["Kernels", "Formats", "Text", "Model", "Adapters", "Engine",
                                                             "Training", "Evaluation", "Server"],
                          swiftSettings: swiftFlags + [.unsafeFlags(["-static-stdlib"])],
                          linkerSettings: [.unsafeFlags(["-static-stdlib", "-use-ld=lld",
                                                         "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs"])]),
        // What the test targets share (temporary folders, file bytes); not part of the product.
        .target(name: "TestSupport", path: "Tests/TestSupport", swiftSettings: swiftFlags),
        // Counts each thread's heap allocations in the test executable (decoding must make none).
        .target(name: "AllocationCounter", path: "Tests/AllocationCounter"),
        .testTarget(name: "KernelsTests", dependencies: ["Kernels"], swiftSettings: swiftFlags),
        .testTarget(name: "FormatsTests", dependencies: ["Formats", "TestSupport"], swiftSettings: swiftFlags),
        .testTarget(name: "TextTests", dependencies: ["Text", "Formats", "TestSupport"], swiftSettings: swiftFlags),
        .testTarget(name: "ModelTests", dependencies: ["Model", "TestSupport"], swiftSettings: swiftFlags),
        .testTarget(name: "AdaptersTests", dependencies: ["Adapters", "TestSupport", "AllocationCounter"],
                    swiftSettings: swiftFlags),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "Adapters", "TestSupport"], swiftSettings: swiftFlags),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "TestSupport"], swiftSettings: swiftFlags),
        .testTarget(name: "EvaluationTests", dependencies: ["Evaluation", "Adapters", "TestSupport"],
                    swiftSettings: swiftFlags),
        .testTarget(name: "CLITests", dependencies: ["Model", "Adapters", "TestSupport"], swiftSettings: swiftFlags),
    ]
)
