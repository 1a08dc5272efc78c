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

    /// Frees nested lists one after another: released recursively, `x = [x]` repeated 100,000
    /// times overflowed the stack.
    deinit {
        var pending = items
        items = []
        while !pending.isEmpty {
            var child: PyList
            if case let .list(list) = pending.removeLast() { child = list } else { continue }
            // Referenced only here: it is freed at the end of this turn, after its items move out.
            if isKnownUniquelyReferenced(&child) {
                pending.append(contentsOf: child.items)
                child.items = []
            }
        }
    }
}

/// A Python dict (a reference, insertion-ordered). Keys are strings, ints or bools.
final class PyDict {
    var entries: [(key: PyValue, value: PyValue)]
    var saved = false
    init(_ entries: [(key: PyValue, value: PyValue)] = []) { self.entries = entries }

    static func hashKey(_ k: PyValue) -> String? {
        switch k {
        case let .str(s): "s" + s
        case let .int(i): "i\(i)"
        case let .bool(b): "i\(b ? 1 : 0)"
        case let .float(f) where f == f.rounded() && abs(f) < 1e15: "i\(Int(f))"
        case let .float(f): "f\(f)"
        case .none: "n"
        case let .tuple(items):
            items.map(hashKey).allSatisfy { $0 != nil } ? "t(" + items.map { hashKey($0)! }.joined(separator: ",") + ")" : nil
        default: nil
        }
    }

    func index(of key: PyValue) -> Int? {
        guard let h = Self.hashKey(key) else { return nil }
        return entries.firstIndex { Self.hashKey($0.key) == h }
    }

    subscript(_ key: PyValue) -> PyValue? {
        get { index(of: key).map { entries[$0].value } }
        set {
            if let i = index(of: key) {
                if let newValue { entries[i].value = newValue } else { entries.remove(at: i) }
            } else if let newValue {
                entries.append((key, newValue))
            }
        }
    }
}

/// A `def` or a `lambda`: parameters, a body, and the local names it closes over.
final class PyFunction {
    let name: String
    let params: [Expr.Param]
    let defaults: [PyValue?]
    enum Body { case statements([Stmt]), expression(Expr) }
    let body: Body
    let captured: [String: PyValue]
    init(name: String, params: [Expr.Param], defaults: [PyValue?], body: Body, captured: [String: PyValue]) {
        self.name = name
        self.params = params
        self.defaults = defaults
        self.body = body
        self.captured = captured
    }
}

/// A Python value computed from traced values that does not flow back into the model
/// (`x.item()`, an f-string, `tokenizer.decode(tok)`): the client computes it once the traced
/// values it needs have arrived. `graph` gives the same value as a graph node, when it is a
/// number, for conditions (`if x.item() > 0:`).
final class Deferred {
    let needs: [TraceValue]
    private let computeNow: () throws -> PyValue
    /// Its value computed at its place in program order (it reads Python values the script
    /// changes later: `tok in seen` while `seen` grows); later computations return it.
    var fixed: PyValue?
    func compute() throws -> PyValue {
        if let fixed { return fixed }
        return try computeNow()
    }
    private let makeGraph: (() -> TraceValue?)?
    private var graphValue: TraceValue??
    /// `nnsight.save(...)`d: it outlives the trace as its computed value.
    var saved = false

    init(needs: [TraceValue], graph: (() -> TraceValue?)? = nil, compute: @escaping () throws -> PyValue) {
        self.needs = needs
        self.makeGraph = graph
        self.computeNow = compute
    }

    /// The value as a graph node (recorded on first use), nil when it has none (a string).
    var graph: TraceValue? {
        if let graphValue { return graphValue }
        let g = makeGraph?()
        graphValue = .some(g)
        return g
    }
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
    /// (no prompt: the body's invokes make the batch; several: one batch, the body sees all rows)
    /// Prompts as token ids per batch row.
    case generateContext(prompts: [[Int]], options: GenerateOptions, edits: EditSet)
    case traceContext(prompts: [[Int]], edits: EditSet)
    /// `model.scan(...)`: recorded and checked as a trace, never run.
    case scanContext(prompts: [[Int]], edits: EditSet)
    /// `model.edit(inplace=...)` before `with` enters it.
    case editContext(EditSet, inplace: Bool)
    /// The model an edit made (`with model.edit() as (tracer, edited)`): the model, with its edits
    /// replayed at the start of every trace of it.
    case editedModel(EditSet)
    case invokeContext(Tracer, prompts: [[Int]]?)
    /// `torch`, `torch.nn`, `torch.nn.functional`, `nnsight`, `math`, and `torch.Tensor` (for isinstance).
    case namespace(String)
    /// `torch.no_grad()`, `torch.inference_mode()`: a context that turns autograd names off.
    case noGrad
    /// `model.output` / a trace's `tracer.result`: transformers' `CausalLMOutputWithCrossAttentions`,
    /// whose `logits` (and item 0) is lm_head's output.
    case modelOutput(PyValue)
    /// `tracer.cache(...)`, or a path into it (`cache.model.transformer.h[0]`, `cache["..."]`);
    /// `perStep`: a generation's cache, whose entries hold a list per step.
    case cache(TraceCache, prefix: String?, perStep: Bool)
    /// `model.session()` before `with` enters it, and the session object inside.
    case sessionContext
    /// `tracer.barrier(n)`: where invokes that share a module's value meet. The graph orders a
    /// trace's values by what reads them, so calling it records nothing.
    case barrier(Tracer, participants: Int)

    /// A module of the model's tree (callable, skippable).
    var isModule: Bool {
        switch self {
        case .module, .block: true
        default: false
        }
    }
}

/// The keyword arguments of `model.generate(...)` that shape generation.
struct GenerateOptions {
    var maxNewTokens = 20
    var sampling = SamplingParameters()
    var eosTokenId: Int?
    var padTokenId: Int?
}

/// The interventions `model.edit()` stored: each edit block's statements (and the name its
/// tracer was bound to), replayed at the start of every later trace of the edited model.
final class EditSet {
    var blocks: [(body: [Stmt], tracer: Expr?)] = []
    init(_ blocks: [(body: [Stmt], tracer: Expr?)] = []) { self.blocks = blocks }
}

/// `iter(x)`: Python's iterator over the items `x` had when it was made.
final class PyIterator {
    private let items: [PyValue]
    private var position = 0
    init(_ items: [PyValue]) { self.items = items }
    var remaining: ArraySlice<PyValue> { items[position...] }
    func next() -> PyValue? {
        guard position < items.count else { return nil }
        position += 1
        return items[position - 1]
    }
    /// What a loop over it takes: the rest.
    func drain() -> [PyValue] {
        defer { position = items.count }
        return Array(remaining)
    }
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
    case dict(PyDict)
    /// A tensor the script holds, with torch's autograd name for its repr (`grad_fn=<...>`).
    case tensor(Tensor, grad: String? = nil)
    case size([Int])
    case range(Int, Int, Int)
    case dtype(DType)
    /// A value inside a trace; its real value exists only on a worker.
    case proxy(TraceValue)
    /// A `.save()`d value: a proxy while recording, a tensor once the trace has run.
    case saved(Saved, TraceValue)
    /// A Python value the client computes from traced values when they arrive.
    case deferred(Deferred)
    /// A proxy that was not saved, after its trace ended.
    case unsaved(String)
    case object(PyObject)
    case steps(StepSequence)
    case builtin(String)
    case method(PyValue, String)
    case function(PyFunction)
    /// `slice(start, stop, step)`.
    case slice(Int?, Int?, Int?)
    /// `iter(x)`: the items left to give.
    case iterator(PyIterator)

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
        case .tensor, .saved, .proxy: "Tensor"
        case .size: "torch.Size"
        case .range: "range"
        case .dtype: "torch.dtype"
        case .deferred: "value"
        case .unsaved: "unsaved proxy"
        case .object(.modelOutput): "CausalLMOutputWithCrossAttentions"
        case .object(.cache(_, nil, _)): "Cache"
        case .object(.cache): "CacheView"
        case .object: "Envoy"
        case .steps: "iterator"
        case .builtin, .method: "builtin_function_or_method"
        case .function: "function"
        case .slice: "slice"
        case .iterator: "list_iterator"
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
}
