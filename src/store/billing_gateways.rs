//! Payment gateways: a space's accounts (secrets sealed by the service before they get
//! here), the checkouts opened, and the webhook events received. A verified event that says
//! money arrived is recorded in one transaction with what it pays: once per event id (the
//! event's row) and once per payment (an idempotency key named after the gateway's payment),
//! so that a redelivery, or two events about one payment, change nothing.

use chrono::{DateTime, Utc};

use super::billing_ledger::{IdemKey, NewWalletEntry};
use super::billing_sql::{claim_key, insert_wallet_entry, invoice_for_update, lock_member, set_key_result};
use super::{with_pool, with_writer, Store, StoreError};

/// A space's account with a gateway, as stored: `settings` is JSON with sealed secrets.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct GatewayRow {
    pub gateway: String,
    pub settings: String,
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
}

/// A checkout opened with a gateway for an invoice.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CheckoutRecord {
    pub id: String,
    pub makerspace_id: String,
    pub invoice_id: String,
    pub gateway: String,
    pub external_id: String,
    pub amount_minor: i64,
    pub currency: String,
    pub url: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

const CHECKOUT_COLUMNS: &str =
    "id, makerspace_id, invoice_id, gateway, external_id, amount_minor, currency, url, created_by, created_at";

/// A verified webhook event to record.
#[derive(Debug, Clone)]
pub struct GatewayEventRecord<'a> {
    pub gateway: &'static str,
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub at: DateTime<Utc>,
}

/// Money a gateway received for one of the space's checkouts.
#[derive(Debug, Clone)]
pub struct ReceivedPayment<'a> {
    pub checkout: &'a CheckoutRecord,
    /// The gateway's payment, once: the idempotency key of what it records.
    pub payment_ref: &'a str,
    /// Shown on the payment row (the PaymentIntent, the Razorpay payment).
    pub reference: &'a str,
    pub amount_minor: i64,
    pub currency: &'a str,
}

/// What an event changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventOutcome {
    /// The event id was received before: nothing changed this time.
    Duplicate,
    /// An event makrcave does not act on (or an unpaid session).
    Ignored,
    /// The payment was recorded before, by another event about it.
    DuplicatePayment,
    /// Money in another currency than the invoice's: recorded as received, applied to
    /// nothing; an admin settles it at the gateway.
    CurrencyMismatch,
    /// Paid (part of) the invoice; `credited` is what was beyond what was due, and went to the
    /// member's wallet (the invoice was paid meanwhile by other means, or voided).
    Paid { paid_minor: i64, credited_minor: i64 },
}

impl EventOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Duplicate => "duplicate",
            Self::Ignored => "ignored",
            Self::DuplicatePayment => "duplicate_payment",
            Self::CurrencyMismatch => "currency_mismatch",
            Self::Paid { credited_minor: 0, .. } => "paid",
            Self::Paid { paid_minor: 0, .. } => "credited",
            Self::Paid { .. } => "paid_and_credited",
        }
    }
}

impl Store {
    /// A space's account with `gateway`, if it has one.
    pub async fn gateway(&self, space: &str, gateway: &str) -> Result<Option<GatewayRow>, StoreError> {
        with_pool!(self, pool => Ok(sqlx::query_as(
            "SELECT gateway, settings, updated_by, updated_at FROM billing_gateways
             WHERE makerspace_id = $1 AND gateway = $2",
        )
        .bind(space).bind(gateway).fetch_optional(pool).await?))
    }

    /// A space's accounts, by gateway.
    pub async fn gateways(&self, space: &str) -> Result<Vec<GatewayRow>, StoreError> {
        with_pool!(self, pool => Ok(sqlx::query_as(
            "SELECT gateway, settings, updated_by, updated_at FROM billing_gateways
             WHERE makerspace_id = $1 ORDER BY gateway",
        )
        .bind(space).fetch_all(pool).await?))
    }

    /// Writes a space's account with a gateway (replacing the one before).
    pub async fn put_gateway(&self, space: &str, row: &GatewayRow) -> Result<(), StoreError> {
        with_writer!(self, pool => {
            sqlx::query(
                "INSERT INTO billing_gateways (makerspace_id, gateway, settings, updated_by, updated_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (makerspace_id, gateway)
                 DO UPDATE SET settings = excluded.settings, updated_by = excluded.updated_by, updated_at = excluded.updated_at",
            )
            .bind(space).bind(&row.gateway).bind(&row.settings).bind(&row.updated_by).bind(row.updated_at)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// Removes a space's account with a gateway (none is no error).
    pub async fn delete_gateway(&self, space: &str, gateway: &str) -> Result<(), StoreError> {
        with_writer!(self, pool => {
            sqlx::query("DELETE FROM billing_gateways WHERE makerspace_id = $1 AND gateway = $2")
                .bind(space).bind(gateway).execute(pool).await?;
        });
        Ok(())
    }

    pub async fn insert_checkout(&self, c: &CheckoutRecord) -> Result<(), StoreError> {
        with_writer!(self, pool => {
            sqlx::query(
                "INSERT INTO billing_checkouts (id, makerspace_id, invoice_id, gateway, external_id, amount_minor,
                 currency, url, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&c.id).bind(&c.makerspace_id).bind(&c.invoice_id).bind(&c.gateway).bind(&c.external_id)
            .bind(c.amount_minor).bind(&c.currency).bind(&c.url).bind(&c.created_by).bind(c.created_at)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// The checkout a gateway's id names, in the space.
    pub async fn checkout_by_external(
        &self,
        space: &str,
        gateway: &str,
        external_id: &str,
    ) -> Result<Option<CheckoutRecord>, StoreError> {
        let sql = format!(
            "SELECT {CHECKOUT_COLUMNS} FROM billing_checkouts WHERE makerspace_id = $1 AND gateway = $2 AND external_id = $3"
        );
        with_pool!(self, pool => Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(space).bind(gateway).bind(external_id).fetch_optional(pool).await?))
    }

    /// One checkout of the space.
    pub async fn checkout(&self, space: &str, id: &str) -> Result<Option<CheckoutRecord>, StoreError> {
        let sql = format!("SELECT {CHECKOUT_COLUMNS} FROM billing_checkouts WHERE makerspace_id = $1 AND id = $2");
        with_pool!(self, pool => Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(space).bind(id).fetch_optional(pool).await?))
    }

    /// Records a verified event, and the money it carries when it names one of the space's
    /// checkouts: paid to the invoice up to what is still due, the rest to the member's wallet
    /// (money received is never dropped).
    pub async fn record_gateway_event(
        &self,
        space: &str,
        event: &GatewayEventRecord<'_>,
        payment: Option<&ReceivedPayment<'_>>,
    ) -> Result<EventOutcome, StoreError> {
        let postgres = self.kind() == "postgres";
        with_writer!(self, pool => {
            let mut tx = pool.begin().await?;
            let first = sqlx::query(
                "INSERT INTO billing_gateway_events (gateway, event_id, makerspace_id, event_type, invoice_id,
                 payment_ref, amount_minor, outcome, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'received', $8)
                 ON CONFLICT DO NOTHING",
            )
            .bind(event.gateway).bind(event.event_id).bind(space).bind(event.event_type)
            .bind(payment.map(|p| p.checkout.invoice_id.as_str())).bind(payment.map(|p| p.payment_ref))
            .bind(payment.map(|p| p.amount_minor)).bind(event.at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if first == 0 {
                return Ok(EventOutcome::Duplicate);
            }
            let outcome = match payment {
                None => EventOutcome::Ignored,
                Some(p) => {
                    let key = IdemKey {
                        key: format!("{}:{}", event.gateway, p.payment_ref),
                        request_hash: format!("{}:{}:{}", p.checkout.invoice_id, p.amount_minor, p.currency),
                    };
                    if claim_key!(tx, space, &key, event.at).is_some() {
                        EventOutcome::DuplicatePayment
                    } else {
                        let Some(invoice) = invoice_for_update!(tx, space, &p.checkout.invoice_id, postgres) else {
                            return Err(StoreError::Corrupt(format!("checkout {} names no invoice", p.checkout.id)));
                        };
                        if !invoice.currency.eq_ignore_ascii_case(p.currency) {
                            set_key_result!(tx, space, &key, "currency_mismatch".to_string());
                            EventOutcome::CurrencyMismatch
                        } else {
                            let due = if invoice.status == "finalized" { invoice.due_minor() - invoice.paid_minor } else { 0 };
                            let paid_minor = p.amount_minor.clamp(0, due.max(0));
                            let credited_minor = p.amount_minor - paid_minor;
                            let mut result = String::new();
                            if paid_minor > 0 {
                                let (id,): (i64,) = sqlx::query_as(
                                    "INSERT INTO billing_payments (makerspace_id, invoice_id, kind, method, amount_minor,
                                     currency, reference, wallet_entry_id, credit_note_id, actor, created_at)
                                     VALUES ($1, $2, 'payment', $3, $4, $5, $6, NULL, NULL, $7, $8) RETURNING id",
                                )
                                .bind(space).bind(&invoice.id).bind(event.gateway).bind(paid_minor).bind(&invoice.currency)
                                .bind(p.reference).bind(format!("gateway:{}", event.gateway)).bind(event.at)
                                .fetch_one(&mut *tx)
                                .await?;
                                result = format!("payment:{id}");
                            }
                            if credited_minor > 0 {
                                lock_member!(tx, space, &invoice.member_id, postgres);
                                let entry = NewWalletEntry {
                                    makerspace_id: space.to_string(),
                                    member_id: invoice.member_id.clone(),
                                    kind: "top_up",
                                    amount_minor: credited_minor,
                                    currency: invoice.currency.clone(),
                                    charge_id: None,
                                    reason: Some(format!(
                                        "{} payment {} beyond what invoice {} still owed",
                                        event.gateway,
                                        p.reference,
                                        invoice.number.clone().unwrap_or_else(|| invoice.id.clone())
                                    )),
                                    actor: format!("gateway:{}", event.gateway),
                                    at: event.at,
                                };
                                let row = insert_wallet_entry!(tx, &entry, Some(key.key.as_str()));
                                result.push_str(&format!(" wallet:{}", row.id));
                            }
                            set_key_result!(tx, space, &key, result.trim().to_string());
                            EventOutcome::Paid { paid_minor, credited_minor }
                        }
                    }
                }
            };
            sqlx::query("UPDATE billing_gateway_events SET outcome = $3 WHERE gateway = $1 AND event_id = $2")
                .bind(event.gateway).bind(event.event_id).bind(outcome.as_str())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(outcome)
        })
    }
}
