//! `cargo run -p capstone`.

fn main() {}
