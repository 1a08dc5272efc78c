import Engine
import Graph

/// nnsight's `tracer.cache(...)`: the outputs (and optionally inputs) of modules at every step
/// from the call on, saved, under nnsight's keys (`"model.transformer.h.0"`).
///
/// ```swift
/// var cache: TraceCache!
/// try model.generate("Hello", maxNewTokens: 3) { tracer in cache = tracer.cache(modules: [.block(0)]) }
/// let first = try cache["model.transformer.h.0"]!.output(at: 0)   // step 0, [1, T, C]
/// ```
public final class TraceCache {
    /// What a key stands for: a module of the tree, or the model and its transformer (whose
    /// outputs are lm_head's logits and ln_f's hidden states).
    public enum Target: Equatable, Sendable {
        case model, transformer
        case module(ModuleID)

        /// The module whose output the target's output is (lm_head's logits for the model, ln_f's
        /// hidden states for the transformer), and whose input its input is (the token ids).
        public var output: ModuleID {
            switch self {
            case .model: .lmHead
            case .transformer: .lnF
            case let .module(id): id
            }
        }
        public var input: ModuleID {
            if case let .module(id) = self { return id }
            return .wte
        }
    }

    public struct Entry {
        public let target: Target
        /// Item 0 of the module's output per step (the logits for the model, the last hidden
        /// state for the transformer), as saved traced values.
        public internal(set) var outputs: [(step: Int, value: TraceValue)] = []
        /// The module's first input per step, when inputs were asked for.
        public internal(set) var inputs: [(step: Int, value: TraceValue)] = []

        /// The output at `step`, once the trace has run.
        public func output(at step: Int) throws(TraceError) -> Tensor {
            guard let saved = outputs.first(where: { $0.step == step })?.value.saved else { throw TraceError.stepNotReached(step: step) }
            return try saved.value
        }
        /// Hugging Face's output is a tuple here (blocks, attention): item 0 is what `outputs` holds.
        public var outputTuple: Int? {
            if case let .module(id) = target { return ModuleTree.spec(id).outputTuple }
            return nil
        }
    }

    public internal(set) var entries: [(key: String, entry: Entry)] = []

    public subscript(_ key: String) -> Entry? { entries.first { $0.key == key }?.entry }
    public var keys: [String] { entries.map(\.key) }

    /// nnsight's key of a module: "model.transformer.h.0.attn".
    public static func key(_ target: Target) -> String {
        switch target {
        case .model: "model"
        case .transformer: "model.transformer"
        case let .module(id): "model." + ModuleTree.path(id)
        }
    }

    /// Every module whose forward runs, as `named_modules` lists them (the model first).
    public static func allTargets(layers: Int) -> [Target] {
        var targets: [Target] = [.model, .transformer]
        func walk(_ parent: ModuleID?) {
            for child in ModuleTree.children(of: parent, layers: layers) {
                let spec = ModuleTree.spec(child.id)
                if spec.source == .hook { targets.append(.module(child.id)) }
                if spec.source == .hook || spec.source == .layerList || spec.source == .modelInputs { walk(child.id) }
            }
        }
        walk(nil)
        return targets
    }
}

extension Tracer {
    /// Saves the outputs (and inputs, if asked) of `modules` (every module when nil) at every
    /// step from the current one on.
    public func cache(modules: [TraceCache.Target]? = nil, includeInputs: Bool = false, includeOutput: Bool = true) -> TraceCache {
        let cache = TraceCache()
        let steps = Array(recorder.currentStep..<recorder.maxNewTokens)
        let outer = recorder.loopStep
        defer { recorder.loopStep = outer }
        for target in modules ?? TraceCache.allTargets(layers: recorder.layers) {
            var entry = TraceCache.Entry(target: target)
            // Only modules of the forward pass have values to cache.
            guard ModuleTree.spec(target.output).source == .hook else {
                cache.entries.append((TraceCache.key(target), entry))
                continue
            }
            for step in steps {
                recorder.loopStep = step
                if includeOutput, let node = recorder.item0(of: recorder.read(ModuleRead(target.output, .output))) {
                    let value = TraceValue(recorder: recorder, node: node, isTuple: false)
                    value.save()
                    entry.outputs.append((step, value))
                }
                if includeInputs {
                    let value = recorder.read(ModuleRead(target.input, .input))
                    value.save()
                    entry.inputs.append((step, value))
                }
            }
            cache.entries.append((TraceCache.key(target), entry))
        }
        return cache
    }
}
