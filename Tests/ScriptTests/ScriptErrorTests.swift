import Coordinator
import Foundation
@testable import Script
import Testing

/// Anything outside the subset, and any mistake, is an error with file, line, column and the
/// construct's name; nothing is silently ignored.
@Suite(.serialized) struct ScriptErrorTests {
    static let model = Goldens.fixtures + "/models/tiny-gpt2"

    func parseError(_ source: String) -> ScriptError? {
        do {
            var parser = try Parser(source, file: "t.py")
            _ = try parser.parseModule()
            return nil
        } catch { return error }
    }

    @Test(arguments: [
        ("class A:\n    pass\n", 1, 1, "class definitions"),
        ("try:\n    pass\n", 1, 1, "try statements"),
        ("x = [1, 2\n", 2, 1, "expected ']'"),
        ("def f(a, a):\n    pass\n", 1, 11, "duplicate argument 'a'"),
        ("x = 1 if True\n", 1, 14, "expected 'else'"),
        ("x = [1, 2\n", 2, 1, "expected ']'"),
        ("if True\n    x = 1\n", 1, 8, "expected ':'"),
        ("x = 1\n  y = 2\n", 2, 1, "unexpected indent"),
        ("x = 'abc\n", 1, 5, "unterminated string literal"),
        ("x = '\\x4'\n", 1, 6, "truncated or invalid \\x escape"),
        ("x = '\\N{NO SUCH NAME}'\n", 1, 6, "unknown Unicode character name"),
    ])
    func unsupportedAndMalformedSyntax(source: String, line: Int, column: Int, fragment: String) throws {
        let error = try #require(parseError(source), "no error for \(source.debugDescription)")
        #expect(error.line == line && error.column == column, "\(error)")
        #expect(error.description.contains(fragment), "\(error)")
        #expect(error.description.hasPrefix("t.py:\(line):\(column): "))
    }

    @Test func importsOfTorchAndNnsightParse() {
        #expect(parseError("import torch\nimport nnsight\nimport torch.nn as nn\nfrom torch import nn\nimport os\n") == nil)
    }

    func runError(_ source: String) throws -> ScriptError? {
        let model = try LanguageModel.load(Self.model, stages: 1)
        return ScriptRunner(model: model, file: "t.py").run(source: source).error
    }

    @Test func runtimeErrorsNameTheLine() throws {
        let cases: [(String, Int, Int, String)] = [
            ("print(undefined_name)\n", 1, 7, "NameError: name 'undefined_name' is not defined"),
            ("with model.generate('Hello', max_new_tokens=2, bogus=1) as tracer:\n    pass\n", 1, 6, "unexpected keyword argument 'bogus'"),
            ("with model.generate('Hello', max_new_tokens=2) as tracer:\n    x = model.lm_head.output.argmax(dimension=-1)\n", 2, 9, "unexpected keyword argument 'dimension'"),
            ("with model.generate('Hello', max_new_tokens=2) as tracer:\n    x = model.transformer.h[7].output\n", 2, 9, "transformer.h[7]: index out of range for 4 layers"),
            ("with model.generate('Hello', max_new_tokens=2) as tracer:\n    x = model.transformer.foo\n", 2, 9, "has no attribute 'foo'"),
            ("with model.generate('Hello', max_new_tokens=2) as tracer:\n    x = model.lm_head.output[0, 99].save()\n", 2, 9, "index 99 is out of bounds"),
            ("with model.generate('Hello', max_new_tokens=2) as tracer:\n    for s in tracer.iter[1]:\n        x = model.lm_head.output.save()\nprint(s)\n", 4, 7, "name 's' is not defined"),
            ("with model.generate('Hello', max_new_tokens=2) as tracer:\n    h = model.transformer.h[0].output[0]\nprint(h)\n", 3, 7, "'h' was computed inside a trace but not saved"),
            ("x = [1, 2][5]\n", 1, 5, "index 5 out of range"),
        ]
        for (source, line, column, fragment) in cases {
            let error = try #require(try runError(source), "no error for \(source.debugDescription)")
            #expect(error.line == line && error.column == column, "\(error) for \(source.debugDescription)")
            #expect(error.description.contains(fragment), "\(error)")
        }
    }

    /// A failing script still reports what it printed, and the JSON carries the error.
    @Test func failedScriptWritesErrorIntoTheJSON() throws {
        let model = try LanguageModel.load(Self.model, stages: 1)
        let outcome = ScriptRunner(model: model, file: "t.py").run(source: "print('before')\nx = 3\ny = nope\n")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(outcome.json.utf8)) as? [String: Any])
        #expect(json["stdout"] as? String == "before\n")
        #expect((json["saves"] as? [String: Any])?["x"] as? Int == 3)
        let error = try #require(json["error"] as? [String: Any])
        #expect(error["type"] as? String == "NameError")
        #expect((error["message"] as? String)?.contains("t.py:3:5") == true)
    }

    /// Thousands of mutated scripts: the parser answers each (a tree or a ScriptError), never
    /// crashing or hanging.
    @Test func fuzzedScriptsNeverCrashTheParser() throws {
        let seeds = try FileManager.default.contentsOfDirectory(atPath: Goldens.fixtures + "/oracle")
            .filter { $0.hasSuffix(".py") }
            .map { try String(contentsOfFile: Goldens.fixtures + "/oracle/" + $0, encoding: .utf8) }
        let alphabet = Array("()[]{}:,.=+-*/%<>!'\"\\#\n\t  abcxyz019_fFrR@~^&|;")
        var rng = SystemRandomNumberGenerator()
        var parsed = 0, refused = 0
        let start = Date()
        for i in 0..<4000 {
            var chars = Array(seeds[i % seeds.count])
            for _ in 0..<(1 + Int.random(in: 0..<6, using: &rng)) where !chars.isEmpty {
                let at = Int.random(in: 0..<chars.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: chars[at] = alphabet.randomElement(using: &rng)!
                case 1: chars.remove(at: at)
                default: chars.insert(alphabet.randomElement(using: &rng)!, at: at)
                }
            }
            if i % 10 == 0 { chars = (0..<Int.random(in: 0..<120, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! } }
            if parseError(String(chars)) == nil { parsed += 1 } else { refused += 1 }
        }
        #expect(parsed + refused == 4000)
        #expect(refused > 100 && parsed > 100)
        #expect(Date().timeIntervalSince(start) < 120, "the parser is far too slow on fuzzed input")
    }
}
