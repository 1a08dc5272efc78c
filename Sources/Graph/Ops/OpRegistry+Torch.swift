/// torch's op set as graph ops: the names are torch's (`gt`, `log_softmax`, `topk`, ...), the
/// attributes its keyword arguments. Each entry's type rule and kernel share one shape function.
extension OpRegistry {
    static let torch: [OpSpec] =
        Kernels.Compare.allCases.map(compare) + Kernels.Logical.allCases.map(logical) + Kernels.FloatMap.allCases.map(floatMap)
        + Kernels.LaneStat.allCases.filter { $0 != .min }.map(laneStat) + [
            OpSpec("pow", arity: 2...2,
                   type: { t, _ throws(OpError) in .tensor(try Kernels.binaryType(try tensor(t[0]), try tensor(t[1]), .mul)) },
                   kernel: { v, _ throws(OpError) in .tensor(try Kernels.pow(try tensor(v[0]), try tensor(v[1]))) }),
            OpSpec("bitwise_not", arity: 1...1,
                   type: { t, _ throws(OpError) in
                       let x = try tensor(t[0])
                       guard x.dtype != .float32 else { throw OpError("bitwise_not is not implemented for float tensors") }
                       return .tensor(x)
                   },
                   kernel: { v, _ throws(OpError) in .tensor(try Kernels.bitwiseNot(try tensor(v[0]))) }),
            OpSpec("relu", arity: 1...1, type: { t, _ throws(OpError) in .tensor(try tensor(t[0])) },
                   kernel: { v, _ throws(OpError) in
                       .tensor(Kernels.clamp(try tensor(v[0]), min: 0, max: nil, floatBounds: false))
                   }),
            OpSpec("clamp", arity: 1...1, attributes: [AttributeSpec("min", .float), AttributeSpec("max", .float), AttributeSpec("float_bounds", .bool)],
                   type: { t, a throws(OpError) in
                       let x = try tensor(t[0])
                       return .tensor(TensorType(shape: x.shape, dtype: a.bool("float_bounds") ? .float32 : x.dtype))
                   },
                   kernel: { v, a throws(OpError) in
                       .tensor(Kernels.clamp(try tensor(v[0]), min: a.double("min"), max: a.double("max"), floatBounds: a.bool("float_bounds")))
                   }),
            OpSpec("where", arity: 3...3,
                   type: { t, _ throws(OpError) in
                       let (c, x, y) = (try tensor(t[0]), try tensor(t[1]), try tensor(t[2]))
                       let shape = try Kernels.broadcastShape(c.shape, try Kernels.broadcastShape(x.shape, y.shape))
                       return .tensor(TensorType(shape: shape, dtype: Kernels.resultType(x, y)))
                   },
                   kernel: { v, _ throws(OpError) in .tensor(try Kernels.select(try tensor(v[0]), try tensor(v[1]), try tensor(v[2]))) }),
            OpSpec("to", arity: 1...1, attributes: [AttributeSpec("dtype", .string, required: true)],
                   type: { t, a throws(OpError) in .tensor(TensorType(shape: try tensor(t[0]).shape, dtype: try dtype(a))) },
                   kernel: { v, a throws(OpError) in .tensor(try tensor(v[0]).converted(to: try dtype(a))) }),
            OpSpec("full_like", arity: 1...1, attributes: [AttributeSpec("value", .float, required: true), AttributeSpec("dtype", .string)],
                   type: { t, a throws(OpError) in
                       let x = try tensor(t[0])
                       return .tensor(TensorType(shape: x.shape, dtype: a.string("dtype") == nil ? x.dtype : try dtype(a)))
                   },
                   kernel: { v, a throws(OpError) in
                       let x = try tensor(v[0])
                       return .tensor(try Kernels.full(x.shape, a.double("value") ?? 0, a.string("dtype") == nil ? x.dtype : try dtype(a)))
                   }),
            OpSpec("full", arity: 0...0, attributes: [AttributeSpec("shape", .ints, required: true), AttributeSpec("value", .float, required: true),
                                                      AttributeSpec("dtype", .string, required: true)],
                   type: { _, a throws(OpError) in .tensor(TensorType(shape: a.ints("shape") ?? [], dtype: try dtype(a))) },
                   kernel: { _, a throws(OpError) in .tensor(try Kernels.full(a.ints("shape") ?? [], a.double("value") ?? 0, try dtype(a))) }),
            OpSpec("arange", arity: 0...0, attributes: [AttributeSpec("start", .float), AttributeSpec("end", .float, required: true),
                                                        AttributeSpec("step", .float), AttributeSpec("dtype", .string, required: true)],
                   type: { _, a throws(OpError) in
                       .tensor(TensorType(shape: try arange(a).shape, dtype: try dtype(a)))
                   },
                   kernel: { _, a throws(OpError) in .tensor(try arange(a)) }),
            reductionTuple("min", values: { x, dim, keepdim throws(OpError) in try Kernels.laneStat(x, .min, dim: dim, keepdim: keepdim) },
                           indices: { x, dim, keepdim throws(OpError) in try Kernels.laneStat(x, .argmin, dim: dim, keepdim: keepdim) }),
            OpSpec("log_softmax", arity: 1...1, attributes: [AttributeSpec("dim", .int, required: true)],
                   type: { t, a throws(OpError) in
                       let x = try tensor(t[0])
                       _ = try Kernels.normalize(dim: a.int("dim") ?? 0, rank: x.shape.count)
                       return .tensor(TensorType(shape: x.shape, dtype: .float32))
                   },
                   kernel: { v, a throws(OpError) in .tensor(try Kernels.logSoftmax(try tensor(v[0]), dim: a.int("dim") ?? 0)) }),
            OpSpec("topk", arity: 1...1, attributes: [AttributeSpec("k", .int, required: true), AttributeSpec("dim", .int), AttributeSpec("largest", .bool)],
                   outputs: 2,
                   type: { t, a throws(OpError) in
                       let x = try tensor(t[0])
                       let shape = try Kernels.topkShape(x.shape, k: a.int("k") ?? 0, dim: a.int("dim") ?? -1)
                       return .tuple([TensorType(shape: shape, dtype: x.dtype), TensorType(shape: shape, dtype: .int64)])
                   },
                   kernel: { v, a throws(OpError) in
                       let largest = a["largest"] == nil ? true : a.bool("largest")
                       let (values, indices) = try Kernels.topk(try tensor(v[0]), k: a.int("k") ?? 0, dim: a.int("dim") ?? -1, largest: largest)
                       return .tuple([values, indices])
                   }),
            OpSpec("sort", arity: 1...1, attributes: [AttributeSpec("dim", .int), AttributeSpec("descending", .bool)], outputs: 2,
                   type: { t, a throws(OpError) in
                       let x = try tensor(t[0])
                       _ = try Kernels.normalize(dim: a.int("dim") ?? -1, rank: x.shape.count)
                       return .tuple([x, TensorType(shape: x.shape, dtype: .int64)])
                   },
                   kernel: { v, a throws(OpError) in
                       let (values, indices) = try Kernels.sort(try tensor(v[0]), dim: a.int("dim") ?? -1, descending: a.bool("descending"))
                       return .tuple([values, indices])
                   }),
            OpSpec("argsort", arity: 1...1, attributes: [AttributeSpec("dim", .int), AttributeSpec("descending", .bool)],
                   type: { t, a throws(OpError) in
                       let x = try tensor(t[0])
                       _ = try Kernels.normalize(dim: a.int("dim") ?? -1, rank: x.shape.count)
                       return .tensor(TensorType(shape: x.shape, dtype: .int64))
                   },
                   kernel: { v, a throws(OpError) in
                       .tensor(try Kernels.sort(try tensor(v[0]), dim: a.int("dim") ?? -1, descending: a.bool("descending")).1)
                   }),
            OpSpec("cat", arity: 1...64, attributes: [AttributeSpec("dim", .int)],
                   type: { t, a throws(OpError) in
                       let xs = try t.map { (x) throws(OpError) in try tensor(x) }
                       return .tensor(TensorType(shape: try Kernels.catShape(xs.map(\.shape), dim: a.int("dim") ?? 0),
                                                 dtype: Kernels.commonType(xs.map(\.dtype))))
                   },
                   kernel: { v, a throws(OpError) in
                       .tensor(try Kernels.cat(try v.map { (x) throws(OpError) in try tensor(x) }, dim: a.int("dim") ?? 0))
                   }),
            OpSpec("stack", arity: 1...64, attributes: [AttributeSpec("dim", .int)],
                   type: { t, a throws(OpError) in
                       let xs = try t.map { (x) throws(OpError) in try tensor(x) }
                       let shapes = try xs.map { (x) throws(OpError) in try Kernels.unsqueezeShape(x.shape, dim: a.int("dim") ?? 0) }
                       guard Set(xs.map(\.shape)).count <= 1 else { throw OpError("stack expects each tensor to be equal size, but got \(xs.map(\.shape))") }
                       return .tensor(TensorType(shape: try Kernels.catShape(shapes, dim: a.int("dim") ?? 0), dtype: Kernels.commonType(xs.map(\.dtype))))
                   },
                   kernel: { v, a throws(OpError) in
                       let xs = try v.map { (x) throws(OpError) in try tensor(x) }
                       guard Set(xs.map(\.shape)).count <= 1 else { throw OpError("stack expects each tensor to be equal size, but got \(xs.map(\.shape))") }
                       return .tensor(try Kernels.cat(try xs.map { (x) throws(OpError) in try Kernels.unsqueeze(x, dim: a.int("dim") ?? 0) }, dim: a.int("dim") ?? 0))
                   }),
            OpSpec("matmul", arity: 2...2,
                   type: { t, _ throws(OpError) in
                       let (x, y) = (try tensor(t[0]), try tensor(t[1]))
                       return .tensor(TensorType(shape: try Kernels.matmulShape(x.shape, y.shape),
                                                 dtype: x.dtype == .float32 || y.dtype == .float32 ? .float32 : .int64))
                   },
                   work: { t, _ in
                       // Every output element is an inner product of length k.
                       let out = (try? Kernels.matmulShape(t[0].shape, t[1].shape)) ?? []
                       return OpBudget.elements(out).multipliedSaturating(by: t[0].shape.last ?? 1)
                   },
                   kernel: { v, _ throws(OpError) in .tensor(try Kernels.matmul(try tensor(v[0]), try tensor(v[1]))) }),
            OpSpec("einsum", arity: 1...8, attributes: [AttributeSpec("equation", .string, required: true)],
                   type: { t, a throws(OpError) in
                       let xs = try t.map { (x) throws(OpError) in try tensor(x) }
                       let e = try Kernels.Einsum(a.string("equation") ?? "", operands: xs.count)
                       return .tensor(TensorType(shape: try e.shape(xs.map(\.shape)), dtype: xs.contains { $0.dtype == .float32 } ? .float32 : .int64))
                   },
                   work: { t, a in
                       // The loop runs over every subscript's range.
                       guard let e = try? Kernels.Einsum(a.string("equation") ?? "", operands: t.count),
                             let sizes = try? e.sizes(t.map(\.shape)) else { return 0 }
                       return sizes.values.reduce(1) { $0.multipliedSaturating(by: $1) }
                   },
                   kernel: { v, a throws(OpError) in
                       .tensor(try Kernels.einsum(a.string("equation") ?? "", try v.map { (x) throws(OpError) in try tensor(x) }))
                   }),
            OpSpec("cosine_similarity", arity: 2...2, attributes: [AttributeSpec("dim", .int), AttributeSpec("eps", .float)],
                   type: { t, a throws(OpError) in
                       .tensor(TensorType(shape: try Kernels.cosineSimilarityShape(try tensor(t[0]).shape, try tensor(t[1]).shape, dim: a.int("dim") ?? 1),
                                          dtype: .float32))
                   },
                   kernel: { v, a throws(OpError) in
                       .tensor(try Kernels.cosineSimilarity(try tensor(v[0]), try tensor(v[1]), dim: a.int("dim") ?? 1, eps: a.double("eps") ?? 1e-8))
                   }),
            shapeOp("reshape", [AttributeSpec("shape", .ints, required: true)],
                    shape: { s, a throws(OpError) in try Kernels.reshapeShape(s, a.ints("shape") ?? []) },
                    kernel: { x, a throws(OpError) in try Kernels.reshape(x, a.ints("shape") ?? []) }),
            shapeOp("permute", [AttributeSpec("dims", .ints, required: true)],
                    shape: { s, a throws(OpError) in try Kernels.permuteShape(s, a.ints("dims") ?? []) },
                    kernel: { x, a throws(OpError) in try Kernels.permute(x, a.ints("dims") ?? []) }),
            shapeOp("transpose", [AttributeSpec("dim0", .int, required: true), AttributeSpec("dim1", .int, required: true)],
                    shape: { s, a throws(OpError) in
                        try Kernels.permuteShape(s, try Kernels.transposition(rank: s.count, a.int("dim0") ?? 0, a.int("dim1") ?? 0))
                    },
                    kernel: { x, a throws(OpError) in
                        try Kernels.permute(x, try Kernels.transposition(rank: x.rank, a.int("dim0") ?? 0, a.int("dim1") ?? 0))
                    }),
            shapeOp("unsqueeze", [AttributeSpec("dim", .int, required: true)],
                    shape: { s, a throws(OpError) in try Kernels.unsqueezeShape(s, dim: a.int("dim") ?? 0) },
                    kernel: { x, a throws(OpError) in try Kernels.unsqueeze(x, dim: a.int("dim") ?? 0) }),
            shapeOp("squeeze", [AttributeSpec("dim", .int)],
                    shape: { s, a throws(OpError) in try Kernels.squeezeShape(s, dim: a.int("dim")) },
                    kernel: { x, a throws(OpError) in try Kernels.squeeze(x, dim: a.int("dim")) }),
            shapeOp("flatten", [AttributeSpec("start_dim", .int), AttributeSpec("end_dim", .int)],
                    shape: { s, a throws(OpError) in try Kernels.flattenShape(s, start: a.int("start_dim") ?? 0, end: a.int("end_dim") ?? -1) },
                    kernel: { x, a throws(OpError) in
                        try Kernels.reshape(x, try Kernels.flattenShape(x.shape, start: a.int("start_dim") ?? 0, end: a.int("end_dim") ?? -1))
                    }),
            shapeOp("expand", [AttributeSpec("shape", .ints, required: true)],
                    shape: { s, a throws(OpError) in try Kernels.expandShape(s, a.ints("shape") ?? []) },
                    kernel: { x, a throws(OpError) in try x.expanded(to: try Kernels.expandShape(x.shape, a.ints("shape") ?? [])) }),
            // A guarded edit whose condition comes later in the forward pass than its target:
            // harmless while the condition is false, an error (nnsight's out-of-order) when true.
            OpSpec("fail_if", arity: 1...1, attributes: [AttributeSpec("message", .string, required: true)],
                   type: { t, _ throws(OpError) in t[0] },
                   kernel: { v, a throws(OpError) in
                       let c = try tensor(v[0])
                       if c.count == 1, c.bools[0] { throw OpError(a.string("message") ?? "fail_if") }
                       return v[0]
                   }),
            OpSpec("take", arity: 2...2, attributes: [AttributeSpec("dim", .int, required: true)],
                   type: { t, a throws(OpError) in
                       let (x, i) = (try tensor(t[0]), try tensor(t[1]))
                       guard i.dtype != .float32 else { throw OpError("tensors used as indices must be long, int or bool tensors") }
                       return .tensor(TensorType(shape: try Kernels.takeShape(x.shape, index: i.shape, dim: a.int("dim") ?? 0), dtype: x.dtype))
                   },
                   kernel: { v, a throws(OpError) in .tensor(try Kernels.take(try tensor(v[0]), try tensor(v[1]), dim: a.int("dim") ?? 0)) }),
            OpSpec("gather", arity: 2...2, attributes: [AttributeSpec("dim", .int, required: true)],
                   type: { t, a throws(OpError) in
                       let (x, i) = (try tensor(t[0]), try tensor(t[1]))
                       guard i.dtype == .int64 else { throw OpError("gather(): Expected dtype int64 for index") }
                       return .tensor(TensorType(shape: try Kernels.gatherShape(x.shape, index: i.shape, dim: a.int("dim") ?? 0), dtype: x.dtype))
                   },
                   kernel: { v, a throws(OpError) in .tensor(try Kernels.gather(try tensor(v[0]), dim: a.int("dim") ?? 0, index: try tensor(v[1]))) }),
            // `x.scatter(dim, index, src)`: a copy of x with src's values at index along dim.
            OpSpec("scatter", arity: 3...3, attributes: [AttributeSpec("dim", .int, required: true)],
                   type: { t, a throws(OpError) in
                       let (x, i) = (try tensor(t[0]), try tensor(t[1]))
                       guard i.dtype == .int64 else { throw OpError("scatter(): Expected dtype int64 for index") }
                       _ = try Kernels.gatherShape(x.shape, index: i.shape, dim: a.int("dim") ?? 0)
                       return .tensor(x)
                   },
                   kernel: { v, a throws(OpError) in
                       .tensor(try Kernels.scatter(try tensor(v[0]), dim: a.int("dim") ?? 0, index: try tensor(v[1]), source: try tensor(v[2])))
                   }),
            triangle("tril", lower: true), triangle("triu", lower: false),
            OpSpec("diag", arity: 1...1, attributes: [AttributeSpec("diagonal", .int)],
                   type: { t, a throws(OpError) in
                       let x = try tensor(t[0])
                       return .tensor(TensorType(shape: try Kernels.diagShape(x.shape, diagonal: a.int("diagonal") ?? 0), dtype: x.dtype))
                   },
                   kernel: { v, a throws(OpError) in .tensor(try Kernels.diag(try tensor(v[0]), diagonal: a.int("diagonal") ?? 0)) }),
            // `x[0, [1, 2]]`, `x[i, j]`: items[advanced[k]] is input k + 1, an int64 index tensor.
            OpSpec("advanced_index", arity: 2...17,
                   attributes: [AttributeSpec("index", .index, required: true), AttributeSpec("advanced", .ints, required: true)],
                   type: { t, a throws(OpError) in
                       let x = try tensor(t[0])
                       let indices = try t.dropFirst().map { (i) throws(OpError) -> TensorType in try tensor(i) }
                       guard indices.allSatisfy({ $0.dtype == .int64 }) else { throw OpError("tensors used as indices must be long, int or bool tensors") }
                       return .tensor(TensorType(shape: try Kernels.advancedIndexShape(x.shape, items: a.index("index"), advanced: a.ints("advanced") ?? [],
                                                                                        indexShapes: indices.map(\.shape)), dtype: x.dtype))
                   },
                   kernel: { v, a throws(OpError) in
                       .tensor(try Kernels.advancedIndex(try tensor(v[0]), items: a.index("index"), advanced: a.ints("advanced") ?? [],
                                                         indices: try v.dropFirst().map { (i) throws(OpError) -> Tensor in try tensor(i) }))
                   }),
        ]

    // MARK: - declaration helpers

    static func dtype(_ a: Attributes) throws(OpError) -> DType {
        guard let name = a.string("dtype"), let d = DType(rawValue: name) else {
            throw OpError("unknown dtype '\(a.string("dtype") ?? "")' (float32, int64 and bool are supported)")
        }
        return d
    }

    static func arange(_ a: Attributes) throws(OpError) -> Tensor {
        try Kernels.arange(a.double("start") ?? 0, a.double("end") ?? 0, a.double("step") ?? 1, try dtype(a))
    }

    static func compare(_ op: Kernels.Compare) -> OpSpec {
        OpSpec(op.rawValue, arity: 2...2,
               type: { t, _ throws(OpError) in
                   .tensor(TensorType(shape: try Kernels.broadcastShape(try tensor(t[0]).shape, try tensor(t[1]).shape), dtype: .bool))
               },
               kernel: { v, _ throws(OpError) in .tensor(try Kernels.compare(op, try tensor(v[0]), try tensor(v[1]))) })
    }

    static func logical(_ op: Kernels.Logical) -> OpSpec {
        OpSpec("bitwise_\(op.rawValue)", arity: 2...2,
               type: { t, _ throws(OpError) in
                   let (x, y) = (try tensor(t[0]), try tensor(t[1]))
                   guard x.dtype != .float32, y.dtype != .float32 else { throw OpError("bitwise_\(op.rawValue) is not implemented for float tensors") }
                   return .tensor(TensorType(shape: try Kernels.broadcastShape(x.shape, y.shape), dtype: x.dtype == .bool && y.dtype == .bool ? .bool : .int64))
               },
               kernel: { v, _ throws(OpError) in .tensor(try Kernels.logical(op, try tensor(v[0]), try tensor(v[1]))) })
    }

    static func floatMap(_ f: Kernels.FloatMap) -> OpSpec {
        OpSpec(f.rawValue, arity: 1...1,
               type: { t, _ throws(OpError) in .tensor(TensorType(shape: try tensor(t[0]).shape, dtype: .float32)) },
               kernel: { v, _ throws(OpError) in .tensor(Kernels.map(try tensor(v[0]), f)) })
    }

    static func laneStat(_ stat: Kernels.LaneStat) -> OpSpec {
        OpSpec(stat.rawValue, arity: 1...1,
               attributes: [AttributeSpec("dim", .int), AttributeSpec("keepdim", .bool), AttributeSpec("correction", .int), AttributeSpec("p", .float)],
               type: { t, a throws(OpError) in
                   let x = try tensor(t[0])
                   return .tensor(TensorType(shape: try Kernels.reducedShape(x.shape, dim: a.int("dim"), keepdim: a.bool("keepdim")),
                                             dtype: try Kernels.statType(stat, x.dtype)))
               },
               kernel: { v, a throws(OpError) in
                   .tensor(try Kernels.laneStat(try tensor(v[0]), stat, dim: a.int("dim"), keepdim: a.bool("keepdim"),
                                                correction: a.int("correction") ?? 1, p: a.double("p") ?? 2))
               })
    }

    typealias Reduce = @Sendable (Tensor, Int?, Bool) throws(OpError) -> Tensor

    /// `max`/`min`: along a dim (values, indices), as torch returns them; without one, the value.
    static func reductionTuple(_ name: String, values: @escaping Reduce, indices: @escaping Reduce) -> OpSpec {
        OpSpec(name, arity: 1...1, attributes: [AttributeSpec("dim", .int), AttributeSpec("keepdim", .bool)], outputs: 2,
               type: { t, a throws(OpError) in
                   let x = try tensor(t[0])
                   let shape = try Kernels.reducedShape(x.shape, dim: a.int("dim"), keepdim: a.bool("keepdim"))
                   guard a.int("dim") != nil else { return .tensor(TensorType(shape: shape, dtype: x.dtype)) }
                   return .tuple([TensorType(shape: shape, dtype: x.dtype), TensorType(shape: shape, dtype: .int64)])
               },
               kernel: { v, a throws(OpError) in
                   let x = try tensor(v[0])
                   let v = try values(x, a.int("dim"), a.bool("keepdim"))
                   guard a.int("dim") != nil else { return .tensor(v) }
                   return .tuple([v, try indices(x, a.int("dim"), a.bool("keepdim"))])
               })
    }

    /// `tril` / `triu`: the lower or upper triangle of the last two dims, the rest zero.
    static func triangle(_ name: String, lower: Bool) -> OpSpec {
        OpSpec(name, arity: 1...1, attributes: [AttributeSpec("diagonal", .int)],
               type: { t, _ throws(OpError) in
                   let x = try tensor(t[0])
                   guard x.shape.count >= 2 else { throw OpError("\(name): input tensor must have at least 2 dimensions") }
                   return .tensor(x)
               },
               kernel: { v, a throws(OpError) in .tensor(try Kernels.triangle(try tensor(v[0]), lower: lower, diagonal: a.int("diagonal") ?? 0)) })
    }

    /// An op that changes a tensor's shape as a view (expand's repeated elements cannot be written).
    static func shapeOp(_ name: String, _ attributes: [AttributeSpec],
                        shape: @escaping @Sendable ([Int], Attributes) throws(OpError) -> [Int],
                        kernel: @escaping @Sendable (Tensor, Attributes) throws(OpError) -> Tensor) -> OpSpec {
        OpSpec(name, arity: 1...1, attributes: attributes, writableView: name != "expand",
               type: { t, a throws(OpError) in
                   let x = try tensor(t[0])
                   return .tensor(TensorType(shape: try shape(x.shape, a), dtype: x.dtype))
               },
               kernel: { v, a throws(OpError) in .tensor(try kernel(try tensor(v[0]), a)) })
    }
}
