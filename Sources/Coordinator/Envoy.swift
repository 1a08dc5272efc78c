import Engine
import Graph

/// A module of the model as nnsight shows it: `.output` and `.input` read (and can edit) the
/// values at its hook points inside a trace. Its submodules come from the Engine's module tree.
public class ModuleEnvoy {
    public let module: ModuleID
    let layers: Int

    init(_ module: ModuleID, layers: Int) {
        self.module = module
        self.layers = layers
    }

    /// The module's output (a tuple for blocks and attention: use `output[0]`).
    public var output: TraceValue { read(.output) }
    /// The module's first positional input.
    public var input: TraceValue { read(.input) }

    func read(_ port: ModuleRead.Port, key: String = "") -> TraceValue {
        guard let recorder = TraceRecorder.active else { return TraceValue(recorder: nil, node: 0, isTuple: false) }
        return recorder.read(ModuleRead(module, port, key: key))
    }

    /// The names of its submodules, as nnsight's attributes (`["ln_1", "attn", "ln_2", "mlp"]`).
    public var childNames: [String] { ModuleTree.children(of: module, layers: layers).map(\.name) }

    /// A submodule by its attribute name (`"attn"`, `"ln_1"`), nil when there is none.
    public func child(_ name: String) -> ModuleEnvoy? {
        guard let id = ModuleTree.children(of: module, layers: layers).first(where: { $0.name == name })?.id else { return nil }
        return id.layer >= 0 && ModuleTree.spec(id).name.isEmpty ? BlockEnvoy(layer: Int(id.layer), layers: layers) : ModuleEnvoy(id, layers: layers)
    }

    func required(_ name: String) -> ModuleEnvoy {
        // The tree declares every child these properties name (ModuleTree.perLayer / .top).
        child(name)!
    }
}

/// `model.transformer.h[i]`.
public final class BlockEnvoy: ModuleEnvoy {
    init(layer: Int, layers: Int) { super.init(.block(layer), layers: layers) }

    public var ln1: ModuleEnvoy { required("ln_1") }
    public var attn: ModuleEnvoy { required("attn") }
    public var ln2: ModuleEnvoy { required("ln_2") }
    public var mlp: ModuleEnvoy { required("mlp") }
}

/// `model.transformer.h`: negative indices count from the end.
public struct LayerList {
    let layers: Int

    public subscript(_ i: Int) -> BlockEnvoy {
        let index = i < 0 ? i + layers : i
        guard index >= 0, index < layers else {
            TraceRecorder.active?.problem("transformer.h[\(i)]: index out of range for \(layers) layers")
            return BlockEnvoy(layer: Swift.max(0, Swift.min(index, layers - 1)), layers: layers)
        }
        return BlockEnvoy(layer: index, layers: layers)
    }

    public var count: Int { layers }
}

/// The inputs the model received at the current step, as nnsight's `model.transformer.inputs`
/// (`inputs[0][0]` = input_ids, `inputs[1]["attention_mask"]`, `inputs[1]["position_ids"]`).
public struct ModuleInputs {
    let envoy: ModuleEnvoy
    public var inputIds: TraceValue { envoy.read(.inputs, key: "input_ids") }
    public var attentionMask: TraceValue { envoy.read(.inputs, key: "attention_mask") }
    public var positionIds: TraceValue { envoy.read(.inputs, key: "position_ids") }
}

/// `model.transformer`.
public final class TransformerEnvoy: ModuleEnvoy {
    public let h: LayerList

    init(layers: Int) {
        h = LayerList(layers: layers)
        super.init(.transformer, layers: layers)
    }

    public var wte: ModuleEnvoy { required("wte") }
    public var wpe: ModuleEnvoy { required("wpe") }
    public var lnF: ModuleEnvoy { required("ln_f") }
    public var inputs: ModuleInputs { ModuleInputs(envoy: self) }
}

/// `model.generator`: its output is the prompt plus the generated ids, `[batch, T + new]`.
public final class GeneratorEnvoy: ModuleEnvoy {
    init(layers: Int) { super.init(.generator, layers: layers) }
}
