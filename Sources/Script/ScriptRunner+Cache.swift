import Coordinator
import Engine
import Graph

/// `tracer.cache(...)` in scripts: the cache object, its keys, and entries reached by key
/// (`cache["model.transformer.h.0"]`) or by attribute path (`cache.model.transformer.h[0]`).
extension ScriptRunner {
    func cacheCall(_ t: Tracer, _ kwargs: [String: PyValue], _ loc: SourceLocation) throws -> PyValue {
        if let bad = kwargs.keys.sorted().first(where: { !["modules", "include_inputs", "include_output", "device", "dtype", "detach"].contains($0) }) {
            throw fail(.type, "cache() got an unexpected keyword argument '\(bad)'", loc)
        }
        var targets: [TraceCache.Target]?
        if let modules = kwargs["modules"], case .list(let list) = modules {
            targets = try list.items.map { item in
                switch item {
                case .object(.model): return .model
                case .object(.transformer): return .transformer
                case let .object(object) where envoy(object) != nil: return .module(envoy(object)!.module)
                case let .str(key):
                    guard let target = TraceCache.allTargets(layers: model.config.nLayer).first(where: { TraceCache.key($0) == key }) else {
                        throw fail(.value, "cache(): no module '\(key)'", loc)
                    }
                    return target
                default: throw fail(.type, "cache(modules=...) takes modules (model.transformer.h[0]) or their names", loc)
                }
            }
        }
        let includeInputs = if case .bool(true)? = kwargs["include_inputs"] { true } else { false }
        let includeOutput = if case .bool(false)? = kwargs["include_output"] { false } else { true }
        recordAt(loc)
        let cache = t.cache(modules: targets, includeInputs: includeInputs, includeOutput: includeOutput)
        try checkRecording(loc)
        for (_, entry) in cache.entries where gradEnabled {
            for (_, value) in entry.outputs { value.gradFn = Autograd.module(entry.target.output, port: .output) }
            for (_, value) in entry.inputs { value.gradFn = Autograd.module(entry.target.input, port: .input) }
        }
        return .object(.cache(cache, prefix: nil, perStep: generating))
    }

    /// An attribute of a cache (or of a path into it).
    func cacheAttribute(_ cache: TraceCache, _ prefix: String?, _ perStep: Bool, _ name: String, _ base: PyValue, _ loc: SourceLocation) throws -> PyValue? {
        if let prefix, let entry = cache[prefix] {
            switch name {
            case "output": return entryValues(entry, entry.outputs, perStep) { [self] v in output(of: entry, v) }
            case "inputs": return entryValues(entry, entry.inputs, perStep) { v in .tuple([.tuple([v]), .dict(PyDict([]))]) }
            case "input": return entryValues(entry, entry.inputs, perStep) { $0 }
            default: break
            }
        }
        if prefix == nil, ["keys", "items", "values", "get"].contains(name) { return .method(base, name) }
        let path = prefix.map { $0 + "." + name } ?? name
        guard cache.keys.contains(where: { $0 == path || $0.hasPrefix(path + ".") }) else { return nil }
        return .object(.cache(cache, prefix: path, perStep: perStep))
    }

    /// An entry's values: one (a trace), or one per step reached (a generation).
    private func entryValues(_ entry: TraceCache.Entry, _ values: [(step: Int, value: TraceValue)], _ perStep: Bool,
                             _ wrap: (PyValue) -> PyValue) -> PyValue {
        let items = values.compactMap { _, value -> PyValue? in
            guard let saved = value.saved, saved.wasReached else { return nil }
            return wrap(.saved(saved, value))
        }
        if values.isEmpty {
            // Not cached (inputs by default): None per step the module ran, as nnsight shows it.
            let ran = entry.outputs.filter { $0.value.saved?.wasReached == true }.count
            return perStep ? .list(PyList([PyValue](repeating: .none, count: ran))) : .none
        }
        return perStep ? .list(PyList(items)) : (items.first ?? .none)
    }

    private func output(of entry: TraceCache.Entry, _ v: PyValue) -> PyValue {
        switch entry.target {
        case .model, .transformer: return .object(.modelOutput(v))
        case .module:
            guard let size = entry.outputTuple else { return v }
            return .tuple([v] + [PyValue](repeating: .none, count: size - 1))
        }
    }

    func cacheMethod(_ cache: TraceCache, _ name: String, _ args: [PyValue], _ loc: SourceLocation) throws -> PyValue {
        switch name {
        case "keys": return .list(PyList(cache.keys.map { .str($0) }))
        case "get":
            guard case let .str(key)? = args.first else { throw fail(.type, "get() takes a key", loc) }
            return cache[key] == nil ? (args.count > 1 ? args[1] : .none) : .object(.cache(cache, prefix: key, perStep: false))
        default: throw fail(.unsupported, "cache.\(name)() is not supported; use cache.keys() and cache[key]", loc)
        }
    }
}
