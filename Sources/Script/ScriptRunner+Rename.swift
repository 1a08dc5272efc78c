import Coordinator
import Engine

/// `LanguageModel(..., rename={"transformer.h": "layers", "mlp": "ffn", "attn.c_proj": "attn.o_proj"})`:
/// extra names for modules, as nnsight 0.8.1 binds them. A key is a module path relative to any
/// module where it resolves (a single name binds wherever that child exists); a dotted alias binds
/// its last name on the module its prefix names, which the key must start with. A key that does not
/// resolve somewhere is skipped there, as one rename map serves several architectures.
struct ModuleAlias {
    let key: [String]
    let alias: [String]
}

extension ScriptRunner {
    /// The aliases of a `rename=` argument: a dict of path -> alias (or list of aliases).
    func moduleAliases(_ rename: PyValue, _ loc: SourceLocation) throws -> [ModuleAlias] {
        guard case let .dict(d) = try resolved(rename, loc) else { throw fail(.type, "rename= takes a dict of module path -> alias", loc) }
        var out: [ModuleAlias] = []
        for (k, v) in d.entries {
            guard case let .str(key) = k else { throw fail(.type, "rename= keys are module paths (str); module classes are not supported", loc) }
            let aliases: [PyValue] = { if case let .list(l) = v { return l.items } else { return [v] } }()
            for a in aliases {
                guard case let .str(alias) = a else { throw fail(.type, "rename= aliases are str (or lists of str)", loc) }
                let keyPath = key.split(separator: ".").map(String.init), aliasPath = alias.split(separator: ".").map(String.init)
                guard !keyPath.isEmpty, let last = aliasPath.last, !last.isEmpty else { throw fail(.value, "rename= entry '\(key)': '\(alias)' is not a name", loc) }
                guard Array(keyPath.prefix(aliasPath.count - 1)) == Array(aliasPath.dropLast()) else {
                    throw fail(.value, "rename= entry '\(key)': a dotted alias ('\(alias)') binds on the module its prefix names, which the key must start with", loc)
                }
                out.append(ModuleAlias(key: keyPath, alias: aliasPath))
            }
        }
        return out
    }

    /// The module `name` names on `object` through an alias, nil when no alias binds it there.
    func aliasedModule(_ object: PyObject, _ name: String, _ loc: SourceLocation) throws -> PyValue? {
        guard !moduleAliases.isEmpty else { return nil }
        let path = modulePath(object)
        guard let path else { return nil }
        for entry in moduleAliases where entry.alias.last == name {
            let prefix = Array(entry.alias.dropLast())
            guard path.count >= prefix.count, Array(path.suffix(prefix.count)) == prefix else { continue }
            // From the module the alias binds on, the rest of the key.
            var value: PyValue = .object(object)
            var resolvedAll = true
            for component in entry.key.dropFirst(prefix.count) {
                guard case let .object(current) = value, let next = try child(current, component, loc) else { resolvedAll = false; break }
                value = next
            }
            if resolvedAll { return value }
        }
        return nil
    }

    /// A module's path from the model as its names (`["transformer", "h", "3", "attn"]`).
    func modulePath(_ object: PyObject) -> [String]? {
        switch object {
        case .model: return []
        case .layers: return ["transformer", "h"]
        default:
            guard let m = envoy(object) else { return nil }
            return ModuleTree.path(m.module).split(separator: ".").map(String.init)
        }
    }

    /// A direct child of a module by name (a layer of `h` by its index), nil when there is none.
    private func child(_ object: PyObject, _ name: String, _ loc: SourceLocation) throws -> PyValue? {
        if case .layers = object, let i = Int(name) {
            guard i >= 0, i < model.transformer.h.count else { return nil }
            return .object(.block(model.transformer.h[i]))
        }
        guard let value = try? objectAttribute(object, .object(object), name, loc), case let .object(child) = value,
              modulePath(child) != nil else { return nil }
        return value
    }
}
