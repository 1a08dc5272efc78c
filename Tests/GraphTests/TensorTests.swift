import Graph
import Testing

/// The tensor type: typed storage, views without copies, broadcasting, conversions.
struct TensorTests {
    let x = Tensor(shape: [2, 3], floats: [0, 1, 2, 3, 4, 5])

    @Test func indexingMakesViewsWithTorchsRules() throws {
        let row = try x.indexed([.at(-1)])
        #expect(row.shape == [3] && row.floats == [3, 4, 5] && row.offset == 3)
        let column = try x.indexed([.all, .at(1)])
        #expect(column.shape == [2] && column.floats == [1, 4] && column.strides == [3])
        let stepped = try x.indexed([.all, .slice(start: nil, stop: nil, step: 2)])
        #expect(stepped.floats == [0, 2, 3, 5] && !stepped.isContiguous)
        let expanded = try x.indexed([.newAxis, .ellipsis, .slice(start: -2, stop: nil, step: nil)])
        #expect(expanded.shape == [1, 2, 2] && expanded.floats == [1, 2, 4, 5])
        #expect(try x.indexed([.slice(start: 5, stop: 9, step: nil)]).shape == [0, 3])
        #expect(throws: OpError("index 3 is out of bounds for dimension 1 with size 3", exception: .indexError)) { try x.indexed([.all, .at(3)]) }
        #expect(throws: OpError("too many indices for tensor of dimension 2")) { try x.indexed([.at(0), .at(0), .at(0)]) }
        #expect(throws: OpError("slice step must be positive")) { try x.indexed([.slice(start: nil, stop: nil, step: 0)]) }
        // A huge step takes one element rather than overflowing.
        #expect(try x.indexed([.slice(start: 0, stop: nil, step: Int.max)]).floats == [0, 1, 2])
    }

    @Test func broadcastingIsAViewWithZeroStrides() throws {
        let b = try Tensor(shape: [3], floats: [10, 20, 30]).expanded(to: [2, 3])
        #expect(b.strides == [0, 1] && b.floats == [10, 20, 30, 10, 20, 30])
        #expect(throws: OpError("cannot broadcast shape [2] to [2, 3]")) { try Tensor(shape: [2], floats: [1, 2]).expanded(to: [2, 3]) }
        #expect(try Kernels.broadcastShape([4, 1, 3], [2, 1]) == [4, 2, 3])
        #expect(throws: OpError("shapes [1, 4, 96] and [1, 9, 96] cannot be broadcast together")) {
            try Kernels.broadcastShape([1, 4, 96], [1, 9, 96])
        }
    }

    @Test func arithmeticFollowsTorchsTypePromotion() throws {
        let ints = Tensor(shape: [2], ints: [3, 4])
        #expect(try Kernels.binary(.add, ints, .scalar(Int64(1))) == Tensor(shape: [2], ints: [4, 5]))
        #expect(try Kernels.binary(.mul, ints, .scalar(Float(0.5))) == Tensor(shape: [2], floats: [1.5, 2]))
        #expect(try Kernels.binary(.div, ints, .scalar(Int64(2))).dtype == .float32)
        // A zero-dim int does not turn a float tensor into ints.
        #expect(try Kernels.binary(.sub, x, .scalar(Int64(1))).dtype == .float32)
        #expect(try Kernels.binary(.add, x, Tensor(shape: [3], floats: [1, 1, 1])).floats == [1, 2, 3, 4, 5, 6])
    }

    @Test func reductionsAlongADim() throws {
        #expect(try Kernels.reduce(x, .sum, dim: 1, keepdim: false) == Tensor(shape: [2], floats: [3, 12]))
        #expect(try Kernels.reduce(x, .mean, dim: 0, keepdim: true) == Tensor(shape: [1, 3], floats: [1.5, 2.5, 3.5]))
        #expect(try Kernels.reduce(x, .argmax, dim: -1, keepdim: false) == Tensor(shape: [2], ints: [2, 2]))
        #expect(try Kernels.reduce(x, .max, dim: nil, keepdim: false) == .scalar(Float(5)))
        #expect(throws: OpError("dimension out of range (expected to be in range of [-2, 1], but got 2)")) {
            try Kernels.reduce(x, .sum, dim: 2, keepdim: false)
        }
        let p = try Kernels.softmax(Tensor(shape: [2], floats: [0, 0]), dim: 0)
        #expect(p.floats == [0.5, 0.5])
    }

    /// torch treats NaN as the largest value: argmax is the first NaN's index, max is NaN. No trap.
    @Test func nanArgmaxIsDefined() throws {
        let v = Tensor(shape: [4], floats: [.nan, 1, .nan, 3])
        #expect(try Kernels.reduce(v, .argmax, dim: nil, keepdim: false) == .scalar(Int64(0)))
        #expect(try Kernels.reduce(v, .max, dim: 0, keepdim: false).floats[0].isNaN)
        let w = Tensor(shape: [1, 3], floats: [1, .nan, 2])
        #expect(try Kernels.reduce(w, .argmax, dim: 1, keepdim: false) == Tensor(shape: [1], ints: [1]))
        #expect(throws: OpError("argmax(): cannot reduce an empty dimension")) {
            try Kernels.reduce(Tensor(shape: [0], floats: []), .argmax, dim: nil, keepdim: false)
        }
    }

    @Test func dtypesConvertAsTorchDoes() {
        let f = Tensor(shape: [3], floats: [1.9, -1.9, 0])
        #expect(f.int64s == [1, -1, 0])
        #expect(f.bools == [true, true, false])
        #expect(Tensor(shape: [2], bools: [true, false]).floats == [1, 0])
        #expect(f.converted(to: .int64).dtype == .int64)
        #expect(Tensor(shape: [1], floats: [.nan]) == Tensor(shape: [1], floats: [.nan]))
    }

    @Test func liveBuffersAreViewedThenWritten() throws {
        var buffer: [Float] = [0, 0, 0, 0, 0, 0]
        try buffer.withUnsafeMutableBufferPointer { p in
            let live = Tensor.live(p, shape: [1, 2, 3])
            #expect(live.isLive)
            try live.indexed([.all, .at(-1), .all]).write(.scalar(Float(7)))
            let kept = live.contiguous()
            #expect(!kept.isLive && kept.floats == [0, 0, 0, 7, 7, 7])
        }
        #expect(buffer == [0, 0, 0, 7, 7, 7])
        #expect(throws: OpError("only a module's input or output can be assigned to")) { try x.write(.scalar(Float(1))) }
    }

    @Test func rowSubscriptThrowsOutOfRange() throws {
        #expect(try x[1].floats == [3, 4, 5])
        #expect(throws: OpError("index 2 is out of bounds for dimension 0 with size 2", exception: .indexError)) { try x[2] }
    }
}
