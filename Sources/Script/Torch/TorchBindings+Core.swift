import Graph

/// The elementwise, softmax, shape and sorting functions: one entry each (see `TorchBinding`).
extension TorchBindings {
    static let unaryNames = ["exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "relu", "abs", "neg", "sin", "cos"]

    static let core: [TorchBinding] = unaryNames.map { name in
        TorchBinding("\(name)(input, inplace=False)", aliases: ["neg": ["negative"], "abs": ["absolute"]][name] ?? []) { a in
            try a.runner.torchOp(name, [a["input"]], Attributes(), a.loc)
        }
    } + [
        TorchBinding("gelu(input, approximate='none')") { a in
            try a.runner.torchOp(try a.string("approximate") == "tanh" ? "gelu_tanh" : "gelu", [a["input"]], Attributes(), a.loc)
        },
        TorchBinding("softmax(input, dim, dtype=None)") { a in
            try a.runner.torchOp("softmax", [a["input"]], Attributes(["dim": .int(try a.int("dim") ?? 0)]), a.loc)
        },
        TorchBinding("log_softmax(input, dim, dtype=None)") { a in
            try a.runner.torchOp("log_softmax", [a["input"]], Attributes(["dim": .int(try a.int("dim") ?? 0)]), a.loc)
        },
        TorchBinding("pow(input, exponent)") { a in
            try a.runner.torchOp("pow", [a["input"], a["exponent"]], Attributes(), a.loc)
        },
        TorchBinding("clamp(input, min=None, max=None)", aliases: ["clip"]) { a in
            var attrs = Attributes()
            var floatBounds = false
            for key in ["min", "max"] {
                if let x = try a.double(key) {
                    attrs[key] = .float(x)
                    if case .float = try a.runner.resolved(a[key], a.loc) { floatBounds = true }
                }
            }
            guard attrs["min"] != nil || attrs["max"] != nil else {
                throw a.runner.fail(.runtime, "torch.clamp: At least one of 'min' or 'max' must not be None", a.loc)
            }
            attrs["float_bounds"] = .bool(floatBounds)
            return try a.runner.torchOp("clamp", [a["input"]], attrs, a.loc)
        },
        TorchBinding("cosine_similarity(x1, x2, dim=1, eps=1e-08)", method: false) { a in
            try a.runner.torchOp("cosine_similarity", [a["x1"], a["x2"]],
                                 Attributes(["dim": .int(try a.int("dim") ?? 1), "eps": .float(try a.double("eps") ?? 1e-8)]), a.loc)
        },
        TorchBinding("reshape(input, *shape)", aliases: ["view"]) { a in
            try a.runner.torchOp("reshape", [a["input"]], Attributes(["shape": .ints(try a.sizes("shape"))]), a.loc)
        },
        TorchBinding("permute(input, *dims)") { a in
            try a.runner.torchOp("permute", [a["input"]], Attributes(["dims": .ints(try a.sizes("dims"))]), a.loc)
        },
        TorchBinding("expand(input, *size)") { a in
            try a.runner.torchOp("expand", [a["input"]], Attributes(["shape": .ints(try a.sizes("size"))]), a.loc)
        },
        TorchBinding("transpose(input, dim0, dim1)", aliases: ["swapaxes", "swapdims"]) { a in
            try a.runner.torchOp("transpose", [a["input"]], Attributes(["dim0": .int(try a.int("dim0") ?? 0), "dim1": .int(try a.int("dim1") ?? 0)]), a.loc)
        },
        TorchBinding("t(input)") { a in
            let rank = a.runner.rankOf(try a.runner.resolved(a["input"], a.loc))
            guard rank <= 2 else { throw a.runner.fail(.runtime, "t() expects a tensor with <= 2 dimensions, but self is \(rank)D", a.loc) }
            return rank < 2 ? a["input"] : try a.runner.torchOp("transpose", [a["input"]], Attributes(["dim0": .int(0), "dim1": .int(1)]), a.loc)
        },
        TorchBinding("unsqueeze(input, dim)") { a in
            try a.runner.torchOp("unsqueeze", [a["input"]], Attributes(["dim": .int(try a.int("dim") ?? 0)]), a.loc)
        },
        TorchBinding("squeeze(input, dim=None)") { a in
            var attrs = Attributes()
            if let d = try a.int("dim") { attrs["dim"] = .int(d) }
            return try a.runner.torchOp("squeeze", [a["input"]], attrs, a.loc)
        },
        TorchBinding("flatten(input, start_dim=0, end_dim=-1)") { a in
            try a.runner.torchOp("flatten", [a["input"]], Attributes(["start_dim": .int(try a.int("start_dim") ?? 0), "end_dim": .int(try a.int("end_dim") ?? -1)]), a.loc)
        },
        TorchBinding("topk(input, k, dim=-1, largest=True, sorted=True)") { a in
            try a.runner.torchOp("topk", [a["input"]], Attributes(["k": .int(try a.int("k") ?? 0), "dim": .int(try a.int("dim") ?? -1),
                                                                    "largest": .bool(try a.bool("largest"))]), a.loc)
        },
        TorchBinding("sort(input, dim=-1, descending=False, stable=False)") { a in
            try a.runner.torchOp("sort", [a["input"]], Attributes(["dim": .int(try a.int("dim") ?? -1), "descending": .bool(try a.bool("descending"))]), a.loc)
        },
        TorchBinding("argsort(input, dim=-1, descending=False, stable=False)") { a in
            try a.runner.torchOp("argsort", [a["input"]], Attributes(["dim": .int(try a.int("dim") ?? -1), "descending": .bool(try a.bool("descending"))]), a.loc)
        },
        TorchBinding("cat(tensors, dim=0)", aliases: ["concat", "concatenate"], method: false) { a in
            let tensors = try a.runner.iterate(a["tensors"], a.loc)
            guard !tensors.isEmpty else { throw a.runner.fail(.value, "cat() expects a non-empty list of Tensors", a.loc) }
            return try a.runner.torchOp("cat", tensors, Attributes(["dim": .int(try a.int("dim") ?? 0)]), a.loc)
        },
        TorchBinding("stack(tensors, dim=0)", method: false) { a in
            let tensors = try a.runner.iterate(a["tensors"], a.loc)
            guard !tensors.isEmpty else { throw a.runner.fail(.value, "stack() expects a non-empty list of Tensors", a.loc) }
            return try a.runner.torchOp("stack", tensors, Attributes(["dim": .int(try a.int("dim") ?? 0)]), a.loc)
        },
    ]
}

/// Reductions and the binary functions.
extension TorchBindings {
    static let reductions: [TorchBinding] = ["sum", "mean", "prod", "argmax", "argmin", "all", "any", "amax", "amin"].map { name in
        TorchBinding("\(name)(input, dim=None, keepdim=False, dtype=None)") { a in try a.runner.reduce(name, a) }
    } + [
        TorchBinding("std(input, dim=None, keepdim=False, *, unbiased=None, correction=None)") { a in try a.runner.reduce("std", a) },
        TorchBinding("var(input, dim=None, keepdim=False, *, unbiased=None, correction=None)") { a in try a.runner.reduce("var", a) },
        TorchBinding("norm(input, p=None, dim=None, keepdim=False, dtype=None)") { a in
            var attrs = Attributes(["keepdim": .bool(try a.bool("keepdim"))])
            if let dim = try a.int("dim") { attrs["dim"] = .int(dim) }
            if case .str("fro") = try a.runner.resolved(a["p"], a.loc) { attrs["p"] = .float(2) } else if let p = try a.double("p") { attrs["p"] = .float(p) }
            return try a.runner.torchOp("norm", [a["input"]], attrs, a.loc)
        },
    ]

    /// The registry's binary ops, and their torch aliases.
    static let binaries: [TorchBinding] = [
        ("add", []), ("sub", ["subtract"]), ("mul", ["multiply"]), ("div", ["divide", "true_divide"]), ("eq", []), ("ne", []),
        ("lt", ["less"]), ("le", []), ("gt", ["greater"]), ("ge", []), ("bitwise_and", ["logical_and"]), ("bitwise_or", ["logical_or"]),
        ("bitwise_xor", ["logical_xor"]), ("matmul", ["mm", "bmm"]), ("remainder", []), ("floor_divide", []),
    ].map { name, aliases in
        TorchBinding("\(name)(input, other, *, alpha=None)", aliases: aliases) { a in
            var other = a["other"]
            if a.given("alpha") { other = try a.runner.binary("*", other, a["alpha"], a.loc) }
            return try a.runner.torchOp(name, [a["input"], other], Attributes(), a.loc)
        }
    } + [
        TorchBinding("logical_not(input)", aliases: ["bitwise_not"]) { a in
            try a.runner.torchOp("bitwise_not", [try a.runner.torchOp("ne", [a["input"], .int(0)], Attributes(), a.loc)], Attributes(), a.loc)
        },
    ]
}

extension ScriptRunner {
    /// A reduction over `dim` (none: every element; several: one after another, the last dim
    /// first); `amax`/`amin` keep the values of max/min.
    func reduce(_ name: String, _ a: BoundArguments) throws -> PyValue {
        let keepdim = try a.bool("keepdim")
        if case let .tuple(items) = try resolved(a["dim"], a.loc) {
            let rank = rankOf(try resolved(a["input"], a.loc))
            var out = a["input"]
            let dims = try items.map { v -> Int in
                guard case let .int(d) = try resolved(v, a.loc) else { throw fail(.type, "\(name)(): dims must be ints", a.loc) }
                return d < 0 ? d + rank : d
            }
            for d in dims.sorted(by: >) { out = try reduce(name, out, dim: d, keepdim: keepdim, a) }
            return out
        }
        return try reduce(name, a["input"], dim: try a.int("dim"), keepdim: keepdim, a)
    }

    private func reduce(_ name: String, _ x: PyValue, dim: Int?, keepdim: Bool, _ a: BoundArguments) throws -> PyValue {
        var attrs = Attributes(["keepdim": .bool(keepdim)])
        if let dim { attrs["dim"] = .int(dim) }
        if name == "std" || name == "var" {
            if case .bool(false) = a["unbiased"] { attrs["correction"] = .int(0) }
            if let c = try a.int("correction") { attrs["correction"] = .int(c) }
        }
        guard name == "amax" || name == "amin" else { return try torchOp(name, [x], attrs, a.loc) }
        // Values only (max(x, dim) gives values and indices).
        let out = try torchOp(name == "amax" ? "max" : "min", [x], attrs, a.loc)
        if case let .tuple(items) = out { return items[0] }
        if case let .proxy(p) = out, p.isTupleValue { return try subscriptProxy(p, [.at(0)], a.loc) }
        return out
    }
}
