import Coordinator
import Foundation
import Graph

/// One torch function (and tensor method) a script can call: its Python signature as torch
/// documents it (aliases beside it), how a call becomes registry ops (`lower`), and the
/// `grad_fn` torch names its result when the lowering's last op would name it otherwise.
/// Adding a function is one entry here plus its kernel in the op registry.
struct TorchBinding: Sendable {
    typealias Lower = @Sendable (BoundArguments) throws -> PyValue
    let signature: TorchSignature
    let aliases: [String]
    /// Whether `x.name(...)` calls it with `x` as its first parameter.
    let method: Bool
    let grad: String?
    let lower: Lower

    init(_ signature: String, aliases: [String] = [], method: Bool = true, grad: String? = nil, _ lower: @escaping Lower) {
        self.signature = TorchSignature(signature)
        self.aliases = aliases
        self.method = method
        self.grad = grad
        self.lower = lower
    }
}

enum TorchBindings {
    static let all: [TorchBinding] = core + reductions + binaries + analysis + losses + random

    static let byName: [String: TorchBinding] = {
        var table: [String: TorchBinding] = [:]
        for b in all { for name in [b.signature.name] + b.aliases { table[name] = b } }
        return table
    }()

    // MARK: - comparison, indexing along dims, triangles, products

    static let analysis: [TorchBinding] = [
        TorchBinding("logsumexp(input, dim, keepdim=False)", grad: "LogsumexpBackward0") { a in
            let r = a.runner, x = a["input"], dim = a["dim"]
            let m = try r.torchFunction("amax", [x], ["dim": dim, "keepdim": .bool(true)], a.loc)
            let shifted = try r.torchOp("exp", [try r.torchOp("sub", [x, m], Attributes(), a.loc)], Attributes(), a.loc)
            let summed = try r.torchFunction("sum", [shifted], ["dim": dim, "keepdim": a["keepdim"]], a.loc)
            let log = try r.torchOp("log", [summed], Attributes(), a.loc)
            let offset = try a.bool("keepdim") ? m : try r.torchFunction("squeeze", [m], ["dim": dim], a.loc)
            return try r.torchOp("add", [log, offset], Attributes(), a.loc)
        },
        TorchBinding("equal(input, other)") { a in
            try a.runner.clientBool([a["input"], a["other"]], a.loc) { x, y in
                x.shape == y.shape && zip(x.contiguous().doubles, y.contiguous().doubles).allSatisfy { $0 == $1 }
            }
        },
        TorchBinding("allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False)") { a in
            let (rtol, atol, nan) = (try a.double("rtol") ?? 1e-5, try a.double("atol") ?? 1e-8, try a.bool("equal_nan"))
            return try a.runner.clientBool([a["input"], a["other"]], a.loc) { x, y in
                guard let shape = try? Kernels.broadcastShape(x.shape, y.shape),
                      let u = try? x.expanded(to: shape).doubles, let v = try? y.expanded(to: shape).doubles else { return false }
                return zip(u, v).allSatisfy { Self.close($0, $1, rtol: rtol, atol: atol, equalNan: nan) }
            }
        },
        TorchBinding("isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False)") { a in
            // |x - y| <= atol + rtol * |y|, as registry ops (also on traced values).
            let r = a.runner, (x, y) = (a["input"], a["other"])
            let difference = try r.torchOp("abs", [try r.torchOp("sub", [x, y], Attributes(), a.loc)], Attributes(), a.loc)
            let tolerance = try r.torchOp("add", [try r.torchOp("mul", [try r.torchOp("abs", [y], Attributes(), a.loc), .float(try a.double("rtol") ?? 1e-5)],
                                                                Attributes(), a.loc), .float(try a.double("atol") ?? 1e-8)], Attributes(), a.loc)
            var close = try r.torchOp("le", [difference, tolerance], Attributes(), a.loc)
            if try a.bool("equal_nan") {
                let bothNan = try r.torchOp("bitwise_and", [try r.torchOp("ne", [x, x], Attributes(), a.loc), try r.torchOp("ne", [y, y], Attributes(), a.loc)],
                                            Attributes(), a.loc)
                close = try r.torchOp("bitwise_or", [close, bothNan], Attributes(), a.loc)
            }
            return close
        },
        TorchBinding("gather(input, dim, index, *, sparse_grad=False)", grad: "GatherBackward0") { a in
            try a.runner.torchOp("gather", [a["input"], a["index"]], Attributes(["dim": .int(try a.int("dim") ?? 0)]), a.loc)
        },
        TorchBinding("scatter(input, dim, index, src=None, *, value=None, reduce=None)") { a in
            guard !a.given("reduce") else { throw a.runner.fail(.unsupported, "scatter(reduce=...) is not supported", a.loc) }
            let source: PyValue
            var grad = "ScatterBackward0"
            switch try a.runner.resolved(a.given("src") ? a["src"] : a["value"], a.loc) {
            case let .int(i): source = .tensor(Tensor(shape: [], floats: [Float(i)])); grad = "ScatterBackward1"
            case let .float(d): source = .tensor(Tensor(shape: [], floats: [Float(d)])); grad = "ScatterBackward1"
            case .none: throw a.runner.fail(.type, "scatter() missing required argument 'src' (or value=)", a.loc)
            case let v: source = v
            }
            return a.runner.named(try a.runner.torchOp("scatter", [a["input"], a["index"], source], Attributes(["dim": .int(try a.int("dim") ?? 0)]), a.loc), grad)
        },
        TorchBinding("tril(input, diagonal=0)", grad: "TrilBackward0") { a in
            try a.runner.torchOp("tril", [a["input"]], Attributes(["diagonal": .int(try a.int("diagonal") ?? 0)]), a.loc)
        },
        TorchBinding("triu(input, diagonal=0)", grad: "TriuBackward0") { a in
            try a.runner.torchOp("triu", [a["input"]], Attributes(["diagonal": .int(try a.int("diagonal") ?? 0)]), a.loc)
        },
        TorchBinding("diag(input, diagonal=0)") { a in
            let out = try a.runner.torchOp("diag", [a["input"]], Attributes(["diagonal": .int(try a.int("diagonal") ?? 0)]), a.loc)
            return a.runner.named(out, a.runner.rankOf(try a.runner.resolved(a["input"], a.loc)) == 1 ? "DiagEmbedBackward0" : "DiagonalBackward0_copy")
        },
        TorchBinding("trace(input)", grad: "TraceBackward0") { a in
            guard a.runner.rankOf(try a.runner.resolved(a["input"], a.loc)) == 2 else { throw a.runner.fail(.runtime, "trace: expected a matrix", a.loc) }
            return try a.runner.torchFunction("sum", [try a.runner.torchOp("diag", [a["input"]], Attributes(), a.loc)], [:], a.loc)
        },
        TorchBinding("masked_fill(input, mask, value)", grad: "MaskedFillBackward0") { a in
            try a.runner.torchOp("where", [a["mask"], a["value"], a["input"]], Attributes(), a.loc)
        },
        TorchBinding("outer(input, vec2)", aliases: ["ger"]) { a in
            let r = a.runner
            return try r.torchOp("mul", [try r.torchFunction("unsqueeze", [a["input"], .int(1)], [:], a.loc),
                                         try r.torchFunction("unsqueeze", [a["vec2"], .int(0)], [:], a.loc)], Attributes(), a.loc)
        },
        TorchBinding("kron(input, other)", grad: "UnsafeViewBackward0") { a in
            // (a0, a1, ...) x (b0, b1, ...): interleave the dims, multiply, merge each pair.
            let r = a.runner, (x, y) = (a["input"], a["other"])
            let (sx, sy) = (try a.runner.shapeOf(x, a.loc), try a.runner.shapeOf(y, a.loc))
            let rank = max(sx.count, sy.count)
            let px = [Int](repeating: 1, count: rank - sx.count) + sx, py = [Int](repeating: 1, count: rank - sy.count) + sy
            let u = try r.torchFunction("reshape", [x, .tuple(px.flatMap { [PyValue.int($0), .int(1)] })], [:], a.loc)
            let v = try r.torchFunction("reshape", [y, .tuple(py.flatMap { [PyValue.int(1), .int($0)] })], [:], a.loc)
            let product = try r.torchOp("mul", [u, v], Attributes(), a.loc)
            return try r.torchFunction("reshape", [product, .tuple(zip(px, py).map { .int($0 * $1) })], [:], a.loc)
        },
        TorchBinding("cdist(x1, x2, p=2.0, compute_mode=None)", method: false, grad: "CdistBackward0") { a in
            let r = a.runner, p = try a.double("p") ?? 2
            let d = try r.torchOp("sub", [try r.torchFunction("unsqueeze", [a["x1"], .int(-2)], [:], a.loc),
                                          try r.torchFunction("unsqueeze", [a["x2"], .int(-3)], [:], a.loc)], Attributes(), a.loc)
            let magnitude = try r.torchOp("abs", [d], Attributes(), a.loc)
            if p.isInfinite { return try r.torchFunction("amax", [magnitude], ["dim": .int(-1)], a.loc) }
            let powered = p == 1 ? magnitude : try r.torchOp("pow", [magnitude, .float(p)], Attributes(), a.loc)
            let summed = try r.torchFunction("sum", [powered], ["dim": .int(-1)], a.loc)
            return p == 1 ? summed : try r.torchOp("pow", [summed, .float(1 / p)], Attributes(), a.loc)
        },
        TorchBinding("corrcoef(input)") { a in
            // cov(x) / (std_i std_j), clamped to [-1, 1] as torch clamps it.
            let r = a.runner
            var x = a["input"]
            if r.rankOf(try r.resolved(x, a.loc)) == 1 { x = try r.torchFunction("unsqueeze", [x, .int(0)], [:], a.loc) }
            let n = try r.shapeOf(x, a.loc)[1]
            let centered = try r.torchOp("sub", [x, try r.torchFunction("mean", [x], ["dim": .int(1), "keepdim": .bool(true)], a.loc)], Attributes(), a.loc)
            let cov = try r.torchOp("div", [try r.torchOp("matmul", [centered, try r.torchFunction("t", [centered], [:], a.loc)], Attributes(), a.loc),
                                            .float(Double(n - 1))], Attributes(), a.loc)
            let std = try r.torchOp("sqrt", [try r.torchOp("diag", [cov], Attributes(), a.loc)], Attributes(), a.loc)
            let rows = try r.torchOp("div", [cov, try r.torchFunction("unsqueeze", [std, .int(1)], [:], a.loc)], Attributes(), a.loc)
            let both = try r.torchOp("div", [rows, try r.torchFunction("unsqueeze", [std, .int(0)], [:], a.loc)], Attributes(), a.loc)
            return try r.torchFunction("clamp", [both], ["min": .float(-1), "max": .float(1)], a.loc)
        },
        TorchBinding("eye(n, m=None, *, dtype=None, device=None, requires_grad=False)", method: false) { a in
            let n = try a.int("n") ?? 0, m = try a.int("m") ?? n
            guard n >= 0, m >= 0, n * m <= 1 << 24 else { throw a.runner.fail(.value, "eye(): size [\(n), \(m)] is not supported", a.loc) }
            let ones = (0..<(n * m)).map { $0 / m == $0 % m ? Float(1) : 0 }
            let t = Tensor(shape: [n, m], floats: ones)
            let dtype = try Arguments(function: "eye", positional: [], keywords: ["dtype": a["dtype"]], runner: a.runner, loc: a.loc).dtype() ?? .float32
            return .tensor(t.converted(to: dtype))
        },
        TorchBinding("nonzero(input, *, as_tuple=False)") { a in
            let asTuple = try a.bool("as_tuple")
            return try a.runner.clientTensor([a["input"]], a.loc) { x in Self.nonzero(x, asTuple: asTuple) }
        },
        TorchBinding("argwhere(input)") { a in
            try a.runner.clientTensor([a["input"]], a.loc) { x in Self.nonzero(x, asTuple: false) }
        },
    ]

    static func close(_ x: Double, _ y: Double, rtol: Double, atol: Double, equalNan: Bool) -> Bool {
        if x.isNaN || y.isNaN { return equalNan && x.isNaN && y.isNaN }
        if x == y { return true }
        return Swift.abs(x - y) <= atol + rtol * Swift.abs(y)
    }

    /// The positions of nonzero elements: `[n, rank]`, or a tuple of `rank` tensors `[n]`.
    static func nonzero(_ x: Tensor, asTuple: Bool) -> PyValue {
        let strides = Tensor.contiguousStrides(x.shape)
        let hits = x.contiguous().doubles.enumerated().filter { $0.element != 0 }.map(\.offset)
        let coordinates = hits.map { n in x.shape.indices.map { Int64((n / strides[$0]) % x.shape[$0]) } }
        if asTuple {
            return .tuple(x.shape.indices.map { d in .tensor(Tensor(shape: [hits.count], ints: coordinates.map { $0[d] })) })
        }
        return .tensor(Tensor(shape: [hits.count, x.rank], ints: coordinates.flatMap { $0 }))
    }

    // MARK: - losses (torch.nn.functional)

    static let losses: [TorchBinding] = [
        TorchBinding("kl_div(input, target, size_average=None, reduce=None, reduction='mean', log_target=False)", method: false) { a in
            let r = a.runner, (x, t) = (a["input"], a["target"])
            let pointwise: PyValue
            if try a.bool("log_target") {
                pointwise = try r.torchOp("mul", [try r.torchOp("exp", [t], Attributes(), a.loc), try r.torchOp("sub", [t, x], Attributes(), a.loc)], Attributes(), a.loc)
            } else {
                // xlogy(t, t) - t * x: a zero target contributes zero.
                let tlogt = try r.torchOp("where", [try r.torchOp("gt", [t, .int(0)], Attributes(), a.loc),
                                                    try r.torchOp("mul", [t, try r.torchOp("log", [t], Attributes(), a.loc)], Attributes(), a.loc), .float(0)],
                                          Attributes(), a.loc)
                pointwise = try r.torchOp("sub", [tlogt, try r.torchOp("mul", [t, x], Attributes(), a.loc)], Attributes(), a.loc)
            }
            return try Self.reduce(pointwise, try a.string("reduction") ?? "mean", a, batchmean: true)
        },
        TorchBinding("cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction='mean', label_smoothing=0.0)",
                     method: false, grad: "NllLossBackward0") { a in
            let r = a.runner
            let dim = r.rankOf(try r.resolved(a["input"], a.loc)) >= 2 ? 1 : 0
            let logProbabilities = try r.torchFunction("log_softmax", [a["input"]], ["dim": .int(dim)], a.loc)
            return try Self.negativeLogLikelihood(logProbabilities, dim: dim, a)
        },
        TorchBinding("nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction='mean')",
                     method: false, grad: "NllLossBackward0") { a in
            let dim = a.runner.rankOf(try a.runner.resolved(a["input"], a.loc)) >= 2 ? 1 : 0
            return try Self.negativeLogLikelihood(a["input"], dim: dim, a)
        },
    ]

    /// `reduction` of a pointwise loss: "none", "sum", "mean" (or kl_div's "batchmean").
    static func reduce(_ loss: PyValue, _ reduction: String, _ a: BoundArguments, batchmean: Bool = false) throws -> PyValue {
        let r = a.runner
        switch reduction {
        case "none": return loss
        case "sum": return try r.torchFunction("sum", [loss], [:], a.loc)
        case "mean":
            if batchmean {
                r.warn("UserWarning", "reduction: 'mean' divides the total loss by both the batch size and the support size.'batchmean' divides only by the batch size, and aligns with the KL div math definition.'mean' will be changed to behave the same as 'batchmean' in the next major release.", a.loc)
            }
            return try r.torchFunction("mean", [loss], [:], a.loc)
        case "batchmean" where batchmean:
            let shape = try r.shapeOf(loss, a.loc)
            return try r.torchOp("div", [try r.torchFunction("sum", [loss], [:], a.loc), .int(shape.first ?? 1)], Attributes(), a.loc)
        default: throw r.fail(.value, "\(reduction) is not a valid value for reduction", a.loc)
        }
    }

    /// The negative log-likelihood of class indices (or the cross-entropy of class probabilities)
    /// under `logProbabilities`, classes along `dim`.
    static func negativeLogLikelihood(_ logProbabilities: PyValue, dim: Int, _ a: BoundArguments) throws -> PyValue {
        let r = a.runner
        guard !a.given("weight") else { throw r.fail(.unsupported, "\(a.function)(weight=...) is not supported", a.loc) }
        if a.values["label_smoothing"] != nil, try a.double("label_smoothing") != 0 {
            throw r.fail(.unsupported, "\(a.function)(label_smoothing=...) is not supported", a.loc)
        }
        let reduction = try a.string("reduction") ?? "mean"
        let target = try r.resolved(a["target"], a.loc)
        if case let .dtype(d)? = try? r.attribute(target, "dtype", a.loc), d == .float32 {
            // Class probabilities: -sum(p * log q) over the classes.
            let loss = try r.torchOp("neg", [try r.torchFunction("sum", [try r.torchOp("mul", [target, logProbabilities], Attributes(), a.loc)], ["dim": .int(dim)], a.loc)],
                                     Attributes(), a.loc)
            return try reduce(loss, reduction, a)
        }
        let ignore = try a.int("ignore_index") ?? -100
        let kept = try r.torchOp("ne", [target, .int(ignore)], Attributes(), a.loc)
        let safe = try r.torchOp("where", [kept, target, .int(0)], Attributes(), a.loc)
        let picked = try r.torchFunction("squeeze", [try r.torchOp("gather", [logProbabilities, try r.torchFunction("unsqueeze", [safe, .int(dim)], [:], a.loc)],
                                                                   Attributes(["dim": .int(dim)]), a.loc)], ["dim": .int(dim)], a.loc)
        let loss = try r.torchOp("where", [kept, try r.torchOp("neg", [picked], Attributes(), a.loc), .float(0)], Attributes(), a.loc)
        guard reduction == "mean" else { return try reduce(loss, reduction, a) }
        let count = try r.torchFunction("sum", [kept], [:], a.loc)
        return try r.torchOp("div", [try r.torchFunction("sum", [loss], [:], a.loc), count], Attributes(), a.loc)
    }

    // MARK: - random (torch's CPU generator, as torch.manual_seed sets it)

    static let random: [TorchBinding] = [
        TorchBinding("randint(low, high=None, size=None, *, generator=None, dtype=None, device=None, requires_grad=False)", method: false) { a in
            // randint(high, size) or randint(low, high, size).
            var (low, high, sizeValue) = (0, try a.int("low") ?? 0, a["high"])
            if a.given("size") { (low, high, sizeValue) = (try a.int("low") ?? 0, try a.int("high") ?? 0, a["size"]) }
            let shape = try Arguments(function: "randint", positional: [sizeValue], keywords: [:], runner: a.runner, loc: a.loc).sequence(sizeValue)
            guard high > low else { throw a.runner.fail(.runtime, "random_ expects 'from' to be less than 'to', but got from=\(low) >= to=\(high)", a.loc) }
            let count = shape.reduce(1, *)
            guard count >= 0, count <= 1 << 24 else { throw a.runner.fail(.value, "randint(): size \(shape) is not supported", a.loc) }
            return .tensor(Tensor(shape: shape, ints: a.runner.random.integers(count, low: low, high: high)))
        },
        TorchBinding("randperm(n, *, generator=None, dtype=None, device=None, requires_grad=False)", method: false) { a in
            let n = try a.int("n") ?? 0
            guard n >= 0, n <= 1 << 24 else { throw a.runner.fail(.value, "randperm(): n = \(n) is not supported", a.loc) }
            return .tensor(Tensor(shape: [n], ints: a.runner.random.permutation(n)))
        },
    ]
}

extension ScriptRunner {
    /// `torch.name(...)` / `x.name(...)` through the binding table, nil when it has no entry.
    func boundTorchCall(_ name: String, _ args: [PyValue], _ kwargs: [String: PyValue], method: Bool, _ loc: SourceLocation) throws -> PyValue? {
        guard let binding = TorchBindings.byName[name], !method || binding.method else { return nil }
        let bound = try BoundArguments(binding.signature, args, kwargs, runner: self, loc: loc)
        let result = try binding.lower(bound)
        return binding.grad.map { named(result, $0) } ?? result
    }

    /// `v` with torch's grad_fn name `grad` where it has one (values that need no gradient keep none).
    func named(_ v: PyValue, _ grad: String) -> PyValue {
        switch v {
        case let .proxy(p): if p.gradFn != nil { p.gradFn = grad }; return v
        case let .tensor(t, g): return .tensor(t, grad: g == nil ? nil : grad)
        default: return v
        }
    }

    /// The static shape of a tensor or traced value.
    func shapeOf(_ v: PyValue, _ loc: SourceLocation) throws -> [Int] {
        switch try resolved(v, loc) {
        case let .tensor(t, _): return t.shape
        case let .proxy(p): if let s = p.shape { return s }
        default: break
        }
        throw fail(.type, "expected a tensor, got \(v.typeName)", loc)
    }

    /// A Python bool computed from tensors: now when they are here, on the client when traced.
    func clientBool(_ operands: [PyValue], _ loc: SourceLocation, _ f: @escaping (Tensor, Tensor) -> Bool) throws -> PyValue {
        let compute = { [unowned self] () throws -> PyValue in
            let t = try operands.map { try tensorOperand(try resolved($0, loc), loc) }
            return .bool(f(t[0], t[1]))
        }
        if !resolving, tracing > 0, operands.contains(where: isTraced) { return deferred(operands, compute) }
        return try compute()
    }

    /// A value whose shape depends on the data (`nonzero`): now when the operand is here, on the
    /// client when it is traced (it can be printed and saved, not fed back into the model).
    func clientTensor(_ operands: [PyValue], _ loc: SourceLocation, _ f: @escaping (Tensor) -> PyValue) throws -> PyValue {
        let compute = { [unowned self] () throws -> PyValue in f(try tensorOperand(try resolved(operands[0], loc), loc)) }
        if !resolving, tracing > 0, operands.contains(where: isTraced) { return deferred(operands, compute) }
        return try compute()
    }
}
