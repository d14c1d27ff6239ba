//! Data Factory adapters: the ARM client (and, later, the FactoryApi trait the
//! use cases depend on).

pub mod arm;
