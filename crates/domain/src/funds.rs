//! Supporter funds (DESIGN.md §5): an append-only ledger in integer rials whose sum is the
//! balance, purchase orders from producers, and the rules that keep the money adding up.

use crate::error::{FieldError, ValidationErrors};

names!(
    /// What a ledger entry records. Allocations and reversals add; purchases take; adjustments
    /// either.
    LedgerKind, "ledger entry kind", {
        Allocation => "allocation",
        Purchase => "purchase",
        Reversal => "reversal",
        Adjustment => "adjustment",
    }
);

names!(
    /// A purchase order's progress. Funds are committed when it is ordered; a cancellation puts
    /// them back with a reversing entry.
    PurchaseState, "purchase state", {
        Ordered => "ordered",
        Received => "received",
        Paid => "paid",
        Cancelled => "cancelled",
    }
);

names!(
    /// A purchase line buys a producer's product or raw material for them.
    ItemKind, "item kind", { Product => "product", RawMaterial => "raw_material" }
);

impl PurchaseState {
    /// The states a purchase may move to from this one. Paid money has left: it is final.
    pub fn next(self) -> &'static [PurchaseState] {
        use PurchaseState::*;
        match self {
            Ordered => &[Received, Cancelled],
            Received => &[Paid, Cancelled],
            Paid | Cancelled => &[],
        }
    }
}

/// The largest amount of one entry or purchase: 10^15 rials, far above any real purchase, far
/// below where sums of many could overflow 64 bits.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000_000;

/// One line as submitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub quantity: i64,
    pub unit_price: i64,
}

/// The total of a purchase's lines, checked line by line. Quantities are whole units; prices are
/// whole rials; nothing is rounded.
pub fn purchase_total(lines: &[Line]) -> Result<i64, ValidationErrors> {
    let mut errors = ValidationErrors::default();
    if lines.is_empty() {
        errors.push(FieldError::new(
            "lines",
            "required",
            "a purchase has at least one line",
        ));
    }
    let mut total: i64 = 0;
    for (i, line) in lines.iter().enumerate() {
        if !(1..=1_000_000).contains(&line.quantity) {
            errors.push(FieldError::new(
                format!("lines[{i}].quantity"),
                "out_of_range",
                "quantity must be a whole number from 1 to 1,000,000",
            ));
            continue;
        }
        if !(1..=MAX_AMOUNT).contains(&line.unit_price) {
            errors.push(FieldError::new(
                format!("lines[{i}].unit_price"),
                "out_of_range",
                "unit price must be a positive whole number of rials",
            ));
            continue;
        }
        match line
            .quantity
            .checked_mul(line.unit_price)
            .and_then(|amount| total.checked_add(amount))
            .filter(|t| *t <= MAX_AMOUNT)
        {
            Some(t) => total = t,
            None => errors.push(FieldError::new(
                format!("lines[{i}]"),
                "too_large",
                "the purchase total is beyond any plausible amount",
            )),
        }
    }
    errors.into_result().map(|()| total)
}

/// Why money cannot be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the balance is {balance} rials; {amount} rials cannot be spent")]
pub struct Overdraft {
    pub balance: i64,
    pub amount: i64,
}

/// The balance after taking `amount`, which may never be below zero.
pub fn take(balance: i64, amount: i64) -> Result<i64, Overdraft> {
    match balance.checked_sub(amount) {
        Some(after) if after >= 0 => Ok(after),
        _ => Err(Overdraft { balance, amount }),
    }
}

/// Whether one producer took more than half of a supporter's spending in a period.
pub fn concentrated(producer_spent: i64, supporter_spent: i64) -> bool {
    supporter_spent > 0 && producer_spent.saturating_mul(2) > supporter_spent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_are_exact_and_checked() {
        let lines = [
            Line {
                quantity: 3,
                unit_price: 1_250_000,
            },
            Line {
                quantity: 1,
                unit_price: 999,
            },
        ];
        assert_eq!(purchase_total(&lines), Ok(3_750_999));
        assert!(purchase_total(&[]).is_err());
        let errors = purchase_total(&[Line {
            quantity: 0,
            unit_price: 10,
        }])
        .expect_err("zero quantity");
        assert_eq!(errors.0[0].field, "lines[0].quantity");
        let huge = Line {
            quantity: 1_000_000,
            unit_price: MAX_AMOUNT,
        };
        assert!(purchase_total(&[huge]).is_err());
    }

    #[test]
    fn the_balance_never_goes_below_zero() {
        assert_eq!(take(100, 100), Ok(0));
        assert_eq!(
            take(100, 101),
            Err(Overdraft {
                balance: 100,
                amount: 101
            })
        );
        assert!(take(i64::MIN, 1).is_err());
    }

    #[test]
    fn more_than_half_is_concentrated() {
        assert!(concentrated(51, 100));
        assert!(!concentrated(50, 100));
        assert!(!concentrated(0, 0));
    }

    #[test]
    fn paid_and_cancelled_are_final() {
        assert!(PurchaseState::Paid.next().is_empty());
        assert!(
            PurchaseState::Ordered
                .next()
                .contains(&PurchaseState::Cancelled)
        );
        assert!(!PurchaseState::Ordered.next().contains(&PurchaseState::Paid));
    }
}
