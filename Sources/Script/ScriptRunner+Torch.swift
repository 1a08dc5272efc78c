import Coordinator
import Engine
import Foundation
import Graph

/// torch on script values: every op is one op of the graph's registry, computed now when its
/// operands are tensors the script holds, recorded as a node when one is traced. Tensor methods
/// and `torch.`/`torch.nn.functional.` functions share one table.
extension ScriptRunner {
    // MARK: - operands

    /// A value as an input of a recorded op: traced values as they are, tensors and numbers as constants.
    func traceOperand(_ v: PyValue, _ loc: SourceLocation) throws -> TraceValue {
        switch try resolved(v, loc) {
        case let .proxy(p): return p
        case let .saved(_, p): return p
        case let .tensor(t, _): return .constant(t)
        case let .int(i): return .constant(i)
        case let .float(f): return .constant(f)
        case let .bool(b): return .constant(Tensor(shape: [], bools: [b]))
        case let .list(l): return .constant(try tensorLiteral(.list(l), dtype: nil, loc))
        case let .tuple(t): return .constant(try tensorLiteral(.tuple(t), dtype: nil, loc))
        case let .deferred(d):
            // A number computed from traced values (x.item() * 2) flows back as its graph form.
            guard let g = d.graph else {
                throw fail(.unsupported, "a value computed on the client (a string, a list) cannot flow back into the model; keep it a tensor", loc)
            }
            return g
        case let other: throw fail(.type, "expected a tensor, got \(other.typeName)", loc)
        }
    }

    /// A value as a tensor the script holds.
    func tensorOperand(_ v: PyValue, _ loc: SourceLocation) throws -> Tensor {
        switch try resolved(v, loc) {
        case let .tensor(t, _): return t
        case let .int(i): return .scalar(Int64(i))
        case let .float(f): return .scalar(Float(f))
        case let .bool(b): return Tensor(shape: [], bools: [b])
        case let .list(l): return try tensorLiteral(.list(l), dtype: nil, loc)
        case let .tuple(t): return try tensorLiteral(.tuple(t), dtype: nil, loc)
        case let other: throw fail(.type, "expected a tensor, got \(other.typeName)", loc)
        }
    }

    /// `torch.tensor(data)`: nested lists of numbers; the dtype torch infers (bool < int < float).
    func tensorLiteral(_ v: PyValue, dtype: DType?, _ loc: SourceLocation) throws -> Tensor {
        var shape: [Int] = []
        var flat: [Double] = []
        var kind = 0  // 0 bool, 1 int, 2 float
        var leafDepth: Int?
        func walk(_ v: PyValue, _ depth: Int) throws {
            guard depth < 32 else { throw fail(.value, "torch.tensor(): too deeply nested", loc) }
            switch try resolved(v, loc) {
            case let .list(l): try sequence(l.items, depth)
            case let .tuple(t): try sequence(t, depth)
            case let .bool(b): try leaf(b ? 1 : 0, 0, depth)
            case let .int(i): try leaf(Double(i), 1, depth)
            case let .float(f): try leaf(f, 2, depth)
            case let .tensor(t, _) where t.count == 1: try leaf(t.doubles[0], t.dtype == .float32 ? 2 : t.dtype == .int64 ? 1 : 0, depth)
            case let other: throw fail(.type, "torch.tensor() takes numbers and lists of numbers, not \(other.typeName)", loc)
            }
        }
        func sequence(_ items: [PyValue], _ depth: Int) throws {
            if depth == shape.count { shape.append(items.count) }
            guard depth < shape.count, shape[depth] == items.count else { throw fail(.value, "expected a sequence of length \(shape[depth]) at dim \(depth) (got \(items.count))", loc) }
            for item in items { try walk(item, depth + 1) }
        }
        func leaf(_ x: Double, _ k: Int, _ depth: Int) throws {
            guard depth == shape.count || (shape.isEmpty && depth == 0), leafDepth == nil || leafDepth == depth else {
                throw fail(.value, "torch.tensor(): ragged nested sequence", loc)
            }
            leafDepth = depth
            kind = max(kind, k)
            flat.append(x)
        }
        try walk(v, 0)
        guard leafDepth.map({ $0 == shape.count }) ?? true, flat.count == shape.reduce(1, *) else {
            throw fail(.value, "torch.tensor(): ragged nested sequence", loc)
        }
        switch dtype ?? (kind == 2 ? .float32 : kind == 1 ? .int64 : .bool) {
        case .float32: return Tensor(shape: shape, floats: flat.map(Float.init))
        case .int64: return Tensor(shape: shape, ints: flat.map { Int64($0) })
        case .bool: return Tensor(shape: shape, bools: flat.map { $0 != 0 })
        }
    }

    func gradOf(_ v: PyValue) -> String? {
        switch v {
        case let .tensor(_, g): g
        case let .proxy(p), let .saved(_, p): p.gradFn
        default: nil
        }
    }

    func rankOf(_ v: PyValue) -> Int {
        switch v {
        case let .tensor(t, _): t.rank
        case let .proxy(p), let .saved(_, p): p.shape?.count ?? 0
        default: 0
        }
    }

    func permutedOf(_ v: PyValue) -> Bool {
        switch v {
        case let .tensor(t, _): !t.isContiguous
        case let .proxy(p), let .saved(_, p): p.isPermutedView
        default: false
        }
    }

    /// Runs or records op `name` of the registry on `operands`.
    func torchOp(_ name: String, _ operands: [PyValue], _ attributes: Attributes, _ loc: SourceLocation) throws -> PyValue {
        var values = try operands.map { try resolved($0, loc) }
        func hasProxy() -> Bool { values.contains(where: { if case .proxy = $0 { true } else { false } }) }
        if betweenSessionTraces, hasProxy() {
            try flushSession(loc)
            values = try operands.map { try resolved($0, loc) }
        }
        let info = values.map { (grad: gradOf($0), rank: rankOf($0), permuted: permutedOf($0)) }
        if !resolving, hasProxy() {
            let inputs = try values.map { try traceOperand($0, loc) }
            recordAt(loc)
            let out = TraceValue.apply(name, inputs, attributes)
            try checkRecording(loc)
            let dtype: DType = switch out.type {
            case let .tensor(t)?: t.dtype
            case let .tuple(items)?: items.first??.dtype ?? .float32
            case nil: .float32
            }
            out.gradFn = Autograd.op(name, attributes, inputs: info, output: dtype, enabled: gradEnabled)
            out.isPermutedView = ["permute", "transpose", "expand"].contains(name)
                || (["index", "unsqueeze", "squeeze"].contains(name) && info.first?.permuted == true)
            return .proxy(out)
        }
        let tensors = try values.map { try tensorOperand($0, loc) }
        guard let spec = OpRegistry.spec(name) else { throw fail(.attribute, "unknown op '\(name)'", loc) }
        let result: Value
        do throws(OpError) {
            // A large output is counted against --max-memory before it exists, beside what the
            // script's values already hold.
            try spec.validate(inputs: tensors.count, attributes: attributes)
            let output = try spec.check(tensors.map { .tensor($0.type) }, attributes, budget: limits.values)
            if OpBudget.bytes(output) > 1 << 20 { try checkMemory(loc, adding: OpBudget.bytes(output), making: "\(name) of \(output)") }
            result = try spec.kernel(tensors.map(Value.tensor), attributes)  // (validated and checked above)
        } catch {
            throw fail(error.isOverBudget ? .memory : error.exception == .indexError ? .index : .runtime, error.description, loc)
        }
        switch result {
        case let .tensor(t):
            return .tensor(t, grad: Autograd.op(name, attributes, inputs: info, output: t.dtype, enabled: gradEnabled))
        case let .tuple(items):
            return .tuple(items.map { item in
                guard let t = item else { return .none }
                return .tensor(t, grad: Autograd.op(name, attributes, inputs: info, output: t.dtype, enabled: gradEnabled))
            })
        }
    }

    // MARK: - attributes

    func attribute(_ base0: PyValue, _ name: String, _ loc: SourceLocation) throws -> PyValue {
        let base: PyValue
        if resolving, case .deferred = base0 { base = try resolved(base0, loc) } else { base = base0 }
        func missing() -> ScriptError {
            if case let .object(object) = base, let m = envoy(object) {
                // A module: say what it has (nnsight's Envoy mirrors the module's children).
                let children = m.childNames
                let owned = ModuleTree.parameterNames(of: m.module)
                var has = children.isEmpty ? "it has no submodules" : "its submodules: " + children.joined(separator: ", ")
                if !owned.isEmpty { has += "; parameters: " + owned.joined(separator: ", ") }
                return fail(.attribute, "'Envoy' object has no attribute '\(name)': model.\(m.module) has no submodule '\(name)' (\(has))", loc)
            }
            return fail(.attribute, "'\(base.typeName)' object has no attribute '\(name)'", loc)
        }
        if let lifted = try lift([base], loc, { [self] in try attribute(base, name, loc) }) { return lifted }
        switch base {
        case let .object(object):
            if let value = try objectAttribute(object, base, name, loc) { return value }
            if let aliased = try aliasedModule(object, name, loc) { return aliased }
            throw missing()
        case .proxy, .saved:
            let v = try resolved(base, loc)
            if case .tensor = v { return try tensorAttribute(v, name, loc) ?? { throw missing() }() }
            guard case let .proxy(p) = v else { throw missing() }
            return try proxyAttribute(p, base, name, loc) ?? { throw missing() }()
        case .tensor: return try tensorAttribute(base, name, loc) ?? { throw missing() }()
        case let .tuple(items) where name == "values" || name == "indices":
            guard items.count == 2 else { throw missing() }
            return items[name == "values" ? 0 : 1]
        case .list:
            guard ["append", "save", "extend", "pop", "index", "count", "insert", "reverse", "sort", "copy", "clear"].contains(name) else { throw missing() }
            return .method(base, name)
        case .str:
            guard ["join", "strip", "lstrip", "rstrip", "split", "upper", "lower", "replace", "startswith", "endswith", "format",
                   "find", "count", "title", "capitalize", "isdigit", "isalpha", "splitlines", "zfill", "ljust", "rjust", "center", "save"].contains(name) else { throw missing() }
            return .method(base, name)
        case .dict:
            guard ["keys", "values", "items", "get", "save", "update", "pop", "setdefault", "copy"].contains(name) else { throw missing() }
            return .method(base, name)
        case .int, .float, .bool, .tuple, .none:
            if name == "save" { return .method(base, name) }
            if case .float = base, name == "is_integer" { return .method(base, name) }
            throw missing()
        case let .dtype(d):
            if name == "is_floating_point" { return .bool(d == .float32) }
            throw missing()
        case .size:
            if name == "numel" { return .method(base, name) }
            throw missing()
        case let .builtin(n) where name == "__name__": return .str(n)
        default: throw missing()
        }
    }

    func objectAttribute(_ object: PyObject, _ base: PyValue, _ name: String, _ loc: SourceLocation) throws -> PyValue? {
        switch (object, name) {
        case (.model, "transformer"): return .object(.transformer)
        case (.model, "lm_head"): return .object(.module(model.lmHead))
        case (.model, "generator"): return .object(.generator)
        case (.model, "tokenizer"): return .object(.tokenizer)
        case (.model, "generate"), (.model, "trace"), (.model, "session"), (.model, "scan"), (.model, "edit"), (.model, "clear_edits"),
             (.editedModel, "generate"), (.editedModel, "trace"), (.editedModel, "scan"), (.editedModel, "edit"), (.editedModel, "clear_edits"):
            return .method(base, name)
        case (.editedModel, _): return try objectAttribute(.model, .object(.model), name, loc)
        case (.model, "output"):
            try requireTrace(name, loc)
            return .object(.modelOutput(try moduleRead(model.lmHead.output, .lmHead, .output, loc)))
        case let (.modelOutput(logits), "logits"), let (.modelOutput(logits), "last_hidden_state"): return logits
        case let (.cache(cache, prefix, perStep), _): return try cacheAttribute(cache, prefix, perStep, name, base, loc)
        case (.modelOutput, "save"): return .method(base, name)
        case (.model, "config"): return .object(.namespace("model.config"))
        case (.namespace("model.config"), _):
            let c = model.config
            switch name {
            case "n_layer", "num_hidden_layers": return .int(c.nLayer)
            case "n_embd", "hidden_size": return .int(c.nEmbd)
            case "n_head", "num_attention_heads": return .int(c.nHead)
            case "vocab_size": return .int(c.vocabSize)
            case "n_positions", "max_position_embeddings": return .int(c.nPositions)
            default: return model.configFields[name].map(Self.configValue)
            }
        case (.transformer, "h"): return .object(.layers)
        case (.transformer, "inputs"):
            try requireTrace(name, loc)
            let inputs = model.transformer.inputs
            let dict = PyDict([(.str("input_ids"), .proxy(inputs.inputIds)), (.str("attention_mask"), .proxy(inputs.attentionMask)),
                               (.str("position_ids"), .proxy(inputs.positionIds))])
            return .tuple([.tuple([.proxy(inputs.inputIds)]), .dict(dict)])
        case (.transformer, "output"), (.transformer, "input"):
            throw fail(.unsupported, "model.transformer.\(name) is not supported; use model.transformer.h[-1].output or .inputs", loc)
        // Submodules come from the Engine's module tree (ModuleTree), as the envoys do.
        case (.transformer, _) where model.transformer.child(name) != nil: return .object(.module(model.transformer.child(name)!))
        case let (.block(b), _) where b.child(name) != nil: return .object(.module(b.child(name)!))
        case let (.module(m), _) where m.child(name) != nil: return .object(.module(m.child(name)!))
        case (.block, "skip"), (.module, "skip"): return .method(base, "skip")
        case let (.module(m), _) where ModuleTree.parameterNames(of: m.module).contains(name): return try parameter(m, name, loc)
        case (.block, "inputs"), (.module, "inputs"):
            // nnsight's (args, kwargs): the module's input, and no keyword arguments (a block's
            // other arguments, the KV cache and masks, are not values here).
            guard let m = envoy(object) else { return nil }
            try requireTrace(name, loc)
            recordAt(loc)
            return .tuple([.tuple([try moduleRead(m.input, m.module, .input, loc)]), .dict(PyDict([]))])
        case let (.block(b), "output"): try requireTrace(name, loc); recordAt(loc); return try moduleRead(b.output, b.module, .output, loc)
        case let (.block(b), "input"): try requireTrace(name, loc); recordAt(loc); return try moduleRead(b.input, b.module, .input, loc)
        case let (.module(m), "output"): try requireTrace(name, loc); recordAt(loc); return try moduleRead(m.output, m.module, .output, loc)
        case let (.module(m), "input"): try requireTrace(name, loc); recordAt(loc); return try moduleRead(m.input, m.module, .input, loc)
        case (.generator, "streamer"): return .object(.module(model.generator.child("streamer")!))
        case (.generator, "output"):
            try requireTrace(name, loc)
            if pastEndStep != nil { throw Flow.pastEnd("model.generator.output") }
            return .proxy(model.generator.output)
        case (.tokenizer, "decode"), (.tokenizer, "encode"), (.tokenizer, "batch_decode"), (.tokenizer, "convert_ids_to_tokens"): return .method(base, name)
        case (.tokenizer, "padding_side"): return .str("left")
        case (.tokenizer, "pad_token_id"), (.tokenizer, "eos_token_id"), (.tokenizer, "bos_token_id"): return .int(model.tokenizer.endOfTextId)
        case (.tokenizer, "eos_token"), (.tokenizer, "pad_token"), (.tokenizer, "bos_token"): return .str("<|endoftext|>")
        case (.tokenizer, "vocab_size"): return .int(model.config.vocabSize)
        case let (.tracer(t), "iter"): return .object(.stepIndexer(t))
        case let (.tracer(t), "result"):
            // A trace's result is the model's output; a generation's, the generated ids.
            if !generating { return .object(.modelOutput(try moduleRead(model.lmHead.output, .lmHead, .output, loc))) }
            return .proxy(t.result)
        case (.tracer, "all"), (.tracer, "next"), (.tracer, "invoke"), (.tracer, "cond"), (.tracer, "stop"), (.tracer, "cache"), (.tracer, "barrier"):
            return .method(base, name)
        case (.namespace("torch.Tensor"), "__name__"): return .str("Tensor")
        case let (.namespace(ns), _): return Namespaces.attribute(ns, name)
        default: return nil
        }
    }

    /// A config.json value as Python sees it (lists and dicts of the file's values).
    static func configValue(_ v: ConfigFields.Value) -> PyValue {
        switch v {
        case .null: .none
        case let .bool(b): .bool(b)
        case let .int(i): .int(i)
        case let .double(d): .float(d)
        case let .string(s): .str(s)
        case let .list(items): .list(PyList(items.map(configValue)))
        case let .object(o): .dict(PyDict(o.keys.sorted().map { (.str($0), configValue(o[$0]!)) }))
        }
    }

    /// Nodes recorded from here on come from `loc` (an expression inside a statement).
    func recordAt(_ loc: SourceLocation) {
        activeTracer?.sourceLine = loc.line
        activeTracer?.sourceColumn = loc.column
    }

    /// A module's output or input, with the autograd name torch gives it.
    func moduleRead(_ value: TraceValue, _ module: ModuleID, _ port: ModuleRead.Port, _ loc: SourceLocation) throws -> PyValue {
        if pastEndStep != nil { throw Flow.pastEnd("model.\(ModuleTree.path(module)).\(port == .input ? "input" : "output")") }
        try checkForwardOrder(module, port, loc)
        if gradEnabled { value.gradFn = Autograd.module(module, port: port) }
        return .proxy(value)
    }

    /// nnsight's OutOfOrderError: within one invoke and step, a script reaches modules in the order
    /// the forward pass runs them (0.8.1 runs the script beside the model; here it would be
    /// recorded, so the order is checked instead).
    func checkForwardOrder(_ module: ModuleID, _ port: ModuleRead.Port, _ loc: SourceLocation) throws {
        // Under a condition nnsight never reaches what a false branch holds, and the graph refuses a
        // guarded access the forward pass has passed only when its condition holds (fail_if).
        guard !replayingEdits, let tracer = activeTracer, ModuleTree.spec(module).source == .hook,
              tracer.currentCondition == nil, clientGuard == nil else { return }
        let point = HookPoint(module, port == .output ? .output : .input)
        if hookPositions == nil {
            hookPositions = Dictionary(uniqueKeysWithValues: ModuleTree.hookOrder(layers: model.config.nLayer).enumerated().map { ($1, $0) })
        }
        guard let position = hookPositions?[point] else { return }
        let key = ForwardCursor(tracer: ObjectIdentifier(tracer), invoke: tracer.invokeIndex, step: tracer.step)
        if let last = forwardCursor[key], position < last {
            throw fail(.outOfOrder, "'model.\(ModuleTree.path(module)).\(port == .output ? "output" : "input").i\(tracer.step)' was requested but the model already ran past it", loc)
        }
        forwardCursor[key] = max(forwardCursor[key] ?? 0, position)
    }

    func proxyAttribute(_ p: TraceValue, _ base: PyValue, _ name: String, _ loc: SourceLocation) throws -> PyValue? {
        switch name {
        case "shape":
            guard let shape = p.shape else {
                if p.isTupleValue { throw fail(.attribute, "'tuple' object has no attribute 'shape' (index the output first, e.g. output[0])", loc) }
                throw fail(.unsupported, "the shape of this value is known only after the trace (it depends on when generation stops); save it and read .shape afterwards", loc)
            }
            return .size(shape)
        case "ndim":
            guard let shape = p.shape else { return nil }
            return .int(shape.count)
        case "dtype":
            guard case let .tensor(t)? = p.type else { return nil }
            return .dtype(t.dtype)
        case "T", "mT":
            guard let shape = p.shape else { return nil }
            let dims = name == "T" ? Array((0..<shape.count).reversed()) : Array(0..<shape.count)
            if name == "mT" {
                guard shape.count >= 2 else { throw fail(.runtime, "tensor.mT is only supported on matrices or batches of matrices. Got \(shape.count)-D tensor.", loc) }
                return try torchOp("transpose", [base], Attributes(["dim0": .int(-2), "dim1": .int(-1)]), loc)
            }
            return shape.count < 2 ? base : try torchOp("permute", [base], Attributes(["dims": .ints(dims)]), loc)
        case "values", "indices":
            guard p.isTupleValue else { return nil }
            return try subscriptProxy(p, [.at(name == "values" ? 0 : 1)], loc)
        case "device": return .str("cpu")
        case "is_cuda": return .bool(false)
        case "requires_grad": return .bool(p.gradFn != nil)
        case "grad_fn": return p.gradFn.flatMap { $0 == Autograd.leaf ? nil : PyValue.str("<\($0)>") } ?? PyValue.none
        case "data": return base
        default: return .method(base, name)
        }
    }

    func tensorAttribute(_ base: PyValue, _ name: String, _ loc: SourceLocation) throws -> PyValue? {
        guard case let .tensor(t, grad) = base else { return nil }
        switch name {
        case "shape": return .size(t.shape)
        case "ndim": return .int(t.rank)
        case "dtype": return .dtype(t.dtype)
        case "T": return t.rank < 2 ? base : try torchOp("permute", [base], Attributes(["dims": .ints(Array((0..<t.rank).reversed()))]), loc)
        case "mT": return try torchOp("transpose", [base], Attributes(["dim0": .int(-2), "dim1": .int(-1)]), loc)
        case "device": return .str("cpu")
        case "is_cuda": return .bool(false)
        case "requires_grad": return .bool(grad != nil)
        case "grad_fn": return grad.flatMap { $0 == Autograd.leaf ? nil : PyValue.str("<\($0)>") } ?? PyValue.none
        case "data": return .tensor(t)
        default: return .method(base, name)
        }
    }

    func requireTrace(_ what: String, _ loc: SourceLocation) throws {
        guard tracing > 0 else {
            throw fail(.runtime, "'.\(what)' can only be read inside a `with model.generate(...)` or `with model.trace(...)` block", loc)
        }
    }

    // MARK: - subscripts

    /// An index expression: ints, slices, `...`, `None`, and one int list or int tensor.
    enum IndexPart {
        case basic(TensorIndex)
        case tensor(PyValue)
    }

    func tensorIndex(_ items: [Expr.SubscriptItem], _ loc: SourceLocation) throws -> [TensorIndex] {
        try indexParts(items, loc).map { part in
            guard case let .basic(index) = part else { throw fail(.unsupported, "indexing with a list or tensor is not supported here", loc) }
            return index
        }
    }

    func indexParts(_ items: [Expr.SubscriptItem], _ loc: SourceLocation) throws -> [IndexPart] {
        func int(_ e: Expr?) throws -> Int? {
            guard let e else { return nil }
            switch try resolved(try eval(e), e.location) {
            case let .int(i): return i
            case let .bool(b): return b ? 1 : 0
            case .none: return nil
            case let .tensor(t, _) where t.count == 1 && t.dtype == .int64: return t.ints[0]
            case .proxy, .deferred: throw fail(.unsupported, "a slice bound from a traced value would make the shape depend on the data; use a static bound", e.location)
            default: throw fail(.type, "slice indices must be integers or None or have an __index__ method", e.location)
            }
        }
        return try items.map { item in
            switch item {
            case let .slice(a, b, c): return .basic(.slice(try int(a), try int(b), step: try int(c)))
            case let .index(e):
                if case .ellipsis = e.kind { return .basic(.ellipsis) }
                if case .none = e.kind { return .basic(.newAxis) }
                let v = try resolved(try eval(e), e.location)
                switch v {
                case let .int(i): return .basic(.at(i))
                case let .slice(a, b, c): return .basic(.slice(a, b, step: c))
                case let .bool(b): return .basic(.at(b ? 1 : 0))
                case .none: return .basic(.newAxis)
                case let .tensor(t, _) where t.rank == 0 && t.dtype == .int64: return .basic(.at(t.ints[0]))
                case .list, .tuple, .tensor, .proxy: return .tensor(v)
                case .deferred: throw fail(.unsupported, "an index computed on the client (.item()) cannot select inside the model; index with the tensor itself", e.location)
                default: throw fail(.type, "only integers, slices (`:`), ellipsis (`...`), None and integer or boolean tensors are valid indices", e.location)
                }
            }
        }
    }

    /// Whether code runs between the traces of a session (its earlier traces recorded, not run).
    var betweenSessionTraces: Bool { inSession && activeTracer == nil && !resolving }

    /// Between the traces of a session, code computes on what an earlier trace produced: the
    /// traces recorded so far run now (as nnsight runs each trace when its block ends), keeping
    /// every value the script can still reach; the session's later traces read them as
    /// constants. Values whose computation waited for them are computed now.
    func flushSession(_ loc: SourceLocation) throws {
        var reachable: [TraceValue] = []
        for scope in [globals] + locals { for value in scope.values { reachable += needs(of: value) } }
        do {
            try model.flushSession(keeping: reachable)
        } catch let error as TraceError {
            var at = loc
            if let line = error.line, line > 0 { at = SourceLocation(line: line, column: error.column ?? 1) }
            throw fail(error.kind == .invalidGraph ? .type : error.kind == .overBudget ? .memory : .runtime, error.description, at)
        }
        drainClientActions(final: false)
        if let error = clientError {
            clientError = nil
            throw error
        }
    }

    func subscriptProxy(_ p: TraceValue, _ items: [TensorIndex], _ loc: SourceLocation) throws -> PyValue {
        if p.isTupleValue {
            guard items.count == 1, case let .at(i) = items[0] else { throw fail(.type, "a tuple output takes one integer index, e.g. output[0]", loc) }
            // An item that is None in Hugging Face (attention weights under sdpa) is None here.
            if case let .tuple(types)? = p.type, i >= -types.count, i < types.count, types[i < 0 ? i + types.count : i] == nil { return .none }
            recordAt(loc)
            let item = p.index([.at(i)])
            try checkRecording(loc)
            if case let .tensor(t)? = item.type, t.dtype == .float32 { item.gradFn = p.gradFn }
            return .proxy(item)
        }
        return try torchOp("index", [.proxy(p)], Attributes(["index": .index(items.map(\.item))]), loc)
    }

    func subscriptValue(_ base: PyValue, _ items: [Expr.SubscriptItem], _ loc: SourceLocation) throws -> PyValue {
        if let lifted = try lift([base], loc, graph: { [self] in
            guard case let .deferred(d) = base, let g = d.graph, let index = try? tensorIndex(items, loc) else { return nil }
            return TraceValue.applyIfTyped("index", [g], Attributes(["index": .index(index.map(\.item))]))
        }, { [self] in try subscriptValue(base, items, loc) }) { return lifted }
        let value = try resolved(base, loc)
        switch value {
        case .proxy, .tensor:
            return try tensorSubscript(value, try indexParts(items, loc), loc)
        case let .object(.cache(cache, prefix, perStep)):
            guard items.count == 1, case let .index(e) = items[0] else { throw fail(.type, "a cache takes one index", loc) }
            let key: String
            switch try eval(e) {
            case let .str(k) where prefix == nil: key = k
            case let .int(i) where prefix != nil: key = prefix! + "." + String(i < 0 ? i + model.config.nLayer : i)
            default: throw fail(.type, "a cache is indexed by module names (cache[\"model.transformer.h.0\"])", loc)
            }
            guard cache.keys.contains(where: { $0 == key || $0.hasPrefix(key + ".") }) else { throw fail(.key, Repr.string(key), loc) }
            return .object(.cache(cache, prefix: key, perStep: perStep))
        case let .object(.modelOutput(logits)):
            guard items.count == 1, case let .index(e) = items[0], case .int(0) = try eval(e) else {
                throw fail(.index, "a CausalLMOutputWithCrossAttentions here holds its logits at [0]", loc)
            }
            return logits
        case .object(.layers):
            guard items.count == 1, case let .index(e) = items[0], case let .int(i) = try eval(e) else {
                throw fail(.type, "model.transformer.h takes one integer index", loc)
            }
            guard i >= -model.transformer.h.count, i < model.transformer.h.count else {
                throw fail(.index, "transformer.h[\(i)]: index out of range for \(model.transformer.h.count) layers", loc)
            }
            return .object(.block(model.transformer.h[i]))
        case let .object(.stepIndexer(tracer)):
            return try stepIndex(tracer, items, loc)
        case let .list(l): return try sequenceIndex(l.items, items, loc, wrap: { .list(PyList($0)) })
        case let .tuple(t): return try sequenceIndex(t, items, loc, wrap: { .tuple($0) })
        case let .size(d): return try sequenceIndex(d.map { .int($0) }, items, loc, wrap: { .size($0.compactMap { if case let .int(i) = $0 { i } else { nil } }) })
        case let .str(s): return try sequenceIndex(s.map { .str(String($0)) }, items, loc, wrap: { .str($0.map { if case let .str(c) = $0 { c } else { "" } }.joined()) })
        case let .range(a, b, s): return try sequenceIndex(Swift.stride(from: a, to: b, by: s).map { .int($0) }, items, loc, wrap: { .list(PyList($0)) })
        case let .dict(d):
            guard items.count == 1, case let .index(e) = items[0] else { throw fail(.type, "dict keys take one index", loc) }
            let key = try resolved(try eval(e), e.location)
            guard let v = d[key] else { throw fail(.key, try repr(key, loc), loc) }
            return v
        default:
            throw fail(.type, "'\(value.typeName)' object is not subscriptable", loc)
        }
    }

    /// `x[...]` on a tensor or traced value: basic items make a view; one list or int tensor
    /// index selects along its dim (`take`); a bool mask only as `torch.where`, whose shape is static.
    func tensorSubscript(_ value: PyValue, _ parts: [IndexPart], _ loc: SourceLocation) throws -> PyValue {
        let advanced = parts.indices.filter { if case .tensor = parts[$0] { true } else { false } }
        var basic = parts.map { part -> TensorIndex in if case let .basic(b) = part { return b } else { return .all } }
        if case .proxy = value, betweenSessionTraces {
            try flushSession(loc)
            return try tensorSubscript(try resolved(value, loc), parts, loc)
        }
        if case let .proxy(p) = value, advanced.isEmpty { return try subscriptProxy(p, basic, loc) }
        if advanced.isEmpty { return try torchOp("index", [value], Attributes(["index": .index(basic.map(\.item))]), loc) }
        let mixed = parts.contains { if case .basic(.at) = $0 { true } else if case .basic(.ellipsis) = $0 { true } else { false } }
        let wideMask: Bool = advanced.count == 1 && {
            if case let .tensor(v) = parts[advanced[0]], case let .tensor(t, _)? = try? resolved(v, loc) { return t.dtype == .bool && t.rank > 1 }
            return false
        }()
        guard advanced.count == 1, !mixed, !wideMask, case let .tensor(indexValue) = parts[advanced[0]] else {
            return try advancedSubscript(value, parts, loc)
        }
        var index = try resolved(indexValue, loc)
        if case .list = index { index = .tensor(try tensorLiteral(index, dtype: nil, loc)) }
        if case .tuple = index { index = .tensor(try tensorLiteral(index, dtype: nil, loc)) }
        let dtype: DType? = switch index {
        case let .tensor(t, _): t.dtype
        case let .proxy(p): { if case let .tensor(t)? = p.type { return t.dtype } else { return nil } }()
        default: nil
        }
        if dtype == .bool {
            // A mask the script holds has a known number of true elements: it selects their
            // positions. A traced mask's count exists only while the model runs.
            guard case let .tensor(mask, _) = index, mask.rank == 1 else {
                throw fail(.unsupported, "indexing with a traced (or multi-dimensional) bool mask gives a shape that depends on the data; use torch.where(mask, x, 0) or x * mask", loc)
            }
            index = .tensor(Tensor(shape: [mask.bools.filter { $0 }.count], ints: mask.bools.enumerated().filter(\.element).map { Int64($0.offset) }))
        }
        // The dim the list indexes in the view the basic items make (new axes before it count).
        let dim = basic[..<advanced[0]].filter { $0.item != .ellipsis }.count
        basic[advanced[0]] = .all
        let viewed = basic.allSatisfy({ $0.item == .all }) ? value : try tensorSubscript(value, basic.map { .basic($0) }, loc)
        return try torchOp("take", [viewed, index], Attributes(["dim": .int(dim)]), loc)
    }

    /// torch's general advanced indexing (`x[0, [1, 2]]`, `x[i, j]`, a 2-d bool mask on a value
    /// the script holds): ints beside index tensors count as 0-d index tensors; a bool mask is
    /// its true positions, one index tensor per dim it covers.
    func advancedSubscript(_ value: PyValue, _ parts: [IndexPart], _ loc: SourceLocation) throws -> PyValue {
        var items: [IndexItem] = [], advanced: [Int] = [], operands: [PyValue] = [value]
        func addIndex(_ v: PyValue) {
            advanced.append(items.count)
            items.append(.all)
            operands.append(v)
        }
        for part in parts {
            switch part {
            case let .basic(b): items.append(b.item)
            case let .tensor(v0):
                var v = try resolved(v0, loc)
                if case .list = v { v = .tensor(try tensorLiteral(v, dtype: nil, loc)) }
                if case .tuple = v { v = .tensor(try tensorLiteral(v, dtype: nil, loc)) }
                switch v {
                case let .tensor(t, _) where t.dtype == .bool:
                    // The mask's true positions: one index tensor per dim it covers.
                    let strides = Tensor.contiguousStrides(t.shape)
                    let hits = t.contiguous().bools.enumerated().filter(\.element).map(\.offset)
                    for d in t.shape.indices {
                        addIndex(.tensor(Tensor(shape: [hits.count], ints: hits.map { Int64(($0 / strides[d]) % t.shape[d]) })))
                    }
                case let .tensor(t, _) where t.dtype == .float32:
                    throw fail(.index, "tensors used as indices must be long, int or bool tensors", loc)
                case let .proxy(p) where { if case let .tensor(t)? = p.type { t.dtype == .bool } else { false } }():
                    throw fail(.unsupported, "indexing with a traced bool mask gives a shape that depends on the data; use torch.where(mask, x, 0) or x * mask", loc)
                default: addIndex(v)
                }
            }
        }
        return try torchOp("advanced_index", operands, Attributes(["index": .index(items), "advanced": .ints(advanced)]), loc)
    }

    /// `tracer.iter[...]` where not one step is generated: an error before anything runs (the
    /// README's promise; nnsight 0.8.1 would wait for a step that never comes). A range that
    /// starts inside and reaches past the end runs as 0.8.1 runs it (`runPastEnd`).
    func noStepRuns(_ index: String, _ first: Int, _ tracer: Tracer, _ loc: SourceLocation) -> ScriptError {
        fail(.index, "tracer.iter[\(index)]: step \(first) is never generated (max_new_tokens = \(tracer.maxNewTokens) runs steps 0..\(tracer.maxNewTokens - 1))", loc)
    }

    func stepIndex(_ tracer: Tracer, _ items: [Expr.SubscriptItem], _ loc: SourceLocation) throws -> PyValue {
        guard items.count == 1 else { throw fail(.type, "tracer.iter takes one index", loc) }
        switch items[0] {
        case let .slice(a, b, c):
            func int(_ e: Expr?) throws -> Int? {
                guard let e else { return nil }
                guard case let .int(i) = try eval(e) else { throw fail(.type, "step bounds must be integers", e.location) }
                return i
            }
            let (start, stop, step) = (try int(a) ?? 0, try int(b), try int(c) ?? 1)
            guard step > 0 else { throw fail(.value, "step must be positive", loc) }
            // Steps past max_new_tokens never run: the bounds are clamped before any list is built.
            let lo = max(start, 0), hi = min(stop ?? tracer.maxNewTokens, tracer.maxNewTokens)
            if lo >= tracer.maxNewTokens, stop.map({ lo < $0 }) ?? true { throw noStepRuns("\(start):\(stop.map(String.init) ?? "")", lo, tracer, loc) }
            var sequence = tracer.iter[lo < hi ? Array(Swift.stride(from: lo, to: hi, by: step)) : []]
            if let stop, stop > tracer.maxNewTokens {
                sequence.pastEnd = Swift.stride(from: lo, to: stop, by: step).first { $0 >= tracer.maxNewTokens }
            }
            return .steps(sequence)
        case let .index(e):
            switch try eval(e) {
            case let .int(i):
                guard i < tracer.maxNewTokens else { throw noStepRuns("\(i)", i, tracer, loc) }
                return .steps(tracer.iter[i])
            case let .list(l):
                return .steps(tracer.iter[try l.items.map { v -> Int in
                    guard case let .int(i) = v else { throw fail(.type, "step lists hold integers", e.location) }
                    return i
                }])
            default: throw fail(.type, "tracer.iter takes a slice, an int or a list of ints", e.location)
            }
        }
    }

    func sequenceIndex(_ items: [PyValue], _ index: [Expr.SubscriptItem], _ loc: SourceLocation,
                       wrap: ([PyValue]) -> PyValue) throws -> PyValue {
        guard index.count == 1 else { throw fail(.type, "sequence indices must be integers or slices, not tuple", loc) }
        let n = items.count
        switch try tensorIndex(index, loc)[0] {
        case let .at(i):
            let k = i < 0 ? i + n : i
            guard k >= 0, k < n else { throw fail(.index, "index \(i) out of range", loc) }
            return items[k]
        case let .slice(a, b, step):
            let st = step ?? 1
            guard st != 0 else { throw fail(.value, "slice step cannot be zero", loc) }
            if st > 0 {
                func clamp(_ v: Int?, _ d: Int) -> Int { v.map { min(max($0 < 0 ? $0 + n : $0, 0), n) } ?? d }
                let (lo, hi) = (clamp(a, 0), clamp(b, n))
                return wrap(lo < hi ? Swift.stride(from: lo, to: hi, by: st).map { items[$0] } : [])
            }
            func clamp(_ v: Int?, _ d: Int) -> Int { v.map { min(max($0 < 0 ? $0 + n : $0, -1), n - 1) } ?? d }
            let (hi, lo) = (clamp(a, n - 1), clamp(b, -1))
            return wrap(hi > lo ? Swift.stride(from: hi, to: lo, by: st).map { items[$0] } : [])
        default: throw fail(.type, "unsupported index", loc)
        }
    }

    /// `t[index] = value` on a tensor the script made: a copy with the region written.
    static func written(_ t: Tensor, _ index: [IndexItem], _ value: Tensor, _ loc: SourceLocation, _ runner: ScriptRunner) throws -> Tensor {
        let region: [Int]
        do { region = try IndexItem.shape(of: index, on: t.shape) } catch { throw runner.fail(.index, error.description, loc) }
        let source: Tensor
        do { source = try value.expanded(to: region).converted(to: t.dtype) } catch {
            throw runner.fail(.runtime, "shape mismatch: value tensor of shape \(value.shape) cannot be broadcast to indexing result of shape \(region)", loc)
        }
        // Write through a live buffer over a copy of the elements.
        var floats = t.floats, ints = t.int64s
        let marker = Tensor(shape: t.shape, ints: (0..<Int64(t.count)).map { $0 })
        let positions = (try? marker.indexed(index))?.int64s ?? []
        switch t.dtype {
        case .float32:
            let v = source.floats
            for (k, p) in positions.enumerated() { floats[Int(p)] = v[k] }
            return Tensor(shape: t.shape, floats: floats)
        case .int64:
            let v = source.int64s
            for (k, p) in positions.enumerated() { ints[Int(p)] = v[k] }
            return Tensor(shape: t.shape, ints: ints)
        case .bool:
            var b = t.bools
            let v = source.bools
            for (k, p) in positions.enumerated() { b[Int(p)] = v[k] }
            return Tensor(shape: t.shape, bools: b)
        }
    }
}
