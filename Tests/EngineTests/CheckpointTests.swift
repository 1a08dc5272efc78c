@testable import Engine
import Foundation
import Testing

/// Loading Hugging Face checkpoints: both key styles, dtypes, partial loads, and corrupt files.
@Suite struct CheckpointTests {
    struct Tensor {
        var name: String
        var dtype = "F32"
        var shape: [Int]
        var bytes: Data
    }

    /// The fixture model's tensors as stored.
    static func fixtureTensors() throws -> [Tensor] {
        let file = try SafeTensorsFile(path: Fixtures.tinyModel + "/model.safetensors")
        return try file.entries.values.sorted { $0.name < $1.name }.map { entry in
            var values = [Float](repeating: 0, count: entry.count)
            try values.withUnsafeMutableBufferPointer { try file.read(entry.name, into: $0.baseAddress!) }
            return Tensor(name: entry.name, shape: entry.shape, bytes: values.withUnsafeBytes { Data($0) })
        }
    }

    /// Writes a safetensors file; `header` may be overridden to forge a corrupt one.
    static func write(_ tensors: [Tensor], to path: String, header override: String? = nil) throws {
        var entries: [String] = []
        var offset = 0
        for t in tensors {
            entries.append("\"\(t.name)\":{\"dtype\":\"\(t.dtype)\",\"shape\":\(t.shape),\"data_offsets\":[\(offset),\(offset + t.bytes.count)]}")
            offset += t.bytes.count
        }
        let header = Data((override ?? "{\"__metadata__\":{\"format\":\"pt\"}," + entries.joined(separator: ",") + "}").utf8)
        var data = Data()
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(header)
        for t in tensors { data.append(t.bytes) }
        try data.write(to: URL(fileURLWithPath: path))
    }

    /// A model directory with the fixture's config and the given tensors.
    static func modelDirectory(_ tensors: [Tensor], header: String? = nil, config: String? = nil) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let configText = try config ?? String(contentsOfFile: Fixtures.tinyModel + "/config.json", encoding: .utf8)
        try configText.write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        try write(tensors, to: dir + "/model.safetensors", header: header)
        return dir
    }

    static let prompt = [748, 638, 1727, 605, 361, 1422, 382, 316, 292, 289, 538, 334]

    static func logits(_ directory: String) throws -> [Float] {
        let pipeline = try Pipeline(directory: directory)
        return try pipeline.forward(StepInput(tokens: prompt), states: pipeline.makeStates(batch: 1, capacity: 12)).array
    }

    @Test func bareKeysWithMaskBuffersLoadLikePrefixedKeys() throws {
        var tensors = try Self.fixtureTensors().map { t -> Tensor in
            var copy = t
            copy.name = String(t.name.dropFirst("transformer.".count))
            return copy
        }
        // openai-community/gpt2 stores causal-mask buffers; they must be ignored.
        for l in 0..<4 {
            tensors.append(Tensor(name: "h.\(l).attn.bias", shape: [1, 1, 128, 128], bytes: Data(count: 128 * 128 * 4)))
        }
        let dir = try Self.modelDirectory(tensors)
        #expect(try Self.logits(dir) == Self.logits(Fixtures.tinyModel))
    }

    @Test(arguments: ["F16", "BF16"])
    func halfPrecisionIsConvertedOnLoad(dtype: String) throws {
        let tensors = try Self.fixtureTensors()
        let converted = tensors.map { t -> Tensor in
            let floats = t.bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            let halves: [UInt16] = floats.map { dtype == "F16" ? Float16($0).bitPattern : UInt16($0.bitPattern >> 16) }
            return Tensor(name: t.name, dtype: dtype, shape: t.shape, bytes: halves.withUnsafeBytes { Data($0) })
        }
        let dir = try Self.modelDirectory(converted)
        let file = try SafeTensorsFile(path: dir + "/model.safetensors")
        let original = try SafeTensorsFile(path: Fixtures.tinyModel + "/model.safetensors")
        let name = "transformer.h.1.mlp.c_fc.weight"
        var loaded = [Float](repeating: 0, count: 64 * 256), reference = loaded
        try loaded.withUnsafeMutableBufferPointer { try file.read(name, into: $0.baseAddress!) }
        try reference.withUnsafeMutableBufferPointer { try original.read(name, into: $0.baseAddress!) }
        let expected = reference.map { dtype == "F16" ? Float(Float16($0)) : Float(bitPattern: $0.bitPattern & 0xFFFF_0000) }
        #expect(loaded == expected)
        #expect(try Self.logits(dir).count == 2000)
    }

    @Test func storedLMHeadIsUsedInsteadOfTheTiedEmbedding() throws {
        var tensors = try Self.fixtureTensors()
        tensors.append(Tensor(name: "lm_head.weight", shape: [2000, 64], bytes: Data(count: 2000 * 64 * 4)))
        let dir = try Self.modelDirectory(tensors)
        #expect(try Self.logits(dir).allSatisfy { $0 == 0 })
    }

    @Test func aStageReadsOnlyItsOwnTensors() throws {
        // A file holding only what stage [2, 4) needs (wte for the tied head, blocks 2-3, ln_f).
        let tensors = try Self.fixtureTensors().filter { t in
            !(t.name.hasPrefix("transformer.h.0.") || t.name.hasPrefix("transformer.h.1.") || t.name == "transformer.wpe.weight")
        }
        let dir = try Self.modelDirectory(tensors)
        let config = try GPT2Config.load(directory: dir)
        let stage = try GPT2Weights.load(directory: dir, config: config, layers: 2..<4)
        #expect(stage.hasHead && !stage.hasEmbeddings)
        #expect(stage.parameterCount == 2000 * 64 + 2 * (4 * 64 + 64 * 192 + 192 + 64 * 64 + 64 + 64 * 256 + 256 + 256 * 64 + 64) + 128)
        #expect(throws: EngineError.missingTensor(path: dir + "/model.safetensors", name: "transformer.wpe.weight")) {
            try GPT2Weights.load(directory: dir, config: config, layers: 0..<2)
        }
    }

    // MARK: - bad input

    @Test func corruptFilesAreTypedErrorsNamingTheFileAndTensor() throws {
        let good = try Self.fixtureTensors()
        let path = { (dir: String) in dir + "/model.safetensors" }

        // Header length larger than the file.
        let huge = try Self.modelDirectory([])
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path(huge)))
        bytes.replaceSubrange(0..<8, with: withUnsafeBytes(of: UInt64(1 << 40).littleEndian) { Data($0) })
        try bytes.write(to: URL(fileURLWithPath: path(huge)))
        #expect(throws: EngineError.self) { try Pipeline(directory: huge) }

        // Not JSON.
        let garbage = try Self.modelDirectory(good, header: "{not json")
        #expect(throws: EngineError.invalidSafetensors(path: path(garbage), reason: "header is not a JSON object")) {
            try Pipeline(directory: garbage)
        }

        // Offsets past the end of the data.
        let lying = try Self.modelDirectory([good[0]], header: "{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,999999]}}")
        #expect(throws: EngineError.invalidSafetensors(path: path(lying), reason: "tensor 'x' has data_offsets [0, 999999] outside the \(good[0].bytes.count) data bytes")) {
            try Pipeline(directory: lying)
        }

        // Byte length disagreeing with the shape.
        let mismatch = try Self.modelDirectory([good[0]], header: "{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}")
        #expect(throws: EngineError.invalidSafetensors(path: path(mismatch), reason: "tensor 'x' of shape [3] and dtype F32 needs 12 bytes, data_offsets give 16")) {
            try Pipeline(directory: mismatch)
        }

        // A needed tensor with the wrong shape, an unsupported dtype, a missing tensor.
        var wrongShape = good
        let i = try #require(wrongShape.firstIndex { $0.name == "transformer.h.0.ln_1.weight" })
        wrongShape[i].shape = [16, 4]
        let wrongShapeDir = try Self.modelDirectory(wrongShape)
        #expect(throws: EngineError.tensorShape(path: path(wrongShapeDir), name: "transformer.h.0.ln_1.weight", expected: [64], found: [16, 4])) {
            try Pipeline(directory: wrongShapeDir)
        }
        var wrongType = good
        wrongType[i].dtype = "I32"
        let wrongTypeDir = try Self.modelDirectory(wrongType)
        #expect(throws: EngineError.unsupportedDType(path: path(wrongTypeDir), name: "transformer.h.0.ln_1.weight", dtype: "I32")) {
            try Pipeline(directory: wrongTypeDir)
        }
        let missing = try Self.modelDirectory(good.filter { $0.name != "transformer.ln_f.bias" })
        #expect(throws: EngineError.missingTensor(path: path(missing), name: "transformer.ln_f.bias")) {
            try Pipeline(directory: missing)
        }

        // Truncated file and empty file.
        let truncated = try Self.modelDirectory(good)
        let full = try Data(contentsOf: URL(fileURLWithPath: path(truncated)))
        try full.prefix(full.count / 2).write(to: URL(fileURLWithPath: path(truncated)))
        #expect(throws: EngineError.self) { try Pipeline(directory: truncated) }
        try Data().write(to: URL(fileURLWithPath: path(truncated)))
        #expect(throws: EngineError.invalidSafetensors(path: path(truncated), reason: "file is 0 bytes, shorter than the 8-byte header length")) {
            try Pipeline(directory: truncated)
        }
        #expect(throws: EngineError.fileUnreadable(path: "/nonexistent/model.safetensors", reason: "No such file or directory")) {
            try SafeTensorsFile(path: "/nonexistent/model.safetensors")
        }
    }

    @Test func configsThatAreNotGPT2AreRejected() throws {
        let good = try Self.fixtureTensors()
        let notGPT2 = try Self.modelDirectory(good, config: #"{"model_type": "llama", "n_layer": 4, "n_embd": 64, "n_head": 4, "n_positions": 128, "vocab_size": 2000}"#)
        #expect(throws: EngineError.invalidConfig(path: notGPT2 + "/config.json", reason: "model_type is 'llama', expected 'gpt2'")) {
            try Pipeline(directory: notGPT2)
        }
        let missingKey = try Self.modelDirectory(good, config: #"{"model_type": "gpt2", "n_layer": 4}"#)
        #expect(throws: EngineError.self) { try Pipeline(directory: missingKey) }
        let indivisible = try Self.modelDirectory(good, config: #"{"n_layer": 4, "n_embd": 64, "n_head": 5, "n_positions": 128, "vocab_size": 2000}"#)
        #expect(throws: EngineError.invalidConfig(path: indivisible + "/config.json", reason: "n_embd = 64 is not divisible by n_head = 5")) {
            try Pipeline(directory: indivisible)
        }
        let notJSON = try Self.modelDirectory(good, config: "]")
        #expect(throws: EngineError.invalidConfig(path: notJSON + "/config.json", reason: "not valid JSON")) {
            try Pipeline(directory: notJSON)
        }
        #expect(throws: EngineError.fileUnreadable(path: "/nonexistent/config.json", reason: "no such file or not readable")) {
            try Pipeline(directory: "/nonexistent")
        }
    }
}

@Suite struct CheckpointSaveTests {
    /// A saved model loads back into the same logits (the benchmark's workers rely on it).
    @Test func savedModelLoadsBackIdentically() throws {
        let config = GPT2Config(nLayer: 2, nEmbd: 32, nHead: 4, nPositions: 16, vocabSize: 50, eosTokenId: 49)
        let weights = try GPT2Weights.random(config: config, seed: 5)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("saved-\(UUID().uuidString)").path
        try weights.save(to: dir)
        let original = try Pipeline(stages: [GPT2(weights: weights)])
        let reloaded = try Pipeline(directory: dir, splits: [1])
        let step = StepInput(tokens: [1, 2, 3])
        #expect(try original.forward(step, states: original.makeStates(batch: 1, capacity: 3)).array
                == reloaded.forward(step, states: reloaded.makeStates(batch: 1, capacity: 3)).array)
    }
}
