//! Billing's catalogue: a space's billing settings (its currency stays on the makerspace) and
//! each machine's price. The ledger (charges, wallet, idempotency keys) is
//! [`super::billing_ledger`].

use chrono::{DateTime, Utc};

use super::{json_column, to_json_text, with_pool, with_writer, Store, StoreError};
use crate::domain::billing::{BillingSettings, BillingUnit, JobChargePolicy, MachinePrice};
use crate::domain::pricing::Rate;

#[derive(sqlx::FromRow)]
struct SettingsRow {
    currency: String,
    tax_rates: Option<String>,
    prepaid: Option<bool>,
    prepaid_minimum_minor: Option<i64>,
    job_charge_policy: Option<String>,
    invoice_number_pattern: Option<String>,
    credit_note_number_pattern: Option<String>,
    monthly_run: Option<bool>,
    accounting: Option<String>,
}

#[derive(sqlx::FromRow)]
struct PriceRow {
    rate_per_hour: String,
    billing_unit: String,
    minimum_minor: i64,
    busy_rate_per_hour: Option<String>,
    idle_rate_per_hour: Option<String>,
    flat_fee_minor: i64,
    tax_rate_id: Option<String>,
}

fn rate_column(column: &str, text: &str) -> Result<Rate, StoreError> {
    Rate::parse(text).ok_or_else(|| StoreError::Corrupt(format!("{column} {text:?}")))
}

impl TryFrom<PriceRow> for MachinePrice {
    type Error = StoreError;

    fn try_from(r: PriceRow) -> Result<MachinePrice, StoreError> {
        Ok(MachinePrice {
            rate_per_hour: rate_column("equipment_prices.rate_per_hour", &r.rate_per_hour)?,
            billing_unit: BillingUnit::parse(&r.billing_unit)
                .ok_or_else(|| StoreError::Corrupt(format!("equipment_prices.billing_unit {:?}", r.billing_unit)))?,
            minimum_minor: r.minimum_minor,
            busy_rate_per_hour: r
                .busy_rate_per_hour
                .map(|t| rate_column("equipment_prices.busy_rate_per_hour", &t))
                .transpose()?,
            idle_rate_per_hour: r
                .idle_rate_per_hour
                .map(|t| rate_column("equipment_prices.idle_rate_per_hour", &t))
                .transpose()?,
            flat_fee_minor: r.flat_fee_minor,
            tax_rate_id: r.tax_rate_id,
        })
    }
}

impl Store {
    /// A space's billing settings (the defaults until its admins write them); `None` for an
    /// unknown space.
    pub async fn billing_settings(&self, makerspace_id: &str) -> Result<Option<BillingSettings>, StoreError> {
        let row: Option<SettingsRow> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT m.currency, s.tax_rates, s.prepaid, s.prepaid_minimum_minor, s.job_charge_policy,
                 s.invoice_number_pattern, s.credit_note_number_pattern, s.monthly_run, s.accounting
                 FROM makerspaces m LEFT JOIN billing_settings s ON s.makerspace_id = m.id WHERE m.id = $1",
            )
            .bind(makerspace_id)
            .fetch_optional(pool)
            .await?
        });
        let Some(row) = row else { return Ok(None) };
        let mut settings = BillingSettings::default_for(&row.currency);
        if let Some(tax_rates) = row.tax_rates {
            settings.tax_rates = json_column("billing_settings.tax_rates", &tax_rates)?;
            settings.prepaid = row.prepaid.unwrap_or(false);
            settings.prepaid_minimum_minor = row.prepaid_minimum_minor.unwrap_or(0);
            let policy = row.job_charge_policy.unwrap_or_default();
            settings.job_charge_policy = JobChargePolicy::parse(&policy)
                .ok_or_else(|| StoreError::Corrupt(format!("billing_settings.job_charge_policy {policy:?}")))?;
            if let Some(pattern) = row.invoice_number_pattern {
                settings.invoice_number_pattern = pattern;
            }
            if let Some(pattern) = row.credit_note_number_pattern {
                settings.credit_note_number_pattern = pattern;
            }
            settings.monthly_run = row.monthly_run.unwrap_or(false);
            if let Some(accounting) = row.accounting {
                settings.accounting = json_column("billing_settings.accounting", &accounting)?;
            }
        }
        Ok(Some(settings))
    }

    /// Writes a space's settings and its currency, together.
    pub async fn put_billing_settings(
        &self,
        makerspace_id: &str,
        settings: &BillingSettings,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        with_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("UPDATE makerspaces SET currency = $2 WHERE id = $1")
                .bind(makerspace_id)
                .bind(&settings.currency)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO billing_settings (makerspace_id, tax_rates, prepaid, prepaid_minimum_minor,
                 job_charge_policy, updated_at, updated_by, invoice_number_pattern, credit_note_number_pattern,
                 monthly_run, accounting)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (makerspace_id) DO UPDATE SET tax_rates = excluded.tax_rates,
                 prepaid = excluded.prepaid, prepaid_minimum_minor = excluded.prepaid_minimum_minor,
                 job_charge_policy = excluded.job_charge_policy, updated_at = excluded.updated_at,
                 updated_by = excluded.updated_by, invoice_number_pattern = excluded.invoice_number_pattern,
                 credit_note_number_pattern = excluded.credit_note_number_pattern, monthly_run = excluded.monthly_run,
                 accounting = excluded.accounting",
            )
            .bind(makerspace_id)
            .bind(to_json_text(&settings.tax_rates))
            .bind(settings.prepaid)
            .bind(settings.prepaid_minimum_minor)
            .bind(settings.job_charge_policy.as_str())
            .bind(at)
            .bind(by)
            .bind(&settings.invoice_number_pattern)
            .bind(&settings.credit_note_number_pattern)
            .bind(settings.monthly_run)
            .bind(to_json_text(&settings.accounting))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        self.cache.clear();
        Ok(())
    }

    /// A machine's price: its own row, or, for a machine priced only by the `hourly_rate` it
    /// had before billing, that rate (read from its shortest text, as the migration did).
    pub async fn equipment_price(&self, equipment_id: &str) -> Result<Option<MachinePrice>, StoreError> {
        let row: Option<PriceRow> = with_pool!(self, pool => {
            sqlx::query_as(
                "SELECT rate_per_hour, billing_unit, minimum_minor, busy_rate_per_hour, idle_rate_per_hour,
                 flat_fee_minor, tax_rate_id FROM equipment_prices WHERE equipment_id = $1",
            )
            .bind(equipment_id)
            .fetch_optional(pool)
            .await?
        });
        if let Some(row) = row {
            return Ok(Some(row.try_into()?));
        }
        let legacy = self.get_equipment(equipment_id).await?.and_then(|e| e.hourly_rate);
        Ok(legacy.and_then(|rate| Rate::parse(&rate.to_string())).map(MachinePrice::hourly))
    }

    /// Writes a machine's price, and its legacy `hourly_rate` to the same figure so that the
    /// equipment record does not show an older one.
    pub async fn put_equipment_price(
        &self,
        makerspace_id: &str,
        equipment_id: &str,
        price: &MachinePrice,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let text = |rate: Option<Rate>| rate.map(|r| r.to_string());
        let legacy: f64 = price.rate_per_hour.to_string().parse().unwrap_or(0.0);
        let written = with_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            let found = sqlx::query("UPDATE equipment SET hourly_rate = $3 WHERE id = $1 AND makerspace_id = $2")
                .bind(equipment_id)
                .bind(makerspace_id)
                .bind(legacy)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if found == 0 {
                return Ok(false);
            }
            sqlx::query(
                "INSERT INTO equipment_prices (equipment_id, makerspace_id, rate_per_hour, billing_unit, minimum_minor,
                 busy_rate_per_hour, idle_rate_per_hour, flat_fee_minor, tax_rate_id, updated_at, updated_by)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (equipment_id) DO UPDATE SET rate_per_hour = excluded.rate_per_hour,
                 billing_unit = excluded.billing_unit, minimum_minor = excluded.minimum_minor,
                 busy_rate_per_hour = excluded.busy_rate_per_hour, idle_rate_per_hour = excluded.idle_rate_per_hour,
                 flat_fee_minor = excluded.flat_fee_minor, tax_rate_id = excluded.tax_rate_id,
                 updated_at = excluded.updated_at, updated_by = excluded.updated_by",
            )
            .bind(equipment_id)
            .bind(makerspace_id)
            .bind(price.rate_per_hour.to_string())
            .bind(price.billing_unit.as_str())
            .bind(price.minimum_minor)
            .bind(text(price.busy_rate_per_hour))
            .bind(text(price.idle_rate_per_hour))
            .bind(price.flat_fee_minor)
            .bind(&price.tax_rate_id)
            .bind(at)
            .bind(by)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            true
        });
        self.cache.clear();
        Ok(written)
    }
}
