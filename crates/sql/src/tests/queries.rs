//! SELECT features: DISTINCT, aggregates, ORDER BY NULLS, joins of every kind, subqueries,
//! set operations, CTEs, VALUES and generate_series in FROM.

use super::{err, rows, run};
use crate::testing::MemTxn;
use serde_json::{Value, json};

fn setup() -> MemTxn {
    let mut t = MemTxn::with_database("db");
    run(&mut t, "CREATE TABLE emp (id INT PRIMARY KEY, name STRING, dept INT, salary INT, active BOOL)");
    run(&mut t, "CREATE TABLE dept (id INT PRIMARY KEY, title STRING)");
    run(
        &mut t,
        "INSERT INTO emp VALUES (1, 'ann', 1, 100, true), (2, 'bob', 1, 200, false), (3, 'cy', 2, 300, true), (4, 'di', NULL, 50, NULL)",
    );
    run(&mut t, "INSERT INTO dept VALUES (1, 'eng'), (2, 'ops'), (3, 'hr')");
    t
}

#[test]
fn aggregates_group_by_having_distinct() {
    let mut t = setup();
    assert_eq!(
        rows(
            &mut t,
            "SELECT dept, count(*), sum(salary), bool_and(active), bool_or(active), string_agg(name, ',') FROM emp WHERE dept IS NOT NULL GROUP BY dept ORDER BY dept"
        ),
        vec![
            vec![json!(1), json!(2), json!(300), json!(false), json!(true), json!("ann,bob")],
            vec![json!(2), json!(1), json!(300), json!(true), json!(true), json!("cy")]
        ]
    );
    assert_eq!(
        rows(&mut t, "SELECT count(DISTINCT dept), count(dept), avg(salary) FROM emp"),
        vec![vec![json!(2), json!(3), json!(162.5)]]
    );
    assert_eq!(
        rows(&mut t, "SELECT DISTINCT dept FROM emp ORDER BY dept NULLS FIRST"),
        vec![vec![Value::Null], vec![json!(1)], vec![json!(2)]]
    );
    assert_eq!(
        rows(&mut t, "SELECT dept AS d, max(salary) FROM emp GROUP BY 1 HAVING max(salary) > 100 ORDER BY d"),
        vec![vec![json!(1), json!(200)], vec![json!(2), json!(300)]]
    );
    assert_eq!(
        rows(&mut t, "SELECT salary / 100 AS bucket, count(*) FROM emp GROUP BY salary / 100 ORDER BY bucket DESC LIMIT 1 OFFSET 1"),
        vec![vec![json!(2), json!(1)]]
    );
    assert_eq!(err(&mut t, "SELECT name, count(*) FROM emp GROUP BY dept"), "42803");
    assert_eq!(err(&mut t, "SELECT DISTINCT dept FROM emp ORDER BY salary"), "42P10");
}

#[test]
fn joins_of_every_kind() {
    let mut t = setup();
    assert_eq!(
        rows(&mut t, "SELECT e.name, d.title FROM emp e JOIN dept d ON e.dept = d.id ORDER BY e.id"),
        vec![vec![json!("ann"), json!("eng")], vec![json!("bob"), json!("eng")], vec![json!("cy"), json!("ops")]]
    );
    assert_eq!(
        rows(&mut t, "SELECT e.name, d.title FROM emp e LEFT JOIN dept d ON e.dept = d.id WHERE e.id > 2 ORDER BY e.id"),
        vec![vec![json!("cy"), json!("ops")], vec![json!("di"), Value::Null]]
    );
    assert_eq!(
        rows(&mut t, "SELECT d.title, count(e.id) FROM emp e RIGHT JOIN dept d ON e.dept = d.id GROUP BY d.title ORDER BY d.title"),
        vec![vec![json!("eng"), json!(2)], vec![json!("hr"), json!(0)], vec![json!("ops"), json!(1)]]
    );
    let full = rows(&mut t, "SELECT e.name, d.title FROM emp e FULL JOIN dept d ON e.dept = d.id AND d.id > 1 ORDER BY e.name, d.title");
    assert_eq!(full.len(), 6);
    assert!(full.contains(&vec![Value::Null, json!("hr")]) && full.contains(&vec![json!("ann"), Value::Null]));
    assert_eq!(rows(&mut t, "SELECT count(*) FROM emp, dept"), vec![vec![json!(12)]]);
    assert_eq!(rows(&mut t, "SELECT count(*) FROM emp e, dept d WHERE e.salary > d.id * 100"), vec![vec![json!(3)]]);
    assert_eq!(rows(&mut t, "SELECT title FROM dept JOIN emp USING (id) WHERE name = 'cy'"), vec![vec![json!("hr")]]);
    assert_eq!(err(&mut t, "SELECT id FROM emp JOIN dept ON emp.dept = dept.id"), "42702");
    assert_eq!(err(&mut t, "SELECT x.id FROM emp"), "42P01");
}

#[test]
fn subqueries_scalar_exists_and_in() {
    let mut t = setup();
    assert_eq!(rows(&mut t, "SELECT name FROM emp WHERE salary = (SELECT max(salary) FROM emp)"), vec![vec![json!("cy")]]);
    assert_eq!(
        rows(&mut t, "SELECT name FROM emp WHERE dept IN (SELECT id FROM dept WHERE title = 'eng') ORDER BY 1"),
        vec![vec![json!("ann")], vec![json!("bob")]]
    );
    assert_eq!(
        rows(&mut t, "SELECT title FROM dept WHERE id NOT IN (SELECT dept FROM emp WHERE dept IS NOT NULL)"),
        vec![vec![json!("hr")]]
    );
    assert_eq!(rows(&mut t, "SELECT count(*) FROM dept WHERE EXISTS (SELECT 1 FROM emp WHERE salary > 250)"), vec![vec![json!(3)]]);
    assert_eq!(rows(&mut t, "SELECT (SELECT title FROM dept WHERE id = 2) AS t"), vec![vec![json!("ops")]]);
    assert_eq!(err(&mut t, "SELECT (SELECT id FROM dept)"), "21000");
    assert_eq!(err(&mut t, "SELECT 1 WHERE 1 IN (SELECT id, title FROM dept)"), "42601");
}

#[test]
fn set_operations_ctes_values_and_series() {
    let mut t = setup();
    assert_eq!(
        rows(&mut t, "SELECT dept FROM emp UNION SELECT id FROM dept ORDER BY 1"),
        vec![vec![json!(1)], vec![json!(2)], vec![json!(3)], vec![Value::Null]]
    );
    assert_eq!(rows(&mut t, "SELECT dept FROM emp WHERE dept = 1 UNION ALL SELECT 1").len(), 3);
    assert_eq!(rows(&mut t, "SELECT id FROM dept INTERSECT SELECT dept FROM emp ORDER BY 1"), vec![vec![json!(1)], vec![json!(2)]]);
    assert_eq!(rows(&mut t, "SELECT id FROM dept EXCEPT SELECT dept FROM emp"), vec![vec![json!(3)]]);
    assert_eq!(rows(&mut t, "SELECT 1 INTERSECT ALL SELECT 1 UNION ALL SELECT 2 EXCEPT ALL SELECT 2").len(), 1);
    assert_eq!(
        rows(
            &mut t,
            "WITH rich AS (SELECT name, salary FROM emp WHERE salary >= 200), n(c) AS (SELECT count(*) FROM rich) SELECT name, c FROM rich, n ORDER BY name"
        ),
        vec![vec![json!("bob"), json!(2)], vec![json!("cy"), json!(2)]]
    );
    assert_eq!(
        rows(&mut t, "SELECT y, x * 10 FROM (VALUES (1, 'a'), (2, 'b')) AS v(x, y) ORDER BY x DESC"),
        vec![vec![json!("b"), json!(20)], vec![json!("a"), json!(10)]]
    );
    assert_eq!(rows(&mut t, "SELECT sum(g) FROM generate_series(1, 10) AS g"), vec![vec![json!(55)]]);
    assert_eq!(rows(&mut t, "SELECT * FROM generate_series(10, 1, -4)"), vec![vec![json!(10)], vec![json!(6)], vec![json!(2)]]);
    assert_eq!(run(&mut t, "VALUES (1, 'x')").columns[1].name, "column2");
    assert_eq!(err(&mut t, "SELECT 1 UNION SELECT 1, 2"), "42601");
    assert_eq!(err(&mut t, "SELECT * FROM generate_series(1, 5, 0)"), "22023");
}

#[test]
fn order_by_nulls_first_last_and_expressions() {
    let mut t = setup();
    assert_eq!(
        rows(&mut t, "SELECT id FROM emp ORDER BY dept DESC NULLS LAST, id"),
        vec![vec![json!(3)], vec![json!(1)], vec![json!(2)], vec![json!(4)]]
    );
    assert_eq!(rows(&mut t, "SELECT id FROM emp ORDER BY dept NULLS FIRST, salary DESC LIMIT 2"), vec![vec![json!(4)], vec![json!(2)]]);
    assert_eq!(rows(&mut t, "SELECT name FROM emp ORDER BY length(name) DESC, name LIMIT 1"), vec![vec![json!("ann")]]);
    assert_eq!(
        rows(&mut t, "SELECT CASE WHEN salary > 150 THEN 'high' ELSE 'low' END AS band, count(*) FROM emp GROUP BY 1 ORDER BY band"),
        vec![vec![json!("high"), json!(2)], vec![json!("low"), json!(2)]]
    );
}

#[test]
fn mixed_numeric_branches_take_the_common_type() {
    // GREATEST/LEAST/COALESCE/CASE over integers and decimals/floats are DECIMAL/FLOAT8 in
    // PostgreSQL, for the column type and every value (was: typed after the first argument).
    let mut t = MemTxn::with_database("db");
    let r = run(
        &mut t,
        "SELECT greatest(1, 2.5, 0), least(3, 0.5), coalesce(NULL, 1, 2.5), CASE WHEN true THEN 1 ELSE 2.5 END, coalesce(1, 2.5::FLOAT8), least(3::INT2, 1::INT8)",
    );
    let tys: Vec<_> = r.columns.iter().map(|c| c.ty.as_str()).collect();
    assert_eq!(tys, ["DECIMAL", "DECIMAL", "DECIMAL", "DECIMAL", "FLOAT8", "INT8"]);
    assert_eq!(r.rows[0], vec![json!("2.5"), json!("0.5"), json!("1"), json!("1"), json!(1.0), json!(1)]);
}

#[test]
fn in_empty_subquery_is_false_even_for_null() {
    // PostgreSQL: NULL IN (no rows) is false and NULL NOT IN (no rows) is true (was NULL).
    let mut t = MemTxn::with_database("db");
    run(&mut t, "CREATE TABLE q (id INT PRIMARY KEY, v INT)");
    run(&mut t, "INSERT INTO q VALUES (1, 1)");
    let r = rows(
        &mut t,
        "SELECT NULL::INT8 IN (SELECT v FROM q WHERE false), NULL::INT8 NOT IN (SELECT v FROM q WHERE false), NULL::INT8 IN (SELECT v FROM q)",
    );
    assert_eq!(r[0], vec![json!(false), json!(true), Value::Null]);
}

#[test]
fn concat_prints_booleans_as_t_f() {
    let mut t = MemTxn::with_database("db");
    assert_eq!(rows(&mut t, "SELECT concat('a', 1, NULL, true, false)")[0], vec![json!("a1tf")]);
}
