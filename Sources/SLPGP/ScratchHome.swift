#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A throwaway copy of a GnuPG home, for a dry run: the keys imported from address
/// books during the run go into the copy, so the real keyring stays as it was.
/// Sockets and lock files are not copied (they belong to the real home's agent).
public final class ScratchHome {
    public let path: String

    /// A copy of `home`, or with nil an empty home (for looking at keys from
    /// outside without touching any keyring).
    public init(copying home: String?) throws {
        var template = Array((NSTemporaryDirectory() + "/sl-gnupg-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else {
            throw PGPHomeError(description: "cannot make a scratch GnuPG home: \(String(cString: strerror(errno)))")
        }
        path = String(cString: made)
        let fm = FileManager.default
        guard let home, let entries = try? fm.contentsOfDirectory(atPath: home) else { return }   // no home yet: an empty one
        for name in entries where !name.hasPrefix("S.") && !name.hasSuffix(".lock") && !name.hasPrefix(".#") {
            do { try fm.copyItem(atPath: home + "/" + name, toPath: path + "/" + name) } catch {
                remove()
                throw PGPHomeError(description: "cannot copy \(home)/\(name) for a dry run: \(error.localizedDescription)")
            }
        }
    }

    /// Stops any agent the run started in the copy, and removes it.
    public func remove() {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["gpgconf", "--homedir", path, "--kill", "all"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        if (try? p.run()) != nil { p.waitUntilExit() }
        try? FileManager.default.removeItem(atPath: path)
    }
}
