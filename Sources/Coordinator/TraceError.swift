/// Why a trace could not compile or run. Messages name the node, module, step and line.
public enum TraceError: Error, Equatable, CustomStringConvertible {
    case invalidGraph(String)
    case stepNotReached(step: Int)
    case runtime(String)
    case transport(String)

    public var description: String {
        switch self {
        case let .invalidGraph(m): "invalid trace: \(m)"
        case let .stepNotReached(step): "step \(step) was not reached (generation stopped before it)"
        case let .runtime(m): "trace failed: \(m)"
        case let .transport(m): "cluster error: \(m)"
        }
    }
}
