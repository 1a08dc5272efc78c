// Matrix products over packed weights, compiled for AVX2 + FMA (see Package.swift) and called
// only on CPUs that have them.
//
// Weights of `y = x @ W + b` (Conv1D, W (K,N)) are stored in panels of 16 output columns: panel
// p holds columns [16p, 16p + 16) as a (K,16) row-major block, the last one zero-padded. A
// product streams each panel front to back once per block of rows, so the prefetchers keep up
// at any row count (walking a row-major W column by column missed on every row).
//
// Every output element is computed the same way whatever the row count, the row blocking, the
// column split over threads or the element type's width: one accumulator over k in order, then
// the bias. A trace's results therefore do not depend on what it is batched with.

import CPrefetch

public typealias V8 = SIMD8<Float>

/// How far ahead of the multiply the weights are prefetched, in bytes.
let prefetchAhead = 512

/// How the weights are stored: 32-bit floats, bfloat16 or IEEE half (both widened as they are
/// loaded; the products accumulate in f32).
public enum PanelType: Sendable {
    case f32, bf16, f16

    /// Bytes per element.
    public var size: Int { self == .f32 ? 4 : 2 }
}

/// Columns per panel.
public let panelWidth = 16

@inline(__always) func load(_ p: UnsafePointer<Float>) -> V8 { UnsafeRawPointer(p).loadUnaligned(as: V8.self) }
@inline(__always) func store(_ v: V8, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V8.self) }

@inline(__always) func horizontalSum(_ v: V8) -> Float {
    let s4 = v.lowHalf + v.highHalf
    let s2 = s4.lowHalf + s4.highHalf
    return s2[0] + s2[1]
}

/// A stored weight element: eight of them widened to floats.
protocol PanelElement {
    static var bytes: Int { get }
    static func widen8(_ p: UnsafeRawPointer) -> V8
    static func widen1(_ p: UnsafeRawPointer) -> Float
}

struct F32: PanelElement {
    static var bytes: Int { 4 }
    @inline(__always) static func widen8(_ p: UnsafeRawPointer) -> V8 { p.loadUnaligned(as: V8.self) }
    @inline(__always) static func widen1(_ p: UnsafeRawPointer) -> Float { p.loadUnaligned(as: Float.self) }
}

/// bfloat16: the top half of a float32.
struct BF16: PanelElement {
    static var bytes: Int { 2 }
    @inline(__always) static func widen8(_ p: UnsafeRawPointer) -> V8 {
        let bits = SIMD8<UInt32>(truncatingIfNeeded: p.loadUnaligned(as: SIMD8<UInt16>.self)) &<< 16
        return unsafeBitCast(bits, to: V8.self)
    }
    @inline(__always) static func widen1(_ p: UnsafeRawPointer) -> Float { Float(bitPattern: UInt32(p.loadUnaligned(as: UInt16.self)) << 16) }
}

struct F16: PanelElement {
    static var bytes: Int { 2 }
    @inline(__always) static func widen8(_ p: UnsafeRawPointer) -> V8 {
        V8(p.loadUnaligned(as: SIMD8<Float16>.self))
    }
    @inline(__always) static func widen1(_ p: UnsafeRawPointer) -> Float { Float(p.loadUnaligned(as: Float16.self)) }
}

/// out (M,N) = inp (M,K) @ W (K,N) + bias (N) for W in panels (see the top of the file), the
/// panels `panels` only (callers split the panels across threads).
public func packedMatmul(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ weight: UnsafeRawPointer, _ type: PanelType,
                         _ bias: UnsafePointer<Float>?, m M: Int, k K: Int, n N: Int, panels: Range<Int>) {
    switch type {
    case .f32: panelProduct(F32.self, out, inp, weight, bias, m: M, k: K, n: N, panels: panels)
    case .bf16: panelProduct(BF16.self, out, inp, weight, bias, m: M, k: K, n: N, panels: panels)
    case .f16: panelProduct(F16.self, out, inp, weight, bias, m: M, k: K, n: N, panels: panels)
    }
}

@inline(__always)
func panelProduct<E: PanelElement>(_: E.Type, _ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ weight: UnsafeRawPointer,
                                   _ bias: UnsafePointer<Float>?, m M: Int, k K: Int, n N: Int, panels: Range<Int>) {
    let elementBytes = E.bytes
    let panelBytes = K * panelWidth * elementBytes
    // Short panels (N not a multiple of 16) go through a 16-wide staging block.
    var staging = (V8(), V8(), V8(), V8(), V8(), V8(), V8(), V8(), V8(), V8(), V8(), V8())
    var paddedBias = (V8(), V8())
    withUnsafeMutableBytes(of: &staging) { stagingBytes in
        withUnsafeMutableBytes(of: &paddedBias) { biasBytes in
            let stage = stagingBytes.baseAddress!.assumingMemoryBound(to: Float.self)  // (6,16)
            let padded = biasBytes.baseAddress!.assumingMemoryBound(to: Float.self)
            var p = panels.lowerBound
            // One row (a decode step): four panels at a time, eight loads in flight.
            if M == 1 {
                while p + 4 <= panels.upperBound, (p + 4) * panelWidth <= N {
                    block1x4(E.self, out + p * panelWidth, inp, weight + p * panelBytes, bias.map { $0 + p * panelWidth }, k: K,
                             panelBytes: panelBytes)
                    p += 4
                }
            }
            for p in p..<panels.upperBound {
                let j = p * panelWidth, width = min(panelWidth, N - j)
                let w = weight + p * panelBytes
                let staged = width < panelWidth
                var b = bias.map { $0 + j }
                if staged, let bias {
                    padded.update(repeating: 0, count: panelWidth)
                    padded.update(from: bias + j, count: width)
                    b = UnsafePointer(padded)
                }
                var r = 0
                while r < M {
                    // Blocks of 4 rows up to 8 (two passes over the panel beat 6 + 2), else of 6.
                    let rows = M - r >= 6 && M > 8 ? 6 : min(4, M - r)
                    let (x, o, stride) = (inp + r * K, staged ? stage : out + r * N + j, staged ? panelWidth : N)
                    switch rows {
                    case 6: block6(E.self, o, x, w, b, k: K, stride: stride)
                    case 1: block1(E.self, o, x, w, b, k: K)
                    default: block4(E.self, o, x, w, b, rows: rows, k: K, stride: stride)
                    }
                    if staged {
                        for i in 0..<rows { (out + (r + i) * N + j).update(from: stage + i * panelWidth, count: width) }
                    }
                    r += rows
                }
            }
        }
    }
}

@inline(__always)
func biasPair(_ bias: UnsafePointer<Float>?) -> (V8, V8) {
    guard let bias else { return (V8(), V8()) }
    return (load(bias), load(bias + 8))
}

@inline(__always)
func block1<E: PanelElement>(_: E.Type, _ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafeRawPointer,
                             _ bias: UnsafePointer<Float>?, k K: Int) {
    let half = 8 * E.bytes
    var a = V8(), b = V8()
    var wk = w
    for k in 0..<K {
        let s = V8(repeating: x[k])
        a = a.addingProduct(s, E.widen8(wk)); b = b.addingProduct(s, E.widen8(wk + half))
        wk += 2 * half
    }
    let (blo, bhi) = biasPair(bias)
    store(a + blo, out); store(b + bhi, out + 8)
}

/// One row by four panels (64 columns): each panel's two accumulators as in `block1`.
@inline(__always)
func block1x4<E: PanelElement>(_: E.Type, _ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafeRawPointer,
                               _ bias: UnsafePointer<Float>?, k K: Int, panelBytes: Int) {
    let half = 8 * E.bytes
    var a0 = V8(), b0 = V8(), a1 = V8(), b1 = V8(), a2 = V8(), b2 = V8(), a3 = V8(), b3 = V8()
    let w0 = w, w1 = w + panelBytes, w2 = w + 2 * panelBytes, w3 = w + 3 * panelBytes
    for k in 0..<K {
        let s = V8(repeating: x[k]), o = k * 2 * half
        cprefetch(w0 + o + prefetchAhead); cprefetch(w1 + o + prefetchAhead)
        cprefetch(w2 + o + prefetchAhead); cprefetch(w3 + o + prefetchAhead)
        a0 = a0.addingProduct(s, E.widen8(w0 + o)); b0 = b0.addingProduct(s, E.widen8(w0 + o + half))
        a1 = a1.addingProduct(s, E.widen8(w1 + o)); b1 = b1.addingProduct(s, E.widen8(w1 + o + half))
        a2 = a2.addingProduct(s, E.widen8(w2 + o)); b2 = b2.addingProduct(s, E.widen8(w2 + o + half))
        a3 = a3.addingProduct(s, E.widen8(w3 + o)); b3 = b3.addingProduct(s, E.widen8(w3 + o + half))
    }
    let (l0, h0) = biasPair(bias), (l1, h1) = biasPair(bias.map { $0 + 16 })
    let (l2, h2) = biasPair(bias.map { $0 + 32 }), (l3, h3) = biasPair(bias.map { $0 + 48 })
    store(a0 + l0, out); store(b0 + h0, out + 8); store(a1 + l1, out + 16); store(b1 + h1, out + 24)
    store(a2 + l2, out + 32); store(b2 + h2, out + 40); store(a3 + l3, out + 48); store(b3 + h3, out + 56)
}

@inline(__always)
func block4<E: PanelElement>(_: E.Type, _ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ w: UnsafeRawPointer,
                             _ bias: UnsafePointer<Float>?, rows: Int, k K: Int, stride N: Int) {
    let half = 8 * E.bytes
    var a0 = V8(), b0 = V8(), a1 = V8(), b1 = V8(), a2 = V8(), b2 = V8(), a3 = V8(), b3 = V8()
    let x0 = inp, x1 = inp + (rows > 1 ? K : 0), x2 = inp + (rows > 2 ? 2 * K : 0), x3 = inp + (rows > 3 ? 3 * K : 0)
    var wk = w
    for k in 0..<K {
        let lo = E.widen8(wk), hi = E.widen8(wk + half)
        let s0 = V8(repeating: x0[k]), s1 = V8(repeating: x1[k]), s2 = V8(repeating: x2[k]), s3 = V8(repeating: x3[k])
        a0 = a0.addingProduct(s0, lo); b0 = b0.addingProduct(s0, hi)
        a1 = a1.addingProduct(s1, lo); b1 = b1.addingProduct(s1, hi)
        a2 = a2.addingProduct(s2, lo); b2 = b2.addingProduct(s2, hi)
        a3 = a3.addingProduct(s3, lo); b3 = b3.addingProduct(s3, hi)
        wk += 2 * half
    }
    let (blo, bhi) = biasPair(bias)
    store(a0 + blo, out); store(b0 + bhi, out + 8)
    if rows > 1 { store(a1 + blo, out + N); store(b1 + bhi, out + N + 8) }
    if rows > 2 { store(a2 + blo, out + 2 * N); store(b2 + bhi, out + 2 * N + 8) }
    if rows > 3 { store(a3 + blo, out + 3 * N); store(b3 + bhi, out + 3 * N + 8) }
}

/// Six rows by 16 columns: 12 accumulators, enough to keep both FMA ports busy when the panel
/// comes from cache (long prompts).
@inline(__always)
func block6<E: PanelElement>(_: E.Type, _ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ w: UnsafeRawPointer,
                             _ bias: UnsafePointer<Float>?, k K: Int, stride N: Int) {
    let half = 8 * E.bytes
    var a0 = V8(), b0 = V8(), a1 = V8(), b1 = V8(), a2 = V8(), b2 = V8(), a3 = V8(), b3 = V8(), a4 = V8(), b4 = V8(), a5 = V8(), b5 = V8()
    var wk = w, xk = x
    for _ in 0..<K {
        let lo = E.widen8(wk), hi = E.widen8(wk + half)
        var s = V8(repeating: xk[0]); a0 = a0.addingProduct(s, lo); b0 = b0.addingProduct(s, hi)
        s = V8(repeating: xk[K]); a1 = a1.addingProduct(s, lo); b1 = b1.addingProduct(s, hi)
        s = V8(repeating: xk[2 * K]); a2 = a2.addingProduct(s, lo); b2 = b2.addingProduct(s, hi)
        s = V8(repeating: xk[3 * K]); a3 = a3.addingProduct(s, lo); b3 = b3.addingProduct(s, hi)
        s = V8(repeating: xk[4 * K]); a4 = a4.addingProduct(s, lo); b4 = b4.addingProduct(s, hi)
        s = V8(repeating: xk[5 * K]); a5 = a5.addingProduct(s, lo); b5 = b5.addingProduct(s, hi)
        wk += 2 * half
        xk += 1
    }
    let (blo, bhi) = biasPair(bias)
    store(a0 + blo, out); store(b0 + bhi, out + 8)
    store(a1 + blo, out + N); store(b1 + bhi, out + N + 8)
    store(a2 + blo, out + 2 * N); store(b2 + bhi, out + 2 * N + 8)
    store(a3 + blo, out + 3 * N); store(b3 + bhi, out + 3 * N + 8)
    store(a4 + blo, out + 4 * N); store(b4 + bhi, out + 4 * N + 8)
    store(a5 + blo, out + 5 * N); store(b5 + bhi, out + 5 * N + 8)
}

/// out (M,V) = inp (M,C) @ table (V,C)^T: logits from the (tied) embedding table, stored
/// row-major as `type`, the output columns (table rows) `rows` only. Each table row is read
/// once and dotted with up to four input rows at a time (which stay in L1).
public func tableProduct(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ table: UnsafeRawPointer, _ type: PanelType,
                         m M: Int, k C: Int, n V: Int, rows: Range<Int>) {
    switch type {
    case .f32: dots(F32.self, out, inp, table, m: M, k: C, n: V, rows: rows)
    case .bf16: dots(BF16.self, out, inp, table, m: M, k: C, n: V, rows: rows)
    case .f16: dots(F16.self, out, inp, table, m: M, k: C, n: V, rows: rows)
    }
}

/// Each dot product: two 8-lane partial sums over c in order (even and odd chunks of 8, so two
/// chains are in flight), the horizontal sum of their sum, then the elements past the last
/// multiple of 8, whichever block of rows it falls in.
@inline(__always)
func dots<E: PanelElement>(_: E.Type, _ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ table: UnsafeRawPointer,
                           m M: Int, k C: Int, n V: Int, rows: Range<Int>) {
    let elementBytes = E.bytes
    let whole = C / 8 * 8
    for v in rows {
        let t = table + v * C * elementBytes
        var r = 0
        while r < M {
            let n = min(4, M - r)
            let x0 = inp + r * C, x1 = inp + (r + min(1, n - 1)) * C, x2 = inp + (r + min(2, n - 1)) * C, x3 = inp + (r + min(3, n - 1)) * C
            var s0 = V8(), s1 = V8(), s2 = V8(), s3 = V8(), u0 = V8(), u1 = V8(), u2 = V8(), u3 = V8()
            var c = 0
            while c + 16 <= whole {
                if r == 0 { cprefetch(t + (c * elementBytes + 4 * prefetchAhead)) }
                let tv = E.widen8(t + c * elementBytes), tu = E.widen8(t + (c + 8) * elementBytes)
                s0 = s0.addingProduct(load(x0 + c), tv); u0 = u0.addingProduct(load(x0 + c + 8), tu)
                if n > 1 { s1 = s1.addingProduct(load(x1 + c), tv); u1 = u1.addingProduct(load(x1 + c + 8), tu) }
                if n > 2 { s2 = s2.addingProduct(load(x2 + c), tv); u2 = u2.addingProduct(load(x2 + c + 8), tu) }
                if n > 3 { s3 = s3.addingProduct(load(x3 + c), tv); u3 = u3.addingProduct(load(x3 + c + 8), tu) }
                c += 16
            }
            if c < whole {
                let tv = E.widen8(t + c * elementBytes)
                s0 = s0.addingProduct(load(x0 + c), tv)
                if n > 1 { s1 = s1.addingProduct(load(x1 + c), tv) }
                if n > 2 { s2 = s2.addingProduct(load(x2 + c), tv) }
                if n > 3 { s3 = s3.addingProduct(load(x3 + c), tv) }
                c += 8
            }
            var d = (horizontalSum(s0 + u0), horizontalSum(s1 + u1), horizontalSum(s2 + u2), horizontalSum(s3 + u3))
            while c < C {
                let tc = E.widen1(t + c * elementBytes)
                d.0 += x0[c] * tc; d.1 += x1[c] * tc; d.2 += x2[c] * tc; d.3 += x3[c] * tc
                c += 1
            }
            out[r * V + v] = d.0
            if n > 1 { out[(r + 1) * V + v] = d.1 }
            if n > 2 { out[(r + 2) * V + v] = d.2 }
            if n > 3 { out[(r + 3) * V + v] = d.3 }
            r += n
        }
    }
}
