//! In-memory stand-ins of suma's AWS traits for the engines' unit tests: one account across regions
//! (`AwsWorld`: ECS, ALB rules, RDS, Route 53, Secrets Manager) and the lock table. Each keeps the semantics the
//! engines depend on (DynamoDB's conditional writes, fencing tokens), so a test that passes here exercises
//! the same decisions as a run against AWS; the end-to-end tests run the real binary against moto.

pub mod aws_world;
pub mod environment;
mod lock_table;

pub use aws_world::AwsWorld;
pub use environment::environment;
pub use lock_table::MemoryLockTable;
