//! Empty on purpose: it gives `shared` build-dependencies, which is how `Cargo.toml` asks for the
//! features of the crates that run while compiling (see its `[build-dependencies]`).

fn main() {}
