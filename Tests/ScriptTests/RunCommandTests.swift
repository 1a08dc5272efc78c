import Foundation
import Testing

/// `nnsight run SCRIPT.py --model DIR --workers N --save-json FILE`, as users and CI call it.
@Suite struct RunCommandTests {
    func nnsight(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) { try Goldens.nnsight(arguments) }

    @Test(arguments: ScriptGoldenTests.cases, [1, 2])
    func oracleCaseThroughTheCLI(name: String, workers: Int) throws {
        let json = FileManager.default.temporaryDirectory.appendingPathComponent("run-\(name)-\(workers)-\(UUID().uuidString).json").path
        let base = Goldens.fixtures + "/oracle/" + name
        let result = try nnsight(["run", base + ".py", "--model", Goldens.fixtures + "/models/tiny-gpt2",
                                  "--workers", String(workers), "--save-json", json, "--threads", "1"])
        #expect(result.status == 0, "\(result.stderr)")
        let expected = try Goldens.load(base + ".json")
        let actual = try Goldens.load(json)
        #expect(result.stdout == expected["stdout"] as? String)
        let errors = Goldens.mismatches(expected: expected, actual: actual, extra: name == "iter_all" ? ["after", "marker"] : [])
        #expect(errors.isEmpty, "\(errors.joined(separator: "\n"))")
    }

    @Test func aFailingScriptStillWritesTheJSONAndExitsNonZero() throws {
        let script = FileManager.default.temporaryDirectory.appendingPathComponent("bad-\(UUID().uuidString).py").path
        try "print('hi')\nclass A:\n    pass\n".write(toFile: script, atomically: true, encoding: .utf8)
        let json = script + ".json"
        let result = try nnsight(["run", script, "--model", Goldens.fixtures + "/models/tiny-gpt2", "--workers", "1", "--save-json", json])
        #expect(result.status == 1)
        #expect(result.stderr.contains(":2:1: NotSupportedError: class definitions are not supported"))
        let document = try Goldens.load(json)
        #expect((document["error"] as? [String: Any])?["type"] as? String == "NotSupportedError")
    }
}
