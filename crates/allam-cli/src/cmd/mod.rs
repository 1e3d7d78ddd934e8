//! One module per command group.
pub mod align;
pub mod bench;
pub mod data;
pub mod eval;
pub mod model;
pub mod recipe;
pub mod tokenizer;
pub mod train;
