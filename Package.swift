// swift-tools-version:5.9
// libera: Entropy Regularizing Activation as a native library.
//   ERACore  the math (pure Swift, no Foundation), portable scalar kernels
//   ERASIMD  vector kernels for the hot loops, compiled for AVX2 + FMA on x86-64; ERACore
//            calls them only when the processor runs them (CPUFeatures), so libera.so still
//            runs on any x86-64
//   COpenBLAS  CBLAS from OpenBLAS (libopenblas-dev), for the fused linear heads
//   ERA      the C ABI of include/era.h (@_cdecl exports: argument checks and status codes)
//   CEra     include/era.h seen from Swift
// The product `era` is libera.so, with the Swift runtime linked in statically and only the
// era_* symbols exported, so that it runs where no Swift toolchain is installed.
import PackageDescription

let exportsScript = Context.packageDirectory + "/era.exports"

// The instruction set of the vector kernels: Haswell (AVX2, FMA, BMI2) on x86-64; the
// default elsewhere (AArch64 has NEON and FMA in its baseline).
#if arch(x86_64)
let simdFlags = ["-target-cpu", "haswell"]
#else
let simdFlags: [String] = []
#endif

let package = Package(
    name: "libera",
    products: [
        .library(name: "era", type: .dynamic, targets: ["ERA"]),
    ],
    targets: [
        .systemLibrary(name: "CEra", path: "include"),
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .target(name: "CPUFeatures"),
        .target(
            name: "ERASIMD",
            swiftSettings: [.unsafeFlags(simdFlags)]
        ),
        .target(
            name: "ERACore",
            dependencies: ["ERASIMD", "CPUFeatures", "COpenBLAS"],
            swiftSettings: [.unsafeFlags(["-cross-module-optimization"])]
        ),
        .target(
            name: "ERA",
            dependencies: ["ERACore", "CEra"],
            linkerSettings: [
                .unsafeFlags(["-static-stdlib", "-use-ld=lld", "-Xlinker", "--version-script=\(exportsScript)"]),
            ]
        ),
        .testTarget(name: "ERACoreTests", dependencies: ["ERACore", "ERASIMD"]),
    ]
)
