import Foundation
import Testing
import Wire

@Suite struct TensorCodecTests {
    @Test func floatAndIntTensorsRoundTrip() throws {
        let floats = HostTensor(shape: [2, 3, 4], floats: (0..<24).map { Float($0) - 11.5 })
        #expect(try HostTensor(floats.wire) == floats)
        #expect(floats.wire.data.count == 24 * 4)
        let ints = HostTensor(shape: [3], ints: [-1, 0, Int64.max])
        #expect(try HostTensor(ints.wire) == ints)
        let scalar = HostTensor(shape: [], ints: [1052])
        #expect(try HostTensor(scalar.wire) == scalar)
        let empty = HostTensor(shape: [0, 5], floats: [])
        #expect(try HostTensor(empty.wire) == empty)
    }

    @Test func badTensorsAreRefusedWithTheReason() {
        var t = HostTensor(shape: [4], floats: [1, 2, 3, 4]).wire
        t.data.removeLast()
        #expect(throws: WireError.invalidTensor("shape [4] of float32 needs 16 bytes, got 15")) { try HostTensor(t) }
        var negative = HostTensor(shape: [1], floats: [1]).wire
        negative.shape = [-1]
        #expect(throws: WireError.invalidTensor("dimension -1 in shape [-1]")) { try HostTensor(negative) }
        var overflow = HostTensor(shape: [1], floats: [1]).wire
        overflow.shape = [1 << 30, 1 << 30, 1 << 30]
        #expect(throws: WireError.self) { try HostTensor(overflow) }
        var deep = HostTensor(shape: [1], floats: [1]).wire
        deep.shape = [Int64](repeating: 1, count: 9)
        #expect(throws: WireError.invalidTensor("rank 9 exceeds 8")) { try HostTensor(deep) }
        var untyped = HostTensor(shape: [1], floats: [1]).wire
        untyped.dtype = .unspecified
        #expect(throws: WireError.self) { try HostTensor(untyped) }
    }
}
