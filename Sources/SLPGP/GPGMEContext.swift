internal import CGPGME
import Foundation
import SLMessage

/// An error from GnuPG (through GPGME) or from our own key checks, in words.
/// Exit 75: the caller keeps the message and retries, which is safe whatever went wrong.
public struct PGPError: Error, CustomStringConvertible, Equatable {
    public let description: String
    init(_ description: String) {
        self.description = description
    }

    /// Turns a GPGME error code into words; nil for success.
    static func check(_ err: gpgme_error_t, _ what: String) -> PGPError? {
        guard err != 0 else { return nil }
        return PGPError("\(what): \(String(cString: gpgme_strerror(err)))")
    }
}

/// One GPGME context over one GnuPG home. Owns the `gpgme_ctx_t` and releases it;
/// nothing of GPGME escapes this module.
final class GPGMEContext {
    let ctx: gpgme_ctx_t

    /// GPGME must be told its version once per process before any context exists.
    private static let initialised: Bool = {
        // Find gpg at its standard place instead of asking gpgconf three times: each
        // engine probe is a process, and they dominated the cost of one message.
        _ = gpgme_set_global_flag("disable-gpgconf", "1")
        _ = gpgme_check_version(nil)
        return true
    }()

    init(homeDirectory: String?) throws {
        _ = Self.initialised
        var c: gpgme_ctx_t?
        if let e = PGPError.check(gpgme_new(&c), "cannot start GPGME") { throw e }
        guard let c else { throw PGPError("cannot start GPGME") }
        ctx = c
        if let e = PGPError.check(gpgme_set_protocol(ctx, GPGME_PROTOCOL_OpenPGP), "OpenPGP protocol unavailable") { throw e }
        // A home that GNUPGHOME already names is left to it: giving a context a home
        // of its own makes GPGME run `gpg --version` again (PGPKeyring.prepareProcess).
        if let home = homeDirectory, home != ProcessInfo.processInfo.environment["GNUPGHOME"],
           let e = PGPError.check(gpgme_ctx_set_engine_info(ctx, GPGME_PROTOCOL_OpenPGP, nil, home), "cannot use GnuPG home \(home)") {
            throw e
        }
        gpgme_set_armor(ctx, 1)
        // Never let gpg fetch keys from the network while listing or encrypting.
        gpgme_set_keylist_mode(ctx, gpgme_keylist_mode_t(GPGME_KEYLIST_MODE_LOCAL))
    }

    deinit { gpgme_release(ctx) }

    /// All public keys whose user IDs gpg matches for `pattern` (a substring match:
    /// callers must check addresses exactly).
    func listKeys(_ pattern: String, secret: Bool = false) throws -> [PGPKey] {
        if let e = PGPError.check(gpgme_op_keylist_start(ctx, pattern, secret ? 1 : 0), "key listing failed") { throw e }
        var keys: [PGPKey] = []
        while true {
            var key: gpgme_key_t?
            let err = gpgme_op_keylist_next(ctx, &key)
            if gpgme_err_code(err) == GPG_ERR_EOF { break }
            if let e = PGPError.check(err, "key listing failed") {
                _ = gpgme_op_keylist_end(ctx)
                throw e
            }
            if let key { keys.append(PGPKey(taking: key)) }
        }
        _ = gpgme_op_keylist_end(ctx)
        return keys
    }

    /// Imports keys (binary or armored) into the home; returns the imported fingerprints.
    func importKeys(_ bytes: Bytes) throws -> [String] {
        let data = try GPGMEData(bytes: bytes)
        if let e = PGPError.check(gpgme_op_import(ctx, data.handle), "key import failed") { throw e }
        guard let result = gpgme_op_import_result(ctx) else { return [] }
        var out: [String] = []
        var s = result.pointee.imports
        while let i = s {
            if i.pointee.result == 0, let f = i.pointee.fpr { out.append(String(cString: f)) }
            s = i.pointee.next
        }
        return out
    }

    /// Signs and encrypts, or encrypts with hidden recipients, `input` to
    /// `recipients`, writing armored output: the two cases librnp does not take
    /// (the secret key lives with gpg-agent; librnp 0.16 writes no wildcard key IDs).
    /// Plain encryption is RNPKeyring's. `trustedByCaller` passes
    /// GPGME_ENCRYPT_ALWAYS_TRUST: only when the caller checked every key itself
    /// (KeySelector does).
    func encrypt(recipients: [PGPKey], signers: [PGPKey], input: GPGMEData, output: GPGMEData,
                 trustedByCaller: Bool, hideRecipients: Bool) throws {
        precondition(!recipients.isEmpty, "encrypting to nobody")
        precondition(!signers.isEmpty || hideRecipients, "plain encryption is librnp's (RNPKeyring)")
        var flags = GPGME_ENCRYPT_NO_ENCRYPT_TO.rawValue
        if trustedByCaller { flags |= GPGME_ENCRYPT_ALWAYS_TRUST.rawValue }
        if hideRecipients { flags |= GPGME_ENCRYPT_THROW_KEYIDS.rawValue }
        var array: [gpgme_key_t?] = recipients.map { $0.handle } + [nil]
        gpgme_signers_clear(ctx)
        for s in signers {
            if let e = PGPError.check(gpgme_signers_add(ctx, s.handle), "cannot sign with \(s.fingerprint)") { throw e }
        }
        let err = array.withUnsafeMutableBufferPointer { buf in
            signers.isEmpty
                ? gpgme_op_encrypt(ctx, buf.baseAddress, gpgme_encrypt_flags_t(flags), input.handle, output.handle)
                : gpgme_op_encrypt_sign(ctx, buf.baseAddress, gpgme_encrypt_flags_t(flags), input.handle, output.handle)
        }
        // Any invalid recipient means the output may be readable by only some of
        // them: never use it.
        if let r = gpgme_op_encrypt_result(ctx), let bad = r.pointee.invalid_recipients {
            let fpr = bad.pointee.fpr.map { String(cString: $0) } ?? "?"
            throw RecipientKeyError(recipient: fpr, problem: "key refused by GnuPG: \(String(cString: gpgme_strerror(bad.pointee.reason)))")
        }
        if let e = PGPError.check(err, signers.isEmpty ? "encryption failed" : "signing and encryption failed") { throw e }
        if !signers.isEmpty, let s = gpgme_op_sign_result(ctx), s.pointee.invalid_signers != nil {
            throw PGPError("the signing key was refused by GnuPG")
        }
    }
}

/// A GPGME data object over a file descriptor or bytes. Owns the `gpgme_data_t`.
final class GPGMEData {
    let handle: gpgme_data_t

    /// Data read from or written to `fd` (the fd stays owned by the caller), so large
    /// messages stream through a temporary file instead of memory.
    init(fd: Int32) throws {
        var h: gpgme_data_t?
        if let e = PGPError.check(gpgme_data_new_from_fd(&h, fd), "cannot wrap a file for GPGME") { throw e }
        guard let h else { throw PGPError("cannot wrap a file for GPGME") }
        handle = h
    }

    /// Data copied from `bytes` (GPGME keeps its own copy: the last argument, 1).
    init(bytes: Bytes) throws {
        var h: gpgme_data_t?
        let err = bytes.withUnsafeBufferPointer { buf in
            buf.baseAddress!.withMemoryRebound(to: CChar.self, capacity: max(1, buf.count)) {
                gpgme_data_new_from_mem(&h, $0, buf.count, 1)
            }
        }
        if let e = PGPError.check(err, "cannot copy data for GPGME") { throw e }
        guard let h else { throw PGPError("cannot copy data for GPGME") }
        handle = h
    }

    deinit { gpgme_data_release(handle) }
}
