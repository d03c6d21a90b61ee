//! The controllers: they converge Docker toward the objects in the store.

pub mod plan;
