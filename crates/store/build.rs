//! Rebuilds the crate when a migration is added: `embed_migrations!` reads the folder at
//! compile time, and cargo does not watch new files in it on its own.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations/sqlite");
}
