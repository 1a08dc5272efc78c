import Coordinator
import Foundation
import Script
import Testing

/// Thousands of mutated trace scripts through the parser and the evaluator (with a model):
/// every one ends with a result or a typed error; none crashes or hangs.
@Suite struct ScriptFuzzTests {
    /// SplitMix64: the same mutants on every run.
    struct Random {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9e37_79b9_7f4a_7c15
            var z = state
            z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
            z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }
    }

    static let fragments = [
        "while True:\n    pass\n", "def f(x):\n    return f(x)\nf(1)\n", "(" , ")", "[", "]", ":", ",", ".save()", ".item()", ".tolist()",
        ".shape", "[0]", "[-1]", "[:, -1]", "[[0, 1]]", " if ", " else ", "lambda x: x", "torch.softmax(", "torch.zeros(",
        "10**9", "2**70", "-1", "0", "1e308", "float('nan')", "'\\x4'", "'\\N{BULLET}'", "\"", "'", "f'{", "}", "\n    ", "\n",
        "for i in range(10**12):\n    pass\n", "x = []\nx.append(x)\nprint(x)\n", "tracer.iter[:]", "model.transformer.h[9]",
        "max_new_tokens=999", "print(", "nnsight.save(", "{", "}", "@", "~", "&", "|", "**", "//", "%", "not ", " and ", " or ",
        "with model.trace('Hello'):\n    ", "if model.lm_head.output[0, -1].max() > 0:\n        ",
    ]

    static func seeds() throws -> [String] {
        var out: [String] = []
        for dir in ["/oracle-traced", "/oracle"] {
            let path = Goldens.fixtures + dir
            for name in try FileManager.default.contentsOfDirectory(atPath: path).sorted() where name.hasSuffix(".py") {
                out.append(try String(contentsOfFile: path + "/" + name, encoding: .utf8))
            }
        }
        return out
    }

    static func mutate(_ source: String, _ random: inout Random) -> String {
        var chars = Array(source)
        for _ in 0...random.below(3) {
            guard !chars.isEmpty else { break }
            let at = random.below(chars.count)
            switch random.below(5) {
            case 0: chars.remove(at: at)
            case 1: chars.insert(contentsOf: fragments[random.below(fragments.count)], at: at)
            case 2:
                let length = min(random.below(40), chars.count - at)
                chars.insert(contentsOf: chars[at..<(at + length)], at: at)
            case 3:
                // Replace a number with another, possibly huge or negative.
                if let digit = chars[at...].firstIndex(where: \.isNumber) {
                    chars.replaceSubrange(digit...digit, with: ["0", "1", "-3", "99", "100000", "65"][random.below(6)])
                }
            default:
                let end = min(chars.count, at + random.below(20))
                chars.removeSubrange(at..<end)
            }
        }
        return String(chars)
    }

    @Test func mutatedScriptsEndWithAResultOrATypedError() throws {
        let model = try LanguageModel.load(Goldens.fixtures + "/models/tiny-gpt2", stages: 1)
        let seeds = try Self.seeds()
        // FUZZ_SEED and FUZZ_COUNT explore further by hand; CI runs the default.
        let environment = ProcessInfo.processInfo.environment
        var random = Random(state: UInt64(environment["FUZZ_SEED"] ?? "") ?? 12)
        var ran = 0
        let count = Int(environment["FUZZ_COUNT"] ?? "") ?? 2000
        for i in 0..<count {
            let source = Self.mutate(seeds[i % seeds.count], &random)
            if let only = environment["FUZZ_ONLY"].flatMap(Int.init), only != i { continue }
            if let from = environment["FUZZ_FROM"].flatMap(Int.init), i < from { continue }
            if environment["FUZZ_VERBOSE"] != nil { FileHandle.standardError.write(Data("mutant \(i)\n\(source)\n".utf8)) }
            let runner = ScriptRunner(model: model, file: "fuzz.py")
            runner.limits.maxWhileIterations = 2_000
            runner.limits.maxStatements = 20_000
            // The assertion is the loop finishing: a trap or a hang fails the test run.
            if runner.run(source: source).error == nil { ran += 1 }
        }
        if environment["FUZZ_ONLY"] != nil || environment["FUZZ_FROM"] != nil { return }
        #expect(ran > count / 20, "mutants should often still run (\(ran) of \(count) did)")
    }
}
