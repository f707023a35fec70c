internal import COpenSSL

/// Cryptographic randomness from OpenSSL's CSPRNG (seeded from the kernel).
package enum SystemRandom {
    package static func fill(_ bytes: inout [UInt8]) -> Bool {
        let n = Int32(bytes.count)
        return bytes.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, n) } == 1
    }
}
