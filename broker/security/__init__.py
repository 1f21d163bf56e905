"""Authentication of clients on the listeners that ask for it."""
