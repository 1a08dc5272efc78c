import Coordinator
import Foundation
import Script
import Testing

/// Traced values in scripts: compile-time errors (with the script's line:column and the shapes
/// or construct), output streamed in program order as steps arrive, and the Python subset.
@Suite struct TracedValueTests {
    static let model = Goldens.fixtures + "/models/tiny-gpt2"
    static let prompt = "The Eiffel Tower is in the city of"

    func run(_ source: String, stages: Int = 1, echo: ((String) -> Void)? = nil) throws -> ScriptRunner.Outcome {
        let model = try LanguageModel.load(Self.model, stages: stages)
        return ScriptRunner(model: model, file: "t.py").run(source: source, echo: echo)
    }

    /// `import torch`, then a trace whose body starts at line 3.
    func trace(_ body: String) -> String {
        "import torch\nwith model.trace(\"\(Self.prompt)\"):\n" + body.split(separator: "\n", omittingEmptySubsequences: false).map { "    " + $0 }.joined(separator: "\n") + "\n"
    }

    /// Each error is found before the model runs, at the line:column of the expression.
    @Test(arguments: [
        // A shape mismatch: both shapes are named.
        ("a = model.transformer.h[0].output[0][:, :4] + model.transformer.h[1].output[0]", 3, 9,
         ["shapes [1, 4, 64] and [1, 12, 64] cannot be broadcast together", "transformer.h[0].output at step 0"]),
        // An index past a dimension.
        ("x = model.transformer.h[0].output[0][0, 12]", 3, 9, ["index 12 is out of bounds for dimension 1 with size 12"]),
        // A matmul of the wrong inner size.
        ("h = model.transformer.h[0].output[0][0]\ny = h @ h", 4, 9, ["mat1 and mat2 shapes cannot be multiplied (12x64 and 12x64)"]),
        // A loop whose length depends on a traced value.
        ("n = model.lm_head.output[0, -1].argmax()\nfor i in range(n.item()):\n    pass", 4, 14, ["range() of a traced value", "static bound"]),
        ("x = model.lm_head.output[0, -1].max()\nwhile x > 0:\n    pass", 4, 11, ["while loop on a traced value", "guard the body with if"]),
        // Unknown methods and torch functions.
        ("x = model.transformer.h[0].output[0].frobnicate()", 3, 9, ["has no attribute 'frobnicate'"]),
        ("x = torch.frobnicate(model.transformer.h[0].output[0])", 3, 9, ["module 'torch' has no attribute 'frobnicate'"]),
        // A condition that is not one value.
        ("if model.transformer.h[0].output[0] > 0:\n    pass", 3, 8, ["Boolean value of Tensor with more than one value is ambiguous", "[1, 12, 64]"]),
        // A bool mask whose result shape would depend on the data.
        ("h = model.transformer.h[0].output[0]\nx = h[h > 0]", 4, 9, ["traced (or multi-dimensional) bool mask", "torch.where"]),
    ])
    func compileTimeErrorsNameLineColumnAndShapes(body: String, line: Int, column: Int, fragments: [String]) throws {
        let outcome = try run(trace(body))
        let error = try #require(outcome.error, "no error for \(body)")
        #expect(error.line == line && error.column == column, "\(error)")
        for fragment in fragments { #expect(error.description.contains(fragment), "\(error) lacks \(fragment)") }
    }

    /// A print inside `iter[:]` prints once per step, as that step's values arrive: each line
    /// is out before generation has finished.
    @Test(arguments: [1, 3]) func printsStreamPerStep(stages: Int) throws {
        let model = try LanguageModel.load(Self.model, stages: stages)
        var log: [String] = []
        let previous = model.onEvent
        model.onEvent = { event in
            if case let .tokens(step, _) = event { log.append("tokens \(step)") }
            previous?(event)
        }
        let source = """
        with model.generate("\(Self.prompt)", max_new_tokens=4) as tracer:
            for step in tracer.iter[:]:
                print("step", step, model.lm_head.output[0, -1].argmax().item())
        """
        let outcome = ScriptRunner(model: model, file: "t.py").run(source: source + "\n", echo: { log.append($0.trimmingCharacters(in: .newlines)) })
        #expect(outcome.error == nil, "\(String(describing: outcome.error))")
        #expect(outcome.stdout == "step 0 1052\nstep 1 808\nstep 2 1162\nstep 3 393\n")
        let first = try #require(log.firstIndex(of: "step 0 1052")), last = try #require(log.firstIndex(of: "tokens 3"))
        #expect(first < last, "step 0's line came after generation finished: \(log)")
    }

    /// Python values inside a guarded branch take effect only where the branch ran.
    @Test func plainAssignmentsInsideAGuardFollowTheBranch() throws {
        let outcome = try run(trace("""
        flag = "unset"
        if model.lm_head.output[0, -1].max() > 1e9:
            flag = "huge"
        else:
            flag = "normal"
        print(flag)
        """))
        #expect(outcome.error == nil, "\(String(describing: outcome.error))")
        #expect(outcome.stdout == "normal\n")
    }

    /// A tuple output prints as torch does, and a number computed from a traced value (.item())
    /// flows back into the model as its graph form.
    @Test func tupleOutputsPrintAndItemValuesFlowBack() throws {
        let outcome = try run(trace("""
        out = model.transformer.h[0].attn.output
        print(len(out), out[1], type(out[0]).__name__)
        scale = model.transformer.h[0].output[0][0, -1, 0].item()
        model.transformer.h[1].output[0][:] *= scale * 0
        z = model.transformer.h[1].output[0].abs().sum().save()
        """) + "print(z)\n")
        #expect(outcome.error == nil, "\(String(describing: outcome.error))")
        #expect(outcome.stdout == "2 None Tensor\ntensor(0., grad_fn=<SumBackward0>)\n")
    }

    /// Indexing with int lists, int tensors (traced ones too) and a bool mask the script holds.
    @Test func advancedIndexing() throws {
        let outcome = try run(trace("""
        h = model.transformer.h[0].output[0][0, -1]
        a = h[[0, 2]]
        b = h[torch.tensor([True, False, True])]
        top = model.transformer.h[0].output[0][0, -1, :8].argsort(descending=True)[:2]
        c = h[:8][top]
        print(a.shape, b.shape, c.shape, bool(torch.all(a == b)))
        """))
        #expect(outcome.error == nil, "\(String(describing: outcome.error))")
        #expect(outcome.stdout == "torch.Size([2]) torch.Size([2]) torch.Size([2]) True\n")
    }

    @Test func theWhileLimitAndRecursionLimitAreErrors() throws {
        let loop = try run("i = 0\nwhile True:\n    i += 1\n")
        #expect(loop.error?.description.contains("while loop ran over 1000000 iterations") == true, "\(String(describing: loop.error))")
        let recursion = try run("def f(n):\n    return f(n + 1)\nf(0)\n")
        #expect(recursion.error?.description.contains("maximum recursion depth exceeded") == true, "\(String(describing: recursion.error))")
    }

    @Test func pythonSubset() throws {
        let outcome = try run("""
        def clamp(v, lo=0, hi=10):
            if v < lo:
                return lo
            return hi if v > hi else v
        square = lambda x: x * x
        d = {"a": 1, 2: "two"}
        d["b"] = square(3)
        words = "  alpha,beta  ".strip().split(",")
        total = 0
        n = 0
        while n < 5:
            n += 1
            if n == 2:
                continue
            total += n
        print(clamp(-3), clamp(42), clamp(7), d, "-".join(words).upper(), total)
        print("x" in d, 2 in d, None is None, isinstance(total, int), sorted([3, 1, 2], key=lambda v: -v), min([4, 2, 9]), round(3.14159, 2), abs(-2.5))
        print("{:>5}|{:<4}|{name}".format(1, "ab", name="z"), "%d-%s" % (3, "k"), r"raw\\n", "tab\\there", "\\x41\\u00e9\\U0001F600", "\\N{BULLET}")
        """ + "\n")
        #expect(outcome.error == nil, "\(String(describing: outcome.error))")
        #expect(outcome.stdout == """
        0 10 7 {'a': 1, 2: 'two', 'b': 9} ALPHA-BETA 13
        False True True True [3, 2, 1] 2 3.14 2.5
            1|ab  |z 3-k raw\\n tab\there Aé😀 •

        """)
    }

    /// torch.manual_seed + rand/randn: torch's Mersenne Twister and its per-element normal path
    /// bit for bit (rand, randn below 16 elements); the batched path of 16 or more uses torch's
    /// scalar formulas, where torch on AVX2 machines uses vector approximations: equal to 4
    /// decimals, not bit for bit (see the README).
    @Test func seededRandomNumbersAreTorchs() throws {
        let outcome = try run("""
        import torch
        torch.manual_seed(0)
        a = torch.rand(3)
        b = torch.randn(4)
        torch.manual_seed(42)
        c = torch.randn(20)
        print(a.tolist(), b.tolist())
        print(c[:3], c[-2:])
        torch.manual_seed(1)
        print(torch.randn(16)[:4], torch.randn(33)[-3:])
        """ + "\n")
        #expect(outcome.error == nil, "\(String(describing: outcome.error))")
        // What torch 2.13.0 (CPU) prints for the same calls.
        #expect(outcome.stdout == """
        [0.49625658988952637, 0.7682217955589294, 0.08847743272781372] [0.3643381893634796, 0.13439632952213287, 0.16421625018119812, 0.3057610094547272]
        tensor([1.9269, 1.4873, 0.9007]) tensor([ 0.8034, -0.6216])
        tensor([-1.5256, -0.7502, -0.6540, -1.6095]) tensor([-3.3312, -0.7479,  1.1173])

        """)
    }
}
