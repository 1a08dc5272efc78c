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
/// loop over contiguous buffers, matmuls in OpenBLAS, a KV cache per batch of sequences.
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
    /// passes (within float rounding of the stacked products).
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
        var skipsBlock = false, skipsAttn = false, skipsMLP = false
        var rows: Int { B * T }
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
            segments.append(Segment(offset: N, B: B, T: T, cache: e.state.cache, hooks: e.hooks))
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
        return try head(x: x, N: N, entries: entries, segments: segments, ws: ws, owner: owner)
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
            try tokens.withUnsafeMutableBufferPointer { ids in try fire(.wte, .input, hooks) { .ids(ids, shape: [B, T]) } }
            try positions.withUnsafeMutableBufferPointer { ids in try fire(.wpe, .input, hooks) { .ids(ids, shape: [B, T]) } }
            let (xs, ps) = (x + seg.offset * C, pos + seg.offset * C)
            for i in 0..<(B * T) {
                let id = Int(tokens[i]), p = Int(positions[i])
                guard id >= 0, id < V else { throw EngineError.tokenOutOfRange(id: id, vocabSize: V) }
                guard p >= 0, p < config.nPositions else { throw EngineError.promptTooLong(length: p + 1, limit: config.nPositions) }
                (xs + i * C).update(from: wte + id * C, count: C)
                (ps + i * C).update(from: wpe + p * C, count: C)
            }
            try fire(.wte, .output, xs, (B, T, C), hooks)
            try fire(.wpe, .output, ps, (B, T, C), hooks)
        }
        Ops.add(x, pos, count: N * C)
        // Dropout is the identity at inference: its input and output are the same tensor.
        for seg in segments {
            try fire(.drop, .input, x + seg.offset * C, (seg.B, seg.T, C), seg.hooks)
            try fire(.drop, .output, x + seg.offset * C, (seg.B, seg.T, C), seg.hooks)
        }
    }

    private func block(_ l: Int, x: UnsafeMutablePointer<Float>, N: Int, segments: inout [Segment], ws: Workspace) throws {
        let C = config.nEmbd, I = config.innerDim, local = l - layers.lowerBound
        let w = weights.blocks[local]
        // Hooks of one request, on its rows of a stacked buffer of `width` floats per row.
        func each(_ body: (Segment, (UnsafeMutablePointer<Float>, Int) -> (UnsafeMutablePointer<Float>, (Int, Int, Int))) throws -> Void) rethrows {
            for seg in segments { try body(seg) { buffer, width in (buffer + seg.offset * width, (seg.B, seg.T, width)) } }
        }
        for i in segments.indices {
            let seg = segments[i]
            segments[i].skipsBlock = try fireSkipping(.block(l), x + seg.offset * C, (seg.B, seg.T, C), seg.hooks)
            // The handler writes a skipped block's output into x at its output hook; the layer
            // stores no keys this step.
            if segments[i].skipsBlock { seg.cache.skip(layer: local, count: seg.T) }
        }
        if segments.allSatisfy(\.skipsBlock) {
            return try each { seg, at in let (p, d) = at(x, C); try fire(.block(l), .output, p, d, seg.hooks) }
        }

        // x + attn(ln_1(x))
        let ln = ws.ln.reserve(N * C)
        try layerNorm(.ln1(l), x, into: ln, w.ln1W, w.ln1B, segments, ws)
        for i in segments.indices where !segments[i].skipsBlock {
            let seg = segments[i]
            try fire(.ln1(l), .output, ln + seg.offset * C, (seg.B, seg.T, C), seg.hooks)
            segments[i].skipsAttn = try fireSkipping(.attn(l), ln + seg.offset * C, (seg.B, seg.T, C), seg.hooks)
            if segments[i].skipsAttn { seg.cache.skip(layer: local, count: seg.T) }
        }
        let attnOut = ws.attnOut.reserve(N * C)
        let attends = { (seg: Segment) in !seg.skipsBlock && !seg.skipsAttn }
        if segments.contains(where: attends) {
            try each { seg, at in if attends(seg) { let (p, d) = at(ln, C); try fire(.cAttn(l), .input, p, d, seg.hooks) } }
            let qkv = ws.qkv.reserve(N * 3 * C)
            Ops.matmul(qkv, ln, w.qkvW, w.qkvB, m: N, k: C, n: 3 * C, scratch: ws.partials)
            let y = ws.attnY.reserve(N * C)
            for seg in segments where attends(seg) {
                try fire(.cAttn(l), .output, qkv + seg.offset * 3 * C, (seg.B, seg.T, 3 * C), seg.hooks)
                attention(y + seg.offset * C, qkv: qkv + seg.offset * 3 * C, layer: local, B: seg.B, T: seg.T, ws: ws, cache: seg.cache)
            }
            try each { seg, at in if attends(seg) { let (p, d) = at(y, C); try fire(.attnProj(l), .input, p, d, seg.hooks) } }
            Ops.matmul(attnOut, y, w.attnProjW, w.attnProjB, m: N, k: C, n: C, scratch: ws.partials)
            try each { seg, at in
                guard attends(seg) else { return }
                let (p, d) = at(attnOut, C)
                try fire(.attnProj(l), .output, p, d, seg.hooks)
                try fire(.residDropout(l), .input, p, d, seg.hooks)
                try fire(.residDropout(l), .output, p, d, seg.hooks)
            }
        }
        // A skipped attn's output is written here by its handler.
        try each { seg, at in if !seg.skipsBlock { let (p, d) = at(attnOut, C); try fire(.attn(l), .output, p, d, seg.hooks) } }
        Ops.add(x, attnOut, count: N * C)

        // x + mlp(ln_2(x))
        try layerNorm(.ln2(l), x, into: ln, w.ln2W, w.ln2B, segments, ws)
        for i in segments.indices where !segments[i].skipsBlock {
            let seg = segments[i]
            try fire(.ln2(l), .output, ln + seg.offset * C, (seg.B, seg.T, C), seg.hooks)
            segments[i].skipsMLP = try fireSkipping(.mlp(l), ln + seg.offset * C, (seg.B, seg.T, C), seg.hooks)
        }
        let mlpOut = ws.mlpOut.reserve(N * C)
        let runsMLP = { (seg: Segment) in !seg.skipsBlock && !seg.skipsMLP }
        if segments.contains(where: runsMLP) {
            try each { seg, at in if runsMLP(seg) { let (p, d) = at(ln, C); try fire(.cFc(l), .input, p, d, seg.hooks) } }
            let fc = ws.fc.reserve(N * I)
            Ops.matmul(fc, ln, w.fcW, w.fcB, m: N, k: C, n: I, scratch: ws.partials)
            // c_fc's output is act's input (one tensor in PyTorch too); gelu runs in place.
            try each { seg, at in
                guard runsMLP(seg) else { return }
                let (p, d) = at(fc, I)
                try fire(.cFc(l), .output, p, d, seg.hooks)
                try fire(.act(l), .input, p, d, seg.hooks)
            }
            Vectorized.gelu(fc, count: N * I)
            try each { seg, at in
                guard runsMLP(seg) else { return }
                let (p, d) = at(fc, I)
                try fire(.act(l), .output, p, d, seg.hooks)
                try fire(.mlpProj(l), .input, p, d, seg.hooks)
            }
            Ops.matmul(mlpOut, fc, w.fcProjW, w.fcProjB, m: N, k: I, n: C, scratch: ws.partials)
            try each { seg, at in
                guard runsMLP(seg) else { return }
                let (p, d) = at(mlpOut, C)
                try fire(.mlpProj(l), .output, p, d, seg.hooks)
                try fire(.mlpDropout(l), .input, p, d, seg.hooks)
                try fire(.mlpDropout(l), .output, p, d, seg.hooks)
            }
        }
        // A skipped mlp's output is written here by its handler.
        try each { seg, at in if !seg.skipsBlock { let (p, d) = at(mlpOut, C); try fire(.mlp(l), .output, p, d, seg.hooks) } }
        Ops.add(x, mlpOut, count: N * C)
        // A skipped block's rows were computed along with the others; its handler overwrites them.
        try each { seg, at in let (p, d) = at(x, C); try fire(.block(l), .output, p, d, seg.hooks) }
    }

    /// A layernorm over every request's rows, each read from the residual stream or, where its
    /// handler replaces the input, from a copy of its own. Requests whose block is skipped fire
    /// no hooks.
    private func layerNorm(_ module: ModuleID, _ x: UnsafeMutablePointer<Float>, into out: UnsafeMutablePointer<Float>,
                           _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>, _ segments: [Segment], _ ws: Workspace) throws {
        let C = config.nEmbd
        if segments.count == 1, let seg = segments.first {
            let input = seg.skipsBlock ? UnsafePointer(x) : try fireLayerNormInput(module, x, (seg.B, seg.T, C), ws, seg.hooks)
            return Ops.layerNorm(out, input, weight, bias, rows: seg.rows, channels: C, eps: config.layerNormEpsilon)
        }
        for seg in segments {
            let xs = x + seg.offset * C
            let input = seg.skipsBlock ? UnsafePointer(xs) : try fireLayerNormInput(module, xs, (seg.B, seg.T, C), ws, seg.hooks)
            Ops.layerNorm(out + seg.offset * C, input, weight, bias, rows: seg.rows, channels: C, eps: config.layerNormEpsilon)
        }
    }

    /// Fires a module's input hook; true when the handler then skips the module (its output
    /// hook fills the output buffer instead).
    @inline(__always)
    private func fireSkipping(_ module: ModuleID, _ pointer: UnsafeMutablePointer<Float>, _ dims: (Int, Int, Int),
                              _ hooks: (any HookHandler)?) throws -> Bool {
        guard let hooks, hooks.wants(HookPoint(module, .input)) else { return false }
        try fire(module, .input, pointer, dims, hooks)
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

    private func head(x: UnsafeMutablePointer<Float>, N: Int, entries: [BatchEntry], segments: [Segment], ws: Workspace,
                      owner: AnyObject) throws -> [StageOutput] {
        let C = config.nEmbd, V = config.vocabSize
        for seg in segments { try fire(.lnF, .input, x + seg.offset * C, (seg.B, seg.T, C), seg.hooks) }
        let ln = ws.ln.reserve(N * C)
        Ops.layerNorm(ln, x, weights.lnFW!, weights.lnFB!, rows: N, channels: C, eps: config.layerNormEpsilon)
        for seg in segments {
            try fire(.lnF, .output, ln + seg.offset * C, (seg.B, seg.T, C), seg.hooks)
            try fire(.lmHead, .input, ln + seg.offset * C, (seg.B, seg.T, C), seg.hooks)
        }
        // Logits at every position for a request that asks (or decodes), else at its last ones.
        let full = zip(entries, segments).map { e, seg in e.allLogits || seg.T == 1 || seg.hooks?.wants(HookPoint(.lmHead, .output)) == true }
        let counts = zip(full, segments).map { $0 ? $1.rows : $1.B }
        let rows = counts.reduce(0, +)
        var input = UnsafePointer(ln)
        if !full.allSatisfy({ $0 }) {
            let gathered = ws.lastRows.reserve(rows * C)
            var r = 0
            for (seg, all) in zip(segments, full) {
                if all {
                    (gathered + r * C).update(from: ln + seg.offset * C, count: seg.rows * C)
                    r += seg.rows
                    continue
                }
                for b in 0..<seg.B { (gathered + (r + b) * C).update(from: ln + (seg.offset + b * seg.T + seg.T - 1) * C, count: C) }
                r += seg.B
            }
            input = UnsafePointer(gathered)
        }
        let logits = ws.logits.reserve(rows * V)
        Ops.matmulTransposed(logits, input, weights.lmHead!, m: rows, k: C, n: V)
        var outputs: [StageOutput] = []
        outputs.reserveCapacity(segments.count)
        var r = 0
        for (i, seg) in segments.enumerated() {
            let dims = (seg.B, full[i] ? seg.T : 1, V)
            try fire(.lmHead, .output, logits + r * V, dims, seg.hooks)
            outputs.append(StageOutput(kind: .logits, values: UnsafeBufferPointer(start: logits + r * V, count: counts[i] * V),
                                       shape: [dims.0, dims.1, V], owner: owner))
            r += counts[i]
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
