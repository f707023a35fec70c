import Foundation
import Testing
import SLHTML

/// Every vector, sanitized, in a real headless Chromium, on a page with no CSP
/// and no sandbox: the sanitizer alone must keep script from running and the
/// page from loading anything. Each page defines xss(); the vectors' XSSHOST
/// becomes a loopback canary listener, so any load is seen. The unsanitized
/// vectors run through the same harness as the control that it can see both.
@Suite(.serialized) struct BrowserXSSTests {
    static let driver = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Browser/xss_check.py")

    /// The deliberately unsanitized page that must be caught twice over.
    static let control = "<img src=x onerror=xss()><img src=\"http://XSSHOST/control.png\">"

    /// A 1x1 transparent GIF: what the page server answers for a cid: image.
    static let gif: [UInt8] = [0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
                               0xFF, 0xFF, 0xFF, 0x21, 0xF9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2C, 0x00, 0x00, 0x00, 0x00,
                               0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3B]

    static func page(_ name: String, _ body: String) -> String {
        """
        <!DOCTYPE html>
        <html><head><meta charset="utf-8"><title>\(name)</title>
        <script>
        function xss() {
          document.title = "XSS";
          window.xssRan = true;
          try { navigator.sendBeacon("/xss-ran/\(name)"); } catch (e) {}
        }
        </script>
        </head><body>
        \(body)
        </body></html>
        """
    }

    struct PageResult: Decodable {
        var alerts: [String]
        var title: String?
        var xssRan: Bool
        var url: String?
        var error: String?
    }

    @Test(.timeLimit(.minutes(15)))
    func noSanitizedVectorRunsOrLoadsInChromium() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sl-xss-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }

        // Two canaries, one for the sanitized pages and one for the raw ones, so
        // that a raw page's connection (a preconnect sends no request to name its
        // page) can never be taken for a sanitized page's.
        let canary = try LoopbackHTTPServer { _ in .init(status: 404) }
        let rawCanary = try LoopbackHTTPServer { _ in .init(status: 404) }
        let pagesDir = dir
        let server = try LoopbackHTTPServer { target in
            let path = String(target.prefix { $0 != "?" && $0 != "#" })
            if path.hasPrefix("/page/"), !path.contains(".."),
               let html = FileManager.default.contents(atPath: pagesDir.appendingPathComponent(String(path.dropFirst(6))).path) {
                return .init(status: 200, contentType: "text/html; charset=utf-8", body: Array(html))
            }
            if path.hasPrefix("/cid/") { return .init(status: 200, contentType: "image/gif", body: Self.gif) }
            if path.hasPrefix("/xss-ran/") { return .init(status: 204) }
            return .init(status: 404)
        }
        defer { canary.stop(); rawCanary.stop(); server.stop() }

        let sanitizer = HTMLSanitizer { id in "/cid/" + (id.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "") }
        var names: [String] = []
        var vectorOf: [String: String] = [:]
        func write(_ name: String, _ body: String) throws {
            try Self.page(name, body).write(to: dir.appendingPathComponent(name + ".html"), atomically: true, encoding: .utf8)
            names.append(name)
        }
        for (i, vector) in XSSCorpus.vectors.enumerated() {
            let san = String(format: "san-%03d", i), raw = String(format: "raw-%03d", i)
            vectorOf[san] = vector
            vectorOf[raw] = vector
            try write(san, sanitizer.sanitize(vector.replacingOccurrences(of: "XSSHOST", with: "127.0.0.1:\(canary.port)/\(san)")))
            try write(raw, vector.replacingOccurrences(of: "XSSHOST", with: "127.0.0.1:\(rawCanary.port)/\(raw)"))
        }
        try write("control", Self.control.replacingOccurrences(of: "XSSHOST", with: "127.0.0.1:\(rawCanary.port)/control"))
        let list = dir.appendingPathComponent("pages.txt")
        try names.joined(separator: "\n").write(to: list, atomically: true, encoding: .utf8)

        let resultFile = dir.appendingPathComponent("results.json")
        let clock = ContinuousClock()
        let started = clock.now
        let run = try Self.python([Self.driver.path, "http://127.0.0.1:\(server.port)/page/", list.path, resultFile.path], in: dir)
        try #require(run.status == 0, "xss_check.py failed: \(run.output)")
        let results = try JSONDecoder().decode([String: PageResult].self, from: Data(contentsOf: resultFile))
        Thread.sleep(forTimeInterval: 1)   // late beacons and connections
        print("Chromium loaded \(names.count) pages in \(clock.now - started)")

        // What each page did, from the browser and from the servers.
        let served = server.requests
        func ranScript(_ name: String) -> Bool {
            guard let r = results[name] else { return false }
            return r.xssRan || r.title == "XSS" || !r.alerts.isEmpty || served.contains { $0.target == "/xss-ran/\(name)" }
        }
        func loads(_ name: String, _ canary: LoopbackHTTPServer) -> [String] {
            let remote = canary.requests.compactMap(\.target).filter { $0.hasPrefix("/\(name)/") }
            // Relative loads reach the page server, named by their Referer.
            let local = served.filter { r in
                guard let t = r.target, let referer = r.referer, referer.hasSuffix("/page/\(name).html") else { return false }
                return !(t.hasPrefix("/page/\(name).html") || t.hasPrefix("/cid/") || t.hasPrefix("/xss-ran/") || t == "/favicon.ico")
            }.compactMap(\.target)
            return remote + local
        }

        // The control: caught running script and loading from the canary.
        #expect(ranScript("control"), "the harness did not see the unsanitized control run xss(): \(String(describing: results["control"]))")
        #expect(loads("control", rawCanary).contains("/control/control.png"), "the canary did not see the unsanitized control's image")

        // The sanitized pages: nothing ran, nothing loaded, nothing navigated.
        var clean = 0
        for name in names where name.hasPrefix("san-") {
            let vector = vectorOf[name] ?? ""
            guard let r = results[name] else { Issue.record("no result for \(name): \(vector)"); continue }
            let ran = ranScript(name), loaded = loads(name, canary)
            #expect(!ran, "\(name) ran script: \(r)\nvector: \(vector)")
            #expect(loaded.isEmpty, "\(name) loaded \(loaded)\nvector: \(vector)")
            #expect(r.error == nil, "\(name): \(r.error ?? "")\nvector: \(vector)")
            #expect(r.url == "http://127.0.0.1:\(server.port)/page/\(name).html", "\(name) navigated to \(r.url ?? "?")\nvector: \(vector)")
            if !ran && loaded.isEmpty && r.error == nil { clean += 1 }
        }
        let stray = canary.requests.filter { $0.target == nil }.count
        #expect(stray == 0, "\(stray) connection(s) to the sanitized pages' canary sent no request (a preconnect?)")

        // The raw vectors, for scale: how many of them this Chromium falls for.
        let raw = names.filter { $0.hasPrefix("raw-") }
        let rawRan = raw.filter(ranScript), rawLoaded = raw.filter { !loads($0, rawCanary).isEmpty }
        let rawAny = Set(rawRan).union(rawLoaded)
        print("unsanitized: \(rawRan.count) of \(raw.count) vectors ran xss(), \(rawLoaded.count) loaded from the canary (\(rawAny.count) did either); sanitized: \(clean) of \(raw.count) clean")
        // The corpus is real against this browser: most raw vectors do harm.
        #expect(rawAny.count >= raw.count / 2, "only \(rawAny.count) of \(raw.count) raw vectors did anything: is the harness blind?")
    }

    /// python3 with the arguments, output (both streams) to a file; the status.
    static func python(_ arguments: [String], in dir: URL) throws -> (status: Int32, output: String) {
        let log = dir.appendingPathComponent("xss_check.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        defer { try? handle.close() }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3"] + arguments
        p.standardInput = FileHandle.nullDevice
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        p.waitUntilExit()
        return (p.terminationStatus, (try? String(contentsOf: log, encoding: .utf8)) ?? "")
    }
}
