import Foundation

/// SIMD kernels for the element-wise work between matmuls: OpenBLAS call overhead dominates on
/// tiny per-head products, and libm's scalar `tanhf` dominated GELU at prefill.
enum Vectorized {
    typealias V = SIMD8<Float>

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }

    @inline(__always)
    static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self) }

    /// e^x for each lane: Cody-Waite reduction to |f| <= ln2/2, degree-7 Taylor polynomial
    /// (relative error below 1e-7), scaled by 2^n through the exponent bits.
    @inline(__always)
    static func exp(_ x: V) -> V {
        let x = x.clamped(lowerBound: V(repeating: -87), upperBound: V(repeating: 88))
        // Round x / ln2 to the nearest integer n by adding 1.5 * 2^23: the sum's low mantissa bits
        // hold n, which integer subtraction recovers (SSE2 has no vector rounding instruction,
        // and a generic `.rounded()` becomes a libm call per lane).
        let magic = V(repeating: 12_582_912)
        let shifted = x * 1.442_695_040_888_963_4 + magic
        let n = shifted - magic
        let f = x - n * 0.693_145_751_953_125 - n * 1.428_606_765_330_187_0e-06
        var p = V(repeating: 1.0 / 5040)
        p = p * f + 1.0 / 720
        p = p * f + 1.0 / 120
        p = p * f + 1.0 / 24
        p = p * f + 1.0 / 6
        p = p * f + 0.5
        p = p * f + 1
        p = p * f + 1
        let integer = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- unsafeBitCast(magic, to: SIMD8<Int32>.self)
        return p * unsafeBitCast((integer &+ 127) &<< 23, to: V.self)
    }

    /// gelu_new in place: 0.5 x (1 + tanh(u)), with 1 + tanh(u) = 2 - 2 / (e^{2u} + 1).
    static func gelu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        let s: Float = 0.797_884_560_802_865_4
        var i = 0
        while i + V.scalarCount <= count {
            let v = load(x + i)
            let u = s * (v + 0.044715 * v * v * v)
            let onePlusTanh = 2 - 2 / (exp(2 * u) + 1)
            store(0.5 * v * onePlusTanh, x + i)
            i += V.scalarCount
        }
        while i < count {
            let v = x[i]
            x[i] = 0.5 * v * (1 + tanhf(s * (v + 0.044715 * v * v * v)))
            i += 1
        }
    }

    /// sum_i a[i] * b[i].
    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        var acc = V()
        var i = 0
        while i + V.scalarCount <= count {
            acc += load(a + i) * load(b + i)
            i += V.scalarCount
        }
        var sum = horizontalSum(acc)
        while i < count {
            sum += a[i] * b[i]
            i += 1
        }
        return sum
    }

    /// Sum of the lanes by halving (the generic `.sum()` is not vectorised).
    @inline(__always)
    static func horizontalSum(_ v: V) -> Float {
        let s4 = v.lowHalf + v.highHalf
        let s2 = s4.lowHalf + s4.highHalf
        return s2[0] + s2[1]
    }

    /// y += alpha * x.
    @inline(__always)
    static func axpy(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        while i + V.scalarCount <= count {
            store(load(y + i) + alpha * load(x + i), y + i)
            i += V.scalarCount
        }
        while i < count {
            y[i] += alpha * x[i]
            i += 1
        }
    }
}
