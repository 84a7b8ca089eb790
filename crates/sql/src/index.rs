//! Secondary index entries: their KV layout, encoding and decoding.
//!
//! Every entry lies under `keys::index_prefix(table.id, index.id)`, inside the table's span (so,
//! while a table is one range, a row and its entries change in one single-range transaction).
//! Indexed values use the primary key's order-preserving encoders ([`encode_key_datum`]); for a
//! DESC column the encoded bytes (marker included) are inverted, which reverses their order
//! because every encoding is prefix-free.
//!
//! - Unique index (the layout UNIQUE constraints always had): key = prefix + the indexed values
//!   → value = the row's primary-key suffix (its row key minus [`rows_prefix`]). A row with a
//!   NULL in an indexed column has no entry: NULLs never conflict, and such an index cannot
//!   answer `IS NULL` or return those rows (the planner knows).
//! - Non-unique index: key = prefix + for each indexed column a marker ([`VALUE`] then the value,
//!   or [`NULL`] alone) + the row's primary-key suffix → empty value. NULLs are indexed and sort
//!   after every value ascending (before them descending), as PostgreSQL orders NULLs by
//!   default, so `col IS NULL` and `ORDER BY col` can use the index. The suffix makes keys
//!   unique per row and orders equal values by primary key.
//!
//! Invariant: [`entry`] is the one definition of a row's entry; writers and the backfill both use
//! it, and [`decode_entry`] inverts it (row key plus the indexed and primary-key values).
//! Not handled: STORING/INCLUDE columns, expression indexes.

use crate::catalog::{IndexDesc, SqlType, TableDesc};
use crate::datum::Datum;
use crate::encoding::{encode_key_datum, rows_prefix};
use crate::error::SqlError;
use meridian_types::KvError;
use meridian_types::keys::{self, KeyReader};
use rust_decimal::Decimal;

/// A KV pair (an entry: key, value).
pub type Entry = (Vec<u8>, Vec<u8>);

/// Marker of a non-NULL value in a non-unique index key.
pub const VALUE: u8 = 0x01;
/// Marker of a NULL in a non-unique index key (sorts after [`VALUE`]).
pub const NULL: u8 = 0x02;

fn corrupt(what: &str) -> SqlError {
    SqlError::Kv(KvError::Internal(format!("index encoding: {what}")))
}

/// The key of a table's schema fence for stores that keep it as a key (the default
/// [`crate::TxnClient::fence_table`], used by the in-memory test store): index id 0 of the
/// table's span, written after each wait for propagation. The node keeps the fence in each
/// range's state instead (see `fence_table` there).
pub fn schema_fence_key(table_id: u64) -> Vec<u8> {
    keys::index_prefix(table_id, 0)
}

/// The table id of a key in a table's span.
pub fn table_of_key(key: &[u8]) -> Option<u64> {
    if key.first() != Some(&keys::TABLE_PREFIX) {
        return None;
    }
    Some(u64::from_be_bytes(key.get(1..9)?.try_into().ok()?))
}

/// Positions (in `table.columns`) of the index's columns.
pub fn column_positions(table: &TableDesc, index: &IndexDesc) -> Result<Vec<usize>, SqlError> {
    index.columns.iter().map(|id| table.column_by_id(*id).ok_or_else(|| corrupt("index column missing"))).collect()
}

/// Appends one indexed value: with its marker for non-unique indexes, inverted when DESC. A
/// NULL in a unique index is the caller's to avoid (it has no entry).
pub fn encode_column(buf: &mut Vec<u8>, d: &Datum, unique: bool, desc: bool) -> Result<(), SqlError> {
    let start = buf.len();
    if !unique {
        buf.push(if d.is_null() { NULL } else { VALUE });
    }
    if !d.is_null() || unique {
        encode_key_datum(buf, d)?;
    }
    if desc {
        buf[start..].iter_mut().for_each(|b| *b = !*b);
    }
    Ok(())
}

/// The row's entry in `index` as (key, value), or None for a unique index and a row with a NULL
/// indexed value.
pub fn entry(table: &TableDesc, index: &IndexDesc, row: &[Datum]) -> Result<Option<Entry>, SqlError> {
    let mut k = keys::index_prefix(table.id, index.id);
    for (i, pos) in column_positions(table, index)?.into_iter().enumerate() {
        let d = row.get(pos).ok_or_else(|| corrupt("row shorter than table"))?;
        if d.is_null() && index.unique {
            return Ok(None);
        }
        encode_column(&mut k, d, index.unique, index.desc(i))?;
    }
    let pk = pk_suffix(table, row)?;
    Ok(Some(if index.unique {
        (k, pk)
    } else {
        k.extend_from_slice(&pk);
        (k, Vec::new())
    }))
}

/// The row's primary-key suffix: its row key without [`rows_prefix`].
pub fn pk_suffix(table: &TableDesc, row: &[Datum]) -> Result<Vec<u8>, SqlError> {
    let mut k = Vec::new();
    for &i in &table.primary_key {
        encode_key_datum(&mut k, row.get(i).ok_or_else(|| corrupt("row shorter than table"))?)?;
    }
    Ok(k)
}

/// Decodes one value of type `ty` (not inverted).
fn decode_plain(r: &mut KeyReader<'_>, ty: SqlType) -> Result<Datum, SqlError> {
    let bad = |_| corrupt("malformed value");
    Ok(match ty.base() {
        SqlType::Int => Datum::Int(r.decode_i64().map_err(bad)?),
        SqlType::Timestamp => Datum::Timestamp(r.decode_i64().map_err(bad)?),
        SqlType::TimestampTz => Datum::TimestampTz(r.decode_i64().map_err(bad)?),
        SqlType::Date => Datum::Date(i32::try_from(r.decode_i64().map_err(bad)?).map_err(|_| corrupt("date"))?),
        SqlType::Float => Datum::Float(r.decode_f64().map_err(bad)?),
        SqlType::Bool => Datum::Bool(r.decode_bool().map_err(bad)?),
        SqlType::Bytes => Datum::Bytes(r.decode_bytes().map_err(bad)?),
        SqlType::String => Datum::String(String::from_utf8(r.decode_bytes().map_err(bad)?).map_err(|_| corrupt("utf-8"))?),
        SqlType::Uuid => {
            let b = r.remaining().get(..16).ok_or_else(|| corrupt("uuid"))?;
            let u: [u8; 16] = b.try_into().map_err(|_| corrupt("uuid"))?;
            r.skip(16).map_err(bad)?;
            Datum::Uuid(u)
        }
        SqlType::Decimal => {
            let (d, used) = decode_decimal(r.remaining())?;
            r.skip(used).map_err(bad)?;
            Datum::Decimal(d)
        }
        _ => return Err(corrupt("unkeyable type")),
    })
}

/// Inverse of [`crate::encoding::encode_decimal`] (the value comes back normalized: scale is
/// not kept by the key); returns the value and the bytes used.
pub fn decode_decimal(b: &[u8]) -> Result<(Decimal, usize), SqlError> {
    let (&sign, rest) = b.split_first().ok_or_else(|| corrupt("decimal"))?;
    if sign == 2 {
        return Ok((Decimal::ZERO, 1));
    }
    let neg = match sign {
        1 => true,
        3 => false,
        _ => return Err(corrupt("decimal sign")),
    };
    let get = |i: usize| rest.get(i).map(|b| if neg { !b } else { *b }).ok_or_else(|| corrupt("decimal"));
    let exp = get(0)? as i64 - 128;
    let mut digits = String::new();
    let mut i = 1;
    loop {
        let d = get(i)?;
        i += 1;
        if d == 0 {
            break;
        }
        digits.push(char::from(b'0' + d.checked_sub(1).filter(|d| *d <= 9).ok_or_else(|| corrupt("decimal digit"))?));
    }
    // value = 0.digits * 10^exp
    let n = digits.len() as i64;
    let text = if exp >= n {
        format!("{digits}{}", "0".repeat((exp - n) as usize))
    } else if exp > 0 {
        format!("{}.{}", &digits[..exp as usize], &digits[exp as usize..])
    } else {
        format!("0.{}{digits}", "0".repeat((-exp) as usize))
    };
    let v: Decimal = text.parse().map_err(|_| corrupt("decimal range"))?;
    Ok((if neg { -v } else { v }, 1 + i))
}

/// Decodes one indexed column from the front of `buf` (marker included for non-unique indexes);
/// returns the value and the bytes used.
pub fn decode_column(buf: &[u8], ty: SqlType, unique: bool, desc: bool) -> Result<(Datum, usize), SqlError> {
    let owned: Vec<u8>;
    let b: &[u8] = if desc {
        owned = buf.iter().map(|b| !b).collect();
        &owned
    } else {
        buf
    };
    let mut r = KeyReader::new(b);
    if !unique {
        match b.first() {
            Some(&NULL) => return Ok((Datum::Null, 1)),
            Some(&VALUE) => r.skip(1).map_err(|_| corrupt("marker"))?,
            _ => return Err(corrupt("marker")),
        }
    }
    let d = decode_plain(&mut r, ty)?;
    Ok((d, b.len() - r.remaining().len()))
}

/// Decodes an entry: the row's key, and a row with the indexed and primary-key columns filled
/// (every other column NULL).
pub fn decode_entry(table: &TableDesc, index: &IndexDesc, key: &[u8], value: &[u8]) -> Result<(Vec<u8>, Vec<Datum>), SqlError> {
    let prefix = keys::index_prefix(table.id, index.id);
    let mut rest = key.strip_prefix(prefix.as_slice()).ok_or_else(|| corrupt("foreign key prefix"))?;
    let mut row = vec![Datum::Null; table.columns.len()];
    for (i, pos) in column_positions(table, index)?.into_iter().enumerate() {
        let ty = table.columns.get(pos).map(|c| c.ty).ok_or_else(|| corrupt("column"))?;
        let (d, used) = decode_column(rest, ty, index.unique, index.desc(i))?;
        row[pos] = d;
        rest = rest.get(used..).ok_or_else(|| corrupt("truncated"))?;
    }
    let suffix = if index.unique { value } else { rest };
    let mut r = KeyReader::new(suffix);
    for &pos in &table.primary_key {
        let ty = table.columns.get(pos).map(|c| c.ty).ok_or_else(|| corrupt("column"))?;
        row[pos] = decode_plain(&mut r, ty)?;
    }
    let mut row_key = rows_prefix(table);
    row_key.extend_from_slice(suffix);
    Ok((row_key, row))
}

/// Whether [`decode_entry`] returns values of this type exactly as stored (DECIMAL keys drop the
/// scale, FLOAT keys fold -0 into 0), so an index-only read may return them.
pub fn lossless(ty: SqlType) -> bool {
    !matches!(ty.base(), SqlType::Decimal | SqlType::Float)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::ColumnDesc;

    fn table() -> TableDesc {
        let mut t = TableDesc::new(
            "d",
            "t",
            vec![
                ColumnDesc::new(1, "k", SqlType::Int),
                ColumnDesc::new(2, "s", SqlType::String),
                ColumnDesc::new(3, "x", SqlType::Decimal),
                ColumnDesc::new(4, "u", SqlType::Uuid),
            ],
            vec![0],
        );
        t.id = 9;
        t
    }

    fn row(k: i64, s: Option<&str>) -> Vec<Datum> {
        vec![Datum::Int(k), s.map(|s| Datum::String(s.into())).unwrap_or(Datum::Null), Datum::Null, Datum::Null]
    }

    #[test]
    fn non_unique_keys_order_values_then_nulls_then_pk_and_round_trip() {
        let t = table();
        let ix = IndexDesc::new(2, "i", vec![2], false);
        let k = |k, s| entry(&t, &ix, &row(k, s)).unwrap().unwrap().0;
        assert!(k(5, Some("a")) < k(1, Some("b")));
        assert!(k(1, Some("a")) < k(2, Some("a")));
        assert!(k(9, Some("zzz")) < k(0, None));
        let (rk, r) = decode_entry(&t, &ix, &k(7, Some("x")), &[]).unwrap();
        assert_eq!(r, row(7, Some("x")));
        assert_eq!(rk, crate::encoding::row_key(&t, &row(7, Some("x"))).unwrap());
        assert_eq!(decode_entry(&t, &ix, &k(3, None), &[]).unwrap().1, row(3, None));
    }

    #[test]
    fn descending_columns_reverse_order_with_nulls_first() {
        let t = table();
        let mut ix = IndexDesc::new(2, "i", vec![2], false);
        ix.descending = vec![true];
        let k = |k, s| entry(&t, &ix, &row(k, s)).unwrap().unwrap().0;
        assert!(k(5, Some("b")) < k(1, Some("a")));
        assert!(k(5, Some("ab")) < k(1, Some("a")));
        assert!(k(0, None) < k(9, Some("zzz")));
        assert!(k(1, Some("a")) < k(2, Some("a")));
        assert_eq!(decode_entry(&t, &ix, &k(4, Some("ab")), &[]).unwrap().1, row(4, Some("ab")));
        let mut u = IndexDesc::new(3, "u", vec![2], true);
        u.descending = vec![true];
        let (key, val) = entry(&t, &u, &row(4, Some("q"))).unwrap().unwrap();
        assert_eq!(decode_entry(&t, &u, &key, &val).unwrap().1, row(4, Some("q")));
        assert!(entry(&t, &u, &row(4, None)).unwrap().is_none());
    }

    #[test]
    fn decimals_decode_normalized() {
        for s in ["0", "1.5", "-1.25", "100", "0.001", "-0.001", "123456.789", "-99"] {
            let d: Decimal = s.parse().unwrap();
            let mut b = Vec::new();
            crate::encoding::encode_decimal(&mut b, &d);
            b.push(0x77);
            let (back, used) = decode_decimal(&b).unwrap();
            assert_eq!((back, used), (d.normalize(), b.len() - 1), "{s}");
        }
    }
}
