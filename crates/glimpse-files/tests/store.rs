//! The file store on a real SQLite database and data folder.

use std::time::Duration;

use bytes::Bytes;
use futures::stream;
use glimpse_core::{Code, GlimpseError};
use glimpse_files::{FileState, FileStore, FileStoreConfig, NewUpload};

fn png() -> Vec<u8> {
    std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/images/red_square_56x56.png")).unwrap()
}

fn config(dir: &std::path::Path) -> FileStoreConfig {
    FileStoreConfig {
        data_dir: dir.to_path_buf(),
        database_url: None,
        blob_url: None,
        max_file_bytes: FileStoreConfig::DEFAULT_MAX_FILE_BYTES,
        project_quota_bytes: FileStoreConfig::DEFAULT_PROJECT_QUOTA_BYTES,
        ttl: FileStoreConfig::DEFAULT_TTL,
        interaction_ttl: FileStoreConfig::DEFAULT_INTERACTION_TTL,
    }
}

fn chunks(data: &[u8]) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Unpin {
    stream::iter(data.chunks(1000).map(|c| Ok(Bytes::copy_from_slice(c))).collect::<Vec<_>>())
}

async fn upload(store: &FileStore, project: &str, bytes: &[u8], mime: Option<&str>) -> glimpse_files::FileRecord {
    let session = appended(store, project, bytes, mime).await;
    store.finalize(&session).await.unwrap()
}

/// An upload of `bytes` in two chunks, not yet finalized.
async fn appended(store: &FileStore, project: &str, bytes: &[u8], mime: Option<&str>) -> glimpse_files::UploadSession {
    let session = store
        .start_upload(NewUpload {
            project: project.into(),
            mime_type: mime.map(str::to_string),
            declared_size: Some(bytes.len() as u64),
            ..Default::default()
        })
        .await
        .unwrap();
    let half = bytes.len() / 2;
    let received = store.append(&session, 0, chunks(&bytes[..half])).await.unwrap();
    let session = store.upload_session(&session.id).await.unwrap().unwrap();
    assert_eq!(session.received, received);
    store.append(&session, half as u64, chunks(&bytes[half..])).await.unwrap();
    store.upload_session(&session.id).await.unwrap().unwrap()
}

fn code(e: GlimpseError) -> Code {
    e.code()
}

#[tokio::test]
async fn chunked_upload_persists_across_reopen_and_is_private_to_its_project() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = png();
    let id = {
        let store = FileStore::open(config(dir.path())).await.unwrap();
        let file = upload(&store, "alice", &bytes, Some("image/png")).await;
        assert_eq!(file.state, FileState::Active);
        assert_eq!(file.size_bytes, bytes.len() as u64);
        file.id
    };
    let store = FileStore::open(config(dir.path())).await.unwrap();
    let (file, read) = store.read_for_prompt("alice", &id, u64::MAX).await.unwrap();
    assert_eq!(read, bytes);
    assert_eq!(file.mime_type, "image/png");
    assert_eq!(code(store.get("bob", &id).await.unwrap_err()), Code::PermissionDenied);
    assert_eq!(code(store.delete("bob", &id).await.unwrap_err()), Code::PermissionDenied);
    let (listed, _) = store.list("bob", None, None).await.unwrap();
    assert!(listed.is_empty());
    store.delete("alice", &id).await.unwrap();
    assert_eq!(code(store.get("alice", &id).await.unwrap_err()), Code::PermissionDenied);
}

#[tokio::test]
async fn wrong_offset_and_oversize_chunks_leave_the_upload_intact() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(config(dir.path())).await.unwrap();
    let bytes = png();
    let session = store
        .start_upload(NewUpload { project: "p".into(), declared_size: Some(bytes.len() as u64), ..Default::default() })
        .await
        .unwrap();
    store.append(&session, 0, chunks(&bytes[..100])).await.unwrap();
    let session = store.upload_session(&session.id).await.unwrap().unwrap();
    assert_eq!(code(store.append(&session, 50, chunks(&bytes[100..])).await.unwrap_err()), Code::InvalidArgument);
    let mut too_much = bytes[100..].to_vec();
    too_much.push(0);
    assert_eq!(code(store.append(&session, 100, chunks(&too_much)).await.unwrap_err()), Code::InvalidArgument);
    store.append(&session, 100, chunks(&bytes[100..])).await.unwrap();
    let session = store.upload_session(&session.id).await.unwrap().unwrap();
    let file = store.finalize(&session).await.unwrap();
    assert_eq!(file.state, FileState::Active);
    assert_eq!(file.mime_type, "image/png", "sniffed when undeclared");
    assert_eq!(store.read_for_prompt("p", &file.id, u64::MAX).await.unwrap().1, bytes);
}

#[tokio::test]
async fn quota_and_file_size_are_checked_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.project_quota_bytes = 60_000;
    cfg.max_file_bytes = 50_000;
    let store = FileStore::open(cfg).await.unwrap();
    let start = |size| NewUpload { project: "p".into(), declared_size: Some(size), ..Default::default() };
    assert_eq!(code(store.start_upload(start(50_001)).await.unwrap_err()), Code::InvalidArgument);
    store.start_upload(start(40_000)).await.unwrap();
    assert_eq!(code(store.start_upload(start(30_000)).await.unwrap_err()), Code::ResourceExhausted);
    // Another project has its own quota.
    store.start_upload(NewUpload { project: "q".into(), declared_size: Some(30_000), ..Default::default() }).await.unwrap();
}

#[tokio::test]
async fn non_image_bytes_become_a_failed_file_that_prompts_cannot_use() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(config(dir.path())).await.unwrap();
    let file = upload(&store, "p", b"just some text, not an image", Some("text/plain")).await;
    assert_eq!(file.state, FileState::Failed);
    assert!(file.error.as_deref().unwrap().contains("not a supported image"));
    assert_eq!(code(store.read_for_prompt("p", &file.id, u64::MAX).await.unwrap_err()), Code::FailedPrecondition);
}

#[tokio::test]
async fn expired_files_disappear_and_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.ttl = Duration::from_millis(300);
    let store = FileStore::open(cfg).await.unwrap();
    let file = upload(&store, "p", &png(), Some("image/png")).await;
    store.get("p", &file.id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(code(store.get("p", &file.id).await.unwrap_err()), Code::PermissionDenied);
    assert_eq!(store.sweep().await.unwrap(), 1);
    assert!(std::fs::read_dir(dir.path().join("blobs/files/p")).unwrap().next().is_none(), "blob deleted");
}

#[tokio::test]
async fn listing_pages_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(config(dir.path())).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(upload(&store, "p", &png(), None).await.id);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (page, token) = store.list("p", Some(2), None).await.unwrap();
    assert_eq!(page.iter().map(|f| f.id.clone()).collect::<Vec<_>>(), vec![ids[2].clone(), ids[1].clone()]);
    let (rest, token2) = store.list("p", Some(2), token.as_deref()).await.unwrap();
    assert_eq!(rest.iter().map(|f| f.id.clone()).collect::<Vec<_>>(), vec![ids[0].clone()]);
    assert!(token2.is_none());
}

/// Custom names are unique within a project and private to it: another project's name is as free as any
/// unused one (one global id space answered ALREADY_EXISTS, telling one key the names of another's files).
#[tokio::test]
async fn custom_names_are_unique_per_project() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(config(dir.path())).await.unwrap();
    let named = |p: &str| NewUpload { project: p.into(), name: Some("files/my-cat".into()), ..Default::default() };
    let session = store.start_upload(named("p")).await.unwrap();
    assert_eq!(session.file_id, "my-cat");
    assert_eq!(code(store.start_upload(named("p")).await.unwrap_err()), Code::AlreadyExists, "open upload");

    let q = store.start_upload(named("q")).await.unwrap();
    assert_eq!(q.file_id, "my-cat");
    store.append(&q, 0, chunks(&png())).await.unwrap();
    let q = store.upload_session(&q.id).await.unwrap().unwrap();
    let q_file = store.finalize(&q).await.unwrap();
    store.append(&session, 0, chunks(b"not an image")).await.unwrap();
    let session = store.upload_session(&session.id).await.unwrap().unwrap();
    let p_file = store.finalize(&session).await.unwrap();
    assert_eq!((q_file.state, p_file.state), (FileState::Active, FileState::Failed), "two files, one name");
    assert_eq!(code(store.start_upload(named("q")).await.unwrap_err()), Code::AlreadyExists, "stored file");

    store.delete("p", "my-cat").await.unwrap();
    assert_eq!(store.read_for_prompt("q", "my-cat", u64::MAX).await.unwrap().1, png(), "q's file untouched");
}

/// A data folder made before file ids were per project (no `glimpse_schema` table, `files.id` the primary key)
/// opens with its files in place.
#[tokio::test]
async fn a_database_from_before_per_project_names_is_migrated() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("glimpse.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query(
        "CREATE TABLE files (id TEXT PRIMARY KEY, project TEXT NOT NULL, display_name TEXT, mime_type TEXT NOT NULL, \
         size_bytes BIGINT NOT NULL, sha256 TEXT NOT NULL, create_ms BIGINT NOT NULL, update_ms BIGINT NOT NULL, \
         expire_ms BIGINT NOT NULL, state TEXT NOT NULL, error TEXT, blob_key TEXT)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let bytes = png();
    let expires = an_hour_from_now_ms();
    sqlx::query("INSERT INTO files VALUES ('old-cat', 'p', 'Cat', 'image/png', $1, 'x', 1, 1, $2, 'ACTIVE', NULL, 'p/old-cat')")
        .bind(bytes.len() as i64)
        .bind(expires)
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    std::fs::create_dir_all(dir.path().join("blobs/p")).unwrap();
    std::fs::write(dir.path().join("blobs/p/old-cat"), &bytes).unwrap();

    for _ in 0..2 {
        // Twice: the second open finds the migration applied.
        let store = FileStore::open(config(dir.path())).await.unwrap();
        let (file, read) = store.read_for_prompt("p", "old-cat", u64::MAX).await.unwrap();
        assert_eq!((file.display_name.as_deref(), read), (Some("Cat"), bytes.clone()));
        assert_eq!(code(store.get("q", "old-cat").await.unwrap_err()), Code::PermissionDenied);
    }
    let store = FileStore::open(config(dir.path())).await.unwrap();
    let named = NewUpload { project: "q".into(), name: Some("old-cat".into()), ..Default::default() };
    store.start_upload(named).await.expect("another project may use the name");
}

fn an_hour_from_now_ms() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    (now + Duration::from_secs(3600)).as_millis() as i64
}

#[tokio::test]
async fn interactions_are_per_project_deletable_and_expire() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.interaction_ttl = Duration::from_millis(300);
    let store = FileStore::open(cfg).await.unwrap();
    store.put_interaction("p", "v1_a", None, r#"{"id":"v1_a"}"#.into()).await.unwrap();
    store.put_interaction("p", "v1_b", Some("v1_a"), r#"{"id":"v1_b"}"#.into()).await.unwrap();
    let b = store.interaction("p", "v1_b").await.unwrap();
    assert_eq!((b.previous_id.as_deref(), b.body.as_str()), (Some("v1_a"), r#"{"id":"v1_b"}"#));
    assert_eq!(code(store.interaction("q", "v1_b").await.unwrap_err()), Code::NotFound, "other project");
    assert_eq!(code(store.delete_interaction("q", "v1_b").await.unwrap_err()), Code::NotFound);
    store.delete_interaction("p", "v1_b").await.unwrap();
    assert_eq!(code(store.interaction("p", "v1_b").await.unwrap_err()), Code::NotFound, "deleted");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(code(store.interaction("p", "v1_a").await.unwrap_err()), Code::NotFound, "expired");
    assert_eq!(store.sweep().await.unwrap(), 1);
}

/// Two requests carrying the chunk at the same offset (say, a retry that reached another replica): one is
/// recorded, the other refused, and the file holds the bytes once.
#[tokio::test]
async fn a_chunk_sent_twice_for_one_offset_is_recorded_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(config(dir.path())).await.unwrap();
    let bytes = png();
    let stale = store
        .start_upload(NewUpload { project: "p".into(), declared_size: Some(bytes.len() as u64), ..Default::default() })
        .await
        .unwrap();
    store.append(&stale, 0, chunks(&bytes[..100])).await.unwrap();
    // The second request read the session before the first was recorded.
    assert_eq!(code(store.append(&stale, 0, chunks(&bytes[..100])).await.unwrap_err()), Code::FailedPrecondition);
    let session = store.upload_session(&stale.id).await.unwrap().unwrap();
    assert_eq!(session.received, 100);
    store.append(&session, 100, chunks(&bytes[100..])).await.unwrap();
    let session = store.upload_session(&stale.id).await.unwrap().unwrap();
    let file = store.finalize(&session).await.unwrap();
    assert_eq!(store.read_for_prompt("p", &file.id, u64::MAX).await.unwrap().1, bytes);
    // A finalize sent again finds no upload to finalize.
    assert!(store.finalize(&session).await.is_err());
    assert!(std::fs::read_dir(dir.path().join("blobs/uploads")).map_or(true, |mut d| d.all(|e| std::fs::read_dir(e.unwrap().path()).unwrap().next().is_none())));
}

/// A finalize whose process was killed after it published the file and before it ended the upload leaves both
/// rows (re-created here from a copy of the upload's rows taken before the finalize, with the dead process's
/// claim on it). The client's retried finalize answers that file, ends the upload, and leaves the file's bytes.
#[tokio::test]
async fn a_finalize_killed_after_publishing_answers_the_published_file_when_sent_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(config(dir.path())).await.unwrap();
    let bytes = png();
    let session = appended(&store, "p", &bytes, None).await;

    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.path().join("glimpse.db").display())).await.unwrap();
    for table in ["uploads", "upload_chunks"] {
        let column = if table == "uploads" { "id" } else { "upload_id" };
        sqlx::query(&format!("CREATE TABLE saved_{table} AS SELECT * FROM {table} WHERE {column} = $1"))
            .bind(&session.id)
            .execute(&db)
            .await
            .unwrap();
    }
    let published = store.finalize(&session).await.unwrap();
    for table in ["uploads", "upload_chunks"] {
        sqlx::query(&format!("INSERT INTO {table} SELECT * FROM saved_{table}")).execute(&db).await.unwrap();
    }
    // The dead process's claim, older than its lease.
    sqlx::query("UPDATE uploads SET finalizing = 1 WHERE id = $1").bind(&session.id).execute(&db).await.unwrap();

    let again = store.finalize(&session).await.unwrap();
    assert_eq!((again.id.as_str(), again.state, again.sha256_base64.as_str()), (published.id.as_str(), FileState::Active, published.sha256_base64.as_str()));
    assert!(store.upload_session(&session.id).await.unwrap().is_none(), "the upload ended");
    assert_eq!(store.read_for_prompt("p", &published.id, u64::MAX).await.unwrap().1, bytes);
}
