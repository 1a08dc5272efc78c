import Coordinator
import Foundation
import Testing
import Worker

/// Goldens from the real nnsight 0.8.1 (Tests/Fixtures/oracle), and the fixture model.
enum Oracle {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").path
    static let model = fixtures + "/models/tiny-gpt2"
    static let p1 = "The Eiffel Tower is in the city of"

    static func saves(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: fixtures + "/oracle/\(name).json"))
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        return try #require(json["saves"] as? [String: Any])
    }

    static func tensor(_ value: Any?) throws -> (shape: [Int], data: [Double]) {
        let object = try #require(value as? [String: Any])
        return (try #require(object["shape"] as? [Int]), try #require(object["data"] as? [NSNumber]).map(\.doubleValue))
    }

    static func list(_ value: Any?) throws -> [Any] { try #require(value as? [Any]) }

    /// Shape exact, values within 1e-4 + 1e-4 |expected| (ids exact).
    static func expectMatch(_ actual: Tensor, _ golden: Any?, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let expected = try tensor(golden)
        #expect(actual.shape == expected.shape, "\(what): shape \(actual.shape), golden \(expected.shape)", sourceLocation: sourceLocation)
        guard actual.count == expected.data.count else { return }
        let bad = zip(actual.doubles, expected.data).enumerated().first { abs($1.0 - $1.1) > 1e-4 + 1e-4 * abs($1.1) }
        #expect(bad == nil, "\(what): element \(bad?.offset ?? 0) is \(bad?.element.0 ?? 0), golden \(bad?.element.1 ?? 0)",
                sourceLocation: sourceLocation)
    }
}
