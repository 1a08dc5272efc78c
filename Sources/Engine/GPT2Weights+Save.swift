import Foundation

extension GPT2Weights {
    /// Writes a whole model as a Hugging Face directory: `config.json` and `model.safetensors`
    /// (names with the `transformer.` prefix, F32, a tied head not stored), as `save_pretrained`
    /// does. The benchmark uses it to give worker processes a GPT-2-small-shaped checkpoint.
    public func save(to directory: String) throws {
        guard layers == 0..<config.nLayer else {
            throw EngineError.invalidArgument("only a whole model can be saved, not layers \(layers)")
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let configJSON = """
        {"model_type": "gpt2", "n_layer": \(config.nLayer), "n_embd": \(config.nEmbd), "n_head": \(config.nHead), \
        "n_positions": \(config.nPositions), "vocab_size": \(config.vocabSize), "layer_norm_epsilon": \(config.layerNormEpsilon), \
        "activation_function": "gelu_new", "bos_token_id": \(config.bosTokenId ?? 0), "eos_token_id": \(config.eosTokenId ?? 0)}
        """
        try configJSON.write(toFile: directory + "/config.json", atomically: true, encoding: .utf8)

        let layout = Self.layout(config, layers: layers, untiedHead: untiedHead)
        var entries: [String] = []
        var offset = 0
        for (name, shape) in layout {
            let bytes = shape.reduce(1, *) * 4
            let stored = name == "lm_head.weight" ? name : "transformer." + name
            entries.append("\"\(stored)\":{\"dtype\":\"F32\",\"shape\":\(shape),\"data_offsets\":[\(offset),\(offset + bytes)]}")
            offset += bytes
        }
        var header = Array(("{\"__metadata__\":{\"format\":\"pt\"}," + entries.joined(separator: ",") + "}").utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        let path = directory + "/model.safetensors"
        guard FileManager.default.createFile(atPath: path, contents: nil), let file = FileHandle(forWritingAtPath: path) else {
            throw EngineError.fileUnreadable(path: path, reason: "cannot create the file")
        }
        defer { try? file.close() }
        var length = UInt64(header.count).littleEndian
        file.write(Data(bytes: &length, count: 8))
        file.write(Data(header))
        // In layout order, as f32 whatever the stored type (packed tensors unpacked).
        for (name, _) in layout {
            guard let (values, _) = floats(name) else { continue }
            values.withUnsafeBytes { file.write(Data($0)) }
        }
    }
}
