import Engine
import Foundation
import Testing

@Suite struct GPT2TokenizerTests {
    /// Every string of a Hugging Face golden: same ids, same token strings, same decoded text.
    func check(golden: String, vocabulary: String) throws {
        let tokenizer = try GPT2Tokenizer(directory: vocabulary)
        let json = try Fixtures.json(golden)
        #expect(tokenizer.endOfTextId == json["eos_id"] as? Int)
        #expect(tokenizer.vocabularySize == json["vocab_size"] as? Int)
        let cases = try #require(json["cases"] as? [[String: Any]])
        #expect(cases.count == 21)
        for item in cases {
            let text = try #require(item["text"] as? String)
            let ids = try #require(item["ids"] as? [Int])
            let tokens = try #require(item["tokens"] as? [String])
            let decoded = try #require(item["decoded"] as? String)
            #expect(tokenizer.encode(text) == ids, "ids of \(text.debugDescription)")
            #expect(tokenizer.tokens(text) == tokens, "tokens of \(text.debugDescription)")
            #expect(tokenizer.decode(ids) == decoded, "decode of \(text.debugDescription)")
        }
    }

    @Test func matchesHuggingFaceOnTrainedVocabulary() throws {
        try check(golden: "tokenizer/bpe2000.json", vocabulary: Fixtures.tinyModel)
    }

    @Test func matchesHuggingFaceOnGPT2Vocabulary() throws {
        try check(golden: "tokenizer/gpt2.json", vocabulary: Fixtures.gpt2Vocabulary)
    }

    @Test func knownGPT2Ids() throws {
        let tokenizer = try GPT2Tokenizer(directory: Fixtures.gpt2Vocabulary)
        #expect(tokenizer.encode("The Eiffel Tower is in the city of") == [464, 412, 733, 417, 8765, 318, 287, 262, 1748, 286])
        #expect(tokenizer.encode(" Hello world") == [18435, 995])
        #expect(tokenizer.encode("before<|endoftext|>after").contains(50256))
    }

    @Test func invalidUTF8DecodesToReplacementCharacter() throws {
        let tokenizer = try GPT2Tokenizer(directory: Fixtures.gpt2Vocabulary)
        // "é" is two bytes; decoding only the first token of a split multi-byte character.
        let ids = tokenizer.encode("🙂")
        #expect(ids.count > 1)
        #expect(tokenizer.decode(ids) == "🙂")
        #expect(tokenizer.decode(ids.prefix(1)).contains("\u{FFFD}"))
    }

    @Test func missingFilesAreTypedErrors() {
        #expect(throws: EngineError.self) { try GPT2Tokenizer(directory: "/nonexistent") }
    }
}
