import Coordinator
import Engine
import Foundation
import Graph
import Telemetry

/// Runs a trace script written in nnsight's Python syntax against a `LanguageModel`: the
/// evaluator records into the same Swift tracing API (no second implementation of the semantics).
/// Inside a trace, traced values carry static shapes, Python code on their values runs on the
/// client when they arrive (in program order, streamed), and `if` on a traced value becomes a
/// guarded region of the graph.
///
/// ```swift
/// let runner = ScriptRunner(model: model)
/// let outcome = runner.run(source: "with model.generate('Hello', max_new_tokens=3) as tracer:\n    out = model.generator.output.save()\n", file: "x.py")
/// print(outcome.stdout)
/// ```
/// An invoke at a step of a trace: where nnsight's forward-order rule applies.
struct ForwardCursor: Hashable {
    let tracer: ObjectIdentifier
    let invoke: Int
    let step: Int
}

public final class ScriptRunner {
    let model: LanguageModel
    let file: String
    var globals: [String: PyValue] = [:]
    /// Function scopes, innermost last (empty at module level).
    var locals: [[String: PyValue]] = []
    var stdout = ""
    /// Depth of `with model.generate/trace` blocks being recorded.
    var tracing = 0
    /// Names bound while a trace was recorded: only saved values outlive the trace.
    var boundInTrace: Set<String> = []
    /// The tracer of the trace being recorded, told each statement's line.
    var activeTracer: Tracer?
    var echo: ((String) -> Void)?
    /// Whether autograd names are on (`torch.no_grad()` turns them off).
    var gradEnabled = true
    /// Inside `with model.session():` (its traces run as one submission when the block ends).
    var inSession = false
    /// The step of the loop iteration running past max_new_tokens (see `runPastEnd`).
    var pastEndStep: Int?
    /// Inside `model.generate(...)` (rather than `model.trace(...)`).
    var generating = false
    /// Depth of function calls (recursion is limited).
    var callDepth = 0
    /// `torch.manual_seed` state for `torch.randn` / `torch.rand`.
    var random = TorchRandom(seed: 0)
    /// Client-side evaluation: computing deferred values with traced values resolved to tensors.
    var resolving = false
    /// Output and other client work waiting for traced values, in program order.
    var pending: [ClientAction] = []
    /// The first error client-side work raised while the trace ran.
    var clientError: Error?
    /// Traced values the script saved (`.save()` marks the value itself, as in nnsight).
    var userSaved: Set<ObjectIdentifier> = []
    /// The item values of tuple outputs a client computation reads.
    var tupleItemCache: [ObjectIdentifier: [TraceValue?]] = [:]
    /// The invokes met in the body of the trace being recorded, waiting for that body to end
    /// (nil outside a trace's own body).
    var waitingInvokes: [WaitingInvoke]?
    /// The conjunction of the enclosing branches' conditions that only the client can evaluate
    /// (nil outside such branches), and the traced values they read.
    var clientGuard: (() throws -> Bool)?
    var clientGuardNeeds: [TraceValue] = []
    /// The trace has ended and its values are being settled: a guard whose value never came
    /// (a step not reached) did not hold.
    var settlingAfterTrace = false
    /// A client-side `tracer.stop()` ran: the trace's remaining client work is dropped.
    var clientStopped = false
    /// Program order while a trace is recorded: each binding of a top-level name, with what the
    /// name held before, so that a client-side `tracer.stop()` can undo what came after it
    /// (nnsight never ran those statements).
    var programPoint = 0
    var bindings: [(point: Int, name: String, previous: PyValue?)] = []
    /// The program point of the client-side `tracer.stop()` that ran.
    var clientStopPoint: Int?
    /// The furthest hook each invoke of each step has reached (nnsight's out-of-order rule), the
    /// hooks' forward positions, and whether an edit block is being replayed (its own order).
    var forwardCursor: [ForwardCursor: Int] = [:]
    var hookPositions: [HookPoint: Int]?
    var replayingEdits = false
    /// The module aliases of `LanguageModel(..., rename={...})`.
    var moduleAliases: [ModuleAlias] = []
    /// The model's own edits (`model.edit(inplace=True)`), replayed in every trace of it.
    var modelEdits = EditSet()
    /// Names whose value `name.save()` saved while tracing (they outlive the trace).
    var savedNames: Set<String> = []
    /// Parameters read outside traces, by path ("transformer.h.0.mlp.c_fc.weight").
    var parameterCache: [String: Tensor] = [:]
    /// Containers being printed (a list inside itself prints as [...]).
    var reprActive: Set<ObjectIdentifier> = []

    static let maxCallDepth = 100
    /// What the script may spend (statements, `while` iterations, memory).
    public var limits = ScriptLimits()
    /// Statements executed so far, and the resident memory when the script started.
    var statementsRun = 0
    var memoryBaseline: Int?

    public struct Outcome {
        public var stdout: String
        public var error: ScriptError?
        /// Top-level variables left after the script, as the oracle's JSON (`saves`).
        public var savesJSON: String { JSONExport.saves(globals) }
        /// The script's top-level names when it ended (turned into JSON only when asked for).
        let globals: [String: PyValue]

        /// The `--save-json` document.
        public var json: String { JSONExport.document(stdout: stdout, saves: savesJSON, error: error) }
    }

    public init(model: LanguageModel, file: String = "<script>") {
        self.model = model
        self.file = file
    }

    /// Parses and runs `source`. Printed text is collected (and passed to `echo` as it comes).
    public func run(source: String, echo: ((String) -> Void)? = nil) -> Outcome {
        DeepStack.run { runHere(source: source, echo: echo) }
    }

    private func runHere(source: String, echo: ((String) -> Void)?) -> Outcome {
        self.echo = echo
        globals = ["model": .object(.model)]
        statementsRun = 0
        memoryBaseline = ProcessMemory.resident()
        var failure: ScriptError?
        do {
            var parser = try Parser(source, file: file)
            let module = try parser.parseModule()
            try exec(module)
        } catch let error as ScriptError {
            failure = error
        } catch let flow as Flow {
            failure = ScriptError(.syntax, flow.outsideMessage, file: file, line: 0, column: 0)
        } catch {
            failure = ScriptError(.runtime, "\(error)", file: file, line: 0, column: 0)
        }
        return Outcome(stdout: stdout, error: failure, globals: globals)
    }

    /// The model a script names in its preamble (`LanguageModel("openai-community/gpt2", ...)`,
    /// a string literal at the top level), if any.
    public static func preambleModelName(in source: String) -> String? {
        guard var parser = try? Parser(source), let module = try? parser.parseModule() else { return nil }
        for statement in module {
            var value: Expr?
            switch statement.kind {
            case let .assign(_, v): value = v
            case let .expr(e): value = e
            default: continue
            }
            guard let call = value, case let .call(f, args, _) = call.kind, let first = args.first, case let .string(name) = first.kind else { continue }
            switch f.kind {
            case .name("LanguageModel"), .attribute(_, "LanguageModel"): return name
            default: continue
            }
        }
        return nil
    }

    /// One statement (or comprehension item) more: the statement limit, and every
    /// `memoryCheckInterval` of them the memory the script grew the process by.
    func tick(_ loc: SourceLocation) throws {
        statementsRun += 1
        guard statementsRun <= limits.maxStatements else {
            throw fail(.runtime, "the script ran over \(limits.maxStatements) statements (a runaway loop? --max-statements sets the limit)", loc)
        }
        if statementsRun & (ScriptLimits.memoryCheckInterval - 1) == 0 { try checkMemory(loc) }
    }

    /// The memory limit, checked every `memoryCheckInterval` statements and after building any
    /// large value (a comprehension of big lists runs few statements).
    func checkMemory(_ loc: SourceLocation) throws {
        guard let base = memoryBaseline, let now = ProcessMemory.resident() else { return }
        guard now - base <= limits.maxMemoryBytes else {
            throw fail(.memory, "the script's values grew the client by \((now - base + (1 << 20) - 1) >> 20) MB, over its limit of \(limits.maxMemoryBytes >> 20) MB (--max-memory sets it)", loc)
        }
    }

    /// Whether a value of `bytes` still fits beside what the script holds (before it is made).
    func checkMemory(_ loc: SourceLocation, adding bytes: Int, making what: String) throws(OpError) {
        guard let base = memoryBaseline, let now = ProcessMemory.resident() else { return }
        let growth = max(0, now - base)
        guard growth.addingReportingOverflow(bytes).partialValue <= limits.maxMemoryBytes else {
            throw OpError("\(what) needs \((bytes + (1 << 20) - 1) >> 20) MB beside the \((growth + (1 << 20) - 1) >> 20) MB the script's values hold, over its limit of \(limits.maxMemoryBytes >> 20) MB (--max-memory sets it)", overBudget: true)
        }
    }

    func fail(_ kind: ScriptError.Kind, _ message: String, _ loc: SourceLocation) -> ScriptError {
        ScriptError(kind, message, file: file, line: loc.line, column: loc.column)
    }

    /// A warning as Python prints it on stderr: `file:line: Category: message`.
    func warn(_ category: String, _ message: String, _ loc: SourceLocation) {
        FileHandle.standardError.write(Data("\(file):\(loc.line): \(category): \(message)\n".utf8))
    }

    func write(_ text: String) {
        stdout += text
        echo?(text)
    }

    /// `break`, `continue` and `return`, unwinding to their loop or call. `@unchecked Sendable`:
    /// it never leaves the runner's thread (Error requires Sendable).
    enum Flow: Error, @unchecked Sendable {
        case breakLoop, continueLoop
        case returnValue(PyValue)
        /// A module access (named) in the iteration past max_new_tokens: the loop ends there.
        case pastEnd(String)

        var outsideMessage: String {
            switch self {
            case .breakLoop: "'break' outside loop"
            case .continueLoop: "'continue' not properly in loop"
            case .returnValue: "'return' outside function"
            case .pastEnd: "a module was accessed past the last generation step"
            }
        }
    }

    // MARK: - names

    func lookup(_ name: String) -> PyValue? {
        if let scope = locals.last, let v = scope[name] { return v }
        if let v = globals[name] { return v }
        return nil
    }

    func bind(_ name: String, _ value: PyValue) {
        if !locals.isEmpty {
            locals[locals.count - 1][name] = value
            return
        }
        if tracing > 0 {
            programPoint += 1
            bindings.append((programPoint, name, globals[name]))
        }
        globals[name] = value
        if tracing > 0 { boundInTrace.insert(name) }
    }

    // MARK: - statements

    func exec(_ statements: [Stmt]) throws {
        for statement in statements { try exec(statement) }
    }

    func exec(_ s: Stmt) throws {
        try tick(s.location)
        activeTracer?.sourceLine = s.location.line
        activeTracer?.sourceColumn = s.location.column
        switch s.kind {
        case .pass: return
        case let .importModules(modules):
            for (path, alias) in modules {
                let root = String(path.split(separator: ".").first ?? "")
                guard Namespaces.known(path) else {
                    throw fail(.unsupported, "import of '\(path)' is not supported (torch, torch.nn, torch.nn.functional, nnsight and math are)", s.location)
                }
                if let alias { bind(alias, .object(.namespace(path))) } else { bind(root, .object(.namespace(root))) }
            }
        case let .importFrom(module, names):
            for (name, alias) in names {
                guard let value = Namespaces.member(module, name) else {
                    throw fail(.unsupported, "'from \(module) import \(name)' is not supported", s.location)
                }
                bind(alias ?? name, value)
            }
        case let .expr(e): _ = try eval(e)
        case let .assign(targets, value):
            let v = try eval(value)
            for t in targets { try assign(t, v) }
        case let .augAssign(target, op, value):
            if try augAssignItem(target, op, value, s.location) { return }
            // `x[...] += v` on a traced value edits in place, as torch's `+=` does.
            let current = try eval(target)
            let result = try binary(op, current, try eval(value), s.location)
            // On a name bound to a module's value (or a view of it), torch's `+=` edits the model.
            if case .name = target.kind, case let .proxy(p) = current, case let .proxy(new) = result {
                recordAt(s.location)
                if p.assignInPlace(new) { try checkRecording(s.location) }
            }
            try assign(target, result)
        case let .ifStmt(branches, orelse):
            try execIf(branches, orelse)
        case let .forLoop(target, iterable, body):
            let it = try eval(iterable)
            let items: [PyValue]
            if case let .steps(sequence) = it {
                do {
                    for step in sequence {
                        try assign(target, .int(step))
                        do { try exec(body) } catch Flow.continueLoop { continue }
                    }
                    if let step = sequence.pastEnd { try runPastEnd(step, target, body, s.location) }
                } catch Flow.breakLoop {}
                // Code after a loop over steps runs here (nnsight 0.8.1 never runs it after an
                // open-ended loop): the forward order starts again.
                forwardCursor.removeAll()
                return
            }
            if case let .range(a, b, step) = it {
                do {
                    for i in Swift.stride(from: a, to: b, by: step) {
                        try assign(target, .int(i))
                        do { try exec(body) } catch Flow.continueLoop { continue }
                    }
                } catch Flow.breakLoop {}
                return
            }
            items = try iterate(it, iterable.location)
            do {
                for item in items {
                    try assign(target, item)
                    do { try exec(body) } catch Flow.continueLoop { continue }
                }
            } catch Flow.breakLoop {}
        case let .whileLoop(test, body):
            var count = 0
            do {
                while true {
                    let v = try eval(test)
                    if isTraced(v) {
                        throw fail(.unsupported, "a while loop on a traced value cannot be compiled: how often it runs would depend on a value that exists only while the model runs. Loop over a static bound instead (for i in range(n) or tracer.iter[...]) and guard the body with if", test.location)
                    }
                    guard try truth(v, test.location) else { break }
                    count += 1
                    guard count <= limits.maxWhileIterations else {
                        throw fail(.runtime, "while loop ran over \(limits.maxWhileIterations) iterations (the limit for trace scripts)", s.location)
                    }
                    do { try exec(body) } catch Flow.continueLoop { continue }
                }
            } catch Flow.breakLoop {}
        case let .def(name, params, body):
            bind(name, .function(try makeFunction(name, params, .statements(body))))
        case let .return(value):
            guard !locals.isEmpty else { throw fail(.syntax, "'return' outside function", s.location) }
            throw Flow.returnValue(try value.map(eval) ?? .none)
        case .break: throw Flow.breakLoop
        case .continue: throw Flow.continueLoop
        case let .assert(test, message):
            let v = try eval(test)
            guard try truth(v, test.location) else {
                throw fail(.runtime, "AssertionError" + (try message.map { ": " + (try str(try eval($0), $0.location)) } ?? ""), s.location)
            }
        case let .with(items, body):
            guard items.count == 1 else { throw fail(.unsupported, "with statements with several contexts are not supported", s.location) }
            let (contextExpr, name) = items[0]
            let context = try eval(contextExpr)
            try enter(context, as: name, body: body, at: contextExpr.location)
        }
    }

    func makeFunction(_ name: String, _ params: [Expr.Param], _ body: PyFunction.Body) throws -> PyFunction {
        let defaults = try params.map { try $0.defaultValue.map(eval) }
        return PyFunction(name: name, params: params, defaults: defaults, body: body, captured: locals.last ?? [:])
    }

    func assign(_ target: Expr, _ value: PyValue) throws {
        switch target.kind {
        case let .name(n):
            bind(n, try guardedAssignment(n, value))
        case let .tuple(items), let .list(items):
            let values = try iterate(value, target.location)
            guard values.count == items.count else {
                throw fail(.value, values.count > items.count ? "too many values to unpack (expected \(items.count))"
                    : "not enough values to unpack (expected \(items.count), got \(values.count))", target.location)
            }
            for (t, v) in zip(items, values) { try assign(t, v) }
        case let .subscript(base, items):
            let container = try eval(base)
            switch container {
            case let .proxy(p), let .saved(_, p):
                let index = try tensorIndex(items, target.location)
                p.assign(index, try traceOperand(value, target.location))
                try checkRecording(target.location)
            case let .tensor(t, grad):
                // A tensor the script made (torch.zeros(...)): written like torch writes it.
                let index = try tensorIndex(items, target.location)
                bind(name: base, .tensor(try Self.written(t, index.map(\.item), try tensorOperand(value, target.location), target.location, self), grad: grad))
            case let .list(list):
                guard items.count == 1, case let .index(ie) = items[0], case let .int(i) = try eval(ie) else {
                    throw fail(.unsupported, "only list[i] = value is supported", target.location)
                }
                let item = try appendable(value, target.location)
                _ = try mutate {
                    let k = i < 0 ? i + list.items.count : i
                    guard k >= 0, k < list.items.count else { throw self.fail(.index, "list assignment index out of range", target.location) }
                    list.items[k] = item
                }
            case let .dict(dict):
                guard items.count == 1, case let .index(ie) = items[0] else { throw fail(.type, "dict keys take one index", target.location) }
                let key = try resolved(try eval(ie), ie.location)
                guard PyDict.hashKey(key) != nil else { throw fail(.type, "unhashable type: '\(key.typeName)'", ie.location) }
                let item = try appendable(value, target.location)
                _ = try mutate { dict[key] = item }
            default:
                throw fail(.type, "'\(container.typeName)' object does not support item assignment", target.location)
            }
        case let .attribute(base, name):
            guard case let .object(object) = try eval(base) else {
                throw fail(.unsupported, "assigning to attributes is not supported (assign a module's .output or .input, or into it with [...] = ...)", target.location)
            }
            try assignModuleAttribute(object, name, value, target.location)
        default:
            throw fail(.syntax, "cannot assign to this expression", target.location)
        }
    }

    /// The iteration past max_new_tokens, as nnsight 0.8.1 runs it: the body up to its first
    /// module access, then a warning and the loop ends.
    func runPastEnd(_ step: Int, _ target: Expr, _ body: [Stmt], _ loc: SourceLocation) throws {
        try assign(target, .int(step))
        pastEndStep = step
        defer { pastEndStep = nil }
        do { try exec(body) } catch Flow.continueLoop {} catch let Flow.pastEnd(access) {
            warn("UserWarning", "'\(access)' at step \(step) was never reached: the loop asks for a step past max_new_tokens = \(activeTracer?.maxNewTokens ?? 0), so it ends there; values saved in earlier steps are kept", loc)
        }
    }

    /// Rebinds the name a subscript assignment's base names (tensors are values here).
    func bind(name base: Expr, _ value: PyValue) {
        if case let .name(n) = base.kind { bind(n, value) }
    }

    // MARK: - expressions

    func eval(_ e: Expr) throws -> PyValue {
        switch e.kind {
        case let .name(n):
            if let v = lookup(n) {
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
            var values: [(PyValue, Character?, String, SourceLocation)] = []
            for part in parts {
                switch part {
                case let .literal(s): values.append((.str(s), nil, "", e.location))
                case let .value(expr, conversion, spec): values.append((try eval(expr), conversion, spec, expr.location))
                }
            }
            return try formatted(values, e.location)
        case let .list(items): return .list(PyList(try items.map(eval)))
        case let .tuple(items): return .tuple(try items.map(eval))
        case let .dict(pairs):
            let dict = PyDict()
            for (k, v) in pairs {
                let key = try resolved(try eval(k), k.location)
                guard PyDict.hashKey(key) != nil else { throw fail(.type, "unhashable type: '\(key.typeName)'", k.location) }
                dict[key] = try eval(v)
            }
            return .dict(dict)
        case let .attribute(base, name): return try attribute(try eval(base), name, e.location)
        case let .subscript(base, items): return try subscriptValue(try eval(base), items, e.location)
        case let .call(function, args, kwargs):
            // `name.save()` inside a trace or session keeps the name's value itself (nnsight marks
            // the object), also where the value is a plain tensor computed between traces.
            if tracing > 0, case let .attribute(base, "save") = function.kind, case let .name(n) = base.kind, locals.isEmpty {
                savedNames.insert(n)
            }
            let f = try eval(function)
            let a = try args.map(eval)
            var k: [String: PyValue] = [:]
            for (name, v) in kwargs { k[name] = try eval(v) }
            return try call(f, a, k, e.location)
        case let .binary(op, a, b): return try binary(op, try eval(a), try eval(b), e.location)
        case let .unary(op, a): return try unary(op, try eval(a), e.location)
        case let .boolOp(op, items): return try boolOp(op, items)
        case let .compare(first, rest):
            var left = try eval(first)
            if rest.count == 1 { return try compareValue(rest[0].0, left, try eval(rest[0].1), rest[0].1.location) }
            for (op, expr) in rest {
                let right = try eval(expr)
                guard try truth(try compareValue(op, left, right, expr.location), expr.location) else { return .bool(false) }
                left = right
            }
            return .bool(true)
        case let .dictComp(key, value, target, iterable, conditions):
            // Built as the list of its pairs, then a dict (later keys win, as in Python).
            let pairs = try eval(Expr(.listComp(Expr(.tuple([key, value]), e.location), target: target, iter: iterable, conditions: conditions), e.location))
            let dict = PyDict([])
            for pair in try iterate(pairs, e.location) {
                guard case let .tuple(kv) = pair, kv.count == 2 else { continue }
                let k = try resolved(kv[0], key.location)
                guard PyDict.hashKey(k) != nil else { throw fail(.type, "unhashable type: '\(k.typeName)'", key.location) }
                dict[k] = kv[1]
            }
            return .dict(dict)
        case let .listComp(element, target, iterable, conditions):
            var out: [PyValue] = []
            let saved = globals
            let scope = locals.last
            defer {
                // Comprehension variables do not leak into the script's scope.
                if locals.isEmpty { for (k, _) in globals where saved[k] == nil { globals[k] = nil } }
                else if let scope { locals[locals.count - 1] = scope }
            }
            for item in try iterate(try eval(iterable), iterable.location) {
                try tick(e.location)
                try assign(target, item)
                if try conditions.allSatisfy({ try truth(try eval($0), $0.location) }) { out.append(try eval(element)) }
            }
            return .list(PyList(out))
        case let .lambda(params, body):
            return .function(try makeFunction("<lambda>", params, .expression(body)))
        case let .ifExp(test, body, orelse):
            let t = try eval(test)
            if isTraced(t) {
                throw fail(.unsupported, "a conditional expression on a traced value is not supported; use torch.where(condition, a, b) or an if statement", test.location)
            }
            return try truth(t, test.location) ? try eval(body) : try eval(orelse)
        }
    }

    func unary(_ op: String, _ v: PyValue, _ loc: SourceLocation) throws -> PyValue {
        if let lifted = try lift([v], loc, graph: { [self] in
            guard let g = graphForm(v) else { return nil }
            switch op {
            case "-": return TraceValue.applyIfTyped("neg", [g])
            case "not": return activeTracer.flatMap { t in t.truth(g).flatMap(t.negation) }
            default: return g
            }
        }, { [self] in try unary(op, v, loc) }) { return lifted }
        switch op {
        case "not":
            if case let .proxy(p) = try resolved(v, loc), let tracer = activeTracer, let t = tracer.truth(p) {
                return .proxy(tracer.negation(t) ?? t)
            }
            return .bool(!(try truth(v, loc)))
        case "+": return v
        case "~":
            switch try resolved(v, loc) {
            case let .int(i): return .int(~i)
            case let .bool(b): return .int(b ? -2 : -1)
            case .tensor, .proxy: return try torchOp("bitwise_not", [v], Attributes(), loc)
            default: throw fail(.type, "bad operand type for unary ~: '\(v.typeName)'", loc)
            }
        default:
            switch try resolved(v, loc) {
            case let .int(i): return .int(try checked((0).subtractingReportingOverflow(i), 0, "-", i, loc))
            case let .float(f): return .float(-f)
            case let .bool(b): return .int(b ? -1 : 0)
            case .tensor, .proxy: return try torchOp("neg", [v], Attributes(), loc)
            default: throw fail(.type, "bad operand type for unary -: '\(v.typeName)'", loc)
            }
        }
    }

    /// `and`/`or`: Python's short circuit on plain values; on traced values, a graph condition.
    func boolOp(_ op: String, _ items: [Expr]) throws -> PyValue {
        var last: PyValue = .none
        var traced: TraceValue?
        for item in items {
            last = try eval(item)
            if isTraced(last), !resolving {
                guard let g = graphForm(last), let tracer = activeTracer, let t = tracer.truth(g) else {
                    throw fail(.unsupported, "this condition needs a value that exists only on the client; conditions must be tensor expressions", item.location)
                }
                traced = traced.map { TraceValue.apply(op == "and" ? "bitwise_and" : "bitwise_or", [$0, t]) } ?? t
                try checkRecording(item.location)
                continue
            }
            let t = try truth(last, item.location)
            if op == "and" && !t { return traced == nil ? last : .bool(false) }
            if op == "or" && t { return traced == nil ? last : .bool(true) }
        }
        return traced.map { .proxy($0) } ?? last
    }
}

