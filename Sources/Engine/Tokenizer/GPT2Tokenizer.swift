import Foundation

/// GPT-2's byte-level BPE, identical to Hugging Face's `GPT2TokenizerFast` (no BOS/EOS added,
/// `<|endoftext|>` matched as a special token anywhere in the text, decode without clean-up).
///
/// ```swift
/// let tokenizer = try GPT2Tokenizer(directory: "Models/tiny-license-gpt2")
/// let ids = tokenizer.encode("Hello world")
/// print(tokenizer.decode(ids))   // "Hello world"
/// ```
public final class GPT2Tokenizer: @unchecked Sendable {
    public static let endOfText = "<|endoftext|>"

    public let vocabularySize: Int
    /// Id of `<|endoftext|>` (also the pad token, as nnsight sets it).
    public let endOfTextId: Int
    private let encoder: [String: Int]
    private let decoder: [Int: String]
    private let mergeRanks: [String: Int]   // "left right" -> rank
    private let cacheLock = NSLock()
    private var cache: [Substring: [Int]] = [:]

    public convenience init(directory: String) throws {
        let dir = directory as NSString
        try self.init(vocabPath: dir.appendingPathComponent("vocab.json"),
                      mergesPath: dir.appendingPathComponent("merges.txt"))
    }

    public convenience init(vocabPath: String, mergesPath: String) throws {
        guard let vocabData = FileManager.default.contents(atPath: vocabPath) else {
            throw EngineError.fileUnreadable(path: vocabPath, reason: "no such file or not readable")
        }
        guard let vocab = try? JSONDecoder().decode([String: Int].self, from: vocabData) else {
            throw EngineError.invalidVocabulary(path: vocabPath, reason: "expected a JSON object of token -> id")
        }
        guard let mergesData = FileManager.default.contents(atPath: mergesPath),
              let mergesText = String(data: mergesData, encoding: .utf8) else {
            throw EngineError.fileUnreadable(path: mergesPath, reason: "no such file or not UTF-8")
        }
        var merges: [(String, String)] = []
        var lineNumber = 0
        for line in mergesText.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            if line.hasPrefix("#version") || line.isEmpty { continue }
            let parts = line.split(separator: " ")
            guard parts.count == 2 else {
                throw EngineError.invalidVocabulary(path: mergesPath, reason: "line \(lineNumber) is not a pair of symbols")
            }
            merges.append((String(parts[0]), String(parts[1])))
        }
        guard vocab[Self.endOfText] != nil else {
            throw EngineError.invalidVocabulary(path: vocabPath, reason: "no '\(Self.endOfText)' entry")
        }
        self.init(vocabulary: vocab, merges: merges)
    }

    /// A tokenizer from an in-memory vocabulary and merge list (ranked in order); the vocabulary
    /// must hold `<|endoftext|>`.
    public init(vocabulary vocab: [String: Int], merges: [(String, String)]) {
        var ranks: [String: Int] = [:]
        for (left, right) in merges where ranks[left + " " + right] == nil { ranks[left + " " + right] = ranks.count }
        encoder = vocab
        var inverse: [Int: String] = [:]
        for (token, id) in vocab { inverse[id] = token }
        decoder = inverse
        mergeRanks = ranks
        endOfTextId = vocab[Self.endOfText] ?? vocab.count
        vocabularySize = (vocab.values.max() ?? -1) + 1
    }

    /// The byte-level symbol that stands for `byte` (0...255) in vocabularies.
    public static func byteSymbol(_ byte: Int) -> String { String(ByteLevel.byteToScalar[byte]) }

    /// The 256 byte symbols and `<|endoftext|>`, no merges: for models without a vocabulary.
    public static func bytesOnly() -> GPT2Tokenizer {
        var vocab: [String: Int] = [:]
        for byte in 0..<256 { vocab[byteSymbol(byte)] = byte }
        vocab[endOfText] = 256
        return GPT2Tokenizer(vocabulary: vocab, merges: [])
    }

    /// Token ids of `text`.
    public func encode(_ text: String) -> [Int] {
        var ids: [Int] = []
        var rest = Substring(text)
        while let special = rest.range(of: Self.endOfText) {
            encodeOrdinary(rest[..<special.lowerBound], into: &ids)
            ids.append(endOfTextId)
            rest = rest[special.upperBound...]
        }
        encodeOrdinary(rest, into: &ids)
        return ids
    }

    /// The token strings of `text` (byte-level symbols such as `Ġworld`).
    public func tokens(_ text: String) -> [String] { encode(text).map { decoder[$0] ?? "" } }

    /// Text of `ids`; invalid UTF-8 byte sequences become U+FFFD, ids outside the vocabulary are skipped.
    public func decode<Ids: Sequence>(_ ids: Ids) -> String where Ids.Element: BinaryInteger {
        var bytes: [UInt8] = []
        for id in ids {
            guard let token = decoder[Int(id)] else { continue }
            if Int(id) == endOfTextId {
                bytes += Array(Self.endOfText.utf8)
                continue
            }
            for scalar in token.unicodeScalars {
                if let byte = ByteLevel.scalarToByte[scalar.value] { bytes.append(byte) }
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private func encodeOrdinary(_ text: Substring, into ids: inout [Int]) {
        guard !text.isEmpty else { return }
        for piece in PreTokenizer.split(String(text)) {
            cacheLock.lock()
            let cached = cache[piece]
            cacheLock.unlock()
            if let cached {
                ids += cached
                continue
            }
            let pieceIds = bpe(ByteLevel.encode(piece.utf8))
            cacheLock.lock()
            if cache.count < 100_000 { cache[piece] = pieceIds }
            cacheLock.unlock()
            ids += pieceIds
        }
    }

    /// Applies merges by rank (lowest first) until none applies, then looks the symbols up.
    private func bpe(_ word: String) -> [Int] {
        var symbols = word.unicodeScalars.map { String($0) }
        while symbols.count > 1 {
            var best = Int.max
            var bestIndex = -1
            for i in 0..<(symbols.count - 1) {
                if let rank = mergeRanks[symbols[i] + " " + symbols[i + 1]], rank < best {
                    best = rank
                    bestIndex = i
                }
            }
            if bestIndex < 0 { break }
            let (left, right) = (symbols[bestIndex], symbols[bestIndex + 1])
            var merged: [String] = []
            merged.reserveCapacity(symbols.count)
            var i = 0
            while i < symbols.count {
                if i + 1 < symbols.count && symbols[i] == left && symbols[i + 1] == right {
                    merged.append(left + right)
                    i += 2
                } else {
                    merged.append(symbols[i])
                    i += 1
                }
            }
            symbols = merged
        }
        // Every byte symbol is in a byte-level vocabulary; a trimmed vocabulary may lack one.
        return symbols.compactMap { encoder[$0] }
    }
}
