import Foundation

/// Every field of a checkpoint's `config.json` as it is written there (`model.config.<name>` in
/// a script reads them, as transformers' config object exposes them).
///
/// ```swift
/// let fields = try ConfigFields(directory: "Models/tiny-license-gpt2")
/// fields["layer_norm_epsilon"]   // .double(1e-05)
/// ```
public struct ConfigFields: Sendable {
    /// A JSON value of the file.
    public indirect enum Value: Sendable, Equatable {
        case null, bool(Bool), int(Int), double(Double), string(String), list([Value]), object([String: Value])
    }

    public let values: [String: Value]

    public init(_ values: [String: Value] = [:]) { self.values = values }

    /// Reads `DIR/config.json` (a file that is not a JSON object gives no fields: the typed config
    /// is what validates it).
    public init(directory: String) throws {
        let path = (directory as NSString).appendingPathComponent("config.json")
        guard let data = FileManager.default.contents(atPath: path) else {
            throw EngineError.fileUnreadable(path: path, reason: "no such file or not readable")
        }
        guard let object = try? JSONDecoder().decode([String: Value].self, from: data) else {
            throw EngineError.invalidConfig(path: path, reason: "not a JSON object")
        }
        values = object
    }

    public subscript(_ name: String) -> Value? { values[name] }
}

extension ConfigFields.Value: Decodable {
    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let i = try? c.decode(Int.self) { self = .int(i) }
        else if let d = try? c.decode(Double.self) { self = .double(d) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let l = try? c.decode([ConfigFields.Value].self) { self = .list(l) }
        else { self = .object(try c.decode([String: ConfigFields.Value].self)) }
    }
}
