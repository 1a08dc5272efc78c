import Graph
import Testing

/// The op table's declarations: arity, attributes, shape and dtype rules, and that each rule
/// agrees with its kernel.
struct OpRegistryTests {
    let hidden = TensorType(shape: [1, 9, 96], dtype: .float32)

    func type(_ name: String, _ inputs: [ValueType], _ a: [String: Attribute] = [:]) throws -> ValueType {
        try OpRegistry.spec(name)!.type(inputs, Attributes(a))
    }

    @Test func shapeRules() throws {
        #expect(try type("add", [.tensor(hidden), .tensor(TensorType(shape: [96], dtype: .float32))]) == .tensor(hidden))
        #expect(throws: OpError("shapes [1, 4, 96] and [1, 9, 96] cannot be broadcast together")) {
            try type("add", [.tensor(TensorType(shape: [1, 4, 96], dtype: .float32)), .tensor(hidden)])
        }
        #expect(try type("argmax", [.tensor(hidden)], ["dim": .int(-1)]) == .tensor(TensorType(shape: [1, 9], dtype: .int64)))
        #expect(try type("sum", [.tensor(hidden)], ["dim": .int(1), "keepdim": .bool(true)]) == .tensor(TensorType(shape: [1, 1, 96], dtype: .float32)))
        #expect(try type("max", [.tensor(hidden)], ["dim": .int(2)])
            == .tuple([TensorType(shape: [1, 9], dtype: .float32), TensorType(shape: [1, 9], dtype: .int64)]))
        #expect(try type("index", [.tensor(hidden)], ["index": .index([.all, .at(-1)])]) == .tensor(TensorType(shape: [1, 96], dtype: .float32)))
        #expect(try type("tuple_item", [.tuple([hidden, nil])], ["item": .int(0)]) == .tensor(hidden))
        #expect(throws: OpError("output[1] is None")) { try type("tuple_item", [.tuple([hidden, nil])], ["item": .int(1)]) }
        #expect(throws: OpError("dimension out of range (expected to be in range of [-3, 2], but got 3)")) {
            try type("softmax", [.tensor(hidden)], ["dim": .int(3)])
        }
    }

    @Test func declarationsAreChecked() throws {
        let sum = OpRegistry.spec("sum")!
        #expect(throws: OpError("sum takes 1 inputs, got 2")) { try sum.validate(inputs: 2, attributes: Attributes()) }
        #expect(throws: OpError("sum has no attribute 'axis'")) { try sum.validate(inputs: 1, attributes: Attributes(["axis": .int(0)])) }
        #expect(throws: OpError("softmax needs the attribute 'dim'")) { try OpRegistry.spec("softmax")!.validate(inputs: 1, attributes: Attributes()) }
        #expect(Set(OpRegistry.ops.map(\.name)).count == OpRegistry.ops.count, "one declaration per op")
    }

    /// Each op's shape rule gives the type its kernel produces; every op of the table is covered.
    @Test func rulesAgreeWithKernels() throws {
        let x = Tensor(shape: [2, 3], floats: [1, -2, 3, -4, 5, -6])
        let v = Tensor(shape: [3], floats: [0.5, 1, 2])
        let b = Tensor(shape: [2, 3], bools: [true, false, true, false, true, true])
        let i = Tensor(shape: [2], ints: [2, 0])
        let cases: [(String, [Value], [String: Attribute])] = [
            ("add", [.tensor(x), .tensor(.scalar(Int64(1)))], [:]), ("sub", [.tensor(x), .tensor(v)], [:]), ("mul", [.tensor(x), .tensor(v)], [:]),
            ("div", [.tensor(x), .tensor(x)], [:]), ("pow", [.tensor(x), .tensor(.scalar(Float(2)))], [:]),
            ("neg", [.tensor(x)], [:]), ("abs", [.tensor(x)], [:]), ("clone", [.tensor(x)], [:]),
            ("mean", [.tensor(x)], ["dim": .int(0)]), ("sum", [.tensor(b)], [:]), ("argmax", [.tensor(x)], [:]),
            ("max", [.tensor(x)], ["dim": .int(1), "keepdim": .bool(true)]), ("min", [.tensor(x)], ["dim": .int(0)]),
            ("softmax", [.tensor(x)], ["dim": .int(-1)]), ("log_softmax", [.tensor(x)], ["dim": .int(0)]),
            ("index", [.tensor(x)], ["index": .index([.newAxis, .at(1)])]),
            ("tuple_item", [.tuple([x, nil])], ["item": .int(0)]),
            ("eq", [.tensor(x), .tensor(x)], [:]), ("ne", [.tensor(x), .tensor(v)], [:]), ("lt", [.tensor(x), .tensor(.scalar(Int64(0)))], [:]),
            ("le", [.tensor(x), .tensor(v)], [:]), ("gt", [.tensor(x), .tensor(v)], [:]), ("ge", [.tensor(x), .tensor(v)], [:]),
            ("bitwise_and", [.tensor(b), .tensor(b)], [:]), ("bitwise_or", [.tensor(b), .tensor(b)], [:]),
            ("bitwise_xor", [.tensor(i), .tensor(i)], [:]), ("bitwise_not", [.tensor(b)], [:]),
            ("exp", [.tensor(x)], [:]), ("log", [.tensor(v)], [:]), ("sqrt", [.tensor(v)], [:]), ("rsqrt", [.tensor(v)], [:]),
            ("tanh", [.tensor(x)], [:]), ("sigmoid", [.tensor(x)], [:]), ("gelu", [.tensor(x)], [:]), ("gelu_tanh", [.tensor(x)], [:]),
            ("sin", [.tensor(x)], [:]), ("cos", [.tensor(i)], [:]), ("relu", [.tensor(x)], [:]),
            ("argmin", [.tensor(x)], ["dim": .int(1)]), ("std", [.tensor(x)], ["dim": .int(1)]), ("var", [.tensor(x)], [:]),
            ("norm", [.tensor(x)], ["dim": .int(-1), "keepdim": .bool(true)]), ("all", [.tensor(b)], ["dim": .int(0)]),
            ("any", [.tensor(b)], [:]), ("prod", [.tensor(i)], [:]),
            ("clamp", [.tensor(x)], ["min": .float(-1), "max": .float(2)]), ("where", [.tensor(b), .tensor(x), .tensor(.scalar(Float(0)))], [:]),
            ("to", [.tensor(x)], ["dtype": .string("int64")]), ("full_like", [.tensor(x)], ["value": .float(2)]),
            ("full", [], ["shape": .ints([2, 2]), "value": .float(1), "dtype": .string("bool")]),
            ("arange", [], ["start": .float(1), "end": .float(7), "step": .float(2), "dtype": .string("int64")]),
            ("topk", [.tensor(x)], ["k": .int(2)]), ("sort", [.tensor(x)], ["dim": .int(0), "descending": .bool(true)]),
            ("argsort", [.tensor(x)], [:]), ("cat", [.tensor(x), .tensor(x)], ["dim": .int(1)]), ("stack", [.tensor(v), .tensor(v)], ["dim": .int(-1)]),
            ("matmul", [.tensor(x), .tensor(v)], [:]), ("einsum", [.tensor(x), .tensor(x)], ["equation": .string("ij,kj->ik")]),
            ("cosine_similarity", [.tensor(x), .tensor(v)], ["dim": .int(1)]), ("reshape", [.tensor(x)], ["shape": .ints([3, -1])]),
            ("permute", [.tensor(x)], ["dims": .ints([1, 0])]), ("transpose", [.tensor(x)], ["dim0": .int(0), "dim1": .int(1)]),
            ("unsqueeze", [.tensor(x)], ["dim": .int(-1)]), ("squeeze", [.tensor(v)], [:]), ("flatten", [.tensor(x)], [:]),
            ("expand", [.tensor(v)], ["shape": .ints([2, -1])]), ("take", [.tensor(x), .tensor(i)], ["dim": .int(1)]),
            ("fail_if", [.tensor(Tensor(shape: [], bools: [false]))], ["message": .string("m")]),
            ("remainder", [.tensor(x), .tensor(v)], [:]), ("floor_divide", [.tensor(i), .tensor(.scalar(Int64(-3)))], [:]),
            ("gather", [.tensor(x), .tensor(Tensor(shape: [2, 1], ints: [2, 0]))], ["dim": .int(1)]),
            ("scatter", [.tensor(x), .tensor(Tensor(shape: [1, 2], ints: [1, 0])), .tensor(.scalar(Float(9)))], ["dim": .int(0)]),
            ("tril", [.tensor(x)], [:]), ("triu", [.tensor(x)], ["diagonal": .int(1)]), ("diag", [.tensor(v)], ["diagonal": .int(-1)]),
            ("advanced_index", [.tensor(x), .tensor(Tensor(shape: [2], ints: [1, 0])), .tensor(i)], ["index": .index([.all, .all]), "advanced": .ints([0, 1])]),
        ]
        for (name, inputs, a) in cases {
            let spec = try #require(OpRegistry.spec(name), "\(name)")
            let value = try spec.run(inputs, Attributes(a))
            #expect(try spec.type(inputs.map(\.type), Attributes(a)) == value.type, "\(name)")
        }
        #expect(Set(cases.map(\.0)) == Set(OpRegistry.ops.map(\.name)), "untested ops: \(Set(OpRegistry.ops.map(\.name)).subtracting(cases.map(\.0)).sorted())")
    }

    /// Values of the torch ops against what torch 2.13.0 gives for the same inputs.
    @Test func kernelsComputeWhatTorchComputes() throws {
        let x = Tensor(shape: [2, 3], floats: [1, -2, 3, -4, 5, -6])
        func run(_ name: String, _ inputs: [Tensor], _ a: [String: Attribute] = [:]) throws -> Value {
            try OpRegistry.spec(name)!.run(inputs.map(Value.tensor), Attributes(a))
        }
        func floats(_ v: Value, item: Int = 0) -> [Float] {
            switch v {
            case let .tensor(t): t.floats
            case let .tuple(items): items[item]?.floats ?? []
            }
        }
        func close(_ a: [Float], _ b: [Float]) -> Bool { a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= 1e-4 + 1e-4 * abs($1) } }
        // torch.tensor([[1., -2, 3], [-4, 5, -6]]).std(dim=1) etc.
        #expect(close(floats(try run("std", [x], ["dim": .int(1)])), [2.5166, 5.8595]))
        #expect(close(floats(try run("var", [x], ["dim": .int(0)])), [12.5, 24.5, 40.5]))
        #expect(close(floats(try run("norm", [x], ["dim": .int(1)])), [3.7417, 8.7750]))
        #expect(close(floats(try run("log_softmax", [x], ["dim": .int(1)])), [-2.1328, -5.1328, -0.13285, -9.0001, -1.4006e-04, -11.0]))
        #expect(close(floats(try run("gelu", [x])), [0.84134, -0.0455, 2.9959, -1.2648e-04, 5.0, 0]))
        #expect(close(floats(try run("gelu_tanh", [x])), [0.84119, -0.045402, 2.9964, -7.0214e-05, 5.0, 0]))
        #expect(close(floats(try run("topk", [x], ["k": .int(2)])), [3, 1, 5, -4]))
        #expect(try run("topk", [x], ["k": .int(2)]).type == .tuple([TensorType(shape: [2, 2], dtype: .float32), TensorType(shape: [2, 2], dtype: .int64)]))
        if case let .tuple(items) = try run("topk", [x], ["k": .int(2)]) { #expect(items[1]?.ints == [2, 0, 1, 0]) }
        #expect(close(floats(try run("einsum", [x, x], ["equation": .string("ij,kj->ik")])), [14, -32, -32, 77]))
        #expect(close(floats(try run("cosine_similarity", [x, Tensor(shape: [3], floats: [1, 1, 1])], ["dim": .int(1)])), [0.3086, -0.3290]))
        #expect(close(floats(try run("matmul", [x, Tensor(shape: [3], floats: [1, 2, 3])])), [6, -12]))
        #expect(try run("take", [x, Tensor(shape: [2, 2], ints: [0, -1, 1, 1])], ["dim": .int(1)]).type == .tensor(TensorType(shape: [2, 2, 2], dtype: .float32)))
        #expect(close(floats(try run("take", [x, Tensor(shape: [2], ints: [0, -1])], ["dim": .int(1)])), [1, 3, -4, -6]))
        let v = Tensor(shape: [3], floats: [0.5, 1, 2])
        #expect(floats(try run("remainder", [x, v])) == [0, -0, 1, -0, 0, -0])
        #expect(try run("floor_divide", [Tensor(shape: [3], ints: [2, 0, -7]), .scalar(Int64(-3))]).type == .tensor(TensorType(shape: [3], dtype: .int64)))
        if case let .tensor(t) = try run("floor_divide", [Tensor(shape: [3], ints: [2, 0, -7]), .scalar(Int64(-3))]) { #expect(t.ints == [-1, 0, 2]) }
        if case let .tensor(t) = try run("remainder", [Tensor(shape: [2], ints: [-7, 7]), .scalar(Int64(3))]) { #expect(t.ints == [2, 1]) }
        #expect(floats(try run("gather", [x, Tensor(shape: [2, 1], ints: [2, 0])], ["dim": .int(1)])) == [3, -4])
        #expect(floats(try run("scatter", [x, Tensor(shape: [1, 2], ints: [1, 0]), .scalar(Float(9))], ["dim": .int(0)])) == [1, 9, 3, 9, 5, -6])
        #expect(floats(try run("tril", [x])) == [1, 0, 0, -4, 5, 0])
        #expect(floats(try run("triu", [x], ["diagonal": .int(1)])) == [0, -2, 3, 0, 0, -6])
        #expect(floats(try run("diag", [v], ["diagonal": .int(-1)])) == [0, 0, 0, 0, 0.5, 0, 0, 0, 0, 1, 0, 0, 0, 0, 2, 0])
        #expect(floats(try run("diag", [x])) == [1, 5])
        // torch.arange(120).reshape(2, 3, 4, 5)[0, :, [1, 2]]: the integer selects first (torch, not numpy).
        let y = Tensor(shape: [2, 3, 4, 5], floats: (0..<120).map(Float.init))
        let selected = try run("advanced_index", [y, Tensor(shape: [2], ints: [1, 2])], ["index": .index([.at(0), .all, .all]), "advanced": .ints([2])])
        #expect(selected.type == .tensor(TensorType(shape: [3, 2, 5], dtype: .float32)))
        #expect(floats(try run("advanced_index", [y, Tensor(shape: [2], ints: [0, 2]), Tensor(shape: [2], ints: [4, 0])],
                               ["index": .index([.all, .all, .at(1), .all]), "advanced": .ints([1, 3])])) == [9, 45, 69, 105])
        #expect(throws: OpError("selected index k out of range (k = 4, dimension -1 has size 3)")) { try run("topk", [x], ["k": .int(4)]) }
        #expect(throws: OpError("mat1 and mat2 shapes cannot be multiplied (2x3 and 2x3)")) { try run("matmul", [x, x]) }
        #expect(throws: OpError("shape [1099511627776, 1099511627776] is too large")) {
            try run("full", [], ["shape": .ints([1 << 40, 1 << 40]), "value": .float(0), "dtype": .string("float32")])
        }
    }
}
