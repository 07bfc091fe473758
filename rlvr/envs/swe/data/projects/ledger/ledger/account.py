"""Accounts with history and an optional overdraft limit."""


class InsufficientFunds(Exception):
    """A withdrawal would go below the overdraft limit."""


class Account:
    """A named account holding a balance in cents."""

    def __init__(self, name, balance=0, overdraft_limit=0):
        if overdraft_limit < 0:
            raise ValueError("overdraft_limit must be >= 0")
        self.name = name
        self.balance = balance
        self.overdraft_limit = overdraft_limit
        self.history = []

    def deposit(self, cents):
        if cents <= 0:
            raise ValueError("deposit must be positive")
        self.balance += cents
        self.history.append(("deposit", cents))
        return self.balance

    def available(self):
        """What can still be withdrawn, overdraft included."""
        return self.balance + self.overdraft_limit

    def withdraw(self, cents):
        if cents <= 0:
            raise ValueError("withdrawal must be positive")
        if cents > self.available():
            raise InsufficientFunds(f"{self.name}: cannot withdraw {cents}, only {self.available()} available")
        self.balance -= cents
        self.history.append(("withdraw", cents))
        return self.balance

    def statement(self):
        """Running balances after each operation, starting from the opening balance."""
        opening = self.balance - sum(c if kind == "deposit" else -c for kind, c in self.history)
        running = [opening]
        for kind, cents in self.history:
            delta = cents if kind == "deposit" else -cents
            running.append(running[-1] + delta)
        return running


def transfer(source, target, cents):
    """Move ``cents`` from ``source`` to ``target``; nothing changes when the withdrawal fails."""
    if source is target:
        raise ValueError("cannot transfer to the same account")
    source.withdraw(cents)
    target.deposit(cents)
