import Foundation
import Script
import Testing

/// Scripts that begin as nnsight's documentation does: `from nnsight import LanguageModel` and
/// `model = LanguageModel("openai-community/gpt2", ...)`, the name found in the local Hugging
/// Face cache (here a temp cache whose snapshot is the tiny-gpt2 fixture).
@Suite struct PreambleTests {
    static let preamble = """
    from nnsight import LanguageModel
    import torch
    from torch import nn
    import torch.nn.functional as F
    model = LanguageModel("openai-community/gpt2", device_map="auto", dispatch=True)

    """

    @Test func theNameInThePreambleIsFound() {
        #expect(ScriptRunner.preambleModelName(in: Self.preamble) == "openai-community/gpt2")
        #expect(ScriptRunner.preambleModelName(in: "import nnsight\nmodel = nnsight.LanguageModel('x/y')\n") == "x/y")
        #expect(ScriptRunner.preambleModelName(in: "print(1)\n") == nil)
    }

    @Test func aScriptWithThePreambleRunsOnTheCachedModel() throws {
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("hf-\(UUID().uuidString)").path
        let snapshot = home + "/hub/models--openai-community--gpt2/snapshots/abc"
        try FileManager.default.createDirectory(atPath: snapshot, withIntermediateDirectories: true)
        for file in ["config.json", "model.safetensors", "vocab.json", "merges.txt", "generation_config.json"] {
            try FileManager.default.createSymbolicLink(atPath: snapshot + "/" + file, withDestinationPath: Goldens.fixtures + "/models/tiny-gpt2/" + file)
        }
        defer { try? FileManager.default.removeItem(atPath: home) }
        let script = FileManager.default.temporaryDirectory.appendingPathComponent("preamble-\(UUID().uuidString).py").path
        try (Self.preamble + """
        with model.generate("The Eiffel Tower is in the city of", max_new_tokens=2) as tracer:
            print(F.softmax(model.lm_head.output[0, -1], dim=-1).argmax().item())

        """).write(toFile: script, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: script) }
        let result = try Goldens.nnsight(["run", script, "--workers", "1", "--threads", "1"], environment: ["HF_HOME": home])
        #expect(result.status == 0, "\(result.stderr)")
        // 1052 is tiny-gpt2's token here (the built-in model would give another): the cache's model ran.
        #expect(result.stdout == "1052\n", "\(result.stdout)")

        // Without the cache the error says where it looked.
        let missing = try Goldens.nnsight(["run", script, "--workers", "1"], environment: ["HF_HOME": home + "/nope", "HF_HUB_CACHE": "", "HOME": home + "/nope"])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("model 'openai-community/gpt2' was not found; looked in"), "\(missing.stderr)")
    }
}
