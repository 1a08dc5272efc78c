import Engine
import Graph

/// The static type of a module read: from the module tree's port shapes, the batch rows the read
/// sees and the prompt length (step 0 sees the prompt, later steps one token). The recorder uses
/// it while a trace is written (so `.shape` is a plain value), the compiler again on what arrives.
enum StaticTypes {
    static func read(_ read: ModuleRead, step: Int, rows: Int, promptLength: Int, allPositionLogits: Bool, config: GPT2Config) -> ValueType? {
        let spec = ModuleTree.spec(read.module)
        // A generation runs lm_head at each row's last position only (transformers' logits_to_keep=1).
        let lastOnly = spec.output == .logits && !allPositionLogits
        let tokens = step == 0 && !lastOnly ? promptLength : 1
        switch read.port {
        case .output where spec.source == .streamer:
            return .tensor(TensorType(shape: step == 0 ? [rows, promptLength] : [rows], dtype: .int64))
        case .input, .output:
            // The generated ids' length depends on when eos stops generation: known afterwards.
            guard spec.source == .hook, let shape = read.port == .input ? spec.input : spec.output else { return nil }
            let t = TensorType(shape: shape.dims(batch: rows, tokens: tokens, config: config), dtype: shape.isInteger ? .int64 : .float32)
            if read.port == .output, let size = spec.outputTuple {
                return .tuple([t] + [TensorType?](repeating: nil, count: size - 1))
            }
            return .tensor(t)
        case .inputs:
            let length = read.key == "attention_mask" ? promptLength + step : tokens
            return .tensor(TensorType(shape: [rows, length], dtype: .int64))
        }
    }

    /// Whether `value` can be written into a region of `target` (torch's broadcast of the value).
    static func checkAssignment(target: [Int], index: [IndexItem], value: [Int]) throws(OpError) {
        let region = try IndexItem.shape(of: index.isEmpty ? [.ellipsis] : index, on: target)
        guard (try? Kernels.broadcastShape(value, region)) == region else {
            throw OpError("shape mismatch: value tensor of shape \(value) cannot be broadcast to indexing result of shape \(region)")
        }
    }

    /// The type of `module(x)`, or why it cannot be called on `x`.
    static func call(_ module: ModuleID, _ input: ValueType, config: GPT2Config) throws(OpError) -> ValueType {
        guard case let .tensor(t) = input else { throw OpError("\(module)(...) takes a tensor, not a tuple; index it first (e.g. output[0])") }
        switch ModuleTree.callShape(module, input: t.shape, integer: t.dtype != .float32, config: config) {
        case let .success(shape): return .tensor(TensorType(shape: shape, dtype: .float32))
        case let .failure(error): throw OpError(error.description)
        }
    }

    static func parameter(_ module: ModuleID, _ name: String, config: GPT2Config) -> ValueType? {
        ModuleTree.parameters(of: module, config: config).first { $0.name == name }.map { .tensor(TensorType(shape: $0.shape, dtype: .float32)) }
    }

    /// Whether `value` can stand in for `module`'s output (item 0 of a tuple output).
    static func checkSkip(_ module: ModuleID, output: ValueType?, value: ValueType) throws(OpError) {
        guard case let .tensor(v) = value else { throw OpError("\(module).skip() takes a tensor (for a tuple output, its item 0)") }
        let expected: TensorType?
        switch output {
        case let .tensor(t)?: expected = t
        case let .tuple(items)?: expected = items.first ?? nil
        case nil: expected = nil
        }
        guard let expected else { return }
        guard (try? Kernels.broadcastShape(v.shape, expected.shape)) == expected.shape else {
            throw OpError("\(module).skip(): a value of shape \(v.shape) cannot stand in for its output of shape \(expected.shape)")
        }
    }
}
