//! Volumes on SQLite (`crate::volumes::backend_volumes`).

use super::SqliteStore;

crate::volumes::backend_volumes!(SqliteStore, sqlx::SqliteConnection);
