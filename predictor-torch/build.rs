//! Lets the binary find libtorch at run time (an rpath to the libtorch it was built with),
//! and makes the CUDA build really link `libtorch_cuda.so`: Rust links with `--as-needed`,
//! which would drop it, since no symbol of it is referenced directly.

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let Some(libtorch) = std::env::var_os("LIBTORCH") else {
        return;
    };
    let lib = std::path::Path::new(&libtorch).join("lib");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
        // CUDA's own libraries (cuBLAS, cuDNN, ...) come with the GPU machine's torch, not here.
        println!("cargo:rustc-link-arg=-Wl,--allow-shlib-undefined");
    }
}
