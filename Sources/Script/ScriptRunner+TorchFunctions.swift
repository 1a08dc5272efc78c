import Coordinator
import Foundation
import Graph

/// A call's arguments, read as Python binds them (position or keyword).
struct Arguments {
    let function: String
    let positional: [PyValue]
    let keywords: [String: PyValue]
    unowned let runner: ScriptRunner
    let loc: SourceLocation

    func get(_ i: Int, _ name: String) -> PyValue? {
        if let v = keywords[name] { return v }
        return i >= 0 && i < positional.count ? positional[i] : nil
    }

    func required(_ i: Int, _ name: String) throws -> PyValue {
        guard let v = get(i, name) else { throw runner.fail(.type, "\(function)() missing required argument '\(name)' (pos \(i + 1))", loc) }
        return v
    }

    func int(_ i: Int, _ name: String) throws -> Int? {
        guard let v = get(i, name) else { return nil }
        switch try runner.resolved(v, loc) {
        case let .int(x): return x
        case let .bool(b): return b ? 1 : 0
        case .none: return nil
        case let .tensor(t, _) where t.count == 1 && t.dtype != .float32: return t.ints[0]
        case .proxy, .deferred:
            throw runner.fail(.unsupported, "\(function)(): '\(name)' from a traced value would make shapes depend on the data; use a static value", loc)
        case let other: throw runner.fail(.type, "\(function)(): argument '\(name)' must be int, not \(other.typeName)", loc)
        }
    }

    func double(_ i: Int, _ name: String) throws -> Double? {
        guard let v = get(i, name) else { return nil }
        switch try runner.resolved(v, loc) {
        case let .int(x): return Double(x)
        case let .float(x): return x
        case let .bool(b): return b ? 1 : 0
        case .none: return nil
        case let .tensor(t, _) where t.count == 1: return t.doubles[0]
        case let other: throw runner.fail(.type, "\(function)(): argument '\(name)' must be a number, not \(other.typeName)", loc)
        }
    }

    func bool(_ i: Int, _ name: String, _ fallback: Bool) throws -> Bool {
        guard let v = get(i, name) else { return fallback }
        return try runner.truth(v, loc)
    }

    /// A shape: `f(2, 3)`, `f((2, 3))`, `f([2, 3])` or `f(x.shape)` from position `i` on.
    func ints(from i: Int, _ name: String) throws -> [Int] {
        if let v = keywords[name] { return try sequence(v) }
        guard i < positional.count else { return [] }
        if positional.count == i + 1, let s = try? sequence(positional[i]), !isScalar(positional[i]) { return s }
        return try positional[i...].map { v -> Int in
            guard case let .int(x) = try runner.resolved(v, loc) else { throw runner.fail(.type, "\(function)(): sizes must be ints", loc) }
            return x
        }
    }

    func isScalar(_ v: PyValue) -> Bool { if case .int = v { true } else { false } }

    func sequence(_ v: PyValue) throws -> [Int] {
        switch try runner.resolved(v, loc) {
        case let .size(s): return s
        case let .int(x): return [x]
        case .list, .tuple:
            return try runner.iterate(v, loc).map { item -> Int in
                guard case let .int(x) = try runner.resolved(item, loc) else { throw runner.fail(.type, "\(function)(): sizes must be ints", loc) }
                return x
            }
        case let other: throw runner.fail(.type, "\(function)(): expected a sequence of ints, not \(other.typeName)", loc)
        }
    }

    func dtype(_ i: Int = -1, _ name: String = "dtype") throws -> DType? {
        guard let v = get(i, name) else { return nil }
        switch v {
        case let .dtype(d): return d
        case .none: return nil
        case let .builtin(b) where b == "float": return .float32
        case let .builtin(b) where b == "int": return .int64
        case let .builtin(b) where b == "bool": return .bool
        default: throw runner.fail(.type, "\(function)(): dtype must be torch.float32, torch.int64 or torch.bool", loc)
        }
    }

    func check(_ allowed: Set<String>) throws {
        if let bad = keywords.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw runner.fail(.type, "\(function)() got an unexpected keyword argument '\(bad)'", loc)
        }
    }
}

extension ScriptRunner {

    /// `torch.name(...)`, `torch.nn.functional.name(...)`, and tensor methods (`x.name(...)`
    /// is `torch.name(x, ...)`).
    func torchFunction(_ name0: String, _ args: [PyValue], _ kwargs: [String: PyValue], _ loc: SourceLocation, method: Bool = false) throws -> PyValue {
        if let bound = try boundTorchCall(name0, args, kwargs, method: method, loc) { return bound }
        let name = name0
        let a = Arguments(function: name0, positional: args, keywords: kwargs, runner: self, loc: loc)
        func one() throws -> PyValue { try a.required(0, "input") }
        func reduceAttributes(dimIndex: Int = 1) throws -> Attributes {
            var attrs = Attributes(["keepdim": .bool(try a.bool(dimIndex + 1, "keepdim", false))])
            if let dim = try a.int(dimIndex, "dim") { attrs["dim"] = .int(dim) }
            return attrs
        }
        switch name {
        case "max", "min":
            try a.check(["input", "dim", "keepdim", "other"])
            if let other = a.get(1, "other"), !a.isScalar(other) || a.keywords["other"] != nil {
                let bigger = try torchOp(name == "max" ? "ge" : "le", [try one(), other], Attributes(), loc)
                return try torchOp("where", [bigger, try one(), other], Attributes(), loc)
            }
            return try torchOp(name, [try one()], try reduceAttributes(), loc)
        case "where":
            try a.check(["condition", "input", "other"])
            guard args.count + kwargs.count == 3 else { throw fail(.unsupported, "torch.where(condition) (the indices form) has a data-dependent shape; use torch.where(condition, a, b)", loc) }
            return try torchOp("where", [try a.required(0, "condition"), try a.required(1, "input"), try a.required(2, "other")], Attributes(), loc)
        case "einsum":
            guard case let .str(equation)? = args.first else { throw fail(.type, "einsum() takes an equation string first", loc) }
            var operands = Array(args.dropFirst())
            if operands.count == 1, case .list = operands[0] { operands = try iterate(operands[0], loc) }
            return try torchOp("einsum", operands, Attributes(["equation": .string(equation)]), loc)
        case "zeros_like", "ones_like", "full_like":
            try a.check(["input", "fill_value", "dtype"])
            let value: Double = name == "zeros_like" ? 0 : name == "ones_like" ? 1 : try a.double(1, "fill_value") ?? 0
            var attrs = Attributes(["value": .float(value)])
            if let d = try a.dtype() { attrs["dtype"] = .string(d.rawValue) }
            let out = try torchOp("full_like", [try one()], attrs, loc)
            return noGrad(out)
        case "zeros", "ones", "full", "empty":
            try a.check(["size", "fill_value", "dtype", "device", "requires_grad"])
            let shape: [Int], value: Double
            var dtype = try a.dtype() ?? .float32
            if name == "full" {
                shape = try a.sequence(try a.required(0, "size"))
                value = try a.double(1, "fill_value") ?? 0
                if case .int? = a.get(1, "fill_value"), a.keywords["dtype"] == nil { dtype = .int64 }
                if case .bool? = a.get(1, "fill_value"), a.keywords["dtype"] == nil { dtype = .bool }
            } else {
                shape = try a.ints(from: 0, "size")
                value = name == "ones" ? 1 : 0
            }
            return try torchOp("full", [], Attributes(["shape": .ints(shape), "value": .float(value), "dtype": .string(dtype.rawValue)]), loc)
        case "arange":
            try a.check(["start", "end", "step", "dtype", "device"])
            let numbers = try args.map { v -> Double in
                guard let x = number(try resolved(v, loc)) else { throw fail(.type, "arange() takes numbers", loc) }
                return x
            }
            let isFloat = args.contains { if case .float = $0 { true } else { false } }
            let (start, end, step): (Double, Double, Double) = switch numbers.count {
            case 1: (0, numbers[0], 1)
            case 2: (numbers[0], numbers[1], 1)
            default: (numbers.first ?? 0, numbers.count > 1 ? numbers[1] : (try a.double(-1, "end") ?? 0), numbers.count > 2 ? numbers[2] : 1)
            }
            let dtype = try a.dtype() ?? (isFloat ? .float32 : .int64)
            return try torchOp("arange", [], Attributes(["start": .float(start), "end": .float(end), "step": .float(step), "dtype": .string(dtype.rawValue)]), loc)
        case "tensor", "as_tensor":
            try a.check(["data", "dtype", "device", "requires_grad"])
            let data = try a.required(0, "data")
            if case .proxy = try resolved(data, loc) { return data }
            return .tensor(try tensorLiteral(data, dtype: try a.dtype(), loc))
        case "manual_seed", "seed":
            guard let seed = try a.int(0, "seed") else { throw fail(.type, "manual_seed() takes an int", loc) }
            random.reseed(UInt64(bitPattern: Int64(seed)))
            return .none
        case "randn", "rand":
            try a.check(["size", "dtype", "device", "generator", "requires_grad"])
            let shape = try a.ints(from: 0, "size")
            let count = shape.reduce(1, *)
            guard count >= 0, count <= 1 << 24 else { throw fail(.value, "\(name)(): size \(shape) is not supported", loc) }
            return .tensor(Tensor(shape: shape, floats: name == "randn" ? random.randn(count) : random.rand(count)))
        case "randn_like", "rand_like":
            guard let shape = try? a.sequence(try attribute(try one(), "shape", loc)) else { throw fail(.type, "\(name)() takes a tensor", loc) }
            let count = shape.reduce(1, *)
            return .tensor(Tensor(shape: shape, floats: name == "randn_like" ? random.randn(count) : random.rand(count)))
        case "no_grad", "inference_mode":
            return .object(.noGrad)
        case "is_tensor":
            return .bool(isTensorLike(try resolved(try one(), loc)))
        case "numel":
            guard let shape = try? a.sequence(try attribute(try one(), "shape", loc)) else { throw fail(.type, "numel() takes a tensor", loc) }
            return .int(shape.reduce(1, *))
        default:
            throw fail(.attribute, "module 'torch' has no attribute '\(name0)' (or it is not supported in trace scripts)", loc)
        }
    }

    /// A tensor made by a factory needs no gradient.
    func noGrad(_ v: PyValue) -> PyValue {
        switch v {
        case let .proxy(p): p.gradFn = nil; return v
        case let .tensor(t, _): return .tensor(t)
        default: return v
        }
    }

    /// `x.name(...)` on a tensor or a traced value.
    func tensorMethod(_ base: PyValue, _ name: String, _ args: [PyValue], _ kwargs: [String: PyValue], _ loc: SourceLocation) throws -> PyValue {
        let a = Arguments(function: name, positional: args, keywords: kwargs, runner: self, loc: loc)
        let value = try resolved(base, loc)
        switch name {
        case "save":
            try a.check([])
            return try saveValue(base, loc)
        case "item":
            try a.check([])
            if case let .proxy(p) = value {
                if let shape = p.shape, shape.reduce(1, *) != 1 {
                    throw fail(.runtime, "a Tensor with \(shape.reduce(1, *)) elements cannot be converted to Scalar", loc)
                }
                return deferred([value], graph: { p }) { [unowned self] in try tensorMethod(value, "item", [], [:], loc) }
            }
            guard case let .tensor(t, _) = value else { throw fail(.type, "item() of \(value.typeName)", loc) }
            guard t.count == 1 else { throw fail(.runtime, "a Tensor with \(t.count) elements cannot be converted to Scalar", loc) }
            return scalar(t, 0)
        case "tolist":
            try a.check([])
            if case let .proxy(p) = value {
                guard let shape = p.shape else { return deferred([value]) { [unowned self] in try tensorMethod(value, "tolist", [], [:], loc) } }
                // The list's structure is static; its numbers arrive with the value.
                func build(_ prefix: [Int]) -> PyValue {
                    if prefix.count == shape.count {
                        return deferred([value], graph: { [unowned self] in
                            (try? subscriptProxy(p, prefix.map { .at($0) }, loc)).flatMap { if case let .proxy(q) = $0 { q } else { nil } }
                        }) { [unowned self] in
                            guard case let .tensor(t, _) = try resolved(value, loc) else { throw ClientWait() }
                            let flat = prefix.enumerated().reduce(0) { $0 + $1.element * Tensor.contiguousStrides(shape)[$1.offset] }
                            return scalar(t.contiguous(), flat)
                        }
                    }
                    return .list(PyList((0..<shape[prefix.count]).map { build(prefix + [$0]) }))
                }
                return build([])
            }
            guard case let .tensor(t, _) = value else { throw fail(.type, "tolist() of \(value.typeName)", loc) }
            let data = t.contiguous()
            func nested(_ offset: Int, _ dim: Int) -> PyValue {
                if dim == t.rank { return scalar(data, offset) }
                let stride = t.shape[(dim + 1)...].reduce(1, *)
                return .list(PyList((0..<t.shape[dim]).map { nested(offset + $0 * stride, dim + 1) }))
            }
            return nested(0, 0)
        case "size":
            let shape = try a.sequence(try attribute(base, "shape", loc))
            if let d = try a.int(0, "dim") {
                guard !shape.isEmpty else { throw fail(.index, "dimension specified as \(d) but tensor has no dimensions", loc) }
                let k = d < 0 ? d + shape.count : d
                guard k >= 0, k < shape.count else { throw fail(.index, "Dimension out of range (expected to be in range of [\(-shape.count), \(shape.count - 1)], but got \(d))", loc) }
                return .int(shape[k])
            }
            return .size(shape)
        case "dim", "ndimension": return .int(try a.sequence(try attribute(base, "shape", loc)).count)
        case "numel", "nelement": return .int(try a.sequence(try attribute(base, "shape", loc)).reduce(1, *))
        case "float", "long", "int", "bool", "double":
            let target: DType = name == "long" || name == "int" ? .int64 : name == "bool" ? .bool : .float32
            return try cast(value, to: target, loc)
        case "to", "type":
            for arg in args + kwargs.values.map({ $0 }) {
                if case let .dtype(d) = arg { return try cast(value, to: d, loc) }
                if case let .tensor(t, _) = arg { return try cast(value, to: t.dtype, loc) }
            }
            return value
        case "cpu", "cuda", "detach", "requires_grad_", "numpy":
            if name == "detach" { return noGrad(value) }
            return value
        case "contiguous":
            return permutedOf(value) ? try torchOp("clone", [value], Attributes(), loc) : value
        case "clone":
            return try torchOp("clone", [value], Attributes(), loc)
        case "type_as":
            guard case let .dtype(d) = try attribute(try a.required(0, "other"), "dtype", loc) else { return value }
            return try cast(value, to: d, loc)
        case "is_floating_point":
            guard case let .dtype(d) = try attribute(value, "dtype", loc) else { return .bool(false) }
            return .bool(d == .float32)
        default:
            return try torchFunction(name, [base] + args, kwargs, loc, method: true)
        }
    }

    func cast(_ value: PyValue, to dtype: DType, _ loc: SourceLocation) throws -> PyValue {
        if case let .dtype(current) = try attribute(value, "dtype", loc), current == dtype { return value }
        let out = try torchOp("to", [value], Attributes(["dtype": .string(dtype.rawValue)]), loc)
        return dtype == .float32 ? out : noGrad(out)
    }

    /// Element `i` of a contiguous tensor as a Python number.
    func scalar(_ t: Tensor, _ i: Int) -> PyValue {
        switch t.dtype {
        case .float32: .float(Double(t.floats[i]))
        case .int64: .int(Int(t.int64s[i]))
        case .bool: .bool(t.bools[i])
        }
    }

    /// `.save()` / `nnsight.save(x)`: traced values come back after the trace; lists, dicts
    /// and client values outlive it; plain values are themselves.
    func saveValue(_ v: PyValue, _ loc: SourceLocation) throws -> PyValue {
        switch v {
        case let .proxy(p):
            if p.isTupleValue { throw fail(.type, "a tuple output cannot be saved as a whole; save its items (e.g. output[0].save())", loc) }
            let saved = p.saved ?? p.save()
            try checkRecording(loc)
            userSaved.insert(ObjectIdentifier(p))
            return .saved(saved, p)
        case let .tensor(t, _) where tracing > 0 && !resolving:
            let (p, saved) = TraceValue.kept(t)
            p.gradFn = gradOf(v)
            userSaved.insert(ObjectIdentifier(p))
            return .saved(saved, p)
        case .int, .float, .bool, .str, .none, .tuple, .size:
            guard tracing > 0, !resolving else { return v }
            observe(needs(of: v))
            let kept = Deferred(needs: needs(of: v)) { [unowned self] in try resolved(v, loc) }
            kept.saved = true
            return .deferred(kept)
        case .saved: return v
        case let .list(l):
            // Its traced items come back with it (a list built before it was saved).
            l.saved = true
            if tracing > 0, !resolving { l.items = try l.items.map { try appendable($0, loc) } }
            observe(needs(of: v))
            return v
        case let .dict(d):
            d.saved = true
            observe(needs(of: v))
            return v
        case let .deferred(d):
            d.saved = true
            observe(d.needs)
            return v
        default: return v
        }
    }
}
