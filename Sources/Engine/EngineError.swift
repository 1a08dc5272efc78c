/// Every way the Engine refuses input. Messages name the file, tensor or value at fault.
public enum EngineError: Error, Equatable, CustomStringConvertible {
    case fileUnreadable(path: String, reason: String)
    case invalidConfig(path: String, reason: String)
    case invalidSafetensors(path: String, reason: String)
    case missingTensor(path: String, name: String)
    case tensorShape(path: String, name: String, expected: [Int], found: [Int])
    case unsupportedDType(path: String, name: String, dtype: String)
    case invalidVocabulary(path: String, reason: String)
    case promptTooLong(length: Int, limit: Int)
    case tokenOutOfRange(id: Int, vocabSize: Int)
    case invalidArgument(String)

    public var description: String {
        switch self {
        case let .fileUnreadable(path, reason): "cannot read \(path): \(reason)"
        case let .invalidConfig(path, reason): "\(path): not a usable GPT-2 config: \(reason)"
        case let .invalidSafetensors(path, reason): "\(path): invalid safetensors file: \(reason)"
        case let .missingTensor(path, name): "\(path): tensor '\(name)' is missing"
        case let .tensorShape(path, name, expected, found):
            "\(path): tensor '\(name)' has shape \(found), expected \(expected)"
        case let .unsupportedDType(path, name, dtype):
            "\(path): tensor '\(name)' has unsupported dtype \(dtype) (F32, F16 and BF16 load)"
        case let .invalidVocabulary(path, reason): "\(path): invalid tokenizer file: \(reason)"
        case let .promptTooLong(length, limit):
            "sequence of \(length) tokens exceeds the model's n_positions = \(limit)"
        case let .tokenOutOfRange(id, vocabSize): "token id \(id) is out of range [0, \(vocabSize))"
        case let .invalidArgument(message): message
        }
    }
}
