//! Expression compilation and evaluation without tables: arithmetic, three-valued logic, LIKE,
//! CASE, string/math/time functions.

use crate::datum::Datum;
use crate::error::SqlError;
use crate::expr::{Compiler, eval};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

fn run(sql: &str) -> Result<Datum, SqlError> {
    let e = Parser::new(&PostgreSqlDialect {}).try_with_sql(sql).unwrap().parse_expr().unwrap();
    let args = [Datum::Int(10), Datum::String("x".into())];
    let s = Compiler::new(Vec::new(), &args, 0).compile(&e)?;
    eval(&s, &[], &[])
}

fn text(sql: &str) -> String {
    match run(sql) {
        Ok(d) => d.to_text(),
        Err(e) => panic!("{sql}: {e}"),
    }
}

#[test]
fn arithmetic_and_errors() {
    assert_eq!(run("1 + 2 * 3").unwrap(), Datum::Int(7));
    assert_eq!(run("7 / 2").unwrap(), Datum::Int(3));
    assert_eq!(text("7.0 / 2"), "3.5000000000000000");
    assert_eq!(text("0.1 + 0.2"), "0.3");
    assert_eq!(run("$1 % 3").unwrap(), Datum::Int(1));
    assert_eq!(run("1 / 0").unwrap_err().code(), "22012");
    assert_eq!(run("1.5 / 0").unwrap_err().code(), "22012");
    assert_eq!(run("9223372036854775807 + 1").unwrap_err().code(), "22003");
    assert_eq!(run("-(-9223372036854775807 - 1)").unwrap_err().code(), "22003");
    assert_eq!(run("$3").unwrap_err().code(), "08P01");
    assert_eq!(run("'a' || 1 || $2").unwrap(), Datum::String("a1x".into()));
    assert_eq!(run("abs(-3) + length('héé')").unwrap(), Datum::Int(6));
    assert_eq!(run("coalesce(NULL, 2)").unwrap(), Datum::Int(2));
    assert_eq!(run("coalesce(1, 1 / 0)").unwrap(), Datum::Int(1), "coalesce is lazy, as in PostgreSQL");
    assert_eq!(run("coalesce(NULL, 1 / 0)").unwrap_err().code(), "22012");
    assert_eq!(run("false AND 1 / 0 = 1").unwrap(), Datum::Bool(false), "AND stops at a deciding operand");
    assert_eq!(run("true OR 1 / 0 = 1").unwrap(), Datum::Bool(true));
    assert_eq!(run("CAST('12' AS INT) + '3'::int8").unwrap(), Datum::Int(15));
    assert_eq!(run("'70000'::int2").unwrap_err().to_string(), "smallint out of range");
    assert_eq!(run("'abc'::int").unwrap_err().to_string(), "invalid input syntax for type bigint: \"abc\"");
    assert_eq!(run("nosuch(1)").unwrap_err().code(), "42883");
    assert_eq!(run("count(*)").unwrap_err().code(), "42803");
}

#[test]
fn three_valued_logic_and_case() {
    assert_eq!(run("NULL AND false").unwrap(), Datum::Bool(false));
    assert_eq!(run("NULL AND true").unwrap(), Datum::Null);
    assert_eq!(run("NULL OR true").unwrap(), Datum::Bool(true));
    assert_eq!(run("NOT (NULL = 1)").unwrap(), Datum::Null);
    assert_eq!(run("1 IN (2, NULL)").unwrap(), Datum::Null);
    assert_eq!(run("1 NOT IN (2, 3)").unwrap(), Datum::Bool(true));
    assert_eq!(run("NULL IS NULL").unwrap(), Datum::Bool(true));
    assert_eq!(run("NULL IS DISTINCT FROM 1").unwrap(), Datum::Bool(true));
    assert_eq!(run("(NULL = 1) IS NOT TRUE").unwrap(), Datum::Bool(true));
    assert_eq!(run("5 BETWEEN 1 AND 5").unwrap(), Datum::Bool(true));
    assert_eq!(run("1 + NULL").unwrap(), Datum::Null);
    assert_eq!(run("1 AND true").unwrap_err().code(), "42804");
    assert_eq!(text("CASE WHEN 1 > 2 THEN 'a' WHEN 2 > 1 THEN 'b' END"), "b");
    assert_eq!(text("CASE 3 WHEN 1 THEN 'one' ELSE 'other' END"), "other");
    assert_eq!(run("CASE WHEN NULL THEN 1 END").unwrap(), Datum::Null);
    assert_eq!(run("nullif(1, 1)").unwrap(), Datum::Null);
    assert_eq!(run("greatest(1, NULL, 3)").unwrap(), Datum::Int(3));
    // Mixed integer/decimal arguments give a DECIMAL, as in PostgreSQL.
    assert!(matches!(run("least(2.5, 1)").unwrap(), Datum::Decimal(d) if d.to_string() == "1"));
}

#[test]
fn like_patterns_with_escapes() {
    assert_eq!(run("'hello' LIKE 'h%o'").unwrap(), Datum::Bool(true));
    assert_eq!(run("'hello' LIKE 'h_llo'").unwrap(), Datum::Bool(true));
    assert_eq!(run("'hello' LIKE 'h%x'").unwrap(), Datum::Bool(false));
    assert_eq!(run("'a%b' LIKE 'a\\%b'").unwrap(), Datum::Bool(true));
    assert_eq!(run("'axb' LIKE 'a\\%b'").unwrap(), Datum::Bool(false));
    assert_eq!(run("'a%b' LIKE 'a#%b' ESCAPE '#'").unwrap(), Datum::Bool(true));
    assert_eq!(run("'HeLLo' ILIKE '%ll%'").unwrap(), Datum::Bool(true));
    assert_eq!(run("'' LIKE '%'").unwrap(), Datum::Bool(true));
    assert_eq!(run("'abc' NOT LIKE 'ab'").unwrap(), Datum::Bool(true));
}

#[test]
fn string_functions() {
    assert_eq!(text("lower('AbC') || upper('x')"), "abcX");
    assert_eq!(text("substr('hello', 2, 3)"), "ell");
    assert_eq!(text("substring('hello' from 2)"), "ello");
    assert_eq!(text("trim('  hi  ') || '|' || ltrim('xxhi', 'x') || '|' || rtrim('hi  ')"), "hi|hi|hi");
    assert_eq!(text("replace('aXbX', 'X', '-')"), "a-b-");
    assert_eq!(text("concat('a', NULL, 1)"), "a1");
    assert_eq!(run("position('lo' in 'hello')").unwrap(), Datum::Int(4));
    assert_eq!(run("strpos('hello', 'z')").unwrap(), Datum::Int(0));
    assert_eq!(text("left('hello', 2) || right('hello', -3)"), "helo");
    assert_eq!(text("repeat('ab', 3)"), "ababab");
    assert_eq!(text("reverse('abc')"), "cba");
    assert_eq!(text("split_part('a,b,c', ',', 2)"), "b");
    assert_eq!(text("lpad('7', 3, '0') || rpad('x', 3, '.')"), "007x..");
    assert_eq!(run("repeat('x', 999999999999)").unwrap_err().code(), "54000");
}

#[test]
fn math_functions() {
    assert_eq!(text("ceil(1.2)"), "2");
    assert_eq!(text("floor(-1.2)"), "-2");
    assert_eq!(text("round(2.345, 2)"), "2.35");
    assert_eq!(text("round(2.5)"), "3");
    assert_eq!(text("trunc(2.789, 1)"), "2.7");
    assert_eq!(run("mod(7, 3)").unwrap(), Datum::Int(1));
    assert_eq!(run("power(2, 10)").unwrap(), Datum::Float(1024.0));
    assert_eq!(run("sqrt(16)").unwrap(), Datum::Float(4.0));
    assert_eq!(run("sqrt(-1)").unwrap_err().code(), "2201F");
    assert_eq!(run("sign(-5)").unwrap(), Datum::Int(-1));
    assert_eq!(run("abs(-9223372036854775807 - 1)").unwrap_err().code(), "22003");
}

#[test]
fn time_functions_and_intervals() {
    assert_eq!(text("DATE '2024-01-31' + 1"), "2024-02-01");
    assert_eq!(run("DATE '2024-03-01' - DATE '2024-02-01'").unwrap(), Datum::Int(29));
    assert_eq!(text("TIMESTAMP '2024-01-31 10:00:00' + INTERVAL '1 month'"), "2024-02-29 10:00:00");
    assert_eq!(text("TIMESTAMP '2024-01-02 03:00:00' - TIMESTAMP '2024-01-01 01:00:00'"), "1 day 02:00:00");
    assert_eq!(text("date_trunc('hour', TIMESTAMP '2024-05-06 07:08:09')"), "2024-05-06 07:00:00");
    assert_eq!(run("extract(year from DATE '2024-05-06')").unwrap(), Datum::Float(2024.0));
    assert_eq!(run("date_part('dow', TIMESTAMP '2024-05-06 00:00:00')").unwrap(), Datum::Float(1.0));
    assert_eq!(text("INTERVAL '1 day' * 2"), "2 days");
    assert_eq!(run("now()").unwrap(), Datum::TimestampTz(0));
    assert_eq!(text("current_date"), "1970-01-01");
    // PostgreSQL's codes: not a date/time at all 22007, a field out of range 22008.
    assert_eq!(run("'notadate'::date").unwrap_err().code(), "22007");
    assert_eq!(run("'2023-02-29'::date").unwrap_err().code(), "22008");
    assert_eq!(run("'2024-01-01 25:00:00'::timestamp").unwrap_err().code(), "22008");
    assert_eq!(run("'x'::timestamptz").unwrap_err().code(), "22007");
    assert_eq!(run("'soon'::interval").unwrap_err().code(), "22007");
}

#[test]
fn float_to_int_rounds_half_to_even() {
    // PostgreSQL casts float8 to integers with rint(): ties go to the even neighbour.
    assert_eq!(run("2.5::FLOAT8::INT4").unwrap(), Datum::Int(2));
    assert_eq!(run("3.5::FLOAT8::INT8").unwrap(), Datum::Int(4));
    assert_eq!(run("(-0.5)::FLOAT8::INT2").unwrap(), Datum::Int(0));
    assert_eq!(run("(-2.6)::FLOAT8::BIGINT").unwrap(), Datum::Int(-3));
}
