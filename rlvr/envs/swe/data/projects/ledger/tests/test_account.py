import pytest

from ledger import Account, InsufficientFunds, transfer


def test_deposit_and_withdraw():
    acct = Account("alice", 1000)
    assert acct.deposit(500) == 1500
    assert acct.withdraw(1500) == 0
    assert acct.history == [("deposit", 500), ("withdraw", 1500)]


def test_rejects_non_positive_amounts():
    acct = Account("bob")
    with pytest.raises(ValueError):
        acct.deposit(0)
    with pytest.raises(ValueError):
        acct.withdraw(-1)


def test_overdraft_limit():
    acct = Account("carol", 100, overdraft_limit=50)
    assert acct.available() == 150
    assert acct.withdraw(150) == -50
    with pytest.raises(InsufficientFunds):
        acct.withdraw(1)


def test_insufficient_funds_leaves_balance():
    acct = Account("dan", 100)
    with pytest.raises(InsufficientFunds):
        acct.withdraw(101)
    assert acct.balance == 100 and acct.history == []


def test_statement_running_balances():
    acct = Account("erin", 200)
    acct.deposit(50)
    acct.withdraw(120)
    assert acct.statement() == [200, 250, 130]


def test_transfer_moves_money():
    a, b = Account("a", 300), Account("b", 10)
    transfer(a, b, 250)
    assert (a.balance, b.balance) == (50, 260)


def test_transfer_failure_changes_nothing():
    a, b = Account("a", 30), Account("b", 0)
    with pytest.raises(InsufficientFunds):
        transfer(a, b, 31)
    assert (a.balance, b.balance) == (30, 0)
    with pytest.raises(ValueError):
        transfer(a, a, 1)
