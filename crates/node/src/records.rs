//! How records stored in the system range are encoded.
//!
//! Catalog descriptors (databases, tables) are JSON: they change shape as SQL grows (new column
//! kinds, constraints, indexes) and are read rarely (gateways cache them), so a self-describing
//! format that tolerates added fields is worth its bytes. Cluster records read on hot paths or by
//! every node (range descriptors, node records, counters) are postcard.

use meridian_sql::{DatabaseDesc, TableDesc};
use meridian_types::{KvError, NodeDescriptor, RangeDescriptor, ZoneConfig};

pub trait SysRecord: Sized {
    fn encode_record(&self) -> Vec<u8>;
    fn decode_record(b: &[u8]) -> Result<Self, KvError>;
}

macro_rules! json_record {
    ($t:ty) => {
        impl SysRecord for $t {
            fn encode_record(&self) -> Vec<u8> {
                serde_json::to_vec(self).unwrap_or_default()
            }
            fn decode_record(b: &[u8]) -> Result<Self, KvError> {
                serde_json::from_slice(b).map_err(|e| KvError::Internal(format!("corrupt catalog record: {e}")))
            }
        }
    };
}

macro_rules! postcard_record {
    ($t:ty) => {
        impl SysRecord for $t {
            fn encode_record(&self) -> Vec<u8> {
                crate::admin::encode(self)
            }
            fn decode_record(b: &[u8]) -> Result<Self, KvError> {
                crate::admin::decode(b)
            }
        }
    };
}

json_record!(TableDesc);
json_record!(DatabaseDesc);
postcard_record!(RangeDescriptor);
postcard_record!(NodeDescriptor);
postcard_record!(ZoneConfig);
postcard_record!(u64);
postcard_record!(String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_records_tolerate_added_fields() {
        let d = DatabaseDesc { name: "bank".into() };
        assert_eq!(DatabaseDesc::decode_record(&d.encode_record()).unwrap(), d);
        // A record written by a newer version with an extra field still decodes.
        let newer = br#"{"name": "bank", "regions": ["us-east"]}"#;
        assert_eq!(DatabaseDesc::decode_record(newer).unwrap(), d);
        assert!(DatabaseDesc::decode_record(b"garbage").is_err());
        assert_eq!(u64::decode_record(&7u64.encode_record()).unwrap(), 7);
    }
}
