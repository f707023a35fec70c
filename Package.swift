// swift-tools-version: 6.0
// sl — secure email for anyone, as Unix filters. Linux only (Glibc, /dev/tty, flock).
// Dependencies point one way: executables -> SLCommand and the libraries they use
// (SLDelivery -> SLTransport; SLContacts -> SLPGP, SLSMIME; SLEscrow) -> SLPolicy -> SLOpenSSL, SLPostgres ->
// SLMessage; SLTransport and SLContacts -> SLHTTPS -> SLMessage. Only modules that need a C library import one, as `internal import`:
// the compiler keeps every C type out of public APIs.
import PackageDescription

let parser = Target.Dependency.product(name: "ArgumentParser", package: "swift-argument-parser")

let package = Package(
    name: "sl",
    products: [
        .executable(name: "sl-classify", targets: ["sl-classify"]),
        .executable(name: "sl-encrypt-pgp", targets: ["sl-encrypt-pgp"]),
        .executable(name: "sl-encrypt-smime", targets: ["sl-encrypt-smime"]),
        .executable(name: "sl-tls-probe", targets: ["sl-tls-probe"]),
        .executable(name: "sl-deliver", targets: ["sl-deliver"]),
        .executable(name: "sl-escrow-pack", targets: ["sl-escrow-pack"]),
        .executable(name: "sl-escrow", targets: ["sl-escrow"]),
        .executable(name: "sl-portal", targets: ["sl-portal"]),
        .executable(name: "sl-contacts", targets: ["sl-contacts"]),
        // For fuzz/ (a package of its own that builds sl's parsers with libFuzzer),
        // not an API: sl is its executables.
        .library(name: "SLMessage", targets: ["SLMessage"]),
        .library(name: "SLPolicy", targets: ["SLPolicy"]),
        .library(name: "SLTransport", targets: ["SLTransport"]),
        .library(name: "SLEscrow", targets: ["SLEscrow"]),
        .library(name: "SLPortal", targets: ["SLPortal"]),
        .library(name: "SLContacts", targets: ["SLContacts"]),
        .library(name: "SLHTML", targets: ["SLHTML"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.2"),
    ],
    targets: [
        // System libraries, used behind owning wrappers only.
        .systemLibrary(name: "CGPGME", pkgConfig: "gpgme",
                       providers: [.apt(["libgpgme-dev"])]),
        // librnp is opened at run time (dlopen), not linked: see its header.
        .target(name: "CRNP", linkerSettings: [.linkedLibrary("dl")]),
        // libcurl is opened at run time (dlopen), not linked: see its header.
        .target(name: "CCurl", linkerSettings: [.linkedLibrary("dl")]),
        .systemLibrary(name: "CLibXML2", pkgConfig: "libxml-2.0",
                       providers: [.apt(["libxml2-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl",
                       providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CResolv"),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CSodium", pkgConfig: "libsodium",
                       providers: [.apt(["libsodium-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3",
                       providers: [.apt(["libsqlite3-dev"])]),
        // libpq is opened at run time (dlopen), not linked: see its header.
        .target(name: "CPQ", linkerSettings: [.linkedLibrary("dl")]),

        // RFC 5322, MIME, mboxrd; the X-SL-* envelope and its routing vocabulary, the
        // sendmail envelope rules, delivery reports, RFC 3463 codes, sysexits. Foundation only.
        .target(name: "SLMessage"),
        // OpenSSL's shared wrappers: X.509 certificates, digests, randomness, the error queue.
        .target(name: "SLOpenSSL", dependencies: ["SLMessage", "COpenSSL"]),
        // A PostgreSQL connection through libpq (parameterised statements only) and
        // versioned schemas migrated by command: the TLS cache's database today, the
        // escrow store's later.
        .target(name: "SLPostgres", dependencies: ["SLMessage", "CPQ"]),
        // Configuration, address books, TLS capability and its cache (a file, or
        // PostgreSQL through SLPostgres), the per-recipient decision.
        .target(name: "SLPolicy", dependencies: ["SLMessage", "SLOpenSSL", "SLPostgres"]),
        // PGP: keyrings, key selection and signing through GPGME (GnuPG is the
        // authority on keys and signatures); bulk encryption in process with librnp.
        .target(name: "SLPGP", dependencies: ["SLMessage", "CGPGME", "CRNP"]),
        // S/MIME through OpenSSL CMS: certificate checks, signing, encryption.
        .target(name: "SLSMIME", dependencies: ["SLMessage", "SLOpenSSL", "COpenSSL"]),
        // DNS (libresolv), the transport table, TLS (libssl) and the SMTP client; the
        // TLS probe; MTA-STS policies (RFC 8461, fetched through SLHTTPS); RFC 8460 TLS
        // reports (zlib for their gzip). Shared by sl-tls-probe, sl-classify and sl-deliver.
        .target(name: "SLTransport", dependencies: ["SLMessage", "SLPolicy", "SLOpenSSL", "SLHTTPS", "COpenSSL", "CResolv", "CZlib"]),
        // GET over HTTPS through libcurl (verified certificate, no redirects, size
        // limit, pinned addresses): WKD keys for SLContacts, MTA-STS policies for
        // SLTransport. The only target that uses libcurl (opened at run time: CCurl).
        .target(name: "SLHTTPS", dependencies: ["SLMessage", "CCurl", "COpenSSL"]),
        // What sl-deliver does: the SMTP sender, the queue and its runner, and the
        // failure policy (DeliveryPolicy.swift: what each trouble does, and its status).
        .target(name: "SLDelivery", dependencies: ["SLMessage", "SLPolicy", "SLTransport"]),
        // Escrow: sealing (libsodium: secretstream, Argon2id, sealed boxes), the store
        // (SQLite metadata and sealed content files, or all of it in PostgreSQL through
        // SLPostgres), accounts, the packer, notices, receipts.
        .target(name: "SLEscrow", dependencies: ["SLMessage", "SLPolicy", "SLPostgres", "CSodium", "CSQLite"]),
        // What sl-contacts does: a contact's key from a file, a GnuPG keyring or WKD
        // (SLHTTPS), a certificate from a file or a signed message, and the card
        // written into the book.
        .target(name: "SLContacts", dependencies: ["SLMessage", "SLOpenSSL", "SLPolicy", "SLPGP", "SLSMIME", "SLHTTPS"]),
        // The escrow pickup portal over HTTPS or, behind a proxy, HTTP (Hummingbird,
        // HummingbirdTLS): routes, pages, CSRF, the bounded Argon2id pool. The only
        // target that links Hummingbird.
        .target(name: "SLPortal", dependencies: [
            "SLMessage", "SLPolicy", "SLEscrow", "SLHTML",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdCore", package: "hummingbird"),
            .product(name: "HummingbirdTLS", package: "hummingbird"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
        ]),
        // The HTML sanitizer for text/html parts shown in the portal: libxml2's HTML
        // parser reads the mail, and an allowlist writes a fresh fragment (no script,
        // no remote loads). Depends on nothing else of sl.
        .target(name: "SLHTML", dependencies: ["CLibXML2"]),
        // Command plumbing only: the stream loop, staged output, diagnostics and
        // sysexits, the terminal, option groups. The tools' glue from configuration to
        // the libraries lives in each executable, which links only what it uses.
        .target(name: "SLCommand", dependencies: [
            "SLMessage", "SLPolicy",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .executableTarget(name: "sl-classify", dependencies: ["SLCommand", "SLMessage", "SLPolicy", "SLTransport", "SLEscrow", "SLDelivery", parser]),
        .executableTarget(name: "sl-encrypt-pgp", dependencies: ["SLCommand", "SLMessage", "SLPolicy", "SLPGP", parser]),
        .executableTarget(name: "sl-encrypt-smime", dependencies: ["SLCommand", "SLMessage", "SLPolicy", "SLSMIME", "SLOpenSSL", parser]),
        .executableTarget(name: "sl-tls-probe", dependencies: ["SLCommand", "SLMessage", "SLPolicy", "SLTransport", parser]),
        .executableTarget(name: "sl-deliver", dependencies: ["SLCommand", "SLMessage", "SLPolicy", "SLTransport", "SLDelivery", parser]),
        .executableTarget(name: "sl-escrow-pack", dependencies: ["SLCommand", "SLMessage", "SLPolicy", "SLEscrow", parser]),
        .executableTarget(name: "sl-escrow", dependencies: ["SLCommand", "SLMessage", "SLPolicy", "SLPostgres", "SLEscrow", parser]),
        .executableTarget(name: "sl-portal", dependencies: ["SLCommand", "SLPolicy", "SLPortal", parser]),
        .executableTarget(name: "sl-contacts", dependencies: ["SLCommand", "SLMessage", "SLPolicy", "SLContacts", "SLHTTPS", parser]),

        .testTarget(name: "SLMessageTests", dependencies: ["SLMessage"]),
        .testTarget(name: "SLOpenSSLTests", dependencies: ["SLOpenSSL"]),
        // The command plumbing: the exit-code table, in process.
        .testTarget(name: "SLCommandTests", dependencies: ["SLCommand", "SLMessage", "SLPolicy", "SLPGP", "SLSMIME", "SLTransport", "SLEscrow"]),
        .testTarget(name: "SLPolicyTests", dependencies: ["SLPolicy", "SLPostgres", "SLTestPeers"]),
        .testTarget(name: "SLPGPTests", dependencies: ["SLPGP"]),
        // WKD addresses and the card editing, in process.
        .testTarget(name: "SLContactsTests", dependencies: ["SLContacts", "SLPolicy", "SLMessage"]),
        // Fixtures/make-certs.py makes the test certificates at run time.
        // Starts the real peers (Postfix, dnsmasq) and the scripted bad server for the
        // transport and tool tests; peers.py and its README are read at run time.
        .target(name: "SLTestPeers", path: "Tests/SLTestPeers", exclude: ["peers.py", "README.md"]),
        .testTarget(name: "TransportTests", dependencies: ["SLTransport", "SLPolicy", "SLTestPeers"]),
        .testTarget(name: "SLEscrowTests", dependencies: ["SLEscrow", "SLMessage", "SLTestPeers"]),
        // Fixtures/xss-vectors.txt is read at run time; Browser/xss_check.py loads every
        // sanitized vector in a real headless Chromium (Selenium).
        .testTarget(name: "SLHTMLTests", dependencies: ["SLHTML"], exclude: ["Fixtures", "Browser"]),
        .testTarget(name: "SLDeliveryTests", dependencies: ["SLDelivery", "SLMessage", "SLTransport"]),
        .testTarget(name: "SLSMIMETests", dependencies: ["SLSMIME", "SLOpenSSL"], exclude: ["Fixtures"]),
        // Golden/ holds .in/.args/.ref files read from the source tree at run time;
        // Portal/pickup.py drives a headless Chromium through the portal (Selenium).
        // TLSRPT/ holds RFC 8460's report format as a JSON schema, read at run time.
        .testTarget(name: "ToolTests", dependencies: ["SLMessage", "SLPolicy", "SLDelivery", "SLTestPeers"], exclude: ["Golden", "Portal", "TLSRPT"]),
    ]
)
