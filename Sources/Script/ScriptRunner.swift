import Coordinator
import Engine
import Foundation
import Graph

/// Runs a trace script written in nnsight's Python syntax against a `LanguageModel`: the
/// evaluator records into the same Swift tracing API (no second implementation of the semantics).
///
/// ```swift
/// let runner = ScriptRunner(model: model)
/// let outcome = runner.run(source: "with model.generate('Hello', max_new_tokens=3) as tracer:\n    out = model.generator.output.save()\n", file: "x.py")
/// print(outcome.stdout)
/// ```
public final class ScriptRunner {
    let model: LanguageModel
    let file: String
    var globals: [String: PyValue] = [:]
    var stdout = ""
    /// Depth of `with model.generate/trace` blocks being recorded.
    var tracing = 0
    /// Names bound while a trace was recorded: only saved values outlive the trace.
    var boundInTrace: Set<String> = []
    /// The tracer of the trace being recorded, told each statement's line.
    var activeTracer: Tracer?
    var echo: ((String) -> Void)?

    public struct Outcome {
        public var stdout: String
        public var error: ScriptError?
        /// Top-level variables left after the script, as the oracle's JSON (`saves`).
        public var savesJSON: String

        /// The `--save-json` document.
        public var json: String { JSONExport.document(stdout: stdout, saves: savesJSON, error: error) }
    }

    public init(model: LanguageModel, file: String = "<script>") {
        self.model = model
        self.file = file
    }

    /// Parses and runs `source`. Printed text is collected (and passed to `echo` as it comes).
    public func run(source: String, echo: ((String) -> Void)? = nil) -> Outcome {
        self.echo = echo
        globals = ["model": .object(.model)]
        var failure: ScriptError?
        do {
            var parser = try Parser(source, file: file)
            let module = try parser.parseModule()
            try exec(module)
        } catch let error as ScriptError {
            failure = error
        } catch {
            failure = ScriptError(.runtime, "\(error)", file: file, line: 0, column: 0)
        }
        return Outcome(stdout: stdout, error: failure, savesJSON: JSONExport.saves(globals))
    }

    func fail(_ kind: ScriptError.Kind, _ message: String, _ loc: SourceLocation) -> ScriptError {
        ScriptError(kind, message, file: file, line: loc.line, column: loc.column)
    }

    // MARK: - statements

    func exec(_ statements: [Stmt]) throws {
        for statement in statements { try exec(statement) }
    }

    func exec(_ s: Stmt) throws {
        activeTracer?.sourceLine = s.location.line
        activeTracer?.sourceColumn = s.location.column
        switch s.kind {
        case .pass, .importIgnored: return
        case let .expr(e): _ = try eval(e)
        case let .assign(targets, value):
            let v = try eval(value)
            for t in targets { try assign(t, v) }
        case let .augAssign(target, op, value):
            let current = try eval(target)
            try assign(target, try binary(op, current, try eval(value), s.location))
        case let .ifStmt(branches, orelse):
            for (test, body) in branches where try truth(try eval(test), test.location) {
                return try exec(body)
            }
            if let orelse { try exec(orelse) }
        case let .forLoop(target, iterable, body):
            let it = try eval(iterable)
            if case let .steps(sequence) = it {
                for step in sequence {
                    try assign(target, .int(step))
                    try exec(body)
                }
                return
            }
            for item in try iterate(it, iterable.location) {
                try assign(target, item)
                try exec(body)
            }
        case let .with(items, body):
            guard items.count == 1 else { throw fail(.unsupported, "with statements with several contexts are not supported", s.location) }
            let (contextExpr, name) = items[0]
            let context = try eval(contextExpr)
            try enter(context, as: name, body: body, at: contextExpr.location)
        }
    }

    func enter(_ context: PyValue, as name: Expr?, body: [Stmt], at loc: SourceLocation) throws {
        guard case let .object(object) = context else {
            throw fail(.type, "'\(context.typeName)' object does not support the context manager protocol", loc)
        }
        switch object {
        case let .generateContext(prompt, maxNewTokens, sampling):
            try runTrace(at: loc) {
                try model.generate(prompt, maxNewTokens: maxNewTokens, sampling: sampling) { tracer in
                    activeTracer = tracer
                    if let name { try assign(name, .object(.tracer(tracer))) }
                    try exec(body)
                }
            }
        case let .traceContext(prompt):
            try runTrace(at: loc) {
                try model.trace(prompt) { tracer in
                    activeTracer = tracer
                    if let name { try assign(name, .object(.tracer(tracer))) }
                    try exec(body)
                }
            }
        case let .invokeContext(tracer, prompt):
            try tracer.invoke(prompt) { try exec(body) }
        default:
            throw fail(.type, "this object does not support the context manager protocol", loc)
        }
    }

    /// Runs a recorded trace; afterwards, names bound to proxies that were not saved are marked.
    func runTrace(at loc: SourceLocation, _ body: () throws -> Void) throws {
        tracing += 1
        defer {
            tracing -= 1
            activeTracer = nil
            for (name, value) in globals {
                switch value {
                case .proxy, .object(.tracer): globals[name] = .unsaved(name)
                case .saved: break
                case let .list(list) where boundInTrace.contains(name) && !list.saved: globals[name] = nil
                case let .list(list):
                    // Appends at steps generation never reached did not happen (as in nnsight).
                    list.items.removeAll { item in
                        if case let .saved(saved, _) = item { return !saved.wasReached }
                        return false
                    }
                default:
                    // Plain values bound inside the trace (loop variables, temporaries) stay there.
                    if boundInTrace.contains(name) { globals[name] = nil }
                }
            }
            if tracing == 0 { boundInTrace = [] }
        }
        do {
            try body()
        } catch let error as ScriptError {
            throw error
        } catch let error as TraceError {
            // Errors name the node's script position: point there.
            var at = loc
            if let line = error.line, line > 0 { at = SourceLocation(line: line, column: error.column ?? 1) }
            throw fail(.runtime, error.description, at)
        }
    }

    func assign(_ target: Expr, _ value: PyValue) throws {
        switch target.kind {
        case let .name(n):
            globals[n] = value
            if tracing > 0 { boundInTrace.insert(n) }
        case let .tuple(items), let .list(items):
            let values = try iterate(value, target.location)
            guard values.count == items.count else {
                throw fail(.value, "cannot unpack \(values.count) values into \(items.count) names", target.location)
            }
            for (t, v) in zip(items, values) { try assign(t, v) }
        case let .subscript(base, items):
            let container = try eval(base)
            switch container {
            case let .proxy(p), let .saved(_, p):
                let index = try tensorIndex(items, target.location)
                let rhs: TraceValue
                switch value {
                case let .proxy(v), let .saved(_, v): rhs = v
                case let .int(i): rhs = TraceValue.constant(i)
                case let .float(f): rhs = TraceValue.constant(f)
                case let .bool(b): rhs = TraceValue.constant(b ? 1 : 0)
                default: throw fail(.type, "cannot assign a \(value.typeName) into a tensor", target.location)
                }
                p.assign(index, rhs)
            case let .list(list):
                guard items.count == 1, case let .index(ie) = items[0], case let .int(i) = try eval(ie) else {
                    throw fail(.unsupported, "only list[i] = value is supported", target.location)
                }
                let k = i < 0 ? i + list.items.count : i
                guard k >= 0, k < list.items.count else { throw fail(.index, "list assignment index out of range", target.location) }
                list.items[k] = value
            default:
                throw fail(.type, "'\(container.typeName)' object does not support item assignment", target.location)
            }
        case .attribute:
            throw fail(.unsupported, "assigning to attributes is not supported (assign into module outputs with [...] = ...)", target.location)
        default:
            throw fail(.syntax, "cannot assign to this expression", target.location)
        }
    }

    // MARK: - expressions

    func eval(_ e: Expr) throws -> PyValue {
        switch e.kind {
        case let .name(n):
            if let v = globals[n] {
                if case let .unsaved(name) = v {
                    throw fail(.name, "'\(name)' was computed inside a trace but not saved; call .save() on it", e.location)
                }
                return v
            }
            if Builtins.names.contains(n) { return .builtin(n) }
            throw fail(.name, "name '\(n)' is not defined", e.location)
        case let .int(i): return .int(i)
        case let .float(f): return .float(f)
        case let .string(s): return .str(s)
        case let .bool(b): return .bool(b)
        case .none: return .none
        case .ellipsis: throw fail(.unsupported, "'...' is only supported inside an index", e.location)
        case let .fstring(parts):
            var out = ""
            for part in parts {
                switch part {
                case let .literal(s): out += s
                case let .value(expr, conversion, spec):
                    let v = try resolved(try eval(expr), expr.location)
                    if conversion == "r" { out += try Format.apply(spec, to: .str(try repr(v, expr.location)), self, expr.location) }
                    else { out += try Format.apply(spec, to: v, self, expr.location) }
                }
            }
            return .str(out)
        case let .list(items): return .list(PyList(try items.map(eval)))
        case let .tuple(items): return .tuple(try items.map(eval))
        case let .dict(pairs):
            return .dict(try pairs.map { k, v in
                guard case let .str(key) = try eval(k) else { throw fail(.unsupported, "only string dict keys are supported", k.location) }
                return (key, try eval(v))
            })
        case let .attribute(base, name): return try attribute(try eval(base), name, e.location)
        case let .subscript(base, items): return try subscriptValue(try eval(base), items, e.location)
        case let .call(function, args, kwargs):
            let f = try eval(function)
            let a = try args.map(eval)
            var k: [String: PyValue] = [:]
            for (name, v) in kwargs { k[name] = try eval(v) }
            return try call(f, a, k, e.location)
        case let .binary(op, a, b): return try binary(op, try eval(a), try eval(b), e.location)
        case let .unary(op, a):
            let v = try eval(a)
            switch op {
            case "not": return .bool(!(try truth(v, e.location)))
            case "+": return v
            default:
                switch try resolved(v, e.location) {
                case let .int(i): return .int(-i)
                case let .float(f): return .float(-f)
                case let .bool(b): return .int(b ? -1 : 0)
                case let .tensor(t): return .tensor(try Self.op("neg", [t]))
                case let .proxy(p): return .proxy(-p)
                default: throw fail(.type, "bad operand type for unary -: '\(v.typeName)'", e.location)
                }
            }
        case let .boolOp(op, items):
            var last: PyValue = .none
            for item in items {
                last = try eval(item)
                let t = try truth(last, item.location)
                if op == "and" && !t { return last }
                if op == "or" && t { return last }
            }
            return last
        case let .compare(first, rest):
            var left = try eval(first)
            for (op, expr) in rest {
                let right = try eval(expr)
                guard try compare(op, left, right, expr.location) else { return .bool(false) }
                left = right
            }
            return .bool(true)
        case let .listComp(element, target, iterable, conditions):
            var out: [PyValue] = []
            let saved = globals
            defer {
                // Comprehension variables do not leak into the script's scope.
                for (k, _) in globals where saved[k] == nil { globals[k] = nil }
            }
            for item in try iterate(try eval(iterable), iterable.location) {
                try assign(target, item)
                if try conditions.allSatisfy({ try truth(try eval($0), $0.location) }) { out.append(try eval(element)) }
            }
            return .list(PyList(out))
        }
    }

    /// A saved value becomes its tensor once its trace has run.
    func resolved(_ v: PyValue, _ loc: SourceLocation) throws -> PyValue {
        guard case let .saved(saved, proxy) = v else { return v }
        if tracing > 0 { return .proxy(proxy) }
        do { return .tensor(try saved.value) } catch { throw fail(.runtime, error.description, loc) }
    }

    func truth(_ v: PyValue, _ loc: SourceLocation) throws -> Bool {
        switch try resolved(v, loc) {
        case .none: return false
        case let .bool(b): return b
        case let .int(i): return i != 0
        case let .float(f): return f != 0
        case let .str(s): return !s.isEmpty
        case let .list(l): return !l.items.isEmpty
        case let .tuple(t): return !t.isEmpty
        case let .dict(d): return !d.isEmpty
        case let .tensor(t):
            guard t.count == 1 else { throw fail(.runtime, "Boolean value of Tensor with more than one value is ambiguous", loc) }
            return t.doubles[0] != 0
        case .proxy:
            throw fail(.unsupported, "the truth of a traced value is unknown while recording; branch on the step or on plain values", loc)
        default: return true
        }
    }

    func iterate(_ v: PyValue, _ loc: SourceLocation) throws -> [PyValue] {
        switch try resolved(v, loc) {
        case let .list(l): return l.items
        case let .tuple(t): return t
        case let .range(a, b, s): return Swift.stride(from: a, to: b, by: s).map { .int($0) }
        case let .str(s): return s.map { .str(String($0)) }
        case let .size(d): return d.map { .int($0) }
        case let .dict(d): return d.map { .str($0.0) }
        case let .tensor(t):
            guard let n = t.shape.first else { throw fail(.type, "iteration over a 0-d tensor", loc) }
            return try (0..<n).map { i throws(OpError) in .tensor(try t[i].contiguous()) }
        case let .steps(s): return s.map { .int($0) }
        default: throw fail(.type, "'\(v.typeName)' object is not iterable", loc)
        }
    }
}

