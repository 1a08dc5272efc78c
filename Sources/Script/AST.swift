/// The syntax tree of a trace script.
final class Expr {
    indirect enum Kind {
        case name(String)
        case int(Int)
        case float(Double)
        case string(String)
        case fstring([FPart])
        case bool(Bool)
        case none
        case ellipsis
        case list([Expr])
        case tuple([Expr])
        case dict([(Expr, Expr)])
        case attribute(Expr, String)
        case `subscript`(Expr, [SubscriptItem])
        case call(Expr, [Expr], [(String, Expr)])
        case binary(String, Expr, Expr)
        case unary(String, Expr)
        case boolOp(String, [Expr])
        case compare(Expr, [(String, Expr)])
        case listComp(Expr, target: Expr, iter: Expr, conditions: [Expr])
        /// `{key: value for target in iter if ...}`
        case dictComp(key: Expr, value: Expr, target: Expr, iter: Expr, conditions: [Expr])
        case lambda([Param], Expr)
        /// `body if test else orelse`
        case ifExp(test: Expr, body: Expr, orelse: Expr)
    }

    /// A function parameter, with its default.
    struct Param {
        var name: String
        var defaultValue: Expr?
    }

    enum FPart {
        case literal(String)
        case value(Expr, conversion: Character?, spec: String)
    }

    enum SubscriptItem {
        case index(Expr)
        case slice(Expr?, Expr?, Expr?)
    }

    let kind: Kind
    let location: SourceLocation

    init(_ kind: Kind, _ location: SourceLocation) {
        self.kind = kind
        self.location = location
    }
}

final class Stmt {
    enum Kind {
        case expr(Expr)
        case assign([Expr], Expr)
        case augAssign(Expr, String, Expr)
        case forLoop(Expr, Expr, [Stmt])
        case ifStmt([(Expr, [Stmt])], [Stmt]?)
        case with([(Expr, Expr?)], [Stmt])
        case pass
        /// `import a.b as c`: (dotted path, bound name).
        case importModules([(path: String, alias: String?)])
        /// `from a.b import c as d`
        case importFrom(String, [(name: String, alias: String?)])
        case whileLoop(Expr, [Stmt])
        case def(String, [Expr.Param], [Stmt])
        case `return`(Expr?)
        case `break`
        case `continue`
        case assert(Expr, Expr?)
    }

    let kind: Kind
    let location: SourceLocation

    init(_ kind: Kind, _ location: SourceLocation) {
        self.kind = kind
        self.location = location
    }
}
