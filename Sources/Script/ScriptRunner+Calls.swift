import Coordinator
import Engine
import Foundation
import Graph

enum Builtins {
    static let names: Set<String> = ["print", "len", "range", "enumerate", "zip", "list", "tuple", "str", "int", "float",
                                     "bool", "abs", "min", "max", "sum", "round", "sorted", "reversed", "isinstance", "dict", "repr"]
}

extension ScriptRunner {
    func call(_ f: PyValue, _ args: [PyValue], _ kwargs: [String: PyValue], _ loc: SourceLocation) throws -> PyValue {
        func expectKeywords(_ allowed: Set<String>, _ what: String) throws {
            if let bad = kwargs.keys.sorted().first(where: { !allowed.contains($0) }) {
                throw fail(.type, "\(what)() got an unexpected keyword argument '\(bad)'", loc)
            }
        }
        func intArg(_ v: PyValue?, _ name: String) throws -> Int? {
            guard let v else { return nil }
            switch try resolved(v, loc) {
            case let .int(i): return i
            case .none: return nil
            default: throw fail(.type, "\(name) must be an integer", loc)
            }
        }
        switch f {
        case .object(.tokenizer):
            try expectKeywords(["return_tensors", "padding"], "tokenizer")
            guard case let .str(text)? = args.first else { throw fail(.type, "model.tokenizer(...) takes a string", loc) }
            let ids = model.tokenizer.encode(text)
            return .dict([("input_ids", .list(PyList(ids.map { .int($0) }))),
                          ("attention_mask", .list(PyList(ids.map { _ in .int(1) })))])
        case let .builtin(name):
            return try builtin(name, args, kwargs, loc, expectKeywords)
        case let .method(base, name):
            switch (base, name) {
            case (.object(.model), "generate"), (.object(.model), "trace"):
                try expectKeywords(["max_new_tokens", "do_sample", "temperature", "top_k", "top_p", "seed", "remote", "scan", "validate"], name)
                guard tracing == 0 else { throw fail(.unsupported, "nested traces are not supported", loc) }
                var prompt: String?
                if let first = args.first {
                    guard case let .str(s) = first else { throw fail(.type, "the prompt must be a string", loc) }
                    prompt = s
                }
                guard args.count <= 1 else { throw fail(.unsupported, "one prompt per call; use tracer.invoke(...) for a batch", loc) }
                if name == "trace" { return .object(.traceContext(prompt: prompt)) }
                let maxNew = try intArg(kwargs["max_new_tokens"], "max_new_tokens") ?? 20
                guard maxNew >= 1 else { throw fail(.value, "max_new_tokens must be at least 1", loc) }
                var sampling = SamplingParameters()
                if case .bool(true)? = kwargs["do_sample"] {
                    sampling.temperature = Float(number(kwargs["temperature"] ?? .float(1)) ?? 1)
                    sampling.topK = try intArg(kwargs["top_k"], "top_k") ?? 0
                    sampling.topP = Float(number(kwargs["top_p"] ?? .float(1)) ?? 1)
                    sampling.seed = UInt64(try intArg(kwargs["seed"], "seed") ?? 0)
                }
                return .object(.generateContext(prompt: prompt, maxNewTokens: maxNew, sampling: sampling))
            case let (.object(.tracer(t)), "all"):
                try expectKeywords([], name)
                return .steps(t.all())
            case let (.object(.tracer(t)), "next"):
                try expectKeywords([], name)
                t.next()
                return .none
            case let (.object(.tracer(t)), "invoke"):
                try expectKeywords([], name)
                if let first = args.first {
                    guard case let .str(s) = first else { throw fail(.type, "invoke takes a prompt string", loc) }
                    return .object(.invokeContext(t, prompt: s))
                }
                return .object(.invokeContext(t, prompt: nil))
            case (.object(.tokenizer), "decode"):
                try expectKeywords(["skip_special_tokens"], name)
                guard let arg = args.first else { throw fail(.type, "decode() missing the token ids", loc) }
                return .str(model.tokenizer.decode(try ids(arg, loc)))
            case (.object(.tokenizer), "encode"):
                try expectKeywords(["add_special_tokens"], name)
                guard case let .str(s)? = args.first else { throw fail(.type, "encode() takes a string", loc) }
                return .list(PyList(model.tokenizer.encode(s).map { .int($0) }))
            case let (.list(list), "append"):
                guard args.count == 1 else { throw fail(.type, "append() takes exactly one argument", loc) }
                list.items.append(try appendable(args[0], loc))
                return .none
            case let (.list(list), "save"):
                list.saved = true
                return base
            case (.int, "save"), (.float, "save"), (.bool, "save"), (.tuple, "save"), (.str, "save"):
                return base
            case let (.proxy(p), _), let (.saved(_, p), _):
                if tracing > 0 || { if case .proxy = base { return true } else { return false } }() {
                    return try proxyMethod(p, name, args, kwargs, loc, expectKeywords)
                }
                return try tensorMethod(try resolved(base, loc), name, args, kwargs, loc, expectKeywords)
            case (.tensor, _):
                return try tensorMethod(base, name, args, kwargs, loc, expectKeywords)
            case let (.str(s), "join"):
                return .str(try iterate(args.first ?? .list(PyList()), loc).map { try str($0, loc) }.joined(separator: s))
            case let (.str(s), "strip"): return .str(s.trimmingCharacters(in: .whitespacesAndNewlines))
            case let (.str(s), "upper"): return .str(s.uppercased())
            case let (.str(s), "lower"): return .str(s.lowercased())
            case let (.str(s), "split"):
                return .list(PyList(s.split(whereSeparator: { $0.isWhitespace }).map { .str(String($0)) }))
            case let (.dict(d), "keys"): return .list(PyList(d.map { .str($0.0) }))
            case let (.dict(d), "values"): return .list(PyList(d.map(\.1)))
            case let (.dict(d), "items"): return .list(PyList(d.map { .tuple([.str($0.0), $0.1]) }))
            default:
                throw fail(.attribute, "'\(base.typeName)' object has no method '\(name)'", loc)
            }
        default:
            throw fail(.type, "'\(f.typeName)' object is not callable", loc)
        }
    }

    /// Inside a trace, appending a traced value saves it (nnsight's saved list).
    func appendable(_ v: PyValue, _ loc: SourceLocation) throws -> PyValue {
        switch v {
        case let .proxy(p): return .saved(p.save(), p)
        default: return v
        }
    }

    func ids(_ v: PyValue, _ loc: SourceLocation) throws -> [Int] {
        switch try resolved(v, loc) {
        case let .int(i): return [i]
        case let .tensor(t): return t.ints
        case let .list(l): return try l.items.flatMap { try ids($0, loc) }
        case let .tuple(t): return try t.flatMap { try ids($0, loc) }
        default: throw fail(.type, "token ids must be ints, a list of ints or a tensor", loc)
        }
    }

    func dimArgument(_ args: [PyValue], _ kwargs: [String: PyValue], _ loc: SourceLocation) throws -> Int? {
        guard let v = kwargs["dim"] ?? args.first else { return nil }
        switch v {
        case let .int(i): return i
        case .none: return nil
        default: throw fail(.type, "dim must be an integer", loc)
        }
    }

    func proxyMethod(_ p: TraceValue, _ name: String, _ args: [PyValue], _ kwargs: [String: PyValue], _ loc: SourceLocation,
                     _ expectKeywords: (Set<String>, String) throws -> Void) throws -> PyValue {
        let keepdim: Bool = { if case .bool(true)? = kwargs["keepdim"] { true } else { false } }()
        switch name {
        case "save":
            try expectKeywords([], name)
            return .saved(p.save(), p)
        case "argmax": try expectKeywords(["dim", "keepdim"], name); return .proxy(p.argmax(dim: try dimArgument(args, kwargs, loc), keepdim: keepdim))
        case "softmax":
            try expectKeywords(["dim"], name)
            guard let dim = try dimArgument(args, kwargs, loc) else { throw fail(.type, "softmax() needs dim", loc) }
            return .proxy(p.softmax(dim: dim))
        case "sum": try expectKeywords(["dim", "keepdim"], name); return .proxy(p.sum(dim: try dimArgument(args, kwargs, loc), keepdim: keepdim))
        case "mean": try expectKeywords(["dim", "keepdim"], name); return .proxy(p.mean(dim: try dimArgument(args, kwargs, loc), keepdim: keepdim))
        case "max": try expectKeywords(["dim", "keepdim"], name); return .proxy(p.max(dim: try dimArgument(args, kwargs, loc), keepdim: keepdim))
        case "abs": try expectKeywords([], name); return .proxy(p.abs())
        case "clone": try expectKeywords([], name); return .proxy(p.clone())
        case "item", "tolist":
            throw fail(.unsupported, "\(name)() needs the value, which exists after the trace: save it and call \(name)() afterwards", loc)
        default: throw fail(.attribute, "traced values have no method '\(name)'", loc)
        }
    }

    func tensorMethod(_ v: PyValue, _ name: String, _ args: [PyValue], _ kwargs: [String: PyValue], _ loc: SourceLocation,
                      _ expectKeywords: (Set<String>, String) throws -> Void) throws -> PyValue {
        guard case let .tensor(t) = v else { throw fail(.type, "not a tensor", loc) }
        let keepdim: Bool = { if case .bool(true)? = kwargs["keepdim"] { true } else { false } }()
        do {
            switch name {
            case "tolist":
                let data = t.doubles
                func nested(_ offset: Int, _ dim: Int) -> PyValue {
                    if dim == t.rank { return t.dtype == .float32 ? .float(data[offset]) : .int(Int(data[offset])) }
                    let stride = t.shape[(dim + 1)...].reduce(1, *)
                    return .list(PyList((0..<t.shape[dim]).map { nested(offset + $0 * stride, dim + 1) }))
                }
                return nested(0, 0)
            case "item":
                guard t.count == 1 else { throw fail(.value, "a Tensor with \(t.count) elements cannot be converted to Scalar", loc) }
                return t.dtype == .float32 ? .float(t.doubles[0]) : .int(t.ints[0])
            case "argmax", "sum", "mean", "max":
                if name == "argmax" { try expectKeywords(["dim", "keepdim"], name) }
                var attributes = Attributes(["keepdim": .bool(keepdim)])
                if let dim = try dimArgument(args, kwargs, loc) { attributes["dim"] = .int(dim) }
                return .tensor(try Self.op(name, [t], attributes))
            case "softmax":
                var attributes = Attributes()
                if let dim = try dimArgument(args, kwargs, loc) { attributes["dim"] = .int(dim) }
                return .tensor(try Self.op(name, [t], attributes))
            case "abs": return .tensor(try Self.op("abs", [t]))
            case "clone", "save", "detach", "cpu": return v
            case "size":
                if let d = try dimArgument(args, kwargs, loc) { return .int(t.shape[d < 0 ? d + t.rank : d]) }
                return .size(t.shape)
            case "dim": return .int(t.rank)
            default: throw fail(.attribute, "'Tensor' object has no attribute '\(name)'", loc)
            }
        } catch let error as OpError {
            throw fail(.runtime, error.description, loc)
        }
    }

    /// An op of the graph's registry on tensors the script holds (one implementation for worker,
    /// coordinator and script); an op with several outputs gives its first, as `max(dim).values`.
    static func op(_ name: String, _ inputs: [Tensor], _ attributes: Attributes = Attributes()) throws(OpError) -> Tensor {
        guard let spec = OpRegistry.spec(name) else { throw OpError("unknown op '\(name)'") }
        switch try spec.run(inputs.map(Value.tensor), attributes) {
        case let .tensor(t): return t
        case let .tuple(items):
            guard let first = items.first, let t = first else { throw OpError("\(name) returned no tensor") }
            return t
        }
    }

    func builtin(_ name: String, _ args: [PyValue], _ kwargs: [String: PyValue], _ loc: SourceLocation,
                 _ expectKeywords: (Set<String>, String) throws -> Void) throws -> PyValue {
        func one() throws -> PyValue {
            guard args.count == 1 else { throw fail(.type, "\(name)() takes exactly one argument (\(args.count) given)", loc) }
            return try resolved(args[0], loc)
        }
        switch name {
        case "print":
            try expectKeywords(["sep", "end", "flush"], name)
            let sep = try kwargs["sep"].map { try str($0, loc) } ?? " "
            let end = try kwargs["end"].map { try str($0, loc) } ?? "\n"
            let text = try args.map { try str($0, loc) }.joined(separator: sep) + end
            stdout += text
            echo?(text)
            return .none
        case "len":
            switch try one() {
            case let .list(l): return .int(l.items.count)
            case let .tuple(t): return .int(t.count)
            case let .str(s): return .int(s.count)
            case let .dict(d): return .int(d.count)
            case let .size(d): return .int(d.count)
            case let .range(a, b, s): return .int(Swift.max(0, (b - a + s - 1) / s))
            case let .tensor(t):
                guard let n = t.shape.first else { throw fail(.type, "len() of a 0-d tensor", loc) }
                return .int(n)
            case let v: throw fail(.type, "object of type '\(v.typeName)' has no len()", loc)
            }
        case "range":
            try expectKeywords([], name)
            let ints = try args.map { v -> Int in
                guard case let .int(i) = try resolved(v, loc) else { throw fail(.type, "range() takes integers", loc) }
                return i
            }
            switch ints.count {
            case 1: return .range(0, ints[0], 1)
            case 2: return .range(ints[0], ints[1], 1)
            case 3:
                guard ints[2] > 0 else { throw fail(.unsupported, "range() with a step below 1 is not supported", loc) }
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
        case "list":
            if args.isEmpty { return .list(PyList()) }
            return .list(PyList(try iterate(try one(), loc)))
        case "tuple":
            if args.isEmpty { return .tuple([]) }
            return .tuple(try iterate(try one(), loc))
        case "dict": return .dict([])
        case "str": return .str(args.isEmpty ? "" : try str(try one(), loc))
        case "repr": return .str(try repr(try one(), loc))
        case "int":
            switch try one() {
            case let .int(i): return .int(i)
            case let .float(f): return .int(Int(f))
            case let .bool(b): return .int(b ? 1 : 0)
            case let .str(s):
                guard let i = Int(s.trimmingCharacters(in: .whitespaces)) else { throw fail(.value, "invalid literal for int(): \(Repr.string(s))", loc) }
                return .int(i)
            case let .tensor(t) where t.count == 1: return .int(t.ints[0])
            case let v: throw fail(.type, "int() argument must be a number, not '\(v.typeName)'", loc)
            }
        case "float":
            switch try one() {
            case let .str(s):
                guard let f = Double(s.trimmingCharacters(in: .whitespaces)) else { throw fail(.value, "could not convert string to float: \(Repr.string(s))", loc) }
                return .float(f)
            case let .tensor(t) where t.count == 1: return .float(t.doubles[0])
            case let v:
                guard let f = number(v) else { throw fail(.type, "float() argument must be a number, not '\(v.typeName)'", loc) }
                return .float(f)
            }
        case "bool": return .bool(try truth(try one(), loc))
        case "abs":
            switch try one() {
            case let .int(i): return .int(Swift.abs(i))
            case let .tensor(t): return .tensor(try Self.op("abs", [t]))
            case let v:
                guard let f = number(v) else { throw fail(.type, "bad operand type for abs()", loc) }
                return .float(Swift.abs(f))
            }
        case "min", "max", "sum":
            let items = args.count == 1 ? try iterate(args[0], loc) : args
            if name == "sum" {
                return try items.reduce(PyValue.int(0)) { try binary("+", $0, $1, loc) }
            }
            guard var best = items.first else { throw fail(.value, "\(name)() arg is an empty sequence", loc) }
            for item in items.dropFirst() where try compare(name == "min" ? "<" : ">", item, best, loc) { best = item }
            return best
        case "round":
            guard let x = number(try resolved(args.first ?? .none, loc)) else { throw fail(.type, "round() takes a number", loc) }
            if args.count > 1, case let .int(n) = args[1] {
                let scale = pow(10, Double(n))
                return .float((x * scale).rounded(.toNearestOrEven) / scale)
            }
            return .int(Int(x.rounded(.toNearestOrEven)))
        case "sorted":
            let items = try iterate(try one(), loc)
            return .list(PyList(try items.sorted { try compare("<", $0, $1, loc) }))
        case "reversed":
            return .list(PyList(try iterate(try one(), loc).reversed()))
        case "isinstance":
            throw fail(.unsupported, "isinstance() is not supported in trace scripts", loc)
        default:
            throw fail(.name, "name '\(name)' is not defined", loc)
        }
    }
}
