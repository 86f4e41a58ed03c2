//! What only the SQLite backend has: a file in WAL mode, and the in-memory
//! database.

use super::*;

#[tokio::test]
async fn open_file_persists_and_uses_wal() {
    let dir = TempDir::new();
    let path = dir.0.join("zun.db");
    let c = container(2, "p1");
    {
        let store = SqliteStore::open(&path).await.unwrap();
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(fk, 1);
        store
            .insert_container(&c, &new_action("create", None), None)
            .await
            .unwrap();
        store.close().await;
    }
    assert!(path.exists());
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(store.get_container(&c.uuid).await.unwrap(), Some(c));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_in_memory() {
    concurrent_writers(Arc::new(SqliteStore::open_in_memory().await.unwrap())).await;
}
