#if canImport(Glibc)
import Glibc
#endif

/// Cryptographic randomness from the kernel (getrandom(2)).
enum SystemRandom {
    static func fill(_ bytes: inout [UInt8]) -> Bool {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeMutableBytes { getrandom($0.baseAddress! + done, $0.count - done, 0) }
            if n < 0 { if errno == EINTR { continue }; return false }
            done += n
        }
        return true
    }
}
