//! Compiles the C++ the crate needs on top of the FAISS C API (`src/phrase_bank/ffi/`: a
//! repair of read fast-scan indexes, the check of a read index against its manifest, a
//! batched reconstruction and a parallel loop on FAISS's OpenMP threads), against the headers
//! faiss-sys installed.

fn main() {
    println!("cargo:rerun-if-changed=src/phrase_bank/ffi/fastscan_repair.cpp");
    println!("cargo:rerun-if-changed=src/phrase_bank/ffi/index_check.cpp");
    println!("cargo:rerun-if-changed=src/phrase_bank/ffi/reconstruct.cpp");
    println!("cargo:rerun-if-changed=src/phrase_bank/ffi/parallel.cpp");
    // faiss-sys (links = "faiss_c") builds FAISS with cmake, which reports its install root
    let root = std::env::var("DEP_FAISS_C_ROOT")
        .expect("faiss-sys must be built with its `static` feature (it reports DEP_FAISS_C_ROOT)");
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .include(std::path::Path::new(&root).join("include"))
        .file("src/phrase_bank/ffi/fastscan_repair.cpp")
        .file("src/phrase_bank/ffi/index_check.cpp")
        .file("src/phrase_bank/ffi/reconstruct.cpp")
        .file("src/phrase_bank/ffi/parallel.cpp")
        // the parallel loop runs on FAISS's OpenMP team (libgomp, linked by faiss-sys)
        .flag("-fopenmp")
        .warnings(false)
        .compile("lwdec_faiss_repair");
}
