import Foundation
import Graph

/// The oracle's JSON format for saved values: tensors as `{"shape", "dtype", "data"}` with float32
/// data as the shortest decimal that round-trips the float32; lists and tuples as arrays; Python
/// scalars as JSON scalars. Dicts are skipped, as the oracle's harness does. Names that hold no data (the model, the tracer, unsaved proxies,
/// values of steps never reached) are left out.
enum JSONExport {
    /// The most text one saved value may take; a larger one is left out (a list of a million
    /// long strings would otherwise write terabytes).
    static let maxValueCharacters = 1 << 28

    static func saves(_ globals: [String: PyValue]) -> String {
        var fields: [String] = []
        for name in globals.keys.sorted() {
            guard let json = value(globals[name]!), json.utf8.count <= maxValueCharacters else { continue }
            fields.append(string(name) + ": " + json)
        }
        return "{" + fields.joined(separator: ", ") + "}"
    }

    static func value(_ v: PyValue, depth: Int = 0) -> String? {
        guard depth < 64 else { return nil }  // nested that deep, or inside itself: not data
        switch v {
        case .none: return nil  // the oracle's harness skips a None, and a list that holds one
        case let .bool(b): return b ? "true" : "false"
        case let .int(i): return String(i)
        case let .float(f): return number(f)
        case let .str(s): return s.utf8.count > maxValueCharacters ? nil : string(s)
        case let .list(l): return array(l.items, depth: depth + 1)
        case let .tuple(t): return array(t, depth: depth + 1)
        case let .size(d): return "[" + d.map(String.init).joined(separator: ", ") + "]"
        case .dict: return nil  // the oracle's harness skips dicts
        case let .tensor(t, _): return tensor(t)
        case let .saved(saved, _): return (try? saved.value).map(tensor)
        default: return nil
        }
    }

    static func array(_ items: [PyValue], depth: Int = 0) -> String? {
        var parts: [String] = []
        var characters = 0
        for item in items {
            guard let json = value(item, depth: depth) else { return nil }
            characters += json.utf8.count + 2
            guard characters <= maxValueCharacters else { return nil }
            parts.append(json)
        }
        return "[" + parts.joined(separator: ", ") + "]"
    }

    static func tensor(_ t: Tensor) -> String {
        let data: [String] = t.dtype == .bool ? t.bools.map { $0 ? "true" : "false" } : t.dtype != .float32 ? t.int64s.map { String($0) } : t.floats.map { f in
            if f.isNaN { return "NaN" }
            if f.isInfinite { return f < 0 ? "-Infinity" : "Infinity" }
            return "\(f)"
        }
        return "{\"shape\": [" + t.shape.map(String.init).joined(separator: ", ") + "], \"dtype\": \""
            + t.dtype.rawValue + "\", \"data\": [" + data.joined(separator: ", ") + "]}"
    }

    static func number(_ d: Double) -> String {
        if d.isNaN { return "NaN" }
        if d.isInfinite { return d < 0 ? "-Infinity" : "Infinity" }
        return Repr.float(d)
    }

    static func string(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }

    /// The whole file: `{"stdout": ..., "saves": {...}, "error": null | {"type", "message"}}`.
    static func document(stdout: String, saves: String, error: ScriptError?) -> String {
        let errorJSON = error.map { "{\"type\": " + string($0.kind.rawValue) + ", \"message\": " + string($0.description) + "}" } ?? "null"
        return "{\"stdout\": " + string(stdout) + ", \"saves\": " + saves + ", \"error\": " + errorJSON + "}\n"
    }
}
