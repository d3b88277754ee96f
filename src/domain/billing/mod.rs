//! Billing (issue 14), the pure rules: no I/O. The workflows are `crate::services::billing`
//! and `crate::services::billing_wallet`; the SQL is `crate::store::billing*`.
//!
//! - [`settings`]: a makerspace's billing settings (currency, tax rates, prepaid mode, the
//!   job charge policy) and their checks.
//! - [`price`]: what an hour of one machine costs, how its time is rounded, and the charge
//!   of a session of it ([`price::session_charge`]), rounded once, tax computed once.
//! - [`credits`]: a plan's included minutes and the period they are counted in.
//! - [`numbering`]: invoice and credit note numbers from a space's patterns.
//! - [`documents`]: invoices and credit notes as frozen documents: tax per rate, payment
//!   status, and the integrity chain's hashes.
//! - [`runs`]: the monthly run's calendar (which plan periods start in a month).
//! - [`gateways`]: Stripe and Razorpay webhooks: signatures, and the payment an event carries.
//! - [`accounting`]: the journal codes, accounts and columns of the accounting export.
//! - [`journal`]: the double-entry journal of a period, from documents and payments.
//! - [`revenue`]: revenue of a period grouped by month, machine or material.
//! - [`pdf`]: an invoice as a PDF (layout, embedded font, writer), a pure function.

pub mod accounting;
pub mod credits;
pub mod documents;
pub mod gateways;
pub mod journal;
pub mod numbering;
pub mod pdf;
pub mod price;
pub mod revenue;
pub mod runs;
pub mod settings;

pub use credits::{credit_period, IncludedMinutes};
pub use price::{session_charge, with_tax, BillingUnit, MachinePrice, SessionCharge, SessionUse};
pub use settings::{BillingSettings, JobChargePolicy, TaxRate};
