import Foundation

/// A memory-mapped `.safetensors` file: an 8-byte little-endian header length, a JSON header
/// (`name -> {dtype, shape, data_offsets}`), then the raw tensor bytes.
///
/// Nothing is read until a tensor is asked for, so a pipeline stage touches only its own layers.
///
/// ```swift
/// let file = try SafeTensorsFile(path: "model.safetensors")
/// var wpe = [Float](repeating: 0, count: file.entry("wpe.weight")!.count)
/// try file.read("wpe.weight", into: &wpe)
/// ```
public final class SafeTensorsFile: @unchecked Sendable {
    public enum DType: String, Sendable {
        case f32 = "F32", f16 = "F16", bf16 = "BF16"
        var size: Int { self == .f32 ? 4 : 2 }
    }

    public struct Entry: Sendable {
        public let name: String
        public let dtype: String
        public let shape: [Int]
        let begin: Int
        let end: Int
        public var count: Int { shape.reduce(1, *) }
    }

    public let path: String
    public private(set) var entries: [String: Entry] = [:]
    private let base: UnsafeRawPointer
    private let mappedLength: Int
    private let dataStart: Int

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw EngineError.fileUnreadable(path: path, reason: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw EngineError.fileUnreadable(path: path, reason: String(cString: strerror(errno)))
        }
        let size = Int(info.st_size)
        guard size >= 8 else { throw EngineError.invalidSafetensors(path: path, reason: "file is \(size) bytes, shorter than the 8-byte header length") }
        guard let map = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), map != MAP_FAILED else {
            throw EngineError.fileUnreadable(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(map)
        mappedLength = size
        let headerLength = UInt64(littleEndian: base.loadUnaligned(as: UInt64.self))
        guard headerLength <= UInt64(size - 8), headerLength <= 100_000_000 else {
            munmap(map, size)
            throw EngineError.invalidSafetensors(path: path, reason: "header length \(headerLength) exceeds the file size \(size)")
        }
        dataStart = 8 + Int(headerLength)
        do {
            entries = try Self.parseHeader(Data(bytes: base + 8, count: Int(headerLength)),
                                           dataLength: size - dataStart, path: path)
        } catch {
            munmap(map, size)
            throw error
        }
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), mappedLength) }

    public func entry(_ name: String) -> Entry? { entries[name] }

    private static func parseHeader(_ json: Data, dataLength: Int, path: String) throws -> [String: Entry] {
        func bad(_ reason: String) -> EngineError { .invalidSafetensors(path: path, reason: reason) }
        guard let object = try? JSONSerialization.jsonObject(with: json), let header = object as? [String: Any] else {
            throw bad("header is not a JSON object")
        }
        var entries: [String: Entry] = [:]
        for (name, value) in header where name != "__metadata__" {
            guard let fields = value as? [String: Any], let dtype = fields["dtype"] as? String,
                  let shape = fields["shape"] as? [Int], let offsets = fields["data_offsets"] as? [Int],
                  offsets.count == 2 else {
                throw bad("entry '\(name)' lacks dtype, shape or data_offsets")
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin >= 0, begin <= end, end <= dataLength else {
                throw bad("tensor '\(name)' has data_offsets [\(begin), \(end)] outside the \(dataLength) data bytes")
            }
            guard shape.allSatisfy({ $0 >= 0 && $0 <= 1 << 31 }) else { throw bad("tensor '\(name)' has shape \(shape)") }
            let count = shape.reduce(1) { $0.multipliedReportingOverflow(by: $1).partialValue }
            if let size = DType(rawValue: dtype)?.size, count * size != end - begin {
                throw bad("tensor '\(name)' of shape \(shape) and dtype \(dtype) needs \(count * size) bytes, data_offsets give \(end - begin)")
            }
            entries[name] = Entry(name: name, dtype: dtype, shape: shape, begin: begin, end: end)
        }
        return entries
    }

    /// Copies tensor `name` into `destination` as float32, converting F16/BF16.
    public func read(_ name: String, into destination: UnsafeMutablePointer<Float>) throws {
        guard let entry = entries[name] else { throw EngineError.missingTensor(path: path, name: name) }
        guard let dtype = DType(rawValue: entry.dtype) else {
            throw EngineError.unsupportedDType(path: path, name: name, dtype: entry.dtype)
        }
        let source = base + dataStart + entry.begin
        let count = entry.count
        switch dtype {
        case .f32: memcpy(destination, source, count * 4)
        case .f16: for i in 0..<count { destination[i] = WeightType.f16.load(source, i) }
        case .bf16: for i in 0..<count { destination[i] = WeightType.bf16.load(source, i) }
        }
        release(from: entry.begin, to: entry.end)
    }

    /// Drops the mapped pages of a tensor that has been copied out: they would otherwise stay in
    /// the process's RSS beside the copy until the file is unmapped, doubling a worker's peak
    /// (a later read of the same bytes faults them in again from the file).
    private func release(from begin: Int, to end: Int) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (dataStart + begin) / page * page
        let stop = min(mappedLength, (dataStart + end + page - 1) / page * page)
        guard stop > start else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base + start), stop - start, MADV_DONTNEED)
    }
}
