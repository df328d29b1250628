//! Rebuilds the crate when a migration is added: `embed_migrations!` reads the folders at
//! compile time, and cargo does not watch new files in them on its own.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations/sqlite");
    println!("cargo:rerun-if-changed=../../migrations/postgres");
}
