import Coordinator
import Foundation
import Graph

extension ScriptRunner {
    func builtin(_ name: String, _ args: [PyValue], _ kwargs: [String: PyValue], _ loc: SourceLocation) throws -> PyValue {
        func expectKeywords(_ allowed: Set<String>, _ what: String) throws {
            if let bad = kwargs.keys.sorted().first(where: { !allowed.contains($0) }) {
                throw fail(.type, "\(what)() got an unexpected keyword argument '\(bad)'", loc)
            }
        }
        func one() throws -> PyValue {
            guard args.count == 1 else { throw fail(.type, "\(name)() takes exactly one argument (\(args.count) given)", loc) }
            return try resolved(args[0], loc)
        }
        switch name {
        case "print":
            try expectKeywords(["sep", "end", "flush", "file"], name)
            let printNow = { [unowned self] () throws -> Void in
                let sep = try kwargs["sep"].map { try str($0, loc) } ?? " "
                let end = try kwargs["end"].map { try str($0, loc) } ?? "\n"
                write(try args.map { try str($0, loc) }.joined(separator: sep) + end)
            }
            if tracing > 0, !resolving { try clientPrint(args, kwargs, loc, printNow) } else { try printNow() }
            return .none
        case "len":
            let v = try one()
            switch v {
            case let .list(l): return .int(l.items.count)
            case let .tuple(t): return .int(t.count)
            case let .str(s): return .int(s.count)
            case let .dict(d): return .int(d.entries.count)
            case let .size(d): return .int(d.count)
            case let .object(.cache(cache, nil, _)): return .int(cache.keys.count)
            case .object(.layers): return .int(model.transformer.h.count)
            case let .range(a, b, s): return .int(Self.rangeCount(a, b, s))
            case let .tensor(t, _):
                guard let n = t.shape.first else { throw fail(.type, "len() of a 0-d tensor", loc) }
                return .int(n)
            case let .proxy(p):
                if p.isTupleValue, case let .tuple(items)? = p.type { return .int(items.count) }
                guard let shape = p.shape else { throw fail(.unsupported, "the length of this value is known only after the trace", loc) }
                guard let n = shape.first else { throw fail(.type, "len() of a 0-d tensor", loc) }
                return .int(n)
            case .deferred:
                return deferred([v]) { [unowned self] in try builtin(name, args, kwargs, loc) }
            case let v: throw fail(.type, "object of type '\(v.typeName)' has no len()", loc)
            }
        case "range":
            try expectKeywords([], name)
            let ints = try args.map { v -> Int in
                switch try resolved(v, loc) {
                case let .int(i): return i
                case .proxy, .deferred:
                    throw fail(.unsupported, "range() of a traced value: the loop's length would depend on a value that exists only while the model runs. Loop over a static bound (x.shape[d], max_new_tokens) and guard the body with if", loc)
                default: throw fail(.type, "range() takes integers", loc)
                }
            }
            switch ints.count {
            case 1: return .range(0, ints[0], 1)
            case 2: return .range(ints[0], ints[1], 1)
            case 3:
                guard ints[2] != 0 else { throw fail(.value, "range() arg 3 must not be zero", loc) }
                return .range(ints[0], ints[1], ints[2])
            default: throw fail(.type, "range expected 1 to 3 arguments, got \(ints.count)", loc)
            }
        case "enumerate":
            try expectKeywords(["start"], name)
            let start = try kwargs["start"].map { v -> Int in if case let .int(i) = v { return i }; throw fail(.type, "start must be an int", loc) } ?? 0
            return .list(PyList(try iterate(try one(), loc).enumerated().map { .tuple([.int($0.offset + start), $0.element]) }))
        case "zip":
            let lists = try args.map { try iterate($0, loc) }
            let n = lists.map(\.count).min() ?? 0
            return .list(PyList((0..<n).map { i in .tuple(lists.map { $0[i] }) }))
        case "map", "filter":
            guard args.count >= 2 else { throw fail(.type, "\(name)() takes a function and an iterable", loc) }
            let items = try iterate(args[1], loc)
            if name == "map" {
                let others = try args.dropFirst(2).map { try iterate($0, loc) }
                return .list(PyList(try items.enumerated().map { i, v in try call(args[0], [v] + others.map { $0[i] }, [:], loc) }))
            }
            return .list(PyList(try items.filter { v in
                if case .none = args[0] { return try truth(v, loc) }
                return try truth(try call(args[0], [v], [:], loc), loc)
            }))
        case "list":
            if args.isEmpty { return .list(PyList()) }
            return .list(PyList(try iterate(try one(), loc)))
        case "tuple":
            if args.isEmpty { return .tuple([]) }
            return .tuple(try iterate(try one(), loc))
        case "set":
            var seen: [PyValue] = []
            for v in args.isEmpty ? [] : try iterate(try one(), loc) where !(try seen.contains { try equal($0, v) }) { seen.append(v) }
            return .list(PyList(seen))
        case "dict":
            let d = PyDict()
            if let first = args.first {
                if case let .dict(other) = try resolved(first, loc) { d.entries = other.entries } else {
                    for pair in try iterate(first, loc) {
                        let kv = try iterate(pair, loc)
                        guard kv.count == 2 else { throw fail(.value, "dictionary update sequence element has length \(kv.count); 2 is required", loc) }
                        d[kv[0]] = kv[1]
                    }
                }
            }
            for (k, v) in kwargs { d[.str(k)] = v }
            return .dict(d)
        case "str": return .str(args.isEmpty ? "" : try str(try one(), loc))
        case "repr": return .str(try repr(try one(), loc))
        case "type":
            let v = try one()
            if v.typeName == "Tensor" { return .object(.namespace("torch.Tensor")) }
            if case .object(.modelOutput) = v { return .object(.namespace("class:transformers.modeling_outputs.CausalLMOutputWithCrossAttentions")) }
            return .builtin(v.typeName)
        case "int":
            switch try one() {
            case let .int(i): return .int(i)
            case let .float(f):
                return .int(try integer(f, loc))
            case let .bool(b): return .int(b ? 1 : 0)
            case let .str(s):
                guard let i = Int(s.trimmingCharacters(in: .whitespaces)) else { throw fail(.value, "invalid literal for int() with base 10: \(Repr.string(s))", loc) }
                return .int(i)
            case let .tensor(t, _) where t.count == 1: return .int(try integer(t.doubles[0], loc))
            case let .proxy(p): return deferred([.proxy(p)], graph: { p }) { [unowned self] in try builtin(name, args, kwargs, loc) }
            case let v: throw fail(.type, "int() argument must be a string, a bytes-like object or a real number, not '\(v.typeName)'", loc)
            }
        case "float":
            switch try one() {
            case let .str(s):
                let t = s.trimmingCharacters(in: .whitespaces).lowercased()
                if ["inf", "+inf", "infinity"].contains(t) { return .float(.infinity) }
                if ["-inf", "-infinity"].contains(t) { return .float(-.infinity) }
                if t == "nan" { return .float(.nan) }
                guard let f = Double(t) else { throw fail(.value, "could not convert string to float: \(Repr.string(s))", loc) }
                return .float(f)
            case let .tensor(t, _) where t.count == 1: return .float(t.doubles[0])
            case let .proxy(p): return deferred([.proxy(p)], graph: { p }) { [unowned self] in try builtin(name, args, kwargs, loc) }
            case let v:
                guard let f = number(v) else { throw fail(.type, "float() argument must be a string or a real number, not '\(v.typeName)'", loc) }
                return .float(f)
            }
        case "bool":
            if args.isEmpty { return .bool(false) }
            if case let .proxy(p) = try one() { return deferred([.proxy(p)], graph: { p }) { [unowned self] in try builtin(name, args, kwargs, loc) } }
            return .bool(try truth(try one(), loc))
        case "abs":
            switch try one() {
            case let .int(i):
                guard i != .min else { throw fail(.overflow, "abs(\(i)) does not fit a 64-bit int (trace scripts' ints are 64-bit)", loc) }
                return .int(Swift.abs(i))
            case let .bool(b): return .int(b ? 1 : 0)
            case .tensor, .proxy: return try torchOp("abs", [try one()], Attributes(), loc)
            case let v:
                guard let f = number(v) else { throw fail(.type, "bad operand type for abs(): '\(v.typeName)'", loc) }
                return .float(Swift.abs(f))
            }
        case "min", "max":
            try expectKeywords(["key", "default"], name)
            let items = args.count == 1 ? try iterate(args[0], loc) : args
            guard var best = items.first else {
                if let d = kwargs["default"] { return d }
                throw fail(.value, "\(name)() arg is an empty sequence", loc)
            }
            func key(_ v: PyValue) throws -> PyValue { try kwargs["key"].map { try call($0, [v], [:], loc) } ?? v }
            var bestKey = try key(best)
            for item in items.dropFirst() {
                let k = try key(item)
                if try compare(name == "min" ? "<" : ">", try resolved(k, loc), try resolved(bestKey, loc), loc) { best = item; bestKey = k }
            }
            return best
        case "sum":
            try expectKeywords(["start"], name)
            let items = try iterate(try resolved(args.first ?? .list(PyList()), loc), loc)
            return try items.reduce(kwargs["start"] ?? (args.count > 1 ? args[1] : PyValue.int(0))) { try binary("+", $0, $1, loc) }
        case "any", "all":
            let items = try iterate(try one(), loc)
            return .bool(name == "any" ? try items.contains { try truth($0, loc) } : try items.allSatisfy { try truth($0, loc) })
        case "round":
            guard let x = number(try resolved(args.first ?? .none, loc)) else {
                if case let .tensor(t, _) = try resolved(args.first ?? .none, loc), t.count == 1 { return .float(t.doubles[0].rounded(.toNearestOrEven)) }
                throw fail(.type, "type \((args.first ?? .none).typeName) doesn't define __round__ method", loc)
            }
            if args.count > 1, case let .int(n) = try resolved(args[1], loc) {
                return .float(Self.round(x, digits: n))
            }
            if case let .int(i) = try resolved(args[0], loc) { return .int(i) }
            return .int(try integer(x.rounded(.toNearestOrEven), loc))
        case "sorted":
            try expectKeywords(["key", "reverse"], name)
            let items = try iterate(try one(), loc)
            func key(_ v: PyValue) throws -> PyValue { try resolved(try kwargs["key"].map { try call($0, [v], [:], loc) } ?? v, loc) }
            let keyed = try items.map { ($0, try key($0)) }
            // Python's sort is stable, also reversed.
            let reverse = try kwargs["reverse"].map { try truth($0, loc) } ?? false
            let order = try keyed.indices.sorted { a, b in
                let less = try compare("<", keyed[a].1, keyed[b].1, loc), greater = try compare("<", keyed[b].1, keyed[a].1, loc)
                if reverse { return greater || (!less && a < b) }
                return less || (!greater && a < b)
            }
            return .list(PyList(order.map { keyed[$0].0 }))
        case "reversed":
            return .list(PyList(try iterate(try one(), loc).reversed()))
        case "isinstance":
            guard args.count == 2 else { throw fail(.type, "isinstance expected 2 arguments, got \(args.count)", loc) }
            let types: [PyValue] = { if case let .tuple(t) = args[1] { return t } else { return [args[1]] } }()
            return .bool(try types.contains { try isInstance(args[0], of: $0, loc) })
        case "LanguageModel":
            // The preamble of nnsight's docs: the checkpoint was chosen before the script ran
            // (--model, or this name resolved by `nnsight run`); device and dispatch are moot.
            try expectKeywords(["device_map", "dispatch", "torch_dtype", "dtype", "trust_remote_code", "revision", "attn_implementation"], name)
            guard case .str? = args.first, args.count == 1 else { throw fail(.type, "LanguageModel() takes the model's name or directory", loc) }
            return .object(.model)
        case "dir":
            let names = args.isEmpty ? Array((locals.last.map { Array($0.keys) } ?? Array(globals.keys))) : []
            return .list(PyList(names.sorted().map { .str($0) }))
        case "torch.Size":
            return .size(args.isEmpty ? [] : try Arguments(function: "Size", positional: args, keywords: [:], runner: self, loc: loc).sequence(args[0]))
        default:
            throw fail(.name, "name '\(name)' is not defined", loc)
        }
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
