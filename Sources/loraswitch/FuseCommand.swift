import Adapters
import Foundation
import Kernels
import Model

/// `loraswitch fuse` / `unfuse`: static LoRAs folded into a model's weights, or taken back out of them, written as
/// a new model of the same format.
struct FuseCommand: Command {
    static let name = "fuse"
    static let summary = "fold static LoRAs into a model's weights and write the model (folder or GGUF)"
    static let usage = FuseOptions.usage

    let options: FuseOptions
    init(_ arguments: inout Arguments) throws { options = try FuseOptions(&arguments) }
    func run() throws { try options.run(subtract: false) }
}

struct UnfuseCommand: Command {
    static let name = "unfuse"
    static let summary = "take static LoRAs back out of a fused model's weights"
    static let usage = FuseOptions.usage

    let options: FuseOptions
    init(_ arguments: inout Arguments) throws { options = try FuseOptions(&arguments) }
    func run() throws { try options.run(subtract: true) }
}

struct FuseOptions {
    static let usage = """
    --model PATH --adapter PATH[:W] [--adapter ...] --out PATH [--dtype f32|f16|bf16] [--threads N]
      --model    a Hugging Face model folder or a .gguf file; the output has the same format
      --adapter  a PEFT LoRA folder or a llama.cpp GGUF LoRA, its update scaled by W (default 1); repeatable
      --out      the new model folder or .gguf file (must not exist)
      --dtype    type of the fused matrices (default: the model's float type; f16 for quantized models)
    """

    let model: String
    let specs: [AdapterSpec]
    let out: String
    let dtype: DType?
    let threads: Int

    init(_ arguments: inout Arguments) throws {
        model = try arguments.required("model")
        specs = try AdapterArguments.specs(&arguments)
        guard !specs.isEmpty else { throw UsageError("--adapter is required") }
        out = try arguments.required("out")
        dtype = try arguments.choice("dtype", [DType.f32, .f16, .bf16].map(\.rawValue)).flatMap(DType.init(rawValue:))
        threads = try arguments.integer("threads", in: 1...256) ?? defaultThreadCount
    }

    func run(subtract: Bool) throws {
        let progress = Progress()
        progress.say("loading \(model)")
        let model = try LanguageModel.load(path: self.model)
        let adapter = try Adapter.load(specs, model: model)
        try Fusion.write(model: model, adapter: adapter, subtract: subtract, dtype: dtype, to: out,
                         pool: ThreadPool(threads: threads)) { done, total in
            progress.update(subtract ? "unfusing" : "fusing", done: done, of: total)
        }
        progress.finish()
        print("wrote \(out)")
    }
}
