//! Row storage layout: how a table row becomes one KV pair.
//!
//! - Key: `keys::index_prefix(table.id, 1)` (index 1 = the primary index) followed by the
//!   primary-key column values in PK order, each with the order-preserving encoder of its type:
//!   Int → `encode_i64`, Float → `encode_f64`, String/Bytes → `encode_bytes`, Bool →
//!   `encode_bool`, TimestampTz → `encode_i64` of microseconds. Byte order of keys therefore
//!   equals the PK order of rows, and a table's rows all lie in `keys::table_span(id)`.
//! - Value: a version byte (`1`) then, for each non-NULL column (PK columns included, so a row
//!   decodes from its value alone), `varint(column id) tag payload`: tag 1 Int (8 bytes LE),
//!   2 Float (8 bytes LE bits), 3 String (varint len + UTF-8), 4 Bool (1 byte), 5 Bytes
//!   (varint len + bytes), 6 TimestampTz (8 bytes LE micros). NULL columns are omitted.
//!   Decoding matches column ids against the descriptor: unknown ids (dropped columns) are
//!   skipped, missing ids (added columns, NULLs) decode as NULL.
//!
//! Not handled: secondary indexes (index ids > 1), column families.

use crate::catalog::TableDesc;
use crate::datum::Datum;
use crate::error::SqlError;
use meridian_types::KvError;
use meridian_types::keys;

/// The primary index id within a table.
pub const PRIMARY_INDEX: u32 = 1;
const VERSION: u8 = 1;

/// The key prefix of every row of `table`.
pub fn rows_prefix(table: &TableDesc) -> Vec<u8> {
    keys::index_prefix(table.id, PRIMARY_INDEX)
}

/// Appends one value, encoded order-preservingly for its column type. The datum must already be
/// of type `ty` (callers coerce); NULL is rejected (PK columns are NOT NULL).
pub fn encode_key_datum(buf: &mut Vec<u8>, d: &Datum) -> Result<(), SqlError> {
    match d {
        Datum::Int(i) | Datum::TimestampTz(i) => keys::encode_i64(buf, *i),
        Datum::Float(f) => keys::encode_f64(buf, *f),
        Datum::String(s) => keys::encode_bytes(buf, s.as_bytes()),
        Datum::Bytes(b) => keys::encode_bytes(buf, b),
        Datum::Bool(b) => keys::encode_bool(buf, *b),
        Datum::Null => return Err(corrupt("NULL in primary key")),
    }
    Ok(())
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
        };
        put_varint(&mut buf, col.id as u64);
        buf.push(tag);
        match d {
            Datum::Int(i) | Datum::TimestampTz(i) => buf.extend_from_slice(&i.to_le_bytes()),
            Datum::Float(f) => buf.extend_from_slice(&f.to_bits().to_le_bytes()),
            Datum::String(s) => {
                put_varint(&mut buf, s.len() as u64);
                buf.extend_from_slice(s.as_bytes());
            }
            Datum::Bytes(b) => {
                put_varint(&mut buf, b.len() as u64);
                buf.extend_from_slice(b);
            }
            Datum::Bool(b) => buf.push(*b as u8),
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
            3 | 5 => {
                let len = usize::try_from(r.varint()?).map_err(|_| corrupt("length"))?;
                let bytes = r.take(len)?.to_vec();
                if tag == 3 { Datum::String(String::from_utf8(bytes).map_err(|_| corrupt("invalid UTF-8"))?) } else { Datum::Bytes(bytes) }
            }
            4 => Datum::Bool(r.byte()? != 0),
            6 => Datum::TimestampTz(r.u64le()? as i64),
            _ => return Err(corrupt("unknown tag")),
        };
        if let Some(pos) = table.columns.iter().position(|c| c.id as u64 == id) {
            // A column whose type no longer matches is treated as dropped.
            if d.ty() == Some(table.columns[pos].ty) {
                row[pos] = d;
            }
        }
    }
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{ColumnDesc, SqlType};

    pub(crate) fn table() -> TableDesc {
        let col = |id: u32, name: &str, ty| ColumnDesc { id, name: name.into(), ty, nullable: true, default: None };
        TableDesc {
            id: 7,
            db: "d".into(),
            name: "t".into(),
            columns: vec![
                col(1, "a", SqlType::Int),
                col(2, "b", SqlType::String),
                col(3, "f", SqlType::Float),
                col(4, "x", SqlType::Bytes),
                col(5, "ok", SqlType::Bool),
                col(6, "ts", SqlType::TimestampTz),
            ],
            primary_key: vec![0, 1],
            next_column_id: 7,
        }
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
