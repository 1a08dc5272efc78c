import Engine
import Graph

/// The static type of a module read: from the module tree's port shapes, the batch rows the read
/// sees and the prompt length (step 0 sees the prompt, later steps one token). The recorder uses
/// it while a trace is written (so `.shape` is a plain value), the compiler again on what arrives.
enum StaticTypes {
    static func read(_ read: ModuleRead, step: Int, rows: Int, promptLength: Int, config: GPT2Config) -> ValueType? {
        let tokens = step == 0 ? promptLength : 1
        let spec = ModuleTree.spec(read.module)
        switch read.port {
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
}
