// swift-tools-version:5.9
// libera: Entropy Regularizing Activation as a native library.
//   ERACore  the math (pure Swift, no Foundation)
//   ERA      the C ABI of include/era.h (@_cdecl exports: argument checks and status codes)
//   CEra     include/era.h seen from Swift
// The product `era` is libera.so, with the Swift runtime linked in statically and only the
// era_* symbols exported, so that it runs where no Swift toolchain is installed.
import PackageDescription

let exportsScript = Context.packageDirectory + "/era.exports"

let package = Package(
    name: "libera",
    products: [
        .library(name: "era", type: .dynamic, targets: ["ERA"]),
    ],
    targets: [
        .systemLibrary(name: "CEra", path: "include"),
        .target(
            name: "ERACore",
            swiftSettings: [.unsafeFlags(["-cross-module-optimization"])]
        ),
        .target(
            name: "ERA",
            dependencies: ["ERACore", "CEra"],
            linkerSettings: [
                .unsafeFlags(["-static-stdlib", "-use-ld=lld", "-Xlinker", "--version-script=\(exportsScript)"]),
            ]
        ),
        .testTarget(name: "ERACoreTests", dependencies: ["ERACore"]),
    ]
)
