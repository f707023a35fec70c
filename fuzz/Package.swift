// swift-tools-version: 6.0
// sl's fuzz targets: one libFuzzer executable per parser of attacker input, built
// against sl's own modules with coverage and AddressSanitizer. Not part of the main
// build: fuzz/run builds this package (swift build --sanitize=fuzzer
// --sanitize=address) and runs the targets. Each target is a folder of
// Targets/ holding one Swift file that defines LLVMFuzzerTestOneInput; seed inputs
// are in Corpus/<target>/ and crashes found once live on as regression tests in
// the main suite (Tests/SLMessageTests/FuzzRegressionTests.swift and kin).
import Foundation
import PackageDescription

// The targets are the folders of Targets/, so adding one is adding a folder.
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
let names = ((try? FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent("Targets").path)) ?? [])
    .filter { !$0.hasPrefix(".") }.sorted()

// What each target may use of sl: every library module (the parsers are reached
// through @testable import, so their internals need no public API for fuzzing).
let sl: [Target.Dependency] = ["SLMessage", "SLPolicy", "SLTransport", "SLEscrow", "SLPortal", "SLContacts", "SLHTML"]
    .map { .product(name: $0, package: "sl") }

let package = Package(
    name: "sl-fuzz",
    dependencies: [.package(name: "sl", path: "..")],
    targets: names.map { name in
        .executableTarget(name: name, dependencies: sl, path: "Targets/\(name)",
                          swiftSettings: [.unsafeFlags(["-parse-as-library"])])
    }
)
