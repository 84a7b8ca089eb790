//! Correlated subqueries: scalar, EXISTS, IN/NOT IN, ANY/ALL in WHERE, SELECT lists, HAVING,
//! ORDER BY, JOIN ON, aggregates, nested levels, UPDATE and DELETE; NULL semantics, errors,
//! caching, limits, EXPLAIN.

use super::{err, rows, run};
use crate::testing::MemTxn;
use crate::{ExecOptions, execute};
use futures::executor::block_on;
use serde_json::{Value, json};

fn setup() -> MemTxn {
    let mut t = MemTxn::with_database("db");
    run(&mut t, "CREATE TABLE p (id INT8 PRIMARY KEY, cat TEXT, price INT8)");
    run(&mut t, "CREATE TABLE q (id INT8 PRIMARY KEY, pid INT8, qty INT8)");
    run(&mut t, "INSERT INTO p VALUES (1, 'a', 10), (2, 'a', 20), (3, 'b', 30), (4, 'c', NULL), (5, 'b', 5)");
    run(&mut t, "INSERT INTO q VALUES (1, 1, 2), (2, 1, 3), (3, 3, 1), (4, NULL, 9), (5, 9, 1)");
    t
}

fn ids(r: Vec<Vec<Value>>) -> Vec<i64> {
    r.into_iter().map(|r| r[0].as_i64().unwrap_or(-999)).collect()
}

#[test]
fn exists_and_not_exists() {
    let mut t = setup();
    assert_eq!(ids(rows(&mut t, "SELECT id FROM p WHERE EXISTS (SELECT 1 FROM q WHERE q.pid = p.id) ORDER BY id")), [1, 3]);
    assert_eq!(ids(rows(&mut t, "SELECT id FROM p WHERE NOT EXISTS (SELECT * FROM q WHERE pid = p.id) ORDER BY id")), [2, 4, 5]);
    // An unqualified outer name, a condition on the outer row only, and EXISTS in the select list.
    assert_eq!(ids(rows(&mut t, "SELECT id FROM p WHERE EXISTS (SELECT 1 FROM q WHERE qty > price) ORDER BY id")), [5]);
    assert_eq!(ids(rows(&mut t, "SELECT id FROM p WHERE EXISTS (SELECT 1 FROM q WHERE p.price > 25) ORDER BY id")), [3]);
    assert_eq!(
        rows(&mut t, "SELECT id, EXISTS (SELECT 1 FROM q WHERE q.pid = p.id AND q.qty > 2) FROM p WHERE id <= 3 ORDER BY id"),
        vec![vec![json!(1), json!(true)], vec![json!(2), json!(false)], vec![json!(3), json!(false)]]
    );
}

#[test]
fn scalar_subqueries_null_on_no_rows_and_21000_on_several() {
    let mut t = setup();
    let r = run(&mut t, "SELECT id, (SELECT sum(qty) FROM q WHERE q.pid = p.id) AS total FROM p ORDER BY id");
    assert_eq!((r.columns[1].name.as_str(), r.columns[1].ty.as_str()), ("total", "INT8"));
    assert_eq!(ids(r.rows.iter().map(|r| vec![r[1].clone()]).collect()), [5, -999, 1, -999, -999]);
    assert_eq!(
        rows(&mut t, "SELECT id, (SELECT qty FROM q WHERE q.pid = p.id) FROM p WHERE id > 1 ORDER BY id"),
        vec![vec![json!(2), Value::Null], vec![json!(3), json!(1)], vec![json!(4), Value::Null], vec![json!(5), Value::Null]]
    );
    let e = super::run_args(&mut t, "SELECT id, (SELECT qty FROM q WHERE q.pid = p.id) FROM p", vec![]).unwrap_err();
    assert_eq!((e.code(), e.to_string().as_str()), ("21000", "more than one row returned by a subquery used as an expression"));
    // A CASE branch not taken never runs its subquery, so the row with two matches is fine.
    assert_eq!(
        ids(rows(
            &mut t,
            "SELECT CASE WHEN id > 1 THEN (SELECT qty FROM q WHERE q.pid = p.id) ELSE -1 END FROM p WHERE id < 4 ORDER BY id"
        )),
        [-1, -999, 1]
    );
    assert_eq!(ids(rows(&mut t, "SELECT id FROM p WHERE price > (SELECT avg(price) FROM p p2 WHERE p2.cat = p.cat) ORDER BY id")), [2, 3]);
    // With ORDER BY ... LIMIT the select list runs for the returned rows only.
    assert_eq!(
        rows(&mut t, "SELECT (SELECT qty FROM q WHERE q.pid = p.id), id FROM p ORDER BY id DESC LIMIT 3"),
        vec![vec![Value::Null, json!(5)], vec![Value::Null, json!(4)], vec![json!(1), json!(3)]]
    );
    assert_eq!(
        rows(
            &mut t,
            "SELECT cat, (SELECT count(*) FROM p p2 WHERE p2.cat = p.cat), sum(price) FROM p GROUP BY cat ORDER BY sum(price) DESC NULLS LAST LIMIT 1"
        ),
        vec![vec![json!("b"), json!(2), json!(35)]]
    );
    assert_eq!(err(&mut t, "SELECT (SELECT id, qty FROM q WHERE q.pid = p.id) FROM p"), "42601");
}

#[test]
fn in_and_not_in_follow_null_semantics() {
    let mut t = MemTxn::with_database("db");
    run(&mut t, "CREATE TABLE o (id INT8 PRIMARY KEY, x INT8)");
    run(&mut t, "CREATE TABLE i (id INT8 PRIMARY KEY, oid INT8, y INT8)");
    run(&mut t, "INSERT INTO o VALUES (1, 1), (2, 2), (3, NULL), (4, 4), (5, NULL)");
    // o 1: {1, 2}; o 2: {1, NULL}; o 3: {7}; o 4: {} ; o 5: {}
    run(&mut t, "INSERT INTO i VALUES (1, 1, 1), (2, 1, 2), (3, 2, 1), (4, 2, NULL), (5, 3, 7)");
    let q = |t: &mut MemTxn, op: &str| {
        rows(t, &format!("SELECT id, x {op} (SELECT y FROM i WHERE i.oid = o.id) FROM o ORDER BY id"))
            .into_iter()
            .map(|r| r[1].clone())
            .collect::<Vec<_>>()
    };
    let (tr, fa, nu) = (json!(true), json!(false), Value::Null);
    assert_eq!(q(&mut t, "IN"), [tr.clone(), nu.clone(), nu.clone(), fa.clone(), fa.clone()]);
    assert_eq!(q(&mut t, "NOT IN"), [fa.clone(), nu.clone(), nu.clone(), tr.clone(), tr.clone()]);
    assert_eq!(q(&mut t, "= ANY"), q(&mut t, "IN"));
    assert_eq!(q(&mut t, "<> ALL"), q(&mut t, "NOT IN"));
    assert_eq!(q(&mut t, "> ANY"), [fa.clone(), tr.clone(), nu.clone(), fa.clone(), fa.clone()]);
    assert_eq!(q(&mut t, "> SOME"), q(&mut t, "> ANY"));
    assert_eq!(q(&mut t, ">= ALL"), [fa.clone(), nu.clone(), nu.clone(), tr.clone(), tr.clone()]);
    assert_eq!(ids(rows(&mut t, "SELECT id FROM o WHERE x NOT IN (SELECT y FROM i WHERE i.oid = o.id) ORDER BY id")), [4, 5]);
    assert_eq!(ids(rows(&mut t, "SELECT id FROM o WHERE id IN (SELECT oid FROM i WHERE i.y = o.x) ORDER BY id")), [1]);
    // Uncorrelated ANY/ALL run once, with the same semantics.
    assert_eq!(
        rows(
            &mut t,
            "SELECT 2 > ALL (SELECT y FROM i WHERE y < 2), 3 > ALL (SELECT y FROM i WHERE y < 7 OR y IS NULL), 1 = ANY (SELECT y FROM i WHERE false)"
        ),
        vec![vec![tr.clone(), nu.clone(), fa.clone()]]
    );
    assert_eq!(rows(&mut t, "SELECT NULL::INT8 >= ALL (SELECT y FROM i WHERE false)"), vec![vec![tr]]);
    // A string literal on the left is read as the subquery's type.
    assert_eq!(ids(rows(&mut t, "SELECT id FROM o WHERE '2' IN (SELECT y FROM i WHERE i.oid = o.id)")), [1]);
    assert_eq!(err(&mut t, "SELECT id FROM o WHERE x IN (SELECT y, oid FROM i WHERE i.oid = o.id)"), "42601");
    assert_eq!(err(&mut t, "SELECT id FROM o WHERE x LIKE ANY (SELECT 'a')"), "0A000");
}

#[test]
fn having_order_by_aggregates_and_group_checks() {
    let mut t = setup();
    assert_eq!(
        rows(&mut t, "SELECT cat, count(*) FROM p GROUP BY cat HAVING EXISTS (SELECT 1 FROM p p2 WHERE p2.cat = p.cat AND p2.price > 25)"),
        vec![vec![json!("b"), json!(2)]]
    );
    assert_eq!(
        rows(&mut t, "SELECT cat, (SELECT count(*) FROM p p2 WHERE p2.cat = p.cat AND p2.price >= 10) FROM p GROUP BY cat ORDER BY cat"),
        vec![vec![json!("a"), json!(2)], vec![json!("b"), json!(1)], vec![json!("c"), json!(0)]]
    );
    assert_eq!(ids(rows(&mut t, "SELECT id FROM p ORDER BY (SELECT count(*) FROM q WHERE q.pid = p.id) DESC, id LIMIT 3")), [1, 3, 2]);
    assert_eq!(rows(&mut t, "SELECT sum((SELECT count(*) FROM q WHERE q.pid = p.id)) FROM p"), vec![vec![json!(3)]]);
    assert_eq!(
        rows(
            &mut t,
            "SELECT (SELECT count(*) FROM q WHERE q.pid = p.id), count(*) FROM p GROUP BY (SELECT count(*) FROM q WHERE q.pid = p.id) ORDER BY 1"
        ),
        vec![vec![json!(0), json!(3)], vec![json!(1), json!(1)], vec![json!(2), json!(1)]]
    );
    let e = super::run_args(&mut t, "SELECT cat, (SELECT count(*) FROM q WHERE q.pid = p.id) FROM p GROUP BY cat", vec![]).unwrap_err();
    assert_eq!((e.code(), e.to_string().as_str()), ("42803", "subquery uses ungrouped column \"p.id\" from outer query"));
    // An aggregate over outer columns only belongs to the outer query in PostgreSQL.
    assert_eq!(err(&mut t, "SELECT (SELECT max(p.price) FROM q LIMIT 1) FROM p"), "0A000");
    assert_eq!(rows(&mut t, "SELECT (SELECT sum(q.qty * p.price) FROM q WHERE q.pid = p.id) FROM p WHERE id = 1"), vec![vec![json!(50)]]);
}

#[test]
fn scopes_nest_shadow_and_report_unknown_names() {
    let mut t = setup();
    // Two levels out: the innermost subquery uses p (the outermost query).
    assert_eq!(
        ids(rows(
            &mut t,
            "SELECT id FROM p WHERE EXISTS (SELECT 1 FROM q WHERE q.qty < 3 AND EXISTS (SELECT 1 FROM p p3 WHERE p3.id = q.pid AND p3.cat = p.cat)) ORDER BY id"
        )),
        [1, 2, 3, 5]
    );
    // The inner `id` is q.id; `p.id` is the outer one.
    assert_eq!(ids(rows(&mut t, "SELECT id FROM p WHERE EXISTS (SELECT 1 FROM q WHERE id = p.id + 3) ORDER BY id")), [1, 2]);
    // Derived tables, VALUES and generate_series inside a subquery see the outer query.
    assert_eq!(
        rows(&mut t, "SELECT id, (SELECT max(v) FROM (SELECT qty AS v FROM q WHERE q.pid = p.id) s) FROM p WHERE id < 3 ORDER BY id"),
        vec![vec![json!(1), json!(3)], vec![json!(2), Value::Null]]
    );
    assert_eq!(
        rows(&mut t, "SELECT id, (SELECT max(v) FROM (VALUES (p.id), (p.price)) AS x(v)) FROM p WHERE id < 3 ORDER BY id"),
        vec![vec![json!(1), json!(10)], vec![json!(2), json!(20)]]
    );
    assert_eq!(ids(rows(&mut t, "SELECT (SELECT sum(g) FROM generate_series(1, p.id) AS g) FROM p ORDER BY id")), [1, 3, 6, 10, 15]);
    assert_eq!(err(&mut t, "SELECT id FROM p WHERE EXISTS (SELECT 1 FROM q WHERE q.nope = p.id)"), "42703");
    assert_eq!(err(&mut t, "SELECT id FROM p WHERE EXISTS (SELECT 1 FROM q WHERE nope = p.id)"), "42703");
    assert_eq!(err(&mut t, "SELECT id FROM p WHERE EXISTS (SELECT 1 FROM q WHERE q.pid = z.id)"), "42P01");
    assert_eq!(err(&mut t, "SELECT id FROM p WHERE EXISTS (SELECT 1 FROM q WHERE q.pid = p.nope)"), "42703");
    assert_eq!(err(&mut t, "SELECT id FROM p, p p2 WHERE EXISTS (SELECT 1 FROM q WHERE q.pid = cat)"), "42702");
}

#[test]
fn joins_with_correlated_conditions() {
    let mut t = setup();
    assert_eq!(
        rows(
            &mut t,
            "SELECT p.id, q.id FROM p JOIN q ON q.pid = p.id AND q.qty = (SELECT max(qty) FROM q q2 WHERE q2.pid = p.id) ORDER BY 1"
        ),
        vec![vec![json!(1), json!(2)], vec![json!(3), json!(3)]]
    );
    assert_eq!(
        ids(rows(&mut t, "SELECT p.id FROM p JOIN q ON q.pid = p.id WHERE q.qty < (SELECT max(qty) FROM q q2 WHERE q2.pid = p.id)")),
        [1]
    );
    assert_eq!(err(&mut t, "SELECT 1 FROM p LEFT JOIN q ON EXISTS (SELECT 1 FROM q q2 WHERE q2.id = p.id)"), "0A000");
}

#[test]
fn results_are_cached_per_distinct_outer_value() {
    let mut t = setup();
    run(&mut t, "CREATE TABLE big (k INT8 PRIMARY KEY, pid INT8)");
    run(&mut t, "INSERT INTO big SELECT g, g % 5 + 1 FROM generate_series(1, 1000) AS g");
    let (gets, scans) = (t.gets, t.scans);
    let r = rows(&mut t, "SELECT count(*) FROM big WHERE (SELECT cat FROM p WHERE p.id = big.pid) = 'a'");
    assert_eq!(r, vec![vec![json!(400)]]);
    // Five distinct outer values: five point gets, and one paged scan of big.
    assert_eq!((t.gets - gets, t.scans - scans), (5, 2));
    // An uncorrelated subquery still runs once, while planning.
    let scans = t.scans;
    assert_eq!(rows(&mut t, "SELECT count(*) FROM big WHERE pid = (SELECT max(id) FROM p)"), vec![vec![json!(200)]]);
    assert_eq!(t.scans - scans, 2 + 1);
}

#[test]
fn limits_bound_each_run_and_the_cache() {
    let mut t = setup();
    run(&mut t, "CREATE TABLE big (k INT8 PRIMARY KEY, v INT8)");
    run(&mut t, "INSERT INTO big SELECT g, g FROM generate_series(1, 300) AS g");
    let opts = ExecOptions { max_result_rows: 100, ..ExecOptions::default() };
    let exec = |t: &mut MemTxn, sql: &str| block_on(execute(t, "db", &[(sql.to_string(), vec![])], &opts));
    // 300 distinct outer values overflow the cache budget: it is emptied, results stay right.
    let r = exec(&mut t, "SELECT count(*) FROM big b WHERE (SELECT v FROM big b2 WHERE b2.k = b.k) = b.v").unwrap();
    assert_eq!(r[0].rows, vec![vec![json!(300)]]);
    // One run over the limit fails with 54000.
    let e = exec(&mut t, "SELECT id FROM p WHERE p.id IN (SELECT k FROM big WHERE big.v > p.id)").unwrap_err();
    assert_eq!(e.code(), "54000");
}

#[test]
fn update_and_delete_see_the_table_as_before_the_statement() {
    let mut t = MemTxn::with_database("db");
    run(&mut t, "CREATE TABLE s (k INT8 PRIMARY KEY, v INT8, g TEXT)");
    run(&mut t, "INSERT INTO s VALUES (1, 1, 'x'), (2, 2, 'x'), (3, 3, 'y'), (4, 4, 'y')");
    assert_eq!(run(&mut t, "UPDATE s SET v = (SELECT sum(v) FROM s s2 WHERE s2.k <= s.k)").rows_affected, 4);
    assert_eq!(ids(rows(&mut t, "SELECT v FROM s ORDER BY k")), [1, 3, 6, 10]);
    let r = run(&mut t, "UPDATE s SET g = g || '!' WHERE v > (SELECT min(v) FROM s s2 WHERE s2.g = s.g) RETURNING k");
    assert_eq!(ids(r.rows), [2, 4]);
    assert_eq!(run(&mut t, "DELETE FROM s WHERE EXISTS (SELECT 1 FROM s s2 WHERE s2.k = s.k - 1)").rows_affected, 3);
    assert_eq!(ids(rows(&mut t, "SELECT k FROM s")), [1]);
    // Other tables: SET and WHERE with correlated subqueries over them.
    let mut t = setup();
    let r =
        run(&mut t, "UPDATE p SET price = (SELECT sum(qty) FROM q WHERE q.pid = p.id) WHERE EXISTS (SELECT 1 FROM q WHERE q.pid = p.id)");
    assert_eq!(r.rows_affected, 2);
    assert_eq!(
        rows(&mut t, "SELECT id, price FROM p WHERE id IN (1, 3) ORDER BY id"),
        vec![vec![json!(1), json!(5)], vec![json!(3), json!(1)]]
    );
    assert_eq!(run(&mut t, "DELETE FROM q WHERE NOT EXISTS (SELECT 1 FROM p WHERE p.id = q.pid)").rows_affected, 2);
    assert_eq!(err(&mut t, "UPDATE p SET price = (SELECT qty FROM q WHERE q.pid = p.id)"), "21000");
    run(&mut t, "INSERT INTO q SELECT id + 10, id, (SELECT count(*) FROM q WHERE q.pid = p.id) FROM p");
    assert_eq!(rows(&mut t, "SELECT sum(qty) FROM q WHERE id > 10"), vec![vec![json!(3)]]);
}

#[test]
fn explain_shows_correlated_subqueries() {
    let mut t = setup();
    let lines = |t: &mut MemTxn, sql: &str| -> Vec<String> {
        rows(t, &format!("EXPLAIN {sql}")).into_iter().map(|r| r[0].as_str().unwrap_or_default().to_string()).collect()
    };
    let p = lines(&mut t, "SELECT id FROM p WHERE EXISTS (SELECT 1 FROM q WHERE q.id = p.price)");
    assert!(p.iter().any(|l| l.trim() == "correlated subquery (exists): run per distinct (p.price), cached"), "{p:?}");
    assert!(p.iter().any(|l| l.trim() == "scan q: point get per outer row (filtered)"), "{p:?}");
    let p = lines(&mut t, "SELECT id, (SELECT max(qty) FROM q WHERE q.pid = p.id) FROM p");
    assert!(p.iter().any(|l| l.contains("correlated subquery (scalar)")), "{p:?}");
    assert!(p.iter().any(|l| l.contains("full scan") && l.contains("per outer row")), "{p:?}");
    let p = lines(&mut t, "SELECT id FROM p WHERE price > ALL (SELECT qty FROM q WHERE q.pid = p.id)");
    assert!(p.iter().any(|l| l.contains("correlated subquery (> all)")), "{p:?}");
    // Uncorrelated: run while planning, the value becomes part of the plan.
    let p = lines(&mut t, "SELECT id FROM p WHERE id = (SELECT max(pid) FROM q)");
    assert!(p.iter().any(|l| l.contains("point get")) && !p.iter().any(|l| l.contains("correlated")), "{p:?}");
}
