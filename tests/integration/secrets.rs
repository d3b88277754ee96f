//! Secrets in machines' connection settings: sealed in the database with the data key, never
//! returned by the API, readable in clear only through `Connection::secret`, and a wrong data
//! key stops makrcave with a clear reason. The database is read directly, with SQL, as someone
//! who got hold of it (or of a backup) would.

use makrcave::domain::secrets::{ACCESS_CODE, API_KEY, MASK};
use serde_json::{json, Value};
use sqlx::{Connection as _, Row};

use crate::common::{database_kind, DatabaseKind, TestApp, TestOptions};

const OCTOPRINT_KEY: &str = "OCTO-4f1c9a7e2b6d8e0a";
const BAMBU_CODE: &str = "BAMBU-27182818";

/// The `connection` column of a machine, as stored.
async fn stored_connection(t: &TestApp, id: &str) -> Value {
    let sql = "SELECT connection FROM equipment WHERE id = $1";
    let text: String = match database_kind() {
        DatabaseKind::Sqlite => {
            let mut db = sqlx::SqliteConnection::connect(&t.database.url).await.expect("open the SQLite file");
            sqlx::query(sql).bind(id).fetch_one(&mut db).await.expect("the machine's row").get(0)
        }
        DatabaseKind::Postgres => {
            let mut db = sqlx::PgConnection::connect(&t.database.url).await.expect("connect to the test database");
            sqlx::query(sql).bind(id).fetch_one(&mut db).await.expect("the machine's row").get(0)
        }
    };
    serde_json::from_str(&text).expect("the column holds JSON")
}

/// Replaces a machine's `connection` column behind makrcave's back (a row written before
/// secrets were sealed).
async fn write_connection(t: &TestApp, id: &str, connection: &Value) {
    let sql = "UPDATE equipment SET connection = $1 WHERE id = $2";
    let text = connection.to_string();
    match database_kind() {
        DatabaseKind::Sqlite => {
            let mut db = sqlx::SqliteConnection::connect(&t.database.url).await.expect("open the SQLite file");
            sqlx::query(sql).bind(text).bind(id).execute(&mut db).await.expect("update");
        }
        DatabaseKind::Postgres => {
            let mut db = sqlx::PgConnection::connect(&t.database.url).await.expect("connect to the test database");
            sqlx::query(sql).bind(text).bind(id).execute(&mut db).await.expect("update");
        }
    }
}

/// Every `table.column` of the database whose text contains `needle`: each column of each
/// table, read as text with SQL.
async fn columns_containing(t: &TestApp, needle: &str) -> Vec<String> {
    let pattern = format!("%{needle}%");
    let mut found = Vec::new();
    match database_kind() {
        DatabaseKind::Sqlite => {
            let mut db = sqlx::SqliteConnection::connect(&t.database.url).await.expect("open the SQLite file");
            let columns: Vec<(String, String)> = sqlx::query_as(
                "SELECT m.name, c.name FROM sqlite_master m JOIN pragma_table_info(m.name) c WHERE m.type = 'table'",
            )
            .fetch_all(&mut db)
            .await
            .expect("list the columns");
            assert!(columns.iter().any(|(table, _)| table == "equipment"), "the schema was read: {columns:?}");
            for (table, column) in columns {
                let sql = format!("SELECT count(*) FROM \"{table}\" WHERE CAST(\"{column}\" AS TEXT) LIKE $1");
                let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .bind(&pattern)
                    .fetch_one(&mut db)
                    .await
                    .expect("scan a column");
                if n > 0 {
                    found.push(format!("{table}.{column}"));
                }
            }
        }
        DatabaseKind::Postgres => {
            let mut db = sqlx::PgConnection::connect(&t.database.url).await.expect("connect to the test database");
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::text FROM information_schema.tables
                 WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
            )
            .fetch_all(&mut db)
            .await
            .expect("list the tables");
            assert!(tables.iter().any(|t| t == "equipment"), "the schema was read: {tables:?}");
            for table in tables {
                // A whole row as text covers every column at once.
                let sql = format!("SELECT count(*) FROM \"{table}\" AS r WHERE r::text LIKE $1");
                let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .bind(&pattern)
                    .fetch_one(&mut db)
                    .await
                    .expect("scan a table");
                if n > 0 {
                    found.push(table);
                }
            }
        }
    }
    found
}

/// The SQLite files themselves (the database and its write-ahead log) hold no trace of
/// `needle`: not in a table, an index or a freed page.
fn sqlite_files_contain(t: &TestApp, needle: &str) -> bool {
    let db = t.database.url.strip_prefix("sqlite://").expect("a SQLite URL");
    [db.to_string(), format!("{db}-wal")]
        .iter()
        .filter_map(|path| std::fs::read(path).ok())
        .any(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
}

/// The clear value of a secret of a stored machine, through the one function that gives it.
async fn clear_secret(t: &TestApp, id: &str, field: &str) -> Option<String> {
    let state = t.app().state();
    let record = state.store.get_equipment(id).await.expect("read").expect("the machine");
    record.connection.secret(&state.data_key, field).expect("the data key opens it")
}

#[actix_web::test]
async fn secrets_are_sealed_in_the_database_and_never_returned() {
    let t = TestApp::spawn().await;
    t.makerspace("s").await;
    let root = t.super_admin();
    let (status, created) = t
        .post(
            "/api/v1/makerspaces/s/equipment",
            &root,
            json!({"id": "op1", "name": "Prusa via OctoPrint", "type": "3d_printer",
                   "connection": {"kind": "octoprint", "url": "http://octo:5000", "api_key": OCTOPRINT_KEY}}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["connection"],
        json!({"kind": "octoprint", "url": "http://octo:5000", "api_key": MASK, "auto_connect": true})
    );
    let (status, created) = t
        .post(
            "/api/v1/makerspaces/s/equipment",
            &root,
            json!({"id": "x1c", "name": "Bambu X1C", "type": "3d_printer",
                   "connection": {"kind": "bambu", "host": "127.0.0.1", "port": 9, "serial": "01S00C123456789",
                                  "access_code": BAMBU_CODE, "fingerprint_sha256": "00".repeat(32)}}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["connection"]["access_code"], MASK);

    // Read back, one by one and listed: masked.
    let (_, one) = t.get("/api/v1/makerspaces/s/equipment/op1", Some(&root)).await;
    assert_eq!(one["connection"]["api_key"], MASK, "{one}");
    let (_, all) = t.get("/api/v1/makerspaces/s/equipment", Some(&root)).await;
    let listed = all.to_string();
    assert!(!listed.contains(OCTOPRINT_KEY) && !listed.contains(BAMBU_CODE), "{listed}");

    // In the database: the self-describing sealed form, and the clear value nowhere.
    let stored = stored_connection(&t, "op1").await;
    assert_eq!((&stored["kind"], &stored["url"]), (&json!("octoprint"), &json!("http://octo:5000")), "{stored}");
    let enc = stored["api_key"]["enc"].as_str().unwrap_or_default();
    assert!(enc.starts_with("v1:"), "sealed: {stored}");
    assert_eq!(stored_connection(&t, "x1c").await["access_code"]["enc"].as_str().map(|e| &e[..3]), Some("v1:"));
    for secret in [OCTOPRINT_KEY, BAMBU_CODE] {
        assert_eq!(columns_containing(&t, secret).await, Vec::<String>::new(), "{secret} in clear");
        if database_kind() == DatabaseKind::Sqlite {
            assert!(!sqlite_files_contain(&t, secret), "{secret} in the SQLite files");
        }
    }

    // The one function gives the clear values back.
    assert_eq!(clear_secret(&t, "op1", API_KEY).await.as_deref(), Some(OCTOPRINT_KEY));
    assert_eq!(clear_secret(&t, "x1c", ACCESS_CODE).await.as_deref(), Some(BAMBU_CODE));

    // An edit that sends the masked key back keeps it (sealed with a fresh nonce); a client
    // cannot hand in a sealed value of its own.
    let (status, body) = t
        .put(
            "/api/v1/makerspaces/s/equipment/op1",
            &root,
            json!({"connection": {"kind": "octoprint", "url": "http://octo:5001", "api_key": MASK}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(clear_secret(&t, "op1", API_KEY).await.as_deref(), Some(OCTOPRINT_KEY));
    let (status, body) = t
        .put(
            "/api/v1/makerspaces/s/equipment/op1",
            &root,
            json!({"connection": {"kind": "octoprint", "url": "http://octo:5001", "api_key": stored["api_key"]}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(columns_containing(&t, OCTOPRINT_KEY).await, Vec::<String>::new());
    t.stop().await;
}

#[actix_web::test]
async fn a_clear_secret_stored_before_sealing_is_read_and_sealed_when_next_written() {
    let mut t = TestApp::spawn().await;
    t.makerspace("s").await;
    let root = t.super_admin();
    t.machine("s", "old", json!({"connection": {"kind": "octoprint", "url": "http://octo:5000"}})).await;
    let legacy = "LEGACY-clear-9d8c7b6a";
    write_connection(&t, "old", &json!({"kind": "octoprint", "url": "http://octo:5000", "api_key": legacy})).await;
    assert!(!columns_containing(&t, legacy).await.is_empty(), "the scan sees a clear value");
    // Restarted on that database: the start-up check accepts clear values.
    t.restart().await;

    let (_, one) = t.get("/api/v1/makerspaces/s/equipment/old", Some(&root)).await;
    assert_eq!(one["connection"]["api_key"], MASK, "{one}");
    assert_eq!(clear_secret(&t, "old", API_KEY).await.as_deref(), Some(legacy));

    // Any edit writes the record again, and the legacy value is sealed then.
    let (status, body) = t.put("/api/v1/makerspaces/s/equipment/old", &root, json!({"name": "Renamed"})).await;
    assert_eq!(status, 200, "{body}");
    let stored = stored_connection(&t, "old").await;
    assert!(stored["api_key"]["enc"].as_str().unwrap_or_default().starts_with("v1:"), "{stored}");
    assert_eq!(columns_containing(&t, legacy).await, Vec::<String>::new());
    assert_eq!(clear_secret(&t, "old", API_KEY).await.as_deref(), Some(legacy));
    t.stop().await;
}

#[actix_web::test]
async fn a_wrong_data_key_stops_makrcave_with_a_clear_reason() {
    let first = "the-first-data-key-0123456789";
    let options = TestOptions { data_key: Some(first.into()), ..Default::default() };
    let mut t = TestApp::spawn_with(options).await;
    t.makerspace("s").await;
    t.machine(
        "s",
        "op1",
        json!({"connection": {"kind": "octoprint", "url": "http://octo:5000", "api_key": OCTOPRINT_KEY}}),
    )
    .await;

    t.options.data_key = Some("another-data-key-0123456789".into());
    let err = match t.try_restart().await {
        Ok(()) => panic!("makrcave started with a data key that does not open its secrets"),
        Err(err) => err.to_string(),
    };
    for words in ["data key", "\"op1\"", "connection.api_key", "--data-key"] {
        assert!(err.contains(words), "the reason names {words}: {err}");
    }
    assert!(!err.contains(OCTOPRINT_KEY), "{err}");

    // With its own key it starts again, and the secret is intact.
    t.options.data_key = Some(first.into());
    t.restart().await;
    assert_eq!(clear_secret(&t, "op1", API_KEY).await.as_deref(), Some(OCTOPRINT_KEY));
    t.stop().await;
}
