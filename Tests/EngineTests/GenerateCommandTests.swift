import Engine
import Foundation
import Testing

/// The CLI's default job against the real nnsight's demo golden for the shipped model.
@Suite struct GenerateCommandTests {
    static let shippedModel = URL(fileURLWithPath: Fixtures.root).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Models/tiny-license-gpt2").path

    @Test(arguments: [[], ["--split", "2"], ["--split", "1,3"]])
    func defaultPromptMatchesTheDemoGolden(extra: [String]) throws {
        let golden = try #require(try Fixtures.json("../../Examples/demo/demo_generate.json")["stdout"] as? String)
        let output = try runExecutable("nnsight", ["generate", "--model", Self.shippedModel, "--threads", "1"] + extra)
        #expect(output == golden)
    }

    @Test func batchOfPromptsMatchesEachPromptAlone() throws {
        let prompts = ["This program is free software", "GNU"]
        let batched = try runExecutable("nnsight", ["generate", "--model", Self.shippedModel, "--max-new-tokens", "6"]
                                        + prompts.flatMap { ["--prompt", $0] })
        let alone = try prompts.map {
            try runExecutable("nnsight", ["generate", "--model", Self.shippedModel, "--max-new-tokens", "6", "--prompt", $0])
        }
        #expect(batched == alone.joined())
    }
}
