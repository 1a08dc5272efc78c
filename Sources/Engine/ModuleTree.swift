/// The module tree of GPT-2 as nnsight shows it (Hugging Face's `GPT2LMHeadModel`): the one
/// descriptor from which hook points, forward order, wire paths, envoys and script attributes
/// derive. A module is one `ModuleSpec` entry; a module that the forward pass hooks also needs
/// its `fire` call in `GPT2`.
///
/// ```swift
/// let id = ModuleTree.id(path: "transformer.h.3.attn", layers: 12)!   // ModuleID.attn(3)
/// ModuleTree.spec(id).outputTuple                                     // 2: (attn_output, None)
/// ModuleTree.hookOrder(layers: 2).first                               // transformer.wte.input
/// ```
public enum ModuleTree {
    /// Modules outside the layers, in forward order; `transformer.h` stands for the layers.
    public static let top: [ModuleSpec] = [
        ModuleSpec("transformer", .model, input: .ids, output: .hidden, source: .modelInputs, grad: (nil, "ViewBackward0")),
        // The checked grad_fns: scripts/oracle-venv.sh's torch, a forward hook on each module.
        ModuleSpec("transformer.wte", .embedding, input: .ids, output: .hidden, grad: (nil, "EmbeddingBackward0")),
        ModuleSpec("transformer.wpe", .embedding, input: .ids, output: .hidden, grad: (nil, "EmbeddingBackward0")),
        ModuleSpec("transformer.drop", .dropout(.embedding), input: .hidden, output: .hidden, grad: ("AddBackward0", "AddBackward0")),
        ModuleSpec("transformer.h", .layerList, source: .layerList),
        ModuleSpec("transformer.ln_f", .layerNorm, input: .hidden, output: .hidden, grad: ("AddBackward0", "NativeLayerNormBackward0")),
        ModuleSpec("lm_head", .linear, input: .hidden, output: .logits, grad: ("AliasBackward0", "UnsafeViewBackward0")),
        ModuleSpec("generator", .generator, output: .generated, source: .generator),
        ModuleSpec("generator.streamer", .streamer, output: .ids, source: .streamer),
    ]

    /// The modules of every layer `transformer.h.<i>`, in forward order; "" is the block itself.
    /// `definedAt` orders children as their class defines them (how torch prints them) where
    /// that differs from the order they run in.
    public static let perLayer: [ModuleSpec] = [
        ModuleSpec("", .block, input: .hidden, output: .hidden, outputTuple: 1, grad: ("AddBackward0", "AddBackward0")),
        ModuleSpec("ln_1", .layerNorm, input: .hidden, output: .hidden, grad: ("AddBackward0", "NativeLayerNormBackward0")),
        ModuleSpec("attn", .attention, input: .hidden, output: .hidden, outputTuple: 2, grad: ("NativeLayerNormBackward0", "ViewBackward0")),
        ModuleSpec("attn.c_attn", .conv1D, input: .hidden, output: .qkv, grad: ("NativeLayerNormBackward0", "ViewBackward0")),
        // Hugging Face's sdpa attention (the default) passes the dropout probability to the kernel
        // and never calls this module: nnsight reports a read of it as out of order.
        ModuleSpec("attn.attn_dropout", .dropout(.attention), source: .notCalled, definedAt: 3),
        ModuleSpec("attn.c_proj", .conv1D, input: .hidden, output: .hidden, definedAt: 2, grad: ("ViewBackward0", "ViewBackward0")),
        ModuleSpec("attn.resid_dropout", .dropout(.residual), input: .hidden, output: .hidden, grad: ("ViewBackward0", "ViewBackward0")),
        ModuleSpec("ln_2", .layerNorm, input: .hidden, output: .hidden, grad: ("AddBackward0", "NativeLayerNormBackward0")),
        ModuleSpec("mlp", .mlp, input: .hidden, output: .hidden, grad: ("NativeLayerNormBackward0", "ViewBackward0")),
        ModuleSpec("mlp.c_fc", .conv1D, input: .hidden, output: .inner, grad: ("NativeLayerNormBackward0", "ViewBackward0")),
        ModuleSpec("mlp.act", .gelu, input: .inner, output: .inner, definedAt: 2, grad: ("ViewBackward0", "MulBackward0")),
        ModuleSpec("mlp.c_proj", .conv1D, input: .inner, output: .hidden, definedAt: 1, grad: ("MulBackward0", "ViewBackward0")),
        ModuleSpec("mlp.dropout", .dropout(.residual), input: .hidden, output: .hidden, grad: ("ViewBackward0", "ViewBackward0")),
    ]

    /// The keys of `model.transformer.inputs` the coordinator knows (what transformers passes).
    public static let modelInputKeys = ["input_ids", "attention_mask", "position_ids"]

    static let layerListIndex = Int32(top.firstIndex { $0.source == .layerList }!)

    /// Whether `skip` applies to the module: a block, its `attn` or its `mlp` (the Engine's skip points).
    public static func isSkippable(_ id: ModuleID) -> Bool {
        [.block, .attention, .mlp].contains(spec(id).kind)
    }

    public static func spec(_ id: ModuleID) -> ModuleSpec {
        id.layer < 0 ? top[Int(id.index)] : perLayer[Int(id.index)]
    }

    /// nnsight's module path, as the wire names it: "transformer.h.3.attn", "lm_head".
    public static func path(_ id: ModuleID) -> String {
        guard id.layer >= 0 else { return top[Int(id.index)].name }
        let name = perLayer[Int(id.index)].name
        return "transformer.h.\(id.layer)" + (name.isEmpty ? "" : "." + name)
    }

    /// The module at a wire path, nil when there is none (or the layer is out of range).
    public static func id(path: String, layers: Int) -> ModuleID? {
        if let i = top.firstIndex(where: { $0.name == path }) { return ModuleID(layer: -1, index: Int32(i)) }
        let prefix = "transformer.h."
        guard path.hasPrefix(prefix) else { return nil }
        let rest = path.dropFirst(prefix.count)
        let layerText = rest.prefix { $0 != "." }
        guard let layer = Int(layerText), layer >= 0, layer < layers, String(layer) == layerText else { return nil }
        let name = rest.dropFirst(layerText.count).drop { $0 == "." }
        guard let i = perLayer.firstIndex(where: { $0.name == name }) else { return nil }
        return ModuleID(layer: Int32(layer), index: Int32(i))
    }

    /// The direct children of a module (of the model root when nil), by attribute name.
    public static func children(of parent: ModuleID?, layers: Int) -> [(name: String, id: ModuleID)] {
        if let parent, parent.layer >= 0 {
            let base = perLayer[Int(parent.index)].name
            let found = perLayer.indices.compactMap { i -> (name: String, id: ModuleID)? in
                let name = perLayer[i].name
                guard let child = directChild(name, of: base) else { return nil }
                return (child, ModuleID(layer: parent.layer, index: Int32(i)))
            }
            // As the module's class defines them (torch's printing and attribute order).
            return found.enumerated().sorted { a, b in
                (perLayer[Int(a.element.id.index)].definedAt ?? a.offset, a.offset) < (perLayer[Int(b.element.id.index)].definedAt ?? b.offset, b.offset)
            }.map(\.element)
        }
        if parent?.index == layerListIndex {
            return (0..<layers).map { ("\($0)", ModuleID(layer: Int32($0), index: 0)) }
        }
        let base = parent.map { top[Int($0.index)].name } ?? ""
        return top.indices.compactMap { i in
            guard let child = directChild(top[i].name, of: base) else { return nil }
            return (child, ModuleID(layer: -1, index: Int32(i)))
        }
    }

    private static func directChild(_ name: String, of base: String) -> String? {
        guard name != base else { return nil }
        if base.isEmpty { return name.isEmpty || name.contains(".") ? nil : name }
        guard name.hasPrefix(base + ".") else { return nil }
        let rest = name.dropFirst(base.count + 1)
        return rest.contains(".") ? nil : String(rest)
    }

    /// Every hook point the forward pass fires, in the order it fires them in one step: a
    /// module's input, then its submodules, then its output.
    public static func hookOrder(layers: Int) -> [HookPoint] {
        var points: [HookPoint] = []
        func walk(_ specs: [ModuleSpec], layer: Int32) {
            var open: [(name: String, id: ModuleID)] = []
            func close(until name: String) {
                while let last = open.last, !(last.name.isEmpty || name.hasPrefix(last.name + ".")) {
                    points.append(HookPoint(last.id, .output))
                    open.removeLast()
                }
            }
            for (i, spec) in specs.enumerated() {
                if spec.source == .layerList {
                    close(until: spec.name + ".")
                    for l in 0..<layers { walk(perLayer, layer: Int32(l)) }
                    continue
                }
                guard spec.source == .hook else { continue }
                close(until: spec.name)
                let id = ModuleID(layer: layer, index: Int32(i))
                points.append(HookPoint(id, .input))
                open.append((spec.name, id))
            }
            close(until: "\u{0}")
            while let last = open.popLast() { points.append(HookPoint(last.id, .output)) }
        }
        walk(top, layer: -1)
        return points
    }
}

/// One module of the tree: its path, its class, the values at its ports and where they come from.
public struct ModuleSpec: Sendable {
    /// The path below its level: "transformer.wte" at the top, "attn" within a layer.
    public let name: String
    public let kind: ModuleKind
    public let input: PortShape?
    public let output: PortShape?
    /// The output is a tuple of this many items in Hugging Face (`(hidden,)`, `(attn_output, None)`):
    /// item 0 has the `output` shape, the others are None.
    public let outputTuple: Int?
    public let source: ModuleSource
    /// Its position among its siblings as its parent's class defines them, when that is not
    /// the order they run in (`mlp.c_proj` is defined before `mlp.act`).
    public let definedAt: Int?
    /// The `grad_fn` torch gives the values at its ports (input, output) in transformers 5.2.0's
    /// forward with gradients on (`grad_fn=<NativeLayerNormBackward0>` where a tensor prints).
    public let grad: (input: String?, output: String?)

    init(_ name: String, _ kind: ModuleKind, input: PortShape? = nil, output: PortShape? = nil, outputTuple: Int? = nil,
         source: ModuleSource = .hook, definedAt: Int? = nil, grad: (input: String?, output: String?) = (nil, nil)) {
        self.name = name
        self.kind = kind
        self.input = input
        self.output = output
        self.outputTuple = outputTuple
        self.source = source
        self.definedAt = definedAt
        self.grad = grad
    }
}

/// The PyTorch class of a module (what printing shows, and what calling it ad hoc computes).
public enum ModuleKind: Sendable, Equatable {
    public enum Dropout: Sendable { case embedding, attention, residual }
    case model, embedding, dropout(Dropout), layerList, layerNorm, linear, conv1D, gelu, block, attention, mlp, generator, streamer
}

/// Where a module's values come from.
public enum ModuleSource: Sendable, Equatable {
    /// Its input and output hooks fire in the forward pass, on the stage that owns the module.
    case hook
    /// `model.generator`: its output (prompt + generated ids) exists on the coordinator.
    case generator
    /// `model.transformer`: its `inputs` (input ids, attention mask, position ids) exist on the coordinator.
    case modelInputs
    /// `transformer.h`: the list of layers.
    case layerList
    /// A module the forward pass never calls (`attn.attn_dropout` under sdpa attention).
    case notCalled
    /// `model.generator.streamer`: its output (the ids each step feeds the model: the padded
    /// prompt `[B, T]` at step 0, the previous step's token `[B]` later) exists on the coordinator.
    case streamer
}

/// The static shape of a port's value for a batch of `batch` rows and `tokens` new positions.
public enum PortShape: Sendable, Equatable {
    /// `[B, T, C]` float32
    case hidden
    /// `[B, T]` int64: token or position ids
    case ids
    /// `[B, T, V]` float32
    case logits
    /// `[B, T, 3C]` float32: attention's queries, keys and values (`c_attn`)
    case qkv
    /// `[B, T, n_inner]` float32: the MLP's hidden layer (`c_fc`, `act`)
    case inner
    /// `[B, T0 + steps]` int64: the prompt and every generated id
    case generated

    public func dims(batch: Int, tokens: Int, config: GPT2Config) -> [Int] {
        switch self {
        case .hidden: [batch, tokens, config.nEmbd]
        case .ids, .generated: [batch, tokens]
        case .logits: [batch, tokens, config.vocabSize]
        case .qkv: [batch, tokens, 3 * config.nEmbd]
        case .inner: [batch, tokens, config.innerDim]
        }
    }

    public var isInteger: Bool { self == .ids || self == .generated }
}

/// A module of the tree: an index into `ModuleTree.top`, or into `ModuleTree.perLayer` of a layer.
public struct ModuleID: Hashable, Sendable, CustomStringConvertible {
    /// The layer, -1 outside the layers.
    public let layer: Int32
    public let index: Int32

    public init(layer: Int32, index: Int32) {
        self.layer = layer
        self.index = index
    }

    /// As nnsight prints it: "transformer.h[3].attn".
    public var description: String {
        guard layer >= 0 else { return ModuleTree.top[Int(index)].name }
        let name = ModuleTree.perLayer[Int(index)].name
        return "transformer.h[\(layer)]" + (name.isEmpty ? "" : "." + name)
    }

    /// The layer a module belongs to, nil outside the layers.
    public var layerIndex: Int? { layer >= 0 ? Int(layer) : nil }

    /// Outside the layers and before them in forward order (the embeddings): the first stage's.
    /// Modules after the layers (ln_f, lm_head) are the last stage's.
    public var precedesLayers: Bool { layer < 0 && index < ModuleTree.layerListIndex }

    private static func top(_ name: String) -> ModuleID {
        ModuleID(layer: -1, index: Int32(ModuleTree.top.firstIndex { $0.name == name }!))
    }
    private static func slot(_ name: String) -> Int32 { Int32(ModuleTree.perLayer.firstIndex { $0.name == name }!) }

    // The fire points of the forward pass, looked up once.
    public static let wte = top("transformer.wte")
    public static let wpe = top("transformer.wpe")
    public static let drop = top("transformer.drop")
    public static let layerList = top("transformer.h")
    public static let lnF = top("transformer.ln_f")
    public static let lmHead = top("lm_head")
    public static let transformer = top("transformer")
    public static let generator = top("generator")
    public static let streamer = top("generator.streamer")
    private static let blockSlot = slot(""), ln1Slot = slot("ln_1"), attnSlot = slot("attn"), ln2Slot = slot("ln_2"), mlpSlot = slot("mlp")
    private static let cAttnSlot = slot("attn.c_attn"), attnProjSlot = slot("attn.c_proj")
    private static let cFcSlot = slot("mlp.c_fc"), actSlot = slot("mlp.act"), mlpProjSlot = slot("mlp.c_proj")
    private static let residDropSlot = slot("attn.resid_dropout"), mlpDropSlot = slot("mlp.dropout")
    public static func block(_ l: Int) -> ModuleID { ModuleID(layer: Int32(l), index: blockSlot) }
    public static func ln1(_ l: Int) -> ModuleID { ModuleID(layer: Int32(l), index: ln1Slot) }
    public static func attn(_ l: Int) -> ModuleID { ModuleID(layer: Int32(l), index: attnSlot) }
    public static func ln2(_ l: Int) -> ModuleID { ModuleID(layer: Int32(l), index: ln2Slot) }
    public static func mlp(_ l: Int) -> ModuleID { ModuleID(layer: Int32(l), index: mlpSlot) }
    public static func cAttn(_ l: Int) -> ModuleID { ModuleID(layer: Int32(l), index: cAttnSlot) }
    public static func attnProj(_ l: Int) -> ModuleID { ModuleID(layer: Int32(l), index: attnProjSlot) }
    public static func cFc(_ l: Int) -> ModuleID { ModuleID(layer: Int32(l), index: cFcSlot) }
    public static func act(_ l: Int) -> ModuleID { ModuleID(layer: Int32(l), index: actSlot) }
    public static func mlpProj(_ l: Int) -> ModuleID { ModuleID(layer: Int32(l), index: mlpProjSlot) }
    public static func residDropout(_ l: Int) -> ModuleID { ModuleID(layer: Int32(l), index: residDropSlot) }
    public static func mlpDropout(_ l: Int) -> ModuleID { ModuleID(layer: Int32(l), index: mlpDropSlot) }
}
