import Engine
import Foundation
import Testing

/// Paths into Tests/Fixtures (tests never read outside the repository).
enum Fixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").path
    static let tinyModel = root + "/models/tiny-gpt2"
    static let gpt2Vocabulary = root + "/tokenizer/gpt2"
    static func path(_ relative: String) -> String { root + "/" + relative }

    /// A golden JSON file as a dictionary.
    static func json(_ relative: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path(relative)))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// The `saves` of an oracle case.
    static func saves(_ name: String) throws -> [String: Any] {
        try #require(try json("oracle/\(name).json")["saves"] as? [String: Any])
    }

    static func loadPipeline(splits: [Int] = []) throws -> Pipeline {
        try Pipeline(directory: tinyModel, splits: splits)
    }
}

/// A tensor value from a golden: `{"shape", "dtype", "data"}`.
struct GoldenTensor {
    let shape: [Int]
    let data: [Double]

    init(_ value: Any?) throws {
        let object = try #require(value as? [String: Any])
        shape = try #require(object["shape"] as? [Int])
        data = try #require(object["data"] as? [NSNumber]).map(\.doubleValue)
    }

    var ints: [Int] { data.map { Int($0) } }
}

/// `|actual - expected| <= 1e-4 + 1e-4 |expected|` elementwise, the oracle's tolerance.
func expectClose(_ actual: [Float], _ expected: GoldenTensor, _ what: String,
                 sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(actual.count == expected.data.count, "\(what): \(actual.count) values, golden has \(expected.data.count)",
            sourceLocation: sourceLocation)
    var worst = 0.0, worstIndex = -1
    for (i, (a, e)) in zip(actual, expected.data).enumerated() {
        let excess = abs(Double(a) - e) - (1e-4 + 1e-4 * abs(e))
        if excess > worst { worst = excess; worstIndex = i }
    }
    #expect(worstIndex < 0, "\(what): element \(worstIndex) is \(worstIndex < 0 ? 0 : actual[worstIndex]), golden \(worstIndex < 0 ? 0 : expected.data[worstIndex])",
            sourceLocation: sourceLocation)
}

/// A hook handler for tests: copies tensors at chosen points and applies chosen edits.
final class Recorder: HookHandler {
    var captures: [HookPoint: [Float]] = [:]
    var shapes: [HookPoint: [Int]] = [:]
    let capture: Set<HookPoint>
    let edits: [HookPoint: (UnsafeMutableBufferPointer<Float>, [Int]) -> Void]

    init(capture: Set<HookPoint> = [], edits: [HookPoint: (UnsafeMutableBufferPointer<Float>, [Int]) -> Void] = [:]) {
        self.capture = capture
        self.edits = edits
    }

    func wants(_ point: HookPoint) -> Bool { capture.contains(point) || edits[point] != nil }

    func visit(_ point: HookPoint, _ value: HookValue) throws {
        guard case let .floats(buffer, shape) = value else { return }
        edits[point]?(buffer, shape)
        if capture.contains(point) {
            captures[point] = Array(buffer)
            shapes[point] = shape
        }
    }
}

/// Rows `[b]` of a `(B, T, C)` buffer at position `t` (negative counts from the end).
func slice(_ values: [Float], shape: [Int], batch b: Int, position t: Int) -> [Float] {
    let (T, C) = (shape[1], shape[2])
    let p = t < 0 ? T + t : t
    return Array(values[((b * T + p) * C)..<((b * T + p + 1) * C)])
}
