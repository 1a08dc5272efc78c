import Engine
import Wire

/// A module of the model as nnsight shows it: `.output` and `.input` read (and can edit) the
/// tensors at its hook points inside a trace.
public class ModuleEnvoy {
    let path: String
    let tupleOutput: Bool

    init(path: String, tupleOutput: Bool = false) {
        self.path = path
        self.tupleOutput = tupleOutput
    }

    /// The module's output (a tuple for blocks and attention: use `output[0]`).
    public var output: TraceValue { read(.output, tuple: tupleOutput) }
    /// The module's first positional input.
    public var input: TraceValue { read(.input, tuple: false) }

    func read(_ port: Nnsight_V1_Port, tuple: Bool) -> TraceValue {
        guard let recorder = TraceRecorder.active else { return TraceValue(recorder: nil, node: 0, isTuple: tuple) }
        return recorder.read(path, port, tuple: tuple)
    }
}

/// `model.transformer.h[i]`.
public final class BlockEnvoy: ModuleEnvoy {
    public let ln1: ModuleEnvoy, attn: ModuleEnvoy, ln2: ModuleEnvoy, mlp: ModuleEnvoy

    init(layer: Int) {
        let p = "transformer.h.\(layer)"
        ln1 = ModuleEnvoy(path: p + ".ln_1")
        attn = ModuleEnvoy(path: p + ".attn", tupleOutput: true)
        ln2 = ModuleEnvoy(path: p + ".ln_2")
        mlp = ModuleEnvoy(path: p + ".mlp")
        super.init(path: p, tupleOutput: true)
    }
}

/// `model.transformer.h`: negative indices count from the end.
public struct LayerList {
    let blocks: [BlockEnvoy]

    public subscript(_ i: Int) -> BlockEnvoy {
        let index = i < 0 ? i + blocks.count : i
        guard index >= 0, index < blocks.count else {
            TraceRecorder.active?.problems.append("transformer.h[\(i)]: index out of range for \(blocks.count) layers")
            return BlockEnvoy(layer: index)
        }
        return blocks[index]
    }

    public var count: Int { blocks.count }
}

/// The inputs the model received at the current step, as nnsight's `model.transformer.inputs`
/// (`inputs[0][0]` = input_ids, `inputs[1]["attention_mask"]`, `inputs[1]["position_ids"]`).
public struct ModuleInputs {
    public let inputIds: TraceValue
    public let attentionMask: TraceValue
    public let positionIds: TraceValue
}

/// `model.transformer`.
public final class TransformerEnvoy: ModuleEnvoy {
    public let wte = ModuleEnvoy(path: "transformer.wte")
    public let wpe = ModuleEnvoy(path: "transformer.wpe")
    public let h: LayerList
    public let lnF = ModuleEnvoy(path: "transformer.ln_f")

    init(layers: Int) {
        h = LayerList(blocks: (0..<layers).map(BlockEnvoy.init))
        super.init(path: "transformer")
    }

    public var inputs: ModuleInputs {
        func input(_ name: String) -> TraceValue {
            guard let r = TraceRecorder.active else { return TraceValue(recorder: nil, node: 0, isTuple: false) }
            return r.read("transformer.inputs." + name, .inputs, tuple: false)
        }
        return ModuleInputs(inputIds: input("input_ids"), attentionMask: input("attention_mask"), positionIds: input("position_ids"))
    }
}

/// `model.generator`: its output is the prompt plus the generated ids, `[batch, T + new]`.
public final class GeneratorEnvoy {
    public var output: TraceValue {
        guard let r = TraceRecorder.active else { return TraceValue(recorder: nil, node: 0, isTuple: false) }
        return r.read("generator", .output, tuple: false)
    }
}
