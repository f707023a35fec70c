internal import CZlib
import SLMessage

/// gzip (RFC 1952) through zlib, for the reports RFC 8460 sends as
/// application/tlsrpt+gzip. Reports are small: the whole input is in memory.
enum Gzip {
    static func compress(_ input: Bytes, level: Int32 = Z_BEST_COMPRESSION) throws -> Bytes {
        var stream = z_stream()
        guard sl_deflate_init_gzip(&stream, level) == Z_OK else { throw GzipError() }
        defer { deflateEnd(&stream) }
        var output = Bytes(repeating: 0, count: Int(deflateBound(&stream, uLong(input.count))) + 32)
        var input = input
        let status: Int32 = input.withUnsafeMutableBufferPointer { inBuf in
            output.withUnsafeMutableBufferPointer { outBuf in
                stream.next_in = inBuf.baseAddress
                stream.avail_in = uInt(inBuf.count)
                stream.next_out = outBuf.baseAddress
                stream.avail_out = uInt(outBuf.count)
                return deflate(&stream, Z_FINISH)
            }
        }
        // deflateBound is enough for one Z_FINISH call: anything else is zlib failing.
        guard status == Z_STREAM_END else { throw GzipError() }
        output.removeSubrange(Int(stream.total_out)...)
        return output
    }
}

struct GzipError: SysexitReporting, CustomStringConvertible {
    var description: String { "zlib could not compress the report" }
    var sysexit: Sysexit { .software }
}
