import Foundation
import Testing
import SLPolicy

@Suite struct TLSCacheMergeTests {
    /// Writers in parallel (each merge opens and locks on its own, as separate
    /// processes would): nobody's entries are lost, and the file always parses.
    @Test func parallelMergesLoseNothing() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sl-cache-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("cache.json").path
        let now = Date().timeIntervalSince1970
        DispatchQueue.concurrentPerform(iterations: 8) { w in
            for i in 0..<25 {
                try! TLSCacheFile.merge(["w\(w)-\(i).example": .init(verdict: .verified, checked: now, ttl: 3600)], into: path)
                _ = try! TLSCacheFile(path: path)
            }
        }
        let cache = try TLSCacheFile(path: path)
        for w in 0..<8 { for i in 0..<25 { #expect(cache.entry(for: "w\(w)-\(i).example")?.verdict == .verified) } }
    }

    @Test func aFailedProbeKeepsAGoodVerdictAndExpiredEntriesGo() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sl-cache-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("cache.json").path
        let now = Date().timeIntervalSince1970
        try TLSCacheFile.merge(["good.example": .init(verdict: .verified, checked: now, ttl: 3600),
                                "old.example": .init(verdict: .none, checked: now - 7200, ttl: 3600)], into: path)
        try TLSCacheFile.merge(["good.example": .init(verdict: .unreachable, checked: now, ttl: 600),
                                "new.example": .init(verdict: .encrypted, checked: now, ttl: 3600)], into: path)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        #expect(!text.contains("old.example"))
        let cache = try TLSCacheFile(path: path)
        #expect(cache.entry(for: "good.example")?.verdict == .verified)
        #expect(cache.entry(for: "new.example")?.verdict == .encrypted)
        // a reachable result does replace an older one
        try TLSCacheFile.merge(["good.example": .init(verdict: .none, checked: now, ttl: 3600)], into: path)
        #expect(try TLSCacheFile(path: path).entry(for: "good.example")?.verdict == TLSVerdict.none)
    }
}
