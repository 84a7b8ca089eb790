//! Writes and DDL: RETURNING, ON CONFLICT, UPSERT, INSERT ... SELECT, DEFAULT VALUES, UPDATE
//! ... FROM, UNIQUE/CHECK constraints, SERIAL, ALTER TABLE, SHOW statements.

use super::{err, rows, run, run_args};
use crate::testing::MemTxn;
use serde_json::{Value, json};

#[test]
fn insert_variants_and_returning() {
    let mut t = MemTxn::with_database("db");
    run(&mut t, "CREATE TABLE t (id SERIAL PRIMARY KEY, v STRING DEFAULT 'dflt', n INT)");
    let r = run(&mut t, "INSERT INTO t DEFAULT VALUES RETURNING v, n");
    assert_eq!((r.rows.clone(), r.rows_affected, r.tag.as_str()), (vec![vec![json!("dflt"), Value::Null]], 1, "INSERT"));
    let r = run(&mut t, "INSERT INTO t (v, n) VALUES ('a', 1), ('b', 2) RETURNING id");
    let ids: Vec<i64> = r.rows.iter().map(|r| r[0].as_i64().unwrap_or(0)).collect();
    assert!(ids.iter().all(|i| *i > 0) && ids[0] != ids[1]);
    run(&mut t, "INSERT INTO t (v, n) SELECT v || '2', n * 10 FROM t WHERE n IS NOT NULL");
    assert_eq!(
        rows(&mut t, "SELECT v, n FROM t WHERE n >= 10 ORDER BY n"),
        vec![vec![json!("a2"), json!(10)], vec![json!("b2"), json!(20)]]
    );
    assert_eq!(rows(&mut t, "SELECT unique_rowid() > 0"), vec![vec![json!(true)]]);
    let r = run(&mut t, "UPDATE t SET n = n + 1 WHERE n >= 10 RETURNING n");
    assert_eq!((r.rows_affected, r.rows.len()), (2, 2));
    let r = run(&mut t, "DELETE FROM t WHERE n > 10 RETURNING v");
    assert_eq!(r.rows.len(), 2);
    assert_eq!(rows(&mut t, "SELECT count(*) FROM t"), vec![vec![json!(3)]]);
}

#[test]
fn on_conflict_and_upsert() {
    let mut t = MemTxn::with_database("db");
    run(&mut t, "CREATE TABLE kv (k INT PRIMARY KEY, v STRING, hits INT DEFAULT 0)");
    run(&mut t, "INSERT INTO kv (k, v) VALUES (1, 'a')");
    assert_eq!(run(&mut t, "INSERT INTO kv (k, v) VALUES (1, 'z'), (2, 'b') ON CONFLICT DO NOTHING").rows_affected, 1);
    let r = run(
        &mut t,
        "INSERT INTO kv (k, v) VALUES (1, 'new') ON CONFLICT (k) DO UPDATE SET v = excluded.v, hits = kv.hits + 1 RETURNING k, v, hits",
    );
    assert_eq!(r.rows, vec![vec![json!(1), json!("new"), json!(1)]]);
    run(&mut t, "INSERT INTO kv (k, v) VALUES (1, 'skip') ON CONFLICT (k) DO UPDATE SET v = excluded.v WHERE kv.hits > 5");
    assert_eq!(rows(&mut t, "SELECT v FROM kv WHERE k = 1"), vec![vec![json!("new")]]);
    assert_eq!(err(&mut t, "INSERT INTO kv VALUES (1, 'x') ON CONFLICT (v) DO NOTHING"), "42P10");
    run(&mut t, "UPSERT INTO kv (k, v) VALUES (2, 'B'), (3, 'c')");
    assert_eq!(
        rows(&mut t, "SELECT k, v, hits FROM kv ORDER BY k"),
        vec![vec![json!(1), json!("new"), json!(1)], vec![json!(2), json!("B"), json!(0)], vec![json!(3), json!("c"), json!(0)]]
    );
    assert_eq!(err(&mut t, "UPSERT INTO nope VALUES (1)"), "42P01");
}

#[test]
fn update_from_and_delete_using() {
    let mut t = MemTxn::with_database("db");
    run(&mut t, "CREATE TABLE acct (id INT PRIMARY KEY, bal INT)");
    run(&mut t, "CREATE TABLE delta (id INT PRIMARY KEY, amt INT)");
    run(&mut t, "INSERT INTO acct VALUES (1, 10), (2, 20), (3, 30)");
    run(&mut t, "INSERT INTO delta VALUES (1, 5), (3, -30)");
    let r = run(&mut t, "UPDATE acct SET bal = acct.bal + d.amt FROM delta d WHERE d.id = acct.id RETURNING acct.id, bal");
    assert_eq!(r.rows, vec![vec![json!(1), json!(15)], vec![json!(3), json!(0)]]);
    assert_eq!(run(&mut t, "DELETE FROM acct USING delta WHERE delta.id = acct.id AND acct.bal = 0").rows_affected, 1);
    assert_eq!(rows(&mut t, "SELECT id, bal FROM acct"), vec![vec![json!(1), json!(15)], vec![json!(2), json!(20)]]);
}

#[test]
fn unique_and_check_constraints() {
    let mut t = MemTxn::with_database("db");
    run(
        &mut t,
        "CREATE TABLE u (id INT PRIMARY KEY, email STRING UNIQUE, age INT CHECK (age >= 0), a INT, b INT, UNIQUE (a, b), CONSTRAINT small CHECK (a < 100))",
    );
    run(&mut t, "INSERT INTO u VALUES (1, 'x@y', 5, 1, 1), (2, NULL, NULL, 1, NULL), (3, NULL, 1, 1, NULL)");
    let e = run_args(&mut t, "INSERT INTO u VALUES (4, 'x@y', 1, 2, 2)", vec![]).unwrap_err();
    assert_eq!((e.code(), e.to_string().as_str()), ("23505", "duplicate key value violates unique constraint \"u_email_key\""));
    let e = run_args(&mut t, "INSERT INTO u VALUES (4, 'z', -1, 2, 2)", vec![]).unwrap_err();
    assert_eq!((e.code(), e.to_string().as_str()), ("23514", "new row for relation \"u\" violates check constraint \"u_age_check\""));
    assert_eq!(err(&mut t, "INSERT INTO u VALUES (4, 'z', 1, 200, 2)"), "23514");
    assert_eq!(err(&mut t, "INSERT INTO u VALUES (4, 'z', 1, 1, 1)"), "23505");
    assert_eq!(err(&mut t, "UPDATE u SET email = 'x@y' WHERE id = 2"), "23505");
    // Changing the unique value frees the old one.
    run(&mut t, "UPDATE u SET email = 'new@y' WHERE id = 1");
    run(&mut t, "INSERT INTO u VALUES (4, 'x@y', 1, 2, 2)");
    run(&mut t, "DELETE FROM u WHERE id = 4");
    run(&mut t, "INSERT INTO u VALUES (5, 'x@y', 1, 2, 2)");
    run(&mut t, "UPDATE u SET id = 6 WHERE id = 5");
    assert_eq!(rows(&mut t, "SELECT id FROM u WHERE email = 'x@y'"), vec![vec![json!(6)]]);
    let desc = t.tables.get(&("db".to_string(), "u".to_string())).cloned().unwrap_or_else(|| panic!("no table"));
    assert_eq!(desc.indexes.iter().map(|i| (i.id, i.name.as_str())).collect::<Vec<_>>(), vec![(2, "u_email_key"), (3, "u_a_b_key")]);
    // Index entries live inside the table's span.
    let (start, end) = meridian_types::keys::table_span(desc.id);
    assert!(t.data.keys().all(|k| *k >= start && *k < end));
}

#[test]
fn alter_table_and_show() {
    let mut t = MemTxn::with_database("db");
    run(&mut t, "CREATE TABLE p (id INT PRIMARY KEY, name STRING)");
    run(&mut t, "INSERT INTO p VALUES (1, 'a'), (2, 'b')");
    run(&mut t, "ALTER TABLE p ADD COLUMN score INT NOT NULL DEFAULT 7");
    assert_eq!(rows(&mut t, "SELECT id, score FROM p"), vec![vec![json!(1), json!(7)], vec![json!(2), json!(7)]]);
    run(&mut t, "INSERT INTO p (id, name) VALUES (3, 'c')");
    run(&mut t, "UPDATE p SET score = 9 WHERE id = 1");
    assert_eq!(rows(&mut t, "SELECT sum(score) FROM p"), vec![vec![json!(23)]]);
    assert_eq!(err(&mut t, "ALTER TABLE p ADD COLUMN req INT NOT NULL"), "23502");
    assert_eq!(err(&mut t, "ALTER TABLE p ADD COLUMN name INT"), "42701");
    run(&mut t, "ALTER TABLE p ADD COLUMN note STRING CHECK (note <> '')");
    run(&mut t, "ALTER TABLE p RENAME COLUMN note TO remark");
    assert_eq!(err(&mut t, "UPDATE p SET remark = '' WHERE id = 1"), "23514");
    run(&mut t, "ALTER TABLE p DROP COLUMN name");
    assert_eq!(err(&mut t, "SELECT name FROM p"), "42703");
    assert_eq!(err(&mut t, "ALTER TABLE p DROP COLUMN id"), "0A000");
    run(&mut t, "ALTER TABLE p RENAME TO q");
    assert_eq!(err(&mut t, "SELECT * FROM p"), "42P01");
    let desc = t.tables.get(&("db".to_string(), "q".to_string())).cloned().unwrap_or_else(|| panic!("no table"));
    assert!(desc.version >= 5);
    let cols = rows(&mut t, "SHOW COLUMNS FROM q");
    assert_eq!(cols[1], vec![json!("score"), json!("INT8"), json!(false), json!("7")]);
    let create = rows(&mut t, "SHOW CREATE TABLE q");
    let text = create[0][1].as_str().unwrap_or_default().to_string();
    assert!(text.contains("CONSTRAINT q_pkey PRIMARY KEY (id)") && text.contains("CHECK (remark <> '')"), "{text}");
    // SHOW CREATE TABLE output re-creates an equivalent table.
    run(&mut t, &text.replace("CREATE TABLE q", "CREATE TABLE q2"));
    assert_eq!(rows(&mut t, "SHOW TABLES"), vec![vec![json!("q")], vec![json!("q2")]]);
    assert_eq!(run(&mut t, "SELECT * FROM q").rows.len(), 3);
}

#[test]
fn postgres_style_error_messages() {
    let mut t = MemTxn::with_database("db");
    run(&mut t, "CREATE TABLE e (id INT PRIMARY KEY)");
    let msg = |t: &mut MemTxn, sql: &str| run_args(t, sql, vec![]).unwrap_err().to_string();
    assert_eq!(msg(&mut t, "SELECT * FROM x"), "relation \"x\" does not exist");
    assert_eq!(msg(&mut t, "SELECT x FROM e"), "column \"x\" does not exist");
    assert_eq!(msg(&mut t, "SELEC 1"), "syntax error at or near \"SELEC\"");
    assert_eq!(msg(&mut t, "SELECT 1/0"), "division by zero");
    assert_eq!(msg(&mut t, "SELECT 9223372036854775807 + 1"), "integer out of range");
    assert_eq!(msg(&mut t, "SELECT 'abc'::int4"), "invalid input syntax for type integer: \"abc\"");
}
