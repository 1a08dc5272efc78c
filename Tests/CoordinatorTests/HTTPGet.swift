import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A blocking HTTP GET for the tests (status and body; nil status when nothing answered).
enum HTTPGet {
    static func fetch(_ url: String, seconds: Double = 5) -> (status: Int?, body: String) {
        final class Box: @unchecked Sendable { var status: Int?; var body = "" }
        let box = Box(), done = DispatchSemaphore(value: 0)
        var request = URLRequest(url: URL(string: url)!)
        request.timeoutInterval = seconds
        URLSession.shared.dataTask(with: request) { data, response, _ in
            box.status = (response as? HTTPURLResponse)?.statusCode
            box.body = data.map { String(decoding: $0, as: UTF8.self) } ?? ""
            done.signal()
        }.resume()
        _ = done.wait(timeout: .now() + seconds + 1)
        return (box.status, box.body)
    }

    /// The value of the sample `name` (with its labels, e.g. `x_total{reason="deadline"}`) in a
    /// Prometheus text page; nil when the page has no such sample.
    static func sample(_ page: String, _ name: String) -> Double? {
        for line in page.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            if parts.count == 2, parts[0] == name { return Double(parts[1]) }
        }
        return nil
    }
}
