//! A makerspace's prices: its price table, read by the people of the space and replaced by
//! its admins, and the quotes made with it, both as previews (a front end or the MakrX Store
//! asking what a file would cost) and at job intake ([`quote`], stored with the job). The
//! rules are the domain's ([`crate::domain::pricing`]); a space that has not written its own
//! table quotes from the default one.

use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::access::Principal;
use crate::domain::pricing::{quote_options, PriceTable, PriceTableSpec, QuoteError, QuoteInput, Quotes};
use crate::domain::validate::Invalid;
use crate::store::makerspaces::MakerspaceRecord;
use crate::store::price_tables::PriceTableRecord;
use crate::store::StoreError;

use super::access::{space_for, AccessError};
use super::Services;

#[derive(Debug, thiserror::Error)]
pub enum PricingError {
    #[error(transparent)]
    Access(#[from] AccessError),
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The job cannot be priced with the space's table (no rates for its machine, no
    /// material, not the figures its machine is priced from).
    #[error(transparent)]
    Unpriceable(QuoteError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<QuoteError> for PricingError {
    fn from(err: QuoteError) -> PricingError {
        match err {
            QuoteError::Invalid(invalid) => PricingError::Invalid(invalid),
            other => PricingError::Unpriceable(other),
        }
    }
}

/// A space's price table as the API answers it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PriceTableView {
    /// ISO 4217, the makerspace's: the table's prices are in its major unit, quotes in its
    /// minor unit.
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: String,
    /// True while the space has no table of its own and quotes from the default one, whose
    /// prices are placeholders.
    pub default: bool,
    pub table: PriceTableSpec,
    /// When its admins last wrote it (null for the default).
    pub updated_at: Option<DateTime<Utc>>,
    /// Who did (null for the default).
    pub updated_by: Option<String>,
}

impl PriceTableView {
    fn new(currency: &str, stored: Option<PriceTableRecord>) -> PriceTableView {
        match stored {
            Some(record) => PriceTableView {
                currency: currency.to_string(),
                default: false,
                table: record.table.into(),
                updated_at: Some(record.updated_at),
                updated_by: Some(record.updated_by),
            },
            None => PriceTableView {
                currency: currency.to_string(),
                default: true,
                table: PriceTable::default_for(currency).into(),
                updated_at: None,
                updated_by: None,
            },
        }
    }
}

/// The space's table, for a caller who may read the space.
pub async fn table(svc: &Services, caller: &Principal, space_id: &str) -> Result<PriceTableView, PricingError> {
    let space = space_for(svc, caller.can_read_space(space_id), space_id).await?;
    Ok(PriceTableView::new(&space.currency, svc.store.get_price_table(space_id).await?))
}

/// Replaces the space's table, for its admins. A table that breaks a rule changes nothing.
pub async fn replace(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    spec: PriceTableSpec,
) -> Result<PriceTableView, PricingError> {
    let space = space_for(svc, caller.can_manage_space(space_id), space_id).await?;
    let record = PriceTableRecord {
        makerspace_id: space.id,
        table: PriceTable::new(spec)?,
        // As the database keeps it (microseconds), so the answer matches a later read.
        updated_at: Utc::now().trunc_subsecs(6),
        updated_by: caller.user_id.clone(),
    };
    svc.store.put_price_table(&record).await?;
    Ok(PriceTableView::new(&space.currency, Some(record)))
}

/// What a job would cost, for a caller who may read the space.
pub async fn preview(
    svc: &Services,
    caller: &Principal,
    space_id: &str,
    input: &QuoteInput,
) -> Result<Quotes, PricingError> {
    let space = space_for(svc, caller.can_read_space(space_id), space_id).await?;
    quote_in(svc, &space, input).await
}

/// The quotes of a job in a makerspace, as intake stores them with the job: the caller was
/// already let in by whoever calls this. An unknown space is [`AccessError::NotFound`].
pub async fn quote(svc: &Services, space_id: &str, input: &QuoteInput) -> Result<Quotes, PricingError> {
    let space = svc.store.get_makerspace(space_id).await?.ok_or(AccessError::NotFound("makerspace"))?;
    quote_in(svc, &space, input).await
}

async fn quote_in(svc: &Services, space: &MakerspaceRecord, input: &QuoteInput) -> Result<Quotes, PricingError> {
    let table = match svc.store.get_price_table(&space.id).await? {
        Some(record) => record.table,
        None => PriceTable::default_for(&space.currency),
    };
    Ok(quote_options(&table, input, &space.currency)?)
}
