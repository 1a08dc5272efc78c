import Foundation
@testable import Script
import Testing

/// Each script that used to crash, trap, exhaust memory or run forever in the client, run through
/// the `nnsight` executable (a real process): it must end with exit status 1 (never a signal) and
/// a typed error naming its line and column, within seconds.
@Suite(.serialized) struct ScriptLimitsTests {
    static let model = Goldens.fixtures + "/models/tiny-gpt2"

    /// Runs `source` as a script file; returns the exit status, stdout, stderr and wall time.
    func run(_ source: String, _ flags: [String] = []) throws -> (status: Int32, stdout: String, stderr: String, seconds: Double) {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("limits-\(UUID().uuidString).py")
        try source.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let start = Date()
        let r = try Goldens.nnsight(["run", "--model", Self.model, "--in-process"] + flags + [file.path])
        return (r.status, r.stdout, r.stderr, Date().timeIntervalSince(start))
    }

    /// The process ended by itself with status 1 and stderr names `error` at `line:column`.
    func expectTypedError(_ r: (status: Int32, stdout: String, stderr: String, seconds: Double), _ error: String, at position: String) {
        #expect(r.status == 1, "exit status \(r.status), stderr: \(r.stderr)")
        #expect(r.stderr.contains(".py:\(position): \(error)"), "stderr: \(r.stderr)")
    }

    @Test func fiveThousandNestedParenthesesAreASyntaxError() throws {
        let r = try run("x = " + String(repeating: "(", count: 5000) + "1" + String(repeating: ")", count: 5000) + "\nprint(x)\n")
        expectTypedError(r, "SyntaxError: too many nested expressions", at: "1:55")
    }

    @Test(arguments: [
        ("print(9223372036854775807 + 1)\n", "OverflowError: 9223372036854775807 + 1 does not fit a 64-bit int"),
        ("print(-9223372036854775807 - 2)\n", "OverflowError: -9223372036854775807 - 2 does not fit a 64-bit int"),
        ("print(2**62 * 4)\n", "OverflowError: 4611686018427387904 * 4 does not fit a 64-bit int"),
        ("print(10**(10**9))\n", "OverflowError: 10 ** 1000000000 does not fit a 64-bit int"),
        ("print(abs(-9223372036854775807 - 1))\n", "OverflowError: abs(-9223372036854775808) does not fit a 64-bit int"),
        ("print(int(1e300))\n", "OverflowError: 1e+300 does not fit a 64-bit int"),
    ])
    func intsBeyond64BitsAreAnOverflowError(source: String, error: String) throws {
        expectTypedError(try run(source), error, at: "1:7")
    }

    @Test(arguments: [
        ("print(1/0)\n", "ZeroDivisionError: division by zero"),
        ("print(1//0)\n", "ZeroDivisionError: integer division or modulo by zero"),
        ("print(1 % 0)\n", "ZeroDivisionError: integer modulo by zero"),
        ("print(1.0/0)\n", "ZeroDivisionError: float division by zero"),
        ("print(1.0//0)\n", "ZeroDivisionError: float floor division by zero"),
        ("print(1.0 % 0)\n", "ZeroDivisionError: float modulo by zero"),
    ])
    func divisionByZeroIsZeroDivisionError(source: String, error: String) throws {
        expectTypedError(try run(source), error, at: "1:7")
    }

    @Test func aHugeStringIsAMemoryError() throws {
        expectTypedError(try run("s = 'a' * 10**12\n"), "MemoryError: the string would have over 10000000 characters", at: "1:5")
    }

    @Test func aLoopFillingMemoryStopsAtTheMemoryLimit() throws {
        let r = try run("a = []\nfor i in range(10**9):\n    a.append('x' * 1000000 + str(i))\n", ["--max-memory", "256"])
        expectTypedError(r, "MemoryError: the script's values grew the client by", at: "3:14")
        #expect(r.stderr.contains("over its limit of 256 MB (--max-memory sets it)"), "\(r.stderr)")
    }

    @Test func aComprehensionOfBigListsStopsAtTheMemoryLimit() throws {
        let r = try run("a = ['x' * 10**6 + str(i) for i in range(10**4)]\n", ["--max-memory", "256"])
        expectTypedError(r, "MemoryError: the script's values grew the client by", at: "1:6")
    }

    @Test func aRunawayLoopStopsAtTheStatementLimit() throws {
        let r = try run("x = 0\nfor i in range(10**10):\n    x += 1\n", ["--max-statements", "200000"])
        expectTypedError(r, "RuntimeError: the script ran over 200000 statements", at: "3:5")
        #expect(r.stderr.contains("--max-statements sets the limit"))
    }

    @Test func theDefaultLimitsAreTheDocumentedOnes() {
        let limits = ScriptLimits()
        #expect(limits.maxStatements == 10_000_000 && limits.maxMemoryBytes == 2048 << 20)
    }

    @Test func printingAListOfLongStringsIsBounded() throws {
        let r = try run("x = 'ab' * 10**6\ny = [x] * 10**6\nprint(len(str(y)))\n")
        expectTypedError(r, "MemoryError: the repr would have over 10000000 characters", at: "3:11")
        #expect(r.seconds < 30, "took \(r.seconds) s")
    }

    @Test func deepRecursionIsARecursionError() throws {
        expectTypedError(try run("def f(n):\n    return f(n + 1)\nf(0)\n"), "RecursionError: maximum recursion depth exceeded", at: "2:12")
    }

    @Test func decodingIdsOutsideTheVocabulary() throws {
        // As Hugging Face's tokenizer: unknown ids are skipped (here with a warning naming them),
        // a negative id is an OverflowError.
        let skipped = try run("print(repr(model.tokenizer.decode([99999999])))\n")
        #expect(skipped.status == 0 && skipped.stdout == "''\n", "\(skipped)")
        #expect(skipped.stderr.contains(".py:1: UserWarning: tokenizer.decode: token id 99999999 not in the vocabulary (2000 ids)"), "\(skipped.stderr)")
        expectTypedError(try run("print(model.tokenizer.decode([-1]))\n"), "OverflowError: out of range integral type conversion attempted", at: "1:7")
    }

    @Test(arguments: [("tracer.iter[10**6]", "1000000", "2:14"), ("tracer.iter[3]", "3", "2:14"), ("tracer.iter[5:]", "5", "2:14")])
    func iteratingOnlyStepsNeverGeneratedIsAnErrorBeforeAnythingRuns(loop: String, step: String, position: String) throws {
        let source = "with model.generate('Hi', max_new_tokens=3) as tracer:\n    for s in \(loop):\n        x = model.lm_head.output.save()\nprint(1)\n"
        let r = try run(source)
        expectTypedError(r, "IndexError: \(loop.replacingOccurrences(of: "10**6", with: "1000000")): step \(step) is never generated (max_new_tokens = 3", at: position)
        #expect(r.stdout.isEmpty)
    }
}
