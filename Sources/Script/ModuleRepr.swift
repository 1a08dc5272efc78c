import Engine

/// How torch prints a module (`print(model)`, `print(model.transformer.h[0])`), from the module
/// tree: `Class(\n  (child): ...\n)`, leaves with their arguments, a list's identical layers
/// collapsed as `(0-3): 4 x GPT2Block(...)`, and nnsight's generator at the end of the model.
enum ModuleRepr {
    /// The model root (`GPT2LMHeadModel`).
    static func model(_ config: GPT2Config) -> String {
        node("GPT2LMHeadModel", children(nil, config), config)
    }

    static func module(_ id: ModuleID, _ config: GPT2Config) -> String {
        let spec = ModuleTree.spec(id)
        if spec.source == .layerList {
            let layers = config.nLayer
            let block = module(.block(0), config)
            let range = layers == 1 ? "0" : "0-\(layers - 1)"
            let count = layers == 1 ? "" : "\(layers) x "
            return node("ModuleList", [("\(range)", count + block)], config)
        }
        let c = config
        switch spec.kind {
        case .embedding: return "Embedding(\(id == .wpe ? c.nPositions : c.vocabSize), \(c.nEmbd))"
        case let .dropout(which):
            let p = switch which {
            case .embedding: c.embdPdrop
            case .attention: c.attnPdrop
            case .residual: c.residPdrop
            }
            return "Dropout(p=\(Repr.float(p)), inplace=False)"
        case .layerNorm:
            let eps = Double(String(c.layerNormEpsilon)) ?? Double(c.layerNormEpsilon)
            return "LayerNorm((\(c.nEmbd),), eps=\(Repr.float(eps)), elementwise_affine=True, bias=True)"
        case .linear: return "Linear(in_features=\(c.nEmbd), out_features=\(c.vocabSize), bias=False)"
        case .conv1D: return "Conv1D()"
        case .gelu: return "NewGELUActivation()"
        case .streamer: return "Streamer()"
        case .model: return node("GPT2Model", children(id, c), c)
        case .block: return node("GPT2Block", children(id, c), c)
        case .attention: return node("GPT2Attention", children(id, c), c)
        case .mlp: return node("GPT2MLP", children(id, c), c)
        case .generator: return node("Generator", children(id, c), c)
        case .layerList: return node("ModuleList", [], c)
        }
    }

    private static func children(_ id: ModuleID?, _ config: GPT2Config) -> [(String, String)] {
        ModuleTree.children(of: id, layers: config.nLayer).map { ($0.name, module($0.id, config)) }
    }

    private static func node(_ name: String, _ children: [(String, String)], _ config: GPT2Config) -> String {
        guard !children.isEmpty else { return name + "()" }
        var lines = [name + "("]
        for (key, text) in children {
            let indented = text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
                .map { $0.offset == 0 ? String($0.element) : "  " + $0.element }.joined(separator: "\n")
            lines.append("  (\(key)): " + indented)
        }
        lines.append(")")
        return lines.joined(separator: "\n")
    }
}
