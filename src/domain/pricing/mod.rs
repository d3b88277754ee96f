//! Pricing (issue 12, "Quotes"): a makerspace's price table and the quotes made from a job
//! file's analysis with it. Pure: no I/O; the table is stored and served by
//! `crate::services::pricing`.
//!
//! - [`rate`]: the exact decimals a table holds, read from and written to JSON numbers.
//! - [`table`]: the table, its checks, and the default one a makerspace starts with.
//! - [`quote`]: the options of a job and their prices in minor units of the currency.

pub mod quote;
pub mod rate;
pub mod table;

pub use quote::{quote_options, Quality, QuoteError, QuoteInput, QuoteOption, Quotes};
pub use rate::Rate;
pub use table::{
    LaserRates, MachineRates, MaterialPrice, PriceTable, PriceTableSpec, PrinterRates, PrinterType, QualityFactors,
    TimeRate,
};

#[cfg(test)]
mod tests;
