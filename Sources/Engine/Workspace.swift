/// A growable float buffer that keeps its memory between steps: fresh allocations of 128 KB or
/// more are mmapped by glibc and page-fault on first touch, which a decode step cannot afford.
final class ScratchBuffer {
    private(set) var pointer: UnsafeMutablePointer<Float>
    private(set) var capacity: Int

    init(_ capacity: Int = 0) {
        self.capacity = max(capacity, 1)
        pointer = .allocate(capacity: self.capacity)
    }

    deinit { pointer.deallocate() }

    /// The buffer with room for `count` floats (contents undefined after growth).
    func reserve(_ count: Int) -> UnsafeMutablePointer<Float> {
        if count > capacity {
            pointer.deallocate()
            capacity = count
            pointer = .allocate(capacity: count)
        }
        return pointer
    }
}

/// The activation buffers of one forward pass, reused across steps.
final class Workspace {
    let x = ScratchBuffer()        // (B,T,C) residual stream
    let embed = ScratchBuffer()    // (B,T,C) position embeddings
    let ln = ScratchBuffer()       // (B,T,C) layernorm output
    let lnIn = ScratchBuffer()     // (B,T,C) a layernorm's input of its own, when a hook replaces it
    let qkv = ScratchBuffer()      // (B,T,3C)
    let attnY = ScratchBuffer()    // (B,T,C) attention heads, concatenated
    let attnOut = ScratchBuffer()  // (B,T,C) after c_proj
    let fc = ScratchBuffer()       // (B,T,4C)
    let mlpOut = ScratchBuffer()   // (B,T,C)
    let interleaved = ScratchBuffer() // (B*T/12, K, 12) a long prompt's rows, interleaved for the AVX-512 products
    let scores = ScratchBuffer()   // (P, T, L) one head's attention per pool thread
    let lastRows = ScratchBuffer() // (B,C) ln_f output at each row's last position
    let logits = ScratchBuffer()   // (B,V) or (B,T,V)
}

/// Everything one batch of sequences needs between steps on one stage: its KV cache and buffers.
///
/// ```swift
/// let state = InferenceState(config: config, layers: model.layers.count, batch: 1, capacity: 64)
/// ```
public final class InferenceState {
    public let cache: KVCache
    let workspace = Workspace()

    public init(config: GPT2Config, layers: Int, batch: Int, capacity: Int? = nil) {
        cache = KVCache(config: config, layers: layers, batch: batch, capacity: capacity)
    }
}
