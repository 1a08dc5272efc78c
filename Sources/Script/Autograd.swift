import Engine
import Graph

/// The names torch's autograd gives the ops of a trace (`grad_fn=<SliceBackward0>` in a tensor's
/// repr), so printed tensors read as nnsight prints them. Values that need no gradient (integer
/// and bool results, constants, anything under `torch.no_grad()`) have none.
enum Autograd {
    /// The grad_fn of a module's output or input, as transformers 5.2.0's GPT-2 produces it.
    /// A leaf that requires grad (a parameter): `requires_grad=True`, no `grad_fn`.
    static let leaf = ""

    static func module(_ module: ModuleID, port: ModuleRead.Port) -> String? {
        let grad = ModuleTree.spec(module).grad
        return port == .output ? grad.output : grad.input
    }

    /// The index op torch runs last for `x[items]`: full slices after the last real item are
    /// free; only full slices make an alias.
    static func index(_ items: [IndexItem]) -> String? {
        var trailing = items
        while let last = trailing.last, last == .all || last == .ellipsis { trailing.removeLast() }
        guard let last = trailing.last else {
            return items.count == 1 && items[0] == .all ? "SliceBackward0" : "AliasBackward0"
        }
        switch last {
        case .at: return "SelectBackward0"
        case .slice: return "SliceBackward0"
        case .newAxis: return "UnsqueezeBackward0"
        case .ellipsis: return "AliasBackward0"
        }
    }

    /// The grad_fn of op `name` on inputs with the given grad_fns (nil: no gradient) and ranks.
    static func op(_ name: String, _ attributes: Attributes, inputs: [(grad: String?, rank: Int, permuted: Bool)],
                   output: DType, enabled: Bool) -> String? {
        guard enabled, output == .float32, inputs.contains(where: { $0.grad != nil }) else { return nil }
        let first = inputs.first?.grad != nil
        let dims = attributes.int("dim") != nil
        switch name {
        case "add": return "AddBackward0"
        case "sub": return first ? "SubBackward0" : "RsubBackward1"
        case "mul": return "MulBackward0"
        case "div": return first || inputs[0].rank > 0 ? "DivBackward0" : "MulBackward0"
        case "pow": return inputs.count > 1 && inputs[1].grad != nil ? (first ? "PowBackward1" : "PowBackward2") : "PowBackward0"
        case "index": return index(attributes.index("index"))
        case "take", "advanced_index": return "IndexBackward0"
        case "sum": return dims ? "SumBackward1" : "SumBackward0"
        case "mean": return dims ? "MeanBackward1" : "MeanBackward0"
        case "max": return dims ? "MaxBackward0" : "MaxBackward1"
        case "min": return dims ? "MinBackward0" : "MinBackward1"
        case "prod": return dims ? "ProdBackward1" : "ProdBackward0"
        case "norm": return "LinalgVectorNormBackward0"
        case "std": return "StdBackward0"
        case "var": return "VarBackward0"
        case "softmax": return "SoftmaxBackward0"
        case "log_softmax": return "LogSoftmaxBackward0"
        case "gelu", "gelu_tanh": return "GeluBackward0"
        case "clamp": return "ClampBackward1"
        case "topk": return "TopkBackward0"
        case "sort": return "SortBackward0"
        case "reshape": return inputs[0].permuted ? "UnsafeViewBackward0" : "ViewBackward0"
        case "flatten":
            if inputs[0].rank <= 1 { return inputs[0].grad }
            return inputs[0].permuted ? "UnsafeViewBackward0" : "ViewBackward0"
        case "permute": return "PermuteBackward0"
        case "transpose": return "TransposeBackward0"
        case "unsqueeze": return "UnsqueezeBackward0"
        case "squeeze": return dims ? "SqueezeBackward1" : "SqueezeBackward0"
        case "expand": return "ExpandBackward0"
        case "clone": return "CloneBackward0"
        case "contiguous": return inputs[0].permuted ? "CloneBackward0" : inputs[0].grad
        case "to": return inputs[0].grad
        case "matmul":
            switch (inputs[0].rank, inputs.count > 1 ? inputs[1].rank : 0) {
            case (1, 1): return "DotBackward0"
            case (2, 2): return "MmBackward0"
            case (2, 1): return "MvBackward0"
            case (1, _): return "SqueezeBackward4"
            default: return "UnsafeViewBackward0"
            }
        case "einsum": return inputs.count == 1 ? "SumBackward1" : "ViewBackward0"
        case "cosine_similarity": return "SumBackward1"
        case "cat": return "CatBackward0"
        case "stack": return "StackBackward0"
        case "where": return "WhereBackward0"
        case "full_like", "full", "arange", "floor_divide": return nil
        case "remainder": return "RemainderBackward0"
        default:
            // exp, log, sqrt, rsqrt, tanh, sigmoid, relu, abs, neg, sin, cos: torch's CamelCase name.
            return name.prefix(1).uppercased() + name.dropFirst() + "Backward0"
        }
    }
}
