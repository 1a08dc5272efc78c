/// Modules called ad hoc on a value (`model.lm_head(model.transformer.ln_f(h))`, the logit lens)
/// and parameters read as values (`model.lm_head.weight`), on the stage that holds the weights.
///
/// ```swift
/// let logits = try model.call(.lmHead, floats: hidden, shape: [1, 7, 64])   // shape [1, 7, V]
/// let (gamma, shape) = model.parameter(.lnF, "weight")!                      // [C]
/// ```
extension ModuleTree {
    /// The names of a module's parameters (`weight`, `bias`), as `named_parameters` lists them.
    public static func parameterNames(of module: ModuleID) -> [String] {
        switch spec(module).kind {
        case .embedding, .linear: ["weight"]
        case .layerNorm, .conv1D: ["weight", "bias"]
        default: []
        }
    }

    /// The parameters a module holds, with their shapes as Hugging Face stores them (Conv1D
    /// weights `[in, out]`, embeddings and lm_head `[rows, C]`).
    public static func parameters(of module: ModuleID, config c: GPT2Config) -> [(name: String, shape: [Int])] {
        let (C, V, I) = (c.nEmbd, c.vocabSize, c.innerDim)
        switch spec(module).kind {
        case .embedding: return [("weight", [module == .wpe ? c.nPositions : V, C])]
        case .linear: return [("weight", [V, C])]
        case .layerNorm: return [("weight", [C]), ("bias", [C])]
        case .conv1D:
            let (k, n) = switch ModuleTree.spec(module).output {
            case .qkv?: (C, 3 * C)
            case .inner?: (C, I)
            default: ModuleTree.spec(module).input == .inner ? (I, C) : (C, C)
            }
            return [("weight", [k, n]), ("bias", [n])]
        default: return []
        }
    }

    /// The shape of `module(x)` for an input of `shape` (integer ids for the embeddings), or why
    /// the module cannot be called on it. Blocks and attention need the KV cache and mask of a
    /// forward pass, so they are not callable ad hoc.
    public static func callShape(_ module: ModuleID, input shape: [Int], integer: Bool, config c: GPT2Config) -> Result<[Int], CallError> {
        let spec = spec(module)
        if spec.kind == .embedding {
            guard integer else { return .failure(CallError("\(module) takes integer token ids, not floats")) }
            return .success(shape + [c.nEmbd])
        }
        guard !integer else { return .failure(CallError("\(module) takes a float tensor, not integer ids")) }
        let io: (Int, Int)?
        switch spec.kind {
        case .layerNorm, .mlp: io = (c.nEmbd, c.nEmbd)
        case .linear: io = (c.nEmbd, c.vocabSize)
        case .gelu, .dropout: io = nil
        case .conv1D:
            let weight = parameters(of: module, config: c)[0].shape
            io = (weight[0], weight[1])
        default:
            return .failure(CallError("\(module) cannot be called on a value: it needs the KV cache and attention mask of a forward pass; call its submodules (ln_1, attn.c_attn, mlp, ...) instead"))
        }
        guard let (inDim, outDim) = io else { return .success(shape) }
        guard let last = shape.last, last == inDim else {
            return .failure(CallError("\(module) expects a last dimension of \(inDim), got a tensor of shape \(shape)"))
        }
        return .success(shape.dropLast() + [outDim])
    }

    public struct CallError: Error, CustomStringConvertible, Sendable {
        public let description: String
        init(_ description: String) { self.description = description }
    }
}

/// A parameter's values: the weights themselves where they are stored as f32 in the checkpoint's
/// layout, else an f32 copy (packed Conv1D weights, 16-bit tables).
public enum ParameterValues {
    case live(UnsafeBufferPointer<Float>, shape: [Int])
    case copy([Float], shape: [Int])

    public var shape: [Int] {
        switch self {
        case let .live(_, shape), let .copy(_, shape): shape
        }
    }
}

extension GPT2 {
    /// Whether this stage holds `module`'s weights.
    public func holds(_ module: ModuleID) -> Bool {
        if let layer = module.layerIndex { return layers.contains(layer) }
        return module.precedesLayers ? weights.hasEmbeddings : weights.hasHead
    }

    /// A parameter of a module this stage holds, in its checkpoint layout (`ModuleTree.parameters`
    /// shape): in place where it is stored as f32 in that layout, else unpacked into a copy.
    public func parameter(_ module: ModuleID, _ name: String) -> ParameterValues? {
        guard holds(module), let shape = ModuleTree.parameters(of: module, config: config).first(where: { $0.name == name })?.shape else { return nil }
        let stored: (name: String, shape: [Int])
        switch module {
        case .lmHead: stored = (weights.untiedHead ? "lm_head.weight" : "wte.weight", shape)
        default:
            // Module paths are `transformer.h.0.attn.c_attn`; checkpoint names drop `transformer.`.
            let path = ModuleTree.path(module)
            stored = ((path.hasPrefix("transformer.") ? String(path.dropFirst("transformer.".count)) : path) + "." + name, shape)
        }
        if let live = weights.liveFloats(stored.name) { return .live(UnsafeBufferPointer(live), shape: stored.shape) }
        return weights.floats(stored.name).map { .copy($0.values, shape: $0.shape) }
    }

    /// `module(x)` for a float input of `shape` (row-major), computed as the forward pass does:
    /// its values and shape.
    public func call(_ module: ModuleID, floats x: UnsafeBufferPointer<Float>, shape: [Int]) throws -> (values: [Float], shape: [Int]) {
        let out = try ModuleTree.callShape(module, input: shape, integer: false, config: config).get()
        guard holds(module) else { throw EngineError.invalidArgument("\(module)'s weights are not on this stage (layers \(layers))") }
        guard x.count == shape.reduce(1, *), let base = x.baseAddress else { return ([], out) }
        let (C, I) = (config.nEmbd, config.innerDim)
        let rows = x.count / max(shape.last ?? 1, 1)
        let scratch = ScratchBuffer()
        var y = [Float](repeating: 0, count: out.reduce(1, *))
        try y.withUnsafeMutableBufferPointer { yb in
            let y = yb.baseAddress!
            switch ModuleTree.spec(module).kind {
            case .layerNorm:
                let (w, b) = try layerNorm(module)
                Ops.layerNorm(y, base, w, b, rows: rows, channels: C, eps: config.layerNormEpsilon)
            case .linear:
                Ops.matmulTransposed(y, base, weights.lmHead!, m: rows)
            case .conv1D:  // y = x @ W + b, W (in, out)
                let (w, b) = try conv1D(module)
                Ops.matmul(y, base, w, b, m: rows, scratch: scratch)
            case .gelu:
                y.update(from: base, count: x.count)
                Vectorized.gelu(y, count: x.count)
            case .dropout:
                y.update(from: base, count: x.count)
            case .mlp:
                guard let l = module.layerIndex else { throw EngineError.invalidArgument("\(module) is not a layer's MLP") }
                let w = weights.blocks[l - layers.lowerBound]
                let hidden = UnsafeMutablePointer<Float>.allocate(capacity: rows * I)
                defer { hidden.deallocate() }
                Ops.matmul(hidden, base, w.fcW, w.fcB, m: rows, scratch: scratch)
                Vectorized.gelu(hidden, count: rows * I)
                Ops.matmul(y, hidden, w.fcProjW, w.fcProjB, m: rows, scratch: scratch)
            default:
                throw EngineError.invalidArgument("\(module) cannot be called on a value")
            }
        }
        return (y, out)
    }

    /// A layernorm's weight and bias.
    private func layerNorm(_ module: ModuleID) throws -> (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) {
        if module == .lnF { return (weights.lnFW!, weights.lnFB!) }
        if let l = module.layerIndex {
            let w = weights.blocks[l - layers.lowerBound]
            if module == .ln1(l) { return (w.ln1W, w.ln1B) }
            if module == .ln2(l) { return (w.ln2W, w.ln2B) }
        }
        throw EngineError.invalidArgument("\(module) is not a layernorm")
    }

    /// A Conv1D's packed weight and bias.
    private func conv1D(_ module: ModuleID) throws -> (PackedMatrix, UnsafeMutablePointer<Float>) {
        if let l = module.layerIndex {
            let w = weights.blocks[l - layers.lowerBound]
            if module == .cAttn(l) { return (w.qkvW, w.qkvB) }
            if module == .attnProj(l) { return (w.attnProjW, w.attnProjB) }
            if module == .cFc(l) { return (w.fcW, w.fcB) }
            if module == .mlpProj(l) { return (w.fcProjW, w.fcProjB) }
        }
        throw EngineError.invalidArgument("\(module) is not a Conv1D")
    }

    /// `module(ids)` for the embeddings: one table row per id; its values and shape.
    public func call(_ module: ModuleID, ids: [Int], shape: [Int]) throws -> (values: [Float], shape: [Int]) {
        let out = try ModuleTree.callShape(module, input: shape, integer: true, config: config).get()
        guard holds(module) else { throw EngineError.invalidArgument("\(module)'s weights are not on this stage (layers \(layers))") }
        let (C, rows) = (config.nEmbd, module == .wpe ? config.nPositions : config.vocabSize)
        var y = [Float](repeating: 0, count: ids.count * C)
        try y.withUnsafeMutableBufferPointer { yb in
            for (i, id) in ids.enumerated() {
                guard id >= 0, id < rows else {
                    throw EngineError.invalidArgument("index \(id) is out of range for \(module) of \(rows) rows")
                }
                if module == .wpe { (yb.baseAddress! + i * C).update(from: weights.wpe! + id * C, count: C) } else { weights.wte!.row(id, into: yb.baseAddress! + i * C) }
            }
        }
        return (y, out)
    }
}
