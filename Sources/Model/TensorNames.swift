/// The tensors of one transformer block, by role.
public enum LayerTensor: String, CaseIterable, Sendable {
    case attentionNorm, q, k, v, o, mlpNorm, gate, up, down

    /// The seven projections, in the order the forward pass applies them.
    public static let projections: [LayerTensor] = [.q, .k, .v, .o, .gate, .up, .down]

    /// Index in `projections` (nil for the norms), without a search: the decoding hot path asks it.
    @inline(__always)
    public var projectionIndex: Int? {
        switch self {
        case .q: return 0
        case .k: return 1
        case .v: return 2
        case .o: return 3
        case .gate: return 4
        case .up: return 5
        case .down: return 6
        case .attentionNorm, .mlpNorm: return nil
        }
    }
}

/// How a weight format names a model's tensors: Hugging Face checkpoint names, or llama.cpp's GGUF names.
public enum TensorNaming: Sendable {
    case huggingFace, gguf

    public var embedding: String { self == .huggingFace ? "model.embed_tokens.weight" : "token_embd.weight" }
    public var finalNorm: String { self == .huggingFace ? "model.norm.weight" : "output_norm.weight" }
    public var lmHead: String { self == .huggingFace ? "lm_head.weight" : "output.weight" }

    /// The module path of a tensor in layer `layer`, without `.weight` / `.bias`
    /// (HF `model.layers.3.self_attn.q_proj`, GGUF `blk.3.attn_q`).
    public func module(_ tensor: LayerTensor, layer: Int) -> String {
        switch self {
        case .huggingFace:
            let suffix: String
            switch tensor {
            case .attentionNorm: suffix = "input_layernorm"
            case .q: suffix = "self_attn.q_proj"
            case .k: suffix = "self_attn.k_proj"
            case .v: suffix = "self_attn.v_proj"
            case .o: suffix = "self_attn.o_proj"
            case .mlpNorm: suffix = "post_attention_layernorm"
            case .gate: suffix = "mlp.gate_proj"
            case .up: suffix = "mlp.up_proj"
            case .down: suffix = "mlp.down_proj"
            }
            return "model.layers.\(layer).\(suffix)"
        case .gguf:
            let suffix: String
            switch tensor {
            case .attentionNorm: suffix = "attn_norm"
            case .q: suffix = "attn_q"
            case .k: suffix = "attn_k"
            case .v: suffix = "attn_v"
            case .o: suffix = "attn_output"
            case .mlpNorm: suffix = "ffn_norm"
            case .gate: suffix = "ffn_gate"
            case .up: suffix = "ffn_up"
            case .down: suffix = "ffn_down"
            }
            return "blk.\(layer).\(suffix)"
        }
    }

    /// Tensors a checkpoint may carry that the forward pass does not need (HF's cached rotary frequencies).
    func isIgnorable(_ name: String) -> Bool {
        self == .huggingFace && name.hasSuffix(".rotary_emb.inv_freq")
    }
}
