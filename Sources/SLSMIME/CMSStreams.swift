internal import COpenSSL
import SLOpenSSL

/// The BIO plumbing CMS streaming needs, in one place: content read from one file
/// descriptor, base64 written to another, and an OpenSSL stack of certificates.
enum CMSStreams {
    /// Calls `body` with a BIO reading `input` and a base64 BIO writing `output`,
    /// then flushes and frees both. Both descriptors stay open (BIO_NOCLOSE).
    static func withBase64Output(input: Int32, output: Int32, _ body: (_ in: OpaquePointer, _ out: OpaquePointer) throws -> Void) throws {
        ERR_clear_error()
        // fd BIOs make a system call per read or write, and base64 writes a line at a
        // time: 64 KiB buffers on both sides.
        guard let fdIn = BIO_new_fd(input, BIO_NOCLOSE) else { throw OpenSSLError("cannot read the content") }
        guard let bufferIn = BIO_new(BIO_f_buffer()), let inBIO = BIO_push(bufferIn, fdIn) else {
            BIO_free(fdIn); throw OpenSSLError("no buffer filter")
        }
        defer { BIO_free_all(inBIO) }
        _ = BIO_int_ctrl(bufferIn, BIO_C_SET_BUFF_SIZE, 64 << 10, 0)
        guard let fileBIO = BIO_new_fd(output, BIO_NOCLOSE) else { throw OpenSSLError("cannot write the output") }
        guard let bufferOut = BIO_new(BIO_f_buffer()), let buffered = BIO_push(bufferOut, fileBIO) else {
            BIO_free(fileBIO); throw OpenSSLError("no buffer filter")
        }
        _ = BIO_int_ctrl(bufferOut, BIO_C_SET_BUFF_SIZE, 64 << 10, 1)
        guard let b64 = BIO_new(BIO_f_base64()) else { BIO_free_all(buffered); throw OpenSSLError("no base64 filter") }
        guard let out = BIO_push(b64, buffered) else { BIO_free(b64); BIO_free_all(buffered); throw OpenSSLError("no base64 filter") }
        defer { BIO_free_all(out) }
        try body(inBIO, out)
        guard BIO_ctrl(out, BIO_CTRL_FLUSH, 0, nil) == 1 else { throw OpenSSLError("flushing the output failed") }
    }

    /// An OpenSSL stack holding `certificates` for the duration of `body`.
    static func withStack<T>(_ certificates: [X509Certificate], _ body: (OpaquePointer?) throws -> T) rethrows -> T {
        let stack = OPENSSL_sk_new_null()
        defer { OPENSSL_sk_free(stack) }
        for c in certificates { _ = OPENSSL_sk_push(stack, UnsafeRawPointer(c.handle)) }
        return try body(stack)
    }
}
