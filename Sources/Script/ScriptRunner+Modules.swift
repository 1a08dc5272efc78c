import Coordinator
import Engine
import Graph

/// Modules as values in a script: calling them (`model.lm_head(x)`), their parameters
/// (`model.lm_head.weight`), replacing their output or input (`module.output = x`) and `skip`.
extension ScriptRunner {
    /// The envoy a module object stands for (nil for other objects).
    func envoy(_ object: PyObject) -> ModuleEnvoy? {
        switch object {
        case let .module(m): m
        case let .block(b): b
        case .transformer: model.transformer
        case .generator: model.generator
        default: nil
        }
    }

    /// A module's argument as a traced value: a tuple output stands for its item 0, as the
    /// tuples of Hugging Face's modules are used.
    func moduleArgument(_ v: PyValue, _ loc: SourceLocation) throws -> TraceValue {
        if case let .tuple(items) = try resolved(v, loc), let first = items.first { return try traceOperand(first, loc) }
        return try traceOperand(v, loc)
    }

    /// `module(x)`: a graph node that runs on the stage holding the module's weights.
    func callModule(_ m: ModuleEnvoy, _ args: [PyValue], _ kwargs: [String: PyValue], _ loc: SourceLocation) throws -> PyValue {
        guard tracing > 0 else {
            throw fail(.unsupported, "model.\(m.module)(...) outside a trace: modules run on the workers, so call them inside a trace", loc)
        }
        guard args.count == 1, kwargs.isEmpty else { throw fail(.type, "model.\(m.module)(...) takes one tensor", loc) }
        let x = try moduleArgument(args[0], loc)
        recordAt(loc)
        let out = m(x)
        try checkRecording(loc)
        if gradEnabled { out.gradFn = Autograd.module(m.module, port: .output) }
        return .proxy(out)
    }

    /// `model.lm_head.weight`: read-only, inside a trace (the weights live on the workers).
    func parameter(_ m: ModuleEnvoy, _ name: String, _ loc: SourceLocation) throws -> PyValue {
        guard tracing > 0 else { return .tensor(try parameterOutsideTrace(m, name, loc), grad: gradEnabled ? Autograd.leaf : nil) }
        recordAt(loc)
        let p = m.parameter(name)
        try checkRecording(loc)
        p.gradFn = gradEnabled ? Autograd.leaf : nil
        return .proxy(p)
    }

    /// A parameter read outside a trace (nnsight reads the module's weight directly): the weights
    /// live on the workers, so a one-token trace fetches it, once per parameter and script.
    func parameterOutsideTrace(_ m: ModuleEnvoy, _ name: String, _ loc: SourceLocation) throws -> Tensor {
        let key = "\(m.module).\(name)"
        if let t = parameterCache[key] { return t }
        var saved: Saved?
        do {
            try model.trace { tracer in
                tracer.invoke(tokens: [model.tokenizer.endOfTextId]) { saved = m.parameter(name).save() }
            }
        } catch {
            throw fail(.runtime, "reading model.\(key): \(error)", loc)
        }
        guard let saved, let t = try? saved.value else { throw fail(.runtime, "reading model.\(key): the cluster sent no value", loc) }
        parameterCache[key] = t
        return t
    }

    /// `module.output = value` / `module.input = value`.
    func assignModuleAttribute(_ object: PyObject, _ name: String, _ value: PyValue, _ loc: SourceLocation) throws {
        guard let m = envoy(object) else {
            throw fail(.unsupported, "assigning to attributes is not supported here (assign a module's .output or .input, or into it with [...] = ...)", loc)
        }
        if ModuleTree.parameterNames(of: m.module).contains(name) {
            throw fail(.type, "model.\(m.module).\(name) is a parameter of the model: read-only (edit activations, not weights)", loc)
        }
        guard name == "output" || name == "input" else { throw fail(.attribute, "cannot assign to '\(name)' of \(m.module)", loc) }
        guard m.module != .generator, m.module != .transformer else {
            throw fail(.unsupported, "model.\(m.module).\(name) cannot be replaced; replace a layer's or lm_head's instead", loc)
        }
        try requireTrace(name, loc)
        let v = try moduleArgument(value, loc)
        recordAt(loc)
        if name == "output" { m.output = v } else { m.input = v }
        try checkRecording(loc)
    }

    /// `module.skip(value)`.
    func skipModule(_ m: ModuleEnvoy, _ args: [PyValue], _ kwargs: [String: PyValue], _ loc: SourceLocation) throws -> PyValue {
        try requireTrace("skip", loc)
        guard args.count == 1, kwargs.isEmpty else { throw fail(.type, "skip() takes the module's replacement output", loc) }
        let v = try moduleArgument(args[0], loc)
        recordAt(loc)
        m.skip(v)
        try checkRecording(loc)
        return .none
    }
}
