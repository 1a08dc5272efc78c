import Engine
import Wire

/// Module paths as the graph names them ("transformer.h.3.attn", "lm_head") and the Engine's
/// hook points.
public enum ModulePath {
    public static func module(_ path: String, layers: Int) -> Module? {
        switch path {
        case "transformer.wte": return .wte
        case "transformer.wpe": return .wpe
        case "transformer.ln_f": return .lnF
        case "lm_head": return .lmHead
        default: break
        }
        let parts = path.split(separator: ".")
        guard parts.count >= 3, parts[0] == "transformer", parts[1] == "h", let i = Int(parts[2]), i >= 0, i < layers else { return nil }
        if parts.count == 3 { return .block(i) }
        guard parts.count == 4 else { return nil }
        switch parts[3] {
        case "ln_1": return .ln1(i)
        case "attn": return .attn(i)
        case "ln_2": return .ln2(i)
        case "mlp": return .mlp(i)
        default: return nil
        }
    }

    public static func path(_ module: Module) -> String {
        switch module {
        case .wte: "transformer.wte"
        case .wpe: "transformer.wpe"
        case let .ln1(i): "transformer.h.\(i).ln_1"
        case let .attn(i): "transformer.h.\(i).attn"
        case let .ln2(i): "transformer.h.\(i).ln_2"
        case let .mlp(i): "transformer.h.\(i).mlp"
        case let .block(i): "transformer.h.\(i)"
        case .lnF: "transformer.ln_f"
        case .lmHead: "lm_head"
        }
    }

    public static func hookPoint(_ read: Nnsight_V1_ModuleRead, layers: Int) -> HookPoint? {
        guard let module = module(read.path, layers: layers) else { return nil }
        switch read.port {
        case .output: return HookPoint(module, .output)
        case .input: return HookPoint(module, .input)
        default: return nil
        }
    }

    /// Modules whose output is a tuple in Hugging Face's GPT-2 (transformers 5.2.0):
    /// a block returns `(hidden,)`, attention `(attn_output, None)`.
    public static func outputTupleSize(_ module: Module) -> Int? {
        switch module {
        case .block: 1
        case .attn: 2
        default: nil
        }
    }
}
