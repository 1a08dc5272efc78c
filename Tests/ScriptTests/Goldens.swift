import Foundation
import Testing

/// The oracle's comparison rules (shared/oracle/compare_goldens.py) in Swift: same save names
/// (minus allowed extras), tensors with the same shape and dtype, ints exact, floats within
/// 1e-4 + 1e-4 |expected|, stdout identical.
enum Goldens {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixtures = repository.appendingPathComponent("Tests/Fixtures").path

    /// Runs the `nnsight` executable beside the test bundle, as users and CI call it.
    static func nnsight(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
        let directory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        let process = Process()
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        process.executableURL = directory.appendingPathComponent("nnsight")
        process.arguments = arguments
        process.currentDirectoryURL = repository
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile(), stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
    }

    static func load(_ path: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
    }

    /// Mismatches between a golden and our `--save-json` document; `extra` names may appear in ours only.
    static func mismatches(expected: [String: Any], actual: [String: Any], extra: Set<String> = [], compareStdout: Bool = true) -> [String] {
        var errors: [String] = []
        let e = expected["saves"] as? [String: Any] ?? [:], a = actual["saves"] as? [String: Any] ?? [:]
        if Set(e.keys) != Set(a.keys).subtracting(extra) { errors.append("save names: \(e.keys.sorted()) vs \(a.keys.sorted())") }
        for (k, v) in e { if let w = a[k] { compare(v, w, k, &errors) } }
        let ee = (expected["error"] as? [String: Any])?["type"] as? String, ae = (actual["error"] as? [String: Any])?["type"] as? String
        if ee != ae { errors.append("error: \(ee ?? "null") vs \(ae ?? "null")") }
        if compareStdout, expected["stdout"] as? String != actual["stdout"] as? String {
            errors.append("stdout differs:\n--- expected\n\(expected["stdout"] ?? "")--- actual\n\(actual["stdout"] ?? "")")
        }
        return errors
    }

    static func compare(_ e: Any, _ a: Any, _ path: String, _ errors: inout [String]) {
        if let et = e as? [String: Any], et["shape"] != nil {
            guard let at = a as? [String: Any] else { return errors.append("\(path): expected a tensor") }
            let (eShape, aShape) = (et["shape"] as? [Int], at["shape"] as? [Int])
            let (eType, aType) = (et["dtype"] as? String, at["dtype"] as? String)
            guard eShape == aShape, eType == aType else {
                return errors.append("\(path): shape/dtype \(String(describing: eShape))/\(eType ?? "") vs \(String(describing: aShape))/\(aType ?? "")")
            }
            let ed = (et["data"] as? [NSNumber] ?? []).map(\.doubleValue), ad = (at["data"] as? [NSNumber] ?? []).map(\.doubleValue)
            guard ed.count == ad.count else { return errors.append("\(path): \(ed.count) vs \(ad.count) elements") }
            let isFloat = (et["dtype"] as? String ?? "").hasPrefix("float")
            for i in ed.indices {
                let (x, y): (Double, Double) = (ed[i], ad[i])
                let tolerance: Double = isFloat ? 1e-4 + 1e-4 * abs(x) : 0
                if abs(x - y) > tolerance {
                    errors.append("\(path): element \(i): \(x) vs \(y)")
                    break
                }
            }
            return
        }
        if let el = e as? [Any] {
            guard let al = a as? [Any], al.count == el.count else { return errors.append("\(path): list length \(el.count) vs \((a as? [Any])?.count ?? -1)") }
            for (i, (x, y)) in zip(el, al).enumerated() { compare(x, y, "\(path)[\(i)]", &errors) }
            return
        }
        if let ed = e as? [String: Any] {
            guard let ad = a as? [String: Any] else { return errors.append("\(path): expected a dict, got \(type(of: a))") }
            if Set(ed.keys) != Set(ad.keys) { errors.append("\(path): dict keys \(ed.keys.sorted()) vs \(ad.keys.sorted())") }
            for (k, v) in ed { if let w = ad[k] { compare(v, w, "\(path)[\(k.debugDescription)]", &errors) } }
            return
        }
        if e is NSNull {
            if !(a is NSNull) { errors.append("\(path): expected null, got \(a)") }
            return
        }
        if let en = e as? NSNumber {
            guard let an = a as? NSNumber, !(a is String) else { return errors.append("\(path): expected the number \(en), got \(a)") }
            if abs(en.doubleValue - an.doubleValue) > 1e-4 + 1e-4 * abs(en.doubleValue) { errors.append("\(path): \(en) vs \(an)") }
            return
        }
        if let es = e as? String {
            if es != (a as? String) { errors.append("\(path): \(es.debugDescription) vs \(a)") }
            return
        }
        errors.append("\(path): cannot compare \(type(of: e)) with \(type(of: a))")
    }
}
