import CMalloc
import Foundation

/// Process-wide settings every executable of the cluster applies first thing.
public enum ProcessTuning {
    /// Keeps large buffers (activations, logits, protobuf frames) in the malloc heap instead of
    /// fresh mmaps: glibc maps every allocation of 128 KB or more anew, and touching a fresh
    /// 200 KB mapping page-faults 50 times per message.
    public static func keepLargeAllocationsInHeap() {
        _ = mallopt(M_MMAP_THRESHOLD, 256 << 20)
        _ = mallopt(M_TRIM_THRESHOLD, 512 << 20)
    }
}
