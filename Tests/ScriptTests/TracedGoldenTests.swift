import Foundation
import Testing

/// The traced-value cases (Tests/Fixtures/oracle-traced; API cases in oracle-api), made with the real nnsight 0.8.1 by
/// scripts/make_traced_goldens.sh): shapes inside traces, print and Python on traced values,
/// guards, the torch op set and the Python subset, each run unchanged through `nnsight run` on
/// 1 and 3 worker processes. stdout must be identical and saves equal within the oracle's
/// tolerances. `v50k_*` cases run on the model with the real GPT-2 vocabulary.
@Suite struct TracedGoldenTests {
    static let directories = ["oracle-traced", "oracle-api"]

    /// "oracle-traced/NAME" for every case.
    static let cases: [String] = directories.flatMap { dir in
        ((try? FileManager.default.contentsOfDirectory(atPath: Goldens.fixtures + "/" + dir)) ?? [])
            .filter { $0.hasSuffix(".py") }.map { dir + "/" + String($0.dropLast(3)) }
    }.sorted()

    @Test func thereAreEnoughCases() {
        #expect(Self.cases.filter { $0.hasPrefix("oracle-traced/") }.count >= 25)
        #expect(Self.cases.contains { $0.contains("/v50k_") })
    }

    @Test(arguments: cases, [1, 3])
    func caseMatchesNnsight(path: String, workers: Int) throws {
        let name = String(path.split(separator: "/").last ?? "")
        let json = FileManager.default.temporaryDirectory.appendingPathComponent("traced-\(name)-\(workers)-\(UUID().uuidString).json").path
        defer { try? FileManager.default.removeItem(atPath: json) }
        let model = Goldens.fixtures + "/models/" + (name.hasPrefix("v50k_") ? "tiny-gpt2-vocab50k" : "tiny-gpt2")
        let result = try Goldens.nnsight(["run", Goldens.fixtures + "/" + path + ".py", "--model", model,
                                          "--workers", String(workers), "--save-json", json, "--threads", "1"])
        #expect(result.status == 0, "\(result.stderr)")
        let expected = try Goldens.load(Goldens.fixtures + "/" + path + ".json")
        let actual = try Goldens.load(json)
        #expect(result.stdout == expected["stdout"] as? String, "stdout of \(name)")
        let errors = Goldens.mismatches(expected: expected, actual: actual)
        #expect(errors.isEmpty, "\(errors.joined(separator: "\n"))")
    }
}
