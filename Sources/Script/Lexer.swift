import Foundation

/// Python tokens for the subset trace scripts use, with indentation turned into INDENT/DEDENT.
enum TokenKind: Equatable {
    case name(String)
    case int(Int)
    case float(Double)
    case string(String, isFString: Bool)
    case op(String)
    case newline, indent, dedent, end
}

struct Token {
    var kind: TokenKind
    var location: SourceLocation
}

struct Lexer {
    let source: [Character]
    let file: String
    var i = 0
    var line = 1
    var column = 1
    var tokens: [Token] = []
    var indents = [0]
    var depth = 0  // open brackets: newlines inside them are not statement ends

    init(_ text: String, file: String) {
        source = Array(text.replacingOccurrences(of: "\r\n", with: "\n"))
        self.file = file
    }

    static let operators = ["**=", "//=", "...", "==", "!=", "<=", ">=", "+=", "-=", "*=", "/=", "%=", "**", "//", "->",
                            "+", "-", "*", "/", "%", "<", ">", "=", "(", ")", "[", "]", "{", "}", ",", ":", ".", ";", "@", "~", "&", "|", "^"]

    func fail(_ message: String, _ l: Int? = nil, _ c: Int? = nil) -> ScriptError {
        ScriptError(.syntax, message, file: file, line: l ?? line, column: c ?? column)
    }

    mutating func advance(_ n: Int = 1) {
        for _ in 0..<n where i < source.count {
            if source[i] == "\n" { line += 1; column = 1 } else { column += 1 }
            i += 1
        }
    }

    func peek(_ k: Int = 0) -> Character? { i + k < source.count ? source[i + k] : nil }

    mutating func tokenize() throws(ScriptError) -> [Token] {
        var atLineStart = true
        while i < source.count {
            if atLineStart && depth == 0 {
                // Measure indentation; blank and comment-only lines do not count.
                var width = 0, j = i
                while j < source.count, source[j] == " " || source[j] == "\t" {
                    width += source[j] == "\t" ? 8 - width % 8 : 1
                    j += 1
                }
                if j >= source.count || source[j] == "\n" || source[j] == "#" {
                    while i < source.count && source[i] != "\n" { advance() }
                    advance()
                    continue
                }
                advance(j - i)
                if width > indents.last! {
                    indents.append(width)
                    tokens.append(Token(kind: .indent, location: SourceLocation(line: line, column: 1)))
                } else {
                    while width < indents.last! {
                        indents.removeLast()
                        tokens.append(Token(kind: .dedent, location: SourceLocation(line: line, column: column)))
                    }
                    guard width == indents.last! else { throw fail("unindent does not match any outer indentation level", line, 1) }
                }
                atLineStart = false
            }
            let c = source[i]
            let start = SourceLocation(line: line, column: column)
            if c == "\n" {
                if depth == 0 {
                    tokens.append(Token(kind: .newline, location: start))
                    atLineStart = true
                }
                advance()
            } else if c == " " || c == "\t" {
                advance()
            } else if c == "#" {
                while i < source.count && source[i] != "\n" { advance() }
            } else if c == "\\" && peek(1) == "\n" {
                advance(2)
            } else if c.isLetter || c == "_" {
                var name = ""
                while let ch = peek(), ch.isLetter || ch.isNumber || ch == "_" { name.append(ch); advance() }
                let lower = name.lowercased()
                if ["f", "r", "rf", "fr", "b", "rb", "br", "u"].contains(lower), let q = peek(), q == "'" || q == "\"" {
                    tokens.append(Token(kind: try string(prefix: lower), location: start))
                } else {
                    tokens.append(Token(kind: .name(name), location: start))
                }
            } else if c.isNumber || (c == "." && peek(1)?.isNumber == true) {
                tokens.append(Token(kind: try number(), location: start))
            } else if c == "'" || c == "\"" {
                tokens.append(Token(kind: try string(prefix: ""), location: start))
            } else if let op = Self.operators.first(where: { matches($0) }) {
                if "([{".contains(op) { depth += 1 }
                if ")]}".contains(op) { depth = max(0, depth - 1) }
                advance(op.count)
                tokens.append(Token(kind: .op(op), location: start))
            } else {
                throw fail("invalid character '\(c)'")
            }
        }
        if tokens.last.map({ $0.kind != .newline }) ?? false {
            tokens.append(Token(kind: .newline, location: SourceLocation(line: line, column: column)))
        }
        while indents.count > 1 {
            indents.removeLast()
            tokens.append(Token(kind: .dedent, location: SourceLocation(line: line, column: column)))
        }
        tokens.append(Token(kind: .end, location: SourceLocation(line: line, column: column)))
        return tokens
    }

    func matches(_ op: String) -> Bool {
        for (k, ch) in op.enumerated() where peek(k) != ch { return false }
        return true
    }

    mutating func number() throws(ScriptError) -> TokenKind {
        var text = ""
        if peek() == "0", let x = peek(1), "xXoObB".contains(x) {
            advance(2)
            while let ch = peek(), ch.isHexDigit || ch == "_" { text.append(ch); advance() }
            let radix = "xX".contains(x) ? 16 : "oO".contains(x) ? 8 : 2
            guard let v = Int(text.replacingOccurrences(of: "_", with: ""), radix: radix) else { throw fail("invalid number literal") }
            return .int(v)
        }
        var isFloat = false
        while let ch = peek() {
            if ch.isNumber || ch == "_" { text.append(ch) }
            else if ch == "." && !isFloat { isFloat = true; text.append(ch) }
            else if (ch == "e" || ch == "E"), let n = peek(1), n.isNumber || n == "-" || n == "+" {
                isFloat = true
                text.append(ch); advance(); text.append(peek()!)
            } else { break }
            advance()
        }
        text = text.replacingOccurrences(of: "_", with: "")
        if isFloat {
            guard let v = Double(text) else { throw fail("invalid number literal '\(text)'") }
            return .float(v)
        }
        guard let v = Int(text) else { throw fail("integer literal '\(text)' is too large") }
        return .int(v)
    }

    mutating func string(prefix: String) throws(ScriptError) -> TokenKind {
        let (startLine, startColumn) = (line, column)
        let quote = peek()!
        let triple = peek(1) == quote && peek(2) == quote
        advance(triple ? 3 : 1)
        let raw = prefix.contains("r")
        var text = ""
        while true {
            guard let ch = peek() else { throw fail("unterminated string literal", startLine, startColumn) }
            if ch == quote && (!triple || (peek(1) == quote && peek(2) == quote)) {
                advance(triple ? 3 : 1)
                break
            }
            if ch == "\n" && !triple { throw fail("unterminated string literal", startLine, startColumn) }
            if ch == "\\" && raw {
                // A raw string keeps the backslash, which still protects the next character.
                advance()
                text.append("\\")
                if let e = peek() { text.append(e); advance() }
                continue
            }
            if ch == "\\" {
                advance()
                guard let e = peek() else { throw fail("unterminated string literal", startLine, startColumn) }
                let (escapeLine, escapeColumn) = (line, column - 1)
                advance()
                switch e {
                case "n": text.append("\n")
                case "t": text.append("\t")
                case "r": text.append("\r")
                case "a": text.append("\u{07}")
                case "b": text.append("\u{08}")
                case "f": text.append("\u{0C}")
                case "v": text.append("\u{0B}")
                case "\\": text.append("\\")
                case "'": text.append("'")
                case "\"": text.append("\"")
                case "\n": break
                case "0"..."7":
                    // Up to three octal digits.
                    var digits = String(e)
                    while digits.count < 3, let d = peek(), ("0"..."7").contains(d) { digits.append(d); advance() }
                    text.unicodeScalars.append(Unicode.Scalar(UInt8(Int(digits, radix: 8)! & 0xFF)))
                case "x", "u", "U":
                    let count = e == "x" ? 2 : e == "u" ? 4 : 8
                    var digits = ""
                    while digits.count < count, let d = peek(), d.isHexDigit { digits.append(d); advance() }
                    guard digits.count == count, let v = UInt32(digits, radix: 16), let scalar = Unicode.Scalar(v) else {
                        throw ScriptError(.syntax, "(unicode error) truncated or invalid \\\(e) escape", file: file, line: escapeLine, column: escapeColumn)
                    }
                    text.unicodeScalars.append(scalar)
                case "N":
                    guard peek() == "{" else { throw ScriptError(.syntax, "(unicode error) malformed \\N character escape", file: file, line: escapeLine, column: escapeColumn) }
                    advance()
                    var name = ""
                    while let d = peek(), d != "}", d != quote, d != "\n" { name.append(d); advance() }
                    guard peek() == "}", let scalar = UnicodeNames.scalar(named: name) else {
                        throw ScriptError(.syntax, "(unicode error) unknown Unicode character name '\(name)'", file: file, line: escapeLine, column: escapeColumn)
                    }
                    advance()
                    text.unicodeScalars.append(scalar)
                default: text.append("\\"); text.append(e)
                }
                continue
            }
            text.append(ch)
            advance()
        }
        return .string(text, isFString: prefix.contains("f"))
    }
}
