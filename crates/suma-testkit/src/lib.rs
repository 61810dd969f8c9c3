//! In-memory stand-ins of suma's AWS traits for the engines' unit tests. Each keeps the semantics the
//! engines depend on (DynamoDB's conditional writes, fencing tokens), so a test that passes here exercises
//! the same decisions as a run against AWS; the end-to-end tests run the real binary against moto.

mod lock_table;

pub use lock_table::MemoryLockTable;
