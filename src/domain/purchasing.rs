//! Low-stock alerts and purchase orders: the pure part. An alert is raised once per downward
//! crossing of an item's minimum ([`super::inventory::crossed_minimum`]) and lives until stock
//! is back above it or its order came in; a purchase order goes `draft -> ordered ->
//! partially_received -> received`, or `cancelled` from draft or ordered, and nothing else.
//! Money is integer minor units; a line's amount is rounded once, half away from zero.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::inventory::Quantity;

/// Where a low-stock alert stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// The item is low and nobody has ordered it yet.
    Open,
    /// A purchase order is on its way for it.
    Ordered,
    /// Stock came back above the minimum, or the order was received in full.
    Closed,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Ordered => "ordered",
            Self::Closed => "closed",
        }
    }
}

/// Where a purchase order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Being put together; nothing has been sent to the supplier.
    Draft,
    /// Sent to the supplier; nothing has arrived yet.
    Ordered,
    /// Some of it arrived.
    PartiallyReceived,
    /// All of it arrived.
    Received,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Ordered => "ordered",
            Self::PartiallyReceived => "partially_received",
            Self::Received => "received",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether the order is over (nothing more arrives, nothing changes).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Received | Self::Cancelled)
    }
}

/// What is done to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderAction {
    /// Send it to the supplier.
    Order,
    Cancel,
    /// Take (some of) a delivery in.
    Receive,
}

impl OrderAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Order => "order",
            Self::Cancel => "cancel",
            Self::Receive => "receive",
        }
    }
}

/// An action the order's status does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a purchase order that is {} cannot be {}", status.as_str(), past(*action))]
pub struct InvalidTransition {
    pub status: OrderStatus,
    pub action: OrderAction,
}

fn past(action: OrderAction) -> &'static str {
    match action {
        OrderAction::Order => "ordered",
        OrderAction::Cancel => "cancelled",
        OrderAction::Receive => "received",
    }
}

/// The status an action leads to. A receipt leads to `partially_received` here; whether it
/// completed the order is [`after_receipt`]'s to say.
pub fn transition(status: OrderStatus, action: OrderAction) -> Result<OrderStatus, InvalidTransition> {
    use OrderStatus::*;
    match (status, action) {
        (Draft, OrderAction::Order) => Ok(Ordered),
        (Draft | Ordered, OrderAction::Cancel) => Ok(Cancelled),
        (Ordered | PartiallyReceived, OrderAction::Receive) => Ok(PartiallyReceived),
        _ => Err(InvalidTransition { status, action }),
    }
}

/// One line's ordered and received quantities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineProgress {
    pub ordered: Quantity,
    pub received: Quantity,
}

impl LineProgress {
    /// What is still to come (never below nothing).
    pub fn outstanding(self) -> Quantity {
        Quantity((self.ordered.0 - self.received.0).max(0))
    }

    pub fn is_complete(self) -> bool {
        self.received >= self.ordered
    }
}

/// An ordered (or partially received) order's status once its lines stand as given.
pub fn after_receipt(lines: &[LineProgress]) -> OrderStatus {
    if lines.iter().all(|l| l.is_complete()) {
        OrderStatus::Received
    } else if lines.iter().any(|l| l.received.is_positive()) {
        OrderStatus::PartiallyReceived
    } else {
        OrderStatus::Ordered
    }
}

/// Largest amount of one order, in minor units: ten trillion, far past any real order and far
/// below where a sum of lines could overflow.
pub const MAX_ORDER_MINOR: i64 = 10_000_000_000_000;

/// The amount of `quantity` at `unit_cost_minor` per unit, rounded once to a minor unit (half
/// away from zero); `None` above [`MAX_ORDER_MINOR`].
pub fn line_amount_minor(quantity: Quantity, unit_cost_minor: i64) -> Option<i64> {
    // Thousandths of a unit times minor units per unit: exact in i128 for every quantity
    // and cost the API accepts.
    let thousandths = i128::from(quantity.0) * i128::from(unit_cost_minor);
    let rounded = (thousandths.abs() + 500) / 1000 * thousandths.signum();
    i64::try_from(rounded).ok().filter(|amount| amount.abs() <= MAX_ORDER_MINOR)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(ordered: i64, received: i64) -> LineProgress {
        LineProgress { ordered: Quantity(ordered), received: Quantity(received) }
    }

    #[test]
    fn an_order_moves_only_forward() {
        use OrderAction::*;
        use OrderStatus::*;
        assert_eq!(transition(Draft, Order), Ok(Ordered));
        assert_eq!(transition(Draft, Cancel), Ok(Cancelled));
        assert_eq!(transition(Ordered, Cancel), Ok(Cancelled));
        assert_eq!(transition(Ordered, Receive), Ok(PartiallyReceived));
        assert_eq!(transition(PartiallyReceived, Receive), Ok(PartiallyReceived));
        for (status, action) in [
            (Draft, Receive),
            (Ordered, Order),
            (PartiallyReceived, Cancel),
            (PartiallyReceived, Order),
            (Received, Receive),
            (Received, Cancel),
            (Cancelled, Order),
            (Cancelled, Receive),
            (Cancelled, Cancel),
        ] {
            let refused = transition(status, action).expect_err("not allowed");
            assert_eq!(refused, InvalidTransition { status, action });
        }
        assert_eq!(
            InvalidTransition { status: PartiallyReceived, action: Cancel }.to_string(),
            "a purchase order that is partially_received cannot be cancelled"
        );
    }

    #[test]
    fn a_receipt_completes_the_order_when_every_line_is_in() {
        assert_eq!(after_receipt(&[line(5_000, 5_000), line(2_000, 2_500)]), OrderStatus::Received);
        assert_eq!(after_receipt(&[line(5_000, 5_000), line(2_000, 0)]), OrderStatus::PartiallyReceived);
        assert_eq!(after_receipt(&[line(5_000, 1), line(2_000, 0)]), OrderStatus::PartiallyReceived);
        assert_eq!(after_receipt(&[line(5_000, 0)]), OrderStatus::Ordered);
        assert_eq!(line(5_000, 1_250).outstanding(), Quantity(3_750));
        assert_eq!(line(5_000, 6_000).outstanding(), Quantity::ZERO);
    }

    #[test]
    fn amounts_are_rounded_once_half_away_from_zero() {
        // 2.5 kg of filament at 3 cents a gram.
        assert_eq!(line_amount_minor(Quantity(2_500_000), 3), Some(7_500));
        // 0.5 of a unit at 3: 1.5 minor units, rounded up.
        assert_eq!(line_amount_minor(Quantity(500), 3), Some(2));
        assert_eq!(line_amount_minor(Quantity(499), 3), Some(1));
        assert_eq!(line_amount_minor(Quantity(1), 1), Some(0));
        // The largest quantity at the largest unit cost is too much for one order.
        assert_eq!(line_amount_minor(Quantity::from_units(100_000_000), 10_000_000_000), None);
        assert_eq!(line_amount_minor(Quantity::from_units(1_000), 10_000_000_000), Some(MAX_ORDER_MINOR));
    }
}
