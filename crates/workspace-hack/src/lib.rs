//! Holds no code: its manifest unifies the features of shared dependencies across every build of the
//! workspace, so `cargo build --bin suma`, `cargo xtask sandbox up` and `cargo xtask test` compile each
//! dependency once (see the manifest's comment).
