//! Row storage layout: how a table row becomes KV pairs.
//!
//! - Primary key: `keys::index_prefix(table.id, 1)` (index 1 = the primary index) followed by
//!   the primary-key column values in PK order, each with the order-preserving encoder of its
//!   type: Int/Date(days)/Timestamp/TimestampTz(micros) → `encode_i64`, Float → `encode_f64`,
//!   String/Bytes → `encode_bytes`, Bool → `encode_bool`, Uuid → its 16 bytes, Decimal → the
//!   sortable form of [`encode_decimal`]. Interval and Jsonb cannot be keyed (0A000). Byte order
//!   of keys therefore equals the PK order of rows, and all rows lie in `keys::table_span(id)`.
//! - Secondary index entries (unique and non-unique) are laid out by [`crate::index`], with the
//!   same value encoders, under `keys::index_prefix(table.id, index.id)` inside the table's span.
//! - Value: a version byte (`1`) then, for each non-NULL column (PK columns included, so a row
//!   decodes from its value alone), `varint(column id) tag payload`: tag 1 Int (8 bytes LE),
//!   2 Float (8 bytes LE bits), 3 String (varint len + UTF-8), 4 Bool (1 byte), 5 Bytes
//!   (varint len + bytes), 6 TimestampTz (8 bytes LE micros), 7 Decimal (varint len + text),
//!   8 Date (8 bytes LE days), 9 Timestamp (8 bytes LE micros), 10 Interval (4 + 4 + 8 bytes
//!   LE), 11 Uuid (16 bytes), 12 Jsonb (varint len + JSON text). NULL columns are omitted.
//!   Decoding matches column ids against the descriptor: unknown ids (dropped columns) are
//!   skipped; missing ids decode as the column's `missing` value (ADD COLUMN ... DEFAULT) or NULL.
//!
//! Not handled: column families.

use crate::catalog::TableDesc;
use crate::datum::Datum;
use crate::error::{SqlError, codes};
use crate::temporal::Interval;
use meridian_types::KvError;
use meridian_types::keys;
use rust_decimal::Decimal;

/// The primary index id within a table.
pub const PRIMARY_INDEX: u32 = 1;
const VERSION: u8 = 1;

/// The key prefix of every row of `table`.
pub fn rows_prefix(table: &TableDesc) -> Vec<u8> {
    keys::index_prefix(table.id, PRIMARY_INDEX)
}

/// Sortable encoding of a decimal: a sign byte (1 negative, 2 zero, 3 positive), then for
/// non-zero values the decimal exponent (offset by 128) and the significant digits (each +1)
/// ended by 0; negative values invert every byte after the sign, so byte order = numeric order.
/// Equal values with different scales (1.0, 1.00) encode identically.
pub fn encode_decimal(buf: &mut Vec<u8>, d: &Decimal) {
    if d.is_zero() {
        buf.push(2);
        return;
    }
    let n = d.normalize();
    let digits_all = n.mantissa().unsigned_abs().to_string();
    let scale = n.scale() as i64;
    let exp = digits_all.len() as i64 - scale; // value = 0.d1d2.. * 10^exp
    let digits = digits_all.trim_end_matches('0');
    let mut body = vec![(exp + 128).clamp(0, 255) as u8];
    body.extend(digits.bytes().map(|b| b - b'0' + 1));
    body.push(0);
    if n.is_sign_negative() {
        buf.push(1);
        buf.extend(body.iter().map(|b| !b));
    } else {
        buf.push(3);
        buf.extend(body);
    }
}

/// Appends one value, encoded order-preservingly for its type. NULL is rejected (key columns
/// are NOT NULL; index entries skip NULLs).
pub fn encode_key_datum(buf: &mut Vec<u8>, d: &Datum) -> Result<(), SqlError> {
    match d {
        Datum::Int(i) | Datum::TimestampTz(i) | Datum::Timestamp(i) => keys::encode_i64(buf, *i),
        Datum::Date(days) => keys::encode_i64(buf, *days as i64),
        Datum::Float(f) => keys::encode_f64(buf, if *f == 0.0 { 0.0 } else { *f }),
        Datum::Decimal(x) => encode_decimal(buf, x),
        Datum::String(s) => keys::encode_bytes(buf, s.as_bytes()),
        Datum::Bytes(b) => keys::encode_bytes(buf, b),
        Datum::Bool(b) => keys::encode_bool(buf, *b),
        Datum::Uuid(u) => buf.extend_from_slice(u),
        Datum::Interval(_) | Datum::Json(_) => {
            return Err(SqlError::user(codes::UNSUPPORTED, format!("values of type {} cannot be used in a key", d.type_name())));
        }
        Datum::Null => return Err(corrupt("NULL in primary key")),
    }
    Ok(())
}

/// A byte string equal for two datum lists iff they are equal as GROUP BY / DISTINCT keys
/// (NULLs equal each other; 1 = 1.0; intervals by total length).
pub fn group_key(ds: &[Datum]) -> Vec<u8> {
    let mut k = Vec::new();
    for d in ds {
        match d {
            Datum::Null => k.push(0),
            Datum::Int(i) => {
                k.push(1);
                encode_decimal(&mut k, &Decimal::from(*i));
            }
            Datum::Decimal(x) => {
                k.push(1);
                encode_decimal(&mut k, x);
            }
            Datum::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => {
                k.push(1);
                encode_decimal(&mut k, &Decimal::from(*f as i64));
            }
            Datum::Interval(iv) => {
                k.push(10);
                k.extend_from_slice(&iv.total().to_be_bytes());
            }
            Datum::Json(j) => {
                k.push(12);
                keys::encode_bytes(&mut k, j.to_string().as_bytes());
            }
            other => {
                k.push(match other {
                    Datum::Float(_) => 2,
                    Datum::String(_) => 3,
                    Datum::Bool(_) => 4,
                    Datum::Bytes(_) => 5,
                    Datum::Uuid(_) => 11,
                    _ => 6,
                });
                let tmp = other.micros().map(Datum::Int);
                let _ = encode_key_datum(&mut k, tmp.as_ref().unwrap_or(other));
            }
        }
    }
    k
}

/// The KV key of a row (values in column order).
pub fn row_key(table: &TableDesc, row: &[Datum]) -> Result<Vec<u8>, SqlError> {
    let mut k = rows_prefix(table);
    for &i in &table.primary_key {
        encode_key_datum(&mut k, row.get(i).ok_or_else(|| corrupt("row shorter than table"))?)?;
    }
    Ok(k)
}

fn corrupt(what: &str) -> SqlError {
    SqlError::Kv(KvError::Internal(format!("row encoding: {what}")))
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn put_str(buf: &mut Vec<u8>, b: &[u8]) {
    put_varint(buf, b.len() as u64);
    buf.extend_from_slice(b);
}

/// The KV value of a row (values in column order).
pub fn encode_row(table: &TableDesc, row: &[Datum]) -> Vec<u8> {
    let mut buf = vec![VERSION];
    for (col, d) in table.columns.iter().zip(row) {
        let tag: u8 = match d {
            Datum::Null => continue,
            Datum::Int(_) => 1,
            Datum::Float(_) => 2,
            Datum::String(_) => 3,
            Datum::Bool(_) => 4,
            Datum::Bytes(_) => 5,
            Datum::TimestampTz(_) => 6,
            Datum::Decimal(_) => 7,
            Datum::Date(_) => 8,
            Datum::Timestamp(_) => 9,
            Datum::Interval(_) => 10,
            Datum::Uuid(_) => 11,
            Datum::Json(_) => 12,
        };
        put_varint(&mut buf, col.id as u64);
        buf.push(tag);
        match d {
            Datum::Int(i) | Datum::TimestampTz(i) | Datum::Timestamp(i) => buf.extend_from_slice(&i.to_le_bytes()),
            Datum::Date(days) => buf.extend_from_slice(&(*days as i64).to_le_bytes()),
            Datum::Float(f) => buf.extend_from_slice(&f.to_bits().to_le_bytes()),
            Datum::String(s) => put_str(&mut buf, s.as_bytes()),
            Datum::Bytes(b) => put_str(&mut buf, b),
            Datum::Decimal(x) => put_str(&mut buf, x.to_string().as_bytes()),
            Datum::Json(j) => put_str(&mut buf, j.to_string().as_bytes()),
            Datum::Bool(b) => buf.push(*b as u8),
            Datum::Interval(iv) => {
                buf.extend_from_slice(&iv.months.to_le_bytes());
                buf.extend_from_slice(&iv.days.to_le_bytes());
                buf.extend_from_slice(&iv.micros.to_le_bytes());
            }
            Datum::Uuid(u) => buf.extend_from_slice(u),
            Datum::Null => {}
        }
    }
    buf
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SqlError> {
        if self.buf.len() < n {
            return Err(corrupt("truncated value"));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    fn byte(&mut self) -> Result<u8, SqlError> {
        Ok(self.take(1)?[0])
    }
    fn varint(&mut self) -> Result<u64, SqlError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(corrupt("varint too long"))
    }
    fn u64le(&mut self) -> Result<u64, SqlError> {
        let b = self.take(8)?;
        let arr: [u8; 8] = b.try_into().map_err(|_| corrupt("truncated value"))?;
        Ok(u64::from_le_bytes(arr))
    }
}

/// Decodes a row value into datums in column order.
pub fn decode_row(table: &TableDesc, value: &[u8]) -> Result<Vec<Datum>, SqlError> {
    let mut row = vec![Datum::Null; table.columns.len()];
    let mut seen = vec![false; table.columns.len()];
    let mut r = Reader { buf: value };
    if r.byte()? != VERSION {
        return Err(corrupt("unknown row version"));
    }
    while !r.buf.is_empty() {
        let id = r.varint()?;
        let tag = r.byte()?;
        let d = match tag {
            1 => Datum::Int(r.u64le()? as i64),
            2 => Datum::Float(f64::from_bits(r.u64le()?)),
            3 | 5 | 7 | 12 => {
                let len = usize::try_from(r.varint()?).map_err(|_| corrupt("length"))?;
                let bytes = r.take(len)?.to_vec();
                if tag == 5 {
                    Datum::Bytes(bytes)
                } else {
                    let s = String::from_utf8(bytes).map_err(|_| corrupt("invalid UTF-8"))?;
                    match tag {
                        3 => Datum::String(s),
                        7 => Datum::Decimal(s.parse().map_err(|_| corrupt("decimal"))?),
                        _ => Datum::Json(serde_json::from_str(&s).map_err(|_| corrupt("json"))?),
                    }
                }
            }
            4 => Datum::Bool(r.byte()? != 0),
            6 => Datum::TimestampTz(r.u64le()? as i64),
            8 => Datum::Date(i32::try_from(r.u64le()? as i64).map_err(|_| corrupt("date"))?),
            9 => Datum::Timestamp(r.u64le()? as i64),
            10 => {
                let m = r.take(4)?;
                let d = r.take(4)?;
                let months = i32::from_le_bytes(m.try_into().map_err(|_| corrupt("interval"))?);
                let days = i32::from_le_bytes(d.try_into().map_err(|_| corrupt("interval"))?);
                Datum::Interval(Interval { months, days, micros: r.u64le()? as i64 })
            }
            11 => Datum::Uuid(r.take(16)?.try_into().map_err(|_| corrupt("uuid"))?),
            _ => return Err(corrupt("unknown tag")),
        };
        if let Some(pos) = table.columns.iter().position(|c| c.id as u64 == id) {
            // A column whose type no longer matches is treated as dropped.
            if d.ty() == Some(table.columns[pos].ty.base()) {
                row[pos] = d;
                seen[pos] = true;
            }
        }
    }
    for (i, c) in table.columns.iter().enumerate() {
        if !seen[i]
            && let Some(text) = &c.missing
        {
            row[i] = Datum::String(text.clone()).cast(c.ty)?;
        }
    }
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{ColumnDesc, SqlType};

    pub(crate) fn table() -> TableDesc {
        let col = |id: u32, name: &str, ty| ColumnDesc::new(id, name, ty);
        let mut t = TableDesc::new(
            "d",
            "t",
            vec![
                col(1, "a", SqlType::Int),
                col(2, "b", SqlType::String),
                col(3, "f", SqlType::Float),
                col(4, "x", SqlType::Bytes),
                col(5, "ok", SqlType::Bool),
                col(6, "ts", SqlType::TimestampTz),
            ],
            vec![0, 1],
        );
        t.id = 7;
        t
    }

    #[test]
    fn row_values_round_trip_and_skip_unknown_columns() {
        let t = table();
        let row = vec![
            Datum::Int(-5),
            Datum::String("héllo".into()),
            Datum::Null,
            Datum::Bytes(vec![0, 1, 2]),
            Datum::Bool(true),
            Datum::TimestampTz(1_700_000_000_000_000),
        ];
        let v = encode_row(&t, &row);
        assert_eq!(decode_row(&t, &v).unwrap(), row);
        let mut t2 = t.clone();
        t2.columns.remove(3); // dropped column: its value is skipped
        assert_eq!(decode_row(&t2, &v).unwrap()[3], Datum::Bool(true));
        assert!(decode_row(&t, &v[..v.len() - 1]).is_err());
    }

    #[test]
    fn keys_order_like_composite_primary_keys() {
        let t = table();
        let k = |a: i64, b: &str| row_key(&t, &[Datum::Int(a), Datum::String(b.into())]).unwrap();
        assert!(k(-1, "z") < k(0, "a"));
        assert!(k(1, "a") < k(1, "ab"));
        assert!(k(1, "ab") < k(2, ""));
        assert!(k(1, "a").starts_with(&rows_prefix(&t)));
    }
}

#[cfg(test)]
mod more_tests {
    use super::*;

    #[test]
    fn decimal_keys_sort_numerically_and_ignore_scale() {
        let enc = |s: &str| {
            let mut b = Vec::new();
            encode_decimal(&mut b, &s.parse::<Decimal>().unwrap());
            b
        };
        let vals = ["-100", "-1.5", "-1.25", "-0.001", "0", "0.001", "0.5", "1", "1.25", "1.5", "10", "99.99", "100"];
        for w in vals.windows(2) {
            assert!(enc(w[0]) < enc(w[1]), "{} < {}", w[0], w[1]);
        }
        assert_eq!(enc("1.0"), enc("1.00"));
        assert_eq!(group_key(&[Datum::Int(1)]), group_key(&[Datum::Decimal("1.0".parse().unwrap())]));
    }
}
