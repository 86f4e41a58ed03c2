//! Volumes on PostgreSQL (`crate::volumes::backend_volumes`).

use super::PgStore;

crate::volumes::backend_volumes!(PgStore, sqlx::PgConnection);
