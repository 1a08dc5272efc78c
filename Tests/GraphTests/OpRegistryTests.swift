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

    /// Each op's shape rule gives the type its kernel produces.
    @Test func rulesAgreeWithKernels() throws {
        let x = Tensor(shape: [2, 3], floats: [1, -2, 3, -4, 5, -6])
        let cases: [(String, [Value], [String: Attribute])] = [
            ("add", [.tensor(x), .tensor(.scalar(Int64(1)))], [:]), ("div", [.tensor(x), .tensor(x)], [:]),
            ("neg", [.tensor(x)], [:]), ("abs", [.tensor(x)], [:]), ("clone", [.tensor(x)], [:]),
            ("mean", [.tensor(x)], ["dim": .int(0)]), ("argmax", [.tensor(x)], [:]), ("max", [.tensor(x)], ["dim": .int(1), "keepdim": .bool(true)]),
            ("softmax", [.tensor(x)], ["dim": .int(-1)]), ("index", [.tensor(x)], ["index": .index([.newAxis, .at(1)])]),
        ]
        for (name, inputs, a) in cases {
            let spec = try #require(OpRegistry.spec(name))
            let value = try spec.run(inputs, Attributes(a))
            #expect(try spec.type(inputs.map(\.type), Attributes(a)) == value.type, "\(name)")
        }
    }
}
