//! The library half of the `allam` command: how progress is shown on a terminal or in a log
//! ([`display`]), for the command itself and for programs that run the recipe
//! (`examples/reproduce.rs`).
pub mod display;
