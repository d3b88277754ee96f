//! A space's accounting settings: the journal codes, the accounts and the columns of its
//! accounting journal export ([`super::journal`]). The defaults follow the French chart of
//! accounts (plan comptable général), as Fab-manager's export does, so that a space that
//! writes nothing gets a journal an accountant can import.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::validate::Invalid;

/// The longest journal code or account number (accounting programs take 8 to 20).
pub const MAX_CODE_LEN: usize = 20;
/// Most per-rate tax accounts (as many as a space may have tax rates).
pub const MAX_TAX_ACCOUNTS: usize = super::settings::MAX_TAX_RATES;

/// A column of the journal export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JournalColumn {
    /// The entry's date, UTC, `YYYY-MM-DD`.
    Date,
    /// The journal code (sales or payments).
    Journal,
    Account,
    /// The invoice's or credit note's number (a payment: its invoice's).
    DocumentNumber,
    Label,
    /// Decimal text in the currency's unit (`12.50`; JPY `1250`).
    Debit,
    Credit,
    Currency,
    MemberId,
    MemberName,
    /// `invoice`, `credit_note`, `void`, `payment` or `refund`.
    Entry,
}

impl JournalColumn {
    /// The header of the column: its name as settings spell it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Date => "date",
            Self::Journal => "journal",
            Self::Account => "account",
            Self::DocumentNumber => "document_number",
            Self::Label => "label",
            Self::Debit => "debit",
            Self::Credit => "credit",
            Self::Currency => "currency",
            Self::MemberId => "member_id",
            Self::MemberName => "member_name",
            Self::Entry => "entry",
        }
    }
}

/// The columns when a space chose none: what the issue names, in its order.
pub const DEFAULT_COLUMNS: [JournalColumn; 8] = [
    JournalColumn::Date,
    JournalColumn::Journal,
    JournalColumn::Account,
    JournalColumn::DocumentNumber,
    JournalColumn::Label,
    JournalColumn::Debit,
    JournalColumn::Credit,
    JournalColumn::Currency,
];

/// A tax rate's own account, instead of `tax_account` followed by the rate's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaxAccount {
    #[schema(min_length = 1, max_length = 64, pattern = r"^[a-z0-9][a-z0-9-]{0,63}$")]
    pub tax_rate_id: String,
    #[schema(min_length = 1, max_length = 20, pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,19}$")]
    pub account: String,
}

/// Journal codes, accounts and columns of the export. Every field has a default, so a space
/// writes only what differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AccountingSettings {
    /// Invoices, credit notes and voids [default: `VT`, ventes].
    #[schema(min_length = 1, max_length = 20, pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,19}$")]
    pub sales_journal: String,
    /// Payments and refunds [default: `BQ`, banque].
    #[schema(min_length = 1, max_length = 20, pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,19}$")]
    pub payments_journal: String,
    /// The members' receivable (client) account [default: `411`].
    #[schema(min_length = 1, max_length = 20, pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,19}$")]
    pub client_account: String,
    /// Revenue from sessions on machines [default: `706`].
    #[schema(min_length = 1, max_length = 20, pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,19}$")]
    pub machine_use_account: String,
    /// Revenue from jobs (machine time and material) [default: `706`].
    #[schema(min_length = 1, max_length = 20, pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,19}$")]
    pub jobs_account: String,
    /// Revenue from membership plan fees [default: `706`].
    #[schema(min_length = 1, max_length = 20, pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,19}$")]
    pub plan_fees_account: String,
    /// Revenue from manual lines, discounts and anything else [default: `706`].
    #[schema(min_length = 1, max_length = 20, pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,19}$")]
    pub other_account: String,
    /// Collected tax: a rate's account is this followed by the rate's id (`4457vat`) unless
    /// `tax_accounts` names it [default: `4457`].
    #[schema(min_length = 1, max_length = 20, pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,19}$")]
    pub tax_account: String,
    #[schema(max_items = 20)]
    pub tax_accounts: Vec<TaxAccount>,
    /// Cash [default: `530`].
    #[schema(min_length = 1, max_length = 20, pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,19}$")]
    pub cash_account: String,
    /// Bank transfers [default: `512`].
    #[schema(min_length = 1, max_length = 20, pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,19}$")]
    pub bank_account: String,
    /// The credit wallet, money the space holds for its members (a liability) [default: `4191`].
    #[schema(min_length = 1, max_length = 20, pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,19}$")]
    pub wallet_account: String,
    /// Payments through a gateway, until the gateway pays them out [default: `511`].
    #[schema(min_length = 1, max_length = 20, pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,19}$")]
    pub gateway_account: String,
    /// The export's columns, in order, each at most once [default: date, journal, account,
    /// document_number, label, debit, credit, currency].
    #[schema(min_items = 1, max_items = 11)]
    pub columns: Vec<JournalColumn>,
}

impl Default for AccountingSettings {
    fn default() -> Self {
        AccountingSettings {
            sales_journal: "VT".into(),
            payments_journal: "BQ".into(),
            client_account: "411".into(),
            machine_use_account: "706".into(),
            jobs_account: "706".into(),
            plan_fees_account: "706".into(),
            other_account: "706".into(),
            tax_account: "4457".into(),
            tax_accounts: Vec::new(),
            cash_account: "530".into(),
            bank_account: "512".into(),
            wallet_account: "4191".into(),
            gateway_account: "511".into(),
            columns: DEFAULT_COLUMNS.to_vec(),
        }
    }
}

/// A journal code or account: letters, digits and `. _ -`, not starting with a sign (so no
/// spreadsheet reads it as a formula), at most [`MAX_CODE_LEN`].
fn check_code(field: &str, code: &str) -> Result<(), Invalid> {
    let mut bytes = code.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric());
    if !first_ok || code.len() > MAX_CODE_LEN || !bytes.all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
        return Err(Invalid::new(format!(
            "{field} is 1 to {MAX_CODE_LEN} letters, digits and . _ - starting with a letter or digit"
        )));
    }
    Ok(())
}

impl AccountingSettings {
    /// Checks every rule; the first one broken is the answer. `tax_rate_ids` are the space's.
    pub fn check(&self, tax_rate_ids: &[&str]) -> Result<(), Invalid> {
        let codes = [
            ("accounting.sales_journal", &self.sales_journal),
            ("accounting.payments_journal", &self.payments_journal),
            ("accounting.client_account", &self.client_account),
            ("accounting.machine_use_account", &self.machine_use_account),
            ("accounting.jobs_account", &self.jobs_account),
            ("accounting.plan_fees_account", &self.plan_fees_account),
            ("accounting.other_account", &self.other_account),
            ("accounting.tax_account", &self.tax_account),
            ("accounting.cash_account", &self.cash_account),
            ("accounting.bank_account", &self.bank_account),
            ("accounting.wallet_account", &self.wallet_account),
            ("accounting.gateway_account", &self.gateway_account),
        ];
        for (field, code) in codes {
            check_code(field, code)?;
        }
        if self.tax_accounts.len() > MAX_TAX_ACCOUNTS {
            return Err(Invalid::new(format!("accounting.tax_accounts lists at most {MAX_TAX_ACCOUNTS} rates")));
        }
        for (i, t) in self.tax_accounts.iter().enumerate() {
            check_code(&format!("accounting.tax_accounts[{i}].account"), &t.account)?;
            if !tax_rate_ids.contains(&t.tax_rate_id.as_str()) {
                return Err(Invalid::new(format!(
                    "accounting.tax_accounts[{i}].tax_rate_id {:?} is not one of the space's tax rates",
                    t.tax_rate_id
                )));
            }
            if self.tax_accounts[..i].iter().any(|o| o.tax_rate_id == t.tax_rate_id) {
                return Err(Invalid::new(format!("accounting.tax_accounts names {:?} twice", t.tax_rate_id)));
            }
        }
        if self.columns.is_empty() {
            return Err(Invalid::new("accounting.columns lists at least one column"));
        }
        if let Some(twice) = self.columns.iter().enumerate().find(|(i, c)| self.columns[..*i].contains(c)) {
            return Err(Invalid::new(format!("accounting.columns lists {:?} twice", twice.1.name())));
        }
        Ok(())
    }

    /// The account of a tax rate (`None`: lines without tax, which have no tax entry).
    pub fn tax_account_of(&self, tax_rate_id: &str) -> String {
        match self.tax_accounts.iter().find(|t| t.tax_rate_id == tax_rate_id) {
            Some(t) => t.account.clone(),
            None => format!("{}{tax_rate_id}", self.tax_account),
        }
    }

    /// The account a payment method's money is in.
    pub fn method_account(&self, method: &str) -> &str {
        match method {
            "cash" => &self.cash_account,
            "wallet" => &self.wallet_account,
            "bank_transfer" => &self.bank_account,
            // Every gateway (stripe, razorpay, ...) clears through one account.
            _ => &self.gateway_account,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_pass_and_each_rule_is_checked() {
        let good = AccountingSettings::default();
        assert!(good.check(&[]).is_ok());
        assert_eq!(good.tax_account_of("vat"), "4457vat");
        assert_eq!((good.method_account("cash"), good.method_account("stripe")), ("530", "511"));

        let formula = AccountingSettings { client_account: "=1+1".into(), ..good.clone() };
        assert!(formula.check(&[]).is_err());
        let long = AccountingSettings { sales_journal: "V".repeat(21), ..good.clone() };
        assert!(long.check(&[]).is_err());
        let empty = AccountingSettings { columns: vec![], ..good.clone() };
        assert!(empty.check(&[]).is_err());
        let twice = AccountingSettings { columns: vec![JournalColumn::Date, JournalColumn::Date], ..good.clone() };
        assert!(twice.check(&[]).is_err());

        let own = TaxAccount { tax_rate_id: "vat".into(), account: "445711".into() };
        let named = AccountingSettings { tax_accounts: vec![own.clone()], ..good.clone() };
        assert!(named.check(&[]).is_err(), "a rate the space does not have");
        assert!(named.check(&["vat"]).is_ok());
        assert_eq!(named.tax_account_of("vat"), "445711");
        let doubled = AccountingSettings { tax_accounts: vec![own.clone(), own], ..good };
        assert!(doubled.check(&["vat"]).is_err());
    }

    #[test]
    fn unknown_columns_and_fields_are_refused_and_missing_ones_default() {
        let partial: AccountingSettings =
            serde_json::from_str(r#"{"client_account": "4110", "columns": ["date", "debit"]}"#).unwrap();
        assert_eq!((partial.client_account.as_str(), partial.sales_journal.as_str()), ("4110", "VT"));
        assert!(serde_json::from_str::<AccountingSettings>(r#"{"columns": ["date", "amount"]}"#).is_err());
        assert!(serde_json::from_str::<AccountingSettings>(r#"{"client": "411"}"#).is_err());
    }
}
