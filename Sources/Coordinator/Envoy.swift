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

    /// The module's output (a tuple for blocks and attention: use `output[0]`). Assigning
    /// replaces it (for a tuple output, its item 0): `model.transformer.h[0].mlp.output = x * 2`.
    public var output: TraceValue {
        get { read(.output) }
        set { replace(.output, with: newValue) }
    }
    /// The module's first positional input; assigning replaces what the module receives (only
    /// it: `ln_1.input = x` leaves the residual stream it shares with the block untouched).
    public var input: TraceValue {
        get { read(.input) }
        set { replace(.input, with: newValue) }
    }

    func read(_ port: ModuleRead.Port, key: String = "") -> TraceValue {
        guard let recorder = TraceRecorder.active else { return TraceValue(recorder: nil, node: 0, isTuple: false) }
        return recorder.read(ModuleRead(module, port, key: key))
    }

    private func replace(_ port: ModuleRead.Port, with value: TraceValue) {
        guard let r = TraceRecorder.active, let source = r.item0(of: value) else { return }
        let target = r.read(ModuleRead(module, port))
        guard let t = r.item0(of: target) else { return }
        r.add(.replace(target: t, value: source))
    }

    /// Runs the module on a value, on the stage holding its weights (the logit lens:
    /// `model.lmHead(model.transformer.lnF(h))`). Blocks and attention are not callable.
    public func callAsFunction(_ x: TraceValue) -> TraceValue {
        guard let r = TraceRecorder.active else { return x }
        guard let input = r.item0(of: x) else { return TraceValue(recorder: r, node: 0, isTuple: false) }
        return TraceValue(recorder: r, node: r.add(.call(module: module, input: input)), isTuple: false)
    }

    /// A parameter (`"weight"`, `"bias"`) as a read-only value.
    public func parameter(_ name: String) -> TraceValue {
        guard let r = TraceRecorder.active else { return TraceValue(recorder: nil, node: 0, isTuple: false) }
        guard ModuleTree.parameterNames(of: module).contains(name) else {
            r.problem("\(module) has no parameter '\(name)'" + (ModuleTree.parameterNames(of: module).isEmpty ? "" : " (it has \(ModuleTree.parameterNames(of: module).joined(separator: ", ")))"))
            return TraceValue(recorder: r, node: 0, isTuple: false)
        }
        return TraceValue(recorder: r, node: r.add(.parameter(module: module, name: name)), isTuple: false)
    }

    public var weight: TraceValue { parameter("weight") }
    public var bias: TraceValue { parameter("bias") }

    /// The module does not run at this step; `value` is its output (item 0 of a tuple output):
    /// `model.transformer.h[1].skip(model.transformer.h[0].output)`. Blocks, `attn` and `mlp`.
    public func skip(_ value: TraceValue) {
        guard let r = TraceRecorder.active, let v = r.item0(of: value) else { return }
        r.add(.skip(module: module, value: v))
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
