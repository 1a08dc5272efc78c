/// GPT-2's pre-tokenisation, the regex
/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
/// written out as a scanner over Unicode scalars (same alternatives, same order, same backtracking).
enum PreTokenizer {
    private enum Class { case letter, number, space, other }

    private static func classify(_ s: Unicode.Scalar) -> Class {
        if s.properties.isWhitespace { return .space }
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        default: return .other
        }
    }

    /// Splits `text` into pre-tokens (ranges of its scalars).
    static func split(_ text: String) -> [Substring] {
        let scalars = Array(text.unicodeScalars)
        let classes = scalars.map(classify)
        let n = scalars.count
        var pieces: [Substring] = []
        var indices: [String.Index] = []
        indices.reserveCapacity(n + 1)
        var index = text.unicodeScalars.startIndex
        for _ in 0..<n {
            indices.append(index)
            index = text.unicodeScalars.index(after: index)
        }
        indices.append(text.endIndex)

        var i = 0
        while i < n {
            let end = matchLength(at: i, scalars: scalars, classes: classes) + i
            pieces.append(text[indices[i]..<indices[end]])
            i = end
        }
        return pieces
    }

    private static func matchLength(at i: Int, scalars: [Unicode.Scalar], classes: [Class]) -> Int {
        let n = scalars.count
        // 's 't 're 've 'm 'll 'd
        if scalars[i] == "'" && i + 1 < n {
            let a = scalars[i + 1]
            if a == "s" || a == "t" || a == "m" || a == "d" { return 2 }
            if i + 2 < n {
                let b = scalars[i + 2]
                if (a == "r" && b == "e") || (a == "v" && b == "e") || (a == "l" && b == "l") { return 3 }
            }
        }
        // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`
        let start = scalars[i] == " " ? i + 1 : i
        if start < n {
            let kind = classes[start]
            if kind != .space {
                var j = start + 1
                while j < n && classes[j] == kind { j += 1 }
                return j - i
            }
        }
        // `\s+(?!\S)|\s+`: a whitespace run, leaving its last scalar to the next word if one follows.
        var j = i
        while j < n && classes[j] == .space { j += 1 }
        if j == n || j - i == 1 { return j - i }
        return j - i - 1
    }
}
