import Foundation
import Testing

/// The traced-value cases (Tests/Fixtures/oracle-traced; API cases in oracle-api; research
/// workflows in oracle-workflows), made with the real nnsight 0.8.1 by
/// scripts/make_traced_goldens.sh): shapes inside traces, print and Python on traced values,
/// guards, the torch op set and the Python subset, each run unchanged through `nnsight run` on
/// 1 and 3 worker processes. stdout must be identical and saves equal within the oracle's
/// tolerances. `v50k_*` cases run on the model with the real GPT-2 vocabulary, `builtin_*` (which
/// begin with the docs' `LanguageModel("openai-community/gpt2", ...)` preamble) on the built-in
/// model through `--model`.
@Suite struct TracedGoldenTests {
    static let directories = ["oracle-traced", "oracle-api", "oracle-workflows"]

    /// "oracle-traced/NAME" for every case.
    static let cases: [String] = directories.flatMap { dir in
        ((try? FileManager.default.contentsOfDirectory(atPath: Goldens.fixtures + "/" + dir)) ?? [])
            .filter { $0.hasSuffix(".py") }.map { dir + "/" + String($0.dropLast(3)) }
    }.sorted()

    @Test func thereAreEnoughCases() {
        #expect(Self.cases.filter { $0.hasPrefix("oracle-traced/") }.count >= 25)
        #expect(Self.cases.contains { $0.contains("/v50k_") })
        // The rest of the API (issue 13): every numbered point has cases of its own.
        let api = Self.cases.filter { $0.hasPrefix("oracle-api/") }
        #expect(api.count >= 25)
        // Research workflows as researchers write them (issue 25), on both fixture models.
        let workflows = Self.cases.filter { $0.hasPrefix("oracle-workflows/") }
        #expect(workflows.count >= 45)
        #expect(workflows.filter { $0.contains("/v50k_") }.count >= 5)
        for point in ["dropouts", "print_modules", "replace_", "skip_", "logit_lens", "call_through_layer", "parameters",
                      "token_inputs", "promptless_invoke", "session_", "stop", "cache_", "iter_past_end", "model_output",
                      "sampling", "block_all", "builtin_seed_setup", "preamble"] {
            #expect(api.contains { $0.contains(point) }, "no API case for \(point)")
        }
    }

    static func model(for name: String) -> String {
        if name.hasPrefix("v50k_") { return Goldens.fixtures + "/models/tiny-gpt2-vocab50k" }
        if name.hasPrefix("builtin_") { return Goldens.fixtures + "/../../Models/tiny-license-gpt2" }
        return Goldens.fixtures + "/models/tiny-gpt2"
    }

    @Test(arguments: cases, [1, 3])
    func caseMatchesNnsight(path: String, workers: Int) throws {
        let name = String(path.split(separator: "/").last ?? "")
        let json = FileManager.default.temporaryDirectory.appendingPathComponent("traced-\(name)-\(workers)-\(UUID().uuidString).json").path
        defer { try? FileManager.default.removeItem(atPath: json) }
        let model = Self.model(for: name)
        let result = try Goldens.nnsight(["run", Goldens.fixtures + "/" + path + ".py", "--model", model,
                                          "--workers", String(workers), "--save-json", json, "--threads", "1"])
        let expected = try Goldens.load(Goldens.fixtures + "/" + path + ".json")
        // A case whose golden records nnsight's error exits 1 with that error (compared below).
        #expect(result.status == (expected["error"] is NSNull ? 0 : 1), "\(result.stderr)")
        let actual = try Goldens.load(json)
        #expect(result.stdout == expected["stdout"] as? String, "stdout of \(name)")
        let errors = Goldens.mismatches(expected: expected, actual: actual)
        #expect(errors.isEmpty, "\(errors.joined(separator: "\n"))")
    }
}
