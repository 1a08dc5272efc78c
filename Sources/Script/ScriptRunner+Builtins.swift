import Coordinator
import Foundation
import Graph

/// The builtins of `Builtins.table`, one function each.
extension ScriptRunner {
    func builtin(_ name: String, _ args: [PyValue], _ kwargs: [String: PyValue], _ loc: SourceLocation) throws -> PyValue {
        guard let function = Builtins.table[name] else { throw fail(.name, "name '\(name)' is not defined", loc) }
        return try function(BuiltinCall(name: name, args: args, kwargs: kwargs, loc: loc, runner: self))
    }

    func builtinPrint(_ c: BuiltinCall) throws -> PyValue {
        try c.keywords(["sep", "end", "flush", "file"])
        let printNow = { [unowned self] () throws -> Void in
            let sep = try c.kwargs["sep"].map { try str($0, c.loc) } ?? " "
            let end = try c.kwargs["end"].map { try str($0, c.loc) } ?? "\n"
            write(try c.args.map { try str($0, c.loc) }.joined(separator: sep) + end)
        }
        if tracing > 0, !resolving { try clientPrint(c.args, c.kwargs, c.loc, printNow) } else { try printNow() }
        return .none
    }

    func builtinLen(_ c: BuiltinCall) throws -> PyValue {
        let v = try c.one()
        switch v {
        case let .list(l): return .int(l.items.count)
        case let .tuple(t): return .int(t.count)
        case let .str(s): return .int(s.count)
        case let .dict(d): return .int(d.entries.count)
        case let .size(d): return .int(d.count)
        case let .object(.cache(cache, nil, _)): return .int(cache.keys.count)
        case .object(.layers): return .int(model.transformer.h.count)
        case let .range(a, b, s): return .int(Self.rangeCount(a, b, s))
        case let .iterator(it): return .int(it.remaining.count)
        case let .tensor(t, _):
            guard let n = t.shape.first else { throw fail(.type, "len() of a 0-d tensor", c.loc) }
            return .int(n)
        case let .proxy(p):
            if p.isTupleValue, case let .tuple(items)? = p.type { return .int(items.count) }
            guard let shape = p.shape else { throw fail(.unsupported, "the length of this value is known only after the trace", c.loc) }
            guard let n = shape.first else { throw fail(.type, "len() of a 0-d tensor", c.loc) }
            return .int(n)
        case .deferred:
            return c.deferred([v])
        case let v: throw fail(.type, "object of type '\(v.typeName)' has no len()", c.loc)
        }
    }

    func builtinRange(_ c: BuiltinCall) throws -> PyValue {
        try c.keywords([])
        let ints = try c.args.map { v -> Int in
            switch try resolved(v, c.loc) {
            case let .int(i): return i
            case .proxy, .deferred:
                throw fail(.unsupported, "range() of a traced value: the loop's length would depend on a value that exists only while the model runs. Loop over a static bound (x.shape[d], max_new_tokens) and guard the body with if", c.loc)
            default: throw fail(.type, "range() takes integers", c.loc)
            }
        }
        switch ints.count {
        case 1: return .range(0, ints[0], 1)
        case 2: return .range(ints[0], ints[1], 1)
        case 3:
            guard ints[2] != 0 else { throw fail(.value, "range() arg 3 must not be zero", c.loc) }
            return .range(ints[0], ints[1], ints[2])
        default: throw fail(.type, "range expected 1 to 3 arguments, got \(ints.count)", c.loc)
        }
    }

    func builtinEnumerate(_ c: BuiltinCall) throws -> PyValue {
        try c.keywords(["start"])
        let startValue = c.kwargs["start"] ?? (c.args.count > 1 ? c.args[1] : .int(0))
        guard case let .int(start) = try resolved(startValue, c.loc) else { throw fail(.type, "'\(startValue.typeName)' object cannot be interpreted as an integer", c.loc) }
        guard let items = try c.arg(0) else { throw fail(.type, "enumerate() missing required argument 'iterable'", c.loc) }
        return .list(PyList(try iterate(items, c.loc).enumerated().map { .tuple([.int($0.offset + start), $0.element]) }))
    }

    func builtinZip(_ c: BuiltinCall) throws -> PyValue {
        try c.keywords(["strict"])
        let lists = try c.args.map { try iterate($0, c.loc) }
        let n = lists.map(\.count).min() ?? 0
        if let strict = c.kwargs["strict"], try truth(strict, c.loc), let longer = lists.firstIndex(where: { $0.count != n }) {
            // Python names the first argument that differs from the first one's length.
            let first = lists[0].count
            let k = lists.firstIndex { $0.count != first } ?? longer
            throw fail(.value, "zip() argument \(k + 1) is \(lists[k].count > first ? "longer" : "shorter") than argument\(k == 1 ? "" : "s 1-\(k)")", c.loc)
        }
        return .list(PyList((0..<n).map { i in .tuple(lists.map { $0[i] }) }))
    }

    /// `map(f, *iterables)` and `filter(f, iterable)`.
    func builtinMap(_ c: BuiltinCall) throws -> PyValue {
        let args = c.args
        guard args.count >= 2 else { throw fail(.type, "\(c.name)() takes a function and an iterable", c.loc) }
        let items = try iterate(args[1], c.loc)
        if c.name == "map" {
            let others = try args.dropFirst(2).map { try iterate($0, c.loc) }
            let n = ([items.count] + others.map(\.count)).min() ?? 0
            return .list(PyList(try (0..<n).map { i in try call(args[0], [items[i]] + others.map { $0[i] }, [:], c.loc) }))
        }
        return .list(PyList(try items.filter { v in
            if case .none = args[0] { return try truth(v, c.loc) }
            return try truth(try call(args[0], [v], [:], c.loc), c.loc)
        }))
    }

    func builtinSet(_ c: BuiltinCall) throws -> PyValue {
        var seen: [PyValue] = []
        for v in c.args.isEmpty ? [] : try iterate(try c.one(), c.loc) where !(try seen.contains { try equal($0, v) }) { seen.append(v) }
        return .list(PyList(seen))
    }

    func builtinDict(_ c: BuiltinCall) throws -> PyValue {
        let d = PyDict()
        if let first = c.args.first {
            if case let .dict(other) = try resolved(first, c.loc) { d.entries = other.entries } else {
                for pair in try iterate(first, c.loc) {
                    let kv = try iterate(pair, c.loc)
                    guard kv.count == 2 else { throw fail(.value, "dictionary update sequence element has length \(kv.count); 2 is required", c.loc) }
                    d[kv[0]] = kv[1]
                }
            }
        }
        for (k, v) in c.kwargs { d[.str(k)] = v }
        return .dict(d)
    }

    func builtinType(_ c: BuiltinCall) throws -> PyValue {
        let v = try c.one()
        if v.typeName == "Tensor" { return .object(.namespace("torch.Tensor")) }
        if case .object(.modelOutput) = v { return .object(.namespace("class:transformers.modeling_outputs.CausalLMOutputWithCrossAttentions")) }
        return .builtin(v.typeName)
    }

    func builtinInt(_ c: BuiltinCall) throws -> PyValue {
        switch try c.one() {
        case let .int(i): return .int(i)
        case let .float(f): return .int(try integer(f, c.loc))
        case let .bool(b): return .int(b ? 1 : 0)
        case let .str(s):
            guard let i = Int(s.trimmingCharacters(in: .whitespaces)) else { throw fail(.value, "invalid literal for int() with base 10: \(Repr.string(s))", c.loc) }
            return .int(i)
        case let .tensor(t, _) where t.count == 1: return .int(try integer(t.doubles[0], c.loc))
        case let .proxy(p): return c.deferred([.proxy(p)])
        case let v: throw fail(.type, "int() argument must be a string, a bytes-like object or a real number, not '\(v.typeName)'", c.loc)
        }
    }

    func builtinFloat(_ c: BuiltinCall) throws -> PyValue {
        switch try c.one() {
        case let .str(s):
            let t = s.trimmingCharacters(in: .whitespaces).lowercased()
            if ["inf", "+inf", "infinity"].contains(t) { return .float(.infinity) }
            if ["-inf", "-infinity"].contains(t) { return .float(-.infinity) }
            if t == "nan" { return .float(.nan) }
            guard let f = Double(t) else { throw fail(.value, "could not convert string to float: \(Repr.string(s))", c.loc) }
            return .float(f)
        case let .tensor(t, _) where t.count == 1: return .float(t.doubles[0])
        case let .proxy(p): return c.deferred([.proxy(p)])
        case let v:
            guard let f = number(v) else { throw fail(.type, "float() argument must be a string or a real number, not '\(v.typeName)'", c.loc) }
            return .float(f)
        }
    }

    func builtinBool(_ c: BuiltinCall) throws -> PyValue {
        if c.args.isEmpty { return .bool(false) }
        if case let .proxy(p) = try c.one() { return c.deferred([.proxy(p)]) }
        return .bool(try truth(try c.one(), c.loc))
    }

    func builtinAbs(_ c: BuiltinCall) throws -> PyValue {
        switch try c.one() {
        case let .int(i):
            guard i != .min else { throw fail(.overflow, "abs(\(i)) does not fit a 64-bit int (trace scripts' ints are 64-bit)", c.loc) }
            return .int(Swift.abs(i))
        case let .bool(b): return .int(b ? 1 : 0)
        case .tensor, .proxy: return try torchOp("abs", [try c.one()], Attributes(), c.loc)
        case let v:
            guard let f = number(v) else { throw fail(.type, "bad operand type for abs(): '\(v.typeName)'", c.loc) }
            return .float(Swift.abs(f))
        }
    }

    /// `min(...)` and `max(...)`.
    func builtinExtreme(_ c: BuiltinCall) throws -> PyValue {
        try c.keywords(["key", "default"])
        let items = c.args.count == 1 ? try iterate(c.args[0], c.loc) : c.args
        guard var best = items.first else {
            if let d = c.kwargs["default"] { return d }
            throw fail(.value, "\(c.name)() arg is an empty sequence", c.loc)
        }
        func key(_ v: PyValue) throws -> PyValue { try c.kwargs["key"].map { try call($0, [v], [:], c.loc) } ?? v }
        var bestKey = try key(best)
        for item in items.dropFirst() {
            let k = try key(item)
            if try compare(c.name == "min" ? "<" : ">", try resolved(k, c.loc), try resolved(bestKey, c.loc), c.loc) { best = item; bestKey = k }
        }
        return best
    }

    func builtinSum(_ c: BuiltinCall) throws -> PyValue {
        try c.keywords(["start"])
        let items = try iterate(try resolved(c.args.first ?? .list(PyList()), c.loc), c.loc)
        return try items.reduce(c.kwargs["start"] ?? (c.args.count > 1 ? c.args[1] : PyValue.int(0))) { try binary("+", $0, $1, c.loc) }
    }

    /// `any(...)` and `all(...)`.
    func builtinAnyAll(_ c: BuiltinCall) throws -> PyValue {
        let items = try iterate(try c.one(), c.loc)
        return .bool(c.name == "any" ? try items.contains { try truth($0, c.loc) } : try items.allSatisfy { try truth($0, c.loc) })
    }

    func builtinRound(_ c: BuiltinCall) throws -> PyValue {
        let first = try resolved(c.args.first ?? .none, c.loc)
        guard let x = number(first) else {
            if case let .tensor(t, _) = first, t.count == 1 { return .float(t.doubles[0].rounded(.toNearestOrEven)) }
            throw fail(.type, "type \((c.args.first ?? .none).typeName) doesn't define __round__ method", c.loc)
        }
        if c.args.count > 1, case let .int(n) = try resolved(c.args[1], c.loc) {
            if case let .int(i) = first { return .int(n >= 0 ? i : Int(Self.round(Double(i), digits: n))) }
            return .float(Self.round(x, digits: n))
        }
        if case let .int(i) = first { return .int(i) }
        return .int(try integer(x.rounded(.toNearestOrEven), c.loc))
    }

    func builtinSorted(_ c: BuiltinCall) throws -> PyValue {
        try c.keywords(["key", "reverse"])
        let items = try iterate(try c.one(), c.loc)
        func key(_ v: PyValue) throws -> PyValue { try resolved(try c.kwargs["key"].map { try call($0, [v], [:], c.loc) } ?? v, c.loc) }
        let keyed = try items.map { ($0, try key($0)) }
        // Python's sort is stable, also reversed.
        let reverse = try c.kwargs["reverse"].map { try truth($0, c.loc) } ?? false
        let order = try keyed.indices.sorted { a, b in
            let less = try compare("<", keyed[a].1, keyed[b].1, c.loc), greater = try compare("<", keyed[b].1, keyed[a].1, c.loc)
            if reverse { return greater || (!less && a < b) }
            return less || (!greater && a < b)
        }
        return .list(PyList(order.map { keyed[$0].0 }))
    }

    func builtinIsinstance(_ c: BuiltinCall) throws -> PyValue {
        guard c.args.count == 2 else { throw fail(.type, "isinstance expected 2 arguments, got \(c.args.count)", c.loc) }
        let types: [PyValue] = { if case let .tuple(t) = c.args[1] { return t } else { return [c.args[1]] } }()
        return .bool(try types.contains { try isInstance(c.args[0], of: $0, c.loc) })
    }

    /// `slice(stop)`, `slice(start, stop[, step])`.
    func builtinSlice(_ c: BuiltinCall) throws -> PyValue {
        try c.keywords([])
        func bound(_ v: PyValue) throws -> Int? {
            switch try resolved(v, c.loc) {
            case .none: return nil
            case let .int(i): return i
            case let other: throw fail(.type, "slice indices must be integers or None, not \(other.typeName)", c.loc)
            }
        }
        let bounds = try c.args.map(bound)
        switch bounds.count {
        case 1: return .slice(nil, bounds[0], nil)
        case 2: return .slice(bounds[0], bounds[1], nil)
        case 3:
            if bounds[2] == 0 { throw fail(.value, "slice step cannot be zero", c.loc) }
            return .slice(bounds[0], bounds[1], bounds[2])
        default: throw fail(.type, "slice expected 1 to 3 arguments, got \(bounds.count)", c.loc)
        }
    }

    /// `next(iterator[, default])`.
    func builtinNext(_ c: BuiltinCall) throws -> PyValue {
        guard let first = c.args.first, case let .iterator(it) = try resolved(first, c.loc) else {
            throw fail(.type, "'\((c.args.first ?? .none).typeName)' object is not an iterator", c.loc)
        }
        if let item = it.next() { return item }
        if c.args.count > 1 { return c.args[1] }
        throw fail(.stopIteration, "", c.loc)
    }

    func builtinDivmod(_ c: BuiltinCall) throws -> PyValue {
        guard c.args.count == 2 else { throw fail(.type, "divmod expected 2 arguments, got \(c.args.count)", c.loc) }
        return .tuple([try binary("//", c.args[0], c.args[1], c.loc), try binary("%", c.args[0], c.args[1], c.loc)])
    }

    /// `hash(x)`: equal values hash equal within the run (Python salts str hashes per process).
    func builtinHash(_ c: BuiltinCall) throws -> PyValue {
        let v = try c.one()
        switch v {
        case let .int(i): return .int(i == -1 ? -2 : i)  // CPython's small-int hash (and -1 is reserved)
        case let .bool(b): return .int(b ? 1 : 0)
        default:
            guard let key = PyDict.hashKey(v) else { throw fail(.type, "unhashable type: '\(v.typeName)'", c.loc) }
            var hasher = Hasher()
            hasher.combine(key)
            return .int(hasher.finalize())
        }
    }

    /// The preamble of nnsight's docs: the checkpoint was chosen before the script ran (--model,
    /// or this name resolved by `nnsight run`); device and dispatch are moot.
    func builtinLanguageModel(_ c: BuiltinCall) throws -> PyValue {
        try c.keywords(["device_map", "dispatch", "torch_dtype", "dtype", "trust_remote_code", "revision", "attn_implementation", "task", "rename"])
        if let rename = c.kwargs["rename"] { moduleAliases = try moduleAliases(rename, c.loc) }
        guard case .str? = c.args.first, c.args.count == 1 else { throw fail(.type, "\(c.name)() takes the model's name or directory", c.loc) }
        if c.name == "LanguageModel" {
            warn("NNsightDeprecationWarning", "LanguageModel is deprecated; use TransformersModel(repo_id, task='text-generation') instead.", c.loc)
        } else if case let .str(task)? = c.kwargs["task"], task != "text-generation" {
            throw fail(.value, "TransformersModel(task='\(task)'): this cluster serves text generation", c.loc)
        }
        return .object(.model)
    }

    /// Python's `round(x, n)`: correctly rounded from the double's exact decimal value.
    static func round(_ x: Double, digits: Int) -> Double {
        guard x.isFinite, digits < 300 else { return x }
        let text = String(format: "%.\(max(0, digits))f", x)
        if digits >= 0, let v = Double(text) { return v }
        let scale = pow(10, Double(-digits))
        return (x / scale).rounded(.toNearestOrEven) * scale
    }

    func isInstance(_ v: PyValue, of type: PyValue, _ loc: SourceLocation) throws -> Bool {
        let value = tracing > 0 && !resolving ? v : try resolved(v, loc)
        switch type {
        case let .builtin(t):
            switch (t, value) {
            case ("int", .int), ("int", .bool), ("float", .float), ("str", .str), ("bool", .bool), ("list", .list), ("tuple", .tuple),
                 ("tuple", .size), ("dict", .dict): return true
            case ("float", .deferred), ("int", .deferred): return false
            default: return false
            }
        case .object(.namespace("torch.Tensor")):
            switch value {
            case .tensor, .proxy, .saved: return true
            default: return false
            }
        case .none: throw fail(.type, "isinstance() arg 2 must be a type, a tuple of types, or a union", loc)
        default: return false
        }
    }
}
