//! Differential testing against PostgreSQL (placeholder while being written).
