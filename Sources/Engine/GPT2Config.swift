import Foundation

/// The fields of a Hugging Face `config.json` that define a GPT-2.
///
/// ```swift
/// let config = try GPT2Config.load(directory: "Models/tiny-license-gpt2")
/// print(config.nLayer, config.nEmbd)
/// ```
public struct GPT2Config: Codable, Sendable, Equatable {
    public var modelType: String?
    public var nLayer: Int
    public var nEmbd: Int
    public var nHead: Int
    public var nPositions: Int
    public var vocabSize: Int
    public var nInner: Int?
    public var layerNormEpsilon: Float
    public var activationFunction: String
    public var bosTokenId: Int?
    public var eosTokenId: Int?
    /// Dropout probabilities (inactive at inference; shown when the model is printed).
    public var embdPdrop: Double = 0.1
    public var attnPdrop: Double = 0.1
    public var residPdrop: Double = 0.1

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type"
        case nLayer = "n_layer"
        case nEmbd = "n_embd"
        case nHead = "n_head"
        case nPositions = "n_positions"
        case vocabSize = "vocab_size"
        case nInner = "n_inner"
        case layerNormEpsilon = "layer_norm_epsilon"
        case activationFunction = "activation_function"
        case bosTokenId = "bos_token_id"
        case eosTokenId = "eos_token_id"
        case embdPdrop = "embd_pdrop"
        case attnPdrop = "attn_pdrop"
        case residPdrop = "resid_pdrop"
    }

    public init(nLayer: Int, nEmbd: Int, nHead: Int, nPositions: Int, vocabSize: Int,
                layerNormEpsilon: Float = 1e-5, bosTokenId: Int? = nil, eosTokenId: Int? = nil) {
        self.modelType = "gpt2"
        self.nLayer = nLayer
        self.nEmbd = nEmbd
        self.nHead = nHead
        self.nPositions = nPositions
        self.vocabSize = vocabSize
        self.nInner = nil
        self.layerNormEpsilon = layerNormEpsilon
        self.activationFunction = "gelu_new"
        self.bosTokenId = bosTokenId
        self.eosTokenId = eosTokenId
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        modelType = try c.decodeIfPresent(String.self, forKey: .modelType)
        nLayer = try c.decode(Int.self, forKey: .nLayer)
        nEmbd = try c.decode(Int.self, forKey: .nEmbd)
        nHead = try c.decode(Int.self, forKey: .nHead)
        nPositions = try c.decode(Int.self, forKey: .nPositions)
        vocabSize = try c.decode(Int.self, forKey: .vocabSize)
        nInner = try c.decodeIfPresent(Int.self, forKey: .nInner)
        layerNormEpsilon = try c.decodeIfPresent(Float.self, forKey: .layerNormEpsilon) ?? 1e-5
        activationFunction = try c.decodeIfPresent(String.self, forKey: .activationFunction) ?? "gelu_new"
        bosTokenId = try c.decodeIfPresent(Int.self, forKey: .bosTokenId)
        eosTokenId = try c.decodeIfPresent(Int.self, forKey: .eosTokenId)
        embdPdrop = try c.decodeIfPresent(Double.self, forKey: .embdPdrop) ?? 0.1
        attnPdrop = try c.decodeIfPresent(Double.self, forKey: .attnPdrop) ?? 0.1
        residPdrop = try c.decodeIfPresent(Double.self, forKey: .residPdrop) ?? 0.1
    }

    /// GPT-2 small's shape (openai-community/gpt2), used by the benchmark.
    public static let gpt2Small = GPT2Config(nLayer: 12, nEmbd: 768, nHead: 12, nPositions: 1024,
                                             vocabSize: 50257, bosTokenId: 50256, eosTokenId: 50256)
    public static let gpt2Medium = GPT2Config(nLayer: 24, nEmbd: 1024, nHead: 16, nPositions: 1024,
                                              vocabSize: 50257, bosTokenId: 50256, eosTokenId: 50256)
    public static let gpt2Large = GPT2Config(nLayer: 36, nEmbd: 1280, nHead: 20, nPositions: 1024,
                                             vocabSize: 50257, bosTokenId: 50256, eosTokenId: 50256)
    public static let gpt2XL = GPT2Config(nLayer: 48, nEmbd: 1600, nHead: 25, nPositions: 1024,
                                          vocabSize: 50257, bosTokenId: 50256, eosTokenId: 50256)

    /// Identifies the architecture: workers, coordinator and clients of a cluster must agree on it.
    public var architectureId: String {
        "gpt2 n_layer=\(nLayer) n_embd=\(nEmbd) n_head=\(nHead) vocab=\(vocabSize) n_positions=\(nPositions)"
    }

    public var headDim: Int { nEmbd / nHead }
    public var innerDim: Int { nInner ?? 4 * nEmbd }

    /// Reads and validates `DIR/config.json`.
    public static func load(directory: String) throws -> GPT2Config {
        let path = (directory as NSString).appendingPathComponent("config.json")
        guard let data = FileManager.default.contents(atPath: path) else {
            throw EngineError.fileUnreadable(path: path, reason: "no such file or not readable")
        }
        let config: GPT2Config
        do {
            config = try JSONDecoder().decode(GPT2Config.self, from: data)
        } catch let DecodingError.keyNotFound(key, _) {
            throw EngineError.invalidConfig(path: path, reason: "missing key '\(key.stringValue)'")
        } catch let DecodingError.typeMismatch(_, context) {
            throw EngineError.invalidConfig(path: path, reason: "wrong type at '\(context.codingPath.map(\.stringValue).joined(separator: "."))'")
        } catch {
            throw EngineError.invalidConfig(path: path, reason: "not valid JSON")
        }
        try config.validate(path: path)
        return config
    }

    /// Checks that the numbers describe a GPT-2 this Engine can run.
    public func validate(path: String = "config") throws {
        func fail(_ reason: String) -> EngineError { .invalidConfig(path: path, reason: reason) }
        if let modelType, modelType != "gpt2" { throw fail("model_type is '\(modelType)', expected 'gpt2'") }
        guard ["gelu_new", "gelu_pytorch_tanh"].contains(activationFunction) else {
            throw fail("activation_function '\(activationFunction)' is not supported (gelu_new)")
        }
        for (name, value) in [("n_layer", nLayer), ("n_embd", nEmbd), ("n_head", nHead),
                              ("n_positions", nPositions), ("vocab_size", vocabSize), ("n_inner", innerDim)] {
            guard value > 0, value <= 1 << 24 else { throw fail("\(name) = \(value) is out of range") }
        }
        guard nEmbd % nHead == 0 else { throw fail("n_embd = \(nEmbd) is not divisible by n_head = \(nHead)") }
        guard layerNormEpsilon > 0 else { throw fail("layer_norm_epsilon must be positive") }
        for (name, id) in [("bos_token_id", bosTokenId), ("eos_token_id", eosTokenId)] {
            if let id, id < 0 || id >= vocabSize { throw fail("\(name) = \(id) is outside the vocabulary") }
        }
    }
}
