import Graph
import Wire

extension TraceError {
    /// The wire form: every field travels as it is.
    public var wire: Nnsight_V1_Error {
        .with { e in
            e.code = switch kind {
            case .invalidGraph: .errorInvalidGraph
            case .stepNotReached: .errorStepNotReached
            case .runtime: .errorRuntime
            case .transport: .errorWorkerLost
            case .overBudget: .errorTooLarge
            }
            e.message = message
            if let node { e.node = node }
            if let module { e.module = module }
            if let step { e.step = UInt32(clamping: step) }
            if let worker { e.worker = worker }
            if let line { e.line = UInt32(clamping: line) }
            if let column { e.column = UInt32(clamping: column) }
            if let stage { e.stage = UInt32(clamping: stage) }
        }
    }

    /// A wire error as the trace error it reports.
    public init(wire e: Nnsight_V1_Error) {
        let kind: Kind = switch e.code {
        case .errorInvalidGraph, .errorModelMismatch, .errorInvalidTensor: .invalidGraph
        case .errorStepNotReached: .stepNotReached
        case .errorRuntime: .runtime
        case .errorTooLarge: .overBudget
        default: .transport
        }
        self.init(kind, e.message, node: e.node == 0 ? nil : e.node, step: e.hasStep ? Int(e.step) : nil,
                  module: e.module.isEmpty ? nil : e.module, line: e.line == 0 ? nil : Int(e.line),
                  column: e.column == 0 ? nil : Int(e.column), stage: e.hasStage ? Int(e.stage) : nil,
                  worker: e.worker.isEmpty ? nil : e.worker)
    }
}

extension WireError {
    /// A message a peer could not read, as a trace error.
    public var trace: TraceError { TraceError(.transport, description) }
}
