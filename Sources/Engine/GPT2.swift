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
    /// Keeps the workspace that `values` points into alive.
    let owner: InferenceState

    public func withValues<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try withExtendedLifetime(owner) { try body(values) }
    }

    /// A copy of the values.
    public var array: [Float] { withValues { Array($0) } }
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
        // The pool's helpers spin only during a pass: between this stage's steps they sleep,
        // leaving the cores to the other stages on this machine.
        try Ops.pool.pass { try forwardPass(step, hidden: hidden, state: state, hooks: hooks, allLogits: allLogits) }
    }

    private func forwardPass(_ step: StepInput, hidden: UnsafeBufferPointer<Float>?, state: InferenceState,
                             hooks: (any HookHandler)?, allLogits: Bool) throws -> StageOutput {
        let (B, T, C) = (step.batch, step.length, config.nEmbd)
        let cache = state.cache
        guard B == cache.batch else { throw EngineError.invalidArgument("step has batch \(B), cache has \(cache.batch)") }
        guard T > 0, step.mask.count == B * T else { throw EngineError.invalidArgument("step mask must be (B,T) = (\(B),\(T))") }
        let ws = state.workspace
        let x = ws.x.reserve(B * T * C)
        try cache.beginStep(count: T, mask: step.mask)

        if weights.hasEmbeddings {
            try embed(step, into: x, ws: ws, hooks: hooks)
        } else {
            guard let hidden, hidden.count == B * T * C else {
                throw EngineError.invalidArgument("stage \(layers) needs hidden states of shape [\(B), \(T), \(C)]")
            }
            x.update(from: hidden.baseAddress!, count: B * T * C)
        }
        for l in layers {
            try block(l, x: x, B: B, T: T, ws: ws, cache: cache, hooks: hooks)
        }
        cache.endStep(count: T)
        guard weights.hasHead else {
            return StageOutput(kind: .hidden, values: UnsafeBufferPointer(start: x, count: B * T * C), shape: [B, T, C], owner: state)
        }
        return try head(x: x, B: B, T: T, state: state, hooks: hooks, allLogits: allLogits)
    }

    // MARK: - modules

    private func embed(_ step: StepInput, into x: UnsafeMutablePointer<Float>, ws: Workspace,
                       hooks: (any HookHandler)?) throws {
        let (B, T, C, V) = (step.batch, step.length, config.nEmbd, config.vocabSize)
        var tokens = step.tokens, positions = step.positions
        guard tokens.count == B * T, positions.count == B * T else {
            throw EngineError.invalidArgument("step tokens and positions must be (B,T) = (\(B),\(T))")
        }
        try tokens.withUnsafeMutableBufferPointer { ids in try fire(.wte, .input, hooks) { .ids(ids, shape: [B, T]) } }
        try positions.withUnsafeMutableBufferPointer { ids in try fire(.wpe, .input, hooks) { .ids(ids, shape: [B, T]) } }
        let wte = weights.wte!, wpe = weights.wpe!
        let pos = ws.embed.reserve(B * T * C)
        for i in 0..<(B * T) {
            let id = Int(tokens[i]), p = Int(positions[i])
            guard id >= 0, id < V else { throw EngineError.tokenOutOfRange(id: id, vocabSize: V) }
            guard p >= 0, p < config.nPositions else { throw EngineError.promptTooLong(length: p + 1, limit: config.nPositions) }
            (x + i * C).update(from: wte + id * C, count: C)
            (pos + i * C).update(from: wpe + p * C, count: C)
        }
        try fire(.wte, .output, x, (B, T, C), hooks)
        try fire(.wpe, .output, pos, (B, T, C), hooks)
        Ops.add(x, pos, count: B * T * C)
        // Dropout is the identity at inference: its input and output are the same tensor.
        try fire(.drop, .input, x, (B, T, C), hooks)
        try fire(.drop, .output, x, (B, T, C), hooks)
    }

    private func block(_ l: Int, x: UnsafeMutablePointer<Float>, B: Int, T: Int, ws: Workspace,
                       cache: KVCache, hooks: (any HookHandler)?) throws {
        let C = config.nEmbd, I = config.innerDim, N = B * T
        let w = weights.blocks[l - layers.lowerBound]
        let shape = (B, T, C)
        if try fireSkipping(.block(l), x, shape, hooks) {
            // The handler wrote the block's output into x; the layer stores no keys this step.
            cache.skip(layer: l - layers.lowerBound, count: T)
            return try fire(.block(l), .output, x, shape, hooks)
        }

        // x + attn(ln_1(x))
        let ln = ws.ln.reserve(N * C)
        let ln1In = try fireLayerNormInput(.ln1(l), x, shape, ws, hooks)
        Ops.layerNorm(ln, ln1In, w.ln1W, w.ln1B, rows: N, channels: C, eps: config.layerNormEpsilon)
        try fire(.ln1(l), .output, ln, shape, hooks)
        let attnOut = ws.attnOut.reserve(N * C)
        if try fireSkipping(.attn(l), ln, shape, hooks) {
            cache.skip(layer: l - layers.lowerBound, count: T)
        } else {
            try fire(.cAttn(l), .input, ln, shape, hooks)
            let qkv = ws.qkv.reserve(N * 3 * C)
            Ops.matmul(qkv, ln, w.qkvW, w.qkvB, m: N, k: C, n: 3 * C, scratch: ws.partials)
            try fire(.cAttn(l), .output, qkv, (B, T, 3 * C), hooks)
            let y = ws.attnY.reserve(N * C)
            attention(y, qkv: qkv, layer: l - layers.lowerBound, B: B, T: T, ws: ws, cache: cache)
            try fire(.attnProj(l), .input, y, shape, hooks)
            Ops.matmul(attnOut, y, w.attnProjW, w.attnProjB, m: N, k: C, n: C, scratch: ws.partials)
            try fire(.attnProj(l), .output, attnOut, shape, hooks)
            try fire(.residDropout(l), .input, attnOut, shape, hooks)
            try fire(.residDropout(l), .output, attnOut, shape, hooks)
        }
        try fire(.attn(l), .output, attnOut, shape, hooks)
        Ops.add(x, attnOut, count: N * C)

        // x + mlp(ln_2(x))
        let ln2In = try fireLayerNormInput(.ln2(l), x, shape, ws, hooks)
        Ops.layerNorm(ln, ln2In, w.ln2W, w.ln2B, rows: N, channels: C, eps: config.layerNormEpsilon)
        try fire(.ln2(l), .output, ln, shape, hooks)
        let mlpOut = ws.mlpOut.reserve(N * C)
        if try !fireSkipping(.mlp(l), ln, shape, hooks) {
            try fire(.cFc(l), .input, ln, shape, hooks)
            let fc = ws.fc.reserve(N * I)
            Ops.matmul(fc, ln, w.fcW, w.fcB, m: N, k: C, n: I, scratch: ws.partials)
            // c_fc's output is act's input (one tensor in PyTorch too); gelu runs in place.
            try fire(.cFc(l), .output, fc, (B, T, I), hooks)
            try fire(.act(l), .input, fc, (B, T, I), hooks)
            Vectorized.gelu(fc, count: N * I)
            try fire(.act(l), .output, fc, (B, T, I), hooks)
            try fire(.mlpProj(l), .input, fc, (B, T, I), hooks)
            Ops.matmul(mlpOut, fc, w.fcProjW, w.fcProjB, m: N, k: I, n: C, scratch: ws.partials)
            try fire(.mlpProj(l), .output, mlpOut, shape, hooks)
            try fire(.mlpDropout(l), .input, mlpOut, shape, hooks)
            try fire(.mlpDropout(l), .output, mlpOut, shape, hooks)
        }
        try fire(.mlp(l), .output, mlpOut, shape, hooks)
        Ops.add(x, mlpOut, count: N * C)
        try fire(.block(l), .output, x, shape, hooks)
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

    private func head(x: UnsafeMutablePointer<Float>, B: Int, T: Int, state: InferenceState,
                      hooks: (any HookHandler)?, allLogits: Bool) throws -> StageOutput {
        let ws = state.workspace
        let C = config.nEmbd, V = config.vocabSize, N = B * T
        let shape = (B, T, C)
        try fire(.lnF, .input, x, shape, hooks)
        let ln = ws.ln.reserve(N * C)
        Ops.layerNorm(ln, x, weights.lnFW!, weights.lnFB!, rows: N, channels: C, eps: config.layerNormEpsilon)
        try fire(.lnF, .output, ln, shape, hooks)
        try fire(.lmHead, .input, ln, shape, hooks)
        let full = allLogits || T == 1 || hooks?.wants(HookPoint(.lmHead, .output)) == true
        let rows = full ? N : B
        var input = UnsafePointer(ln)
        if !full {
            let last = ws.lastRows.reserve(B * C)
            for b in 0..<B { (last + b * C).update(from: ln + (b * T + T - 1) * C, count: C) }
            input = UnsafePointer(last)
        }
        let logits = ws.logits.reserve(rows * V)
        Ops.matmulTransposed(logits, input, weights.lmHead!, m: rows, k: C, n: V)
        try fire(.lmHead, .output, logits, (B, full ? T : 1, V), hooks)
        return StageOutput(kind: .logits, values: UnsafeBufferPointer(start: logits, count: rows * V), shape: [B, full ? T : 1, V], owner: state)
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
