internal import COpenSSL

/// Owns a memory `BIO*`: OpenSSL's way to read from and write to bytes in memory.
package final class MemoryBIO {
    package let handle: OpaquePointer

    /// Read-only over `buffer`, without a copy: valid only while `buffer` is, so
    /// make and drop it inside the buffer's `withUnsafeBytes`.
    package init?(reading buffer: UnsafeRawBufferPointer) {
        // BIO_new_mem_buf takes an Int32 length; nil rather than a trap for more.
        guard let base = buffer.baseAddress, buffer.count <= Int(Int32.max),
              let bio = BIO_new_mem_buf(base, Int32(buffer.count)) else { return nil }
        handle = bio
    }

    /// Empty and growing, for OpenSSL to print into.
    package init?() {
        guard let bio = BIO_new(BIO_s_mem()) else { return nil }
        handle = bio
    }

    deinit { BIO_free(handle) }

    /// What has been written and not yet read.
    package var contents: [UInt8] {
        var start: UnsafeMutablePointer<CChar>? = nil
        let count = BIO_ctrl(handle, BIO_CTRL_INFO, 0, &start)    // BIO_get_mem_data, a macro
        guard count > 0, let start else { return [] }
        return Array(UnsafeRawBufferPointer(start: start, count: count))
    }
}
