import CBLAS
import Foundation

/// The tokens of one step for a batch of sequences.
public struct StepInput: Sendable {
    public var batch: Int
    /// New positions this step: the prompt length at step 0, 1 afterwards.
    public var length: Int
    /// (B,T) token ids; read by the stage that owns the embeddings.
    public var tokens: [Int32]
    /// (B,T) position ids.
    public var positions: [Int32]
    /// (B,T) 1 for a real token, 0 for left padding.
    public var mask: [UInt8]

    public init(batch: Int, length: Int, tokens: [Int32], positions: [Int32], mask: [UInt8]) {
        self.batch = batch
        self.length = length
        self.tokens = tokens
        self.positions = positions
        self.mask = mask
    }

    /// One unpadded sequence starting at position `start`.
    public init(tokens: [Int], start: Int = 0) {
        self.init(batch: 1, length: tokens.count, tokens: tokens.map { Int32($0) },
                  positions: (0..<tokens.count).map { Int32(start + $0) },
                  mask: [UInt8](repeating: 1, count: tokens.count))
    }
}

/// What a stage hands on: hidden states `(B,T,C)` for the next stage, or logits from the last.
/// The values live in the state's workspace (no copy per step) and stay valid until its next
/// forward pass; read them through `withValues` or copy them with `array`.
public struct StageOutput {
    public enum Kind: Sendable { case hidden, logits }
    public let kind: Kind
    let values: UnsafeBufferPointer<Float>
    /// `[B, T, C]` for hidden states; `[B, T, V]` (all positions) or `[B, 1, V]` (last only) for logits.
    public let shape: [Int]
    /// Keeps the workspace that `values` points into alive (an `InferenceState` or a `BatchWorkspace`).
    let owner: AnyObject

    public func withValues<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try withExtendedLifetime(owner) { try body(values) }
    }

    /// A copy of the values.
    public var array: [Float] { withValues { Array($0) } }
}

/// One request's step in a stacked pass (`GPT2.forward(batch:workspace:)`).
public struct BatchEntry {
    public var step: StepInput
    /// `(B,T,C)` from the previous stage; nil on the stage that owns the embeddings.
    public var hidden: UnsafeBufferPointer<Float>?
    public var state: InferenceState
    public var hooks: (any HookHandler)?
    public var allLogits: Bool

    public init(_ step: StepInput, hidden: UnsafeBufferPointer<Float>? = nil, state: InferenceState, hooks: (any HookHandler)? = nil,
                allLogits: Bool = false) {
        self.step = step
        self.hidden = hidden
        self.state = state
        self.hooks = hooks
        self.allLogits = allLogits
    }
}

/// The activation buffers of stacked passes, reused across them; their outputs point into it
/// and stay valid until its next pass.
public final class BatchWorkspace {
    let workspace = Workspace()
    public init() {}
}

/// GPT-2 layers `[a, b)` (one pipeline stage, or the whole model), llm.c-style: each module a
/// loop over contiguous buffers, matmuls over packed weights, a KV cache per batch of sequences.
///
/// ```swift
/// let model = GPT2(weights: try GPT2Weights.load(directory: dir, config: config))
/// let state = InferenceState(config: config, layers: model.layers.count, batch: 1)
/// let out = try model.forward(StepInput(tokens: ids), state: state)
/// ```
public final class GPT2: @unchecked Sendable {
    public let config: GPT2Config
    public let weights: GPT2Weights
    public var layers: Range<Int> { weights.layers }

    public init(weights: GPT2Weights) {
        self.weights = weights
        config = weights.config
    }

    /// Runs one step through this stage's layers.
    ///
    /// - Parameters:
    ///   - hidden: `(B,T,C)` from the previous stage; nil on the stage that owns the embeddings.
    ///   - allLogits: compute `[B, T, V]` logits rather than the last position's (forced when a
    ///     hook wants `lm_head.output`).
    public func forward(_ step: StepInput, hidden: UnsafeBufferPointer<Float>? = nil, state: InferenceState,
                        hooks: (any HookHandler)? = nil, allLogits: Bool = false) throws -> StageOutput {
        let entry = BatchEntry(step, hidden: hidden, state: state, hooks: hooks, allLogits: allLogits)
        // The pool's helpers spin only during a pass: between this stage's steps they sleep,
        // leaving the cores to the other stages on this machine.
        return try Ops.pool.pass { try forwardPass([entry], ws: state.workspace, owner: state)[0] }
    }

    /// Runs one step of several requests as one pass: their rows are stacked for the matmuls
    /// (the weights are read once for all of them), each keeps its own KV cache, attention mask,
    /// positions and step, and each request's hooks see only its own rows. Results equal separate
    /// passes exactly: the products compute every row the same way whatever the batch.
    ///
    /// ```swift
    /// let outs = try model.forward(batch: [BatchEntry(decodeA, state: a), BatchEntry(prefillB, state: b)],
    ///                              workspace: shared)
    /// ```
    public func forward(batch entries: [BatchEntry], workspace: BatchWorkspace) throws -> [StageOutput] {
        guard !entries.isEmpty else { return [] }
        return try Ops.pool.pass { try forwardPass(entries, ws: workspace.workspace, owner: workspace) }
    }

    /// One request's rows in the stacked buffers of a pass, and what its hooks decided this layer.
    struct Segment {
        let offset: Int  // first row of B*T
        let B: Int, T: Int
        let cache: KVCache
        let hooks: (any HookHandler)?
        /// Logits at every position (asked for, a decode step, or a hook reads lm_head.output),
        /// else at each row's last.
        let fullLogits: Bool
        var skipsBlock = false, skipsAttn = false, skipsMLP = false
        var rows: Int { B * T }
        var logitRows: Int { fullLogits ? B * T : B }
    }

    private func forwardPass(_ entries: [BatchEntry], ws: Workspace, owner: AnyObject) throws -> [StageOutput] {
        let C = config.nEmbd
        var segments: [Segment] = []
        segments.reserveCapacity(entries.count)
        var N = 0
        for e in entries {
            let (B, T) = (e.step.batch, e.step.length)
            guard B == e.state.cache.batch else { throw EngineError.invalidArgument("step has batch \(B), cache has \(e.state.cache.batch)") }
            guard T > 0, e.step.mask.count == B * T else { throw EngineError.invalidArgument("step mask must be (B,T) = (\(B),\(T))") }
            if !weights.hasEmbeddings, e.hidden?.count != B * T * C {
                throw EngineError.invalidArgument("stage \(layers) needs hidden states of shape [\(B), \(T), \(C)]")
            }
            let full = e.allLogits || T == 1 || e.hooks?.wantsAllLogits == true
            segments.append(Segment(offset: N, B: B, T: T, cache: e.state.cache, hooks: e.hooks, fullLogits: full))
            N += B * T
        }
        let x = ws.x.reserve(N * C)
        for (e, seg) in zip(entries, segments) { try seg.cache.beginStep(count: seg.T, mask: e.step.mask) }

        if weights.hasEmbeddings {
            try embed(entries, segments, into: x, ws: ws)
        } else {
            for (e, seg) in zip(entries, segments) { (x + seg.offset * C).update(from: e.hidden!.baseAddress!, count: seg.rows * C) }
        }
        for l in layers {
            try block(l, x: x, N: N, segments: &segments, ws: ws)
        }
        for seg in segments { seg.cache.endStep(count: seg.T) }
        guard weights.hasHead else {
            return segments.map { seg in
                StageOutput(kind: .hidden, values: UnsafeBufferPointer(start: x + seg.offset * C, count: seg.rows * C),
                            shape: [seg.B, seg.T, C], owner: owner)
            }
        }
        return try head(x: x, N: N, segments: segments, ws: ws, owner: owner)
    }

    // MARK: - modules

    private func embed(_ entries: [BatchEntry], _ segments: [Segment], into x: UnsafeMutablePointer<Float>, ws: Workspace) throws {
        let (C, V) = (config.nEmbd, config.vocabSize)
        let wte = weights.wte!, wpe = weights.wpe!
        let N = segments.last.map { $0.offset + $0.rows } ?? 0
        let pos = ws.embed.reserve(N * C)
        for (e, seg) in zip(entries, segments) {
            let (B, T, hooks) = (seg.B, seg.T, seg.hooks)
            var tokens = e.step.tokens, positions = e.step.positions
            guard tokens.count == B * T, positions.count == B * T else {
                throw EngineError.invalidArgument("step tokens and positions must be (B,T) = (\(B),\(T))")
            }
            // The ids are copied (for a handler to edit) only when one wants them.
            if hooks?.wants(HookPoint(.wte, .input)) == true {
                try tokens.withUnsafeMutableBufferPointer { ids in try fire(.wte, .input, hooks) { .ids(ids, shape: [B, T]) } }
            }
            if hooks?.wants(HookPoint(.wpe, .input)) == true {
                try positions.withUnsafeMutableBufferPointer { ids in try fire(.wpe, .input, hooks) { .ids(ids, shape: [B, T]) } }
            }
            let (xs, ps) = (x + seg.offset * C, pos + seg.offset * C)
            for i in 0..<(B * T) {
                let id = Int(tokens[i]), p = Int(positions[i])
                guard id >= 0, id < V else { throw EngineError.tokenOutOfRange(id: id, vocabSize: V) }
                guard p >= 0, p < config.nPositions else { throw EngineError.promptTooLong(length: p + 1, limit: config.nPositions) }
                wte.row(id, into: xs + i * C)
                (ps + i * C).update(from: wpe + p * C, count: C)
            }
            try fire(.wte, .output, xs, (B, T, C), hooks)
            try fire(.wpe, .output, ps, (B, T, C), hooks)
        }
        Ops.add(x, pos, count: N * C)
        try dropout(.drop, x, width: C, segments)
    }

    private func block(_ l: Int, x: UnsafeMutablePointer<Float>, N: Int, segments: inout [Segment], ws: Workspace) throws {
        let C = config.nEmbd, I = config.innerDim, local = l - layers.lowerBound
        let w = weights.blocks[local]
        let runs = { (seg: Segment) in !seg.skipsBlock }
        let attends = { (seg: Segment) in !seg.skipsBlock && !seg.skipsAttn }
        let runsMLP = { (seg: Segment) in !seg.skipsBlock && !seg.skipsMLP }
        for i in segments.indices {
            segments[i].skipsBlock = try fireSkipping(.block(l), x, width: C, segments[i])
            // The handler writes a skipped block's output into x at its output hook; the layer
            // stores no keys this step.
            if segments[i].skipsBlock { segments[i].cache.skip(layer: local, count: segments[i].T) }
        }
        guard segments.contains(where: runs) else { return try fire(.block(l), .output, x, width: C, segments) }

        // x + attn(ln_1(x))
        let ln = ws.ln.reserve(N * C)
        try layerNorm(.ln1(l), x, into: ln, w.ln1W, w.ln1B, segments, ws)
        try fire(.ln1(l), .output, ln, width: C, segments, where: runs)
        for i in segments.indices where runs(segments[i]) {
            segments[i].skipsAttn = try fireSkipping(.attn(l), ln, width: C, segments[i])
            if segments[i].skipsAttn { segments[i].cache.skip(layer: local, count: segments[i].T) }
        }
        let attnOut = ws.attnOut.reserve(N * C)
        if segments.contains(where: attends) {
            let qkv = ws.qkv.reserve(N * 3 * C)
            try conv1D(.cAttn(l), ln, into: qkv, w.qkvW, w.qkvB, rows: N, segments, ws, where: attends)
            let y = ws.attnY.reserve(N * C)
            for seg in segments where attends(seg) {
                attention(y + seg.offset * C, qkv: qkv + seg.offset * 3 * C, layer: local, B: seg.B, T: seg.T, ws: ws, cache: seg.cache)
            }
            try conv1D(.attnProj(l), y, into: attnOut, w.attnProjW, w.attnProjB, rows: N, segments, ws, where: attends)
            try dropout(.residDropout(l), attnOut, width: C, segments, where: attends)
        }
        // A skipped attn's output is written here by its handler.
        try fire(.attn(l), .output, attnOut, width: C, segments, where: runs)
        Ops.add(x, attnOut, count: N * C)

        // x + mlp(ln_2(x))
        try layerNorm(.ln2(l), x, into: ln, w.ln2W, w.ln2B, segments, ws)
        try fire(.ln2(l), .output, ln, width: C, segments, where: runs)
        for i in segments.indices where runs(segments[i]) {
            segments[i].skipsMLP = try fireSkipping(.mlp(l), ln, width: C, segments[i])
        }
        let mlpOut = ws.mlpOut.reserve(N * C)
        if segments.contains(where: runsMLP) {
            let fc = ws.fc.reserve(N * I)
            try conv1D(.cFc(l), ln, into: fc, w.fcW, w.fcB, rows: N, segments, ws, where: runsMLP)
            // c_fc's output is act's input (one tensor in PyTorch too); gelu runs in place.
            try fire(.act(l), .input, fc, width: I, segments, where: runsMLP)
            Vectorized.gelu(fc, count: N * I)
            try fire(.act(l), .output, fc, width: I, segments, where: runsMLP)
            try conv1D(.mlpProj(l), fc, into: mlpOut, w.fcProjW, w.fcProjB, rows: N, segments, ws, where: runsMLP)
            try dropout(.mlpDropout(l), mlpOut, width: C, segments, where: runsMLP)
        }
        // A skipped mlp's output is written here by its handler.
        try fire(.mlp(l), .output, mlpOut, width: C, segments, where: runs)
        Ops.add(x, mlpOut, count: N * C)
        // A skipped block's rows were computed along with the others; its handler overwrites them.
        try fire(.block(l), .output, x, width: C, segments)
    }

    /// A Conv1D over the stacked rows, y (N, out) = x (N, in) @ W + b, between its input and
    /// output hooks for the requests `which` selects.
    @inline(__always)
    private func conv1D(_ module: ModuleID, _ x: UnsafeMutablePointer<Float>, into y: UnsafeMutablePointer<Float>, _ w: PackedMatrix,
                        _ b: UnsafePointer<Float>, rows N: Int, _ segments: [Segment], _ ws: Workspace,
                        where which: (Segment) -> Bool) throws {
        try fire(module, .input, x, width: w.k, segments, where: which)
        Ops.matmul(y, x, w, b, m: N, scratch: ws.interleaved)
        try fire(module, .output, y, width: w.n, segments, where: which)
    }

    /// Dropout is the identity at inference: its input and output hooks see the same tensor.
    @inline(__always)
    private func dropout(_ module: ModuleID, _ x: UnsafeMutablePointer<Float>, width: Int, _ segments: [Segment],
                         where which: (Segment) -> Bool = { _ in true }) throws {
        try fire(module, .input, x, width: width, segments, where: which)
        try fire(module, .output, x, width: width, segments, where: which)
    }

    /// A layernorm over every request's rows, each read from the residual stream or, where its
    /// handler replaces the input, from a copy of its own. Requests whose block is skipped fire
    /// no hooks.
    private func layerNorm(_ module: ModuleID, _ x: UnsafeMutablePointer<Float>, into out: UnsafeMutablePointer<Float>,
                           _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>, _ segments: [Segment], _ ws: Workspace) throws {
        let C = config.nEmbd
        for seg in segments {
            let xs = x + seg.offset * C
            let input = seg.skipsBlock ? UnsafePointer(xs) : try fireLayerNormInput(module, xs, (seg.B, seg.T, C), ws, seg.hooks)
            Ops.layerNorm(out + seg.offset * C, input, weight, bias, rows: seg.rows, channels: C, eps: config.layerNormEpsilon)
        }
    }

    /// Fires `module.port` for every request `which` selects, on its rows of a stacked `buffer`
    /// of `width` floats a row.
    @inline(__always)
    private func fire(_ module: ModuleID, _ port: HookPoint.Port, _ buffer: UnsafeMutablePointer<Float>, width: Int, _ segments: [Segment],
                      where which: (Segment) -> Bool = { _ in true }) throws {
        for seg in segments where which(seg) {
            try fire(module, port, buffer + seg.offset * width, (seg.B, seg.T, width), seg.hooks)
        }
    }

    /// Fires a module's input hook for one request (its rows of a stacked `buffer`); true when
    /// the handler then skips the module (its output hook fills the output buffer instead).
    @inline(__always)
    private func fireSkipping(_ module: ModuleID, _ buffer: UnsafeMutablePointer<Float>, width: Int, _ seg: Segment) throws -> Bool {
        guard let hooks = seg.hooks, hooks.wants(HookPoint(module, .input)) else { return false }
        try fire(module, .input, buffer + seg.offset * width, (seg.B, seg.T, width), hooks)
        return hooks.skips(module)
    }

    /// Fires a layernorm's input hook on the residual stream, or on a copy when the handler
    /// replaces the value (then only the layernorm sees the replacement). The layernorm reads
    /// what this returns.
    @inline(__always)
    private func fireLayerNormInput(_ module: ModuleID, _ x: UnsafeMutablePointer<Float>, _ dims: (Int, Int, Int), _ ws: Workspace,
                                    _ hooks: (any HookHandler)?) throws -> UnsafePointer<Float> {
        let point = HookPoint(module, .input)
        guard let hooks, hooks.wants(point) else { return UnsafePointer(x) }
        guard hooks.replaces(point) else {
            try fire(module, .input, x, dims, hooks)
            return UnsafePointer(x)
        }
        let count = dims.0 * dims.1 * dims.2
        // One buffer for every request of a pass: each copy is read by its layernorm before the next.
        let own = ws.lnIn.reserve(count)
        own.update(from: x, count: count)
        try fire(module, .input, own, dims, hooks)
        return UnsafePointer(own)
    }

    /// Causal self-attention with the KV cache: stores this step's keys and values, then
    /// y (B,T,C) = softmax(q k^T / sqrt(HD), causal + padding mask) v, (sequence, head) pairs
    /// spread over the pool. Prefill uses BLAS per head; a decode step's one query uses SIMD
    /// loops, where BLAS call overhead would exceed the work.
    private func attention(_ y: UnsafeMutablePointer<Float>, qkv: UnsafePointer<Float>, layer l: Int,
                           B: Int, T: Int, ws: Workspace, cache: KVCache) {
        let C = config.nEmbd, NH = config.nHead, HD = config.headDim
        let L0 = cache.length, L = L0 + T
        let scale = 1 / Float(HD).squareRoot()
        let scoresByThread = ws.scores.reserve(Ops.pool.threads * T * L)  // (threads, T, L)
        let mask = cache.mask(layer: l)
        Ops.pool.parallel(parts: B * NH) { pair, thread in
            let scores = scoresByThread + thread * T * L
            let (b, h) = pair.quotientAndRemainder(dividingBy: NH)
            let maskRow = mask + b * cache.capacity
            let keys = cache.keys(layer: l, batch: b, head: h)      // (L, HD)
            let values = cache.values(layer: l, batch: b, head: h)  // (L, HD)
            for t in 0..<T {
                let row = qkv + (b * T + t) * 3 * C
                (keys + (L0 + t) * HD).update(from: row + C + h * HD, count: HD)
                (values + (L0 + t) * HD).update(from: row + 2 * C + h * HD, count: HD)
            }
            let q = qkv + b * T * 3 * C + h * HD  // (T, HD), row stride 3C
            let out = y + b * T * C + h * HD      // (T, HD), row stride C
            if T == 1 {
                for j in 0..<L { scores[j] = Vectorized.dot(q, keys + j * HD, count: HD) * scale }
                Ops.maskedSoftmax(scores, count: L) { maskRow[$0] != 0 }
                out.update(repeating: 0, count: HD)
                for j in 0..<L where scores[j] != 0 {
                    Vectorized.axpy(scores[j], values + j * HD, out, count: HD)
                }
                return
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(T), Int32(L), Int32(HD),
                        scale, q, Int32(3 * C), keys, Int32(HD), 0, scores, Int32(L))
            for t in 0..<T {
                let visible = L0 + t + 1
                let s = scores + t * L
                Ops.maskedSoftmax(s, count: visible) { maskRow[$0] != 0 }
                (s + visible).update(repeating: 0, count: L - visible)
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(T), Int32(HD), Int32(L),
                        1, scores, Int32(L), values, Int32(HD), 0, out, Int32(C))
        }
    }

    private func head(x: UnsafeMutablePointer<Float>, N: Int, segments: [Segment], ws: Workspace, owner: AnyObject) throws -> [StageOutput] {
        let C = config.nEmbd, V = config.vocabSize
        try fire(.lnF, .input, x, width: C, segments)
        let ln = ws.ln.reserve(N * C)
        Ops.layerNorm(ln, x, weights.lnFW!, weights.lnFB!, rows: N, channels: C, eps: config.layerNormEpsilon)
        try fire(.lnF, .output, ln, width: C, segments)
        let rows = segments.reduce(0) { $0 + $1.logitRows }
        var input = ln
        if !segments.allSatisfy(\.fullLogits) {
            let gathered = ws.lastRows.reserve(rows * C)
            var r = 0
            for seg in segments {
                if seg.fullLogits {
                    (gathered + r * C).update(from: ln + seg.offset * C, count: seg.rows * C)
                } else {
                    for b in 0..<seg.B { (gathered + (r + b) * C).update(from: ln + (seg.offset + b * seg.T + seg.T - 1) * C, count: C) }
                }
                r += seg.logitRows
            }
            input = gathered
        }
        // lm_head sees the rows it computes: (B,T,C) or each row's last (B,1,C).
        var r0 = 0
        for seg in segments {
            try fire(.lmHead, .input, input + r0 * C, (seg.B, seg.fullLogits ? seg.T : 1, C), seg.hooks)
            r0 += seg.logitRows
        }
        let logits = ws.logits.reserve(rows * V)
        Ops.matmulTransposed(logits, input, weights.lmHead!, m: rows)
        var outputs: [StageOutput] = []
        outputs.reserveCapacity(segments.count)
        var r = 0
        for seg in segments {
            let dims = (seg.B, seg.fullLogits ? seg.T : 1, V)
            try fire(.lmHead, .output, logits + r * V, dims, seg.hooks)
            outputs.append(StageOutput(kind: .logits, values: UnsafeBufferPointer(start: logits + r * V, count: seg.logitRows * V),
                                       shape: [dims.0, dims.1, V], owner: owner))
            r += seg.logitRows
        }
        return outputs
    }

    // MARK: - hooks

    /// Hands the tensor at a hook point to the handler, if it wants that point. Nothing is built
    /// (no shape array, no buffer view) for a point nobody wants: the decode path runs this
    /// a dozen times per layer per step.
    @inline(__always)
    private func fire(_ module: ModuleID, _ port: HookPoint.Port, _ pointer: UnsafeMutablePointer<Float>,
                      _ dims: (Int, Int, Int), _ hooks: (any HookHandler)?) throws {
        try fire(module, port, hooks) {
            .floats(UnsafeMutableBufferPointer(start: pointer, count: dims.0 * dims.1 * dims.2), shape: [dims.0, dims.1, dims.2])
        }
    }

    @inline(__always)
    private func fire(_ module: ModuleID, _ port: HookPoint.Port, _ hooks: (any HookHandler)?,
                      _ value: () -> HookValue) throws {
        guard let hooks else { return }
        let point = HookPoint(module, port)
        guard hooks.wants(point) else { return }
        try hooks.visit(point, value())
    }
}
