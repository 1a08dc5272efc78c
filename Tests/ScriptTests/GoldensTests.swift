import Foundation
import Testing

/// The golden comparator fails where it must: a type mismatch, a dict's keys or values, nulls.
struct GoldensTests {
    func mismatches(_ expected: Any, _ actual: Any) -> [String] {
        var errors: [String] = []
        Goldens.compare(expected, actual, "x", &errors)
        return errors
    }

    @Test func typeMismatchesFail() {
        #expect(!mismatches(NSNumber(value: 3), "3").isEmpty)
        #expect(!mismatches(NSNumber(value: 3), NSNull()).isEmpty)
        #expect(!mismatches("a", NSNumber(value: 1)).isEmpty)
        #expect(!mismatches(NSNull(), NSNumber(value: 0)).isEmpty)
        #expect(!mismatches([NSNumber(value: 1)], NSNumber(value: 1)).isEmpty)
        #expect(mismatches(NSNumber(value: 3), NSNumber(value: 3.00001)).isEmpty)
    }

    @Test func dictsAreCompared() {
        let e: [String: Any] = ["a": NSNumber(value: 1), "b": "s"]
        #expect(mismatches(e, ["a": NSNumber(value: 1), "b": "s"] as [String: Any]).isEmpty)
        #expect(!mismatches(e, ["a": NSNumber(value: 2), "b": "s"] as [String: Any]).isEmpty)
        #expect(!mismatches(e, ["a": NSNumber(value: 1)] as [String: Any]).isEmpty)
        #expect(!mismatches(e, [NSNumber(value: 1)]).isEmpty)
    }
}
