import Coordinator
import Foundation
import Graph

/// One call of a Python builtin: what it was given, and where.
struct BuiltinCall {
    let name: String
    let args: [PyValue]
    let kwargs: [String: PyValue]
    let loc: SourceLocation
    unowned let runner: ScriptRunner

    /// Refuses keywords the builtin does not take (Python's TypeError).
    func keywords(_ allowed: Set<String>) throws {
        if let bad = kwargs.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw runner.fail(.type, "\(name)() got an unexpected keyword argument '\(bad)'", loc)
        }
    }

    /// The one positional argument, resolved.
    func one() throws -> PyValue {
        guard args.count == 1 else { throw runner.fail(.type, "\(name)() takes exactly one argument (\(args.count) given)", loc) }
        return try runner.resolved(args[0], loc)
    }

    /// Positional argument `i`, resolved (nil when absent).
    func arg(_ i: Int) throws -> PyValue? { i < args.count ? try runner.resolved(args[i], loc) : nil }

    /// This call again later (a builtin on a value that arrives while the model runs).
    func deferred(_ operands: [PyValue]) -> PyValue {
        runner.deferred(operands) { [runner] in try runner.builtin(name, args, kwargs, loc) }
    }
}

/// Python's builtins a script can call: one entry each, its function beside it in
/// `ScriptRunner+Builtins.swift`. A bare name a script uses resolves here; `importedOnly` ones
/// are reached through their module (`from nnsight import LanguageModel`).
enum Builtins {
    typealias Function = @Sendable (BuiltinCall) throws -> PyValue

    static let table: [String: Function] = [
        "print": { try $0.runner.builtinPrint($0) },
        "len": { try $0.runner.builtinLen($0) },
        "range": { try $0.runner.builtinRange($0) },
        "enumerate": { try $0.runner.builtinEnumerate($0) },
        "zip": { try $0.runner.builtinZip($0) },
        "map": { try $0.runner.builtinMap($0) },
        "filter": { try $0.runner.builtinMap($0) },
        "list": { c in c.args.isEmpty ? .list(PyList()) : .list(PyList(try c.runner.iterate(try c.one(), c.loc))) },
        "tuple": { c in c.args.isEmpty ? .tuple([]) : .tuple(try c.runner.iterate(try c.one(), c.loc)) },
        "set": { try $0.runner.builtinSet($0) },
        "dict": { try $0.runner.builtinDict($0) },
        "str": { c in .str(c.args.isEmpty ? "" : try c.runner.str(try c.one(), c.loc)) },
        "repr": { c in .str(try c.runner.repr(try c.one(), c.loc)) },
        "type": { try $0.runner.builtinType($0) },
        "int": { try $0.runner.builtinInt($0) },
        "float": { try $0.runner.builtinFloat($0) },
        "bool": { try $0.runner.builtinBool($0) },
        "abs": { try $0.runner.builtinAbs($0) },
        "min": { try $0.runner.builtinExtreme($0) },
        "max": { try $0.runner.builtinExtreme($0) },
        "sum": { try $0.runner.builtinSum($0) },
        "any": { try $0.runner.builtinAnyAll($0) },
        "all": { try $0.runner.builtinAnyAll($0) },
        "round": { try $0.runner.builtinRound($0) },
        "sorted": { try $0.runner.builtinSorted($0) },
        "reversed": { c in .list(PyList(try c.runner.iterate(try c.one(), c.loc).reversed())) },
        "isinstance": { try $0.runner.builtinIsinstance($0) },
        "dir": { c in
            let names = c.args.isEmpty ? Array((c.runner.locals.last.map { Array($0.keys) } ?? Array(c.runner.globals.keys))) : []
            return .list(PyList(names.sorted().map { .str($0) }))
        },
        "slice": { try $0.runner.builtinSlice($0) },
        "hasattr": { c in
            guard c.args.count == 2, case let .str(name) = try c.runner.resolved(c.args[1], c.loc) else {
                throw c.runner.fail(.type, "hasattr expected 2 arguments: an object and an attribute name", c.loc)
            }
            return .bool((try? c.runner.attribute(c.args[0], name, c.loc)) != nil)
        },
        "getattr": { c in
            guard c.args.count == 2 || c.args.count == 3, case let .str(name) = try c.runner.resolved(c.args[1], c.loc) else {
                throw c.runner.fail(.type, "getattr expected 2 or 3 arguments: an object, an attribute name and a default", c.loc)
            }
            do { return try c.runner.attribute(c.args[0], name, c.loc) } catch let error as ScriptError where error.kind == .attribute && c.args.count == 3 {
                return c.args[2]
            }
        },
        "iter": { c in .iterator(PyIterator(try c.runner.iterate(try c.one(), c.loc))) },
        "next": { try $0.runner.builtinNext($0) },
        "divmod": { try $0.runner.builtinDivmod($0) },
        "hash": { try $0.runner.builtinHash($0) },
        "LanguageModel": { try $0.runner.builtinLanguageModel($0) },
        "TransformersModel": { try $0.runner.builtinLanguageModel($0) },
        "torch.Size": { c in
            .size(c.args.isEmpty ? [] : try Arguments(function: "Size", positional: c.args, keywords: [:], runner: c.runner, loc: c.loc).sequence(c.args[0]))
        },
    ]

    /// Reached through their module only.
    static let importedOnly: Set<String> = ["LanguageModel", "TransformersModel", "torch.Size"]

    /// The builtins a bare name finds.
    static let names: Set<String> = Set(table.keys).subtracting(importedOnly)
}
