/// A torch function's Python signature, written as torch documents it:
/// `"logsumexp(input, dim, keepdim=False)"`. Parameters after `*` are keyword-only; `*shape`
/// takes the remaining positional arguments (`x.view(2, 3)`) as a tuple.
struct TorchSignature: Sendable {
    enum Default: Sendable, Equatable { case required, none, bool(Bool), int(Int), float(Double), string(String) }
    struct Parameter: Sendable {
        let name: String
        let fallback: Default
        let keywordOnly: Bool
        var variadic = false
    }

    let name: String
    let parameters: [Parameter]

    /// Parses the documented form (a malformed one is a programming error, caught by the tests
    /// that run every entry).
    init(_ text: String) {
        let open = text.firstIndex(of: "(")!
        name = String(text[..<open])
        let inside = text[text.index(after: open)..<text.lastIndex(of: ")")!]
        var keywordOnly = false
        var parameters: [Parameter] = []
        for raw in inside.split(separator: ",") {
            let part = raw.trimmingCharacters(in: .whitespaces)
            if part == "*" { keywordOnly = true; continue }
            guard !part.isEmpty else { continue }
            if part.hasPrefix("*") {
                parameters.append(Parameter(name: String(part.dropFirst()), fallback: .required, keywordOnly: false, variadic: true))
                keywordOnly = true
                continue
            }
            let pieces = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            parameters.append(Parameter(name: pieces[0], fallback: pieces.count > 1 ? Self.literal(pieces[1]) : .required, keywordOnly: keywordOnly))
        }
        self.parameters = parameters
    }

    private static func literal(_ s: String) -> Default {
        switch s {
        case "None": return .none
        case "True": return .bool(true)
        case "False": return .bool(false)
        default:
            if let i = Int(s) { return .int(i) }
            if let d = Double(s) { return .float(d) }
            return .string(s.trimmingCharacters(in: CharacterSet(charactersIn: "'\"")))
        }
    }
}

import Foundation

/// A call's arguments bound to a `TorchSignature` as Python binds them: by position, then by
/// keyword; defaults fill the rest.
struct BoundArguments {
    let function: String
    let values: [String: PyValue]
    unowned let runner: ScriptRunner
    let loc: SourceLocation

    init(_ signature: TorchSignature, _ args: [PyValue], _ kwargs: [String: PyValue], runner: ScriptRunner, loc: SourceLocation) throws {
        function = signature.name
        self.runner = runner
        self.loc = loc
        let positional = signature.parameters.filter { !$0.keywordOnly && !$0.variadic }
        let variadic = signature.parameters.first(where: \.variadic)
        guard args.count <= positional.count || variadic != nil else {
            throw runner.fail(.type, "\(signature.name)() takes \(positional.count) positional arguments but \(args.count) were given", loc)
        }
        var values: [String: PyValue] = [:]
        for (p, v) in zip(positional, args) { values[p.name] = v }
        if let variadic, args.count > positional.count { values[variadic.name] = .tuple(Array(args[positional.count...])) }
        for (k, v) in kwargs {
            guard signature.parameters.contains(where: { $0.name == k }) else {
                throw runner.fail(.type, "\(signature.name)() got an unexpected keyword argument '\(k)'", loc)
            }
            guard values[k] == nil else { throw runner.fail(.type, "\(signature.name)() got multiple values for argument '\(k)'", loc) }
            values[k] = v
        }
        for p in signature.parameters where values[p.name] == nil {
            switch p.fallback {
            case .required: throw runner.fail(.type, "\(signature.name)() missing required argument '\(p.name)'", loc)
            case .none: values[p.name] = PyValue.none
            case let .bool(b): values[p.name] = .bool(b)
            case let .int(i): values[p.name] = .int(i)
            case let .float(d): values[p.name] = .float(d)
            case let .string(s): values[p.name] = .str(s)
            }
        }
        self.values = values
    }

    subscript(_ name: String) -> PyValue { values[name] ?? .none }

    /// Whether the argument was given (not None).
    func given(_ name: String) -> Bool { if case .none = self[name] { false } else { true } }

    func int(_ name: String) throws -> Int? {
        switch try runner.resolved(self[name], loc) {
        case .none: return nil
        case let .int(i): return i
        case let .bool(b): return b ? 1 : 0
        case let .tensor(t, _) where t.count == 1 && t.dtype != .float32: return t.ints[0]
        case .proxy, .deferred:
            throw runner.fail(.unsupported, "\(function)(): '\(name)' from a traced value would make shapes depend on the data; use a static value", loc)
        case let other: throw runner.fail(.type, "\(function)(): argument '\(name)' must be int, not \(other.typeName)", loc)
        }
    }

    func double(_ name: String) throws -> Double? {
        switch try runner.resolved(self[name], loc) {
        case .none: return nil
        case let .int(i): return Double(i)
        case let .float(d): return d
        case let .bool(b): return b ? 1 : 0
        case let .tensor(t, _) where t.count == 1: return t.doubles[0]
        case let other: throw runner.fail(.type, "\(function)(): argument '\(name)' must be a number, not \(other.typeName)", loc)
        }
    }

    func bool(_ name: String) throws -> Bool { try runner.truth(self[name], loc) }

    func string(_ name: String) throws -> String? {
        switch try runner.resolved(self[name], loc) {
        case .none: return nil
        case let .str(s): return s
        case let other: throw runner.fail(.type, "\(function)(): argument '\(name)' must be str, not \(other.typeName)", loc)
        }
    }

    /// A variadic shape: `view(2, 3)`, `view((2, 3))`, `view([2, 3])` or `view(x.shape)`.
    func sizes(_ name: String) throws -> [Int] {
        let helper = Arguments(function: function, positional: [], keywords: [:], runner: runner, loc: loc)
        let value = try runner.resolved(self[name], loc)
        // One argument that is itself a sequence (a tuple, a list, x.shape) is the shape.
        if case let .tuple(items) = value, items.count == 1 {
            let only = try runner.resolved(items[0], loc)
            switch only {
            case .tuple, .list, .size: return try helper.sequence(only)
            default: break
            }
        }
        return try helper.sequence(value)
    }
}
