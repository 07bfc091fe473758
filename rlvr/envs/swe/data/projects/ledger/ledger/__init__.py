"""ledger: money in integer cents."""

from ledger.account import Account, InsufficientFunds, transfer
from ledger.interest import compound, loan_payment, loan_schedule, simple_interest
from ledger.money import format_cents, parse_amount, round_half_up
from ledger.split import split_by_weights, split_evenly

__all__ = [
    "Account", "InsufficientFunds", "compound", "format_cents", "loan_payment", "loan_schedule", "parse_amount",
    "round_half_up", "simple_interest", "split_by_weights", "split_evenly", "transfer",
]
