import Engine
import Foundation
import Testing

/// Model names as users write them: a directory, or a hub name found in the local Hugging Face
/// cache layout (`models--ORG--NAME/snapshots/<rev>`, `refs/main`), never downloaded.
@Suite struct ModelLocatorTests {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/models/tiny-gpt2").path

    /// A cache with `models--openai-community--gpt2` holding two snapshots, refs/main naming `abc`.
    static func makeCache(complete: Bool = true) throws -> String {
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("hf-\(UUID().uuidString)").path
        let repo = home + "/hub/models--openai-community--gpt2"
        for rev in ["abc", "old"] {
            try FileManager.default.createDirectory(atPath: repo + "/snapshots/" + rev, withIntermediateDirectories: true)
            for file in ModelLocator.required where complete || file != "model.safetensors" {
                try FileManager.default.createSymbolicLink(atPath: repo + "/snapshots/\(rev)/" + file, withDestinationPath: fixture + "/" + file)
            }
        }
        try FileManager.default.createDirectory(atPath: repo + "/refs", withIntermediateDirectories: true)
        try "abc\n".write(toFile: repo + "/refs/main", atomically: true, encoding: .utf8)
        return home
    }

    @Test func aDirectoryIsItself() throws {
        #expect(try ModelLocator.resolve(Self.fixture, environment: [:]) == Self.fixture)
    }

    @Test func aHubNameResolvesToTheSnapshotRefsMainNames() throws {
        let home = try Self.makeCache()
        defer { try? FileManager.default.removeItem(atPath: home) }
        let directory = try ModelLocator.resolve("openai-community/gpt2", environment: ["HF_HOME": home])
        #expect(directory == home + "/hub/models--openai-community--gpt2/snapshots/abc")
        // HF_HUB_CACHE comes first.
        #expect(try ModelLocator.resolve("openai-community/gpt2", environment: ["HF_HUB_CACHE": home + "/hub", "HF_HOME": "/nonexistent"]) == directory)
    }

    @Test func aMissingModelSaysWhereItLooked() throws {
        let home = try Self.makeCache()
        defer { try? FileManager.default.removeItem(atPath: home) }
        let error = #expect(throws: ModelLocator.NotFound.self) {
            try ModelLocator.resolve("openai-community/gpt2-xl", environment: ["HF_HOME": home])
        }
        let message = error?.description ?? ""
        #expect(message.contains("model 'openai-community/gpt2-xl' was not found"))
        #expect(message.contains(home + "/hub/models--openai-community--gpt2-xl"))
        #expect(message.contains("huggingface-cli download"))
    }

    @Test func aCorruptSnapshotNamesTheMissingFile() throws {
        let home = try Self.makeCache(complete: false)
        defer { try? FileManager.default.removeItem(atPath: home) }
        let error = #expect(throws: ModelLocator.NotFound.self) {
            try ModelLocator.resolve("openai-community/gpt2", environment: ["HF_HOME": home])
        }
        #expect(error?.description.contains("is not a complete GPT-2 checkpoint: missing model.safetensors") == true, "\(String(describing: error))")
    }
}
