import Foundation

/// `\N{NAME}` escapes: ICU's Unicode name table, through Foundation's transform.
enum UnicodeNames {
    static func scalar(named name: String) -> Unicode.Scalar? {
        guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == " " || $0 == "-" }) else { return nil }
        guard let text = "\\N{\(name.uppercased())}".applyingTransform(StringTransform("Name-Any"), reverse: false),
              text.unicodeScalars.count == 1 else { return nil }
        return text.unicodeScalars.first
    }
}
