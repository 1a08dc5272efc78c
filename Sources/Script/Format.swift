import Foundation
import Graph

/// Python's format-spec mini-language for f-strings: `[[fill]align][sign][0][width][,][.precision][type]`.
enum Format {
    static func apply(_ spec: String, to value: PyValue, _ runner: ScriptRunner, _ loc: SourceLocation) throws -> String {
        guard !spec.isEmpty else { return try runner.str(value, loc) }
        var chars = Array(spec)
        var fill: Character = " ", align: Character?
        if chars.count >= 2, "<>^=".contains(chars[1]) { fill = chars[0]; align = chars[1]; chars.removeFirst(2) }
        else if let c = chars.first, "<>^=".contains(c) { align = c; chars.removeFirst() }
        var sign: Character = "-"
        if let c = chars.first, "+- ".contains(c) { sign = c; chars.removeFirst() }
        if chars.first == "#" { chars.removeFirst() }
        if chars.first == "0" { if align == nil { fill = "0"; align = "=" }; chars.removeFirst() }
        var width = 0
        while let c = chars.first, let d = c.wholeNumberValue { width = width * 10 + d; chars.removeFirst(); guard width <= 10_000 else { throw runner.fail(.value, "format width too large", loc) } }
        var grouping = false
        if let c = chars.first, c == "," || c == "_" { grouping = true; chars.removeFirst() }
        var precision: Int?
        if chars.first == "." {
            chars.removeFirst()
            var p = 0
            while let c = chars.first, let d = c.wholeNumberValue { p = p * 10 + d; chars.removeFirst(); guard p <= 1_000 else { throw runner.fail(.value, "format precision too large", loc) } }
            precision = p
        }
        let type = chars.first
        guard chars.count <= 1 else { throw runner.fail(.value, "invalid format specifier '\(spec)'", loc) }

        var v = try runner.resolved(value, loc)
        if case let .tensor(t, _) = v, t.count == 1 { v = t.dtype == .float32 ? .float(t.doubles[0]) : t.dtype == .bool ? .bool(t.bools[0]) : .int(t.ints[0]) }
        var body: String
        var numeric = true
        var negative = false
        switch (v, type) {
        case let (.str(s), nil), let (.str(s), "s"?):
            numeric = false
            body = precision.map { String(s.prefix($0)) } ?? s
        case let (.int(i), nil), let (.int(i), "d"?):
            negative = i < 0
            body = String(abs(i))
        case let (.bool(b), nil):
            numeric = false
            body = b ? "True" : "False"
        default:
            guard let x = runner.number(v) ?? { if case let .int(i) = v { Double(i) } else { nil } }() else {
                if type == nil { numeric = false; body = try runner.str(v, loc); break }
                throw runner.fail(.value, "unknown format code '\(type.map(String.init) ?? "")' for object of type '\(v.typeName)'", loc)
            }
            negative = x < 0 || (x == 0 && x.sign == .minus)
            let m = abs(x)
            switch type {
            case "f"?, "F"?: body = String(format: "%.\(precision ?? 6)f", m)
            case "e"?, "E"?: body = String(format: "%.\(precision ?? 6)\(type!)", m)
            case "g"?, "G"?: body = String(format: "%.\(precision ?? 6)\(type!)", m)
            case "%"?: body = String(format: "%.\(precision ?? 6)f", m * 100) + "%"
            case "d"?:
                guard x == x.rounded() else { throw runner.fail(.value, "unknown format code 'd' for object of type 'float'", loc) }
                body = String(Int(m))
            case nil:
                if let precision { body = String(format: "%.\(max(precision, 1))g", m) } else {
                    body = Repr.float(m)
                    if case .int = v { body = String(Int(m)) }
                }
            default: throw runner.fail(.value, "unknown format code '\(type!)'", loc)
            }
        }
        if grouping && numeric {
            let parts = body.split(separator: ".", maxSplits: 1)
            var integer = String(parts[0])
            var grouped = ""
            while integer.count > 3 {
                grouped = "," + integer.suffix(3) + grouped
                integer = String(integer.dropLast(3))
            }
            body = integer + grouped + (parts.count > 1 ? "." + parts[1] : "")
        }
        var signText = ""
        if numeric {
            if negative { signText = "-" } else if sign == "+" { signText = "+" } else if sign == " " { signText = " " }
        }
        let content = signText + body
        guard content.count < width else { return content }
        let pad = width - content.count
        switch align ?? (numeric ? ">" : "<") {
        case "<": return content + String(repeating: fill, count: pad)
        case "^": return String(repeating: fill, count: pad / 2) + content + String(repeating: fill, count: pad - pad / 2)
        case "=": return signText + String(repeating: fill, count: pad) + body
        default: return String(repeating: fill, count: pad) + content
        }
    }
}
