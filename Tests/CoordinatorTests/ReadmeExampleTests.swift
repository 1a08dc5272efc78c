import Coordinator
import Engine
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

        // The edit happened: the Engine with the same edit as a hook at step 1 gives the same
        // tokens, and without it different ones.
        final class ZeroLast: HookHandler {
            func wants(_ p: HookPoint) -> Bool { p == HookPoint(.block(0), .output) }
            func visit(_ p: HookPoint, _ v: HookValue) throws {
                guard case let .floats(b, shape) = v else { return }
                let (T, C) = (shape[1], shape[2])
                for c in 0..<C { b[(T - 1) * C + c] = 0 }
            }
        }
        let pipeline = try Pipeline(directory: directory)
        let ids = model.tokenizer.encode("This program is free software; you can redistribute it")
        let parameters = GenerationParameters(maxNewTokens: 12, eosTokenId: model.config.eosTokenId, padTokenId: model.tokenizer.endOfTextId)
        let edited = try pipeline.generate(prompts: [ids], parameters) { $0 == 1 ? ZeroLast() : nil }.sequences[0]
        let plain = try pipeline.generate(prompts: [ids], parameters).sequences[0]
        #expect(try output.value[0].ints == edited)
        #expect(edited != plain)
        #expect(tokens.items.map { $0.ints[0] } == [edited[ids.count + 1], edited[ids.count + 2]])
    }
}
