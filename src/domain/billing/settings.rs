//! A makerspace's billing settings: its currency, its tax rates, prepaid mode and how jobs
//! are charged.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::accounting::AccountingSettings;
use super::numbering::{check_pattern, DEFAULT_CREDIT_NOTE_PATTERN, DEFAULT_INVOICE_PATTERN};
use crate::domain::pricing::Rate;
use crate::domain::validate::{check_len, Invalid};

/// Most tax rates one space lists.
pub const MAX_TAX_RATES: usize = 20;
/// The largest prepaid minimum, in minor units (ten million units of the currency).
pub const MAX_MINIMUM_MINOR: i64 = 1_000_000_000;

/// What a finished job is charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobChargePolicy {
    /// The quote the member chose at submission (what they agreed to pay).
    Quote,
    /// The grams and time the machine reported, priced with the space's price table.
    #[default]
    Actual,
}

impl JobChargePolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Quote => "quote",
            Self::Actual => "actual",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Quote, Self::Actual].into_iter().find(|p| p.as_str() == text)
    }
}

/// One tax rate a price may name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaxRate {
    /// Named by prices (`tax_rate_id`); unique in the space.
    #[schema(min_length = 1, max_length = 64, pattern = r"^[a-z0-9][a-z0-9-]{0,63}$")]
    pub id: String,
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub name: String,
    /// A percent, as a decimal (`20`, `5.5`, `18`): 0 to 100, at most 4 decimals.
    #[schema(value_type = f64, minimum = 0, maximum = 100, multiple_of = 0.0001)]
    pub percent: Rate,
}

/// A space's billing settings, as stored and as the API shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BillingSettings {
    /// ISO 4217: three capital letters. Charges keep the currency they were made in.
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: String,
    #[schema(max_items = 20)]
    pub tax_rates: Vec<TaxRate>,
    /// In prepaid mode the kiosk unlocks a machine only for a member whose wallet holds at
    /// least `prepaid_minimum_minor`.
    pub prepaid: bool,
    /// In minor units of the currency.
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    #[serde(deserialize_with = "crate::domain::validate::required_whole_number")]
    pub prepaid_minimum_minor: i64,
    pub job_charge_policy: JobChargePolicy,
    /// The invoice numbers' pattern: `{YYYY}` and `{NNNNN}` (the number in its year,
    /// zero-padded) once each [default: `INV-{YYYY}-{NNNNN}`].
    #[serde(default = "default_invoice_pattern")]
    #[schema(
        max_length = 40,
        pattern = r"^[A-Za-z0-9._/-]*(\{YYYY\}[A-Za-z0-9._/-]*\{NNNNN\}|\{NNNNN\}[A-Za-z0-9._/-]*\{YYYY\})[A-Za-z0-9._/-]*$"
    )]
    pub invoice_number_pattern: String,
    /// The credit notes' own series [default: `CN-{YYYY}-{NNNNN}`]; not the invoices' pattern.
    #[serde(default = "default_credit_note_pattern")]
    #[schema(
        max_length = 40,
        pattern = r"^[A-Za-z0-9._/-]*(\{YYYY\}[A-Za-z0-9._/-]*\{NNNNN\}|\{NNNNN\}[A-Za-z0-9._/-]*\{YYYY\})[A-Za-z0-9._/-]*$"
    )]
    pub credit_note_number_pattern: String,
    /// The monthly run: on the first days of each month, the plan fees of the month before
    /// become charges and each member's open charges of that month an invoice, finalized
    /// (`crate::services::billing_runs`) [default: false, admins finalize by hand].
    #[serde(default)]
    pub monthly_run: bool,
    /// The accounting journal export's journal codes, accounts and columns; every field has a
    /// default (journals `VT` and `BQ`, client `411`, revenue `706`, tax `4457` + the rate's id).
    #[serde(default)]
    pub accounting: AccountingSettings,
}

fn default_invoice_pattern() -> String {
    DEFAULT_INVOICE_PATTERN.to_string()
}

fn default_credit_note_pattern() -> String {
    DEFAULT_CREDIT_NOTE_PATTERN.to_string()
}

impl BillingSettings {
    /// What a space has before its admins write anything: no tax, no prepaid mode, jobs
    /// charged as they ran.
    pub fn default_for(currency: &str) -> BillingSettings {
        BillingSettings {
            currency: currency.to_string(),
            tax_rates: Vec::new(),
            prepaid: false,
            prepaid_minimum_minor: 0,
            job_charge_policy: JobChargePolicy::Actual,
            invoice_number_pattern: default_invoice_pattern(),
            credit_note_number_pattern: default_credit_note_pattern(),
            monthly_run: false,
            accounting: AccountingSettings::default(),
        }
    }

    /// Checks every rule; the first one broken is the answer.
    pub fn check(&self) -> Result<(), Invalid> {
        check_currency(&self.currency)?;
        if self.tax_rates.len() > MAX_TAX_RATES {
            return Err(Invalid::new(format!("at most {MAX_TAX_RATES} tax rates")));
        }
        for (i, rate) in self.tax_rates.iter().enumerate() {
            crate::domain::ids::validate_id(&rate.id)
                .map_err(|_| Invalid::new(format!("tax_rates[{i}].id must match [a-z0-9][a-z0-9-]{{0,63}}")))?;
            check_len(&format!("tax_rates[{i}].name"), &rate.name, 100)?;
            let percent = rate.percent.value();
            if percent < Decimal::ZERO || percent > Decimal::ONE_HUNDRED || percent.normalize().scale() > 4 {
                return Err(Invalid::new(format!("tax_rates[{i}].percent is 0 to 100 with at most 4 decimals")));
            }
            if self.tax_rates[..i].iter().any(|r| r.id == rate.id) {
                return Err(Invalid::new(format!("tax rate {:?} is listed twice", rate.id)));
            }
        }
        if !(0..=MAX_MINIMUM_MINOR).contains(&self.prepaid_minimum_minor) {
            return Err(Invalid::new(format!("prepaid_minimum_minor is 0 to {MAX_MINIMUM_MINOR}")));
        }
        check_pattern("invoice_number_pattern", &self.invoice_number_pattern)?;
        check_pattern("credit_note_number_pattern", &self.credit_note_number_pattern)?;
        if self.invoice_number_pattern == self.credit_note_number_pattern {
            return Err(Invalid::new("credit notes are numbered in their own series: their pattern differs"));
        }
        let rate_ids: Vec<&str> = self.tax_rates.iter().map(|r| r.id.as_str()).collect();
        self.accounting.check(&rate_ids)
    }

    pub fn tax_rate(&self, id: &str) -> Option<&TaxRate> {
        self.tax_rates.iter().find(|r| r.id == id)
    }
}

/// An ISO 4217 code: three capital letters (the standard's list changes; its shape does not).
pub fn check_currency(code: &str) -> Result<(), Invalid> {
    if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(Invalid::new("currency must be an ISO 4217 code: three capital letters"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> BillingSettings {
        BillingSettings {
            tax_rates: vec![TaxRate { id: "vat".into(), name: "VAT".into(), percent: Rate::parse("20").unwrap() }],
            ..BillingSettings::default_for("EUR")
        }
    }

    #[test]
    fn good_settings_pass_and_each_rule_is_checked() {
        assert!(settings().check().is_ok());
        let bad_currency = BillingSettings { currency: "eur".into(), ..settings() };
        assert!(bad_currency.check().is_err());
        let mut twice = settings();
        twice.tax_rates.push(twice.tax_rates[0].clone());
        assert!(twice.check().is_err());
        let mut over = settings();
        over.tax_rates[0].percent = Rate::parse("100.5").unwrap();
        assert!(over.check().is_err());
        let mut fine = settings();
        fine.tax_rates[0].percent = Rate::parse("5.55555").unwrap();
        assert!(fine.check().is_err());
        let negative = BillingSettings { prepaid_minimum_minor: -1, ..settings() };
        assert!(negative.check().is_err());
        let no_year = BillingSettings { invoice_number_pattern: "INV-{NNNNN}".into(), ..settings() };
        assert!(no_year.check().is_err());
        let same = BillingSettings { credit_note_number_pattern: "INV-{YYYY}-{NNNNN}".into(), ..settings() };
        assert!(same.check().is_err());
    }
}
