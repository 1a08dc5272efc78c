import Coordinator
import Engine
import Foundation
import Graph

/// A Python list (a reference, as in Python).
final class PyList {
    var items: [PyValue]
    /// `.save()` was called on it inside a trace, so it outlives the trace (as in nnsight).
    var saved = false
    init(_ items: [PyValue] = []) { self.items = items }
}

/// Objects of the nnsight world a script can reach.
enum PyObject {
    case model
    case transformer
    case layers
    case block(BlockEnvoy)
    case module(ModuleEnvoy)
    case generator
    case tokenizer
    case tracer(Tracer)
    case stepIndexer(Tracer)
    /// `model.generate(...)`, `model.trace(...)`, `tracer.invoke(...)` before `with` enters them.
    case generateContext(prompt: String?, maxNewTokens: Int, sampling: SamplingParameters)
    case traceContext(prompt: String?)
    case invokeContext(Tracer, prompt: String?)
}

/// A value of the script interpreter.
indirect enum PyValue {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case str(String)
    case list(PyList)
    case tuple([PyValue])
    case dict([(String, PyValue)])
    case tensor(Tensor)
    case size([Int])
    case range(Int, Int, Int)
    /// A value inside a trace; its real value exists only on a worker.
    case proxy(TraceValue)
    /// A `.save()`d value: a proxy while recording, a tensor once the trace has run.
    case saved(Saved, TraceValue)
    /// A proxy that was not saved, after its trace ended.
    case unsaved(String)
    case object(PyObject)
    case steps(StepSequence)
    case builtin(String)
    case method(PyValue, String)

    var typeName: String {
        switch self {
        case .none: "NoneType"
        case .bool: "bool"
        case .int: "int"
        case .float: "float"
        case .str: "str"
        case .list: "list"
        case .tuple: "tuple"
        case .dict: "dict"
        case .tensor, .saved: "Tensor"
        case .size: "torch.Size"
        case .range: "range"
        case .proxy: "InterventionProxy"
        case .unsaved: "unsaved proxy"
        case .object: "Envoy"
        case .steps: "iterator"
        case .builtin, .method: "builtin_function_or_method"
        }
    }
}

// MARK: - str and repr, as Python and torch print them

enum Repr {
    static func float(_ d: Double) -> String {
        if d.isNaN { return "nan" }
        if d.isInfinite { return d < 0 ? "-inf" : "inf" }
        if d == d.rounded() && abs(d) < 1e16 { return String(format: "%.1f", d) }
        var s = "\(d)"
        // Swift writes 1e-05 / 1e+16 like Python; only the exponent padding may differ.
        if let e = s.firstIndex(of: "e") {
            var exponent = String(s[s.index(after: e)...])
            let sign = exponent.hasPrefix("-") ? "-" : "+"
            exponent = exponent.trimmingCharacters(in: CharacterSet(charactersIn: "+-"))
            if exponent.count < 2 { exponent = "0" + exponent }
            s = String(s[..<e]) + "e" + sign + exponent
        }
        return s
    }

    static func string(_ s: String) -> String {
        let quote: Character = s.contains("'") && !s.contains("\"") ? "\"" : "'"
        var out = String(quote)
        for ch in s.unicodeScalars {
            switch ch {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            case "\r": out += "\\r"
            default:
                if Character(ch) == quote { out += "\\\(quote)" }
                else if ch.value < 0x20 || ch.value == 0x7f { out += String(format: "\\x%02x", ch.value) }
                else { out.unicodeScalars.append(ch) }
            }
        }
        out.append(quote)
        return out
    }

    /// torch's repr: `tensor(1052)`, `tensor([1, 2])`, floats with 4 decimals.
    static func tensor(_ t: Tensor) -> String {
        let data = t.doubles
        func element(_ v: Double) -> String {
            t.dtype == .int64 ? String(Int(v)) : String(format: "%.4f", v)
        }
        func nested(_ offset: Int, _ dim: Int, indent: Int) -> String {
            if dim == t.shape.count { return element(data[offset]) }
            let stride = t.shape[(dim + 1)...].reduce(1, *)
            let parts = (0..<t.shape[dim]).map { nested(offset + $0 * stride, dim + 1, indent: indent + 1) }
            let separator = dim == t.shape.count - 1 ? ", " : ",\n" + String(repeating: " ", count: indent + 1)
            return "[" + parts.joined(separator: separator) + "]"
        }
        return "tensor(" + nested(0, 0, indent: 7) + ")"
    }
}
