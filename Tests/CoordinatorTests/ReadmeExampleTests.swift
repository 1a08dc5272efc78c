import Coordinator
import Foundation
import Testing

/// The README's Swift example, as printed there, on the shipped model.
@Suite struct ReadmeExampleTests {
    @Test func readmeTracingExampleRuns() throws {
        let directory = URL(fileURLWithPath: Oracle.fixtures).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Models/tiny-license-gpt2").path
        let model = try LanguageModel.load(directory, stages: 2)
        var tokens: SavedList!, output: Saved!
        try model.generate("This program is free software; you can redistribute it", maxNewTokens: 12) { tracer in
            tokens = tracer.list().save()
            for step in tracer.iter[1..<3] {                       // also iter[...], iter[0], iter[[0, 2, 4]]
                if step == 1 { model.transformer.h[0].output[0][.all, -1, .all] = 0 }
                tokens.append(model.lmHead.output[0, -1].argmax(dim: -1))
            }
            output = model.generator.output.save()                 // or tracer.result
        }
        let text = model.tokenizer.decode(try output.value[0].ints)
        #expect(text.hasPrefix("This program is free software; you can redistribute it"))
        #expect(tokens.count == 2)
        #expect(try output.value.shape == [1, 24])
    }
}
