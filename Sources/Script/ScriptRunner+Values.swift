import Coordinator
import Engine
import Foundation
import Graph

extension ScriptRunner {
    // MARK: - attributes

    func attribute(_ base: PyValue, _ name: String, _ loc: SourceLocation) throws -> PyValue {
        func missing() -> ScriptError { fail(.attribute, "'\(base.typeName)' object has no attribute '\(name)'", loc) }
        switch base {
        case let .object(object):
            switch (object, name) {
            case (.model, "transformer"): return .object(.transformer)
            case (.model, "lm_head"): return .object(.module(model.lmHead))
            case (.model, "generator"): return .object(.generator)
            case (.model, "tokenizer"): return .object(.tokenizer)
            case (.model, "generate"), (.model, "trace"): return .method(base, name)
            case (.transformer, "h"): return .object(.layers)
            case (.transformer, "inputs"):
                try requireTrace(name, loc)
                let inputs = model.transformer.inputs
                return .tuple([.tuple([.proxy(inputs.inputIds)]),
                               .dict([("input_ids", .proxy(inputs.inputIds)), ("attention_mask", .proxy(inputs.attentionMask)),
                                      ("position_ids", .proxy(inputs.positionIds))])])
            case (.transformer, "output"), (.transformer, "input"):
                throw fail(.unsupported, "model.transformer.\(name) is not supported; use model.transformer.h[-1].output or .inputs", loc)
            // Submodules come from the Engine's module tree (ModuleTree), as the envoys do.
            case (.transformer, _) where model.transformer.child(name) != nil: return .object(.module(model.transformer.child(name)!))
            case let (.block(b), _) where b.child(name) != nil: return .object(.module(b.child(name)!))
            case let (.module(m), _) where m.child(name) != nil: return .object(.module(m.child(name)!))
            case let (.block(b), "output"): try requireTrace(name, loc); return .proxy(b.output)
            case let (.block(b), "input"): try requireTrace(name, loc); return .proxy(b.input)
            case let (.module(m), "output"): try requireTrace(name, loc); return .proxy(m.output)
            case let (.module(m), "input"): try requireTrace(name, loc); return .proxy(m.input)
            case (.generator, "output"): try requireTrace(name, loc); return .proxy(model.generator.output)
            case (.tokenizer, "decode"), (.tokenizer, "encode"): return .method(base, name)
            case (.tokenizer, "padding_side"): return .str("left")
            case (.tokenizer, "pad_token_id"), (.tokenizer, "eos_token_id"): return .int(model.tokenizer.endOfTextId)
            case let (.tracer(t), "iter"): return .object(.stepIndexer(t))
            case let (.tracer(t), "result"): return .proxy(t.result)
            case (.tracer, "all"), (.tracer, "next"), (.tracer, "invoke"): return .method(base, name)
            default: throw missing()
            }
        case .proxy, .saved:
            let v = try resolved(base, loc)
            if case .tensor = v { return try tensorAttribute(v, name, loc) }
            switch name {
            case "save", "argmax", "softmax", "sum", "mean", "max", "abs", "clone", "item", "tolist": return .method(base, name)
            case "shape":
                throw fail(.unsupported, "the shape of a traced value is known after the trace; save it and read .shape afterwards", loc)
            default: throw missing()
            }
        case .tensor: return try tensorAttribute(base, name, loc)
        case .list:
            guard ["append", "save"].contains(name) else { throw missing() }
            return .method(base, name)
        case .str:
            guard ["join", "strip", "split", "upper", "lower", "replace", "startswith", "endswith", "format"].contains(name) else { throw missing() }
            return .method(base, name)
        case .dict:
            guard ["keys", "values", "items", "get"].contains(name) else { throw missing() }
            return .method(base, name)
        case .int, .float, .bool, .tuple:
            if name == "save" { return .method(base, name) }
            throw missing()
        default: throw missing()
        }
    }

    func tensorAttribute(_ base: PyValue, _ name: String, _ loc: SourceLocation) throws -> PyValue {
        guard case let .tensor(t) = base else { throw fail(.attribute, "not a tensor", loc) }
        switch name {
        case "shape": return .size(t.shape)
        case "ndim": return .int(t.rank)
        case "dtype": return .str("torch.\(t.dtype.rawValue)")
        default: return .method(base, name)
        }
    }

    func requireTrace(_ what: String, _ loc: SourceLocation) throws {
        guard tracing > 0 else {
            throw fail(.runtime, "'.\(what)' can only be read inside a `with model.generate(...)` or `with model.trace(...)` block", loc)
        }
    }

    // MARK: - subscripts

    func tensorIndex(_ items: [Expr.SubscriptItem], _ loc: SourceLocation) throws -> [TensorIndex] {
        func int(_ e: Expr?) throws -> Int? {
            guard let e else { return nil }
            switch try resolved(try eval(e), e.location) {
            case let .int(i): return i
            case .none: return nil
            case let .tensor(t) where t.count == 1 && t.dtype == .int64: return t.ints[0]
            default: throw fail(.type, "slice indices must be integers or None", e.location)
            }
        }
        return try items.map { item in
            switch item {
            case let .slice(a, b, c): return .slice(try int(a), try int(b), step: try int(c))
            case let .index(e):
                if case .ellipsis = e.kind { return .ellipsis }
                if case .none = e.kind { return .newAxis }
                guard let i = try int(e) else { return .newAxis }
                return .at(i)
            }
        }
    }

    func subscriptValue(_ base: PyValue, _ items: [Expr.SubscriptItem], _ loc: SourceLocation) throws -> PyValue {
        let value = try resolved(base, loc)
        switch value {
        case let .proxy(p): return .proxy(p.index(try tensorIndex(items, loc)))
        case let .tensor(t):
            do { return .tensor(try t.indexed(try tensorIndex(items, loc).map(\.item))) }
            catch let error as OpError { throw fail(.index, error.description, loc) }
        case .object(.layers):
            guard items.count == 1, case let .index(e) = items[0], case let .int(i) = try eval(e) else {
                throw fail(.type, "model.transformer.h takes one integer index", loc)
            }
            guard i >= -model.transformer.h.count, i < model.transformer.h.count else {
                throw fail(.index, "transformer.h[\(i)]: index out of range for \(model.transformer.h.count) layers", loc)
            }
            return .object(.block(model.transformer.h[i]))
        case let .object(.stepIndexer(tracer)):
            guard items.count == 1 else { throw fail(.type, "tracer.iter takes one index", loc) }
            switch items[0] {
            case let .slice(a, b, c):
                func int(_ e: Expr?) throws -> Int? {
                    guard let e else { return nil }
                    guard case let .int(i) = try eval(e) else { throw fail(.type, "step bounds must be integers", e.location) }
                    return i
                }
                let (start, stop, step) = (try int(a) ?? 0, try int(b), try int(c) ?? 1)
                guard step > 0 else { throw fail(.value, "step must be positive", loc) }
                if let stop { return .steps(tracer.iter[Array(Swift.stride(from: start, to: stop, by: step))]) }
                return .steps(tracer.iter[Array(Swift.stride(from: start, to: max(start, tracer.maxNewTokens), by: step))])
            case let .index(e):
                switch try eval(e) {
                case let .int(i): return .steps(tracer.iter[i])
                case let .list(l):
                    return .steps(tracer.iter[try l.items.map { v -> Int in
                        guard case let .int(i) = v else { throw fail(.type, "step lists hold integers", e.location) }
                        return i
                    }])
                default: throw fail(.type, "tracer.iter takes a slice, an int or a list of ints", e.location)
                }
            }
        case let .list(l): return try sequenceIndex(l.items, items, loc, wrap: { .list(PyList($0)) })
        case let .tuple(t): return try sequenceIndex(t, items, loc, wrap: { .tuple($0) })
        case let .size(d): return try sequenceIndex(d.map { .int($0) }, items, loc, wrap: { .tuple($0) })
        case let .str(s): return try sequenceIndex(s.map { .str(String($0)) }, items, loc, wrap: { .str($0.map { if case let .str(c) = $0 { c } else { "" } }.joined()) })
        case let .dict(d):
            guard items.count == 1, case let .index(e) = items[0], case let .str(key) = try eval(e) else {
                throw fail(.type, "dict keys are strings", loc)
            }
            guard let v = d.first(where: { $0.0 == key })?.1 else { throw fail(.key, Repr.string(key), loc) }
            return v
        default:
            throw fail(.type, "'\(value.typeName)' object is not subscriptable", loc)
        }
    }

    func sequenceIndex(_ items: [PyValue], _ index: [Expr.SubscriptItem], _ loc: SourceLocation,
                       wrap: ([PyValue]) -> PyValue) throws -> PyValue {
        guard index.count == 1 else { throw fail(.type, "sequence indices must be integers or slices, not tuple", loc) }
        let n = items.count
        switch try tensorIndex(index, loc)[0] {
        case let .at(i):
            let k = i < 0 ? i + n : i
            guard k >= 0, k < n else { throw fail(.index, "index \(i) out of range", loc) }
            return items[k]
        case let .slice(a, b, step):
            func clamp(_ v: Int?, _ d: Int) -> Int { v.map { min(max($0 < 0 ? $0 + n : $0, 0), n) } ?? d }
            let (lo, hi, st) = (clamp(a, 0), clamp(b, n), step ?? 1)
            guard st > 0 else { throw fail(.unsupported, "negative slice steps are not supported", loc) }
            return wrap(lo < hi ? Swift.stride(from: lo, to: hi, by: st).map { items[$0] } : [])
        default: throw fail(.type, "unsupported index", loc)
        }
    }

    // MARK: - operators

    func number(_ v: PyValue) -> Double? {
        switch v {
        case let .int(i): Double(i)
        case let .float(f): f
        case let .bool(b): b ? 1 : 0
        default: nil
        }
    }

    func binary(_ op: String, _ a0: PyValue, _ b0: PyValue, _ loc: SourceLocation) throws -> PyValue {
        let a = try resolved(a0, loc), b = try resolved(b0, loc)
        // Traced values record an op; tensors compute now.
        if case .proxy = a {} else if case .proxy = b {} else if case .tensor = a {} else if case .tensor = b {} else {
            return try plainBinary(op, a, b, loc)
        }
        let kind: (Kernels.Binary, String)
        switch op {
        case "+": kind = (.add, "+")
        case "-": kind = (.sub, "-")
        case "*": kind = (.mul, "*")
        case "/": kind = (.div, "/")
        default: throw fail(.unsupported, "operator \(op) on tensors is not supported", loc)
        }
        switch (a, b) {
        case let (.proxy(p), .proxy(q)): return .proxy(traced(kind.0, p, q))
        case let (.proxy(p), other):
            guard let x = constant(other) else { throw fail(.type, "cannot combine a traced value with \(other.typeName)", loc) }
            return .proxy(traced(kind.0, p, x))
        case let (other, .proxy(q)):
            guard let x = constant(other) else { throw fail(.type, "cannot combine \(other.typeName) with a traced value", loc) }
            return .proxy(traced(kind.0, x, q))
        default:
            func tensor(_ v: PyValue) throws -> Tensor {
                if case let .tensor(t) = v { return t }
                if let c = constant(v)?.literal { return c }
                throw fail(.type, "unsupported operand type for \(op): '\(v.typeName)'", loc)
            }
            do { return .tensor(try Kernels.binary(kind.0, try tensor(a), try tensor(b))) }
            catch let error as OpError { throw fail(.runtime, error.description, loc) }
        }
    }

    /// A Python number as a graph constant: int stays int64, float is float32 (torch's scalars).
    func constant(_ v: PyValue) -> TraceValue? {
        switch v {
        case let .int(i): .constant(i)
        case let .bool(b): .constant(b ? 1 : 0)
        case let .float(f): .constant(f)
        default: nil
        }
    }

    func traced(_ op: Kernels.Binary, _ a: TraceValue, _ b: TraceValue) -> TraceValue {
        switch op {
        case .add: a + b
        case .sub: a - b
        case .mul: a * b
        case .div: a / b
        }
    }

    func plainBinary(_ op: String, _ a: PyValue, _ b: PyValue, _ loc: SourceLocation) throws -> PyValue {
        switch (op, a, b) {
        case let ("+", .str(x), .str(y)): return .str(x + y)
        case let ("+", .list(x), .list(y)): return .list(PyList(x.items + y.items))
        case let ("+", .tuple(x), .tuple(y)): return .tuple(x + y)
        case let ("*", .str(x), .int(n)): return .str(String(repeating: x, count: max(0, n)))
        case let ("*", .list(x), .int(n)): return .list(PyList(Array([[PyValue]](repeating: x.items, count: max(0, n)).joined())))
        case let ("%", .str(x), _): return .str(x)  // old-style formatting is not supported beyond identity
        default: break
        }
        if case let .int(x) = a, case let .int(y) = b {
            switch op {
            case "+": return .int(x + y)
            case "-": return .int(x - y)
            case "*": return .int(x * y)
            case "/": return .float(Double(x) / Double(y))
            case "//":
                guard y != 0 else { throw fail(.value, "integer division by zero", loc) }
                return .int(Int((Double(x) / Double(y)).rounded(.down)))
            case "%":
                guard y != 0 else { throw fail(.value, "integer modulo by zero", loc) }
                return .int(((x % y) + y) % y)
            case "**": return y >= 0 ? .int(Int(pow(Double(x), Double(y)))) : .float(pow(Double(x), Double(y)))
            default: break
            }
        }
        guard let x = number(a), let y = number(b) else {
            throw fail(.type, "unsupported operand type(s) for \(op): '\(a.typeName)' and '\(b.typeName)'", loc)
        }
        switch op {
        case "+": return .float(x + y)
        case "-": return .float(x - y)
        case "*": return .float(x * y)
        case "/":
            guard y != 0 else { throw fail(.value, "float division by zero", loc) }
            return .float(x / y)
        case "//": return .float((x / y).rounded(.down))
        case "%": return .float(x - y * (x / y).rounded(.down))
        case "**": return .float(pow(x, y))
        default: throw fail(.unsupported, "operator \(op) is not supported", loc)
        }
    }

    func compare(_ op: String, _ a0: PyValue, _ b0: PyValue, _ loc: SourceLocation) throws -> Bool {
        let a = try resolved(a0, loc), b = try resolved(b0, loc)
        if case .proxy = a { throw fail(.unsupported, "comparisons of traced values are not supported while recording", loc) }
        switch op {
        case "in", "not in":
            let found = try iterate(b, loc).contains { (try? equal(a, $0)) ?? false }
            return op == "in" ? found : !found
        case "is": return try equal(a, b) && isNoneOrBool(a)
        case "is not": return !(try equal(a, b) && isNoneOrBool(a))
        case "==": return try equal(a, b)
        case "!=": return !(try equal(a, b))
        default: break
        }
        if case let .str(x) = a, case let .str(y) = b {
            switch op { case "<": return x < y; case "<=": return x <= y; case ">": return x > y; default: return x >= y }
        }
        func scalar(_ v: PyValue) -> Double? {
            if case let .tensor(t) = v, t.count == 1 { return t.doubles[0] }
            return number(v)
        }
        guard let x = scalar(a), let y = scalar(b) else {
            throw fail(.type, "'\(op)' not supported between instances of '\(a.typeName)' and '\(b.typeName)'", loc)
        }
        switch op { case "<": return x < y; case "<=": return x <= y; case ">": return x > y; default: return x >= y }
    }

    func isNoneOrBool(_ v: PyValue) -> Bool {
        switch v { case .none, .bool: true; default: false }
    }

    func equal(_ a: PyValue, _ b: PyValue) throws -> Bool {
        switch (a, b) {
        case (.none, .none): return true
        case let (.str(x), .str(y)): return x == y
        case let (.list(x), .list(y)): return try x.items.count == y.items.count && zip(x.items, y.items).allSatisfy { try equal($0, $1) }
        case let (.tuple(x), .tuple(y)): return try x.count == y.count && zip(x, y).allSatisfy { try equal($0, $1) }
        case let (.size(x), .size(y)): return x == y
        case let (.size(x), .tuple(y)), let (.tuple(y), .size(x)):
            return x.count == y.count && zip(x, y).allSatisfy { if case let .int(i) = $1 { i == $0 } else { false } }
        case let (.tensor(t), other), let (other, .tensor(t)):
            guard t.count == 1, let x = number(other) else { return false }
            return t.doubles[0] == x
        default:
            if let x = number(a), let y = number(b) { return x == y }
            return false
        }
    }

    // MARK: - repr

    func repr(_ v0: PyValue, _ loc: SourceLocation) throws -> String {
        let v = try resolved(v0, loc)
        switch v {
        case .none: return "None"
        case let .bool(b): return b ? "True" : "False"
        case let .int(i): return String(i)
        case let .float(f): return Repr.float(f)
        case let .str(s): return Repr.string(s)
        case let .list(l): return "[" + (try l.items.map { try repr($0, loc) }).joined(separator: ", ") + "]"
        case let .tuple(t):
            let inner = try t.map { try repr($0, loc) }
            return "(" + inner.joined(separator: ", ") + (t.count == 1 ? ",)" : ")")
        case let .dict(d): return "{" + (try d.map { Repr.string($0.0) + ": " + (try repr($0.1, loc)) }).joined(separator: ", ") + "}"
        case let .tensor(t): return Repr.tensor(t)
        case let .size(d): return "torch.Size([" + d.map(String.init).joined(separator: ", ") + "])"
        case let .range(a, b, s): return s == 1 ? "range(\(a), \(b))" : "range(\(a), \(b), \(s))"
        case .proxy: return "InterventionProxy(traced value)"
        case .object(.model): return "LanguageModel(GPT2LMHeadModel)"
        case .object: return "<Envoy>"
        case .steps: return "<iterator>"
        case let .builtin(n): return "<built-in function \(n)>"
        case let .method(_, n): return "<bound method \(n)>"
        case let .unsaved(n): return "<unsaved \(n)>"
        case .saved: return "<saved>"
        }
    }

    func str(_ v0: PyValue, _ loc: SourceLocation) throws -> String {
        let v = try resolved(v0, loc)
        if case let .str(s) = v { return s }
        return try repr(v, loc)
    }
}

